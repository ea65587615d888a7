//! Shared identifiers used by every Fjord crate.
//!
//! This crate holds names, not logic: Kafka's ids as Rust types, so that
//! the log, the controller, the broker and the gateway agree on them
//! without depending on each other.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A node id (`node.id`): the same number names a broker and a controller voter.
pub type BrokerId = i32;

/// A position in a partition log.
pub type Offset = i64;

/// The epoch of a partition's leadership; bumped on every leader change.
pub type LeaderEpoch = i32;

/// Bumped on every change of a partition's registration (leader, ISR, replicas).
pub type PartitionEpoch = i32;

/// Kafka's "no broker" marker (leader = -1 when a partition is offline).
pub const NO_BROKER: BrokerId = -1;

/// A topic's stable id (KIP-516): survives nothing but the topic itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicId(pub Uuid);

impl TopicId {
    pub fn random() -> Self {
        TopicId(Uuid::new_v4())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition named the way Kafka clients name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
