//! DescribeConfigs (key 32): topic and broker configs with their values,
//! sources, synonyms, types and documentation, from the config registry
//! (`fjord_config`) through the admin service.

use fjord_broker::AclOperation;
use fjord_broker::ConfigEntry;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resource::{self, Resource};
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

/// What the request asks to include per config.
#[derive(Clone, Copy)]
struct Include {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let include = Include {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
        version: ctx.api_version,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = match config_resource::parse_authorized(
                ctx,
                svc,
                resource.resource_type,
                &resource.resource_name,
                AclOperation::DescribeConfigs,
            ) {
                Ok(Resource::Config(r)) => svc.admin.describe_configs(&r).map_err(|err| {
                    tracing::debug!(resource = %resource.resource_name, %err, "describe configs failed");
                    (admin_error(&err), admin_error_message(&err))
                }),
                // Log levels are not configurable here: nothing to describe.
                Ok(Resource::BrokerLogger) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_message(None);
            match entries {
                Ok(entries) => {
                    let wanted = resource.configuration_keys;
                    let configs = entries
                        .into_iter()
                        .filter(|e| wanted.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                        .map(|e| resource_result(e, include))
                        .collect();
                    result.with_configs(configs)
                }
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn resource_result(entry: ConfigEntry, include: Include) -> DescribeConfigsResourceResult {
    // A secret's value never leaves the broker (Kafka answers null).
    let shown = |value: String| (!entry.sensitive).then(|| StrBytes::from_string(value));
    let synonyms = if include.synonyms {
        entry
            .synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name.clone()))
                    .with_value(shown(s.value.clone()))
                    .with_source(s.source.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    let result = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name.clone()))
        .with_value(shown(entry.value.clone()))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.code())
        .with_is_sensitive(entry.sensitive)
        .with_synonyms(synonyms);
    if include.version >= 3 {
        result
            .with_config_type(entry.config_type.code())
            .with_documentation(
                include
                    .documentation
                    .then(|| StrBytes::from_static_str(entry.documentation)),
            )
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_broker::{ConfigSource, ConfigSynonym, ConfigType};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    fn entry() -> ConfigEntry {
        ConfigEntry {
            name: "retention.ms".into(),
            value: "1000".into(),
            source: ConfigSource::DynamicTopic,
            read_only: false,
            sensitive: false,
            config_type: ConfigType::Long,
            documentation: "doc",
            synonyms: vec![
                ConfigSynonym {
                    name: "retention.ms".into(),
                    value: "1000".into(),
                    source: ConfigSource::DynamicTopic,
                },
                ConfigSynonym {
                    name: "log.retention.ms".into(),
                    value: "604800000".into(),
                    source: ConfigSource::Default,
                },
            ],
        }
    }

    #[test]
    fn synonyms_types_and_documentation_as_asked() {
        let all = Include {
            synonyms: true,
            documentation: true,
            version: 4,
        };
        let r = resource_result(entry(), all);
        assert_eq!(r.config_source, 1);
        assert_eq!(r.config_type, 5);
        assert_eq!(r.documentation.as_deref(), Some("doc"));
        let sources: Vec<_> = r.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(sources, vec![1, 5]);
        let bare = resource_result(
            entry(),
            Include {
                synonyms: false,
                documentation: false,
                version: 4,
            },
        );
        assert!(bare.synonyms.is_empty());
        assert_eq!(bare.documentation, None);
        let secret = resource_result(
            ConfigEntry {
                sensitive: true,
                ..entry()
            },
            all,
        );
        assert_eq!(secret.value, None);
        assert!(secret.synonyms.iter().all(|s| s.value.is_none()));
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 1..=4 {
            let include = Include {
                synonyms: true,
                documentation: true,
                version,
            };
            let response = DescribeConfigsResponse::default().with_results(vec![
                DescribeConfigsResult::default()
                    .with_resource_type(config_resource::RESOURCE_TOPIC)
                    .with_resource_name("t".into())
                    .with_error_message(None)
                    .with_configs(vec![resource_result(entry(), include)]),
                DescribeConfigsResult::default()
                    .with_resource_type(config_resource::RESOURCE_TOPIC)
                    .with_resource_name("missing".into())
                    .with_error_code(3)
                    .with_error_message(Some("unknown".into())),
            ]);
            encode_response(
                ApiKey::DescribeConfigs,
                version,
                1,
                &ResponseKind::DescribeConfigs(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
