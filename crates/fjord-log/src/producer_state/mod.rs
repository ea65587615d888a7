//! Idempotent producers' state on one partition, kept with the log (Kafka's
//! `ProducerStateManager`): per producer id its epoch, its last five batches
//! and when it last wrote, so that a retried batch is answered with its
//! original offsets instead of being written twice and a gap in sequence
//! numbers is refused.
//!
//! # How it stays true to the log
//! The [`crate::Log`] owns it and feeds it the header of every batch it
//! appends, as leader and as follower (headers only: records are never
//! decoded), so a follower that becomes leader already knows every producer.
//! `map_end_offset` is the offset up to which the state reflects the log; it
//! moves with the log end.
//!
//! # Snapshots ([`snapshot`])
//! A snapshot file of the state is written at every segment roll (at the new
//! segment's base offset) and at a clean close (at the log end). Open loads
//! the latest readable snapshot at or below the log end and replays only the
//! batch headers after it; truncation deletes the snapshots above the new
//! log end and reloads the same way. Snapshots below the first segment are
//! deleted with the segments, and only the newest [`RETAINED_SNAPSHOTS`] are
//! kept. Without any snapshot (a data directory from before snapshots, or
//! every one unreadable) the state is rebuilt from the start of the last two
//! segments: producers that wrote only before that are unknown, and an
//! unknown producer's next batch is accepted, as Kafka does when a producer
//! expired. Kafka's upgrade path makes the same cut. A truncation below every
//! kept snapshot rebuilds from the log start instead (rare, and then exact)
//! and snapshots the result, so that a crash right after it does not fall
//! back to the two-segment cut.
//!
//! # Expiry
//! A producer that has not written for `producer.id.expiration.ms` is
//! removed by the broker's periodic check, and left out of snapshots and
//! of what a snapshot load keeps.
//!
//! # Transactions (Kafka's `ProducerAppendInfo` rules)
//! A transactional data batch opens its producer's transaction at its first
//! offset (if none is open); a marker (a control batch with an ABORT or
//! COMMIT record, see [`crate::control`]) closes it and returns a
//! [`CompletedTxn`]. The leader checks before appending: a non-transactional
//! batch from a producer with an open transaction is `InvalidTxnState`, a
//! marker from an older producer epoch `InvalidProducerEpoch` and from an
//! older coordinator epoch than the last seen `TransactionCoordinatorFenced`.
//! Followers and replays apply what is in the log without checks.
//!
//! The first unstable offset is the first offset of the oldest transaction
//! that is open, or completed but whose marker is not yet below the high
//! watermark (Kafka's `ongoingTxns` and `unreplicatedTxns`: until the marker
//! is replicated, a new leader without it could still abort a committed
//! transaction). Open transactions are in snapshots (an entry's
//! `current_txn_first_offset` and `coordinator_epoch`), so the LSO survives
//! restarts; completed-but-unreplicated ones are not (as in Kafka).

mod entry;
pub(crate) mod snapshot;
mod verification;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entry::NO_PRODUCER_ID;
pub use entry::{
    ActiveProducer, BatchMetadata, CompletedTxn, ProducerStateEntry, SequenceCheck, SequenceError,
};
pub use verification::VerificationGuard;
use verification::Verifications;

use crate::batch::BatchHeader;
use crate::checkpoint;
use crate::control::{EndTxnMarker, parse_end_txn_marker};
use crate::error::LogError;
use crate::segment::{HEADER_WALK_CHUNK, LogSegment, Scan, Visit};
use crate::txn_index::AbortedTxn;

/// Snapshots kept at most (the newest). A follower truncates only the
/// unreplicated tail, well within the last few segments; a truncation below
/// every kept snapshot rebuilds from the log start.
pub const RETAINED_SNAPSHOTS: usize = 10;

/// A retried batch: the offsets it was written at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DuplicateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
}

/// How the state was last loaded (on open or after a truncation): what it
/// cost, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateLoad {
    /// The snapshot the state started from; `None`: rebuilt from the log.
    pub snapshot_offset: Option<i64>,
    /// Where the replay of batch headers started.
    pub replayed_from: i64,
    /// Batch headers read from segments to bring the state to the log end.
    pub batches_replayed: u64,
    /// Snapshots skipped (and deleted) because they did not read or decode.
    pub corrupt_snapshots: u32,
    /// Wall time of the load (snapshot read and replay).
    pub duration: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerStateEntry>,
    /// Every batch below this offset is in `producers` (Kafka's `mapEndOffset`).
    map_end_offset: i64,
    /// Offsets of the snapshot files in `dir`.
    snapshots: BTreeSet<i64>,
    last_load: ProducerStateLoad,
    /// Open transactions: first offset -> producer id (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker is not below the high watermark
    /// yet: first offset -> marker offset (Kafka's `unreplicatedTxns`).
    unreplicated: BTreeMap<i64, i64>,
    /// Aborted transactions completed by the last replay, for the log to put
    /// in its transaction indexes (where missing).
    replayed_aborts: Vec<AbortedTxn>,
    /// Verifications under way (leader only, in memory: a new leader
    /// verifies again).
    verifications: Verifications,
}

impl ProducerStateManager {
    /// No producers and no snapshots known (until [`Self::load`]).
    pub(crate) fn empty(dir: &Path) -> Self {
        ProducerStateManager {
            dir: dir.to_owned(),
            producers: HashMap::new(),
            map_end_offset: 0,
            snapshots: BTreeSet::new(),
            last_load: ProducerStateLoad::default(),
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
            replayed_aborts: Vec::new(),
            verifications: Verifications::default(),
        }
    }

    /// The state of the log in `dir` whose segments are `segments`, loaded
    /// from the latest usable snapshot plus the batches after it. Snapshots
    /// past `log_end` (the tail recovery cut) or below the first segment
    /// are deleted first.
    pub(crate) fn load(
        dir: &Path,
        segments: &BTreeMap<i64, LogSegment>,
        log_start: i64,
        log_end: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<Self, LogError> {
        let mut state = ProducerStateManager {
            snapshots: snapshot::list(dir)?.into_iter().collect(),
            ..ProducerStateManager::empty(dir)
        };
        let first_base = segments.keys().next().copied().unwrap_or(log_start);
        state.delete_snapshots_below(first_base)?;
        let fallback = rebuild_start(segments);
        state.truncate_and_reload(
            segments,
            log_start,
            log_end,
            fallback,
            now_ms,
            expiration_ms,
        )?;
        Ok(state)
    }

    /// Decide about a produce request's batches before they are appended. A
    /// request whose first batch is a retry is answered from the original
    /// (clients send one batch per partition per request); later batches must
    /// follow their predecessor.
    pub fn check_batches(
        &self,
        headers: &[BatchHeader],
    ) -> Result<Option<DuplicateBatch>, SequenceError> {
        let Some(first) = headers.first() else {
            return Ok(None);
        };
        if let SequenceCheck::Duplicate(dup) = self.check(first)? {
            return Ok(Some(DuplicateBatch {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset(),
            }));
        }
        // The later batches' transaction rule (their sequences follow below),
        // counting a transaction the request's own earlier batches open.
        for (i, h) in headers.iter().enumerate().skip(1) {
            if let Some(entry) = self.producers.get(&h.producer_id) {
                entry.check_txn(h)?;
            }
            let opened_here = headers[..i]
                .iter()
                .any(|p| p.producer_id == h.producer_id && p.is_transactional());
            if opened_here && !h.is_transactional() && h.producer_id != NO_PRODUCER_ID {
                return Err(SequenceError::InvalidTxnState {
                    producer_id: h.producer_id,
                    producer_epoch: h.producer_epoch,
                });
            }
        }
        for pair in headers.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            let follows = next.producer_id == NO_PRODUCER_ID
                || (next.producer_id == prev.producer_id
                    && next.producer_epoch == prev.producer_epoch
                    && next.base_sequence
                        == prev
                            .base_sequence
                            .wrapping_add(prev.last_offset_delta)
                            .wrapping_add(1));
            if !follows {
                return Err(SequenceError::OutOfOrderSequence {
                    last: prev.base_sequence.wrapping_add(prev.last_offset_delta),
                    got: next.base_sequence,
                });
            }
        }
        Ok(None)
    }

    /// Whether appending `header` needs the coordinator's verification
    /// first: a transactional data batch (a client's control batch is
    /// refused anyway) of a producer with no transaction open here.
    pub fn needs_verification(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && header.producer_id != NO_PRODUCER_ID
            && self
                .producers
                .get(&header.producer_id)
                .is_none_or(|entry| entry.current_txn_first_offset.is_none())
    }

    /// Take (or share) the producer's guard before asking the coordinator.
    pub fn start_verification(&mut self, producer_id: i64) -> VerificationGuard {
        self.verifications.start(producer_id)
    }

    /// Refuse a client's batches that would open a transaction without a
    /// verification still valid for it (INVALID_TXN_STATE, Kafka's "Record
    /// was not part of an ongoing transaction").
    pub fn check_verified(
        &self,
        headers: &[BatchHeader],
        guard: Option<VerificationGuard>,
    ) -> Result<(), SequenceError> {
        for header in headers.iter().filter(|h| self.needs_verification(h)) {
            let current = self.verifications.get(header.producer_id);
            if current.is_none() || current != guard {
                return Err(SequenceError::InvalidTxnState {
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                });
            }
        }
        Ok(())
    }

    /// Decide about a coordinator's batches (see
    /// [`ProducerStateEntry::check_coordinator`]); never a duplicate.
    pub fn check_coordinator_batches(&self, headers: &[BatchHeader]) -> Result<(), SequenceError> {
        for header in headers.iter().filter(|h| h.producer_id != NO_PRODUCER_ID) {
            if let Some(entry) = self.producers.get(&header.producer_id) {
                entry.check_coordinator(header)?;
            }
        }
        Ok(())
    }

    /// Decide about one client batch.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if header.producer_id == NO_PRODUCER_ID {
            return Ok(SequenceCheck::Append);
        }
        match self.producers.get(&header.producer_id) {
            Some(entry) => entry.check(header),
            // Unknown producer (new, or its state expired): accept, as Kafka 3 does.
            None => Ok(SequenceCheck::Append),
        }
    }

    /// Decide about a marker the leader is about to write (an unknown
    /// producer's is accepted, as in Kafka).
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: &EndTxnMarker,
    ) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(entry) => entry.check_marker(producer_epoch, marker),
            None => Ok(()),
        }
    }

    /// Apply a batch now in the log (`header.base_offset` is its offset
    /// there; `marker` is its transaction marker, for a control batch); the
    /// transaction it completed, if any.
    pub(crate) fn update(
        &mut self,
        header: &BatchHeader,
        marker: Option<&EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        self.map_end_offset = self.map_end_offset.max(header.next_offset());
        if header.producer_id == NO_PRODUCER_ID {
            return None;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(header.producer_epoch));
        let opened_before = entry.current_txn_first_offset;
        if header.is_transactional() {
            // Its transaction starts, goes on or ends: any guard is spent.
            self.verifications.clear(header.producer_id);
        }
        let ended = entry.update(header, marker);
        if opened_before.is_none()
            && let Some(first) = entry.current_txn_first_offset
        {
            self.ongoing.insert(first, header.producer_id);
        }
        let (first_offset, aborted) = ended?;
        self.ongoing.remove(&first_offset);
        self.unreplicated.insert(first_offset, header.base_offset);
        Some(CompletedTxn {
            producer_id: header.producer_id,
            first_offset,
            last_offset: header.base_offset,
            aborted,
        })
    }

    /// The index entry of an aborted transaction just completed: its last
    /// stable offset is the first offset of the oldest transaction still
    /// open, else the marker's offset + 1 (Kafka's `lastStableOffset(CompletedTxn)`).
    pub(crate) fn aborted_txn(&self, txn: &CompletedTxn) -> AbortedTxn {
        AbortedTxn {
            producer_id: txn.producer_id,
            first_offset: txn.first_offset,
            last_offset: txn.last_offset,
            last_stable_offset: self
                .ongoing
                .keys()
                .next()
                .copied()
                .unwrap_or(txn.last_offset.saturating_add(1)),
        }
    }

    /// The high watermark moved to `hw`: transactions whose marker is below
    /// it are decided for good (Kafka's `onHighWatermarkUpdated`).
    pub(crate) fn on_high_watermark_updated(&mut self, hw: i64) {
        self.unreplicated.retain(|_, &mut marker| marker >= hw);
    }

    /// Aborted transactions completed by the last load or truncation's
    /// replay, in marker order (taken once).
    pub(crate) fn take_replayed_aborts(&mut self) -> Vec<AbortedTxn> {
        std::mem::take(&mut self.replayed_aborts)
    }

    /// The log has nothing more below `offset` (a follower's gap, a roll).
    pub(crate) fn advance_to(&mut self, offset: i64) {
        self.map_end_offset = self.map_end_offset.max(offset);
    }

    pub fn producers(&self) -> &HashMap<i64, ProducerStateEntry> {
        &self.producers
    }

    /// Every producer known here, by producer id (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut active: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| entry.active(producer_id))
            .collect();
        active.sort_unstable_by_key(|p| p.producer_id);
        active
    }

    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// The first offset of the oldest transaction that is open, or
    /// completed with its marker not yet below the high watermark (see the
    /// module docs); `None` while there is none.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next();
        let unreplicated = self.unreplicated.keys().next();
        ongoing.into_iter().chain(unreplicated).min().copied()
    }

    /// [`Self::first_unstable_offset`] with the high watermark at `hw`, even
    /// if the log was not told yet (after a load, the replayed transactions
    /// are all "unreplicated" until the next [`Self::on_high_watermark_updated`]).
    pub fn first_unstable_offset_at(&self, hw: i64) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self
            .unreplicated
            .iter()
            .find(|&(_, &marker)| marker >= hw)
            .map(|(&first, _)| first);
        ongoing.into_iter().chain(unreplicated).min()
    }

    /// Open transactions: first offset -> producer id, oldest first.
    pub fn ongoing_transactions(&self) -> &BTreeMap<i64, i64> {
        &self.ongoing
    }

    pub fn last_load(&self) -> ProducerStateLoad {
        self.last_load
    }

    /// Offsets of the snapshot files, ascending.
    pub fn snapshot_offsets(&self) -> Vec<i64> {
        self.snapshots.iter().copied().collect()
    }

    /// Remove the producers that have not written for `expiration_ms`; returns how many.
    pub(crate) fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| !e.is_expired(now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// Write the state, as of `offset` (the log end: every batch below it is
    /// applied), to `<offset>.snapshot`, leaving out expired producers; then
    /// keep only the newest [`RETAINED_SNAPSHOTS`]. An error is an I/O error
    /// of the log directory.
    pub(crate) fn take_snapshot(
        &mut self,
        offset: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(), LogError> {
        self.advance_to(offset);
        let live: Vec<(&i64, &ProducerStateEntry)> = self
            .producers
            .iter()
            .filter(|(_, e)| !e.is_expired(now_ms, expiration_ms))
            .collect();
        let bytes = snapshot::encode(offset, live.into_iter());
        snapshot::write(&self.dir, offset, &bytes)?;
        self.snapshots.insert(offset);
        while self.snapshots.len() > RETAINED_SNAPSHOTS {
            if let Some(oldest) = self.snapshots.pop_first() {
                snapshot::delete(&self.dir, oldest)?;
            }
        }
        Ok(())
    }

    /// Delete the snapshots below `offset` (their segments are gone).
    pub(crate) fn delete_snapshots_below(&mut self, offset: i64) -> Result<(), LogError> {
        let below: Vec<i64> = self.snapshots.range(..offset).copied().collect();
        for s in below {
            snapshot::delete(&self.dir, s)?;
            self.snapshots.remove(&s);
        }
        Ok(())
    }

    /// Empty state at `offset` with no snapshots (the log restarts empty there).
    pub(crate) fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let all: Vec<i64> = self.snapshots.iter().copied().collect();
        for s in all {
            snapshot::delete(&self.dir, s)?;
        }
        self.snapshots.clear();
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        self.replayed_aborts.clear();
        self.map_end_offset = offset;
        self.last_load = ProducerStateLoad {
            replayed_from: offset,
            ..ProducerStateLoad::default()
        };
        Ok(())
    }

    /// Rebuild the state for a log now ending at `log_end` (after recovery
    /// or truncation): delete the snapshots above it (durably, so that an
    /// older state never comes back after a crash), load the latest readable
    /// one at or below it and replay the batch headers from there, or from
    /// `fallback_from` without a usable snapshot.
    pub(crate) fn truncate_and_reload(
        &mut self,
        segments: &BTreeMap<i64, LogSegment>,
        log_start: i64,
        log_end: i64,
        fallback_from: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(), LogError> {
        let above: Vec<i64> = self
            .snapshots
            .range((Bound::Excluded(log_end), Bound::Unbounded))
            .copied()
            .collect();
        for s in &above {
            snapshot::delete(&self.dir, *s)?;
            self.snapshots.remove(s);
        }
        if !above.is_empty() {
            checkpoint::sync_dir(&self.dir)?;
        }
        let started = Instant::now();
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        self.replayed_aborts.clear();
        let mut load = ProducerStateLoad::default();
        while let Some(&offset) = self.snapshots.last() {
            match snapshot::read(&self.dir, offset) {
                Ok(mut producers) => {
                    producers.retain(|_, e| !e.is_expired(now_ms, expiration_ms));
                    self.producers = producers;
                    load.snapshot_offset = Some(offset);
                    break;
                }
                Err(err) => {
                    // Like Kafka: skip it and try an older one (or the log).
                    tracing::warn!(dir = %self.dir.display(), offset, %err,
                        "skipping an unreadable producer state snapshot");
                    load.corrupt_snapshots += 1;
                    self.snapshots.remove(&offset);
                    if let Err(err) = snapshot::delete(&self.dir, offset) {
                        tracing::warn!(dir = %self.dir.display(), offset, %err,
                            "cannot delete an unreadable producer state snapshot");
                    }
                }
            }
        }
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| Some((e.current_txn_first_offset?, pid)))
            .collect();
        let from = load.snapshot_offset.unwrap_or(fallback_from).max(log_start);
        self.map_end_offset = from;
        load.replayed_from = from;
        load.batches_replayed = self.replay(segments, from, log_end)?;
        self.map_end_offset = log_end;
        load.duration = started.elapsed();
        self.last_load = load;
        Ok(())
    }

    /// Apply the headers of the batches in `[from, to)`; returns how many.
    fn replay(
        &mut self,
        segments: &BTreeMap<i64, LogSegment>,
        from: i64,
        to: i64,
    ) -> Result<u64, LogError> {
        let mut replayed = 0u64;
        let first = segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in segments.range(first..).map(|(_, s)| s) {
            if seg.base_offset() >= to {
                break;
            }
            let Some((position, _)) = seg.find_batch(from)? else {
                continue;
            };
            let scan = seg.scan(position, false, HEADER_WALK_CHUNK, |pos, h, _| {
                if h.base_offset >= to {
                    return Ok(Visit::Stop(()));
                }
                if h.last_offset() >= from {
                    // Only a control batch's record is read (one per transaction).
                    let marker = if h.is_control() {
                        parse_end_txn_marker(&seg.read(pos, h.size())?)
                    } else {
                        None
                    };
                    if let Some(txn) = self.update(h, marker.as_ref())
                        && txn.aborted
                    {
                        let aborted = self.aborted_txn(&txn);
                        self.replayed_aborts.push(aborted);
                    }
                    replayed += 1;
                }
                Ok(Visit::Next)
            })?;
            if let Scan::Stopped(()) = scan {
                break;
            }
            // `Scan::Invalid` cannot happen: the segment was validated on
            // append or recovery (and reads stop there too).
        }
        Ok(replayed)
    }
}

/// Where open rebuilds from without a snapshot: the base of the
/// second-to-last segment (see the module docs).
fn rebuild_start(segments: &BTreeMap<i64, LogSegment>) -> i64 {
    segments
        .keys()
        .rev()
        .nth(1)
        .or_else(|| segments.keys().next())
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
