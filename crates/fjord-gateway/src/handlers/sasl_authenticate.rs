//! SaslAuthenticate (key 36) outside a SASL exchange: ILLEGAL_SASL_STATE,
//! as Kafka's `KafkaApis` answers it (see `sasl_handshake`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::wire_str;
use crate::context::RequestContext;
use crate::services::Services;

pub(crate) async fn handle(
    _ctx: &RequestContext,
    _svc: &Services,
    _request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(wire_str(
            "SaslAuthenticate request received after successful authentication",
        )))
}
