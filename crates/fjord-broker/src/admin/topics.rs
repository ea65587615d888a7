//! Topic administration: CreateTopics (placed by the controller's placement
//! rules), DeleteTopics, CreatePartitions, auto-creation and the topic side
//! of DescribeConfigs.

use std::collections::BTreeMap;

use fjord_controller::{MetadataCommand, MetadataError, MetadataResponse, assign_replicas};
use fjord_log::LogConfig;
use fjord_types::TopicId;

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;
use crate::metadata_applier::topic_log_config;
use crate::stored_topic_configs::{STORED_CONFIGS, stored_config};
use crate::types::{ConfigEntry, ConfigSource, CreateTopicResult, CreatedTopic, NewTopic};

/// Topic configs the broker itself reads (the log crate knows the rest).
const BROKER_TOPIC_CONFIGS: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

fn map_metadata_error(err: MetadataError) -> AdminError {
    match err {
        MetadataError::TopicAlreadyExists { .. } | MetadataError::TopicIdAlreadyExists { .. } => {
            AdminError::TopicAlreadyExists
        }
        MetadataError::UnknownTopicId { .. } => AdminError::UnknownTopicId,
        MetadataError::InvalidTopicName { .. } => AdminError::InvalidTopicName,
        MetadataError::InvalidPartitions { reason } => AdminError::InvalidPartitions {
            reason: reason.to_string(),
        },
        MetadataError::ConflictingConfigChange { key } => AdminError::InvalidConfig {
            reason: format!("{key} is both set and deleted"),
        },
        other => AdminError::InvalidReplicaAssignment {
            reason: other.to_string(),
        },
    }
}

impl AdminService {
    fn validate_configs(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, AdminError> {
        for (name, value) in configs {
            if LogConfig::is_known(name) || BROKER_TOPIC_CONFIGS.contains(&name.as_str()) {
                continue;
            }
            let Some(stored) = stored_config(name) else {
                return Err(AdminError::InvalidConfig {
                    reason: format!("unknown topic config {name}"),
                });
            };
            stored
                .validate(value)
                .map_err(|reason| AdminError::InvalidConfig { reason })?;
        }
        if let Some(v) = configs.get("min.insync.replicas")
            && v.parse::<u16>().map_or(true, |n| n == 0)
        {
            return Err(AdminError::InvalidConfig {
                reason: format!("min.insync.replicas must be a positive integer, not {v}"),
            });
        }
        self.config
            .log_defaults
            .with_overrides(configs)
            .map_err(|e| AdminError::InvalidConfig {
                reason: e.to_string(),
            })
    }

    /// CreateTopics. With `validate_only`, check and place but commit nothing.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<CreateTopicResult> {
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let name = topic.name.clone();
            results.push((name, self.create_topic(topic, validate_only).await));
        }
        results
    }

    async fn create_topic(
        &self,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<CreatedTopic, AdminError> {
        let image = self.metadata();
        if image.topic_ids.contains_key(&topic.name) {
            return Err(AdminError::TopicAlreadyExists);
        }
        self.validate_configs(&topic.configs)?;
        let assignments = if topic.assignments.is_empty() {
            let partitions = match topic.num_partitions {
                -1 => self.config.num_partitions,
                n if n > 0 => n,
                n => {
                    return Err(AdminError::InvalidPartitions {
                        reason: format!("{n} partitions"),
                    });
                }
            };
            let rf = match topic.replication_factor {
                -1 => self.config.default_replication_factor,
                n if n > 0 => n,
                n => {
                    return Err(AdminError::InvalidReplicationFactor {
                        reason: format!("replication factor {n}"),
                    });
                }
            };
            assign_replicas(&image, partitions, rf, 0).map_err(|e| {
                AdminError::InvalidReplicationFactor {
                    reason: e.to_string(),
                }
            })?
        } else {
            topic.assignments.clone()
        };
        let topic_id = TopicId::random();
        let created = CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments.first().map_or(0, |r| r.len() as i16),
            configs: Vec::new(),
        };
        if validate_only {
            return Ok(created);
        }
        self.commit(MetadataCommand::CreateTopic {
            topic_id,
            name: topic.name.clone(),
            partitions: assignments,
            configs: topic.configs,
        })
        .await?;
        let name = topic.name;
        self.wait_applied(APPLY_TIMEOUT, |img| {
            img.topic_ids.get(&name) == Some(&topic_id)
        })
        .await
        .then_some(())
        .ok_or(AdminError::RequestTimedOut)?;
        let configs = self.describe_topic_configs(&name)?;
        Ok(CreatedTopic { configs, ..created })
    }

    /// Propose a command; the state machine's verdict becomes an AdminError.
    async fn commit(&self, command: MetadataCommand) -> Result<(), AdminError> {
        match self.controller.write(command).await {
            Ok(MetadataResponse::Error(err)) => Err(map_metadata_error(err)),
            Ok(_) => Ok(()),
            Err(err) => Err(AdminError::from_controller(err)),
        }
    }

    /// Auto-create topics named in Metadata or Produce, as Kafka does with
    /// `auto.create.topics.enable`. Returns whether each now exists.
    pub async fn auto_create_topic(&self, name: &str) -> Result<(), AdminError> {
        if !self.config.auto_create_topics_enable {
            return Err(AdminError::UnknownTopicOrPartition);
        }
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        };
        match self.create_topic(new, false).await {
            Ok(_) | Err(AdminError::TopicAlreadyExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// DeleteTopics by name.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicId, AdminError> {
        let image = self.metadata();
        let topic_id = *image
            .topic_ids
            .get(name)
            .ok_or(AdminError::UnknownTopicOrPartition)?;
        self.delete_topic_id(topic_id).await?;
        Ok(topic_id)
    }

    /// DeleteTopics by id (v6+).
    pub async fn delete_topic_id(&self, topic_id: TopicId) -> Result<String, AdminError> {
        let image = self.metadata();
        let name = image
            .topics
            .get(&topic_id)
            .map(|t| t.name.clone())
            .ok_or(AdminError::UnknownTopicId)?;
        self.commit(MetadataCommand::DeleteTopic { topic_id })
            .await?;
        self.wait_applied(APPLY_TIMEOUT, |img| !img.topics.contains_key(&topic_id))
            .await
            .then_some(name)
            .ok_or(AdminError::RequestTimedOut)
    }

    /// CreatePartitions: grow `name` to `total` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Vec<Vec<fjord_types::BrokerId>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.metadata();
        let topic_id = *image
            .topic_ids
            .get(name)
            .ok_or(AdminError::UnknownTopicOrPartition)?;
        let topic = &image.topics[&topic_id];
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(AdminError::InvalidPartitions {
                reason: format!("topic has {current} partitions, cannot go to {total}"),
            });
        }
        let rf = topic
            .partitions
            .first()
            .map_or(1, |p| p.replication_factor() as i16);
        let new_partitions = if assignments.is_empty() {
            assign_replicas(&image, total - current, rf, current).map_err(|e| {
                AdminError::InvalidReplicationFactor {
                    reason: e.to_string(),
                }
            })?
        } else if assignments.len() as i32 != total - current {
            return Err(AdminError::InvalidReplicaAssignment {
                reason: format!(
                    "{} assignments for {} new partitions",
                    assignments.len(),
                    total - current
                ),
            });
        } else {
            assignments
        };
        if validate_only {
            return Ok(());
        }
        self.commit(MetadataCommand::CreatePartitions {
            topic_id,
            new_partitions,
        })
        .await?;
        self.wait_applied(APPLY_TIMEOUT, |img| {
            img.topics
                .get(&topic_id)
                .is_some_and(|t| t.partitions.len() as i32 >= total)
        })
        .await
        .then_some(())
        .ok_or(AdminError::RequestTimedOut)
    }

    /// DescribeConfigs for a topic: every config with its value and source.
    pub fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>, AdminError> {
        let image = self.metadata();
        let topic = image
            .topic_ids
            .get(name)
            .and_then(|id| image.topics.get(id))
            .ok_or(AdminError::UnknownTopicOrPartition)?;
        let effective = topic_log_config(&self.config, topic);
        let builtin = LogConfig::default();
        let builtin_entries: BTreeMap<_, _> = builtin.entries().into_iter().collect();
        let broker_entries: BTreeMap<_, _> =
            self.config.log_defaults.entries().into_iter().collect();
        let mut entries: Vec<ConfigEntry> = effective
            .entries()
            .into_iter()
            .map(|(name, value)| {
                let source = if topic.configs.contains_key(name) {
                    ConfigSource::DynamicTopic
                } else if broker_entries.get(name) != builtin_entries.get(name) {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                };
                ConfigEntry {
                    name: name.to_string(),
                    value,
                    source,
                    read_only: false,
                }
            })
            .collect();
        let min_isr = topic.configs.get("min.insync.replicas");
        entries.push(ConfigEntry {
            name: "min.insync.replicas".into(),
            value: min_isr
                .cloned()
                .unwrap_or_else(|| self.config.min_insync_replicas.to_string()),
            source: if min_isr.is_some() {
                ConfigSource::DynamicTopic
            } else {
                ConfigSource::Default
            },
            read_only: false,
        });
        entries.extend(STORED_CONFIGS.iter().map(|c| {
            let set = topic.configs.get(c.name);
            ConfigEntry {
                name: c.name.to_string(),
                value: set.map_or_else(|| c.default.to_string(), Clone::clone),
                source: if set.is_some() {
                    ConfigSource::DynamicTopic
                } else {
                    ConfigSource::Default
                },
                read_only: false,
            }
        }));
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}
