//! Kafka's ElectLeaders for admin clients (`kafka-leader-election`): preferred
//! or unclean elections, committed through the controller, answered once this
//! broker has applied the result.

use std::collections::BTreeMap;

use fjord_controller::{ElectionError, ElectionType, MetadataCommand, MetadataResponse};
use fjord_types::{BrokerId, TopicPartition};

use super::AdminService;
use crate::error::AdminError;

/// One partition's outcome: its leader now, or why no election happened.
pub type ElectionOutcome = (TopicPartition, Result<BrokerId, ElectionError>);

impl AdminService {
    /// Elect leaders for `partitions` (`None`: every partition; only the
    /// partitions that got a new leader are reported then, as Kafka does).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<Vec<ElectionOutcome>, AdminError> {
        let image = self.metadata();
        let mut outcomes = Vec::new();
        let mut names = BTreeMap::new();
        let ids = partitions.map(|partitions| {
            let mut ids = Vec::with_capacity(partitions.len());
            for tp in partitions {
                match image.topic_ids.get(&tp.topic) {
                    Some(&id) => {
                        names.insert(id, tp.topic.clone());
                        ids.push((id, tp.partition));
                    }
                    None => outcomes.push((tp, Err(ElectionError::UnknownTopicOrPartition))),
                }
            }
            ids
        });
        if ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(outcomes);
        }
        let response = self
            .controller
            .write(MetadataCommand::ElectLeaders {
                election,
                partitions: ids,
            })
            .await
            .map_err(AdminError::from_controller)?;
        let results = match response {
            MetadataResponse::LeadersElected { results } => results,
            other => {
                return Err(AdminError::UnexpectedControllerResponse {
                    response: format!("{other:?}"),
                });
            }
        };
        // Answer once the new leaders are applied here, so a Metadata request that
        // follows sees them (the write may have been forwarded: this node's image
        // catches up a little later).
        let elected: Vec<(fjord_types::TopicId, i32, BrokerId)> = results
            .iter()
            .filter_map(|r| {
                r.outcome
                    .as_ref()
                    .ok()
                    .map(|&l| (r.topic_id, r.partition, l))
            })
            .collect();
        self.wait_applied(super::APPLY_TIMEOUT, |img| {
            elected.iter().all(|&(topic_id, partition, leader)| {
                img.topics
                    .get(&topic_id)
                    .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                    .is_some_and(|p| p.leader == leader)
            })
        })
        .await;
        for r in results {
            let topic = names.get(&r.topic_id).cloned().or_else(|| {
                self.metadata()
                    .topics
                    .get(&r.topic_id)
                    .map(|t| t.name.clone())
            });
            if let Some(topic) = topic {
                outcomes.push((TopicPartition::new(topic, r.partition), r.outcome));
            }
        }
        Ok(outcomes)
    }
}
