//! The group coordinator's async shell: a coordinator runtime (Kafka's
//! `coordinator-common` shape) around the socket-free
//! [`GroupCoordinator`](crate::group::GroupCoordinator). It persists what
//! the coordinator decides to `__consumer_offsets`, answers parked
//! JoinGroup/SyncGroup requests, and runs the timers.
//!
//! - The coordinator of a group is the leader of `__consumer_offsets`
//!   partition `abs(java_hash(group)) % partitions` (Kafka's rule, so Kafka
//!   tooling agrees on it). The topic is created (compacted) on first use.
//! - `runtime`: one shard per led partition, each with its own
//!   `GroupCoordinator` and lock. A write runs apply → append (acks=all) →
//!   wait → reply under its shard's lock only, so the log of a partition
//!   holds its records in the order its state changed and a replay rebuilds
//!   the same state; a failed or timed-out append reverts the shard to its
//!   last committed state and answers Kafka's error, never success.
//! - Shards are loaded (the partition replayed up to its log end, as Kafka
//!   does) and unloaded only for partitions whose leadership (or leader
//!   epoch) changed, so a coordinator that moved back never serves state
//!   from before it moved away, and other shards are left alone.
//! - `offsets_log`: the runtime reaches the log only through the
//!   `OffsetsLog` trait (led partitions, read, append), which the broker
//!   implements and tests fake.
//! - `operations`: one method per group API on the runtime; the `Broker`
//!   methods here check the group id and the topic, then delegate.
//!
//! Known limits: loads replay synchronously on the calling task (Kafka
//! loads in the background and answers COORDINATOR_LOAD_IN_PROGRESS); reads
//! (OffsetFetch, DescribeGroups, ListGroups) wait for an append in flight on
//! their shard (Kafka reads the last committed snapshot without waiting).

mod offsets_log;
mod operations;
mod runtime;

use std::collections::BTreeMap;

use fjord_types::{BrokerId, TopicPartition};

use crate::broker::Broker;
use crate::group::{
    GroupConfig, GroupDescription, GroupError, GroupListing, GroupState, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResult, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, PartitionResults, SyncGroupRequest, SyncGroupResult,
};
use crate::types::NewTopic;
pub(crate) use runtime::GroupService;

/// Kafka's internal topic of group metadata and committed offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Settings of the group coordinator (Kafka's names in the docs).
#[derive(Clone, Debug)]
pub struct GroupServiceConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`: the topic is created with exactly this
    /// many replicas, never fewer; until that many brokers are unfenced,
    /// FindCoordinator answers COORDINATOR_NOT_AVAILABLE (Kafka).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    pub group: GroupConfig,
}

impl Default for GroupServiceConfig {
    fn default() -> Self {
        GroupServiceConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            group: GroupConfig::default(),
        }
    }
}

/// One committed offset of a group (see [`Broker::coordinated_offsets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffset {
    pub group_id: String,
    pub tp: TopicPartition,
    pub offset: fjord_types::Offset,
}

/// Java's `String.hashCode` over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding `group_id` (Kafka's `partitionFor`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs: i32::MIN maps to 0 rather than overflowing.
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

impl Broker {
    fn groups(&self) -> &GroupService {
        &self.group_service
    }

    fn offsets_partition(&self, group_id: &str) -> TopicPartition {
        let partitions = self.groups().config.offsets_topic_num_partitions;
        TopicPartition::new(CONSUMER_OFFSETS, partition_for(group_id, partitions))
    }

    /// Create `__consumer_offsets` if it does not exist yet, with
    /// `offsets.topic.replication.factor` replicas. While fewer brokers are
    /// unfenced, nothing is created and the caller gets COORDINATOR_NOT_AVAILABLE
    /// (retriable), as Kafka: the topic is never created with a lower factor.
    async fn ensure_offsets_topic(&self) -> Result<(), GroupError> {
        if self.metadata().topic_ids.contains_key(CONSUMER_OFFSETS) {
            return Ok(());
        }
        let config = &self.groups().config;
        let rf = config.offsets_topic_replication_factor;
        let live_brokers = self
            .metadata()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .count();
        if live_brokers < usize::try_from(rf).unwrap_or(0) {
            tracing::debug!(
                live_brokers,
                offsets_topic_replication_factor = rf,
                "not creating {CONSUMER_OFFSETS}: fewer live brokers than its replication factor"
            );
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let topic = NewTopic {
            name: CONSUMER_OFFSETS.to_string(),
            num_partitions: config.offsets_topic_num_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    config.offsets_topic_segment_bytes.to_string(),
                ),
            ]),
        };
        match self.admin.create_topics(vec![topic], false).await.pop() {
            Some((_, Ok(_))) | Some((_, Err(crate::AdminError::TopicAlreadyExists))) => Ok(()),
            Some((_, Err(err))) => {
                tracing::warn!(%err, "cannot create {CONSUMER_OFFSETS}");
                Err(GroupError::CoordinatorNotAvailable)
            }
            None => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// FindCoordinator for a group: the leader of its `__consumer_offsets` partition.
    pub async fn find_group_coordinator(&self, group_id: &str) -> Result<BrokerId, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        let image = self.metadata();
        let tp = self.offsets_partition(group_id);
        image
            .topic_ids
            .get(CONSUMER_OFFSETS)
            .and_then(|id| image.topics.get(id))
            .and_then(|t| t.partitions.get(tp.partition as usize))
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// The checks before any group call: a group id, and the topic.
    async fn group_call(&self, group_id: &str) -> Result<&GroupService, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        Ok(self.groups())
    }

    pub async fn join_group(&self, req: JoinGroupRequest) -> Result<JoinGroupResult, GroupError> {
        self.group_call(&req.group_id)
            .await?
            .join_group(self, req)
            .await
    }

    pub async fn sync_group(&self, req: SyncGroupRequest) -> Result<SyncGroupResult, GroupError> {
        self.group_call(&req.group_id)
            .await?
            .sync_group(self, req)
            .await
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), GroupError> {
        self.group_call(&req.group_id)
            .await?
            .heartbeat(self, req)
            .await
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest) -> LeaveGroupResponse {
        self.group_call(&req.group_id)
            .await?
            .leave_group(self, req)
            .await
    }

    pub async fn offset_commit(&self, req: OffsetCommitRequest) -> PartitionResults {
        match self.group_call(&req.group_id).await {
            Ok(groups) => groups.offset_commit(self, req).await,
            Err(err) => req
                .partitions
                .iter()
                .map(|p| (p.tp.clone(), Err(err.clone())))
                .collect(),
        }
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest) -> OffsetFetchResponse {
        self.group_call(&req.group_id)
            .await?
            .offset_fetch(self, req)
            .await
    }

    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<PartitionResults, GroupError> {
        self.group_call(group_id)
            .await?
            .offset_delete(self, group_id, partitions)
            .await
    }

    pub async fn delete_groups(
        &self,
        group_ids: Vec<String>,
    ) -> Vec<(String, Result<(), GroupError>)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = match self.group_call(&group_id).await {
                Ok(groups) => groups.delete_group(self, &group_id).await,
                Err(err) => Err(err),
            };
            results.push((group_id, result));
        }
        results
    }

    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        self.group_call(group_id)
            .await?
            .describe_group(self, group_id)
            .await
    }

    /// ListGroups: the groups this broker coordinates, i.e. those whose
    /// `__consumer_offsets` partition it leads (Kafka's rule; clients ask
    /// every broker and merge).
    pub async fn list_groups(&self, states: &[GroupState]) -> Vec<GroupListing> {
        // No topic means no groups yet; ListGroups does not create it.
        if !self.metadata().topic_ids.contains_key(CONSUMER_OFFSETS) {
            return Vec::new();
        }
        self.groups().list_groups(self, states).await
    }

    /// The committed offsets of the groups this broker coordinates now (the
    /// leader of their `__consumer_offsets` partition), for lag metrics.
    pub async fn coordinated_offsets(&self) -> Vec<GroupOffset> {
        self.groups().coordinated_offsets().await
    }

    /// The timers of every loaded shard (session and rebalance timeouts,
    /// offset expiry), and the loading of shards whose leadership came here.
    pub(crate) async fn run_group_timer(&self) {
        self.groups().run_timer(self).await
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod partition_tests {
    use super::*;

    #[test]
    fn partition_for_matches_kafka() {
        // Java's String.hashCode by definition, and values computed with an
        // independent implementation (UTF-16 code units, 32-bit wrap).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(java_string_hash("ünïcode"), -609_351_766);
        assert_eq!(partition_for("ünïcode", 50), 16);
        assert_eq!(partition_for("x", 1), 0);
    }
}
