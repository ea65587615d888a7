//! AddOffsetsToTxn (key 25): a transactional producer adds a group's
//! `__consumer_offsets` partition to its transaction, before it sends the
//! group's offsets with TxnOffsetCommit (to the group coordinator).

use fjord_broker::AclOperation;
use fjord_coordinator::txn::TxnProducer;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::context::RequestContext;
use crate::error_code::txn_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    // WRITE on the transactional id, READ on the group (Kafka's
    // `handleAddOffsetsToTxnRequest`).
    if !ctx.authorized_transactional_id(svc, AclOperation::Write, &request.transactional_id.0) {
        let error = ResponseError::TransactionalIdAuthorizationFailed;
        return AddOffsetsToTxnResponse::default().with_error_code(error.code());
    }
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return AddOffsetsToTxnResponse::default().with_error_code(error.code());
    }
    let producer = TxnProducer {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let code = match svc.txns.add_offsets(producer, &request.group_id.0).await {
        Ok(()) => 0,
        Err(err) => {
            tracing::debug!(%err, "AddOffsetsToTxn refused");
            txn_error(&err).code()
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
