//! DescribeConfigs (key 32): topic configs with their values and sources,
//! and this broker's own settings.

use fjord_broker::{ConfigEntry, ConfigSource};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// Kafka's DescribeConfigs ConfigSource numbering.
pub(crate) fn config_source(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::DynamicTopic => 1,
        ConfigSource::StaticBroker => 4,
        ConfigSource::Default => 5,
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = ctx.api_version;
    let include_synonyms = request.include_synonyms;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => svc.admin.describe_topic_configs(&resource.resource_name).map_err(|err| {
                    tracing::debug!(topic = %resource.resource_name, %err, "describe configs failed");
                    (admin_error(&err), admin_error_message(&err))
                }),
                RESOURCE_BROKER => broker_configs(svc, &resource.resource_name),
                // Log levels are not configurable here: nothing to describe.
                RESOURCE_BROKER_LOGGER => Ok(Vec::new()),
                other => Err((ResponseError::InvalidRequest, format!("unsupported resource type {other}"))),
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
                        .map(|e| resource_result(e, include_synonyms, version))
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

fn resource_result(
    entry: ConfigEntry,
    include_synonyms: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let source = config_source(entry.source);
    let name = StrBytes::from_string(entry.name);
    let value = Some(StrBytes::from_string(entry.value));
    let synonyms = if include_synonyms {
        vec![
            DescribeConfigsSynonym::default()
                .with_name(name.clone())
                .with_value(value.clone())
                .with_source(source),
        ]
    } else {
        Vec::new()
    };
    let result = DescribeConfigsResourceResult::default()
        .with_name(name)
        .with_value(value)
        .with_read_only(entry.read_only)
        .with_config_source(source)
        .with_synonyms(synonyms);
    if version >= 3 {
        result.with_documentation(None)
    } else {
        result
    }
}

/// The broker settings clients commonly ask about, as static broker configs.
/// `name` is a broker id; "" means the cluster-wide default, which has no
/// dynamic values here.
fn broker_configs(svc: &Services, name: &str) -> Result<Vec<ConfigEntry>, (ResponseError, String)> {
    if name.is_empty() {
        return Ok(Vec::new());
    }
    if name.parse::<i32>().ok() != Some(svc.node_id()) {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker {name} is not this broker ({})", svc.node_id()),
        ));
    }
    let config = &svc.config;
    let entry = |name: &str, value: String| ConfigEntry {
        name: name.to_string(),
        value,
        source: ConfigSource::StaticBroker,
        read_only: true,
    };
    let mut entries = vec![
        entry(
            "auto.create.topics.enable",
            config.auto_create_topics_enable.to_string(),
        ),
        entry("broker.id", config.node_id.to_string()),
        entry(
            "default.replication.factor",
            config.default_replication_factor.to_string(),
        ),
        entry("log.dirs", config.log_dir.display().to_string()),
        entry(
            "min.insync.replicas",
            config.min_insync_replicas.to_string(),
        ),
        entry("node.id", config.node_id.to_string()),
        entry("num.partitions", config.num_partitions.to_string()),
    ];
    if let Some(rack) = &config.rack {
        entries.push(entry("broker.rack", rack.clone()));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn config_sources_use_kafka_numbers() {
        assert_eq!(config_source(ConfigSource::DynamicTopic), 1);
        assert_eq!(config_source(ConfigSource::StaticBroker), 4);
        assert_eq!(config_source(ConfigSource::Default), 5);
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 1..=4 {
            let entry = ConfigEntry {
                name: "retention.ms".into(),
                value: "604800000".into(),
                source: ConfigSource::Default,
                read_only: false,
            };
            let response = DescribeConfigsResponse::default().with_results(vec![
                DescribeConfigsResult::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name("t".into())
                    .with_error_message(None)
                    .with_configs(vec![resource_result(entry, true, version)]),
                DescribeConfigsResult::default()
                    .with_resource_type(RESOURCE_TOPIC)
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
