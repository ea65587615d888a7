//! The commands the controller's Raft log carries, and what applying one returns.
//!
//! A [`MetadataCommand`] is a request that has been *proposed*; whether it changes the
//! image is decided only when it is applied, in log order, by
//! [`MetadataImage::apply`](crate::MetadataImage::apply). Validation therefore lives in
//! apply (deterministically, from the image alone), not at proposal time: two commands
//! proposed concurrently can both look valid against an old image, and only the first in
//! the log may win.

use std::collections::BTreeMap;
use std::fmt;

use fjord_types::BrokerId;
use fjord_types::TopicId;
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::image::Listener;

/// One entry of the metadata log (the `D` of the Raft type config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Set the cluster id. Accepted once; repeating the same id is a no-op.
    InitCluster { cluster_id: String },
    /// Register (or re-register) a broker. A new `incarnation_id` means the broker
    /// process restarted and gets a new broker epoch.
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
    },
    /// Create a topic. `partitions[p]` is the replica list of partition `p`; its first
    /// replica becomes the leader.
    CreateTopic {
        topic_id: TopicId,
        name: String,
        partitions: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    },
    /// Delete a topic and all its partitions.
    DeleteTopic { topic_id: TopicId },
    /// Append partitions to a topic; `new_partitions[i]` is the replica list of
    /// partition `current_count + i`.
    CreatePartitions {
        topic_id: TopicId,
        new_partitions: Vec<Vec<BrokerId>>,
    },
    /// Set and delete topic configs (incremental, Kafka's IncrementalAlterConfigs shape).
    AlterTopicConfigs {
        topic_id: TopicId,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Hand a broker the next block of `count` producer ids (Kafka's
    /// AllocateProducerIds), so ids stay unique across brokers and restarts.
    AllocateProducerIds { broker_id: BrokerId, count: i32 },
}

impl fmt::Display for MetadataCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataCommand::InitCluster { cluster_id } => write!(f, "InitCluster({cluster_id})"),
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation_id,
                ..
            } => write!(
                f,
                "RegisterBroker({broker_id}, incarnation {incarnation_id})"
            ),
            MetadataCommand::CreateTopic {
                topic_id,
                name,
                partitions,
                ..
            } => write!(
                f,
                "CreateTopic({name}, {topic_id}, {} partitions)",
                partitions.len()
            ),
            MetadataCommand::DeleteTopic { topic_id } => write!(f, "DeleteTopic({topic_id})"),
            MetadataCommand::CreatePartitions {
                topic_id,
                new_partitions,
            } => write!(f, "CreatePartitions({topic_id}, +{})", new_partitions.len()),
            MetadataCommand::AlterTopicConfigs {
                topic_id,
                set,
                delete,
            } => write!(
                f,
                "AlterTopicConfigs({topic_id}, set {}, delete {})",
                set.len(),
                delete.len()
            ),
            MetadataCommand::AllocateProducerIds { broker_id, count } => {
                write!(f, "AllocateProducerIds({broker_id}, {count})")
            }
        }
    }
}

/// The result of applying one log entry (the `R` of the Raft type config).
///
/// A rejected command is still a committed log entry: it advances
/// `metadata_offset` and returns [`MetadataResponse::Error`] without changing anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataResponse {
    /// A Raft-internal entry (blank entry of a new leader, membership change).
    Noop,
    ClusterInitialized {
        cluster_id: String,
    },
    BrokerRegistered {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    TopicCreated {
        topic_id: TopicId,
    },
    TopicDeleted {
        topic_id: TopicId,
        name: String,
    },
    PartitionsCreated {
        topic_id: TopicId,
        partition_count: i32,
    },
    TopicConfigsAltered {
        topic_id: TopicId,
    },
    /// Producer ids `first_producer_id .. first_producer_id + count` now belong to the broker.
    ProducerIdsAllocated {
        first_producer_id: i64,
        count: i32,
    },
    /// The command was committed but rejected by validation; the image is unchanged
    /// except for `metadata_offset`.
    Error(MetadataError),
}

impl MetadataResponse {
    /// `Err` for [`MetadataResponse::Error`], `Ok(self)` otherwise.
    pub fn into_result(self) -> Result<MetadataResponse, MetadataError> {
        match self {
            MetadataResponse::Error(e) => Err(e),
            other => Ok(other),
        }
    }
}

/// Why a committed command was rejected. These are deterministic functions of the image
/// and the command, so every replica rejects the same commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetadataError {
    #[error("cluster id is already {existing:?}, refusing {requested:?}")]
    ClusterAlreadyInitialized { existing: String, requested: String },
    #[error("invalid cluster id {cluster_id:?}: must be non-empty")]
    InvalidClusterId { cluster_id: String },
    #[error("invalid broker registration for broker {broker_id}: {reason}")]
    InvalidBrokerRegistration {
        broker_id: BrokerId,
        reason: RegistrationError,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        name: String,
        reason: TopicNameError,
    },
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists { name: String },
    #[error("topic id {topic_id} is already in use")]
    TopicIdAlreadyExists { topic_id: TopicId },
    #[error("unknown topic id {topic_id}")]
    UnknownTopicId { topic_id: TopicId },
    #[error("invalid partitions: {reason}")]
    InvalidPartitions { reason: PartitionsError },
    #[error("invalid replica assignment for partition {partition}: {reason}")]
    InvalidReplicaAssignment {
        partition: i32,
        reason: ReplicaAssignmentError,
    },
    #[error("config {key:?} is both set and deleted in one request")]
    ConflictingConfigChange { key: String },
    #[error(
        "producer id block of {count} ids requested by broker {broker_id}: must be positive, from a registered broker"
    )]
    InvalidProducerIdBlock { broker_id: BrokerId, count: i32 },
}

/// Why a broker registration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistrationError {
    #[error("broker id must be >= 0")]
    NegativeBrokerId,
    #[error("a broker needs at least one listener")]
    NoListeners,
    #[error("listener {name:?} is listed twice")]
    DuplicateListener { name: String },
    #[error("listener {name:?} has port 0")]
    ZeroPort { name: String },
}

/// Kafka's topic name rules (`org.apache.kafka.common.internals.Topic`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TopicNameError {
    #[error("empty")]
    Empty,
    #[error("\".\" and \"..\" are not allowed")]
    DotOrDotDot,
    #[error("{len} characters, the maximum is 249")]
    TooLong { len: usize },
    #[error("illegal character {ch:?}: only [a-zA-Z0-9._-] are allowed")]
    IllegalCharacter { ch: char },
    #[error("collides with existing topic {existing:?} ('.' and '_' collide in metric names)")]
    Collides { existing: String },
}

/// Why a partition count change was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PartitionsError {
    #[error("a topic needs at least one partition")]
    NoPartitions,
    #[error("the partition count can only grow; no new partitions given (current count {current})")]
    MustGrow { current: i32 },
    #[error("partition count {requested} exceeds i32")]
    TooMany { requested: usize },
}

/// Why one partition's replica list was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplicaAssignmentError {
    #[error("empty replica list")]
    Empty,
    #[error("broker {broker_id} is listed twice")]
    DuplicateReplica { broker_id: BrokerId },
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: BrokerId },
    #[error("{actual} replicas, but the topic's other partitions have {expected}")]
    InconsistentReplicationFactor { expected: usize, actual: usize },
}
