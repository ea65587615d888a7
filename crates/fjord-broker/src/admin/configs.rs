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

/// A group config's definition, or INVALID_CONFIG for an unknown name.
fn group_def(name: &str) -> Result<ConfigDef, ConfigError> {
    fjord_config::group_config(name)
        .copied()
        .ok_or_else(|| ConfigError::UnknownGroupConfig { name: name.into() })
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
            ConfigResource::Group(group_id) => {
                let group = image.group_configs.get(group_id);
                Ok(fjord_config::GROUP_CONFIGS
                    .iter()
                    .map(|def| entry(def, fjord_config::group_synonyms(def, group), false))
                    .collect())
            }
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
        let default = matches!(resource, ConfigResource::Broker(None));
        self.alter_resource(resource, validate_only, |current| match resource {
            ConfigResource::Topic(_) => fjord_config::apply_incremental(current, ops, topic_def),
            ConfigResource::Group(_) => fjord_config::apply_incremental(current, ops, group_def),
            ConfigResource::Broker(_) => {
                fjord_config::apply_incremental(current, ops, |n| dynamic_broker_def(n, default))
            }
        })
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
        let default = matches!(resource, ConfigResource::Broker(None));
        self.alter_resource(resource, validate_only, |current| match resource {
            ConfigResource::Topic(_) => fjord_config::replace_all(current, configs, topic_def),
            ConfigResource::Group(_) => fjord_config::replace_all(current, configs, group_def),
            ConfigResource::Broker(_) => {
                fjord_config::replace_all(current, configs, |n| dynamic_broker_def(n, default))
            }
        })
        .await
    }

    /// Compute a change from the resource's current configs in this node's
    /// image and commit it as a compare-and-set on those configs: this
    /// node's image may lag the controller's (a change made through another
    /// node a moment ago), and the change is only right against the configs
    /// it was computed from. A lost race (CONFIGS_CHANGED) waits for the
    /// local image to move and computes again, as often as needed within
    /// the apply timeout.
    async fn alter_resource(
        &self,
        resource: &ConfigResource,
        validate_only: bool,
        compute: impl Fn(&BTreeMap<String, String>) -> Result<ConfigChange, AlterError>,
    ) -> Result<(), AdminError> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            let image = self.metadata();
            let current = current_configs(&image, resource)?;
            let change = compute(&current)?;
            match self
                .commit_change(&image, resource, current.clone(), change, validate_only)
                .await
            {
                Err(AdminError::ConfigsChanged) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let moved = self
                        .wait_applied(left, |img| {
                            current_configs(img, resource).map_or(true, |now| now != current)
                        })
                        .await;
                    if !moved {
                        return Err(AdminError::RequestTimedOut);
                    }
                }
                other => return other,
            }
        }
    }

    async fn commit_change(
        &self,
        image: &MetadataImage,
        resource: &ConfigResource,
        current: BTreeMap<String, String>,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let previous = current.clone();
        let mut wanted = current.clone();
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
                    expected: Some(current),
                }
            }
            ConfigResource::Broker(broker_id) => MetadataCommand::AlterBrokerConfigs {
                broker_id: *broker_id,
                set: change.set.clone(),
                delete: change.delete.clone(),
                expected: Some(current),
            },
            ConfigResource::Group(group_id) => MetadataCommand::AlterGroupConfigs {
                group_id: group_id.clone(),
                set: change.set.clone(),
                delete: change.delete.clone(),
                expected: Some(current),
            },
        };
        if validate_only {
            return Ok(());
        }
        // Committed even when it changes nothing here: it checks, through
        // the compare-and-set, that this node's image was not stale.
        self.commit(command).await?;
        // Applied here once the configs are ours, or moved past the ones we
        // changed (a later change through another node).
        self.wait_applied(APPLY_TIMEOUT, |img| {
            current_configs(img, resource).is_ok_and(|now| now == wanted || now != previous)
        })
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
        ConfigResource::Group(group_id) => Ok(image
            .group_configs
            .get(group_id)
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
