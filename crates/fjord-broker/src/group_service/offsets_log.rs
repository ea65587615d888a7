//! The seam between the coordinator runtime and the log: [`OffsetsLog`]
//! (Kafka's `PartitionWriter` plus the loader's reads), its implementation
//! by the [`Broker`], the encoding of a call's records into one batch, and
//! the mapping of append failures to group errors.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_types::TopicPartition;
use futures::future::BoxFuture;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::CONSUMER_OFFSETS;
use crate::broker::Broker;
use crate::error::PartitionError;
use crate::group::{GroupError, GroupRecord, codec};
use crate::types::{Acks, ProducePartition};

/// How long a coordinator append may wait for the high watermark (Kafka's
/// `offsets.commit.timeout.ms`, which its group coordinator uses as the
/// write timeout of every operation).
pub(crate) const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The `__consumer_offsets` partitions this broker leads, with their leader epochs.
pub(crate) type Led = std::collections::BTreeMap<i32, fjord_types::LeaderEpoch>;

/// What the coordinator runtime needs from the log of `__consumer_offsets`.
pub(crate) trait OffsetsLog: Send + Sync {
    /// The partitions this node leads now.
    fn led_partitions(&self) -> Led;

    /// Every record of `partition` from its log start to its log end, in order.
    fn read(&self, partition: i32, visit: &mut dyn FnMut(&Record));

    /// Append one record batch to `partition` with acks=all and wait until
    /// the high watermark passes it (or [`APPEND_TIMEOUT`] runs out).
    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<'_, Result<(), PartitionError>>;
}

/// Decode the record batches in `buf`, visiting each record; the offset after
/// the last one, or `None` when a batch cannot be decoded.
pub(crate) fn visit_batches(mut buf: Bytes, visit: &mut dyn FnMut(&Record)) -> Option<i64> {
    let mut next = None;
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).ok()?;
        for record in &set.records {
            next = Some(next.unwrap_or(i64::MIN).max(record.offset + 1));
            visit(record);
        }
    }
    next
}

/// One batch of a call's records, or `None` when there is nothing to write.
/// Records Kafka's schema cannot hold (strings past 32767 bytes) are left out
/// and logged, as before shards existed.
pub(crate) fn encode_batch(records: &[GroupRecord], now_ms: i64) -> Option<Bytes> {
    let mut batch = Vec::with_capacity(records.len());
    for record in records {
        let (key, value) = match codec::try_encode(record) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(group = record.group_id(), %err, "group record not persisted");
                continue;
            }
        };
        let delta = batch.len() as i32;
        batch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(delta),
            // offset - sequence constant: one batch per call.
            sequence: delta,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        });
    }
    if batch.is_empty() {
        return None;
    }
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    match RecordBatchEncoder::encode(&mut buf, &batch, &options) {
        Ok(()) => Some(buf.freeze()),
        Err(err) => {
            tracing::error!(%err, "cannot encode group records");
            None
        }
    }
}

/// The group error a caller gets when its records could not be appended:
/// Kafka's `CoordinatorOperationExceptionHelper.handleOperationException`
/// (UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT —
/// the write timeout — become COORDINATOR_NOT_AVAILABLE;
/// NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR become NOT_COORDINATOR).
/// Kafka answers UNKNOWN_SERVER_ERROR for the rest (records too large, …);
/// `GroupError` has no such variant yet, so they become
/// COORDINATOR_NOT_AVAILABLE, which clients also retry.
pub(crate) fn append_error(err: &PartitionError) -> GroupError {
    match err {
        PartitionError::NotLeaderOrFollower { .. }
        | PartitionError::FencedLeaderEpoch { .. }
        | PartitionError::KafkaStorage(_)
        | PartitionError::LogDirOffline
        | PartitionError::ShuttingDown => GroupError::NotCoordinator,
        _ => GroupError::CoordinatorNotAvailable,
    }
}

impl OffsetsLog for Broker {
    fn led_partitions(&self) -> Led {
        self.replicas
            .all()
            .into_iter()
            .filter(|p| p.tp.topic == CONSUMER_OFFSETS && p.is_leader())
            .map(|p| (p.tp.partition, p.assignment().leader_epoch))
            .collect()
    }

    fn read(&self, partition: i32, visit: &mut dyn FnMut(&Record)) {
        let tp = TopicPartition::new(CONSUMER_OFFSETS, partition);
        let Some(replica) = self.replicas.get(&tp) else {
            return;
        };
        let mut offset = match replica.list_offset(crate::OffsetSpec::Earliest, -1) {
            Ok(listed) => listed.offset,
            Err(_) => return,
        };
        loop {
            let data = match replica.read_to_log_end(offset, 1 << 20) {
                Ok(data) if !data.records.is_empty() => data,
                Ok(_) => break,
                Err(err) => {
                    tracing::error!(%tp, %err, "cannot load group coordinator state");
                    break;
                }
            };
            match visit_batches(data.records.clone(), visit) {
                Some(next) => offset = offset.max(next),
                None => {
                    tracing::error!(%tp, "undecodable batch in {CONSUMER_OFFSETS}");
                    break;
                }
            }
            if offset >= replica.log_end_offset() {
                break;
            }
        }
    }

    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<'_, Result<(), PartitionError>> {
        Box::pin(async move {
            let request = ProducePartition {
                tp: TopicPartition::new(CONSUMER_OFFSETS, partition),
                records: batch,
            };
            match self
                .replicas
                .produce(vec![request], Acks::All, APPEND_TIMEOUT)
                .await
                .pop()
            {
                Some((_, result)) => result.map(|_| ()),
                None => Err(PartitionError::UnknownTopicOrPartition),
            }
        })
    }
}
