//! `LogSegment`: one `.log` file of whole batches plus its in-memory
//! `OffsetIndex` and `TimeIndex` (persisted as `.index` / `.timeindex`) and
//! its `TransactionIndex` of aborted transactions (`.txnindex`). The `.log`
//! file is opened through the node's [`FileCache`] when first used, not when
//! the segment is loaded.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use crate::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD, Origin};
use crate::error::LogError;
use crate::file_cache::{CachedFile, FileCache};
use crate::flush::SyncTarget;
use crate::offset_index::OffsetIndex;
use crate::time_index::TimeIndex;
use crate::txn_index::{AbortedTxn, TransactionIndex, TxnIndexSearch};

/// Read size when validating whole batches (recovery).
const SCAN_CHUNK: usize = 1 << 20;
/// Read size when walking headers from an index entry (a few index intervals).
pub(crate) const HEADER_WALK_CHUNK: usize = 16 * 1024;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// Kafka's segment file name: the base offset in 20 digits.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// A batch placed in a segment by an append.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlacedBatch {
    pub base_offset: i64,
    pub max_timestamp: i64,
    pub size: u64,
}

/// What a walk over batch headers is told to do next.
pub(crate) enum Visit<T> {
    Next,
    Stop(T),
    Invalid,
}

/// How a walk ended.
pub(crate) enum Scan<T> {
    Stopped(T),
    /// Reached the end of the segment.
    End,
    /// Bytes at this position are not a batch (torn or corrupt).
    Invalid(u64),
}

/// Everything derived from the batches of a segment, rebuilt by a scan.
#[derive(Debug)]
struct Derived {
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    /// Largest batch maxTimestamp; -1 when none.
    max_timestamp: i64,
    /// Base offset of the (first) batch holding `max_timestamp`; -1 when none.
    offset_of_max_timestamp: i64,
}

impl Derived {
    fn new() -> Self {
        Derived {
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
        }
    }

    /// Account for a batch written at `position`. Offset-index entries are
    /// added every `interval` bytes; the time index gets an entry at the same
    /// moments when the largest timestamp grew.
    fn on_batch(&mut self, segment_base: i64, position: u64, b: &PlacedBatch, interval: u32) {
        let first = self.offset_of_max_timestamp < 0;
        if first || b.max_timestamp > self.max_timestamp {
            self.max_timestamp = b.max_timestamp;
            self.offset_of_max_timestamp = b.base_offset;
        }
        if self.bytes_since_last_index_entry >= u64::from(interval) && position > 0 {
            // Relative offsets and positions fit in u32: enforced before appending.
            let rel = (b.base_offset - segment_base) as u32;
            self.offset_index.append(rel, position as u32);
            let max_rel = (self.offset_of_max_timestamp - segment_base) as u32;
            self.time_index.maybe_append(self.max_timestamp, max_rel);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += b.size;
    }
}

/// What `segment.ms` counts from (Kafka's `rollingBasedTimestamp`): the
/// first batch's max timestamp, compared with the max timestamp of the
/// batches being appended, so that a roll follows the records' time, not
/// the broker's; only a first batch without a timestamp (-1) falls back to
/// the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RollingBase {
    Timestamp(i64),
    WallClock(i64),
}

impl RollingBase {
    pub(crate) fn of_first_batch(max_timestamp: i64, now_ms: i64) -> Self {
        if max_timestamp >= 0 {
            RollingBase::Timestamp(max_timestamp)
        } else {
            RollingBase::WallClock(now_ms)
        }
    }

    /// Kafka's `timeWaitedForRoll`.
    pub(crate) fn waited(self, now_ms: i64, incoming_max_timestamp: i64) -> i64 {
        match self {
            RollingBase::Timestamp(ts) => incoming_max_timestamp.saturating_sub(ts),
            RollingBase::WallClock(at) => now_ms.saturating_sub(at),
        }
    }
}

/// The indexes of a segment file written outside the log (the cleaner's
/// output), built batch by batch as it is written, so that installing the
/// segment under the log's lock needs no rescan.
#[derive(Debug)]
pub(crate) struct DetachedIndexes {
    base_offset: i64,
    interval: u32,
    position: u64,
    next_offset: i64,
    derived: Derived,
}

impl DetachedIndexes {
    pub(crate) fn new(base_offset: i64, index_interval_bytes: u32) -> Self {
        DetachedIndexes {
            base_offset,
            interval: index_interval_bytes,
            position: 0,
            next_offset: base_offset,
            derived: Derived::new(),
        }
    }

    /// A batch (already validated) was written at the end of the file.
    pub(crate) fn on_batch(&mut self, header: &BatchHeader) {
        let placed = PlacedBatch {
            base_offset: header.base_offset,
            max_timestamp: header.max_timestamp,
            size: header.size() as u64,
        };
        self.derived
            .on_batch(self.base_offset, self.position, &placed, self.interval);
        self.position += placed.size;
        self.next_offset = header.next_offset();
    }

    /// Bytes written so far.
    pub(crate) fn size(&self) -> u64 {
        self.position
    }

    /// The segment's offsets end at `offset` at least (the batches of the
    /// sources' tail may all have been removed).
    pub(crate) fn extend_to(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset);
    }
}

pub(crate) struct LogSegment {
    base_offset: i64,
    index_path: PathBuf,
    time_index_path: PathBuf,
    /// The `.log` file, opened read + append while the cache keeps it:
    /// writes go to the end, reads use `read_at`. Its handles are shared
    /// with [`SegmentReader`]s, which read outside the log's lock.
    file: CachedFile,
    /// Bumped before the file is cut (`truncate_to_position`), the only
    /// operation that can change bytes below `size` in place: a
    /// [`SegmentReader`] that sees it move discards what it read.
    truncations: Arc<AtomicU64>,
    /// Bytes of whole, accepted batches (the file is never longer after a
    /// successful operation).
    size: u64,
    /// Offset after the last batch; `base_offset` when empty.
    next_offset: i64,
    derived: Derived,
    /// What `segment.ms` counts from; `None` when empty.
    rolling_base: Option<RollingBase>,
    /// Log data written since the last fsync.
    unsynced: bool,
    /// The index files do not reflect `derived` yet.
    indexes_dirty: bool,
    /// The index files were written but not fsynced.
    indexes_unsynced: bool,
    /// `derived` and `next_offset` come from a scan (or appends), not from
    /// index files (which leave `next_offset` at the next segment's base and
    /// only know the indexed batches).
    exact: bool,
    /// Aborted transactions whose marker is in this segment. Unlike the
    /// other indexes it cannot be rebuilt from the segment alone (it needs
    /// the producer state): a rebuild only drops entries past the data, and
    /// the log's producer-state replay adds missing ones back.
    txn_index: TransactionIndex,
}

impl LogSegment {
    /// Create an empty segment (replacing any leftover file of that name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        files: &FileCache,
    ) -> Result<LogSegment, LogError> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(LogError::io("creating segment", &log_path))?;
        file.set_len(0)
            .map_err(LogError::io("truncating segment", &log_path))?;
        let txn_index = TransactionIndex::open(dir, base_offset)?;
        let file = files.insert(log_path, file);
        let mut seg = Self::with_file(dir, base_offset, file, 0, txn_index);
        seg.txn_index.truncate_to(i64::MIN)?;
        seg.indexes_dirty = true;
        Ok(seg)
    }

    /// An existing segment file, not opened (its size from a `stat`); call
    /// `rebuild` or `load_indexes` next.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        files: &FileCache,
    ) -> Result<LogSegment, LogError> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let size = fs::metadata(&log_path)
            .map_err(LogError::io("reading metadata of", &log_path))?
            .len();
        let txn_index = TransactionIndex::open(dir, base_offset)?;
        Ok(Self::with_file(
            dir,
            base_offset,
            files.lazy(log_path),
            size,
            txn_index,
        ))
    }

    /// Open the segment file at `base_offset` that the cleaner wrote (and
    /// swapped in), with the indexes built while writing it; sealed, its
    /// index files written (fsynced by the next flush (`take_sync`)).
    pub(crate) fn open_cleaned(
        dir: &Path,
        indexes: DetachedIndexes,
        files: &FileCache,
    ) -> Result<LogSegment, LogError> {
        let mut seg = Self::open(dir, indexes.base_offset, files)?;
        if seg.size != indexes.position {
            return Err(LogError::CorruptSegment {
                path: seg.log_path().to_owned(),
                position: seg.size.min(indexes.position),
            });
        }
        seg.derived = indexes.derived;
        seg.next_offset = indexes.next_offset;
        seg.exact = true;
        seg.indexes_dirty = true;
        seg.unsynced = true;
        seg.seal();
        seg.write_indexes()?;
        Ok(seg)
    }

    /// The path of the `.log` file.
    pub(crate) fn log_path(&self) -> &Path {
        self.file.path()
    }

    /// The open `.log` file (opened now if the cache had closed it). Also
    /// for reads outside the log's lock (the cleaner; a sealed segment's
    /// file only ever shrinks by a truncation, which the cleaner detects
    /// before swapping).
    pub(crate) fn file_handle(&self) -> Result<Arc<File>, LogError> {
        self.file
            .get()
            .map_err(LogError::io("opening segment", self.file.path()))
    }

    fn with_file(
        dir: &Path,
        base_offset: i64,
        file: CachedFile,
        size: u64,
        txn_index: TransactionIndex,
    ) -> Self {
        LogSegment {
            base_offset,
            index_path: dir.join(file_name(base_offset, INDEX_SUFFIX)),
            time_index_path: dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            file,
            truncations: Arc::new(AtomicU64::new(0)),
            size,
            next_offset: base_offset,
            derived: Derived::new(),
            rolling_base: None,
            unsynced: false,
            indexes_dirty: false,
            indexes_unsynced: false,
            exact: true,
            txn_index,
        }
    }

    /// Record an aborted transaction whose marker is in this segment, unless
    /// the index has it already (a replay after recovery adds only what a
    /// crash lost: entries are ordered by marker offset).
    pub(crate) fn append_aborted_txn(&mut self, txn: AbortedTxn) -> Result<(), LogError> {
        if self
            .txn_index
            .last_offset()
            .is_some_and(|last| last >= txn.last_offset)
        {
            return Ok(());
        }
        self.txn_index.append(txn)
    }

    /// Aborted transactions of this segment overlapping `[fetch_offset, upper_bound)`.
    pub(crate) fn collect_aborted_txns(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
    ) -> TxnIndexSearch {
        self.txn_index.collect(fetch_offset, upper_bound)
    }

    /// fsync the transaction index if it has new entries (at a roll: the
    /// producer-state replay after a crash starts at the newest snapshot,
    /// so the index of every segment below it must be durable).
    pub(crate) fn sync_txn_index(&mut self) -> Result<(), LogError> {
        self.txn_index.sync()
    }

    pub(crate) fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.derived.max_timestamp
    }

    pub(crate) fn offset_of_max_timestamp(&self) -> i64 {
        self.derived.offset_of_max_timestamp
    }

    pub(crate) fn rolling_base(&self) -> Option<RollingBase> {
        self.rolling_base
    }

    pub(crate) fn set_rolling_base(&mut self, base: Option<RollingBase>) {
        self.rolling_base = base;
    }

    /// Whether offsets up to `last_offset` are addressable relative to this
    /// segment's base (u32, as the index stores them).
    pub(crate) fn can_hold_offset(&self, last_offset: i64) -> bool {
        last_offset >= self.base_offset && last_offset - self.base_offset <= i64::from(u32::MAX)
    }

    pub(crate) fn offset_index_entries(&self) -> usize {
        self.derived.offset_index.len()
    }

    pub(crate) fn time_index_entries(&self) -> usize {
        self.derived.time_index.len()
    }

    /// Append already-validated batches with one vectored write loop.
    /// `slices` hold exactly the bytes of `batches`, in order. On a failed
    /// write the file is cut back to its previous size.
    pub(crate) fn append(
        &mut self,
        slices: &mut [IoSlice<'_>],
        batches: &[PlacedBatch],
        next_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let file = self.file_handle()?;
        if let Err(e) = write_all_vectored(&file, slices) {
            if let Err(cut) = file.set_len(self.size) {
                tracing::error!(path = %self.log_path().display(), error = %cut,
                    "cannot cut a failed append back; the log dir needs attention");
            }
            return Err(LogError::Io {
                context: "appending to",
                path: self.log_path().to_owned(),
                source: e,
            });
        }
        let mut position = self.size;
        for b in batches {
            self.derived
                .on_batch(self.base_offset, position, b, index_interval_bytes);
            position += b.size;
        }
        self.size = position;
        self.next_offset = next_offset;
        if self.rolling_base.is_none() {
            self.rolling_base = Some(RollingBase::of_first_batch(
                batches.first().map_or(-1, |b| b.max_timestamp),
                now_ms,
            ));
        }
        self.unsynced = true;
        self.indexes_dirty = true;
        Ok(())
    }

    /// Make the next flush (`take_sync`) fsync the log file.
    pub(crate) fn mark_unsynced(&mut self) {
        self.unsynced = true;
    }

    /// Read `len` bytes at `position` (both within the segment).
    pub(crate) fn read(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file_handle()?
            .read_exact_at(&mut buf, position)
            .map_err(LogError::io("reading", self.log_path()))?;
        Ok(buf)
    }

    /// A handle for reading this segment's bytes below its current size
    /// outside the log's lock (see [`SegmentReader`]); it keeps the file
    /// open even if the cache evicts it meanwhile.
    pub(crate) fn reader(&self) -> Result<SegmentReader, LogError> {
        Ok(SegmentReader {
            file: self.file_handle()?,
            log_path: self.log_path().to_owned(),
            truncations: Arc::clone(&self.truncations),
            seen: self.truncations.load(Ordering::SeqCst),
        })
    }

    /// Walk the batches from `position` (which must be a batch start). With
    /// `need_body` the visitor sees whole batches, otherwise only the header
    /// bytes. Only framing is checked here (length, fits in the segment).
    pub(crate) fn scan<T>(
        &self,
        position: u64,
        need_body: bool,
        chunk: usize,
        mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<Visit<T>, LogError>,
    ) -> Result<Scan<T>, LogError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = position;
        let mut pos = position;
        loop {
            if pos >= self.size {
                return Ok(Scan::End);
            }
            let remaining = self.size - pos;
            if remaining < HEADER_LEN as u64 {
                return Ok(Scan::Invalid(pos));
            }
            let mut off = (pos - buf_start) as usize;
            if off + HEADER_LEN > buf.len() {
                self.fill(&mut buf, pos, chunk)?;
                buf_start = pos;
                off = 0;
            }
            let Some(header) = BatchHeader::parse(&buf[off..]) else {
                return Ok(Scan::Invalid(pos));
            };
            if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
                || header.size() as u64 > remaining
            {
                return Ok(Scan::Invalid(pos));
            }
            let size = header.size();
            let bytes: &[u8] = if need_body {
                if off + size > buf.len() {
                    self.fill(&mut buf, pos, chunk.max(size))?;
                    buf_start = pos;
                    off = 0;
                }
                &buf[off..off + size]
            } else {
                &buf[off..off + HEADER_LEN]
            };
            match visit(pos, &header, bytes)? {
                Visit::Next => pos += size as u64,
                Visit::Stop(t) => return Ok(Scan::Stopped(t)),
                Visit::Invalid => return Ok(Scan::Invalid(pos)),
            }
        }
    }

    /// Fill `buf` with up to `want` bytes from `pos` (never past `size`).
    fn fill(&self, buf: &mut Vec<u8>, pos: u64, want: usize) -> Result<(), LogError> {
        let len = (self.size - pos).min(want as u64) as usize;
        buf.resize(len, 0);
        self.file_handle()?
            .read_exact_at(buf, pos)
            .map_err(LogError::io("reading", self.log_path()))
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let start = u64::from(self.derived.offset_index.lookup(rel));
        self.find_batch_from(start, |h| h.last_offset() >= offset)
    }

    /// First batch from `position` on that satisfies `pred`.
    pub(crate) fn find_batch_from(
        &self,
        position: u64,
        pred: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let scan = self.scan(position, false, HEADER_WALK_CHUNK, |pos, h, _| {
            Ok(if pred(h) {
                Visit::Stop((pos, *h))
            } else {
                Visit::Next
            })
        })?;
        Ok(match scan {
            Scan::Stopped(found) => Some(found),
            // Data in a live segment was validated on append or recovery.
            Scan::End | Scan::Invalid(_) => None,
        })
    }

    /// Position to start looking for the first batch with `maxTimestamp >= ts`.
    pub(crate) fn time_lookup_position(&self, ts: i64) -> u64 {
        match self.derived.time_index.lookup(ts) {
            Some(rel) => u64::from(self.derived.offset_index.lookup(rel)),
            None => 0,
        }
    }

    /// Rebuild indexes and stats by scanning every batch. With `verify`, each
    /// batch is fully validated (CRC32C, counts); otherwise only framing and
    /// offsets. Returns the position of the first invalid batch, if any
    /// (state then reflects the batches before it).
    pub(crate) fn rebuild(
        &mut self,
        verify: bool,
        index_interval_bytes: u32,
    ) -> Result<Option<u64>, LogError> {
        let base = self.base_offset;
        let mut derived = Derived::new();
        let mut next = base;
        let mut end = 0u64;
        let scan = self.scan(0, verify, SCAN_CHUNK, |pos, h, bytes| {
            if verify && batch::validate(bytes, pos as usize, None, Origin::Replica).is_err() {
                return Ok(Visit::Invalid);
            }
            let last = h.last_offset();
            if h.base_offset < next
                || h.last_offset_delta < 0
                || last - base > i64::from(u32::MAX)
                || pos + h.size() as u64 > u64::from(u32::MAX)
            {
                return Ok(Visit::Invalid);
            }
            let placed = PlacedBatch {
                base_offset: h.base_offset,
                max_timestamp: h.max_timestamp,
                size: h.size() as u64,
            };
            derived.on_batch(base, pos, &placed, index_interval_bytes);
            next = last + 1;
            end = pos + placed.size;
            Ok(Visit::<()>::Next)
        })?;
        self.derived = derived;
        self.next_offset = next;
        self.indexes_dirty = true;
        self.exact = true;
        // Markers past the data are gone (torn tail, truncation).
        self.txn_index.truncate_to(next)?;
        // A rebuilt segment may be sealed (non-active) and its index files
        // written: its time index must end with its largest timestamp. For
        // the active segment the extra entry is harmless (still "largest so far").
        self.seal();
        Ok(match scan {
            Scan::Invalid(pos) => Some(pos),
            Scan::End | Scan::Stopped(()) => {
                debug_assert_eq!(end, self.size);
                None
            }
        })
    }

    /// Cut the file at `position` (a batch boundary) and rebuild state.
    pub(crate) fn truncate_to_position(
        &mut self,
        position: u64,
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        // Before the cut (SeqCst, as the readers' checks): a reader whose
        // check after its `read_at` still sees the old count read before it.
        self.truncations.fetch_add(1, Ordering::SeqCst);
        self.file_handle()?
            .set_len(position)
            .map_err(LogError::io("truncating", self.log_path()))?;
        self.size = position;
        self.unsynced = true;
        if self.rebuild(false, index_interval_bytes)?.is_some() {
            return Err(LogError::CorruptSegment {
                path: self.log_path().to_owned(),
                position,
            });
        }
        if self.size == 0 {
            self.rolling_base = None;
        }
        Ok(())
    }

    /// The state loaded from index files is complete: the active segment of
    /// a clean shutdown, sealed on close, with `next_offset` from the marker.
    /// (Only `bytes_since_last_index_entry` restarts at 0: the next index
    /// entry comes at most one interval late.)
    pub(crate) fn mark_exact(&mut self) {
        self.exact = true;
    }

    /// Let the next append start at `offset` (after a truncation that removed
    /// a batch straddling it, or into a gap); never moves backwards.
    pub(crate) fn advance_next_offset(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset);
    }

    /// Remove every batch from the one containing `offset` on. Leaves the
    /// segment's state exact (rescanned) either way.
    pub(crate) fn truncate_to_offset(
        &mut self,
        offset: i64,
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        match self.find_batch(offset)? {
            Some((pos, _)) => self.truncate_to_position(pos, index_interval_bytes),
            None => self.ensure_exact(index_interval_bytes),
        }
    }

    /// Rescan a segment whose state came from index files (it is becoming
    /// the active segment, whose `next_offset` is the log end).
    pub(crate) fn ensure_exact(&mut self, index_interval_bytes: u32) -> Result<(), LogError> {
        if self.exact {
            return Ok(());
        }
        match self.rebuild(false, index_interval_bytes)? {
            None => Ok(()),
            Some(position) => Err(LogError::CorruptSegment {
                path: self.log_path().to_owned(),
                position,
            }),
        }
    }

    /// The segment stops being active: make the time index's last entry the
    /// segment's largest timestamp (Kafka does the same on roll).
    pub(crate) fn seal(&mut self) {
        let last = self.derived.time_index.last();
        if self.derived.offset_of_max_timestamp >= 0
            && last.is_none_or(|(ts, _)| ts < self.derived.max_timestamp)
        {
            let rel = (self.derived.offset_of_max_timestamp - self.base_offset) as u32;
            self.derived
                .time_index
                .maybe_append(self.derived.max_timestamp, rel);
            self.indexes_dirty = true;
        }
    }

    /// Write the index files if they are stale (not fsynced; see `take_sync`).
    pub(crate) fn write_indexes(&mut self) -> Result<(), LogError> {
        if !self.indexes_dirty {
            return Ok(());
        }
        fs::write(&self.index_path, self.derived.offset_index.to_bytes())
            .map_err(LogError::io("writing", &self.index_path))?;
        fs::write(&self.time_index_path, self.derived.time_index.to_bytes())
            .map_err(LogError::io("writing", &self.time_index_path))?;
        self.indexes_dirty = false;
        self.indexes_unsynced = true;
        Ok(())
    }

    /// What a flush must fsync (the log file, and the index files if they
    /// were written), pushed onto `out` to be synced outside the log's lock,
    /// and counted as synced from now on (a failed fsync is fatal
    /// for the log directory; `Log::flush_failed` marks it unsynced again).
    /// Fails only if the log file, evicted from the open-file cache, cannot
    /// be opened again; nothing of this segment is taken then.
    pub(crate) fn take_sync(&mut self, out: &mut Vec<SyncTarget>) -> Result<(), LogError> {
        if self.unsynced {
            // A handle opened after an eviction flushes the same inode.
            out.push(SyncTarget::Data {
                file: self.file_handle()?,
                path: self.log_path().to_path_buf(),
            });
            self.unsynced = false;
        }
        if self.indexes_unsynced {
            for path in [&self.index_path, &self.time_index_path] {
                out.push(SyncTarget::Path {
                    path: path.clone(),
                    optional: false,
                });
            }
            self.indexes_unsynced = false;
        }
        self.txn_index.take_sync(out);
        Ok(())
    }

    /// Load the index files of a trusted (flushed, sealed) segment whose
    /// offsets end before `next_segment_base`. Returns false (and loads
    /// nothing) if they are missing or fail the sanity checks: whole entries,
    /// strictly increasing, inside the file, last offset-index entry pointing
    /// at a batch with the right base offset, a time entry when non-empty.
    pub(crate) fn load_indexes(&mut self, next_segment_base: i64) -> Result<bool, LogError> {
        let (Some(index_bytes), Some(time_bytes)) = (
            read_optional(&self.index_path)?,
            read_optional(&self.time_index_path)?,
        ) else {
            return Ok(false);
        };
        let Some(offset_index) = OffsetIndex::from_bytes(&index_bytes, self.size) else {
            return Ok(false);
        };
        let span = (next_segment_base - self.base_offset).max(0) as u64;
        let Some(time_index) = TimeIndex::from_bytes(&time_bytes, span) else {
            return Ok(false);
        };
        if let Some((rel, pos)) = offset_index.last() {
            let ok = self.size >= u64::from(pos) + HEADER_LEN as u64
                && self
                    .read(u64::from(pos), HEADER_LEN)
                    .ok()
                    .and_then(|b| BatchHeader::parse(&b))
                    .is_some_and(|h| h.base_offset == self.base_offset + i64::from(rel));
            if !ok {
                return Ok(false);
            }
        }
        let last_time = time_index.last();
        if self.size > 0 && last_time.is_none() {
            return Ok(false);
        }
        self.derived = Derived {
            offset_index,
            time_index,
            bytes_since_last_index_entry: 0,
            max_timestamp: last_time.map_or(-1, |(t, _)| t),
            offset_of_max_timestamp: last_time
                .map_or(-1, |(_, rel)| self.base_offset + i64::from(rel)),
        };
        self.next_offset = next_segment_base.max(self.base_offset);
        self.exact = false;
        Ok(true)
    }

    /// Timestamp used by time retention: the largest batch timestamp, or the
    /// file's modification time when no batch carries one.
    pub(crate) fn retention_timestamp(&self) -> Result<i64, LogError> {
        if self.derived.max_timestamp >= 0 {
            return Ok(self.derived.max_timestamp);
        }
        let modified = fs::metadata(self.log_path())
            .and_then(|m| m.modified())
            .map_err(LogError::io("reading metadata of", self.log_path()))?;
        Ok(modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    /// Timestamp of the first batch (for the `segment.ms` clock after a restart).
    pub(crate) fn first_batch_timestamp(&self) -> Result<Option<i64>, LogError> {
        if self.size < HEADER_LEN as u64 {
            return Ok(None);
        }
        Ok(BatchHeader::parse(&self.read(0, HEADER_LEN)?).map(|h| h.max_timestamp))
    }

    /// Remove the segment's files.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        let LogSegment {
            index_path,
            time_index_path,
            file,
            txn_index,
            ..
        } = self;
        let log_path = file.path().to_owned();
        drop(file);
        txn_index.delete()?;
        for path in [log_path, index_path, time_index_path] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LogError::Io {
                        context: "deleting",
                        path,
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Io {
            context: "reading",
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Reads a segment's bytes outside the log's lock. Bytes below the size the
/// segment had when the reader was made are whole batches, and they never
/// change in place: appends only go after them, a sealed segment is never
/// written again, retention and the cleaner's swap unlink or rename the
/// file (this handle still reads the old inode), and a truncation that cuts
/// the file (after which appends could overwrite those positions) bumps
/// `truncations` first, which [`SegmentReader::read`] checks after reading.
pub(crate) struct SegmentReader {
    file: Arc<File>,
    log_path: PathBuf,
    truncations: Arc<AtomicU64>,
    seen: u64,
}

impl SegmentReader {
    /// Read `len` bytes at `position`, or `None` when the segment was
    /// truncated since the reader was made (what was read may mix old and
    /// new bytes; the caller reads again under the log's lock).
    pub(crate) fn read(&self, position: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        let mut buf = vec![0u8; len];
        let read = self.file.read_exact_at(&mut buf, position);
        if self.truncations.load(Ordering::SeqCst) != self.seen {
            return Ok(None);
        }
        read.map_err(LogError::io("reading", &self.log_path))?;
        Ok(Some(buf))
    }
}

/// `write_all` for vectored writes (std's is unstable): loop on short writes.
fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
