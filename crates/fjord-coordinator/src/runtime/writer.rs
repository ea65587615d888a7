//! The seam between the runtime and the log (Kafka's `PartitionWriter` and
//! the reads of its `CoordinatorLoader`): the node that hosts the
//! coordinator's partitions implements [`PartitionWriter`]; tests fake it.
//! Its errors are this crate's own ([`WriteError`], [`ReadError`]), which the
//! implementor maps from its storage errors, and [`append_error`] turns into
//! the group error a caller gets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_types::{LeaderEpoch, Offset, TopicPartition};
use futures::future::BoxFuture;

use crate::group::GroupError;

/// The log's own error behind a [`WriteError`] or [`ReadError`], kept as the
/// cause (shared, so the errors stay `Clone`).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why an append of coordinator records failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    /// This node does not lead the partition (any more), or leads it at a
    /// different leader epoch. Nothing was written.
    #[error("not the leader of {tp}")]
    NotLeader { tp: TopicPartition },
    /// The partition is not hosted here at all. Nothing was written.
    #[error("unknown partition {tp}")]
    UnknownPartition { tp: TopicPartition },
    /// The ISR is smaller than `min.insync.replicas`: refused before
    /// writing (Kafka's NOT_ENOUGH_REPLICAS).
    #[error("{tp} has {isr} in-sync replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min_isr: usize,
    },
    /// The batch reached the local log but the high watermark did not pass
    /// it within the write timeout: it may still be committed.
    #[error("{tp}: not replicated within {timeout:?}")]
    Timeout {
        tp: TopicPartition,
        timeout: Duration,
    },
    /// The batch is larger than the partition accepts (Kafka's
    /// MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE). Nothing was written.
    #[error("{tp}: batch of {size} bytes is too large")]
    RecordTooLarge { tp: TopicPartition, size: usize },
    /// The log directory failed or is offline. Nothing was written.
    #[error("{tp}: storage error")]
    Storage {
        tp: TopicPartition,
        #[source]
        source: Cause,
    },
    /// Any other refusal of the log (a bug rather than a condition: the
    /// runtime writes well-formed batches). Nothing was written.
    #[error("{tp}: append refused")]
    Other {
        tp: TopicPartition,
        #[source]
        source: Cause,
    },
}

impl ReadError {
    /// The read lost a race with a leadership move rather than failing:
    /// the move's own change unloads the shard.
    pub fn moved(&self) -> bool {
        matches!(
            self,
            ReadError::UnknownPartition { .. } | ReadError::NotLeader { .. }
        )
    }
}

impl WriteError {
    /// The batch reached the local log and only its replication is
    /// unknown: the runtime keeps the state it wrote rather than reverting.
    pub fn written(&self) -> bool {
        matches!(self, WriteError::Timeout { .. })
    }
}

/// Why a read of a coordinator partition failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReadError {
    /// The partition is not hosted here (any more).
    #[error("unknown partition {tp}")]
    UnknownPartition { tp: TopicPartition },
    /// This node no longer leads the partition (its resignation is on the way).
    #[error("not the leader of {tp}")]
    NotLeader { tp: TopicPartition },
    /// The log could not be read.
    #[error("{tp}: cannot read at offset {offset}")]
    Storage {
        tp: TopicPartition,
        offset: Offset,
        #[source]
        source: Cause,
    },
    /// A batch in the partition cannot be decoded.
    #[error("{tp}: undecodable batch at offset {offset}")]
    Corrupt { tp: TopicPartition, offset: Offset },
}

/// Record batches of a partition read from some offset, and the log end
/// offset at the time of the read.
#[derive(Clone, Debug, Default)]
pub struct ReadChunk {
    /// Whole record batches, as stored; empty at the log end.
    pub records: Bytes,
    pub log_end_offset: Offset,
}

/// What the runtime needs from the log of its partitions.
pub trait PartitionWriter: Send + Sync + 'static {
    /// Append one record batch with acks=all and wait until the high
    /// watermark passes it, or `timeout` runs out ([`WriteError::Timeout`]).
    /// Not cancellation-safe: the runtime always awaits it to the end.
    fn append(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), WriteError>>;

    /// Record batches of `tp` from `from` (from the log start when `from` is
    /// below it) up to the log end, at most about a chunk's worth; reads off
    /// the async workers when the log is on disk. Dropping the future
    /// abandons the read.
    fn read(
        &self,
        tp: &TopicPartition,
        from: Offset,
    ) -> BoxFuture<'_, Result<ReadChunk, ReadError>>;

    /// The leader epoch of `tp` when this node leads it, `None` otherwise.
    fn leader_epoch(&self, tp: &TopicPartition) -> Option<LeaderEpoch>;
}

/// What a failed append means to the caller, for every coordinator
/// (Kafka's `CoordinatorOperationExceptionHelper.handleOperationException`,
/// which its transaction coordinator follows too): not leader and storage
/// failures send the client to find the coordinator again; an unknown
/// partition, too few replicas and the write timeout are retriable where
/// it is; records too large and anything unexpected are
/// UNKNOWN_SERVER_ERROR, which a retry does not fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFailure {
    NotCoordinator,
    CoordinatorNotAvailable,
    UnknownServerError,
}

impl WriteError {
    /// How a caller hears of this failure.
    pub fn failure(&self) -> AppendFailure {
        match self {
            WriteError::NotLeader { .. } | WriteError::Storage { .. } => {
                AppendFailure::NotCoordinator
            }
            WriteError::UnknownPartition { .. }
            | WriteError::NotEnoughReplicas { .. }
            | WriteError::Timeout { .. } => AppendFailure::CoordinatorNotAvailable,
            WriteError::RecordTooLarge { .. } | WriteError::Other { .. } => {
                AppendFailure::UnknownServerError
            }
        }
    }
}

/// The group error a caller gets when its records could not be appended
/// (see [`AppendFailure`]).
pub fn append_error(err: &WriteError) -> GroupError {
    match err.failure() {
        AppendFailure::NotCoordinator => GroupError::NotCoordinator,
        AppendFailure::CoordinatorNotAvailable => GroupError::CoordinatorNotAvailable,
        AppendFailure::UnknownServerError => GroupError::UnknownServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_errors_map_as_kafka() {
        let tp = TopicPartition::new("__consumer_offsets", 0);
        let source: Cause = Arc::new(std::io::Error::other("disk"));
        let table = [
            (
                WriteError::NotLeader { tp: tp.clone() },
                GroupError::NotCoordinator,
            ),
            (
                WriteError::Storage {
                    tp: tp.clone(),
                    source: source.clone(),
                },
                GroupError::NotCoordinator,
            ),
            (
                WriteError::UnknownPartition { tp: tp.clone() },
                GroupError::CoordinatorNotAvailable,
            ),
            (
                WriteError::NotEnoughReplicas {
                    tp: tp.clone(),
                    isr: 1,
                    min_isr: 2,
                },
                GroupError::CoordinatorNotAvailable,
            ),
            (
                WriteError::Timeout {
                    tp: tp.clone(),
                    timeout: Duration::from_secs(5),
                },
                GroupError::CoordinatorNotAvailable,
            ),
            (
                WriteError::RecordTooLarge {
                    tp: tp.clone(),
                    size: 2 << 20,
                },
                GroupError::UnknownServerError,
            ),
            (
                WriteError::Other { tp, source },
                GroupError::UnknownServerError,
            ),
        ];
        for (err, expected) in table {
            assert_eq!(append_error(&err), expected, "{err}");
        }
    }
}
