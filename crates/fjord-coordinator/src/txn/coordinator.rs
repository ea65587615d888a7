//! [`TransactionCoordinator`]: the transactional ids of one
//! `__transaction_state` partition, one method per Kafka API.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::TopicPartition;

use super::api::*;
use super::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionMetadata, TransactionState, TxnConfig, TxnError,
    TxnRecord,
};
use crate::offsets_topic::{CONSUMER_OFFSETS, partition_for};

/// Hands out producer ids (Kafka's `ProducerIdManager`; the controller
/// allocates blocks of them).
pub trait ProducerIdAllocator {
    /// A producer id never handed out before, or `None` when none can be
    /// handed out now (the next block has not arrived).
    fn allocate(&mut self) -> Option<i64>;
}

/// Kafka's `isEpochExhausted`: at this epoch InitProducerId rotates to a
/// new producer id instead of bumping.
fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The markers of a Prepare* transaction not yet written (in memory only:
/// after a load every partition of a Prepare* transaction is asked again).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingMarkers {
    producer_id: i64,
    producer_epoch: i16,
    result: TransactionResult,
    remaining: BTreeSet<TopicPartition>,
}

/// The transactional ids of one `__transaction_state` partition.
#[derive(Clone, Debug)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TransactionMetadata>,
    pending_markers: BTreeMap<String, PendingMarkers>,
}

/// Moves `md` to `to` if Kafka allows it; a refused transition is a bug
/// of this module, answered UNKNOWN_SERVER_ERROR rather than a panic.
fn transition(md: &mut TransactionMetadata, to: TransactionState) -> Result<(), TxnError> {
    if to.can_transition_from(md.state) {
        md.state = to;
        Ok(())
    } else {
        tracing::error!(
            transactional_id = md.transactional_id,
            from = %md.state, %to,
            "illegal transaction state transition"
        );
        Err(TxnError::UnknownServerError)
    }
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator {
            config,
            txns: BTreeMap::new(),
            pending_markers: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The metadata of `transactional_id`.
    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every transactional id's metadata, by id.
    pub fn transactions(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.txns.values()
    }

    /// InitProducerId (Kafka's `handleInitProducerId`).
    pub fn init_producer_id(
        &mut self,
        req: InitProducerIdRequest,
        allocator: &mut dyn ProducerIdAllocator,
        now_ms: i64,
    ) -> TxnOutput<Result<ProducerIdAndEpoch, TxnError>> {
        let Some(transactional_id) = req.transactional_id else {
            let reply = allocator
                .allocate()
                .map(|producer_id| ProducerIdAndEpoch {
                    producer_id,
                    epoch: 0,
                })
                .ok_or(TxnError::CoordinatorLoadInProgress);
            return TxnOutput::reply(reply);
        };
        if transactional_id.is_empty() {
            return TxnOutput::reply(Err(TxnError::EmptyTransactionalId));
        }
        let max_ms = self.config.transaction_max_timeout_ms;
        if req.transaction_timeout_ms <= 0 || req.transaction_timeout_ms > max_ms {
            return TxnOutput::reply(Err(TxnError::InvalidTransactionTimeout {
                timeout_ms: req.transaction_timeout_ms,
                max_ms,
            }));
        }
        let mut md = match self.txns.get(&transactional_id).cloned() {
            Some(md) => md,
            None => {
                let Some(producer_id) = allocator.allocate() else {
                    return TxnOutput::reply(Err(TxnError::CoordinatorLoadInProgress));
                };
                TransactionMetadata {
                    transactional_id: transactional_id.clone(),
                    producer_id,
                    previous_producer_id: NO_PRODUCER_ID,
                    next_producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    timeout_ms: req.transaction_timeout_ms,
                    state: TransactionState::Empty,
                    partitions: BTreeSet::new(),
                    start_timestamp_ms: -1,
                    last_update_timestamp_ms: now_ms,
                    client_transaction_version: 0,
                }
            }
        };
        if let Some(expected) = req.expected {
            // KIP-360: fence unless the metadata is new, the producer id is
            // the current one (the epoch is checked below), or it is the
            // previous one with an exhausted epoch (a retry of a rotation).
            let valid = md.producer_epoch == NO_PRODUCER_EPOCH
                || expected.producer_id == md.producer_id
                || (expected.producer_id == md.previous_producer_id
                    && is_epoch_exhausted(expected.epoch));
            if !valid {
                return TxnOutput::reply(Err(TxnError::ProducerFenced {
                    epoch: expected.epoch,
                    current: md.producer_epoch,
                }));
            }
        }
        match md.state {
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                TxnOutput::reply(Err(TxnError::ConcurrentTransactions { state: md.state }))
            }
            TransactionState::Ongoing => {
                // Fence the open transaction: abort it with a bumped epoch
                // (never handed to a client) and have the producer retry,
                // which bumps the epoch once more (or rotates the id).
                self.fence_and_abort(md, now_ms).map_reply(|r| {
                    r.and(Err(TxnError::ConcurrentTransactions {
                        state: TransactionState::Ongoing,
                    }))
                })
            }
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                let expected_epoch = req.expected.map(|e| e.epoch);
                if is_epoch_exhausted(md.producer_epoch)
                    && expected_epoch.is_none_or(|e| e == md.producer_epoch)
                {
                    let Some(new_id) = allocator.allocate() else {
                        return TxnOutput::reply(Err(TxnError::CoordinatorLoadInProgress));
                    };
                    md.last_producer_epoch = if req.expected.is_some() {
                        md.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    md.previous_producer_id = md.producer_id;
                    md.producer_id = new_id;
                    md.producer_epoch = 0;
                } else {
                    let bumped = md.producer_epoch + 1;
                    let (epoch, last) = match expected_epoch {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some(e)
                            if md.producer_epoch == NO_PRODUCER_EPOCH || e == md.producer_epoch =>
                        {
                            (bumped, md.producer_epoch)
                        }
                        // A retry of a bump whose answer was lost.
                        Some(e) if e == md.last_producer_epoch => {
                            (md.producer_epoch, md.last_producer_epoch)
                        }
                        Some(e) => {
                            return TxnOutput::reply(Err(TxnError::ProducerFenced {
                                epoch: e,
                                current: md.producer_epoch,
                            }));
                        }
                    };
                    md.producer_epoch = epoch;
                    md.last_producer_epoch = last;
                }
                if let Err(e) = transition(&mut md, TransactionState::Empty) {
                    return TxnOutput::reply(Err(e));
                }
                md.timeout_ms = req.transaction_timeout_ms;
                md.partitions.clear();
                md.start_timestamp_ms = -1;
                md.last_update_timestamp_ms = now_ms;
                let reply = ProducerIdAndEpoch {
                    producer_id: md.producer_id,
                    epoch: md.producer_epoch,
                };
                let record = md.to_record();
                self.txns.insert(transactional_id, md);
                TxnOutput {
                    reply: Ok(reply),
                    records: vec![record],
                    markers: Vec::new(),
                }
            }
            // Never kept in memory: a bug, as in Kafka (which treats it as fatal).
            TransactionState::Dead | TransactionState::PrepareEpochFence => {
                tracing::error!(transactional_id, state = %md.state, "transactional id in a transient state");
                TxnOutput::reply(Err(TxnError::UnknownServerError))
            }
        }
    }

    /// Checks `producer` against its metadata as AddPartitionsToTxn,
    /// AddOffsetsToTxn and the verification do.
    fn check_producer(&self, producer: &TxnProducer) -> Result<&TransactionMetadata, TxnError> {
        if producer.transactional_id.is_empty() {
            return Err(TxnError::EmptyTransactionalId);
        }
        let md = self.txns.get(&producer.transactional_id).ok_or(
            TxnError::InvalidProducerIdMapping {
                producer_id: producer.producer_id,
            },
        )?;
        if md.producer_id != producer.producer_id {
            return Err(TxnError::InvalidProducerIdMapping {
                producer_id: producer.producer_id,
            });
        }
        if md.producer_epoch != producer.producer_epoch {
            return Err(TxnError::ProducerFenced {
                epoch: producer.producer_epoch,
                current: md.producer_epoch,
            });
        }
        if md.state.is_prepare() || md.state == TransactionState::PrepareEpochFence {
            return Err(TxnError::ConcurrentTransactions { state: md.state });
        }
        Ok(md)
    }

    /// AddPartitionsToTxn v0-3, the client's form (Kafka's
    /// `handleAddPartitionsToTransaction`): the partitions join the
    /// transaction, which starts if none is open.
    pub fn add_partitions(
        &mut self,
        producer: &TxnProducer,
        partitions: &BTreeSet<TopicPartition>,
        now_ms: i64,
    ) -> TxnOutput<Result<(), TxnError>> {
        let md = match self.check_producer(producer) {
            Ok(md) => md,
            Err(e) => return TxnOutput::reply(Err(e)),
        };
        if md.state == TransactionState::Ongoing && md.partitions.is_superset(partitions) {
            return TxnOutput::reply(Ok(()));
        }
        let mut md = md.clone();
        if md.state.is_idle() {
            md.start_timestamp_ms = now_ms;
        }
        if let Err(e) = transition(&mut md, TransactionState::Ongoing) {
            return TxnOutput::reply(Err(e));
        }
        md.partitions.extend(partitions.iter().cloned());
        md.last_update_timestamp_ms = now_ms;
        let record = md.to_record();
        self.txns.insert(md.transactional_id.clone(), md);
        TxnOutput {
            reply: Ok(()),
            records: vec![record],
            markers: Vec::new(),
        }
    }

    /// AddPartitionsToTxn v4+ with VerifyOnly (KIP-890 part 1, Kafka's
    /// `handleVerifyPartitionsInTransaction`): whether each partition is in
    /// the producer's transaction. Reads only.
    pub fn verify_partitions(
        &self,
        producer: &TxnProducer,
        partitions: &BTreeSet<TopicPartition>,
    ) -> VerifyResult {
        let answer = |tp: &TopicPartition| match self.check_producer(producer) {
            Err(e) => Err(e),
            Ok(md) if md.partitions.contains(tp) => Ok(()),
            Ok(_) => Err(TxnError::TransactionAbortable),
        };
        partitions
            .iter()
            .map(|tp| (tp.clone(), answer(tp)))
            .collect()
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins
    /// the transaction (Kafka's `handleAddOffsetsToTransaction`).
    pub fn add_offsets(
        &mut self,
        producer: &TxnProducer,
        group_id: &str,
        now_ms: i64,
    ) -> TxnOutput<Result<(), TxnError>> {
        let partition = partition_for(group_id, self.config.offsets_topic_partitions);
        let tp = TopicPartition::new(CONSUMER_OFFSETS, partition);
        self.add_partitions(producer, &BTreeSet::from([tp]), now_ms)
    }

    /// EndTxn (Kafka's `handleEndTransaction` from a client): the Prepare*
    /// record to write, answered once it is committed, then the markers.
    /// The reply carries the producer id and epoch the producer goes on
    /// with (EndTxn v5).
    pub fn end_txn(
        &mut self,
        req: &EndTxnRequest,
        allocator: &mut dyn ProducerIdAllocator,
        now_ms: i64,
    ) -> TxnOutput<Result<ProducerIdAndEpoch, TxnError>> {
        if req.transactional_id.is_empty() {
            return TxnOutput::reply(Err(TxnError::EmptyTransactionalId));
        }
        let Some(md) = self.txns.get(&req.transactional_id) else {
            return TxnOutput::reply(Err(TxnError::InvalidProducerIdMapping {
                producer_id: req.producer_id,
            }));
        };
        if md.producer_id != req.producer_id {
            return TxnOutput::reply(Err(TxnError::InvalidProducerIdMapping {
                producer_id: req.producer_id,
            }));
        }
        if md.producer_epoch != req.producer_epoch {
            return TxnOutput::reply(Err(TxnError::ProducerFenced {
                epoch: req.producer_epoch,
                current: md.producer_epoch,
            }));
        }
        let current = ProducerIdAndEpoch {
            producer_id: md.producer_id,
            epoch: md.producer_epoch,
        };
        use TransactionResult::*;
        use TransactionState::*;
        let invalid = Err(TxnError::InvalidTxnState { state: md.state });
        let concurrent = Err(TxnError::ConcurrentTransactions { state: md.state });
        match (md.state, req.result) {
            (Ongoing, _) => {}
            (CompleteCommit, Commit) | (CompleteAbort, Abort) => {
                return TxnOutput::reply(Ok(current));
            }
            (PrepareCommit, Commit) | (PrepareAbort, Abort) => {
                return TxnOutput::reply(concurrent);
            }
            _ => return TxnOutput::reply(invalid),
        }
        let mut md = md.clone();
        let bump = self.config.epoch_bump_per_transaction && req.client_transaction_version >= 2;
        if bump {
            if is_epoch_exhausted(md.producer_epoch) {
                let Some(next) = allocator.allocate() else {
                    return TxnOutput::reply(Err(TxnError::CoordinatorLoadInProgress));
                };
                md.next_producer_id = next;
            }
            md.last_producer_epoch = md.producer_epoch;
            md.producer_epoch = md.producer_epoch.saturating_add(1);
            md.client_transaction_version = req.client_transaction_version;
        }
        let to = match req.result {
            Commit => PrepareCommit,
            Abort => PrepareAbort,
        };
        self.prepare(md, to, now_ms).map_ok(|md| {
            if md.next_producer_id != NO_PRODUCER_ID {
                ProducerIdAndEpoch {
                    producer_id: md.next_producer_id,
                    epoch: 0,
                }
            } else {
                ProducerIdAndEpoch {
                    producer_id: md.producer_id,
                    epoch: md.producer_epoch,
                }
            }
        })
    }

    /// Moves an Ongoing `md` to PrepareCommit/PrepareAbort: the record and
    /// the markers to send once it is committed.
    fn prepare(
        &mut self,
        mut md: TransactionMetadata,
        to: TransactionState,
        now_ms: i64,
    ) -> TxnOutput<Result<TransactionMetadata, TxnError>> {
        if let Err(e) = transition(&mut md, to) {
            return TxnOutput::reply(Err(e));
        }
        md.last_update_timestamp_ms = now_ms;
        let mut records = vec![md.to_record()];
        self.txns.insert(md.transactional_id.clone(), md.clone());
        let mut markers = Vec::new();
        if md.partitions.is_empty() {
            // Nothing to mark (Kafka completes such a transaction at once).
            records.extend(self.complete(&md.transactional_id, now_ms));
        } else {
            markers.extend(self.request_markers(&md));
        }
        TxnOutput {
            reply: Ok(md),
            records,
            markers,
        }
    }

    /// Records the markers a Prepare* `md` needs and returns the request.
    fn request_markers(&mut self, md: &TransactionMetadata) -> Option<MarkerRequest> {
        let result = match md.state {
            TransactionState::PrepareCommit => TransactionResult::Commit,
            TransactionState::PrepareAbort => TransactionResult::Abort,
            _ => return None,
        };
        self.pending_markers.insert(
            md.transactional_id.clone(),
            PendingMarkers {
                producer_id: md.producer_id,
                producer_epoch: md.producer_epoch,
                result,
                remaining: md.partitions.clone(),
            },
        );
        Some(MarkerRequest {
            transactional_id: md.transactional_id.clone(),
            producer_id: md.producer_id,
            producer_epoch: md.producer_epoch,
            result,
            partitions: md.partitions.clone(),
        })
    }

    /// Aborts an Ongoing `md` for a fence (InitProducerId) or a timeout:
    /// through PrepareEpochFence to PrepareAbort with the epoch bumped
    /// (kept at i16::MAX if it is there already).
    fn fence_and_abort(
        &mut self,
        mut md: TransactionMetadata,
        now_ms: i64,
    ) -> TxnOutput<Result<(), TxnError>> {
        if let Err(e) = transition(&mut md, TransactionState::PrepareEpochFence) {
            return TxnOutput::reply(Err(e));
        }
        md.producer_epoch = md.producer_epoch.saturating_add(1);
        md.last_producer_epoch = NO_PRODUCER_EPOCH;
        self.prepare(md, TransactionState::PrepareAbort, now_ms)
            .map_ok(|_| ())
    }

    /// A marker of `partition` was written for the transaction of
    /// `transactional_id` at `producer_id`/`producer_epoch` (or the
    /// partition no longer exists). When it was the last one, the
    /// Complete* record to write. Stale or repeated acks change nothing.
    ///
    /// When the Complete* append fails, the shell restores the state from
    /// before this call and calls it again later with the same arguments
    /// (Kafka retries the append); the marker is not sent again.
    pub fn marker_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: &TopicPartition,
        now_ms: i64,
    ) -> TxnOutput<()> {
        let Some(pending) = self.pending_markers.get_mut(transactional_id) else {
            return TxnOutput::reply(());
        };
        if pending.producer_id != producer_id || pending.producer_epoch != producer_epoch {
            return TxnOutput::reply(());
        }
        pending.remaining.remove(partition);
        if !pending.remaining.is_empty() {
            return TxnOutput::reply(());
        }
        self.pending_markers.remove(transactional_id);
        TxnOutput {
            reply: (),
            records: self
                .complete(transactional_id, now_ms)
                .into_iter()
                .collect(),
            markers: Vec::new(),
        }
    }

    /// Moves a Prepare* transaction to its Complete* state (every marker is
    /// written): the record to write.
    fn complete(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnRecord> {
        let mut md = self.txns.get(transactional_id)?.clone();
        let to = match md.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            _ => TransactionState::CompleteAbort,
        };
        transition(&mut md, to).ok()?;
        md.partitions.clear();
        md.last_update_timestamp_ms = now_ms;
        if md.next_producer_id != NO_PRODUCER_ID {
            // KIP-890 part 2: the epoch is exhausted, move to the next id.
            md.previous_producer_id = md.producer_id;
            md.producer_id = md.next_producer_id;
            md.next_producer_id = NO_PRODUCER_ID;
            md.producer_epoch = 0;
            md.last_producer_epoch = NO_PRODUCER_EPOCH;
        }
        let record = md.to_record();
        self.txns.insert(md.transactional_id.clone(), md);
        Some(record)
    }

    /// When [`on_tick`](Self::on_tick) next has something to do: an
    /// Ongoing transaction passes its timeout, or an idle id expires.
    pub fn next_deadline(&self) -> Option<i64> {
        self.txns
            .values()
            .filter_map(|md| self.deadline_of(md))
            .min()
    }

    fn deadline_of(&self, md: &TransactionMetadata) -> Option<i64> {
        match md.state {
            // Kafka aborts once `start + timeout < now`.
            TransactionState::Ongoing => Some(md.start_timestamp_ms + i64::from(md.timeout_ms) + 1),
            s if s.is_idle() => {
                Some(md.last_update_timestamp_ms + self.config.transactional_id_expiration_ms)
            }
            _ => None,
        }
    }

    /// Aborts the Ongoing transactions past their timeout with a bumped
    /// epoch, fencing their producer (Kafka's
    /// `abortTimedOutTransactions`), and expires the idle ids not used
    /// for `transactional.id.expiration.ms` with a tombstone (Kafka's
    /// `removeExpiredTransactionalIds`).
    pub fn on_tick(&mut self, now_ms: i64) -> TxnOutput<()> {
        let due: Vec<String> = self
            .txns
            .values()
            .filter(|md| self.deadline_of(md).is_some_and(|d| d <= now_ms))
            .map(|md| md.transactional_id.clone())
            .collect();
        let mut out = TxnOutput::reply(());
        for id in due {
            let Some(md) = self.txns.get(&id).cloned() else {
                continue;
            };
            if md.state == TransactionState::Ongoing {
                let o = self.fence_and_abort(md, now_ms);
                out.records.extend(o.records);
                out.markers.extend(o.markers);
            } else {
                let mut dead = md;
                if transition(&mut dead, TransactionState::Dead).is_ok() {
                    self.txns.remove(&id);
                    out.records.push(TxnRecord::Tombstone {
                        transactional_id: id,
                    });
                }
            }
        }
        out
    }

    /// Applies one record read from the partition's log (a load).
    pub fn replay(&mut self, record: TxnRecord) {
        match record {
            TxnRecord::Metadata {
                transactional_id,
                value,
            } => {
                let md = TransactionMetadata::from_value(transactional_id.clone(), value);
                self.txns.insert(transactional_id, md);
            }
            TxnRecord::Tombstone { transactional_id } => {
                self.txns.remove(&transactional_id);
            }
        }
    }

    /// The load is over: the markers of every Prepare* transaction are
    /// requested again (Kafka resends them after a load; partitions
    /// dedupe), and one without partitions (written by another
    /// coordinator) completes at once.
    pub fn complete_load(&mut self, now_ms: i64) -> TxnOutput<()> {
        self.pending_markers.clear();
        let prepared: Vec<TransactionMetadata> = self
            .txns
            .values()
            .filter(|md| md.state.is_prepare())
            .cloned()
            .collect();
        let mut out = TxnOutput::reply(());
        for md in prepared {
            if md.partitions.is_empty() {
                out.records
                    .extend(self.complete(&md.transactional_id, now_ms));
            } else {
                out.markers.extend(self.request_markers(&md));
            }
        }
        out
    }

    /// Leadership of the partition moved away: forget everything.
    pub fn unload(&mut self) {
        self.txns.clear();
        self.pending_markers.clear();
    }
}

impl<T> TxnOutput<T> {
    fn map_reply<U>(self, f: impl FnOnce(T) -> U) -> TxnOutput<U> {
        TxnOutput {
            reply: f(self.reply),
            records: self.records,
            markers: self.markers,
        }
    }
}

impl<T, E> TxnOutput<Result<T, E>> {
    fn map_ok<U>(self, f: impl FnOnce(T) -> U) -> TxnOutput<Result<U, E>> {
        self.map_reply(|r| r.map(f))
    }
}
