//! The broker's side of the coordinator runtime's seam: the partitions of
//! `__consumer_offsets` and `__transaction_state` through the replica
//! manager, as Kafka's `core` supplies `CoordinatorPartitionWriter` to its
//! group and transaction coordinators.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_coordinator::runtime::{PartitionWriter, ReadChunk, ReadError, WriteError};
use fjord_types::{LeaderEpoch, Offset, TopicPartition};
use futures::future::BoxFuture;

use crate::OffsetSpec;
use crate::error::PartitionError;
use crate::replica_manager::ReplicaManager;
use crate::types::{Acks, AppendOrigin, ProducePartition};

/// How much of a partition one load read returns at most (whole batches,
/// at least one): Kafka's `offsets.load.buffer.size` default.
const LOAD_CHUNK_BYTES: usize = 5 * 1024 * 1024;

/// The coordinator's writer over this broker's replicas. It holds the
/// replica manager, not the broker, so the broker can own the coordinator
/// without a reference cycle.
pub(crate) struct CoordinatorPartitionWriter {
    pub(crate) replicas: Arc<ReplicaManager>,
}

impl PartitionWriter for CoordinatorPartitionWriter {
    fn append(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), WriteError>> {
        let tp = tp.clone();
        Box::pin(async move {
            let size = records.len();
            let request = ProducePartition {
                tp: tp.clone(),
                records,
                verification: None,
            };
            match self
                .replicas
                .produce_from(AppendOrigin::Coordinator, vec![request], Acks::All, timeout)
                .await
                .pop()
            {
                Some((_, Ok(_))) => Ok(()),
                Some((_, Err(err))) => Err(write_error(tp, size, timeout, err)),
                None => Err(WriteError::UnknownPartition { tp }),
            }
        })
    }

    fn read(
        &self,
        tp: &TopicPartition,
        from: Offset,
    ) -> BoxFuture<'_, Result<ReadChunk, ReadError>> {
        let tp = tp.clone();
        let replica = self.replicas.get(&tp);
        Box::pin(async move {
            let Some(replica) = replica else {
                return Err(ReadError::UnknownPartition { tp });
            };
            // Segment reads are file I/O: off the async workers.
            let read = tokio::task::spawn_blocking(move || {
                let log_start = replica
                    .list_offset(
                        OffsetSpec::Earliest,
                        -1,
                        fjord_log::IsolationLevel::ReadUncommitted,
                    )?
                    .offset;
                let data = replica.read_to_log_end(from.max(log_start), LOAD_CHUNK_BYTES)?;
                Ok::<_, PartitionError>(ReadChunk {
                    records: data.records,
                    log_end_offset: replica.log_end_offset(),
                })
            })
            .await;
            match read {
                Ok(Ok(chunk)) => Ok(chunk),
                Ok(Err(PartitionError::UnknownTopicOrPartition)) => {
                    Err(ReadError::UnknownPartition { tp })
                }
                Ok(Err(
                    PartitionError::NotLeaderOrFollower { .. }
                    | PartitionError::FencedLeaderEpoch { .. }
                    | PartitionError::ShuttingDown,
                )) => Err(ReadError::NotLeader { tp }),
                Ok(Err(err)) => Err(ReadError::Storage {
                    tp,
                    offset: from,
                    source: Arc::new(err),
                }),
                Err(join) => Err(ReadError::Storage {
                    tp,
                    offset: from,
                    source: Arc::new(join),
                }),
            }
        })
    }

    fn leader_epoch(&self, tp: &TopicPartition) -> Option<LeaderEpoch> {
        let replica = self.replicas.get(tp)?;
        replica
            .is_leader()
            .then(|| replica.assignment().leader_epoch)
    }
}

/// The coordinator's view of a failed append (Kafka's
/// `CoordinatorOperationExceptionHelper` then maps it to a group error).
fn write_error(
    tp: TopicPartition,
    size: usize,
    timeout: Duration,
    err: PartitionError,
) -> WriteError {
    match err {
        PartitionError::NotLeaderOrFollower { .. }
        | PartitionError::FencedLeaderEpoch { .. }
        | PartitionError::UnknownLeaderEpoch { .. }
        | PartitionError::ShuttingDown => WriteError::NotLeader { tp },
        PartitionError::UnknownTopicOrPartition => WriteError::UnknownPartition { tp },
        PartitionError::NotEnoughReplicas { isr, min_isr } => {
            WriteError::NotEnoughReplicas { tp, isr, min_isr }
        }
        PartitionError::RequestTimedOut => WriteError::Timeout { tp, timeout },
        PartitionError::MessageTooLarge { .. } | PartitionError::RecordListTooLarge(_) => {
            WriteError::RecordTooLarge { tp, size }
        }
        PartitionError::KafkaStorage(_) | PartitionError::LogDirOffline => WriteError::Storage {
            tp,
            source: Arc::new(err),
        },
        other => WriteError::Other {
            tp,
            source: Arc::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use fjord_coordinator::group::GroupError;
    use fjord_coordinator::runtime::append_error;

    use super::*;

    /// The whole path from a partition's refusal to the group error a
    /// caller sees (Kafka's `CoordinatorOperationExceptionHelper`).
    #[test]
    fn partition_errors_reach_callers_as_kafka_answers() {
        let tp = TopicPartition::new("__consumer_offsets", 3);
        let table = [
            (
                PartitionError::NotLeaderOrFollower { leader: Some(2) },
                GroupError::NotCoordinator,
            ),
            (PartitionError::ShuttingDown, GroupError::NotCoordinator),
            (PartitionError::LogDirOffline, GroupError::NotCoordinator),
            (
                PartitionError::UnknownTopicOrPartition,
                GroupError::CoordinatorNotAvailable,
            ),
            (
                PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 },
                GroupError::CoordinatorNotAvailable,
            ),
            (
                PartitionError::RequestTimedOut,
                GroupError::CoordinatorNotAvailable,
            ),
            (
                PartitionError::MessageTooLarge { size: 9, max: 8 },
                GroupError::UnknownServerError,
            ),
            (
                PartitionError::ControlBatchFromClient { producer_id: 1 },
                GroupError::UnknownServerError,
            ),
        ];
        for (err, expected) in table {
            let shown = err.to_string();
            let write = write_error(tp.clone(), 9, Duration::from_secs(5), err);
            assert_eq!(append_error(&write), expected, "{shown}");
        }
    }
}
