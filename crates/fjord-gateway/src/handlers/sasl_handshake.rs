//! SaslHandshake (key 17) outside a SASL exchange: on a PLAINTEXT or SSL
//! listener, or on an authenticated SASL connection without
//! re-authentication. Kafka's `KafkaApis` answers ILLEGAL_SASL_STATE; the
//! exchange itself is the connection's (`crate::sasl`), which intercepts
//! these requests before dispatch whenever they are a SASL step.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use crate::context::RequestContext;
use crate::services::Services;

pub(crate) async fn handle(
    _ctx: &RequestContext,
    _svc: &Services,
    _request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}
