//! One cleaning pass over a [`CleaningPlan`], run WITHOUT the log's lock:
//! build the offset map over the dirty range, then rewrite the sealed
//! segments below where the map stopped into `<base>.log.cleaned` files
//! (Kafka's `Cleaner.doClean`). Sealed segments are only read, through
//! their own file handles.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::cleaner::checkpoint::CleanerCheckpoint;
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::plan::CleanableRange;
use crate::cleaner::records::{parse_records, rebuild_batch, records_body};
use crate::error::LogError;
use crate::segment::{self, DetachedIndexes, LOG_SUFFIX};
use crate::txn_index::{self, AbortedTxn, TXN_INDEX_SUFFIX};

pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Read size when walking a segment's batches.
const READ_CHUNK: usize = 1 << 20;

/// A sealed segment as the plan saw it.
pub(crate) struct SourceSegment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub path: PathBuf,
    /// Shared with the log's file cache: the pass keeps it open even if
    /// the cache evicts it.
    pub file: Arc<File>,
    pub aborted_txns: Vec<AbortedTxn>,
}

/// What a pass cleans, taken under the log's lock (see `Log::plan_cleaning`).
pub struct CleaningPlan {
    pub(crate) dir: PathBuf,
    pub(crate) range: CleanableRange,
    /// Every sealed segment with offsets below `range.end`, oldest first.
    pub(crate) sources: Vec<SourceSegment>,
    /// Aborted transactions overlapping the range: producer id -> (first
    /// offset, marker offset).
    pub(crate) aborted: HashMap<i64, Vec<(i64, i64)>>,
    /// Producer id -> last offset of its last data batch: that batch is kept
    /// whole (see `filter_batch`).
    pub(crate) producer_last_batch: HashMap<i64, i64>,
    pub(crate) delete_retention_ms: i64,
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval_bytes: u32,
    /// The log's truncation count when planned: a swap after a truncation is refused.
    pub(crate) truncations: u64,
    /// When the offsets below the first dirty one were first cleaned.
    pub(crate) clean_times: CleanerCheckpoint,
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CleanerStats {
    /// Bytes of the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the cleaned segments.
    pub bytes_written: u64,
    /// Bytes read to build the offset map (the dirty range).
    pub map_bytes_read: u64,
    pub records_read: u64,
    pub records_removed: u64,
    pub batches_removed: u64,
    pub tombstones_removed: u64,
    pub aborted_batches_removed: u64,
    /// Keys in the offset map.
    pub map_keys: usize,
    /// Bytes of the offset map's table.
    pub map_memory_bytes: usize,
    /// Dirty ratio when planned.
    pub dirty_ratio: f64,
    pub duration: Duration,
}

/// One cleaned segment: the file `<base>.log.cleaned` replacing `sources`.
pub(crate) struct CleanedGroup {
    /// (base offset, size, next offset) of each segment it replaces.
    pub sources: Vec<(i64, u64, i64)>,
    pub indexes: DetachedIndexes,
}

impl CleanedGroup {
    pub(crate) fn base_offset(&self) -> i64 {
        self.sources[0].0
    }
}

/// A pass's output, to swap in under the log's lock (`Log::swap_cleaned`).
pub struct CleanedLog {
    pub(crate) dir: PathBuf,
    pub(crate) groups: Vec<CleanedGroup>,
    /// The next pass's first dirty offset.
    pub(crate) map_end: i64,
    pub(crate) truncations: u64,
    /// The pass's clock: the newly cleaned range's first clean time.
    pub(crate) now_ms: i64,
    pub stats: CleanerStats,
}

impl CleanedLog {
    /// Remove the `.cleaned` files (the swap was refused or failed).
    pub fn discard(self) {
        for g in &self.groups {
            for suffix in [LOG_SUFFIX, TXN_INDEX_SUFFIX] {
                let path = cleaned_path(&self.dir, g.base_offset(), suffix);
                if let Err(err) = std::fs::remove_file(&path)
                    && err.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), %err, "cannot remove a cleaned file");
                }
            }
        }
    }

    /// The offset the next pass starts its dirty range at.
    pub fn map_end(&self) -> i64 {
        self.map_end
    }
}

pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{}{CLEANED_SUFFIX}",
        segment::file_name(base, suffix)
    ))
}

pub(crate) fn swap_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}{SWAP_SUFFIX}", segment::file_name(base, suffix)))
}

/// Walks the batches of a segment file through a read buffer; only framing
/// is checked (the data was validated when appended or recovered).
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> BatchReader<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, size: u64) -> Self {
        BatchReader {
            file,
            path,
            size,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn ensure(&mut self, len: usize) -> Result<(), LogError> {
        let have = self.buf_start + self.buf.len() as u64;
        if self.pos >= self.buf_start && self.pos + len as u64 <= have {
            return Ok(());
        }
        let want = (self.size - self.pos).min(READ_CHUNK.max(len) as u64) as usize;
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, self.pos)
            .map_err(LogError::io("reading", self.path))?;
        self.buf_start = self.pos;
        Ok(())
    }

    /// The next batch: its header and bytes.
    pub(crate) fn next_batch(&mut self) -> Result<Option<(BatchHeader, &[u8])>, LogError> {
        if self.pos >= self.size {
            return Ok(None);
        }
        let corrupt = LogError::CorruptSegment {
            path: self.path.to_owned(),
            position: self.pos,
        };
        if self.size - self.pos < HEADER_LEN as u64 {
            return Err(corrupt);
        }
        self.ensure(HEADER_LEN)?;
        let off = (self.pos - self.buf_start) as usize;
        let Some(h) = BatchHeader::parse(&self.buf[off..]) else {
            return Err(corrupt);
        };
        if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
            || h.size() as u64 > self.size - self.pos
        {
            return Err(corrupt);
        }
        self.ensure(h.size())?;
        let off = (self.pos - self.buf_start) as usize;
        self.pos += h.size() as u64;
        Ok(Some((h, &self.buf[off..off + h.size()])))
    }
}

/// What happens to one batch.
enum Decision {
    Keep,
    Drop {
        aborted: bool,
    },
    Rebuilt {
        bytes: Vec<u8>,
        removed: u64,
        tombstones: u64,
    },
    /// Every record goes.
    Empty {
        removed: u64,
        tombstones: u64,
    },
}

impl CleaningPlan {
    /// The cleanable range this plan was made for.
    pub fn range(&self) -> CleanableRange {
        self.range
    }

    /// Whether the tombstone at `offset` was first cleaned at least
    /// `delete.retention.ms` ago.
    fn tombstone_expired(&self, offset: i64, now_ms: i64) -> bool {
        self.clean_times
            .first_cleaned_at(offset)
            .is_some_and(|t| t.saturating_add(self.delete_retention_ms) <= now_ms)
    }

    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && self.aborted.get(&h.producer_id).is_some_and(|txns| {
                txns.iter()
                    .any(|&(first, marker)| first <= h.base_offset && h.base_offset < marker)
            })
    }

    /// Run the pass: build the offset map (at most `map_memory_bytes`), then
    /// write the cleaned segments with `io_buffer_bytes` write buffers. The
    /// `.cleaned` files are left for [`crate::Log::swap_cleaned`] (or
    /// [`CleanedLog::discard`]).
    pub fn clean(
        self,
        map_memory_bytes: usize,
        io_buffer_bytes: usize,
        now_ms: i64,
    ) -> Result<CleanedLog, LogError> {
        let started = Instant::now();
        let mut stats = CleanerStats {
            dirty_ratio: self.range.dirty_ratio(),
            ..CleanerStats::default()
        };
        let (map, map_end) = self.build_offset_map(map_memory_bytes, &mut stats)?;
        stats.map_keys = map.len();
        stats.map_memory_bytes = map.memory_bytes();
        let mut groups = Vec::new();
        if map_end > self.range.first_dirty {
            let result = self.write_groups(
                &map,
                map_end,
                io_buffer_bytes,
                now_ms,
                &mut stats,
                &mut groups,
            );
            if let Err(err) = result {
                CleanedLog {
                    dir: self.dir.clone(),
                    groups,
                    map_end,
                    truncations: self.truncations,
                    now_ms,
                    stats,
                }
                .discard();
                return Err(err);
            }
        }
        if !groups.is_empty() {
            // The new files' directory entries, durable now, outside the
            // log's lock: the swap's fsyncs under it then have little to do.
            if let Err(err) = crate::checkpoint::sync_dir(&self.dir) {
                CleanedLog {
                    dir: self.dir.clone(),
                    groups,
                    map_end,
                    truncations: self.truncations,
                    now_ms,
                    stats,
                }
                .discard();
                return Err(err);
            }
        }
        stats.duration = started.elapsed();
        Ok(CleanedLog {
            dir: self.dir,
            groups,
            map_end,
            truncations: self.truncations,
            now_ms,
            stats,
        })
    }

    /// Key -> last offset over `[first_dirty, end)`, skipping control
    /// batches, aborted transactions' batches and keyless records (Kafka
    /// does the same: an aborted record must not hide the value before it).
    /// Returns the map and where it stops: `end`, or the first record that
    /// did not fit (the rest of the range stays dirty for the next pass),
    /// or the base of a batch straddling `end`.
    fn build_offset_map(
        &self,
        memory: usize,
        stats: &mut CleanerStats,
    ) -> Result<(OffsetMap, i64), LogError> {
        let CleanableRange {
            first_dirty, end, ..
        } = self.range;
        let span = u64::try_from(end - first_dirty).unwrap_or(0);
        let mut map = OffsetMap::new(memory, span);
        for src in self.sources.iter().filter(|s| s.next_offset > first_dirty) {
            let mut reader = BatchReader::new(&src.file, &src.path, src.size);
            while let Some((h, bytes)) = reader.next_batch()? {
                if h.last_offset() < first_dirty {
                    continue;
                }
                if h.last_offset() >= end {
                    return Ok((map, h.base_offset.clamp(first_dirty, end)));
                }
                stats.map_bytes_read += h.size() as u64;
                if h.is_control() || self.is_aborted(&h) {
                    continue;
                }
                let body = records_body(bytes, &h)?;
                for r in parse_records(&body, &h)? {
                    if r.offset < first_dirty {
                        continue;
                    }
                    if let Some(key) = r.key
                        && !map.put(key, r.offset)
                    {
                        return Ok((map, r.offset));
                    }
                }
            }
        }
        Ok((map, end))
    }

    /// Rewrite the sources below `map_end`, in groups that stay below
    /// `segment.bytes` (and u32 positions and relative offsets).
    fn write_groups(
        &self,
        map: &OffsetMap,
        map_end: i64,
        io_buffer: usize,
        now_ms: i64,
        stats: &mut CleanerStats,
        groups: &mut Vec<CleanedGroup>,
    ) -> Result<(), LogError> {
        let sources: Vec<&SourceSegment> = self
            .sources
            .iter()
            .filter(|s| s.base_offset < map_end)
            .collect();
        let limit = self.segment_bytes.min(u64::from(u32::MAX));
        let mut i = 0;
        while i < sources.len() {
            let base = sources[i].base_offset;
            let mut j = i + 1;
            let mut bytes = sources[i].size;
            while j < sources.len()
                && bytes + sources[j].size <= limit
                && sources[j].next_offset - base <= i64::from(u32::MAX)
            {
                bytes += sources[j].size;
                j += 1;
            }
            let group = self.write_group(&sources[i..j], map, map_end, io_buffer, now_ms, stats)?;
            groups.push(group);
            i = j;
        }
        Ok(())
    }

    fn write_group(
        &self,
        sources: &[&SourceSegment],
        map: &OffsetMap,
        map_end: i64,
        io_buffer: usize,
        now_ms: i64,
        stats: &mut CleanerStats,
    ) -> Result<CleanedGroup, LogError> {
        let base = sources[0].base_offset;
        let path = cleaned_path(&self.dir, base, LOG_SUFFIX);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(LogError::io("creating", &path))?;
        let mut out = BufWriter::with_capacity(io_buffer.max(4096), file);
        let mut indexes = DetachedIndexes::new(base, self.index_interval_bytes);
        let mut aborted_txns = Vec::new();
        for src in sources {
            stats.bytes_read += src.size;
            aborted_txns.extend_from_slice(&src.aborted_txns);
            let mut reader = BatchReader::new(&src.file, &src.path, src.size);
            while let Some((h, bytes)) = reader.next_batch()? {
                let written: &[u8] =
                    match self.filter_batch(&h, bytes, map, map_end, now_ms, stats)? {
                        Decision::Keep => bytes,
                        Decision::Drop { aborted } => {
                            stats.batches_removed += 1;
                            stats.aborted_batches_removed += u64::from(aborted);
                            stats.records_removed += h.records_count.max(0) as u64;
                            continue;
                        }
                        Decision::Empty {
                            removed,
                            tombstones,
                        } => {
                            stats.batches_removed += 1;
                            stats.records_removed += removed;
                            stats.tombstones_removed += tombstones;
                            continue;
                        }
                        Decision::Rebuilt {
                            bytes: rebuilt,
                            removed,
                            tombstones,
                        } => {
                            stats.records_removed += removed;
                            stats.tombstones_removed += tombstones;
                            let nh =
                                BatchHeader::parse(&rebuilt).ok_or(LogError::MalformedRecords {
                                    base_offset: h.base_offset,
                                    reason: "rebuilt batch has no header",
                                })?;
                            out.write_all(&rebuilt)
                                .map_err(LogError::io("writing", &path))?;
                            indexes.on_batch(&nh);
                            continue;
                        }
                    };
                out.write_all(written)
                    .map_err(LogError::io("writing", &path))?;
                indexes.on_batch(&h);
            }
            indexes.extend_to(src.next_offset);
        }
        let file = out.into_inner().map_err(|e| LogError::Io {
            context: "writing",
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(LogError::io("syncing", &path))?;
        stats.bytes_written += indexes.size();
        txn_index::write_entries(
            &cleaned_path(&self.dir, base, TXN_INDEX_SUFFIX),
            &aborted_txns,
        )?;
        Ok(CleanedGroup {
            sources: sources
                .iter()
                .map(|s| (s.base_offset, s.size, s.next_offset))
                .collect(),
            indexes,
        })
    }

    /// Kafka's rules, per batch:
    /// - control batches (transaction markers) are kept: Fjord never removes
    ///   them (a marker whose transaction's data is gone is ~80 bytes; see
    ///   docs/compatibility.md);
    /// - the last data batch of each producer id is kept whole, whatever
    ///   the map says: the producer state (epoch, last sequences) must
    ///   still rebuild from the log after a restart without snapshots, and
    ///   a retry of that batch must still be recognised;
    /// - batches of aborted transactions go;
    /// - otherwise a record stays if it is past the map's range, keyless
    ///   (cannot exist on a compacted topic: the leader refuses them; kept
    ///   if found), or the latest for its key; a latest tombstone goes
    ///   `delete.retention.ms` after the pass that first cleaned it.
    fn filter_batch(
        &self,
        h: &BatchHeader,
        bytes: &[u8],
        map: &OffsetMap,
        map_end: i64,
        now_ms: i64,
        stats: &mut CleanerStats,
    ) -> Result<Decision, LogError> {
        if h.is_control() {
            return Ok(Decision::Keep);
        }
        if h.producer_id >= 0
            && self.producer_last_batch.get(&h.producer_id) == Some(&h.last_offset())
        {
            return Ok(Decision::Keep);
        }
        if self.is_aborted(h) {
            return Ok(Decision::Drop { aborted: true });
        }
        if h.base_offset >= map_end {
            return Ok(Decision::Keep);
        }
        let body = records_body(bytes, h)?;
        let records = parse_records(&body, h)?;
        stats.records_read += records.len() as u64;
        let mut tombstones = 0;
        let kept: Vec<_> = records
            .iter()
            .copied()
            .filter(|r| {
                if r.offset >= map_end {
                    return true;
                }
                let Some(key) = r.key else { return true };
                let latest = map.get(key).is_none_or(|o| r.offset >= o);
                if latest && r.tombstone && self.tombstone_expired(r.offset, now_ms) {
                    tombstones += 1;
                    return false;
                }
                latest
            })
            .collect();
        let removed = (records.len() - kept.len()) as u64;
        Ok(if removed == 0 {
            Decision::Keep
        } else if kept.is_empty() {
            Decision::Empty {
                removed,
                tombstones,
            }
        } else {
            Decision::Rebuilt {
                bytes: rebuild_batch(bytes, h, &kept)?,
                removed,
                tombstones,
            }
        })
    }
}
