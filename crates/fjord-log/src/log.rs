//! `Log`: one partition's directory of segments.

use std::collections::BTreeMap;
use std::fs;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{self, BatchHeader, Origin, Rewritten, split_batches};
use crate::checkpoint::{self, CleanShutdown, LEADER_EPOCH, LOG_START_OFFSET, RECOVERY_POINT};
use crate::config::{LogConfig, TimestampType};
use crate::control::{EndTxnMarker, parse_end_txn_marker};
use crate::error::LogError;
use crate::flush::{FlushPlan, RecoveryPointCheckpoint, RecoveryPointWrite, SyncedFlush};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{
    DuplicateBatch, ProducerStateManager, SequenceError, VerificationGuard,
};
use crate::recovery;
use crate::segment::{LogSegment, PlacedBatch, RollingBase, SegmentReader};
use crate::txn_index::AbortedTxn;

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch `maxTimestamp` (the append time with LogAppendTime); -1 if none.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (batch-level, records are not decoded).
    pub offset_of_max_timestamp: i64,
    pub num_batches: u32,
    /// Sum of the batches' `recordsCount`.
    pub num_records: u32,
    /// The append time stamped on the batches; -1 with CreateTime.
    pub log_append_time: i64,
}

/// Result of a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadInfo {
    /// Whole stored batches, possibly empty.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// The offset after the last batch in `records` (the start offset when
    /// empty): the upper bound for the aborted transactions of the read.
    pub next_offset: i64,
}

/// A read located under the log's lock ([`Log::plan_read`]), done by
/// [`ReadPlan::execute`] without it: the `read_at` of the batches does not
/// hold up appends (or other reads) of the partition.
#[derive(Debug)]
pub struct ReadPlan {
    /// The answer without its records.
    info: ReadInfo,
    bytes: Option<PlannedBytes>,
}

struct PlannedBytes {
    reader: SegmentReader,
    /// Start of the batch holding the requested offset.
    position: u64,
    /// Bytes to read: at most to the segment's size when planned, so only
    /// whole batches written before the plan (at least the first batch).
    len: usize,
    max_offset: i64,
}

impl std::fmt::Debug for PlannedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedBytes")
            .field("position", &self.position)
            .field("len", &self.len)
            .field("max_offset", &self.max_offset)
            .finish_non_exhaustive()
    }
}

impl ReadPlan {
    /// Read the planned batches (one `read_at` into a buffer that becomes
    /// `records` without another copy) and cut them to whole batches below
    /// `max_offset`. `None` when the segment was truncated since the plan:
    /// read again under the lock.
    pub fn execute(self) -> Result<Option<ReadInfo>, LogError> {
        let ReadPlan { mut info, bytes } = self;
        let Some(p) = bytes else {
            return Ok(Some(info));
        };
        let Some(mut buf) = p.reader.read(p.position, p.len)? else {
            return Ok(None);
        };
        let mut cut = 0;
        while let Some(h) = BatchHeader::parse(&buf[cut..]) {
            if cut + h.size() > p.len || h.last_offset() >= p.max_offset || h.batch_length < 0 {
                break;
            }
            cut += h.size();
            info.next_offset = h.next_offset();
        }
        buf.truncate(cut);
        info.records = Bytes::from(buf);
        Ok(Some(info))
    }
}

/// Which records a fetch may see (Kafka's `IsolationLevel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Up to the high watermark, transactions' data whatever their outcome.
    #[default]
    ReadUncommitted,
    /// Up to the last stable offset, with the aborted transactions of the
    /// range so that the consumer drops their batches.
    ReadCommitted,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One partition's log. See the crate docs for layout and invariants.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// By base offset; never empty; the last one is the active segment.
    pub(crate) segments: BTreeMap<i64, LogSegment>,
    pub(crate) log_start_offset: i64,
    /// Offsets below this are fsynced (persisted in `recovery-point-checkpoint`).
    recovery_point: i64,
    /// The `recovery-point-checkpoint` file, shared with flushes completed
    /// outside the caller's lock ([`RecoveryPointWrite`]).
    recovery_checkpoint: Arc<RecoveryPointCheckpoint>,
    leader_epoch_cache: LeaderEpochCache,
    /// Records appended since the last flush.
    unflushed_messages: i64,
    /// Wall-clock ms of the last flush (or open).
    last_flush_ms: i64,
    /// Segment files were created or deleted since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    /// Idempotent producers, updated by every append (leader and follower).
    pub(crate) producer_state: ProducerStateManager,
    /// The cleaner's first dirty offset and clean times
    /// (`cleaner-offset-checkpoint`).
    pub(crate) cleaner_checkpoint: crate::cleaner::CleanerCheckpoint,
    /// Truncations since open: a cleaning pass planned before one is not
    /// swapped in (its segments may have changed under it).
    pub(crate) truncations: u64,
}

impl Log {
    /// Open or create the log in `dir`, running recovery: segments wholly
    /// below the recovery checkpoint are trusted (indexes loaded or rebuilt
    /// from headers); every later batch is validated (framing, magic, CRC32C,
    /// increasing offsets) and the log is cut at the first bad one, deleting
    /// any later segments.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        fs::create_dir_all(dir).map_err(LogError::io("creating log directory", dir))?;
        let clean = CleanShutdown::take(dir)?;
        let bases = recovery::scan_directory(dir)?;
        let log_start_checkpoint = checkpoint::read_offset(dir, LOG_START_OFFSET)?;
        let recovery_checkpoint = checkpoint::read_offset(dir, RECOVERY_POINT)?.unwrap_or(0);
        let mut leader_epoch_cache = match checkpoint::read(dir, LEADER_EPOCH)? {
            None => LeaderEpochCache::default(),
            Some((path, text)) => {
                LeaderEpochCache::from_text(&text).ok_or(LogError::CorruptCheckpoint {
                    path,
                    reason: "malformed leader epoch entries",
                })?
            }
        };
        let interval = config.index_interval_bytes;
        let (mut segments, mut dir_dirty) = recovery::load_segments(
            dir,
            &bases,
            recovery_checkpoint,
            clean,
            interval,
            &config.open_files,
        )?;
        let first_base = bases.first().copied();
        if segments.is_empty() {
            let base = log_start_checkpoint.or(first_base).unwrap_or(0);
            segments.insert(base, LogSegment::create(dir, base, &config.open_files)?);
            dir_dirty = true;
        }
        let mut log = Log {
            dir: dir.to_owned(),
            config,
            segments,
            log_start_offset: 0,
            // As checkpointed: the flush below rewrites it only if recovery
            // moved the log end (no write on a clean restart, so that a node
            // restarted on a full disk can still open its logs).
            recovery_point: recovery_checkpoint,
            recovery_checkpoint: Arc::new(RecoveryPointCheckpoint::new(dir)),
            leader_epoch_cache: LeaderEpochCache::default(),
            unflushed_messages: 0,
            last_flush_ms: wall_clock_ms(),
            dir_dirty,
            // Loaded below, once recovery settled the log's bounds.
            producer_state: ProducerStateManager::empty(dir),
            cleaner_checkpoint: crate::cleaner::CleanerCheckpoint::read(dir)?,
            truncations: 0,
        };
        log.active_mut().ensure_exact(interval)?;
        let mut epochs_changed = leader_epoch_cache.truncate_from_end(log.log_end_offset());
        log.leader_epoch_cache = leader_epoch_cache;
        let first = log.first_segment().base_offset();
        log.log_start_offset = log_start_checkpoint.unwrap_or(first).max(first);
        if log.log_start_offset > log.log_end_offset() {
            // Recovery cut below the persisted log start: restart empty there.
            let start = log.log_start_offset;
            log.truncate_fully_and_start_at(start)?;
        }
        log.delete_segments_below_log_start()?;
        let start = log.log_start_offset;
        epochs_changed |= log.leader_epoch_cache.truncate_from_start(start);
        // Checkpoints are rewritten only when opening changed them.
        if epochs_changed {
            log.persist_leader_epochs()?;
        }
        if log_start_checkpoint != Some(start) {
            checkpoint::write_offset(&log.dir, LOG_START_OFFSET, start)?;
        }
        let now = wall_clock_ms();
        log.producer_state = ProducerStateManager::load(
            dir,
            &log.segments,
            start,
            log.log_end_offset(),
            now,
            log.config.producer_id_expiration_ms,
        )?;
        log.apply_replayed_aborts()?;
        let load = log.producer_state.last_load();
        tracing::info!(dir = %dir.display(), snapshot_offset = ?load.snapshot_offset,
            replayed_from = load.replayed_from, batches_replayed = load.batches_replayed,
            producers = log.producer_state.producers().len(), took = ?load.duration,
            "loaded producer state");
        // segment.ms clock of the active segment after a restart: its first
        // batch's timestamp when plausible, else now.
        let first_ts = log.active().first_batch_timestamp()?;
        log.active_mut()
            .set_rolling_base(first_ts.map(|ts| RollingBase::of_first_batch(ts, now)));
        // Everything scanned is valid: make it durable and move the recovery
        // point. On a full disk the checkpoint (or an index file) may not be
        // writable: the log is whole all the same, and keeps its older
        // recovery point (the next open re-validates a little more).
        match log.flush() {
            Err(err) if err.is_out_of_space() => {
                tracing::warn!(dir = %dir.display(), %err, "log opened without moving its recovery point: the disk is full");
            }
            other => other?,
        }
        Ok(log)
    }

    /// Validate each batch and append it, assigning offsets from the log end
    /// and stamping `leader_epoch`. The batch bodies are written from
    /// `records` as they are (vectored write), behind a rewritten 17-byte
    /// prefix (61-byte header with LogAppendTime). All batches or none.
    pub fn append_as_leader(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let batches = split_batches(records, Some(self.config.max_message_bytes), Origin::Client)?;
        if batches.is_empty() {
            return Err(LogError::InvalidRecord {
                reason: "no record batches",
            });
        }
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        if !log_append_time && batches.iter().any(|(_, h)| h.is_log_append_time()) {
            return Err(LogError::InvalidTimestamp {
                reason: "producer batch claims LogAppendTime on a CreateTime topic",
            });
        }
        let total = self.check_set_size(&batches)?;
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut rewritten = Vec::with_capacity(batches.len());
        let mut placed = Vec::with_capacity(batches.len());
        let mut info = AppendInfo {
            first_offset,
            last_offset: first_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            num_batches: batches.len() as u32,
            num_records: 0,
            log_append_time: if log_append_time { now_ms } else { -1 },
        };
        for &(start, h) in &batches {
            let base = next;
            next = base
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or(LogError::OffsetOverflow { offset: base })?;
            let original = &records[start..start + h.size()];
            let (header, max_ts) = if log_append_time {
                (
                    Rewritten::Header(batch::log_append_time_header(
                        original,
                        h.size(),
                        base,
                        leader_epoch,
                        now_ms,
                    )),
                    now_ms,
                )
            } else {
                (
                    Rewritten::Prefix(batch::leader_prefix(original, base, leader_epoch)),
                    h.max_timestamp,
                )
            };
            if info.offset_of_max_timestamp < 0 || max_ts > info.max_timestamp {
                info.max_timestamp = max_ts;
                info.offset_of_max_timestamp = next - 1;
            }
            info.num_records = info.num_records.saturating_add(h.records_count as u32);
            rewritten.push(header);
            placed.push(PlacedBatch {
                base_offset: base,
                max_timestamp: max_ts,
                size: h.size() as u64,
            });
        }
        info.last_offset = next - 1;
        self.maybe_roll(
            total,
            (first_offset, info.last_offset),
            info.max_timestamp,
            now_ms,
        )?;
        let mut slices = Vec::with_capacity(2 * batches.len());
        for (&(start, h), header) in batches.iter().zip(&rewritten) {
            let head = header.bytes();
            slices.push(IoSlice::new(head));
            slices.push(IoSlice::new(&records[start + head.len()..start + h.size()]));
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(&mut slices, &placed, next, interval, now_ms)?;
        for (&(start, h), p) in batches.iter().zip(&placed) {
            let header = BatchHeader {
                base_offset: p.base_offset,
                max_timestamp: p.max_timestamp,
                ..h
            };
            self.update_producer_state(&header, &records[start..start + h.size()])?;
        }
        self.unflushed_messages = self
            .unflushed_messages
            .saturating_add(i64::from(info.num_records));
        if self.leader_epoch_cache.assign(leader_epoch, first_offset) {
            self.persist_leader_epochs()?;
        }
        Ok(info)
    }

    /// Follower append: batches already carry the leader's offsets and
    /// epochs. Each is validated (framing, magic, CRC32C; `max.message.bytes`
    /// is not applied, as in Kafka) and offsets must start at or after the log
    /// end and increase (gaps between batches are allowed). A trailing partial
    /// batch (a fetch response cut at a size limit) is ignored.
    pub fn append_as_follower(&mut self, records: &Bytes) -> Result<AppendInfo, LogError> {
        let batches = split_batches(records, None, Origin::Replica)?;
        let leo = self.log_end_offset();
        let mut info = AppendInfo {
            first_offset: leo,
            last_offset: leo - 1,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            num_batches: batches.len() as u32,
            num_records: 0,
            log_append_time: -1,
        };
        let Some(&(_, first)) = batches.first() else {
            return Ok(info);
        };
        let mut expected = leo;
        let mut placed = Vec::with_capacity(batches.len());
        for &(_, h) in &batches {
            if h.base_offset < expected {
                return Err(LogError::NonMonotonicOffset {
                    expected_at_least: expected,
                    got: h.base_offset,
                });
            }
            expected = h.next_offset();
            if info.offset_of_max_timestamp < 0 || h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = h.last_offset();
            }
            info.num_records = info.num_records.saturating_add(h.records_count as u32);
            placed.push(PlacedBatch {
                base_offset: h.base_offset,
                max_timestamp: h.max_timestamp,
                size: h.size() as u64,
            });
        }
        info.first_offset = first.base_offset;
        info.last_offset = expected - 1;
        let total = self.check_set_size(&batches)?;
        let now = wall_clock_ms();
        self.maybe_roll(
            total,
            (first.base_offset, info.last_offset),
            info.max_timestamp,
            now,
        )?;
        let end = batches.last().map_or(0, |&(s, h)| s + h.size());
        let mut slices = [IoSlice::new(&records[..end])];
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(&mut slices, &placed, expected, interval, now)?;
        for &(start, h) in &batches {
            self.update_producer_state(&h, &records[start..start + h.size()])?;
        }
        self.unflushed_messages = self
            .unflushed_messages
            .saturating_add(i64::from(info.num_records));
        let mut changed = false;
        for &(_, h) in &batches {
            changed |= self
                .leader_epoch_cache
                .assign(h.partition_leader_epoch, h.base_offset);
        }
        if changed {
            self.persist_leader_epochs()?;
        }
        Ok(info)
    }

    /// Whole batches from the one containing `start_offset`, at most
    /// `max_bytes` (at least one batch if `min_one_batch`), only batches whose
    /// last offset is below `max_offset`, from a single segment.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, LogError> {
        let plan = self.plan_read(start_offset, max_bytes, max_offset, min_one_batch)?;
        // Under `&self` no truncation can run, so the plan cannot go stale.
        plan.execute()?.ok_or(LogError::InvalidRecord {
            reason: "segment truncated under a locked read",
        })
    }

    /// Locate a [`Self::read`] without reading the batches: cheap (an index
    /// lookup and a short header walk, from the page cache), to be called
    /// under the caller's lock, with [`ReadPlan::execute`] after it is
    /// released. The plan covers only bytes that were whole batches when it
    /// was made.
    pub fn plan_read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadPlan, LogError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset());
        if start_offset < log_start || start_offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                requested: start_offset,
                log_start,
                log_end,
            });
        }
        let info = ReadInfo {
            records: Bytes::new(),
            log_start_offset: log_start,
            log_end_offset: log_end,
            next_offset: start_offset,
        };
        let nothing = |info| ReadPlan { info, bytes: None };
        if start_offset == log_end {
            return Ok(nothing(info));
        }
        let Some((seg, position, first)) = self.locate(start_offset)? else {
            return Ok(nothing(info));
        };
        if first.last_offset() >= max_offset {
            return Ok(nothing(info));
        }
        let available = (seg.size() - position) as usize;
        let mut len = max_bytes.min(available);
        if len < first.size() {
            if !min_one_batch {
                return Ok(nothing(info));
            }
            len = first.size();
        }
        Ok(ReadPlan {
            info,
            bytes: Some(PlannedBytes {
                reader: seg.reader()?,
                position,
                len,
                max_offset,
            }),
        })
    }

    /// The segment, position and header of the first batch whose last offset
    /// is >= `offset` (searching later segments across gaps).
    fn locate(&self, offset: i64) -> Result<Option<(&LogSegment, u64, BatchHeader)>, LogError> {
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find_batch(offset)? {
                return Ok(Some((seg, pos, h)));
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Offsets below this are known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Bytes of `.log` files (all segments; indexes not counted, as in Kafka).
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    /// Number of segments (there is always at least the active one).
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// ListOffsets by timestamp: the first record (at or after the log start)
    /// whose timestamp is >= `ts`, as (offset, timestamp). Finds the first
    /// batch with `maxTimestamp >= ts` through the segments' time indexes and
    /// decodes only that batch (all records of a LogAppendTime batch carry its
    /// `maxTimestamp`).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let log_start = self.log_start_offset;
        for seg in self.segments.values() {
            if seg.is_empty() || seg.max_timestamp() < ts || seg.next_offset() <= log_start {
                continue;
            }
            let mut position = seg.time_lookup_position(ts);
            while let Some((pos, h)) = seg.find_batch_from(position, |h| {
                h.max_timestamp >= ts && h.last_offset() >= log_start
            })? {
                position = pos + h.size() as u64;
                if h.is_log_append_time() {
                    return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
                }
                let mut bytes = Bytes::from(seg.read(pos, h.size())?);
                let set = crate::decompress::decode_batch(&mut bytes).map_err(|e| {
                    LogError::RecordDecode {
                        base_offset: h.base_offset,
                        source: e.into(),
                    }
                })?;
                if let Some(r) = set
                    .records
                    .iter()
                    .find(|r| r.offset >= log_start && r.timestamp >= ts)
                {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
        }
        Ok(None)
    }

    /// Largest timestamp in the log and the offset of the first record that
    /// carries it (ListOffsets MAX_TIMESTAMP). `None` when the log is empty.
    /// Falls back to the batch's base offset if its records cannot be decoded.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        if self.log_start_offset >= self.log_end_offset() {
            return None;
        }
        let mut best: Option<(i64, i64)> = None;
        for seg in self.segments.values() {
            if seg.is_empty() || seg.next_offset() <= self.log_start_offset {
                continue;
            }
            if best.is_none_or(|(ts, _)| seg.max_timestamp() > ts) {
                best = Some((seg.max_timestamp(), seg.offset_of_max_timestamp()));
            }
        }
        let (ts, shallow) = best?;
        match self.offset_for_timestamp(ts) {
            Ok(Some((offset, found))) if found == ts => Some((ts, offset)),
            _ => Some((ts, shallow.max(self.log_start_offset))),
        }
    }

    /// Delete whole segments past retention, oldest first (Kafka's
    /// `deleteOldSegments`), when the cleanup policy includes delete: by
    /// `retention.ms` (a segment whose largest timestamp, or file mtime if no
    /// batch has one, is older than that), then by `retention.bytes` (the
    /// oldest segment goes while the log without it still holds at least
    /// that many bytes); -1 disables either. Segments wholly below the log
    /// start always go. Only segments wholly below `high_watermark` are
    /// eligible, so retention never moves the log start past what is
    /// committed; when every segment is eligible, the active one included
    /// (unless it is empty), a new active segment is rolled first (a log
    /// always has one). Returns the number of deleted segments.
    pub fn apply_retention(&mut self, now_ms: i64, high_watermark: i64) -> Result<usize, LogError> {
        let mut deleted = self.delete_segments_below_log_start()?;
        if self.config.cleanup_policy.deletes() {
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                // A sealed segment the cleaner emptied holds nothing to keep
                // (its file time is the pass's, which would stall retention).
                let n = self.deletable_prefix(high_watermark, |seg| {
                    Ok(seg.is_empty()
                        || now_ms.saturating_sub(seg.retention_timestamp()?) > retention_ms)
                })?;
                deleted += self.delete_oldest_segments(n, now_ms)?;
            }
            if let Ok(limit) = u64::try_from(self.config.retention_bytes)
                && self.size_bytes() >= limit
            {
                let mut excess = self.size_bytes() - limit;
                let n = self.deletable_prefix(high_watermark, |seg| {
                    let breached = excess >= seg.size();
                    if breached {
                        excess -= seg.size();
                    }
                    Ok(breached)
                })?;
                deleted += self.delete_oldest_segments(n, now_ms)?;
            }
        }
        if deleted > 0 {
            let first = self.first_segment().base_offset();
            if first > self.log_start_offset {
                self.set_log_start_offset(first)?;
            }
        }
        Ok(deleted)
    }

    /// How many of the oldest segments `breached` says to delete, stopping
    /// at the first it refuses, at one not wholly below `high_watermark`, or
    /// at an empty active segment (Kafka's `deletableSegments`).
    fn deletable_prefix(
        &self,
        high_watermark: i64,
        mut breached: impl FnMut(&LogSegment) -> Result<bool, LogError>,
    ) -> Result<usize, LogError> {
        let log_end = self.log_end_offset();
        let mut segments = self.segments.values().peekable();
        let mut n = 0;
        while let Some(seg) = segments.next() {
            let next = segments.peek();
            let upper = next.map_or(log_end, |s| s.base_offset());
            let last_and_empty = next.is_none() && seg.is_empty();
            if last_and_empty || high_watermark < upper || !breached(seg)? {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Delete the `n` oldest segments, rolling a new active segment first
    /// when that is all of them.
    fn delete_oldest_segments(&mut self, n: usize, now_ms: i64) -> Result<usize, LogError> {
        if n == 0 {
            return Ok(0);
        }
        if n >= self.segments.len() {
            let leo = self.log_end_offset();
            self.roll(leo, now_ms)?;
        }
        for _ in 0..n {
            self.delete_oldest_segment()?;
        }
        Ok(n)
    }

    /// DeleteRecords: raise the log start offset (persisted) and delete
    /// segments wholly below it. Lowering is a no-op.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        let log_end = self.log_end_offset();
        if offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        // Segments first, checkpoint second: on a full disk the deletion is
        // what frees the room the checkpoint needs, and a restart before the
        // checkpoint starts the log at its first remaining segment, still
        // at or below `offset`.
        self.log_start_offset = offset;
        self.delete_segments_below_log_start()?;
        self.set_log_start_offset(offset)
    }

    /// Remove every batch from the one containing `offset` on; the log end
    /// becomes `offset`. A batch straddling `offset` is removed whole and the
    /// offsets between its base and `offset` become a gap (as in Kafka;
    /// replica truncation points are batch boundaries, so this does not
    /// happen there). After a restart the log end is recomputed from the data,
    /// i.e. the gap closes if nothing was appended since. Below the log start,
    /// the log is emptied and restarts at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        self.truncations += 1;
        self.recovery_checkpoint.bump();
        self.truncate_cleaner_checkpoint(offset)?;
        let later: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        for base in later {
            if self.segments.len() == 1 {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
                self.dir_dirty = true;
            }
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().truncate_to_offset(offset, interval)?;
        self.active_mut().advance_next_offset(offset);
        if self.active().rolling_base().is_none() && !self.active().is_empty() {
            let first_ts = self.active().first_batch_timestamp()?;
            let base = RollingBase::of_first_batch(first_ts.unwrap_or(-1), wall_clock_ms());
            self.active_mut().set_rolling_base(Some(base));
        }
        let leo = self.log_end_offset();
        if self.leader_epoch_cache.truncate_from_end(leo) {
            self.persist_leader_epochs()?;
        }
        if self.recovery_point > leo {
            self.recovery_point = leo;
            self.recovery_checkpoint.write(leo)?;
        }
        let (now, expiration) = (wall_clock_ms(), self.config.producer_id_expiration_ms);
        let start = self.log_start_offset;
        self.producer_state.truncate_and_reload(
            &self.segments,
            start,
            leo,
            start,
            now,
            expiration,
        )?;
        self.apply_replayed_aborts()?;
        if self.producer_state.last_load().snapshot_offset.is_none() {
            // No snapshot left at or below the new end: keep the exact state
            // for a restart (see the producer_state module docs).
            self.producer_state.take_snapshot(leo, now, expiration)?;
        }
        Ok(())
    }

    /// Delete all segments and restart the log, empty, at `offset` (e.g. a
    /// follower whose leader's log starts past this log's end).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.truncations += 1;
        self.recovery_checkpoint.bump();
        self.reset_cleaner_checkpoint(offset)?;
        while let Some((_, seg)) = self.segments.pop_first() {
            seg.delete()?;
        }
        self.segments.insert(
            offset,
            LogSegment::create(&self.dir, offset, &self.config.open_files)?,
        );
        self.dir_dirty = true;
        self.log_start_offset = offset;
        checkpoint::write_offset(&self.dir, LOG_START_OFFSET, offset)?;
        self.leader_epoch_cache = LeaderEpochCache::default();
        self.persist_leader_epochs()?;
        self.producer_state.truncate_fully_and_start_at(offset)?;
        self.recovery_point = offset;
        self.recovery_checkpoint.write(offset)
    }

    /// fsync every segment with unsynced data (writing sealed segments'
    /// index files first), then persist the recovery point (= log end).
    /// All of it under `&mut self`; the broker's flusher instead runs
    /// [`Self::plan_flush`], [`FlushPlan::sync`] and [`Self::complete_flush`]
    /// so that the fsyncs do not hold the partition lock.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let plan = self.plan_flush()?;
        let synced = match plan.sync() {
            Ok(synced) => synced,
            Err(e) => {
                self.flush_failed();
                return Err(e);
            }
        };
        match self.complete_flush(synced) {
            Some(write) => write.write(),
            None => Ok(()),
        }
    }

    /// The part of a flush under the caller's lock: what is unsynced (the
    /// files' handles and paths, taken as synced from now on) and the offset
    /// it covers (the log end). Writes stale index files of sealed segments
    /// (rolls already write them, so normally nothing) but fsyncs nothing.
    /// Resets `flush.messages` / `flush.ms` counting: appends from now on
    /// are not covered and count towards the next flush.
    pub fn plan_flush(&mut self) -> Result<FlushPlan, LogError> {
        let active = self.active().base_offset();
        let mut targets = Vec::new();
        let taken = self.segments.iter_mut().try_for_each(|(&base, seg)| {
            if base != active {
                seg.write_indexes()?;
            }
            seg.take_sync(&mut targets)
        });
        if let Err(e) = taken {
            // Segments taken before the failure were counted as synced.
            self.flush_failed();
            return Err(e);
        }
        if self.dir_dirty {
            targets.push(crate::flush::SyncTarget::Dir(self.dir.clone()));
            self.dir_dirty = false;
        }
        self.unflushed_messages = 0;
        self.last_flush_ms = wall_clock_ms();
        Ok(FlushPlan {
            targets,
            covers: self.log_end_offset(),
            truncations: self.truncations,
            checkpoint: Arc::clone(&self.recovery_checkpoint),
        })
    }

    /// The part of a flush after its fsyncs, under the caller's lock again:
    /// the recovery point moves up to what the flush covered, unless a
    /// truncation came since the plan (it may have cut and rewritten those
    /// offsets; the recovery point it set stays, and the appends after it
    /// are unsynced and counted for the next flush). A roll meanwhile is
    /// harmless: the covered bytes are all in files the plan synced.
    /// Returns the checkpoint write to run without the lock.
    pub fn complete_flush(&mut self, synced: SyncedFlush) -> Option<RecoveryPointWrite> {
        if synced.truncations != self.truncations || synced.covers <= self.recovery_point {
            return None;
        }
        self.recovery_point = synced.covers;
        Some(RecoveryPointWrite {
            offset: synced.covers,
            generation: self.recovery_checkpoint.generation(),
            checkpoint: synced.checkpoint,
        })
    }

    /// A planned flush's fsync failed: count every segment and the directory
    /// as unsynced again, so that a later flush (if the directory is still
    /// used) does not skip them.
    pub fn flush_failed(&mut self) {
        for seg in self.segments.values_mut() {
            seg.mark_unsynced();
        }
        self.dir_dirty = true;
        self.unflushed_messages = self.unflushed_messages.max(1);
    }

    /// Truncations since open: a flush (or cleaning pass) planned before a
    /// different count may cover offsets that were cut since.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// Whether `flush.messages` or `flush.ms` call for a flush now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.unflushed_messages > 0
            && (self.unflushed_messages >= self.config.flush_messages
                || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epoch_cache.latest_epoch()
    }

    /// OffsetForLeaderEpoch (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.leader_epoch_cache
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leader records that `epoch` starts at its current log end, before
    /// appending anything, so that followers can find where they diverge
    /// (KIP-101). A no-op unless `epoch` is newer than the latest known.
    /// If the checkpoint cannot be written (a full disk), the cache is left
    /// as it was, so that memory never runs ahead of the checkpoint.
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        let before = self.leader_epoch_cache.clone();
        if self.leader_epoch_cache.assign(epoch, leo)
            && let Err(err) = self.persist_leader_epochs()
        {
            self.leader_epoch_cache = before;
            return Err(err);
        }
        Ok(())
    }

    /// The (epoch, start offset) entries of the leader epoch cache.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        self.leader_epoch_cache.entries()
    }

    /// Check a produce request's batches against the producer state before
    /// `append_as_leader`: `Some` when its first batch is a retry of a batch
    /// in the log (answer with its offsets, append nothing).
    pub fn check_producer_batches(
        &self,
        headers: &[BatchHeader],
    ) -> Result<Option<DuplicateBatch>, SequenceError> {
        self.producer_state.check_batches(headers)
    }

    /// The producer of a client's transactional batch `header` when it
    /// would open a transaction here, with its guard, taken now: the leader
    /// asks the coordinator before appending (KIP-890 part 1).
    pub fn start_txn_verification(
        &mut self,
        header: &BatchHeader,
    ) -> Option<(i64, i16, VerificationGuard)> {
        if !self.producer_state.needs_verification(header) {
            return None;
        }
        let guard = self.producer_state.start_verification(header.producer_id);
        Some((header.producer_id, header.producer_epoch, guard))
    }

    /// Refuse a client's batches that would open a transaction without a
    /// verification still valid (see [`ProducerStateManager::check_verified`]).
    pub fn check_txn_verified(
        &self,
        headers: &[BatchHeader],
        guard: Option<VerificationGuard>,
    ) -> Result<(), SequenceError> {
        self.producer_state.check_verified(headers, guard)
    }

    /// Check a coordinator's batches before the leader appends them: epochs
    /// and open transactions, not sequences (see
    /// [`ProducerStateManager::check_coordinator_batches`]).
    pub fn check_coordinator_batches(&self, headers: &[BatchHeader]) -> Result<(), SequenceError> {
        self.producer_state.check_coordinator_batches(headers)
    }

    /// Check a transaction marker before the leader appends it (see
    /// [`ProducerStateManager::check_marker`]); the broker calls it under the
    /// same lock as `append_as_leader`.
    pub fn check_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: &EndTxnMarker,
    ) -> Result<(), SequenceError> {
        self.producer_state
            .check_marker(producer_id, producer_epoch, marker)
    }

    /// The last stable offset for a high watermark `hw`: the first offset
    /// not yet decided (the oldest unstable transaction's first offset), at
    /// most `hw` (Kafka's `UnifiedLog.lastStableOffset`).
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        self.producer_state
            .first_unstable_offset_at(hw)
            .map_or(hw, |fuo| fuo.min(hw))
    }

    /// The high watermark moved: transactions whose marker is now below it
    /// stop holding the last stable offset back.
    pub fn on_high_watermark_updated(&mut self, hw: i64) {
        self.producer_state.on_high_watermark_updated(hw);
    }

    /// The aborted transactions overlapping `[fetch_offset, upper_bound)`,
    /// by marker offset, from the segment holding `fetch_offset` on, until a
    /// segment's index says no later one can overlap (Kafka's
    /// `UnifiedLog.collectAbortedTransactions`).
    pub fn collect_aborted_transactions(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
    ) -> Vec<AbortedTxn> {
        let from = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        let mut aborted = Vec::new();
        // Not bounded by `upper_bound`: a transaction starting in the range
        // may end (and be indexed) in any later segment.
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            let search = seg.collect_aborted_txns(fetch_offset, upper_bound);
            aborted.extend(search.aborted);
            if search.complete {
                break;
            }
        }
        aborted
    }

    /// A fetch's read at `isolation`: up to the high watermark `hw`
    /// (READ_UNCOMMITTED) or to the last stable offset with the aborted
    /// transactions overlapping what was read (READ_COMMITTED; `Some`, maybe
    /// empty). See [`Self::read`] for the rest.
    pub fn read_isolated(
        &self,
        start_offset: i64,
        max_bytes: usize,
        hw: i64,
        min_one_batch: bool,
        isolation: IsolationLevel,
    ) -> Result<(ReadInfo, Option<Vec<AbortedTxn>>), LogError> {
        match isolation {
            IsolationLevel::ReadUncommitted => {
                Ok((self.read(start_offset, max_bytes, hw, min_one_batch)?, None))
            }
            IsolationLevel::ReadCommitted => {
                let lso = self.last_stable_offset(hw);
                let info = self.read(start_offset, max_bytes, lso, min_one_batch)?;
                let aborted = if info.records.is_empty() {
                    Vec::new()
                } else {
                    self.collect_aborted_transactions(start_offset, info.next_offset)
                };
                Ok((info, Some(aborted)))
            }
        }
    }

    /// The aborted transactions in the segments' indexes, by marker offset
    /// (for tests and tools).
    pub fn aborted_transactions(&self) -> Vec<AbortedTxn> {
        self.segments
            .values()
            .flat_map(|s| s.aborted_txns().iter().copied())
            .collect()
    }

    /// The idempotent producers' state (see [`ProducerStateManager`]).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// The producers this log knows, by producer id (DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::ActiveProducer> {
        self.producer_state.active_producers()
    }

    /// Rebuild the producer state from the log start (what a truncation
    /// below every snapshot does), leaving this log's state and snapshot
    /// files alone; how it went. For the load benchmark.
    #[cfg(test)]
    pub(crate) fn rebuild_producer_state_from_start(
        &self,
    ) -> Result<crate::ProducerStateLoad, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        let mut state = ProducerStateManager::empty(&self.dir);
        state.truncate_and_reload(&self.segments, start, end, start, wall_clock_ms(), i64::MAX)?;
        Ok(state.last_load())
    }

    /// Remove producers idle for `producer.id.expiration.ms`; returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.producer_state
            .remove_expired(now_ms, self.config.producer_id_expiration_ms)
    }

    /// Graceful shutdown: seal the active segment's time index, write every
    /// index file, flush, and leave a clean-shutdown marker so the next open
    /// need not re-validate the active segment.
    pub fn close(mut self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        self.producer_state.take_snapshot(
            leo,
            wall_clock_ms(),
            self.config.producer_id_expiration_ms,
        )?;
        self.active_mut().seal();
        for seg in self.segments.values_mut() {
            seg.write_indexes()?;
        }
        self.flush()?;
        let active = self.active();
        CleanShutdown {
            log_end_offset: self.log_end_offset(),
            active_base_offset: active.base_offset(),
            active_size: active.size(),
        }
        .write(&self.dir)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// New configs apply to later appends, rolls and retention runs.
    pub fn set_config(&mut self, c: LogConfig) {
        self.config = c;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    // ---- internals ----

    /// Apply a batch just appended to the active segment (`batch`: its bytes,
    /// whose record is read only for a control batch) to the producer state;
    /// an aborted transaction it completed goes to the segment's index.
    fn update_producer_state(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
    ) -> Result<(), LogError> {
        let marker = if header.is_control() {
            parse_end_txn_marker(batch)
        } else {
            None
        };
        if let Some(txn) = self.producer_state.update(header, marker.as_ref())
            && txn.aborted
        {
            let entry = self.producer_state.aborted_txn(&txn);
            self.active_mut().append_aborted_txn(entry)?;
        }
        Ok(())
    }

    /// Put the aborts a producer-state replay completed into the index of the
    /// segment holding their marker, where a crash or a truncation lost them
    /// (Kafka's recovery rebuilds the index of the segments it recovers).
    fn apply_replayed_aborts(&mut self) -> Result<(), LogError> {
        for txn in self.producer_state.take_replayed_aborts() {
            if let Some(e) = self.segments.range_mut(..=txn.last_offset).next_back() {
                e.1.append_aborted_txn(txn)?;
            }
        }
        Ok(())
    }

    fn first_segment(&self) -> &LogSegment {
        match self.segments.first_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    pub(crate) fn active_base_offset(&self) -> i64 {
        self.active().base_offset()
    }

    fn active(&self) -> &LogSegment {
        match self.segments.last_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        match self.segments.last_entry() {
            Some(e) => e.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn check_set_size(&self, batches: &[(usize, BatchHeader)]) -> Result<u64, LogError> {
        let total: u64 = batches.iter().map(|(_, h)| h.size() as u64).sum();
        if total > self.config.segment_bytes {
            return Err(LogError::RecordSetTooLarge {
                size: total,
                segment_bytes: self.config.segment_bytes,
            });
        }
        Ok(total)
    }

    /// Roll before appending `size` bytes holding offsets `first..=last`
    /// (largest timestamp `max_timestamp`) if the active segment is
    /// non-empty and full (segment.bytes, either index) or old (segment.ms,
    /// see [`RollingBase`]), or cannot address the offsets.
    fn maybe_roll(
        &mut self,
        size: u64,
        (first, last): (i64, i64),
        max_timestamp: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let config = &self.config;
        let active = self.active();
        let addressable =
            active.can_hold_offset(last) && active.size() + size <= u64::from(u32::MAX);
        let should_roll = !addressable
            || (!active.is_empty()
                && (active.size() + size > config.segment_bytes
                    || active.offset_index_entries() >= config.max_offset_index_entries()
                    || active.time_index_entries() >= config.max_time_index_entries()
                    || active
                        .rolling_base()
                        .is_some_and(|b| b.waited(now_ms, max_timestamp) > config.segment_ms)));
        if should_roll {
            self.roll(first, now_ms)?;
        }
        Ok(())
    }

    /// Seal the active segment and start a new one at `base_offset`. An empty
    /// active segment is replaced instead. Either way the producer state as of
    /// `base_offset` is snapshotted: a failure to write it is an I/O error of
    /// the log directory like any other in the append path.
    fn roll(&mut self, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        if self.active().is_empty() {
            let old = self.active().base_offset();
            if old == base_offset {
                return Ok(());
            }
            if let Some(seg) = self.segments.remove(&old) {
                seg.delete()?;
            }
        } else {
            let active = self.active_mut();
            active.seal();
            active.write_indexes()?;
            active.sync_txn_index()?;
        }
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolling a new segment");
        self.segments.insert(
            base_offset,
            LogSegment::create(&self.dir, base_offset, &self.config.open_files)?,
        );
        self.dir_dirty = true;
        self.producer_state.take_snapshot(
            base_offset,
            now_ms,
            self.config.producer_id_expiration_ms,
        )
    }

    fn delete_oldest_segment(&mut self) -> Result<(), LogError> {
        if self.segments.len() > 1
            && let Some((_, seg)) = self.segments.pop_first()
        {
            seg.delete()?;
            self.dir_dirty = true;
            // A snapshot below the first segment could never be replayed from.
            let first = self.first_segment().base_offset();
            self.producer_state.delete_snapshots_below(first)?;
        }
        Ok(())
    }

    /// Delete non-active segments whose offsets all lie below the log start.
    fn delete_segments_below_log_start(&mut self) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let second_base = self.segments.keys().nth(1).copied().unwrap_or(i64::MAX);
            if second_base > self.log_start_offset {
                break;
            }
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        self.log_start_offset = offset;
        checkpoint::write_offset(&self.dir, LOG_START_OFFSET, offset)?;
        if self.leader_epoch_cache.truncate_from_start(offset) {
            self.persist_leader_epochs()?;
        }
        Ok(())
    }

    fn persist_leader_epochs(&self) -> Result<(), LogError> {
        checkpoint::write_atomic(
            &self.dir,
            LEADER_EPOCH,
            self.leader_epoch_cache.to_text().as_bytes(),
        )
    }
}
