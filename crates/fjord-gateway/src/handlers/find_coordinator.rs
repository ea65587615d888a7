//! FindCoordinator (key 10): which node coordinates a group (key type 0)
//! or a transactional id (key type 1): the leader of the key's partition
//! of `__consumer_offsets` or `__transaction_state`, created on first use.
//!
//! v0–v3 ask for one key and answer at the top level; v4+ batch
//! `coordinator_keys` and answer one entry per key. Other key types (share
//! groups) get INVALID_REQUEST.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{broker_endpoint, wire_str};
use crate::context::RequestContext;
use crate::error_code::{group_error, txn_error};
use crate::services::Services;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The coordinator of one key: node id, host, port; or an error and message.
type Found = Result<(i32, String, u16), (ResponseError, String)>;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = ctx.api_version;
    let listener = ctx.listener();
    if version < 4 {
        let found = find(ctx, svc, request.key_type, request.key.as_str(), listener).await;
        let response = FindCoordinatorResponse::default();
        match found {
            Ok((node_id, host, port)) => response
                .with_node_id(BrokerId(node_id))
                .with_host(wire_str(host))
                .with_port(i32::from(port))
                .with_error_message(None),
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message((version >= 1).then(|| wire_str(message)))
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1),
        }
    } else {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let entry = Coordinator::default().with_key(key.clone());
            let entry = match find(ctx, svc, request.key_type, key.as_str(), listener).await {
                Ok((node_id, host, port)) => entry
                    .with_node_id(BrokerId(node_id))
                    .with_host(wire_str(host))
                    .with_port(i32::from(port))
                    .with_error_message(None),
                Err((error, message)) => entry
                    .with_error_code(error.code())
                    .with_error_message(Some(wire_str(message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            };
            coordinators.push(entry);
        }
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    }
}

async fn find(
    ctx: &RequestContext,
    svc: &Services,
    key_type: i8,
    key: &str,
    listener: &str,
) -> Found {
    // DESCRIBE on the group or the transactional id (Kafka's
    // `handleFindCoordinatorRequest`).
    if key_type == GROUP && !ctx.authorized_group(svc, AclOperation::Describe, key) {
        let error = ResponseError::GroupAuthorizationFailed;
        return Err((error, error.to_string()));
    }
    if key_type == TRANSACTION && !ctx.authorized_transactional_id(svc, AclOperation::Describe, key)
    {
        let error = ResponseError::TransactionalIdAuthorizationFailed;
        return Err((error, error.to_string()));
    }
    let node_id = match key_type {
        GROUP => svc
            .groups
            .find_group_coordinator(key)
            .await
            .map_err(|err| {
                tracing::debug!(%err, group = key, "FindCoordinator failed");
                (group_error(&err), err.to_string())
            })?,
        TRANSACTION => svc.txns.find_coordinator(key).await.map_err(|err| {
            tracing::debug!(%err, transactional_id = key, "FindCoordinator failed");
            (txn_error(&err), err.to_string())
        })?,
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("unsupported coordinator key type {other}"),
            ));
        }
    };
    let image = svc.metadata.image();
    match broker_endpoint(&image, node_id, listener) {
        Some((host, port)) => Ok((node_id, host, port)),
        None => Err((
            ResponseError::CoordinatorNotAvailable,
            format!("coordinator {node_id} has no endpoint on listener {listener}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=6 {
            let ok = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(wire_str("localhost"))
                .with_port(9092)
                .with_error_message(None);
            let err = FindCoordinatorResponse::default()
                .with_error_code(15)
                .with_error_message((version >= 1).then(|| wire_str("no")))
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            let batched = FindCoordinatorResponse::default().with_coordinators(vec![
                Coordinator::default()
                    .with_key(wire_str("g"))
                    .with_node_id(BrokerId(1))
                    .with_host(wire_str("localhost"))
                    .with_port(9092)
                    .with_error_message(None),
                Coordinator::default()
                    .with_key(wire_str("t"))
                    .with_error_code(15)
                    .with_error_message(Some(wire_str("no")))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            ]);
            let responses = if version < 4 {
                vec![ok, err]
            } else {
                vec![batched]
            };
            for response in responses {
                encode_response(
                    ApiKey::FindCoordinator,
                    version,
                    1,
                    &ResponseKind::FindCoordinator(response),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
