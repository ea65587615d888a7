//! Settings of the group coordinator runtime, with Kafka's names.

use std::time::Duration;

use crate::group::GroupConfig;

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
    /// `offsets.commit.timeout.ms`: how long a write waits for its records
    /// to be replicated (Kafka's group coordinator uses it as the write
    /// timeout of every operation).
    pub offsets_commit_timeout: Duration,
    pub group: GroupConfig,
}

impl Default for GroupServiceConfig {
    fn default() -> Self {
        GroupServiceConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_commit_timeout: Duration::from_secs(5),
            group: GroupConfig::default(),
        }
    }
}
