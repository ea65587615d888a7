//! Record batch (magic v2) headers: parsing, validation, and the leader's
//! in-place rewrites. Only the 61-byte header is ever interpreted here; the
//! records inside a batch are opaque bytes.

use crate::error::LogError;

/// Bytes before `batchLength`'s payload: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header.
pub const HEADER_LEN: usize = 61;
/// The only supported batch format.
pub const MAGIC_V2: i8 = 2;
/// baseOffset, batchLength, partitionLeaderEpoch, magic: the part of the
/// header the leader rewrites (outside the CRC).
pub const LEADER_PREFIX_LEN: usize = 17;

const LENGTH_AT: usize = 8;
const EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
pub(crate) const TRANSACTIONAL_BIT: i16 = 1 << 4;
pub(crate) const CONTROL_BIT: i16 = 1 << 5;

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&buf[at..at + N]);
    a
}

/// The fields of a v2 record batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the batchLength field; the batch is `12 + batch_length` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parse the header at the start of `buf`; `None` if fewer than 61 bytes.
    /// Nothing is validated.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, LENGTH_AT)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, EPOCH_AT)),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(be(buf, CRC_AT)),
            attributes: i16::from_be_bytes(be(buf, ATTRIBUTES_AT)),
            last_offset_delta: i32::from_be_bytes(be(buf, LAST_OFFSET_DELTA_AT)),
            base_timestamp: i64::from_be_bytes(be(buf, BASE_TIMESTAMP_AT)),
            max_timestamp: i64::from_be_bytes(be(buf, MAX_TIMESTAMP_AT)),
            producer_id: i64::from_be_bytes(be(buf, PRODUCER_ID_AT)),
            producer_epoch: i16::from_be_bytes(be(buf, PRODUCER_EPOCH_AT)),
            base_sequence: i32::from_be_bytes(be(buf, BASE_SEQUENCE_AT)),
            records_count: i32::from_be_bytes(be(buf, RECORDS_COUNT_AT)),
        })
    }

    /// Total size of the batch in bytes (0-length fields clamp to the overhead).
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`), saturating.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec id (attributes bits 0-2).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// Whether the batch carries LogAppendTime (attributes bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Who produced the bytes being validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A producer's batch on the leader: `recordsCount > 0` and
    /// `lastOffsetDelta == recordsCount - 1`, known compression codec.
    Client,
    /// Bytes written by a leader (follower fetch, recovery): offsets may have
    /// gaps inside a batch (compaction), so only `recordsCount <= lastOffsetDelta + 1`.
    Replica,
}

/// Validate the batch at the start of `buf` (which may continue past it):
/// magic 2, consistent lengths, size limit, CRC32C, counts.
/// `position` only labels errors.
pub(crate) fn validate(
    buf: &[u8],
    position: usize,
    max_size: Option<u32>,
    origin: Origin,
) -> Result<BatchHeader, LogError> {
    let corrupt = |reason| LogError::CorruptRecord { position, reason };
    if buf.len() <= MAGIC_AT {
        return Err(corrupt("truncated batch header"));
    }
    let magic = buf[MAGIC_AT] as i8;
    if magic != MAGIC_V2 {
        return Err(LogError::UnsupportedMagic { magic });
    }
    let header = BatchHeader::parse(buf).ok_or_else(|| corrupt("truncated batch header"))?;
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(corrupt("batchLength smaller than the header"));
    }
    let size = header.size();
    if size > buf.len() {
        return Err(corrupt("batch extends past the end of the buffer"));
    }
    if let Some(max) = max_size
        && size > max as usize
    {
        return Err(LogError::RecordTooLarge { size, max });
    }
    if crc32c::crc32c(&buf[ATTRIBUTES_AT..size]) != header.crc {
        return Err(corrupt("CRC32C mismatch"));
    }
    if header.last_offset_delta < 0 {
        return Err(LogError::InvalidRecord {
            reason: "negative lastOffsetDelta",
        });
    }
    match origin {
        Origin::Client => {
            if header.records_count <= 0 {
                return Err(LogError::InvalidRecord {
                    reason: "batch without records",
                });
            }
            if header.last_offset_delta != header.records_count - 1 {
                return Err(LogError::InvalidRecord {
                    reason: "lastOffsetDelta does not match recordsCount",
                });
            }
            if header.compression() > 4 {
                return Err(LogError::InvalidRecord {
                    reason: "unknown compression codec",
                });
            }
        }
        Origin::Replica => {
            if header.records_count < 0
                || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
            {
                return Err(LogError::InvalidRecord {
                    reason: "recordsCount inconsistent with lastOffsetDelta",
                });
            }
        }
    }
    // A client's baseOffset is ignored (the leader assigns offsets); stored
    // batches must carry real, non-overflowing offsets.
    if origin == Origin::Replica
        && (header.base_offset < 0
            || header
                .base_offset
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .is_none())
    {
        return Err(LogError::OffsetOverflow {
            offset: header.base_offset,
        });
    }
    Ok(header)
}

/// The leader's 17-byte prefix: new baseOffset and partitionLeaderEpoch,
/// the client's batchLength and magic.
pub(crate) fn leader_prefix(
    original: &[u8],
    base_offset: i64,
    leader_epoch: i32,
) -> [u8; LEADER_PREFIX_LEN] {
    let mut p = [0u8; LEADER_PREFIX_LEN];
    p.copy_from_slice(&original[..LEADER_PREFIX_LEN]);
    p[..8].copy_from_slice(&base_offset.to_be_bytes());
    p[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    p
}

/// The whole 61-byte header rewritten for LogAppendTime: the leader prefix plus
/// the timestamp-type attribute bit, `maxTimestamp = now`, and a CRC updated
/// without a second pass over the records (CRC is affine: the change of the
/// 40 header bytes inside the CRC is shifted over the rest of the batch with
/// `crc32c_combine`).
pub(crate) fn log_append_time_header(
    original: &[u8],
    batch_size: usize,
    base_offset: i64,
    leader_epoch: i32,
    now_ms: i64,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&original[..HEADER_LEN]);
    h[..LEADER_PREFIX_LEN].copy_from_slice(&leader_prefix(original, base_offset, leader_epoch));
    let attributes = i16::from_be_bytes(be(&h, ATTRIBUTES_AT)) | TIMESTAMP_TYPE_BIT;
    h[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    h[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());

    let old_crc = u32::from_be_bytes(be(original, CRC_AT));
    let mut delta = [0u8; HEADER_LEN - ATTRIBUTES_AT];
    for (i, d) in delta.iter_mut().enumerate() {
        *d = original[ATTRIBUTES_AT + i] ^ h[ATTRIBUTES_AT + i];
    }
    let zeros = [0u8; HEADER_LEN - ATTRIBUTES_AT];
    let diff = crc32c::crc32c(&delta) ^ crc32c::crc32c(&zeros);
    let shifted = crc32c::crc32c_combine(diff, 0, batch_size - HEADER_LEN);
    let new_crc = old_crc ^ shifted;
    h[CRC_AT..CRC_AT + 4].copy_from_slice(&new_crc.to_be_bytes());
    h
}

/// The header bytes the leader writes in front of a batch's untouched body.
pub(crate) enum Rewritten {
    Prefix([u8; LEADER_PREFIX_LEN]),
    Header([u8; HEADER_LEN]),
}

impl Rewritten {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Rewritten::Prefix(p) => p,
            Rewritten::Header(h) => h,
        }
    }
}

/// Split `records` into validated batches: (start position, header).
/// Replica data may end with a partial batch, which is left out.
pub(crate) fn split_batches(
    records: &[u8],
    max_size: Option<u32>,
    origin: Origin,
) -> Result<Vec<(usize, BatchHeader)>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if origin == Origin::Replica {
            match BatchHeader::parse(rest) {
                None => break,
                Some(h) if h.batch_length >= 0 && h.size() > rest.len() => break,
                Some(_) => {}
            }
        }
        let h = validate(rest, pos, max_size, origin)?;
        out.push((pos, h));
        pos += h.size();
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_util {
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record};

    use crate::testing::{encode, record};

    /// One v2 batch of `count` records with timestamps `ts0, ts0+1, ...`.
    pub fn batch(count: usize, ts0: i64, value_len: usize, compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| {
                record(
                    i as i64,
                    ts0 + i as i64,
                    Some(Bytes::from(format!("k{i}"))),
                    Bytes::from(vec![b'v'; value_len]),
                )
            })
            .collect();
        encode(&records, compression)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::batch;
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn parses_and_validates_an_encoded_batch() {
        let b = batch(3, 1000, 10, Compression::None);
        let h = validate(&b, 0, Some(1 << 20), Origin::Client).expect("valid");
        assert_eq!(h.size(), b.len());
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1002);
        assert!(!h.is_log_append_time());
    }

    #[test]
    fn rejects_bad_magic_crc_size_and_truncation() {
        let b = batch(2, 0, 10, Compression::None).to_vec();
        let mut m = b.clone();
        m[16] = 1;
        assert!(matches!(
            validate(&m, 0, None, Origin::Client),
            Err(LogError::UnsupportedMagic { magic: 1 })
        ));
        let mut c = b.clone();
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert!(matches!(
            validate(&c, 0, None, Origin::Client),
            Err(LogError::CorruptRecord { .. })
        ));
        assert!(matches!(
            validate(&b, 0, Some(10), Origin::Client),
            Err(LogError::RecordTooLarge { max: 10, .. })
        ));
        assert!(matches!(
            validate(&b[..b.len() - 1], 0, None, Origin::Client),
            Err(LogError::CorruptRecord { .. })
        ));
        assert!(validate(&b[..10], 0, None, Origin::Client).is_err());
        let mut l = b.clone();
        l[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            validate(&l, 0, None, Origin::Client),
            Err(LogError::CorruptRecord { .. })
        ));
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        for (count, len) in [(1, 0), (5, 100), (50, 1000)] {
            let b = batch(count, 42, len, Compression::None);
            let h = log_append_time_header(&b, b.len(), 77, 9, 123_456);
            let mut rewritten = h.to_vec();
            rewritten.extend_from_slice(&b[HEADER_LEN..]);
            let parsed = validate(&rewritten, 0, None, Origin::Replica).expect("crc still valid");
            assert!(parsed.is_log_append_time());
            assert_eq!(parsed.max_timestamp, 123_456);
            assert_eq!(parsed.base_offset, 77);
            assert_eq!(parsed.partition_leader_epoch, 9);
        }
    }
}
