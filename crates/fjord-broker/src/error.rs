//! Errors of the broker layer. The gateway maps each variant to exactly one
//! Kafka error code (`fjord-gateway`'s `error_code` module); nothing here knows
//! wire numbers.

use fjord_types::{BrokerId, Offset, TopicPartition};

/// Why a produce, fetch or offset lookup on one partition failed.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("this broker is not the leader (leader: {leader:?})")]
    NotLeaderOrFollower { leader: Option<BrokerId> },
    /// The caller's leader epoch is older than the partition's.
    #[error("leader epoch {given} is fenced (current {current})")]
    FencedLeaderEpoch { given: i32, current: i32 },
    /// The caller's leader epoch is newer than this broker knows.
    #[error("leader epoch {given} is unknown (current {current})")]
    UnknownLeaderEpoch { given: i32, current: i32 },
    #[error("offset {requested} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error("record batch is corrupt")]
    CorruptMessage(#[source] fjord_log::LogError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("record batch is invalid")]
    InvalidRecord(#[source] fjord_log::LogError),
    #[error("record batch timestamp is invalid")]
    InvalidTimestamp(#[source] fjord_log::LogError),
    #[error("the request's record set is larger than a segment")]
    RecordListTooLarge(#[source] fjord_log::LogError),
    #[error("record batch uses an unsupported message format")]
    UnsupportedForMessageFormat(#[source] fjord_log::LogError),
    #[error("in-sync replicas {isr} < min.insync.replicas {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    #[error("timed out waiting for replication")]
    RequestTimedOut,
    /// DeleteRecords on a topic whose `cleanup.policy` lacks `delete`.
    #[error("records of partition {tp} cannot be deleted: cleanup.policy does not include delete")]
    PolicyViolation { tp: TopicPartition },
    #[error("partition storage failed")]
    KafkaStorage(#[source] fjord_log::LogError),
    /// The log directory failed earlier ([`crate::log_dir_failure`]): the
    /// log is no longer touched.
    #[error("the log directory is offline after an I/O failure")]
    LogDirOffline,
    /// The fsync of a flush an append waited for (`flush.messages` /
    /// `flush.ms`) failed; the fault handler got the error itself.
    #[error("the flush of the appended batches failed")]
    FlushFailed,
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("idempotent producer sent a batch out of sequence")]
    OutOfOrderSequenceNumber(#[source] fjord_log::SequenceError),
    #[error("idempotent producer's epoch is fenced")]
    InvalidProducerEpoch(#[source] fjord_log::SequenceError),
    /// A transaction marker from a coordinator older than the last one that
    /// wrote for this producer.
    #[error("transaction coordinator is fenced")]
    TransactionCoordinatorFenced(#[source] fjord_log::SequenceError),
    /// A client sent a control batch (a COMMIT/ABORT marker): only the
    /// transaction coordinator writes those (Kafka's `LogValidator`).
    #[error("clients may not write control batches (producer {producer_id})")]
    ControlBatchFromClient { producer_id: i64 },
    /// A transactional batch from a producer with no ongoing transaction
    /// (with no transaction coordinator in Fjord yet, every transactional
    /// batch from a client), or a non-transactional batch from a producer
    /// whose transaction is open (Kafka's `ProducerAppendInfo`).
    #[error(
        "batch of producer {producer_id} (epoch {producer_epoch}) does not match its transaction state"
    )]
    InvalidTxnState {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// Records a topic's configs refuse (Kafka's `LogValidator.validateRecord`:
    /// no key on a compacted topic, a CreateTime timestamp out of range);
    /// `errors` name them by their index in the first batch that has any.
    #[error("{} records of a batch to {tp} rejected, the first: {}", errors.len(), errors[0].message(tp))]
    RecordsRejected {
        tp: TopicPartition,
        errors: Vec<RecordError>,
    },
}

/// One record refused by a topic's record-level checks (KIP-467's RecordError).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position in its batch.
    pub batch_index: i32,
    pub kind: RecordErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordErrorKind {
    /// No key on a topic whose `cleanup.policy` contains `compact` (INVALID_RECORD).
    MissingKey,
    /// A CreateTime timestamp outside `[earliest, latest]` (INVALID_TIMESTAMP).
    TimestampOutOfRange {
        timestamp: i64,
        /// The record's offset as the client numbered it.
        offset: i64,
        earliest: i64,
        latest: i64,
    },
}

impl RecordError {
    /// Kafka's message for this record (`LogValidator.validateKey`,
    /// `validateTimestamp`): the KIP-467 `batch_index_error_message`.
    pub fn message(&self, tp: &TopicPartition) -> String {
        match self.kind {
            RecordErrorKind::MissingKey => {
                format!(
                    "Compacted topic cannot accept message without key in topic partition {tp}."
                )
            }
            RecordErrorKind::TimestampOutOfRange {
                timestamp,
                offset,
                earliest,
                latest,
            } => format!(
                "Timestamp {timestamp} of message with offset {offset} is out of range. The timestamp should be within [{earliest}, {latest}]"
            ),
        }
    }

    /// Whether this is a timestamp error (the partition's error is then
    /// INVALID_TIMESTAMP, else INVALID_RECORD, as Kafka's `processRecordErrors`).
    pub fn is_timestamp(&self) -> bool {
        matches!(self.kind, RecordErrorKind::TimestampOutOfRange { .. })
    }
}

impl PartitionError {
    /// A produce request refused by the producer state.
    pub(crate) fn from_sequence(err: fjord_log::SequenceError) -> Self {
        match err {
            fjord_log::SequenceError::InvalidProducerEpoch { .. } => {
                PartitionError::InvalidProducerEpoch(err)
            }
            fjord_log::SequenceError::OutOfOrderSequence { .. } => {
                PartitionError::OutOfOrderSequenceNumber(err)
            }
            fjord_log::SequenceError::InvalidTxnState {
                producer_id,
                producer_epoch,
            } => PartitionError::InvalidTxnState {
                producer_id,
                producer_epoch,
            },
            fjord_log::SequenceError::TransactionCoordinatorFenced { .. } => {
                PartitionError::TransactionCoordinatorFenced(err)
            }
        }
    }

    /// Sort a log error into the partition error a client should see.
    pub(crate) fn from_log(err: fjord_log::LogError) -> Self {
        use fjord_log::LogError as L;
        match err {
            L::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => PartitionError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            },
            L::RecordTooLarge { size, max } => PartitionError::MessageTooLarge {
                size,
                max: max as usize,
            },
            e @ L::CorruptRecord { .. } => PartitionError::CorruptMessage(e),
            e @ L::UnsupportedMagic { .. } => PartitionError::UnsupportedForMessageFormat(e),
            e @ (L::InvalidRecord { .. }
            | L::NonMonotonicOffset { .. }
            | L::OffsetOverflow { .. }) => PartitionError::InvalidRecord(e),
            e @ L::InvalidTimestamp { .. } => PartitionError::InvalidTimestamp(e),
            e @ L::RecordSetTooLarge { .. } => PartitionError::RecordListTooLarge(e),
            e => PartitionError::KafkaStorage(e),
        }
    }
}

/// Why an admin operation (create/delete topics, partitions, configs) failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("topic already exists")]
    TopicAlreadyExists,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("invalid topic name")]
    InvalidTopicName,
    #[error("invalid number of partitions: {reason}")]
    InvalidPartitions { reason: String },
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor { reason: String },
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    #[error("invalid config: {reason}")]
    InvalidConfig { reason: String },
    /// A config change lost a compare-and-set: computed again (never
    /// reaches a client).
    #[error("the configs changed while the change was being made")]
    ConfigsChanged,
    /// Kafka's INVALID_REQUEST: e.g. a read-only broker config, a key given
    /// twice, a broker resource that is not a broker id.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("topic operations on internal topics are not allowed")]
    TopicAuthorizationFailed,
    #[error("this node is not the active controller")]
    NotController,
    #[error("timed out waiting for the controller")]
    RequestTimedOut,
    #[error("the controller failed")]
    Controller(#[source] fjord_controller::ControllerError),
    #[error("the controller answered {response}")]
    UnexpectedControllerResponse { response: String },
}

impl AdminError {
    /// Sort a controller failure into what a client can act on: a
    /// non-leader controller means "retry elsewhere", an unknown outcome
    /// means "timed out".
    pub(crate) fn from_controller(err: fjord_controller::ControllerError) -> Self {
        use fjord_controller::ControllerError as C;
        match err {
            C::NotLeader { .. } => AdminError::NotController,
            C::WriteOutcomeUnknown { .. } => AdminError::RequestTimedOut,
            other => AdminError::Controller(other),
        }
    }
}

/// Faults that stop the broker from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot use log directory {path}")]
    LogDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open partition log {tp}")]
    OpenLog {
        tp: fjord_types::TopicPartition,
        #[source]
        source: fjord_log::LogError,
    },
    #[error("cannot register with the controller")]
    Register(#[source] fjord_controller::ControllerError),
    /// The controller committed the registration but refused it (e.g. a port 0).
    #[error("the controller refused the registration: {response}")]
    RegistrationRefused { response: String },
    /// The controller stopped before this broker could replay the metadata log.
    #[error("the controller stopped while the broker replayed the metadata log")]
    MetadataClosed,
}
