//! Producer state snapshot files: `<dir>/<20-digit offset>.snapshot` holds
//! the producers' state as of that offset (every batch below it applied,
//! none at or above it), as Kafka names them.
//!
//! # Format (version 1, big-endian; Fjord's own, Kafka's field list plus the cached batches)
//! ```text
//! u16 version = 1
//! u32 crc32c of every byte after this field
//! i64 offset                       the state's offset; must match the file name
//! u32 producer count
//! per producer:
//!   i64 producer id
//!   i16 producer epoch
//!   i64 last timestamp
//!   i32 coordinator epoch          -1: none
//!   i64 current txn first offset   -1: none
//!   u8  batch count                0..=5, oldest first
//!   per batch: i32 first seq, i32 last seq, i64 first offset, i32 last offset delta
//! ```
//! Version 1 already had the coordinator epoch and the open transaction's
//! first offset, written as -1 before transactions existed: with them a v1
//! file means the same, so the format did not change (and files written
//! before transactions load as they are). Completed transactions whose
//! marker was not yet below the high watermark are not in snapshots (as
//! in Kafka's); those the load replays after the snapshot are tracked again.
//!
//! Kafka's snapshot keeps only the last batch per producer, so after a
//! restart it recognises a retry of that batch only; this one keeps all five,
//! so any retry still in flight is answered as before the restart.
//!
//! Files are written like checkpoints (temp file, fsync, rename, directory
//! fsync): a snapshot file is whole or absent. A file that does not decode
//! (bad CRC, bad lengths, unknown version) is [`LogError::CorruptProducerSnapshot`];
//! the loader skips it and falls back to an older one.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::entry::{BatchMetadata, CACHED_BATCHES, ProducerStateEntry};
use crate::checkpoint;
use crate::error::LogError;
use crate::recovery::parse_segment_name;
use crate::segment;

pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 2 + 4 + 8 + 4;
const ENTRY_LEN: usize = 8 + 2 + 8 + 4 + 8 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 4;

pub(crate) fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment::file_name(offset, SNAPSHOT_SUFFIX))
}

/// Encode the producers' state as of `offset`.
pub(crate) fn encode<'a>(
    offset: i64,
    producers: impl ExactSizeIterator<Item = (&'a i64, &'a ProducerStateEntry)>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + producers.len() * (ENTRY_LEN + BATCH_LEN));
    buf.extend_from_slice(&VERSION.to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&offset.to_be_bytes());
    let count_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for (&pid, e) in producers {
        count += 1;
        buf.extend_from_slice(&pid.to_be_bytes());
        buf.extend_from_slice(&e.epoch.to_be_bytes());
        buf.extend_from_slice(&e.last_timestamp.to_be_bytes());
        buf.extend_from_slice(&e.coordinator_epoch.unwrap_or(-1).to_be_bytes());
        buf.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        // At most CACHED_BATCHES (5): fits in a u8.
        buf.push(e.batches.len().min(CACHED_BATCHES) as u8);
        for b in e.batches.iter().take(CACHED_BATCHES) {
            buf.extend_from_slice(&b.first_seq.to_be_bytes());
            buf.extend_from_slice(&b.last_seq.to_be_bytes());
            buf.extend_from_slice(&b.first_offset.to_be_bytes());
            buf.extend_from_slice(&b.offset_delta.to_be_bytes());
        }
    }
    buf[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&buf[6..]);
    buf[2..6].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Reads big-endian fields off a byte slice; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Why a snapshot does not decode (the text of `CorruptProducerSnapshot`).
fn decode(bytes: &[u8], offset: i64) -> Result<HashMap<i64, ProducerStateEntry>, &'static str> {
    let mut r = Reader(bytes);
    if r.take::<2>().map(u16::from_be_bytes) != Some(VERSION) {
        return Err("unknown version");
    }
    let crc = r.u32().ok_or("truncated header")?;
    if crc32c::crc32c(r.0) != crc {
        return Err("CRC mismatch");
    }
    if r.i64() != Some(offset) {
        return Err("offset differs from the file name");
    }
    let count = r.u32().ok_or("truncated header")? as usize;
    if count > r.0.len() / ENTRY_LEN {
        return Err("producer count exceeds the file");
    }
    let mut producers = HashMap::with_capacity(count);
    for _ in 0..count {
        let entry = (|| {
            let pid = r.i64()?;
            let mut e = ProducerStateEntry::new(r.i16()?);
            e.last_timestamp = r.i64()?;
            e.coordinator_epoch = Some(r.i32()?).filter(|&c| c >= 0);
            e.current_txn_first_offset = Some(r.i64()?).filter(|&o| o >= 0);
            let batches = usize::from(r.u8()?);
            if batches > CACHED_BATCHES {
                return None;
            }
            e.batches = (0..batches)
                .map(|_| {
                    Some(BatchMetadata {
                        first_seq: r.i32()?,
                        last_seq: r.i32()?,
                        first_offset: r.i64()?,
                        offset_delta: r.i32()?,
                    })
                })
                .collect::<Option<VecDeque<_>>>()?;
            Some((pid, e))
        })()
        .ok_or("truncated or malformed producer entry")?;
        producers.insert(entry.0, entry.1);
    }
    if !r.0.is_empty() {
        return Err("trailing bytes");
    }
    Ok(producers)
}

/// Write the snapshot at `offset` durably, replacing any file of that name.
pub(crate) fn write(dir: &Path, offset: i64, bytes: &[u8]) -> Result<(), LogError> {
    let name = segment::file_name(offset, SNAPSHOT_SUFFIX);
    checkpoint::write_atomic(dir, &name, bytes)
}

/// Read the snapshot at `offset`.
pub(crate) fn read(dir: &Path, offset: i64) -> Result<HashMap<i64, ProducerStateEntry>, LogError> {
    let path = path(dir, offset);
    let bytes = fs::read(&path).map_err(LogError::io("reading", &path))?;
    decode(&bytes, offset).map_err(|reason| LogError::CorruptProducerSnapshot { path, reason })
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io("listing", dir))? {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        if let Some(offset) = entry
            .file_name()
            .to_str()
            .and_then(|name| parse_segment_name(name, SNAPSHOT_SUFFIX))
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Delete the snapshot at `offset` (already gone is fine).
pub(crate) fn delete(dir: &Path, offset: i64) -> Result<(), LogError> {
    let path = path(dir, offset);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::Io {
            context: "deleting",
            path,
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: i16, batches: &[(i32, i32, i64, i32)]) -> ProducerStateEntry {
        let mut e = ProducerStateEntry::new(epoch);
        e.last_timestamp = 1_234;
        e.batches = batches
            .iter()
            .map(
                |&(first_seq, last_seq, first_offset, offset_delta)| BatchMetadata {
                    first_seq,
                    last_seq,
                    first_offset,
                    offset_delta,
                },
            )
            .collect();
        e
    }

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let mut producers = HashMap::new();
        producers.insert(7, entry(3, &[(0, 2, 10, 2), (3, 3, 20, 0)]));
        producers.insert(9, entry(0, &[]));
        let mut five = entry(1, &[(0, 0, 1, 0); 5]);
        five.coordinator_epoch = Some(4);
        five.current_txn_first_offset = Some(1);
        producers.insert(i64::MAX, five);
        let bytes = encode(42, producers.iter());
        assert_eq!(decode(&bytes, 42), Ok(producers.clone()));
        assert_eq!(decode(&bytes, 43), Err("offset differs from the file name"));

        // Any flipped bit and any cut is refused, never a panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b, 42).is_err(), "flip at {i}");
            assert!(decode(&bytes[..i], 42).is_err(), "cut at {i}");
        }
        // An empty state round-trips too.
        let empty = encode(0, HashMap::<i64, ProducerStateEntry>::new().iter());
        assert_eq!(decode(&empty, 0), Ok(HashMap::new()));
    }

    #[test]
    fn files_are_listed_by_offset_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = encode(5, HashMap::<i64, ProducerStateEntry>::new().iter());
        write(dir.path(), 5, &bytes).expect("write");
        write(
            dir.path(),
            100,
            &encode(100, HashMap::<i64, ProducerStateEntry>::new().iter()),
        )
        .expect("write");
        fs::write(dir.path().join("00000000000000000005.log"), b"").expect("segment");
        assert_eq!(list(dir.path()).expect("list"), vec![5, 100]);
        assert_eq!(read(dir.path(), 5).expect("read"), HashMap::new());
        delete(dir.path(), 5).expect("delete");
        delete(dir.path(), 5).expect("delete again");
        assert_eq!(list(dir.path()).expect("list"), vec![100]);
        assert!(matches!(read(dir.path(), 5), Err(LogError::Io { .. })));
    }
}
