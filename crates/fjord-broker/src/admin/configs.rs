//! Configs of topics and brokers: DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs. The registry (`fjord_config`) defines the names,
//! values, precedence and alter semantics; this file reads the metadata
//! image for the current values and commits changes through the controller
//! (`AlterTopicConfigs`, `AlterBrokerConfigs`), answering once this broker
//! has applied them.

use std::collections::BTreeMap;

use fjord_config::{
    AlterError, AlterOp, ConfigChange, ConfigDef, ConfigError, ConfigLayers, TOPIC_CONFIGS,
    UpdateMode,
};
use fjord_controller::{MetadataCommand, MetadataImage};

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;
use crate::types::{ConfigEntry, ConfigResource, ConfigSource, ConfigSynonym};

impl From<AlterError> for AdminError {
    fn from(err: AlterError) -> Self {
        match err {
            AlterError::Config(
                ConfigError::ReadOnly { .. } | ConfigError::PerBrokerOnly { .. },
            )
            | AlterError::DuplicateKey { .. }
            | AlterError::NullValue { .. } => AdminError::InvalidRequest {
                reason: err.to_string(),
            },
            AlterError::Config(_) | AlterError::NotAList { .. } => AdminError::InvalidConfig {
                reason: err.to_string(),
            },
        }
    }
}

/// A topic config's definition, or INVALID_CONFIG for an unknown name.
fn topic_def(name: &str) -> Result<ConfigDef, ConfigError> {
    fjord_config::topic_config(name)
        .copied()
        .ok_or_else(|| ConfigError::UnknownTopicConfig { name: name.into() })
}

/// A broker config that may change dynamically at this level.
fn dynamic_broker_def(name: &str, cluster_default: bool) -> Result<ConfigDef, ConfigError> {
    let def = fjord_config::broker_config(name)
        .ok_or_else(|| ConfigError::UnknownBrokerConfig { name: name.into() })?;
    match def.update_mode {
        UpdateMode::ReadOnly => Err(ConfigError::ReadOnly { name: def.name }),
        UpdateMode::PerBroker if cluster_default => {
            Err(ConfigError::PerBrokerOnly { name: def.name })
        }
        _ => Ok(def),
    }
}

fn entry(def: &ConfigDef, synonyms: Vec<ConfigSynonym>, read_only: bool) -> ConfigEntry {
    let (value, source) = synonyms
        .first()
        .map_or((def.default.to_owned(), ConfigSource::Default), |s| {
            (s.value.clone(), s.source)
        });
    ConfigEntry {
        name: def.name.to_owned(),
        value,
        source,
        read_only,
        sensitive: def.sensitive,
        config_type: def.config_type,
        documentation: def.doc,
        synonyms,
    }
}

impl AdminService {
    /// DescribeConfigs of one resource: every config with its value, source
    /// and synonyms. The cluster default (broker "") lists only the dynamic
    /// defaults set, as Kafka.
    pub fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, AdminError> {
        let image = self.metadata();
        let statics = self.config.static_configs();
        let dynamic = &image.broker_configs;
        let layers = ConfigLayers {
            static_configs: Some(&statics),
            ..self.config.dynamic_layers(dynamic)
        };
        match resource {
            ConfigResource::Topic(name) => {
                let topic = image
                    .topic_by_name(name)
                    .ok_or(AdminError::UnknownTopicOrPartition)?;
                let layers = ConfigLayers {
                    topic: Some(&topic.configs),
                    ..layers
                };
                Ok(TOPIC_CONFIGS
                    .iter()
                    .map(|def| entry(def, fjord_config::topic_synonyms(def, &layers), false))
                    .collect())
            }
            ConfigResource::Broker(Some(id)) if *id == self.config.node_id => {
                Ok(fjord_config::all_broker_configs()
                    .iter()
                    .map(|def| {
                        let read_only = def.update_mode == UpdateMode::ReadOnly;
                        entry(def, fjord_config::broker_synonyms(def, &layers), read_only)
                    })
                    .collect())
            }
            ConfigResource::Broker(Some(id)) => Err(AdminError::InvalidRequest {
                reason: format!(
                    "broker {id} is not this broker ({}): ask broker {id}",
                    self.config.node_id
                ),
            }),
            ConfigResource::Broker(None) => Ok(fjord_config::all_broker_configs()
                .iter()
                .filter_map(|def| {
                    let value = dynamic.cluster_default.get(def.name)?;
                    let synonym = ConfigSynonym {
                        name: def.name.to_owned(),
                        value: value.clone(),
                        source: ConfigSource::DynamicDefaultBroker,
                    };
                    Some(entry(def, vec![synonym], false))
                })
                .collect()),
        }
    }

    /// DescribeConfigs of a topic (also CreateTopics' answer).
    pub fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>, AdminError> {
        self.describe_configs(&ConfigResource::Topic(name.to_owned()))
    }

    /// IncrementalAlterConfigs of one resource. With `validate_only`, check
    /// and commit nothing.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterOp],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.metadata();
        let current = current_configs(&image, resource)?;
        let change = match resource {
            ConfigResource::Topic(_) => fjord_config::apply_incremental(&current, ops, topic_def)?,
            ConfigResource::Broker(id) => {
                let default = id.is_none();
                fjord_config::apply_incremental(&current, ops, |n| dynamic_broker_def(n, default))?
            }
        };
        self.commit_change(&image, resource, current, change, validate_only)
            .await
    }

    /// AlterConfigs of one resource: `configs` replaces every dynamic config
    /// of the resource (Kafka's semantics; names left out are deleted).
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        configs: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.metadata();
        let current = current_configs(&image, resource)?;
        let change = match resource {
            ConfigResource::Topic(_) => fjord_config::replace_all(&current, configs, topic_def)?,
            ConfigResource::Broker(id) => {
                let default = id.is_none();
                fjord_config::replace_all(&current, configs, |n| dynamic_broker_def(n, default))?
            }
        };
        self.commit_change(&image, resource, current, change, validate_only)
            .await
    }

    async fn commit_change(
        &self,
        image: &MetadataImage,
        resource: &ConfigResource,
        current: BTreeMap<String, String>,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut wanted = current;
        wanted.extend(change.set.clone());
        for k in &change.delete {
            wanted.remove(k);
        }
        let command = match resource {
            ConfigResource::Topic(name) => {
                // The log's typed parse has the last word on topic configs.
                self.validate_configs(&wanted)?;
                let topic_id = *image
                    .topic_ids
                    .get(name)
                    .ok_or(AdminError::UnknownTopicOrPartition)?;
                MetadataCommand::AlterTopicConfigs {
                    topic_id,
                    set: change.set.clone(),
                    delete: change.delete.clone(),
                }
            }
            ConfigResource::Broker(broker_id) => MetadataCommand::AlterBrokerConfigs {
                broker_id: *broker_id,
                set: change.set.clone(),
                delete: change.delete.clone(),
            },
        };
        if validate_only || change.is_empty() {
            return Ok(());
        }
        self.commit(command).await?;
        let applied = |img: &std::sync::Arc<MetadataImage>| {
            current_configs(img, resource).is_ok_and(|now| {
                change.set.iter().all(|(k, v)| now.get(k) == Some(v))
                    && change.delete.iter().all(|k| !now.contains_key(k))
            })
        };
        self.wait_applied(APPLY_TIMEOUT, applied)
            .await
            .then_some(())
            .ok_or(AdminError::RequestTimedOut)
    }
}

/// The dynamic configs a resource has now.
fn current_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
) -> Result<BTreeMap<String, String>, AdminError> {
    match resource {
        ConfigResource::Topic(name) => image
            .topic_by_name(name)
            .map(|t| t.configs.clone())
            .ok_or(AdminError::UnknownTopicOrPartition),
        ConfigResource::Broker(id) => Ok(image
            .broker_configs
            .resource(*id)
            .cloned()
            .unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_errors_map_to_kafkas_codes() {
        let invalid_request = [
            AlterError::Config(ConfigError::ReadOnly { name: "node.id" }),
            AlterError::DuplicateKey { name: "a".into() },
            AlterError::NullValue { name: "a".into() },
        ];
        for err in invalid_request {
            assert!(matches!(
                AdminError::from(err),
                AdminError::InvalidRequest { .. }
            ));
        }
        let invalid_config = [
            AlterError::Config(ConfigError::UnknownTopicConfig { name: "x".into() }),
            AlterError::NotAList {
                name: "retention.ms".into(),
            },
        ];
        for err in invalid_config {
            assert!(matches!(
                AdminError::from(err),
                AdminError::InvalidConfig { .. }
            ));
        }
    }

    #[test]
    fn broker_level_rules() {
        assert!(matches!(
            dynamic_broker_def("node.id", false),
            Err(ConfigError::ReadOnly { .. })
        ));
        assert!(matches!(
            dynamic_broker_def("retention.ms", true),
            Err(ConfigError::UnknownBrokerConfig { .. })
        ));
        assert_eq!(
            dynamic_broker_def("log.retention.ms", true).unwrap().name,
            "log.retention.ms"
        );
    }
}
