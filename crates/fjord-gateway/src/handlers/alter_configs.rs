//! AlterConfigs (key 33): each resource's dynamic configs become exactly
//! the request's (Kafka's replace-all semantics), through the controller.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resource::{self, Resource};
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = match config_resource::parse_authorized(
                ctx,
                svc,
                resource.resource_type,
                &resource.resource_name,
                AclOperation::AlterConfigs,
            ) {
            Ok(Resource::Config(r)) => {
                let configs: Vec<(String, Option<String>)> = resource
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                svc.admin
                    .alter_configs(&r, &configs, request.validate_only)
                    .await
                    .map_err(|err| {
                        tracing::debug!(resource = %resource.resource_name, %err, "alter configs failed");
                        (admin_error(&err), admin_error_message(&err))
                    })
            }
            // Kafka serves log levels through IncrementalAlterConfigs only.
            Ok(Resource::BrokerLogger) => Err((
                ResponseError::InvalidRequest,
                "AlterConfigs does not support the BROKER_LOGGER resource type; use IncrementalAlterConfigs".to_string(),
            )),
            Err(e) => Err(e),
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}
