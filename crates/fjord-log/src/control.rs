//! Transaction markers: the one record of a control batch that ends a
//! producer's transaction (Kafka's `EndTransactionMarker`). The only place
//! this crate reads inside a batch on the append path, and only for control
//! batches (rare: one per transaction and partition).
//!
//! # Wire format (Kafka's `ControlRecordType` / `EndTransactionMarker`)
//! A control batch has attributes `0x20 | 0x10`, the producer's id and epoch,
//! no compression and one record whose key is `version i16 = 0, type i16`
//! (ABORT = 0, COMMIT = 1; other types are not transaction markers) and whose
//! value is `version i16 = 0, coordinator_epoch i32`.

use bytes::Bytes;

use crate::batch::{ATTRIBUTES_AT, BatchHeader, CONTROL_BIT, HEADER_LEN, TRANSACTIONAL_BIT};

const ABORT: i16 = 0;
const COMMIT: i16 = 1;
const KEY_LEN: usize = 4;
const VALUE_LEN: usize = 6;

/// How a transaction ended (Kafka's `TransactionResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnResult {
    Abort,
    Commit,
}

/// The content of a transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub result: TxnResult,
    /// Epoch of the transaction coordinator that wrote it: a marker from an
    /// older coordinator than the last one seen is fenced.
    pub coordinator_epoch: i32,
}

/// Zigzag varint (Kafka's record fields); `None` when malformed or cut.
fn varint(buf: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], len: i64) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    if len > buf.len() {
        return None;
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Some(head)
}

/// The marker carried by the whole batch `batch` (header included); `None`
/// when it is not an uncompressed control batch holding an ABORT or COMMIT
/// record, or when that record does not parse (never a panic).
pub fn parse_end_txn_marker(batch: &[u8]) -> Option<EndTxnMarker> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.compression() != 0 || header.records_count < 1 {
        return None;
    }
    let mut rest = batch.get(HEADER_LEN..header.size())?;
    let record_len = varint(&mut rest)?;
    let mut record = take(&mut rest, record_len)?;
    let _attributes = take(&mut record, 1)?;
    let _timestamp_delta = varint(&mut record)?;
    let _offset_delta = varint(&mut record)?;
    let key_len = varint(&mut record)?;
    let key = take(&mut record, key_len)?;
    let value_len = varint(&mut record)?;
    let value = take(&mut record, value_len)?;
    if key.len() < KEY_LEN || value.len() < VALUE_LEN {
        return None;
    }
    let result = match i16::from_be_bytes([key[2], key[3]]) {
        ABORT => TxnResult::Abort,
        COMMIT => TxnResult::Commit,
        _ => return None,
    };
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Some(EndTxnMarker {
        result,
        coordinator_epoch,
    })
}

/// A control batch holding `marker` for `producer_id` at `producer_epoch`,
/// stamped `timestamp_ms`, as a transaction coordinator's WriteTxnMarkers
/// makes the leader write it (offset and leader epoch are set on append).
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Bytes {
    let kind = match marker.result {
        TxnResult::Abort => ABORT,
        TxnResult::Commit => COMMIT,
    };
    // One record: attributes, timestamp delta 0, offset delta 0, key, value,
    // no headers. Every varint here fits in one byte (zigzag of 4, 6, 16).
    let mut record = vec![0u8, 0, 0, (KEY_LEN as u8) << 1];
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&kind.to_be_bytes());
    record.push((VALUE_LEN as u8) << 1);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    record.push(0);

    let size = HEADER_LEN + 1 + record.len();
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((size - 12) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&(CONTROL_BIT | TRANSACTIONAL_BIT).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // baseTimestamp
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    b.extend_from_slice(&1i32.to_be_bytes()); // recordsCount
    b.push((record.len() as u8) << 1);
    b.extend_from_slice(&record);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[ATTRIBUTES_AT - 4..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{RecordBatchDecoder, TimestampType};

    use super::*;
    use crate::batch::{Origin, validate};

    #[test]
    fn a_built_marker_is_a_valid_control_batch_that_kafka_protocol_reads() {
        for (result, kind) in [(TxnResult::Abort, 0i16), (TxnResult::Commit, 1)] {
            let marker = EndTxnMarker {
                result,
                coordinator_epoch: 7,
            };
            let b = end_txn_marker_batch(42, 3, marker, 1_000);
            let h = validate(&b, 0, None, Origin::Client).expect("valid batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (42, 3, 1)
            );
            assert_eq!(parse_end_txn_marker(&b), Some(marker));

            let mut buf = b.clone();
            let decoded = RecordBatchDecoder::decode(&mut buf).expect("decodes");
            let r = &decoded.records[0];
            assert!(r.control && r.transactional);
            assert_eq!(r.timestamp_type, TimestampType::Creation);
            let key = r.key.as_ref().expect("key");
            assert_eq!(&key[..], &[0, 0, 0, kind as u8]);
            let value = r.value.as_ref().expect("value");
            assert_eq!(&value[..], &[0, 0, 0, 0, 0, 7]);
        }
    }

    #[test]
    fn anything_else_is_not_a_marker_and_never_panics() {
        let marker = EndTxnMarker {
            result: TxnResult::Commit,
            coordinator_epoch: 1,
        };
        let b = end_txn_marker_batch(1, 0, marker, 0);
        for cut in 0..b.len() {
            assert_eq!(parse_end_txn_marker(&b[..cut]), None, "cut at {cut}");
        }
        for i in HEADER_LEN..b.len() {
            let mut m = b.to_vec();
            m[i] ^= 0xff;
            let _ = parse_end_txn_marker(&m);
        }
        // A data batch is not a marker.
        assert_eq!(parse_end_txn_marker(&crate::testing::batch(1)), None);
        // Another control type (e.g. 2, LEADER_CHANGE) is not a marker either.
        let mut other = b.to_vec();
        other[HEADER_LEN + 1 + 4 + 3] = 2;
        assert_eq!(parse_end_txn_marker(&other), None);
    }
}
