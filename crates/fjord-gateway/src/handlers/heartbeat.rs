//! Heartbeat (key 12): a member is alive; the error tells it to rejoin.
//! v3+ carry static instance ids.

use fjord_broker::AclOperation;
use fjord_coordinator::group;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    // READ on the group (Kafka's `handleHeartbeatRequest`).
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return HeartbeatResponse::default().with_error_code(error.code());
    }
    let req = group::HeartbeatRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation_id: request.generation_id,
    };
    match svc.groups.heartbeat(req).await {
        Ok(()) => HeartbeatResponse::default(),
        Err(err) => {
            tracing::debug!(%err, "Heartbeat failed");
            HeartbeatResponse::default().with_error_code(group_error(&err).code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=4 {
            for code in [0, 27] {
                let response = HeartbeatResponse::default().with_error_code(code);
                encode_response(
                    ApiKey::Heartbeat,
                    version,
                    1,
                    &ResponseKind::Heartbeat(response),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
