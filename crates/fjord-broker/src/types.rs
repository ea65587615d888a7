//! Requests and results of the broker's API, in domain terms. The gateway
//! translates Kafka wire messages to and from these.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use fjord_types::{BrokerId, LeaderEpoch, Offset, TopicId, TopicPartition};

use crate::error::{AdminError, PartitionError};

/// Who appends (Kafka's `AppendOrigin`): what the leader checks depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer through Produce.
    Client,
    /// A coordinator writing its own topic (`__consumer_offsets`,
    /// `__transaction_state`): its batches carry no sequence.
    Coordinator,
}

/// How many replicas must have a batch before the producer hears back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: the client expects no response at all.
    None,
    /// acks=1: the leader has appended it.
    Leader,
    /// acks=all (-1): the high watermark has passed it.
    All,
}

impl Acks {
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// The record batches for one partition in a produce request.
#[derive(Clone, Debug)]
pub struct ProducePartition {
    pub tp: TopicPartition,
    pub records: Bytes,
    /// The coordinator's verification of the producer's first
    /// transactional batch here ([`Partition::start_txn_verification`]).
    pub verification: Option<fjord_log::VerificationGuard>,
}

/// What the leader asks the transaction coordinator before a producer's
/// first transactional batch opens a transaction on the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnVerification {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub guard: fjord_log::VerificationGuard,
}

/// Where a produced batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceInfo {
    pub base_offset: Offset,
    /// -1 unless the topic uses message.timestamp.type=LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

pub type ProduceResult = (TopicPartition, Result<ProduceInfo, PartitionError>);

/// One partition in a fetch request.
#[derive(Clone, Debug)]
pub struct FetchPartition {
    pub tp: TopicPartition,
    pub fetch_offset: Offset,
    pub partition_max_bytes: usize,
    /// The leader epoch the client believes current; -1 when it does not say.
    pub current_leader_epoch: LeaderEpoch,
}

/// A whole fetch request: long poll until `min_bytes` are there or `max_wait` passes.
#[derive(Clone, Debug)]
pub struct FetchParams {
    pub partitions: Vec<FetchPartition>,
    pub max_wait: Duration,
    pub min_bytes: usize,
    pub max_bytes: usize,
    /// Consumers never see data past the high watermark; with
    /// READ_COMMITTED, not past the last stable offset either.
    pub isolation: fjord_log::IsolationLevel,
}

/// What one partition returns in a fetch.
#[derive(Clone, Debug)]
pub struct FetchPartitionData {
    pub high_watermark: Offset,
    /// Below it every transaction is decided (equal to the high watermark
    /// while no transaction is open).
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// Whole stored record batches, exactly as on disk.
    pub records: Bytes,
    /// READ_COMMITTED only (`None` otherwise, as Kafka): the aborted
    /// transactions overlapping `records`, whose batches the consumer drops.
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
}

/// A transaction aborted in a fetched range: the consumer drops the
/// producer's transactional batches from `first_offset` to its ABORT marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: Offset,
}

pub type FetchResult = (TopicPartition, Result<FetchPartitionData, PartitionError>);

/// Which offset a ListOffsets request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// -2: the log start offset.
    Earliest,
    /// -1: the high watermark (the next offset a consumer will see).
    Latest,
    /// -3: the offset of the record with the largest timestamp.
    MaxTimestamp,
    /// The first offset whose record timestamp is >= this.
    Timestamp(i64),
}

impl OffsetSpec {
    pub fn from_wire(timestamp: i64) -> OffsetSpec {
        match timestamp {
            -2 => OffsetSpec::Earliest,
            -1 => OffsetSpec::Latest,
            -3 => OffsetSpec::MaxTimestamp,
            ts => OffsetSpec::Timestamp(ts),
        }
    }
}

/// Answer to a ListOffsets lookup; `offset` is -1 (with timestamp -1) when no record matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp: i64,
    pub leader_epoch: LeaderEpoch,
}

/// A CreateTopics entry.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1: use `num.partitions`.
    pub num_partitions: i32,
    /// -1: use `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica lists by partition index; empty to let the controller place them.
    pub assignments: Vec<Vec<BrokerId>>,
    pub configs: BTreeMap<String, String>,
}

/// A topic as created (or as it would be, with validate_only).
#[derive(Clone, Debug)]
pub struct CreatedTopic {
    pub topic_id: TopicId,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<ConfigEntry>,
}

pub type CreateTopicResult = (String, Result<CreatedTopic, AdminError>);

/// One config value as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub read_only: bool,
    /// A secret: DescribeConfigs answers a null value.
    pub sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: &'static str,
    /// Every value that could apply, in precedence order (the first is
    /// `value`); DescribeConfigs lists them when asked `include_synonyms`.
    pub synonyms: Vec<ConfigSynonym>,
}

pub use fjord_config::{ConfigSource, ConfigSynonym, ConfigType};

/// The resource of a DescribeConfigs, AlterConfigs or
/// IncrementalAlterConfigs entry (BROKER_LOGGER is the gateway's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker (Kafka's resource name "N"), or (`None`, name "") the
    /// cluster-wide default.
    Broker(Option<fjord_types::BrokerId>),
    /// A group's configs (KIP-848 group configs; stored, not applied).
    Group(String),
}
