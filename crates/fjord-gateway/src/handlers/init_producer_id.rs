//! InitProducerId (key 22): a producer id and epoch. Without a
//! transactional id, for an idempotent producer, from this broker's block
//! of ids. With one, from the id's transaction coordinator, which fences
//! older epochs of the same id, aborts its open transaction, and (v3+,
//! KIP-360) bumps the epoch of the producer id and epoch the producer says
//! it has.

use fjord_broker::{AclOperation, AclResourceType};
use fjord_coordinator::txn::{self, ProducerIdAndEpoch};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::context::RequestContext;
use crate::error_code::{admin_error, txn_error};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    // WRITE on the transactional id; without one, IDEMPOTENT_WRITE on the
    // cluster or WRITE on some topic (Kafka's `handleInitProducerIdRequest`).
    let refused = match request.transactional_id.as_ref() {
        Some(id) if !ctx.authorized_transactional_id(svc, AclOperation::Write, &id.0) => {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        None if !ctx.authorized_cluster(svc, AclOperation::IdempotentWrite)
            && !ctx.authorized_any(svc, AclOperation::Write, AclResourceType::Topic) =>
        {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    };
    let answer = match request.transactional_id.as_ref() {
        _ if refused.is_some() => Err(refused.map_or(0, |e| e.code())),
        None => svc.producer_ids.init_producer_id().await.map_err(|err| {
            tracing::debug!(%err, "InitProducerId refused");
            admin_error(&err).code()
        }),
        Some(id) => {
            let expected = (request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
                producer_id: request.producer_id.0,
                epoch: request.producer_epoch,
            });
            svc.txns
                .init_producer_id(txn::InitProducerIdRequest {
                    transactional_id: Some(id.0.to_string()),
                    transaction_timeout_ms: request.transaction_timeout_ms,
                    expected,
                })
                .await
                .map(|p| (p.producer_id, p.epoch))
                .map_err(|err| {
                    tracing::debug!(%err, transactional_id = %id.0, "InitProducerId refused");
                    txn_error(&err).code()
                })
        }
    };
    match answer {
        Ok((producer_id, producer_epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
