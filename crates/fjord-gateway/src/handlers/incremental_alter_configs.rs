//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on
//! each resource's dynamic configs, through the controller.

use fjord_broker::AclOperation;
use fjord_config::{AlterOp, OpType};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resource::{self, Resource};
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

/// The request's operations in domain terms; an unknown operation code is
/// INVALID_REQUEST for the whole resource.
fn ops(configs: &[AlterableConfig]) -> Result<Vec<AlterOp>, (ResponseError, String)> {
    configs
        .iter()
        .map(|c| {
            let op = OpType::from_code(c.config_operation).ok_or_else(|| {
                (
                    ResponseError::InvalidRequest,
                    format!(
                        "unknown config operation {} for {}",
                        c.config_operation,
                        c.name.as_str()
                    ),
                )
            })?;
            Ok(AlterOp {
                name: c.name.to_string(),
                op,
                value: c.value.as_ref().map(|v| v.to_string()),
            })
        })
        .collect()
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = match config_resource::parse_authorized(
                ctx,
                svc,
                resource.resource_type,
                &resource.resource_name,
                AclOperation::AlterConfigs,
            ) {
            Ok(Resource::Config(r)) => match ops(&resource.configs) {
                Ok(ops) => svc
                    .admin
                    .incremental_alter_configs(&r, &ops, request.validate_only)
                    .await
                    .map_err(|err| {
                        tracing::debug!(resource = %resource.resource_name, %err, "incremental alter configs failed");
                        (admin_error(&err), admin_error_message(&err))
                    }),
                Err(e) => Err(e),
            },
            // Kafka answers INVALID_CONFIG for a logger it does not have;
            // Fjord has none it can change at runtime.
            Ok(Resource::BrokerLogger) => Err((
                ResponseError::InvalidConfig,
                "Fjord does not support changing log levels at runtime (RUST_LOG at start)".to_string(),
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_codes() {
        let config = |op: i8| {
            AlterableConfig::default()
                .with_name("cleanup.policy".into())
                .with_config_operation(op)
                .with_value(Some("compact".into()))
        };
        let parsed = ops(&[config(0), config(1), config(2), config(3)]).unwrap();
        let kinds: Vec<_> = parsed.iter().map(|o| o.op).collect();
        assert_eq!(
            kinds,
            vec![
                OpType::Set,
                OpType::Delete,
                OpType::Append,
                OpType::Subtract
            ]
        );
        assert_eq!(
            ops(&[config(7)]).unwrap_err().0,
            ResponseError::InvalidRequest
        );
    }
}
