//! EndTxn (key 26), v0–v4: commit or abort the producer's transaction. The
//! answer goes out once the coordinator's PrepareCommit/PrepareAbort is
//! committed in `__transaction_state`; the markers follow in the
//! background. v5 (the per-transaction epoch bump of KIP-890 part 2, only
//! used when `transaction.version` 2 is finalized) is not served.

use fjord_broker::AclOperation;
use fjord_coordinator::txn::{EndTxnRequest as EndTxn, TransactionResult};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::context::RequestContext;
use crate::error_code::txn_error;
use crate::services::Services;

/// The transaction version of EndTxn up to v4 (KIP-890 part 2 is v5).
const CLIENT_TRANSACTION_VERSION: i16 = 1;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: EndTxnRequest,
) -> EndTxnResponse {
    // WRITE on the transactional id (Kafka's `handleEndTxnRequest`).
    if !ctx.authorized_transactional_id(svc, AclOperation::Write, &request.transactional_id.0) {
        let error = ResponseError::TransactionalIdAuthorizationFailed;
        return EndTxnResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let req = EndTxn {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        result: if request.committed {
            TransactionResult::Commit
        } else {
            TransactionResult::Abort
        },
        client_transaction_version: CLIENT_TRANSACTION_VERSION,
    };
    let response = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match svc.txns.end_txn(req).await {
        Ok(_) => response,
        Err(err) => {
            tracing::debug!(%err, "EndTxn refused");
            response.with_error_code(txn_error(&err).code())
        }
    }
}
