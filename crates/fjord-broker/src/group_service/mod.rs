//! The broker's side of the group coordinator (`fjord-coordinator`): it
//! owns the coordinator's runtime, supplies `__consumer_offsets` to it
//! (`writer`: Kafka's `CoordinatorPartitionWriter`), tells it which of those
//! partitions this broker became leader or follower of (from its local
//! replica changes), and offers the group APIs as a service
//! ([`GroupCoordinatorAdapter`]), which checks the group id and creates
//! `__consumer_offsets` (compacted) on first use, then delegates.
//!
//! - The coordinator of a group is the leader of `__consumer_offsets`
//!   partition `abs(java_hash(group)) % partitions` (Kafka's rule, so Kafka
//!   tooling agrees on it).
//! - Shard loads follow leadership: the broker subscribes to its local
//!   replica changes, scans once which partitions it leads, then forwards
//!   each leadership move of a `__consumer_offsets` partition as a
//!   `LeadershipChange` (became leader → elected, became follower or
//!   deleted → resigned); when it lagged behind the changes, it scans again.

pub(crate) mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_controller::MetadataImage;
use fjord_coordinator::group::{
    GroupDescription, GroupError, GroupListing, GroupState, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResult, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, PartitionResults, SyncGroupRequest, SyncGroupResult,
    TxnOffsetCommitRequest,
};
use fjord_coordinator::runtime::{CoordinatorRuntime, CoordinatorShard, LeadershipChange};
use fjord_coordinator::txn::TransactionResult;
use fjord_coordinator::{CONSUMER_OFFSETS, GroupOffset, GroupService, GroupServiceConfig};
use fjord_types::{BrokerId, TopicPartition};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminService;
use crate::broker::Broker;
use crate::internal_topics::{ensure_internal_topic, partition_leader};
use crate::metadata_applier::LocalReplicaChange;
use crate::metadata_cache::MetadataCache;
use crate::replica_manager::ReplicaManager;
use crate::types::NewTopic;
use writer::CoordinatorPartitionWriter;

/// How long a group call waits for its `__consumer_offsets` partition to
/// finish loading before it is answered COORDINATOR_LOAD_IN_PROGRESS. Kafka
/// answers at once; but a load right after a leadership move or the topic's
/// creation usually takes milliseconds, and some clients do not retry that
/// error (sarama's admin AlterConsumerGroupOffsets failed on it right after
/// `__consumer_offsets` was created). Long loads still get the error.
const LOAD_WAIT: Duration = Duration::from_secs(2);

/// The group APIs as the gateway calls them (Kafka's
/// `GroupCoordinatorAdapter`): the coordinator runtime over this broker's
/// replicas, plus what its calls need around it (the metadata cache to find
/// coordinators, the admin service to create `__consumer_offsets`).
pub struct GroupCoordinatorAdapter {
    runtime: GroupService,
    admin: Arc<AdminService>,
    metadata: MetadataCache,
}

impl GroupCoordinatorAdapter {
    /// The runtime's loads run on the broker's tasks and stop with them.
    pub(crate) fn new(
        config: GroupServiceConfig,
        replicas: Arc<ReplicaManager>,
        tasks: TaskTracker,
        cancel: CancellationToken,
        admin: Arc<AdminService>,
        metadata: MetadataCache,
    ) -> Self {
        let writer = Arc::new(CoordinatorPartitionWriter { replicas });
        GroupCoordinatorAdapter {
            runtime: GroupService::new(config, writer, tasks, cancel),
            admin,
            metadata,
        }
    }

    fn groups(&self) -> &GroupService {
        &self.runtime
    }

    fn metadata(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    /// Create `__consumer_offsets` if it does not exist yet, with
    /// `offsets.topic.replication.factor` replicas. While fewer brokers are
    /// unfenced, nothing is created and the caller gets COORDINATOR_NOT_AVAILABLE
    /// (retriable), as Kafka: the topic is never created with a lower factor.
    async fn ensure_offsets_topic(&self) -> Result<(), GroupError> {
        let config = self.groups().config();
        let topic = NewTopic {
            name: CONSUMER_OFFSETS.to_string(),
            num_partitions: config.offsets_topic_num_partitions,
            replication_factor: config.offsets_topic_replication_factor,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    config.offsets_topic_segment_bytes.to_string(),
                ),
            ]),
        };
        ensure_internal_topic(&self.admin, &self.metadata(), topic)
            .await
            .map_err(|err| {
                tracing::debug!(%err, "{CONSUMER_OFFSETS} not available");
                GroupError::CoordinatorNotAvailable
            })
    }

    /// FindCoordinator for a group: the leader of its `__consumer_offsets` partition.
    pub async fn find_group_coordinator(&self, group_id: &str) -> Result<BrokerId, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        let tp = self.groups().offsets_partition(group_id);
        partition_leader(&self.metadata(), CONSUMER_OFFSETS, tp.partition)
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// The checks before any group call: a group id, and the topic. Then a
    /// short wait if the group's partition is loading (see [`LOAD_WAIT`]).
    async fn group_call(&self, group_id: &str) -> Result<&GroupService, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        self.groups().wait_loaded(Some(group_id), LOAD_WAIT).await;
        Ok(self.groups())
    }

    pub async fn join_group(&self, req: JoinGroupRequest) -> Result<JoinGroupResult, GroupError> {
        self.group_call(&req.group_id).await?.join_group(req).await
    }

    pub async fn sync_group(&self, req: SyncGroupRequest) -> Result<SyncGroupResult, GroupError> {
        self.group_call(&req.group_id).await?.sync_group(req).await
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), GroupError> {
        self.group_call(&req.group_id).await?.heartbeat(req).await
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest) -> LeaveGroupResponse {
        self.group_call(&req.group_id).await?.leave_group(req).await
    }

    pub async fn offset_commit(&self, req: OffsetCommitRequest) -> PartitionResults {
        match self.group_call(&req.group_id).await {
            Ok(groups) => groups.offset_commit(req).await,
            Err(err) => req
                .partitions
                .iter()
                .map(|p| (p.tp.clone(), Err(err.clone())))
                .collect(),
        }
    }

    /// TxnOffsetCommit: the offsets stay pending until the producer's
    /// transaction ends (its marker in the group's partition).
    pub async fn txn_offset_commit(&self, req: TxnOffsetCommitRequest) -> PartitionResults {
        match self.group_call(&req.group_id).await {
            Ok(groups) => groups.txn_offset_commit(req).await,
            Err(err) => req
                .partitions
                .iter()
                .map(|p| (p.tp.clone(), Err(err.clone())))
                .collect(),
        }
    }

    /// A transaction marker is committed in `__consumer_offsets`
    /// partition `partition`: settle the producer's pending offsets there.
    pub(crate) async fn complete_txn(
        &self,
        partition: i32,
        producer_id: i64,
        result: TransactionResult,
    ) {
        self.runtime
            .complete_txn(partition, producer_id, result)
            .await;
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest) -> OffsetFetchResponse {
        self.group_call(&req.group_id)
            .await?
            .offset_fetch(req)
            .await
    }

    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<PartitionResults, GroupError> {
        self.group_call(group_id)
            .await?
            .offset_delete(group_id, partitions)
            .await
    }

    pub async fn delete_groups(
        &self,
        group_ids: Vec<String>,
    ) -> Vec<(String, Result<(), GroupError>)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = match self.group_call(&group_id).await {
                Ok(groups) => groups.delete_group(&group_id).await,
                Err(err) => Err(err),
            };
            results.push((group_id, result));
        }
        results
    }

    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        self.group_call(group_id)
            .await?
            .describe_group(group_id)
            .await
    }

    /// ListGroups: the groups this broker coordinates, i.e. those whose
    /// `__consumer_offsets` partition it leads (Kafka's rule; clients ask
    /// every broker and merge).
    pub async fn list_groups(
        &self,
        states: &[GroupState],
    ) -> Result<Vec<GroupListing>, GroupError> {
        // No topic means no groups yet; ListGroups does not create it.
        if !self.metadata().topic_ids.contains_key(CONSUMER_OFFSETS) {
            return Ok(Vec::new());
        }
        self.groups().wait_loaded(None, LOAD_WAIT).await;
        self.groups().list_groups(states).await
    }

    /// The committed offsets of the groups this broker coordinates now (the
    /// leader of their `__consumer_offsets` partition), for lag metrics.
    pub async fn coordinated_offsets(&self) -> Vec<GroupOffset> {
        self.groups().coordinated_offsets().await
    }
}

impl Broker {
    /// The group coordinator's background work: its timers, and its shard
    /// loads following this broker's leadership of `__consumer_offsets`.
    pub(crate) fn spawn_group_coordinator(&self) {
        self.spawn_coordinator_runtime(self.groups.groups().runtime().clone());
    }

    /// A coordinator runtime's background work: its timers, and its shard
    /// loads following this broker's leadership of the partitions of its
    /// topic (`S::TOPIC`).
    pub(crate) fn spawn_coordinator_runtime<S: CoordinatorShard>(
        &self,
        runtime: CoordinatorRuntime<S>,
    ) {
        // Subscribed before the scan, so no change after it is missed.
        let mut changes = self.subscribe_local_changes();
        runtime.rescan();
        let (timer, cancel) = (runtime.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = timer.run_timer() => {}
            }
        });
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = cancel.cancelled() => return,
                    received = changes.recv() => received,
                };
                match received {
                    Ok(changes) => {
                        for change in changes
                            .iter()
                            .filter_map(|c| leadership_change(c, S::TOPIC))
                        {
                            runtime.on_leadership_change(change);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(
                            missed,
                            "{} missed local replica changes; rescanning",
                            S::NAME
                        );
                        runtime.rescan();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}

/// What a local replica change means to a coordinator over `topic`: only
/// leadership moves of that topic's partitions concern it (not other
/// topics, nor registration updates at the same leader epoch).
fn leadership_change(change: &LocalReplicaChange, topic: &str) -> Option<LeadershipChange> {
    match change {
        LocalReplicaChange::BecameLeader {
            tp, leader_epoch, ..
        } if tp.topic == topic => Some(LeadershipChange::Elected {
            partition: tp.partition,
            leader_epoch: *leader_epoch,
        }),
        LocalReplicaChange::BecameFollower {
            tp, leader_epoch, ..
        } if tp.topic == topic => Some(LeadershipChange::Resigned {
            partition: tp.partition,
            leader_epoch: Some(*leader_epoch),
        }),
        LocalReplicaChange::Deleted { tp, .. } if tp.topic == topic => {
            Some(LeadershipChange::Resigned {
                partition: tp.partition,
                leader_epoch: None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::{NO_BROKER, TopicId};

    use super::*;

    #[test]
    fn only_leadership_moves_of_the_offsets_topic_reach_the_coordinator() {
        let offsets = TopicPartition::new(CONSUMER_OFFSETS, 7);
        let other = TopicPartition::new("orders", 7);
        let topic_id = TopicId::random();
        let table = [
            (
                LocalReplicaChange::BecameLeader {
                    tp: offsets.clone(),
                    topic_id,
                    leader_epoch: 4,
                },
                Some(LeadershipChange::Elected {
                    partition: 7,
                    leader_epoch: 4,
                }),
            ),
            (
                LocalReplicaChange::BecameFollower {
                    tp: offsets.clone(),
                    topic_id,
                    leader: NO_BROKER,
                    leader_epoch: 5,
                },
                Some(LeadershipChange::Resigned {
                    partition: 7,
                    leader_epoch: Some(5),
                }),
            ),
            (
                LocalReplicaChange::Deleted {
                    tp: offsets.clone(),
                    topic_id,
                },
                Some(LeadershipChange::Resigned {
                    partition: 7,
                    leader_epoch: None,
                }),
            ),
            (
                LocalReplicaChange::Updated {
                    tp: offsets,
                    topic_id,
                    partition_epoch: 9,
                },
                None,
            ),
            (
                LocalReplicaChange::BecameLeader {
                    tp: other,
                    topic_id,
                    leader_epoch: 4,
                },
                None,
            ),
        ];
        for (change, expected) in table {
            assert_eq!(
                leadership_change(&change, CONSUMER_OFFSETS),
                expected,
                "{change:?}"
            );
        }
    }
}
