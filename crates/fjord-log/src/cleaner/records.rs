//! The records inside one v2 batch, for the cleaner: decompress, walk the
//! records (keys, values' nullness, offsets), and rebuild the batch around a
//! subset of them.
//!
//! A kept record's bytes are copied verbatim: its offset and timestamp
//! deltas stay valid because the rebuilt batch keeps the original
//! `baseOffset` and `baseTimestamp`. kafka-protocol's encoder cannot be used
//! for the rebuild: it takes the smallest record offset as `baseOffset` and
//! recomputes `lastOffsetDelta` from the records, where the cleaner must keep
//! both (producer sequences are `baseSequence + offset delta`), and its
//! decoder folds duplicate header keys. Its codecs are used as they are.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, None as Uncompressed, Snappy, Zstd};
use kafka_protocol::records::Compression;

use crate::batch::{ATTRIBUTES_AT, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::error::LogError;

const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORDS_COUNT_AT: usize = 57;

/// One record of a batch, borrowed from the batch's (decompressed) bytes.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    /// A null value: a tombstone on a compacted topic.
    pub tombstone: bool,
    /// The whole record, its length prefix included.
    pub bytes: &'a [u8],
}

fn malformed(header: &BatchHeader, reason: &'static str) -> LogError {
    LogError::MalformedRecords {
        base_offset: header.base_offset,
        reason,
    }
}

/// Write the kept records (generic in the error: the codecs' closures return
/// kafka-protocol's error type).
fn put_all<B: BufMut, E>(buf: &mut B, kept: &[RecordView<'_>]) -> Result<(), E> {
    for r in kept {
        buf.put_slice(r.bytes);
    }
    Ok(())
}

/// The records section of `batch` (the whole batch's bytes), decompressed.
pub(crate) fn records_body(batch: &[u8], header: &BatchHeader) -> Result<Bytes, LogError> {
    let mut body = Bytes::copy_from_slice(&batch[HEADER_LEN..header.size()]);
    let compression = match header.compression() {
        0 => return Ok(body),
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return Err(malformed(header, "unknown compression codec")),
    };
    let out = crate::decompress::decompress(compression, &mut body);
    out.map_err(|e| LogError::RecordDecode {
        base_offset: header.base_offset,
        source: e.into(),
    })
}

/// Zigzag varint (Kafka's `VarInt` / `VarLong`), at most 10 bytes.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Walk the records of a decompressed `body`; exactly `recordsCount` of them.
pub(crate) fn parse_records<'a>(
    body: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<RecordView<'a>>, LogError> {
    let count = usize::try_from(header.records_count)
        .map_err(|_| malformed(header, "negative recordsCount"))?;
    let mut out = Vec::with_capacity(count.min(body.len()));
    walk_records(body, header, |r| out.push(r))?;
    Ok(out)
}

/// Hand each record of a decompressed `body` to `visit`, in order, without
/// collecting them; an error if the records are malformed or are not
/// exactly `recordsCount` (records already visited stay visited).
pub(crate) fn walk_records<'a>(
    body: &'a [u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordView<'a>),
) -> Result<(), LogError> {
    let bad = |reason| malformed(header, reason);
    let count = usize::try_from(header.records_count).map_err(|_| bad("negative recordsCount"))?;
    let mut seen = 0usize;
    let mut pos = 0;
    while pos < body.len() {
        let start = pos;
        let len = varint(body, &mut pos).ok_or(bad("truncated record length"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or(bad("record length past the batch"))?;
        let rec = &body[..end];
        pos += 1; // attributes
        let ts_delta = varint(rec, &mut pos).ok_or(bad("truncated timestamp delta"))?;
        let offset_delta = varint(rec, &mut pos).ok_or(bad("truncated offset delta"))?;
        let key_len = varint(rec, &mut pos).ok_or(bad("truncated key length"))?;
        let key = if key_len < 0 {
            None
        } else {
            let k = usize::try_from(key_len)
                .ok()
                .and_then(|l| rec.get(pos..pos.checked_add(l)?))
                .ok_or(bad("key past the record"))?;
            pos += k.len();
            Some(k)
        };
        let value_len = varint(rec, &mut pos).ok_or(bad("truncated value length"))?;
        visit(RecordView {
            offset: header.base_offset.saturating_add(offset_delta),
            timestamp: header.base_timestamp.saturating_add(ts_delta),
            key,
            tombstone: value_len < 0,
            bytes: &body[start..end],
        });
        seen += 1;
        pos = end;
    }
    if seen != count {
        return Err(bad("recordsCount does not match the records"));
    }
    Ok(())
}

/// Hand each record of the batch `batch` (its whole bytes, with `header`)
/// to `visit` without decoding them into owned records: decompressed with
/// the bound of `decompress.rs`, walked in place. For checks over every
/// record (produce validation) that must not cost memory per record. The
/// batch's CRC32C is checked first.
pub fn visit_records(
    batch: &[u8],
    header: &BatchHeader,
    visit: impl FnMut(RecordView<'_>),
) -> Result<(), LogError> {
    if batch.len() < header.size() || header.size() < HEADER_LEN {
        return Err(malformed(header, "batch shorter than its header says"));
    }
    if crc32c::crc32c(&batch[ATTRIBUTES_AT..header.size()]) != header.crc {
        return Err(malformed(header, "CRC32C mismatch"));
    }
    let body = records_body(batch, header)?;
    walk_records(&body, header, visit)
}

/// The batch `original` (with `header`) holding only `kept` (some of its
/// records, in order, at least one): same baseOffset, lastOffsetDelta,
/// producer id/epoch, baseSequence, attributes, leader epoch and
/// baseTimestamp; records recompressed with the same codec; maxTimestamp the
/// kept records' largest (CreateTime) or unchanged (LogAppendTime);
/// recordsCount and the CRC recomputed.
pub(crate) fn rebuild_batch(
    original: &[u8],
    header: &BatchHeader,
    kept: &[RecordView<'_>],
) -> Result<Vec<u8>, LogError> {
    let plain_len: usize = kept.iter().map(|r| r.bytes.len()).sum();
    let mut body = BytesMut::with_capacity(plain_len);
    let done = match header.compression() {
        0 => Uncompressed::compress(&mut body, |t| put_all(t, kept)),
        1 => Gzip::compress(&mut body, |t| put_all(t, kept)),
        2 => Snappy::compress(&mut body, |t| put_all(t, kept)),
        3 => Lz4::compress(&mut body, |t| put_all(t, kept)),
        4 => Zstd::compress(&mut body, |t| put_all(t, kept)),
        _ => return Err(malformed(header, "unknown compression codec")),
    };
    done.map_err(|e| LogError::RecordDecode {
        base_offset: header.base_offset,
        source: e.into(),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&original[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| malformed(header, "rebuilt batch too large"))?;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    if !header.is_log_append_time() {
        let max_ts = kept
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(header.max_timestamp);
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    let count = kept.len() as i32;
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Origin, validate};
    use crate::testing::{encode, record};
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

    fn keyed(n: i64, compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                value: if i == 2 {
                    None
                } else {
                    Some(Bytes::from(format!("v{i}")))
                },
                ..record(
                    i,
                    1000 + i,
                    Some(Bytes::from(format!("k{i}"))),
                    Bytes::new(),
                )
            })
            .collect();
        encode(&records, compression)
    }

    #[test]
    fn walks_and_rebuilds_every_codec_keeping_offsets() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = keyed(5, c).to_vec();
            b[..8].copy_from_slice(&100i64.to_be_bytes());
            let h = validate(&b, 0, None, Origin::Replica).expect("valid");
            let body = records_body(&b, &h).expect("body");
            let recs = parse_records(&body, &h).expect("records");
            assert_eq!(recs.len(), 5);
            assert_eq!(recs[3].offset, 103);
            assert_eq!(recs[3].key, Some(&b"k3"[..]));
            assert!(recs[2].tombstone && !recs[1].tombstone);
            // Keep offsets 101 and 103: base and lastOffsetDelta unchanged.
            let rebuilt = rebuild_batch(&b, &h, &[recs[1], recs[3]]).expect("rebuild");
            let nh = validate(&rebuilt, 0, None, Origin::Replica).expect("valid after rebuild");
            assert_eq!(nh.base_offset, 100);
            assert_eq!(nh.last_offset_delta, 4);
            assert_eq!(nh.records_count, 2);
            assert_eq!(nh.compression(), h.compression());
            assert_eq!(nh.base_sequence, h.base_sequence);
            assert_eq!(nh.max_timestamp, 1003);
            let decoded =
                RecordBatchDecoder::decode(&mut Bytes::from(rebuilt)).expect("client decodes");
            let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![101, 103], "{c:?}");
            assert_eq!(decoded.records[1].value.as_deref(), Some(&b"v3"[..]));
            assert_eq!(decoded.records[1].timestamp, 1003);
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let b = keyed(3, Compression::None).to_vec();
        let mut h = validate(&b, 0, None, Origin::Replica).expect("valid");
        let body = records_body(&b, &h).expect("body");
        assert!(parse_records(&body[..body.len() - 1], &h).is_err());
        h.records_count = 4;
        assert!(parse_records(&body, &h).is_err());
    }
}
