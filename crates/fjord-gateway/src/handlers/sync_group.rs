//! SyncGroup (key 14): the leader hands in the assignment; every member
//! gets its own (parked by the broker until the leader's arrives).
//!
//! v3+ carry static instance ids; v5 carries and answers the protocol type
//! and name.

use fjord_broker::AclOperation;
use fjord_coordinator::group::{self, GroupError, RequestToken, SyncGroupResult};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = ctx.api_version;
    // READ on the group (Kafka's `handleSyncGroupRequest`).
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return SyncGroupResponse::default().with_error_code(error.code());
    }
    let result = svc
        .groups
        .sync_group(domain_request(request, version))
        .await;
    response(result)
}

fn domain_request(request: SyncGroupRequest, version: i16) -> group::SyncGroupRequest {
    let v5 = version >= 5;
    group::SyncGroupRequest {
        token: RequestToken(0),
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.filter(|_| v5).map(|p| p.to_string()),
        protocol_name: request.protocol_name.filter(|_| v5).map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    }
}

fn response(result: Result<SyncGroupResult, GroupError>) -> SyncGroupResponse {
    match result {
        Ok(synced) => SyncGroupResponse::default()
            .with_protocol_type(synced.protocol_type.map(wire_str))
            .with_protocol_name(synced.protocol_name.map(wire_str))
            .with_assignment(synced.assignment),
        Err(err) => {
            tracing::debug!(%err, "SyncGroup failed");
            SyncGroupResponse::default().with_error_code(group_error(&err).code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{ApiKey, GroupId, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn translates_requests() {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(wire_str("g")))
            .with_generation_id(2)
            .with_member_id(wire_str("m"))
            .with_protocol_type(Some(wire_str("consumer")))
            .with_protocol_name(Some(wire_str("range")))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(wire_str("m"))
                    .with_assignment(Bytes::from_static(b"a")),
            ]);
        let v5 = domain_request(request.clone(), 5);
        assert_eq!(v5.protocol_name.as_deref(), Some("range"));
        assert_eq!(v5.assignments, vec![("m".into(), Bytes::from_static(b"a"))]);
        let v4 = domain_request(request, 4);
        assert_eq!(v4.protocol_type, None);
        assert_eq!(v4.protocol_name, None);
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=5 {
            for result in [
                Ok(SyncGroupResult {
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignment: Bytes::from_static(b"a"),
                }),
                Err(GroupError::RebalanceInProgress),
            ] {
                encode_response(
                    ApiKey::SyncGroup,
                    version,
                    1,
                    &ResponseKind::SyncGroup(response(result)),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
