//! InitProducerId (key 22): a producer id and epoch for an idempotent
//! producer. Transactional ids are refused until the transaction
//! coordinator exists.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

pub(crate) async fn handle(
    _ctx: &RequestContext,
    svc: &Services,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.as_str());
    match svc.producer_ids.init_producer_id(transactional_id).await {
        Ok((producer_id, producer_epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        Err(err) => {
            tracing::debug!(%err, "InitProducerId refused");
            InitProducerIdResponse::default()
                .with_error_code(admin_error(&err).code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
