//! Kafka's AlterPartitionReassignments and ListPartitionReassignments
//! (KIP-455, `kafka-reassign-partitions.sh`): reassignments are committed
//! through the controller, which finishes each one when the ISR holds every
//! target replica. The metadata applier does the data movement: a broker
//! added to `replicas` opens the log and starts fetching; one dropped from
//! it deletes its copy.

use std::collections::BTreeMap;

use fjord_controller::{MetadataCommand, MetadataImage, MetadataResponse, ReassignmentError};
use fjord_types::{BrokerId, TopicPartition};

use super::AdminService;
use crate::error::AdminError;

/// One partition's outcome: accepted, or why not.
pub type ReassignmentOutcome = (TopicPartition, Result<(), ReassignmentError>);

/// A partition whose reassignment is in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub tp: TopicPartition,
    /// Target and original replicas together.
    pub replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

impl AdminService {
    /// Start (`Some(target)`) or cancel (`None`) the reassignment of each
    /// partition. With `allow_replication_factor_change` false (request v1),
    /// a target of another length than the original replicas is refused.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<(TopicPartition, Option<Vec<BrokerId>>)>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<ReassignmentOutcome>, AdminError> {
        let image = self.metadata();
        let mut outcomes = Vec::new();
        let mut names = BTreeMap::new();
        let mut command = Vec::new();
        for (tp, target) in reassignments {
            let Some(&id) = image.topic_ids.get(&tp.topic) else {
                outcomes.push((tp, Err(ReassignmentError::UnknownTopicOrPartition)));
                continue;
            };
            if !allow_replication_factor_change
                && let Some(target) = &target
                && let Some(current) = original_replication_factor(&image, &tp)
                && current != target.len()
            {
                outcomes.push((
                    tp,
                    Err(ReassignmentError::InvalidReplicationFactor {
                        current,
                        target: target.len(),
                    }),
                ));
                continue;
            }
            names.insert(id, tp.topic.clone());
            command.push((id, tp.partition, target));
        }
        if command.is_empty() {
            return Ok(outcomes);
        }
        let response = self
            .controller
            .write(MetadataCommand::AlterPartitionReassignments {
                reassignments: command,
            })
            .await
            .map_err(AdminError::from_controller)?;
        let results = match response {
            MetadataResponse::PartitionReassignmentsAltered { results } => results,
            other => {
                return Err(AdminError::UnexpectedControllerResponse {
                    response: format!("{other:?}"),
                });
            }
        };
        let mut accepted = Vec::new();
        for r in results {
            if let Ok(partition_epoch) = r.outcome {
                accepted.push((r.topic_id, r.partition, partition_epoch));
            }
            if let Some(topic) = names.get(&r.topic_id) {
                outcomes.push((
                    TopicPartition::new(topic.clone(), r.partition),
                    r.outcome.map(|_| ()),
                ));
            }
        }
        // Answer once the new replica lists are applied here, so a
        // ListPartitionReassignments or Metadata request that follows sees
        // them. The write may have been forwarded to another controller, so
        // wait for the partition epochs it reported, not a local offset.
        self.wait_applied(super::APPLY_TIMEOUT, |img| {
            accepted.iter().all(|&(topic_id, partition, epoch)| {
                img.topics
                    .get(&topic_id)
                    .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                    .is_none_or(|p| p.partition_epoch >= epoch)
            })
        })
        .await;
        Ok(outcomes)
    }

    /// The reassignments in progress: of every partition (`None`), or of
    /// the ones named (unknown ones and ones not being moved are left out,
    /// as Kafka does).
    pub fn list_partition_reassignments(
        &self,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Vec<OngoingReassignment> {
        let image = self.metadata();
        let ongoing = |tp: TopicPartition| {
            let p = image
                .topic_by_name(&tp.topic)?
                .partitions
                .get(usize::try_from(tp.partition).ok()?)?;
            p.is_reassigning().then(|| OngoingReassignment {
                replicas: p.replicas.clone(),
                adding_replicas: p.adding_replicas.clone(),
                removing_replicas: p.removing_replicas.clone(),
                tp,
            })
        };
        match partitions {
            Some(partitions) => partitions.into_iter().filter_map(ongoing).collect(),
            None => image
                .topics
                .values()
                .flat_map(|t| {
                    (0..t.partitions.len()).map(|p| TopicPartition::new(t.name.clone(), p as i32))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(ongoing)
                .collect(),
        }
    }
}

/// The replication factor a partition had before any reassignment in progress.
fn original_replication_factor(image: &MetadataImage, tp: &TopicPartition) -> Option<usize> {
    let p = image
        .topic_by_name(&tp.topic)?
        .partitions
        .get(usize::try_from(tp.partition).ok()?)?;
    Some(p.replication_factor())
}
