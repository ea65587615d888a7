//! Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit stores
//! offsets as pending for their producer; a COMMIT or ABORT marker of that
//! producer in the group's `__consumer_offsets` partition later makes them
//! committed or drops them (Kafka's `pendingTransactionalOffsets` and
//! `replayEndTransactionMarker`).
//!
//! Kafka settles a commit against the committed offset by record offset:
//! the pending offset wins unless the committed one was written later (a
//! plain OffsetCommit, or another producer's transactional commit settled
//! meanwhile). Here the coordinator does not know log offsets, so each
//! group counts its writes instead: live and replay both see the records in
//! log order (compaction only drops records, never reorders them), so the
//! comparisons, and with them the outcomes, agree.

use std::collections::BTreeMap;

use fjord_types::TopicPartition;

use super::api::{CommittedOffset, CoordinatorOutput, PartitionResults, TxnOffsetCommitRequest};
use super::coordinator::{validate_current_member, validate_generation};
use super::offsets::Commit;
use super::records::GroupRecord;
use super::{ClassicGroup, GroupCoordinator, GroupError, GroupState};
use crate::txn::TransactionResult;

/// One pending offset and when it was written (in the group's write count).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingOffset {
    committed: CommittedOffset,
    written: u64,
}

/// A group's transactional offsets that wait for their producer's marker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PendingTxnOffsets {
    /// By producer id, then partition.
    by_producer: BTreeMap<i64, BTreeMap<TopicPartition, PendingOffset>>,
    /// For a partition with pending offsets: when its committed offset was
    /// last written, if after the first of them. Absent: the committed
    /// offset (if any) is older than every pending one.
    committed_written: BTreeMap<TopicPartition, u64>,
    /// The group's offset writes so far.
    writes: u64,
}

impl PendingTxnOffsets {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }

    /// Whether some producer has a pending offset for `tp`.
    pub(crate) fn has_partition(&self, tp: &TopicPartition) -> bool {
        self.by_producer
            .values()
            .any(|offsets| offsets.contains_key(tp))
    }

    /// Partitions with pending offsets (each once, in order).
    pub(crate) fn partitions(&self) -> Vec<TopicPartition> {
        let mut all: Vec<TopicPartition> = self
            .by_producer
            .values()
            .flat_map(|offsets| offsets.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The pending offset of `producer_id` for `tp`.
    pub(crate) fn get(&self, producer_id: i64, tp: &TopicPartition) -> Option<&CommittedOffset> {
        self.by_producer
            .get(&producer_id)?
            .get(tp)
            .map(|p| &p.committed)
    }

    fn next_write(&mut self) -> u64 {
        self.writes += 1;
        self.writes
    }

    /// A transactional commit of `producer_id` (replaces its earlier one).
    pub(crate) fn add(&mut self, producer_id: i64, tp: TopicPartition, committed: CommittedOffset) {
        let written = self.next_write();
        self.by_producer
            .entry(producer_id)
            .or_default()
            .insert(tp, PendingOffset { committed, written });
    }

    /// A plain offset commit of `tp` was written: newer than its pending ones.
    pub(crate) fn on_committed(&mut self, tp: &TopicPartition) {
        if self.has_partition(tp) {
            let written = self.next_write();
            self.committed_written.insert(tp.clone(), written);
        }
    }

    /// A tombstone of `tp`: its pending offsets go too (Kafka's replay of a
    /// tombstone clears the open transactions of the partition).
    pub(crate) fn remove_partition(&mut self, tp: &TopicPartition) {
        self.by_producer.retain(|_, offsets| {
            offsets.remove(tp);
            !offsets.is_empty()
        });
        self.committed_written.remove(tp);
    }

    /// The marker of `producer_id`: on COMMIT its pending offsets that are
    /// newer than the committed ones go into `offsets`; either way they go.
    pub(crate) fn complete(
        &mut self,
        producer_id: i64,
        result: TransactionResult,
        offsets: &mut BTreeMap<TopicPartition, CommittedOffset>,
    ) {
        let Some(pending) = self.by_producer.remove(&producer_id) else {
            return;
        };
        for (tp, p) in pending {
            let committed_newer = self
                .committed_written
                .get(&tp)
                .is_some_and(|&written| written > p.written);
            if result == TransactionResult::Commit && !committed_newer {
                offsets.insert(tp.clone(), p.committed);
                if self.has_partition(&tp) {
                    self.committed_written.insert(tp, p.written);
                    continue;
                }
            }
            if !self.has_partition(&tp) {
                self.committed_written.remove(&tp);
            }
        }
    }
}

impl GroupCoordinator {
    /// TxnOffsetCommit (Kafka's `commitTransactionalOffset`): the offsets
    /// are stored as pending for `producer_id`, invisible to OffsetFetch
    /// until [`complete_txn`](Self::complete_txn) commits them. The
    /// records are [`GroupRecord::TxnOffset`]s, to append in a
    /// transactional batch of the producer.
    ///
    /// KIP-447 fencing (v3+) as OffsetCommit's, with two differences Kafka
    /// makes for transactions: a commit without a generation (-1, no
    /// member, no instance id; what v0–v2 send) is accepted even by a group
    /// with members, and a CompletingRebalance group is not refused.
    pub fn txn_offset_commit(
        &mut self,
        req: TxnOffsetCommitRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<PartitionResults> {
        let commit = Commit {
            group_id: &req.group_id,
            generation_id: req.generation_id,
            partitions: &req.partitions,
            now_ms,
        };
        self.commit_offsets(
            commit,
            |group| validate_txn_offset_commit(group, &req),
            |group, tp, committed| {
                group
                    .pending_txn
                    .add(req.producer_id, tp.clone(), committed.clone());
                GroupRecord::TxnOffset {
                    producer_id: req.producer_id,
                    producer_epoch: req.producer_epoch,
                    group_id: req.group_id.clone(),
                    tp: tp.clone(),
                    committed,
                }
            },
        )
    }

    /// A COMMIT or ABORT marker of `producer_id` was appended to (or
    /// replayed from) this `__consumer_offsets` partition: its pending
    /// offsets in every group become committed, unless a newer commit of
    /// the partition was written after them, or are dropped. The marker is
    /// the log's record; nothing more is written.
    pub fn complete_txn(&mut self, producer_id: i64, result: TransactionResult) {
        super::records::complete_txn(&mut self.groups, producer_id, result);
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for a transactional commit.
fn validate_txn_offset_commit(
    group: &ClassicGroup,
    req: &TxnOffsetCommitRequest,
) -> Result<(), GroupError> {
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && group.state == GroupState::Empty {
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_current_member(group, &req.member_id, req.group_instance_id.as_deref())?;
        validate_generation(group, req.generation_id)?;
    }
    Ok(())
}
