//! Topic administration: CreateTopics (placed by the controller's placement
//! rules), DeleteTopics, CreatePartitions and auto-creation.

use std::collections::BTreeMap;

use fjord_controller::{MetadataCommand, MetadataError, MetadataResponse, assign_replicas};
use fjord_log::LogConfig;
use fjord_types::TopicId;

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;
use crate::types::{CreateTopicResult, CreatedTopic, NewTopic};

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
        MetadataError::ConfigsChanged => AdminError::ConfigsChanged,
        other => AdminError::InvalidReplicaAssignment {
            reason: other.to_string(),
        },
    }
}

impl AdminService {
    /// Every name a topic config of the registry, every value valid for it,
    /// and the configs the log applies parsed by the log itself.
    pub(super) fn validate_configs(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, AdminError> {
        for (name, value) in configs {
            let def =
                fjord_config::topic_config(name).ok_or_else(|| AdminError::InvalidConfig {
                    reason: fjord_config::ConfigError::UnknownTopicConfig { name: name.clone() }
                        .to_string(),
                })?;
            def.validate(value).map_err(|e| AdminError::InvalidConfig {
                reason: e.to_string(),
            })?;
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
        let config = self.config.with_dynamic(&image.broker_configs);
        self.validate_configs(&topic.configs)?;
        let assignments = if topic.assignments.is_empty() {
            let partitions = match topic.num_partitions {
                -1 => config.num_partitions,
                n if n > 0 => n,
                n => {
                    return Err(AdminError::InvalidPartitions {
                        reason: format!("{n} partitions"),
                    });
                }
            };
            let rf = match topic.replication_factor {
                -1 => config.default_replication_factor,
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
    pub(super) async fn commit(&self, command: MetadataCommand) -> Result<(), AdminError> {
        match self.controller.write(command).await {
            Ok(MetadataResponse::Error(err)) => Err(map_metadata_error(err)),
            Ok(_) => Ok(()),
            Err(err) => Err(AdminError::from_controller(err)),
        }
    }

    /// Auto-create topics named in Metadata or Produce, as Kafka does with
    /// `auto.create.topics.enable`. Returns whether each now exists.
    pub async fn auto_create_topic(&self, name: &str) -> Result<(), AdminError> {
        if !self.auto_create_topics_enable() {
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
}
