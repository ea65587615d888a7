//! The record batches the runtime writes and replays: one batch per write
//! (so a write is appended whole or not at all), decoded batch by batch on
//! load.

use bytes::{Bytes, BytesMut};
use fjord_types::Offset;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::coordinator_shard::CoordinatorShard;

/// Bytes of a v2 batch header up to and including `lastOffsetDelta`.
const HEADER_THROUGH_LAST_OFFSET_DELTA: usize = 27;
/// `baseOffset` (8 bytes) and `batchLength` (4) precede the counted bytes.
const LOG_OVERHEAD: usize = 12;
/// A batch's base sequence when it carries none.
const NO_SEQUENCE: i32 = -1;

/// Decode the whole record batches in `buf`, visiting each record in order;
/// the offset after the last batch, from its header (so a batch that
/// compaction emptied still moves the reader on), `Some(None)` for no batch,
/// `None` when a batch is truncated or cannot be decoded.
pub fn visit_batches(mut buf: Bytes, visit: &mut dyn FnMut(&Record)) -> Option<Option<Offset>> {
    let mut next = None;
    while !buf.is_empty() {
        let header = buf.get(..HEADER_THROUGH_LAST_OFFSET_DELTA)?;
        let base_offset = i64::from_be_bytes(header[0..8].try_into().ok()?);
        let length = i32::from_be_bytes(header[8..12].try_into().ok()?);
        let last_offset_delta = i32::from_be_bytes(header[23..27].try_into().ok()?);
        let size = LOG_OVERHEAD.checked_add(usize::try_from(length).ok()?)?;
        if size > buf.len() {
            return None;
        }
        let mut batch = buf.split_to(size);
        let set = RecordBatchDecoder::decode(&mut batch).ok()?;
        for record in &set.records {
            visit(record);
        }
        next = Some(base_offset.checked_add(i64::from(last_offset_delta))? + 1);
    }
    Some(next)
}

/// One batch of a write's records, or `None` when there is nothing to write.
/// Records of a transactional producer ([`CoordinatorShard::batch_producer`]
/// of the first) go in a transactional batch of that producer with no
/// sequence (-1, as Kafka's coordinators write them): the log checks its
/// epoch and the COMMIT/ABORT marker closes it like a client's.
/// Records Kafka's schema cannot hold (strings past 32767 bytes) are left out
/// and logged: the state machine validated the call, so this is a bug, and
/// writing the rest keeps the partition replayable.
pub fn encode_batch<S: CoordinatorShard>(records: &[S::Record], now_ms: i64) -> Option<Bytes> {
    let producer = records.first().and_then(S::batch_producer);
    let (producer_id, producer_epoch, first_sequence) = match producer {
        Some((id, epoch)) => (id, epoch, NO_SEQUENCE),
        None => (-1, -1, 0),
    };
    let mut batch = Vec::with_capacity(records.len());
    for record in records {
        let (key, value) = match S::encode(record) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(%err, "{} record not persisted", S::NAME);
                continue;
            }
        };
        let delta = i32::try_from(batch.len()).ok()?;
        batch.push(Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(delta),
            // offset - sequence constant: one batch per write.
            sequence: first_sequence.wrapping_add(delta),
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
            tracing::error!(%err, "cannot encode {} records", S::NAME);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::TopicPartition;

    use super::*;
    use crate::group::{CommittedOffset, GroupCoordinator, GroupRecord};

    fn offset_record(group: &str, offset: i64) -> GroupRecord {
        GroupRecord::Offset {
            group_id: group.to_string(),
            tp: TopicPartition::new("t", 0),
            committed: CommittedOffset {
                offset,
                leader_epoch: None,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        }
    }

    #[test]
    fn batches_round_trip_and_report_the_next_offset() {
        let one =
            encode_batch::<GroupCoordinator>(&[offset_record("g", 1), offset_record("g", 2)], 0)
                .expect("batch");
        let mut both = BytesMut::from(&one[..]);
        both.extend_from_slice(&one);
        let mut seen = 0;
        // Both batches start at offset 0 as encoded: the next offset is 2.
        assert_eq!(
            visit_batches(both.freeze(), &mut |_| seen += 1),
            Some(Some(2))
        );
        assert_eq!(seen, 4);
        assert_eq!(visit_batches(Bytes::new(), &mut |_| {}), Some(None));
    }

    #[test]
    fn a_truncated_batch_is_refused_not_read_past() {
        let one = encode_batch::<GroupCoordinator>(&[offset_record("g", 1)], 0).expect("batch");
        for cut in [1, 20, one.len() - 1] {
            assert_eq!(
                visit_batches(one.slice(..cut), &mut |_| {}),
                None,
                "cut {cut}"
            );
        }
    }
}
