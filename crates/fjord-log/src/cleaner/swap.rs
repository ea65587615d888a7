//! The two short steps of a pass that need the log's lock — planning and
//! swapping the cleaned segments in — and the completion of a swap a crash
//! interrupted (on open).
//!
//! # Swap protocol (Kafka's `.cleaned` / `.swap`)
//! 1. The pass wrote and fsynced `<base>.log.cleaned` and
//!    `<base>.txnindex.cleaned` (always written, maybe empty) for each
//!    cleaned segment, and fsynced the directory (outside the lock).
//! 2. Under the lock, for every cleaned segment rename the txn index, then
//!    the log, to `.swap`; fsync the directory. A `.log.swap` file is the
//!    commit point of its segment.
//! 3. Delete the replaced segments (their `.log`, indexes, `.txnindex`),
//!    write `cleaner-offset-checkpoint`; fsync the directory.
//! 4. Rename `.txnindex.swap`, then `.log.swap`, over the final names (made
//!    durable by the next flush); load the segments with the indexes the
//!    pass built.
//!
//! On open, a `<base>.log.swap` is completed: the segments whose base is in
//! `(base, the swap file's end)` are deleted (a replaced segment whose
//! batches were all removed can be left: it holds only superseded records,
//! at offsets after the swap file's), then steps 3-4. A `.cleaned` file, or
//! a `.txnindex.swap` without its `.log.swap`, is an uncommitted pass: deleted.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::checkpoint;
use crate::cleaner::pass::{
    BatchReader, CleanedLog, CleaningPlan, SWAP_SUFFIX, SourceSegment, cleaned_path, swap_path,
};
use crate::cleaner::plan::{CleanableRange, SegmentSummary, cleanable_range};
use crate::error::LogError;
use crate::log::Log;
use crate::recovery::parse_segment_name;
use crate::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, LogSegment, TIME_INDEX_SUFFIX};
use crate::txn_index::TXN_INDEX_SUFFIX;

/// How a swap went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The cleaned segments replaced these many segments.
    Swapped { replaced: usize, cleaned: usize },
    /// The log changed under the pass (a truncation, or retention /
    /// DeleteRecords removed a cleaned segment): the work was discarded.
    Discarded,
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::Io {
            context: "deleting",
            path: path.to_owned(),
            source,
        }),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), LogError> {
    fs::rename(from, to).map_err(LogError::io("renaming to", to))
}

impl Log {
    /// The cleaner's checkpoint: where the next pass's dirty range starts
    /// (`None` before the first pass).
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        self.cleaner_checkpoint.first_dirty
    }

    /// The cleanable range at last stable offset `last_stable_offset`:
    /// segment metadata only (plus one batch header for
    /// `max.compaction.lag.ms`), cheap enough to ask every log under its lock.
    pub fn cleanable_range(
        &self,
        last_stable_offset: i64,
        now_ms: i64,
    ) -> Result<CleanableRange, LogError> {
        let summaries: Vec<SegmentSummary> = self
            .segments
            .values()
            .map(|s| SegmentSummary {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
            })
            .collect();
        let mut header_error = None;
        let first_ts = |s: &SegmentSummary| match self.segments.get(&s.base_offset) {
            Some(seg) => seg.first_batch_timestamp().unwrap_or_else(|e| {
                header_error = Some(e);
                None
            }),
            None => None,
        };
        let range = cleanable_range(
            &summaries,
            self.log_start_offset,
            self.cleaner_checkpoint.first_dirty,
            last_stable_offset,
            first_ts,
            &self.config,
            now_ms,
        );
        match header_error {
            Some(e) => Err(e),
            None => Ok(range),
        }
    }

    /// Under the log's lock: what a pass would clean now, if the log is
    /// compacted and the pass is due (dirty ratio or max compaction lag).
    /// Copies what the pass needs (segment file handles, aborted
    /// transactions, producers' last batches) so that it runs without the lock.
    pub fn plan_cleaning(
        &self,
        last_stable_offset: i64,
        now_ms: i64,
    ) -> Result<Option<CleaningPlan>, LogError> {
        if !self.config.cleanup_policy.compacts() {
            return Ok(None);
        }
        let range = self.cleanable_range(last_stable_offset, now_ms)?;
        if !range.is_due(&self.config) {
            return Ok(None);
        }
        self.plan_range(range).map(Some)
    }

    /// A plan for `range` whatever the dirty ratio (tests, tools).
    pub fn plan_range(&self, range: CleanableRange) -> Result<CleaningPlan, LogError> {
        let active_base = self.active_base_offset();
        let mut sources = Vec::new();
        for seg in self.segments.values() {
            if seg.base_offset() >= range.end || seg.base_offset() >= active_base {
                break;
            }
            sources.push(SourceSegment {
                base_offset: seg.base_offset(),
                next_offset: seg.next_offset(),
                size: seg.size(),
                path: seg.log_path().to_owned(),
                file: seg.file_handle()?,
                aborted_txns: seg.aborted_txns().to_vec(),
            });
        }
        let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for txn in self.collect_aborted_transactions(self.log_start_offset, range.end) {
            aborted
                .entry(txn.producer_id)
                .or_default()
                .push((txn.first_offset, txn.last_offset));
        }
        let producer_last_batch = self
            .producer_state
            .producers()
            .iter()
            .filter_map(|(&pid, e)| Some((pid, e.batches.back()?.last_offset())))
            .collect();
        Ok(CleaningPlan {
            dir: self.dir.clone(),
            range,
            sources,
            aborted,
            producer_last_batch,
            delete_retention_ms: self.config.delete_retention_ms,
            segment_bytes: self.config.segment_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
            truncations: self.truncations,
            clean_times: self.cleaner_checkpoint.clone(),
        })
    }

    /// Under the log's lock: put the cleaned segments in place of the ones
    /// they were made from, if those are all still there unchanged (else the
    /// work is discarded), and move the cleaner checkpoint. See the module
    /// docs for the crash-safe order of renames.
    pub fn swap_cleaned(&mut self, cleaned: CleanedLog) -> Result<SwapOutcome, LogError> {
        let active_base = self.active_base_offset();
        let unchanged = cleaned.truncations == self.truncations
            && cleaned
                .groups
                .iter()
                .flat_map(|g| &g.sources)
                .all(|&(base, size, next)| {
                    base < active_base
                        && self
                            .segments
                            .get(&base)
                            .is_some_and(|s| s.size() == size && s.next_offset() == next)
                });
        if !unchanged {
            cleaned.discard();
            return Ok(SwapOutcome::Discarded);
        }
        let dir = self.dir.clone();
        let (mut replaced, mut swapped) = (0, 0);
        let map_end = cleaned.map_end;
        let groups = cleaned.groups;
        // Few fsyncs under the lock, whatever the number of groups (each
        // one also flushes what appends wrote since the pass's own sync).
        for group in &groups {
            let base = group.base_offset();
            rename(
                &cleaned_path(&dir, base, TXN_INDEX_SUFFIX),
                &swap_path(&dir, base, TXN_INDEX_SUFFIX),
            )?;
            rename(
                &cleaned_path(&dir, base, LOG_SUFFIX),
                &swap_path(&dir, base, LOG_SUFFIX),
            )?;
        }
        // Commit point of every group.
        checkpoint::sync_dir(&dir)?;
        for group in &groups {
            for &(source, _, _) in &group.sources {
                if let Some(seg) = self.segments.remove(&source) {
                    seg.delete()?;
                    replaced += 1;
                }
            }
        }
        // The checkpoint's rename rides on the next directory fsync: once it
        // is durable, so are the commits above (`.swap` files open completes).
        let retention = self.config.delete_retention_ms;
        self.cleaner_checkpoint
            .record_pass(map_end, cleaned.now_ms, retention);
        self.cleaner_checkpoint.write_unsynced(&dir)?;
        // The replaced segments are gone for good before a cleaned one
        // takes its final name (else a crash could show both, overlapping).
        checkpoint::sync_dir(&dir)?;
        for group in groups {
            finish_renames(&dir, group.base_offset())?;
            let seg = LogSegment::open_cleaned(&dir, group.indexes, &self.config.open_files)?;
            self.segments.insert(seg.base_offset(), seg);
            swapped += 1;
        }
        // The final names are made durable by the next flush; a crash before
        // leaves `.swap` files, which open completes.
        self.dir_dirty = true;
        Ok(SwapOutcome::Swapped {
            replaced,
            cleaned: swapped,
        })
    }

    /// Plan, clean and swap in one call, holding `&mut self` throughout:
    /// for tests and tools (the broker releases its lock during the pass).
    /// `None` when no pass is due.
    pub fn clean_now(
        &mut self,
        last_stable_offset: i64,
        map_memory_bytes: usize,
        now_ms: i64,
    ) -> Result<Option<crate::CleanerStats>, LogError> {
        let Some(plan) = self.plan_cleaning(last_stable_offset, now_ms)? else {
            return Ok(None);
        };
        let cleaned = plan.clean(map_memory_bytes, 1 << 20, now_ms)?;
        let stats = cleaned.stats;
        self.swap_cleaned(cleaned)?;
        Ok(Some(stats))
    }

    /// The cleaner checkpoint must not stay above a truncation point.
    pub(crate) fn truncate_cleaner_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        if self
            .cleaner_checkpoint
            .first_dirty
            .is_some_and(|c| c > offset)
        {
            self.cleaner_checkpoint.truncate_to(offset);
            self.cleaner_checkpoint.write(&self.dir)?;
        }
        Ok(())
    }

    /// The log restarts empty at `offset`: nothing is clean below it.
    pub(crate) fn reset_cleaner_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        if self.cleaner_checkpoint.first_dirty.is_some() {
            self.cleaner_checkpoint = crate::cleaner::CleanerCheckpoint {
                first_dirty: Some(offset),
                clean_times: Vec::new(),
            };
            self.cleaner_checkpoint.write(&self.dir)?;
        }
        Ok(())
    }
}

/// Step 4's renames for the committed `<base>.log.swap` (the replaced
/// segments are already deleted), not fsynced. Idempotent.
fn finish_renames(dir: &Path, base: i64) -> Result<(), LogError> {
    let txn_swap = swap_path(dir, base, TXN_INDEX_SUFFIX);
    let txn = dir.join(segment::file_name(base, TXN_INDEX_SUFFIX));
    // Without `.txnindex.swap` the rename below already happened.
    if txn_swap.exists() {
        rename(&txn_swap, &txn)?;
    }
    rename(
        &swap_path(dir, base, LOG_SUFFIX),
        &dir.join(segment::file_name(base, LOG_SUFFIX)),
    )?;
    // An index without entries has no file (see `txn_index`).
    if fs::metadata(&txn).is_ok_and(|m| m.len() == 0) {
        remove_if_exists(&txn)?;
    }
    Ok(())
}

/// Offset after the last batch of a `.log.swap` file (its base when empty).
fn swap_end(dir: &Path, base: i64) -> Result<i64, LogError> {
    let path = swap_path(dir, base, LOG_SUFFIX);
    let file = fs::File::open(&path).map_err(LogError::io("opening", &path))?;
    let size = file
        .metadata()
        .map_err(LogError::io("reading metadata of", &path))?
        .len();
    let mut reader = BatchReader::new(&file, &path, size);
    let mut end = base;
    while let Some((h, _)) = reader.next_batch()? {
        end = h.next_offset();
    }
    Ok(end)
}

/// Complete the swaps a crash interrupted after their commit point (see
/// the module docs); returns how many. Called on open before the segments
/// are listed.
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<usize, LogError> {
    let swap_name = format!("{LOG_SUFFIX}{SWAP_SUFFIX}");
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io("listing", dir))? {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| parse_segment_name(n, LOG_SUFFIX))
            && name.ends_with(&swap_name)
        {
            swaps.push(base);
        } else if let Some(base) = parse_segment_name(name, LOG_SUFFIX) {
            logs.push(base);
        }
    }
    swaps.sort_unstable();
    for &base in &swaps {
        let end = swap_end(dir, base)?;
        tracing::info!(dir = %dir.display(), base, end, "completing an interrupted cleaner swap");
        for &old in logs.iter().filter(|&&b| b >= base && b < end.max(base + 1)) {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                remove_if_exists(&dir.join(segment::file_name(old, suffix)))?;
            }
            // The base's own txn index is replaced by the swap's (if still there).
            if old != base || swap_path(dir, base, TXN_INDEX_SUFFIX).exists() {
                remove_if_exists(&dir.join(segment::file_name(old, TXN_INDEX_SUFFIX)))?;
            }
        }
    }
    if !swaps.is_empty() {
        // Every replaced segment is gone before the final names appear.
        checkpoint::sync_dir(dir)?;
        for &base in &swaps {
            finish_renames(dir, base)?;
        }
        checkpoint::sync_dir(dir)?;
    }
    Ok(swaps.len())
}
