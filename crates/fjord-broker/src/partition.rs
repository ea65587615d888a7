//! One partition replica hosted by this broker: its log, its role (leader or
//! follower) and the high watermark that produce and fetch wait on.
//!
//! As leader it appends producers' batches, serves consumers below the high
//! watermark and followers up to its log end, and tracks the ISR
//! ([`LeaderState`]). As follower it appends what its fetcher brings from the
//! leader, offsets and epochs as the leader wrote them, and truncates where
//! its log diverged ([`crate::truncation`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use fjord_log::control::{EndTxnMarker, TxnResult, end_txn_marker_batch};
use fjord_log::{
    AppendInfo, BatchHeader, CleanableRange, CleanedLog, CleaningPlan, CompressionType,
    IsolationLevel, Log, LogConfig, ReadPlan, SwapOutcome,
};
use fjord_types::{BrokerId, LeaderEpoch, Offset, TopicId, TopicPartition};
use tokio::sync::watch;

use crate::error::PartitionError;
use crate::leader_state::{Committed, IsrProposal, LeaderState};
use crate::log_dir_failure::{LogDirFailure, LogOperation};
use crate::produce_validation::{RecordChecks, validate_client_batches, validate_records};
use crate::truncation::{self, EpochEndOffset};
use fjord_log::VerificationGuard;

mod delete_records;
mod flush;
pub use delete_records::RecordsDeleted;
pub use flush::{FlushOutcome, FlushQueue, FlushWait, Flushed};

use crate::types::{
    AbortedTransaction, Acks, AppendOrigin, FetchPartitionData, ListedOffset, OffsetSpec,
    ProduceInfo, TxnVerification,
};

/// Leadership as the committed metadata assigns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// Bumped by the controller on every change of this partition's state
    /// (AlterPartition compares it).
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

impl Assignment {
    fn committed(&self) -> Committed<'_> {
        Committed {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            replicas: &self.replicas,
            isr: &self.isr,
        }
    }
}

/// Mutable state under one per-partition lock: there is no lock shared
/// between partitions on the produce or fetch path.
struct Inner {
    /// `None` once the partition was deleted; an `Arc<Partition>` held by an
    /// in-flight request then answers UNKNOWN_TOPIC_OR_PARTITION.
    log: Option<Log>,
    assignment: Assignment,
    /// Present while this broker leads the partition.
    leader: Option<LeaderState>,
    /// Counts the times this broker became leader (see [`Partition::subscribe_leading`]).
    terms: u64,
    min_insync_replicas: usize,
    /// The high watermark last written to the checkpoint file.
    checkpointed_hw: Offset,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    node_id: BrokerId,
    inner: Mutex<Inner>,
    /// The high watermark, published so that fetch long-polls and acks=all
    /// producers wake when it moves.
    hw: watch::Sender<Offset>,
    /// The log end offset, published so that follower fetches long-poll on it.
    leo: watch::Sender<Offset>,
    /// `Some(term)` while this broker leads; `term` grows each time it
    /// becomes leader, so an acks=all wait can tell that leadership was lost
    /// (even if regained since) and fail instead of waiting for a high
    /// watermark over a log that may have been truncated.
    leading: watch::Sender<Option<u64>>,
    /// DeleteRecords' low watermark while leading (see
    /// [`LeaderState::low_watermark`]), published so that a DeleteRecords
    /// request waiting for the followers wakes when they report.
    low_watermark: watch::Sender<Offset>,
    /// The log directory's fault handler: once it failed, every operation
    /// answers KAFKA_STORAGE_ERROR without touching the log, and every
    /// storage error here is reported to it.
    failure: LogDirFailure,
    /// The broker's flusher ([`crate::replica_manager::ReplicaManager::insert`]
    /// sets it): an append that makes `flush.messages` / `flush.ms` due
    /// queues the partition there instead of fsyncing on the request path
    /// (see [`flush`]). Unset (a partition outside a replica manager, in
    /// tests) the append flushes inline.
    flusher: OnceLock<Arc<FlushQueue>>,
    /// Queued on the flusher and not yet being flushed.
    flush_queued: AtomicBool,
    /// Held by a flush from plan to completion: one at a time.
    flush_serial: Mutex<()>,
    /// What flushes made durable, for produces waiting on a [`FlushWait`].
    flushed: watch::Sender<Flushed>,
}

/// Where an append landed, before any wait for replication.
pub struct Appended {
    pub info: ProduceInfo,
    pub last_offset: Offset,
    /// The leadership term the append happened in.
    pub term: u64,
    /// The append made a flush due: its answer waits for the flusher's
    /// fsync (`flush.messages=1` acks mean fsynced, as in Kafka).
    pub flush: Option<FlushWait>,
}

/// What a follower's fetcher sends for this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerPosition {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub fetch_offset: Offset,
    /// Epoch of the last batch in the log (-1 for none).
    pub last_fetched_epoch: LeaderEpoch,
    pub log_start_offset: Offset,
}

/// A follower's fetch of this partition, as the leader receives it.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaFetch {
    pub replica: BrokerId,
    pub current_leader_epoch: LeaderEpoch,
    pub fetch_offset: Offset,
    pub last_fetched_epoch: LeaderEpoch,
    pub max_bytes: usize,
    pub min_one_batch: bool,
    /// The follower's log start offset (DeleteRecords' low watermark).
    pub log_start_offset: Offset,
}

/// The leader's answer to a follower's fetch.
#[derive(Clone, Debug)]
pub struct ReplicaFetched {
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    /// Set instead of records when the follower's log diverges.
    pub diverging: Option<EpochEndOffset>,
    pub records: Bytes,
    /// An ISR expansion this fetch made due, for the caller to propose.
    pub isr_change: Option<IsrProposal>,
}

/// Fencing by the leader epoch a client or follower believes current (-1: unchecked).
fn check_epoch(current: LeaderEpoch, ours: LeaderEpoch) -> Result<(), PartitionError> {
    if current < 0 || current == ours {
        Ok(())
    } else if current < ours {
        Err(PartitionError::FencedLeaderEpoch {
            given: current,
            current: ours,
        })
    } else {
        Err(PartitionError::UnknownLeaderEpoch {
            given: current,
            current: ours,
        })
    }
}

impl Partition {
    /// A partition whose log was just opened, with a fault handler of its
    /// own (tests); a broker's partitions share the broker's
    /// ([`Partition::open`]).
    pub fn new(
        tp: TopicPartition,
        topic_id: TopicId,
        node_id: BrokerId,
        log: Log,
        assignment: Assignment,
        min_insync_replicas: usize,
        hw_checkpoint: Option<Offset>,
    ) -> Self {
        let failure = LogDirFailure::new(log.dir());
        Self::open(
            tp,
            topic_id,
            node_id,
            log,
            assignment,
            min_insync_replicas,
            hw_checkpoint,
            failure,
        )
    }

    /// A partition whose log was just opened. `hw_checkpoint` is the high
    /// watermark persisted before a restart; `failure` is the log
    /// directory's fault handler.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        tp: TopicPartition,
        topic_id: TopicId,
        node_id: BrokerId,
        log: Log,
        assignment: Assignment,
        min_insync_replicas: usize,
        hw_checkpoint: Option<Offset>,
        failure: LogDirFailure,
    ) -> Self {
        let leo = log.log_end_offset();
        let flushed = Flushed {
            truncations: log.truncations(),
            durable: log.recovery_point(),
            failed_below: -1,
        };
        // A sole replica's log end is committed by definition. With other
        // replicas, the tail past the checkpointed high watermark may never
        // have reached the ISR: it stays invisible until replication says so.
        let hw = if assignment.replicas.len() > 1 {
            hw_checkpoint
                .unwrap_or(0)
                .min(leo)
                .max(log.log_start_offset())
        } else {
            leo
        };
        // The log loaded its producer state on open (snapshot plus tail) and
        // keeps it with every append, as leader or follower: nothing to
        // rebuild here or on becoming leader.
        let inner = Inner {
            log: Some(log),
            assignment,
            leader: None,
            terms: 0,
            min_insync_replicas,
            checkpointed_hw: hw_checkpoint.unwrap_or(-1),
        };
        let partition = Partition {
            tp,
            topic_id,
            node_id,
            inner: Mutex::new(inner),
            hw: watch::channel(hw).0,
            leo: watch::channel(leo).0,
            leading: watch::channel(None).0,
            low_watermark: watch::channel(-1).0,
            failure,
            flusher: OnceLock::new(),
            flush_queued: AtomicBool::new(false),
            flush_serial: Mutex::new(()),
            flushed: watch::channel(flushed).0,
        };
        {
            let mut inner = partition.lock();
            if inner.assignment.leader == node_id {
                partition.become_leader(&mut inner, crate::replica_manager::now_ms());
            }
            partition.advance_hw(&mut inner);
        }
        partition
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock poisons it; the state is still
        // consistent (every mutation is a single assignment), so carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Take over as leader: record the new epoch at the log end (so
    /// followers find where they diverge), track followers afresh (their log
    /// ends are unknown until they fetch) and keep the high watermark where
    /// it is; it rises as followers report.
    fn become_leader(&self, inner: &mut Inner, now_ms: i64) {
        if self.failure.is_offline() {
            return;
        }
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        if let Err(err) = log.assign_leader_epoch(inner.assignment.leader_epoch) {
            // Without the epoch in its cache, followers could not find where
            // they diverge: never lead on it. A full disk is retried (see
            // `update`); any other failure takes the log dir offline.
            self.failure
                .report(LogOperation::AssignLeaderEpoch, Some(&self.tp), &err);
            return;
        }
        self.failure.on_write_succeeded();
        log.on_high_watermark_updated(*self.hw.borrow());
        let leo = log.log_end_offset();
        inner.leader = Some(LeaderState::new(
            self.node_id,
            inner.assignment.committed(),
            *self.hw.borrow(),
            leo,
            now_ms,
        ));
        inner.terms += 1;
        self.leading.send_replace(Some(inner.terms));
        tracing::info!(tp = %self.tp, epoch = inner.assignment.leader_epoch, leo, hw = *self.hw.borrow(), "became leader");
    }

    /// Apply a newer committed assignment (leader, epochs, ISR) and log config.
    pub fn update(
        &self,
        assignment: Assignment,
        config: LogConfig,
        min_insync_replicas: usize,
        now_ms: i64,
    ) {
        let mut inner = self.lock();
        inner.min_insync_replicas = min_insync_replicas;
        if let Some(log) = inner.log.as_mut() {
            log.set_config(config);
        }
        if inner.assignment != assignment {
            let is_leader = assignment.leader == self.node_id;
            inner.assignment = assignment;
            let inner = &mut *inner;
            match (inner.leader.as_mut(), is_leader) {
                (Some(state), true) => {
                    let leo = inner.log.as_ref().map_or(0, Log::log_end_offset);
                    if state.update_committed(inner.assignment.committed(), leo, now_ms)
                        && !self.failure.is_offline()
                        && let Some(log) = inner.log.as_mut()
                        && let Err(err) = log.assign_leader_epoch(inner.assignment.leader_epoch)
                    {
                        // Not leading on an epoch missing from the cache:
                        // step down until it can be written (full disk).
                        self.failure
                            .report(LogOperation::AssignLeaderEpoch, Some(&self.tp), &err);
                        inner.leader = None;
                        self.leading.send_replace(None);
                    }
                }
                (None, true) => self.become_leader(inner, now_ms),
                (Some(_), false) => {
                    inner.leader = None;
                    self.leading.send_replace(None);
                    tracing::info!(tp = %self.tp, leader = inner.assignment.leader, epoch = inner.assignment.leader_epoch, "became follower");
                }
                (None, false) => {}
            }
        } else if inner.leader.is_none() && inner.assignment.leader == self.node_id {
            // Leading failed before: a full disk kept the epoch from being
            // written. The metadata apply task calls back while the disk is
            // full (`metadata_applier::open_pending`).
            self.become_leader(&mut inner, now_ms);
        }
        self.advance_hw(&mut inner);
        // The ISR may have lost a member that held the low watermark back.
        self.publish_low_watermark(&inner);
    }

    pub fn subscribe_hw(&self) -> watch::Receiver<Offset> {
        self.hw.subscribe()
    }

    pub fn subscribe_leo(&self) -> watch::Receiver<Offset> {
        self.leo.subscribe()
    }

    /// `Some(term)` while leading; see [`Appended::term`].
    pub fn subscribe_leading(&self) -> watch::Receiver<Option<u64>> {
        self.leading.subscribe()
    }

    pub fn high_watermark(&self) -> Offset {
        *self.hw.borrow()
    }

    pub fn log_end_offset(&self) -> Offset {
        *self.leo.borrow()
    }

    /// The last stable offset at the current high watermark (the HW while
    /// no transaction is open); `None` without a log.
    pub fn last_stable_offset(&self) -> Option<Offset> {
        let hw = *self.hw.borrow();
        self.lock()
            .log
            .as_ref()
            .map(|log| log.last_stable_offset(hw))
    }

    pub fn assignment(&self) -> Assignment {
        self.lock().assignment.clone()
    }

    pub fn is_leader(&self) -> bool {
        self.lock().leader.is_some()
    }

    fn check_leader(&self, inner: &Inner) -> Result<(), PartitionError> {
        self.failure.check()?;
        if inner.log.is_none() {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        if inner.leader.is_none() {
            let leader = inner.assignment.leader;
            return Err(PartitionError::NotLeaderOrFollower {
                leader: (leader >= 0).then_some(leader),
            });
        }
        Ok(())
    }

    /// Leader and, if the caller names one, at the caller's leader epoch.
    /// The log, if this broker leads at `current_epoch` (-1: any epoch).
    fn leader_log_at<'a>(
        &self,
        inner: &'a Inner,
        current_epoch: LeaderEpoch,
    ) -> Result<&'a Log, PartitionError> {
        self.check_leader(inner)?;
        check_epoch(current_epoch, inner.assignment.leader_epoch)?;
        inner
            .log
            .as_ref()
            .ok_or(PartitionError::UnknownTopicOrPartition)
    }

    /// Raise the leader's high watermark if the ISR allows, and publish it
    /// (the log learns it too: transactions whose marker it passed stop
    /// holding the last stable offset back).
    fn advance_hw(&self, inner: &mut Inner) {
        let min_isr = inner.min_insync_replicas;
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        let leo = log.log_end_offset();
        if let Some(state) = inner.leader.as_mut()
            && let Some(hw) = state.maybe_advance_hw(leo, min_isr)
        {
            log.on_high_watermark_updated(hw);
            self.hw.send_replace(hw);
        }
    }

    fn publish_leo(&self, leo: Offset) {
        self.leo.send_if_modified(|current| {
            let changed = *current != leo;
            *current = leo;
            changed
        });
    }

    /// Append a produce request's batches as leader. Waiting for acks=all is the caller's.
    pub fn append(
        &self,
        records: &Bytes,
        acks: Acks,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        self.append_from(AppendOrigin::Client, records, None, acks, now_ms)
    }

    /// Before a client's transactional batches are appended: the producer
    /// and guard to verify with the transaction coordinator when they
    /// would open the producer's transaction here, `None` when nothing is
    /// to verify (no transactional batch, or a transaction already open).
    pub fn start_txn_verification(
        &self,
        records: &Bytes,
    ) -> Result<Option<TxnVerification>, PartitionError> {
        // The first batch's header alone, without the lock for anything
        // else: a producer's batches of one request are all transactional
        // or none (a mix is refused at the append, which checks them all).
        let Some(first) = BatchHeader::parse(records).filter(|h| h.is_transactional()) else {
            return Ok(None);
        };
        let mut inner = self.lock();
        self.check_leader(&inner)?;
        let Some(log) = inner.log.as_mut() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        Ok(log
            .start_txn_verification(&first)
            .map(|(producer_id, producer_epoch, guard)| TxnVerification {
                producer_id,
                producer_epoch,
                guard,
            }))
    }

    /// Append batches as leader for `origin`: a client's are checked as
    /// Kafka checks `AppendOrigin.CLIENT` (no control batch, keys on
    /// compacted topics, sequences and retries); a coordinator's only for
    /// producer epochs and open transactions.
    /// `verification`: the guard of the coordinator's answer, when the
    /// batches open the producer's transaction here (a client's
    /// transactional batches are refused without one: KIP-890 part 1).
    pub fn append_from(
        &self,
        origin: AppendOrigin,
        records: &Bytes,
        verification: Option<VerificationGuard>,
        acks: Acks,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        // The request's own checks read only its bytes (and, for the record
        // checks, decode and maybe decompress its records), as does
        // `compression.type`'s recompression: done before the partition lock,
        // so they never hold up other appends and reads of the partition.
        // Their error is answered after the leadership checks, as before.
        let headers = batch_headers(records);
        let (checks, recompression) = match self.lock().log.as_ref() {
            Some(log) => {
                let config = log.config();
                let recompression = (origin == AppendOrigin::Client
                    && config.compression_type != CompressionType::Producer)
                    .then(|| config.clone());
                (
                    Some(RecordChecks::for_config(config, now_ms)),
                    recompression,
                )
            }
            None => (None, None),
        };
        let validated = match origin {
            AppendOrigin::Client => validate_client_batches(&headers),
            AppendOrigin::Coordinator => Ok(()),
        }
        .and_then(|()| match checks {
            Some(checks) => validate_records(&self.tp, records, &headers, checks),
            None => Ok(()),
        })
        .and_then(|()| match &recompression {
            Some(config) => {
                fjord_log::recompress(records, config).map_err(PartitionError::CorruptMessage)
            }
            None => Ok(None),
        });
        let mut inner = self.lock();
        self.check_leader(&inner)?;
        let min_isr = inner.min_insync_replicas;
        if acks == Acks::All {
            let isr = inner.assignment.isr.len();
            if isr < min_isr {
                return Err(PartitionError::NotEnoughReplicas { isr, min_isr });
            }
        }
        let term = inner.terms;
        // Before the duplicate check: a forged batch is never answered as a retry.
        let recompressed = validated?;
        let (records, headers) = match &recompressed {
            // Same producer fields and offsets; sizes and CRCs are new.
            Some(recompressed) => (recompressed, batch_headers(recompressed)),
            None => (records, headers),
        };
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        if origin == AppendOrigin::Coordinator {
            log.check_coordinator_batches(&headers)
                .map_err(PartitionError::from_sequence)?;
            return self.append_to_leader_log(&mut inner, records, now_ms);
        }
        let duplicate = log
            .check_producer_batches(&headers)
            .map_err(PartitionError::from_sequence)?;
        if duplicate.is_none() {
            log.check_txn_verified(&headers, verification)
                .map_err(PartitionError::from_sequence)?;
        }
        if let Some(duplicate) = duplicate {
            // A retry of a batch already written: answer with where it landed.
            return Ok(Appended {
                info: ProduceInfo {
                    base_offset: duplicate.first_offset,
                    log_append_time_ms: -1,
                    log_start_offset: log.log_start_offset(),
                },
                last_offset: duplicate.last_offset,
                term,
                flush: None,
            });
        }
        self.append_to_leader_log(&mut inner, records, now_ms)
    }

    /// Write a transaction marker for `producer_id` as leader (Kafka's
    /// `appendRecordsToLeader` with origin Coordinator): the WriteTxnMarkers
    /// path. Refused, as in Kafka, from an older producer epoch
    /// (INVALID_PRODUCER_EPOCH) or an older coordinator epoch than the last
    /// marker's (TRANSACTION_COORDINATOR_FENCED), and below
    /// `min.insync.replicas` (markers are written with acks=all). The marker
    /// replicates like any batch; waiting for the high watermark to pass
    /// `last_offset` is the caller's.
    pub fn append_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        result: TxnResult,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let marker = EndTxnMarker {
            result,
            coordinator_epoch,
        };
        let records = end_txn_marker_batch(producer_id, producer_epoch, marker, now_ms);
        let mut inner = self.lock();
        self.check_leader(&inner)?;
        let (isr, min_isr) = (inner.assignment.isr.len(), inner.min_insync_replicas);
        if isr < min_isr {
            return Err(PartitionError::NotEnoughReplicas { isr, min_isr });
        }
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        log.check_txn_marker(producer_id, producer_epoch, &marker)
            .map_err(PartitionError::from_sequence)?;
        self.append_to_leader_log(&mut inner, &records, now_ms)
    }

    /// The checked batches of `records` go into the log at the leader's
    /// epoch; then flush if due and publish the new log end and HW.
    fn append_to_leader_log(
        &self,
        inner: &mut Inner,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let (epoch, term) = (inner.assignment.leader_epoch, inner.terms);
        let Some(log) = inner.log.as_mut() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let appended: AppendInfo = self.failure.on_storage_error(
            LogOperation::Append,
            &self.tp,
            log.append_as_leader(records, epoch, now_ms)
                .map_err(PartitionError::from_log),
        )?;
        self.failure.on_write_succeeded();
        let flush = match log.flush_due(now_ms) {
            true => self.flush_due(log)?,
            false => None,
        };
        let leo = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        self.publish_leo(leo);
        self.advance_hw(inner);
        Ok(Appended {
            info: ProduceInfo {
                base_offset: appended.first_offset,
                log_append_time_ms: appended.log_append_time,
                log_start_offset,
            },
            last_offset: appended.last_offset,
            term,
            flush,
        })
    }

    /// Read stored batches for a consumer, never past the high watermark,
    /// and with READ_COMMITTED never past the last stable offset, with the
    /// aborted transactions of what was read. `current_leader_epoch` (-1:
    /// unchecked) fences clients with stale or too new metadata.
    ///
    /// The partition lock is held only to check leadership and plan the read
    /// ([`fjord_log::Log::plan_read`]: index lookup, a short header walk,
    /// the segment's file handle); the `read_at` of the batches runs after it
    /// is released, so a fetch does not hold up appends and never waits for
    /// the whole of one. A read the plan finds truncated under it (a leader
    /// that became follower and cut its log) is done again under the lock.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
        current_leader_epoch: LeaderEpoch,
        isolation: IsolationLevel,
    ) -> Result<FetchPartitionData, PartitionError> {
        let (plan, hw, last_stable_offset) = {
            let inner = self.lock();
            let log = self.leader_log_at(&inner, current_leader_epoch)?;
            let hw = *self.hw.borrow();
            let lso = log.last_stable_offset(hw);
            let max_offset = match isolation {
                IsolationLevel::ReadUncommitted => hw,
                IsolationLevel::ReadCommitted => lso,
            };
            let plan = self.failure.on_storage_error(
                LogOperation::Read,
                &self.tp,
                log.plan_read(fetch_offset, max_bytes, max_offset, min_one_batch)
                    .map_err(PartitionError::from_log),
            )?;
            (plan, hw, lso)
        };
        let read = self.failure.on_storage_error(
            LogOperation::Read,
            &self.tp,
            plan.execute().map_err(PartitionError::from_log),
        )?;
        let Some(read) = read else {
            return self.read_locked(
                fetch_offset,
                max_bytes,
                min_one_batch,
                current_leader_epoch,
                isolation,
            );
        };
        let aborted = match isolation {
            IsolationLevel::ReadUncommitted => None,
            IsolationLevel::ReadCommitted if read.records.is_empty() => Some(Vec::new()),
            // The transaction index is in memory: a short second lock.
            IsolationLevel::ReadCommitted => Some(
                self.lock()
                    .log
                    .as_ref()
                    .ok_or(PartitionError::UnknownTopicOrPartition)?
                    .collect_aborted_transactions(fetch_offset, read.next_offset),
            ),
        };
        Ok(fetch_partition_data(hw, last_stable_offset, read, aborted))
    }

    /// [`Self::read`] wholly under the partition lock.
    fn read_locked(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
        current_leader_epoch: LeaderEpoch,
        isolation: IsolationLevel,
    ) -> Result<FetchPartitionData, PartitionError> {
        let inner = self.lock();
        let log = self.leader_log_at(&inner, current_leader_epoch)?;
        let hw = *self.hw.borrow();
        let (read, aborted) = self.failure.on_storage_error(
            LogOperation::Read,
            &self.tp,
            log.read_isolated(fetch_offset, max_bytes, hw, min_one_batch, isolation)
                .map_err(PartitionError::from_log),
        )?;
        Ok(fetch_partition_data(
            hw,
            log.last_stable_offset(hw),
            read,
            aborted,
        ))
    }

    /// Read as leader up to the log end, not just the high watermark: the
    /// group coordinator replays its partitions this way when it takes over
    /// (as Kafka's does), so records the previous leader committed are not
    /// missed while followers have yet to report to this one.
    pub fn read_to_log_end(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
    ) -> Result<FetchPartitionData, PartitionError> {
        let inner = self.lock();
        self.check_leader(&inner)?;
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let hw = *self.hw.borrow();
        let read = self.failure.on_storage_error(
            LogOperation::Read,
            &self.tp,
            log.read(fetch_offset, max_bytes, log.log_end_offset(), true)
                .map_err(PartitionError::from_log),
        )?;
        Ok(FetchPartitionData {
            high_watermark: hw,
            last_stable_offset: log.last_stable_offset(hw),
            log_start_offset: read.log_start_offset,
            records: read.records,
            aborted_transactions: None,
        })
    }

    /// Serve a follower's fetch (KIP-320): fence by epoch, check for a
    /// diverging log, record the follower's position (which may raise the
    /// high watermark or make it due to join the ISR), and return batches up
    /// to the log end (not just the high watermark: followers must have
    /// records before they count as committed).
    pub fn read_for_follower(
        &self,
        fetch: ReplicaFetch,
        now_ms: i64,
    ) -> Result<ReplicaFetched, PartitionError> {
        // As for a consumer's read: the batches are read after the lock is
        // released (see `Self::read`).
        let (plan, fetched) = self.follower_fetch_locked(fetch, now_ms)?;
        let Some(plan) = plan else {
            return Ok(fetched);
        };
        let read = self.failure.on_storage_error(
            LogOperation::Read,
            &self.tp,
            plan.execute().map_err(PartitionError::from_log),
        )?;
        match read {
            Some(read) => Ok(ReplicaFetched {
                records: read.records,
                ..fetched
            }),
            // Cut under the read: this broker no longer leads at that epoch.
            None => Err(PartitionError::NotLeaderOrFollower { leader: None }),
        }
    }

    /// The locked part of [`Self::read_for_follower`]: the answer without
    /// its records, and the plan of the read that brings them.
    fn follower_fetch_locked(
        &self,
        fetch: ReplicaFetch,
        now_ms: i64,
    ) -> Result<(Option<ReadPlan>, ReplicaFetched), PartitionError> {
        let mut inner = self.lock();
        self.leader_log_at(&inner, fetch.current_leader_epoch)?;
        let inner = &mut *inner;
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let (log_start, leo) = (log.log_start_offset(), log.log_end_offset());
        let diverging = truncation::diverging_epoch(
            log.end_offset_for_epoch(fetch.last_fetched_epoch),
            fetch.last_fetched_epoch,
            fetch.fetch_offset,
        );
        if let Some(diverging) = diverging {
            return Ok((
                None,
                ReplicaFetched {
                    high_watermark: *self.hw.borrow(),
                    log_start_offset: log_start,
                    log_end_offset: leo,
                    diverging: Some(diverging),
                    records: Bytes::new(),
                    isr_change: None,
                },
            ));
        }
        if fetch.fetch_offset < log_start || fetch.fetch_offset > leo {
            return Err(PartitionError::OffsetOutOfRange {
                requested: fetch.fetch_offset,
                log_start,
                log_end: leo,
            });
        }
        let plan = self.failure.on_storage_error(
            LogOperation::Read,
            &self.tp,
            log.plan_read(
                fetch.fetch_offset,
                fetch.max_bytes,
                leo,
                fetch.min_one_batch,
            )
            .map_err(PartitionError::from_log),
        )?;
        let Some(state) = inner.leader.as_mut() else {
            return Err(PartitionError::NotLeaderOrFollower { leader: None });
        };
        if !state.on_follower_fetch(fetch.replica, fetch.fetch_offset, now_ms, leo) {
            return Err(PartitionError::NotLeaderOrFollower {
                leader: Some(self.node_id),
            });
        }
        state.on_follower_log_start(fetch.replica, fetch.log_start_offset);
        let isr_change = state.expansion(fetch.replica);
        if let Some(proposal) = &isr_change {
            state.pending = Some(proposal.clone());
        }
        self.advance_hw(inner);
        self.publish_low_watermark(inner);
        Ok((
            Some(plan),
            ReplicaFetched {
                high_watermark: *self.hw.borrow(),
                log_start_offset: log_start,
                log_end_offset: leo,
                diverging: None,
                records: Bytes::new(),
                isr_change,
            },
        ))
    }

    /// The ISR shrink due now (followers not caught up within `lag_max_ms`),
    /// marked pending; the caller proposes it to the controller.
    pub fn maybe_shrink_isr(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        let mut inner = self.lock();
        let leo = inner.log.as_ref()?.log_end_offset();
        let state = inner.leader.as_mut()?;
        let proposal = state.shrink(leo, now_ms, lag_max_ms)?;
        state.pending = Some(proposal.clone());
        Some(proposal)
    }

    /// Leader side: ISR followers that have not fetched for `silent_ms`.
    pub fn silent_isr_followers(&self, now_ms: i64, silent_ms: i64) -> Vec<BrokerId> {
        self.lock()
            .leader
            .as_ref()
            .map(|state| state.silent_isr_followers(now_ms, silent_ms))
            .unwrap_or_default()
    }

    /// A proposal was rejected or failed: allow the next one. Only the
    /// proposal based on `partition_epoch` is cleared (a newer one stays).
    pub fn clear_pending_isr(&self, proposal: &IsrProposal) {
        let mut inner = self.lock();
        if let Some(state) = inner.leader.as_mut()
            && state.pending.as_ref() == Some(proposal)
        {
            state.pending = None;
        }
    }

    /// Follower side: where to fetch from next, if this broker follows a
    /// live leader for this partition.
    pub fn follower_position(&self) -> Option<FollowerPosition> {
        if self.failure.is_offline() {
            return None;
        }
        let inner = self.lock();
        let log = inner.log.as_ref()?;
        let a = &inner.assignment;
        if inner.leader.is_some() || a.leader < 0 || a.leader == self.node_id {
            return None;
        }
        Some(FollowerPosition {
            leader: a.leader,
            leader_epoch: a.leader_epoch,
            fetch_offset: log.log_end_offset(),
            last_fetched_epoch: log.latest_epoch().unwrap_or(truncation::UNDEFINED_EPOCH),
            log_start_offset: log.log_start_offset(),
        })
    }

    /// Lock the log for a follower update fetched under `leader_epoch`;
    /// `None` when the partition moved on (new epoch, leader here, deleted):
    /// the fetched data must then be dropped.
    fn follower_log<'a>(
        &self,
        inner: &'a mut Inner,
        leader_epoch: LeaderEpoch,
    ) -> Option<&'a mut Log> {
        if self.failure.is_offline()
            || inner.leader.is_some()
            || inner.assignment.leader_epoch != leader_epoch
        {
            return None;
        }
        inner.log.as_mut()
    }

    /// Follower side: append batches fetched from the leader at
    /// `leader_epoch`, then take the leader's high watermark (bounded by
    /// what this log has) and its log start offset (DeleteRecords or
    /// retention moved it; Kafka's follower does the same with every fetch
    /// response), never past the new high watermark. Returns whether
    /// anything was applied.
    pub fn append_from_leader(
        &self,
        leader_epoch: LeaderEpoch,
        records: &Bytes,
        leader_hw: Offset,
        leader_log_start: Offset,
        now_ms: i64,
    ) -> Result<bool, PartitionError> {
        let mut inner = self.lock();
        let Some(log) = self.follower_log(&mut inner, leader_epoch) else {
            return Ok(false);
        };
        if !records.is_empty() {
            self.failure.on_storage_error(
                LogOperation::Append,
                &self.tp,
                log.append_as_follower(records)
                    .map_err(PartitionError::from_log),
            )?;
            self.failure.on_write_succeeded();
            // A follower does not wait for its flush (nothing is answered).
            if log.flush_due(now_ms) {
                self.flush_due(log)?;
            }
        }
        let leo = log.log_end_offset();
        self.publish_leo(leo);
        let hw = leader_hw.min(leo);
        log.on_high_watermark_updated(hw);
        self.hw.send_if_modified(|current| {
            let changed = *current != hw;
            *current = hw;
            changed
        });
        let log_start = leader_log_start.min(hw);
        if log_start > log.log_start_offset() {
            self.failure.on_storage_error(
                LogOperation::AdvanceLogStart,
                &self.tp,
                log.advance_log_start_offset(log_start)
                    .map_err(PartitionError::from_log),
            )?;
            tracing::debug!(tp = %self.tp, log_start, "follower adopted the leader's log start offset");
        }
        Ok(true)
    }

    /// Follower side: the leader said this log diverges; truncate to where
    /// the two provably agree (see [`truncation::truncation_offset`]).
    /// Returns the new log end, or `None` if the partition moved on.
    pub fn truncate_diverging(
        &self,
        leader_epoch: LeaderEpoch,
        diverging: EpochEndOffset,
    ) -> Result<Option<Offset>, PartitionError> {
        let hw = *self.hw.borrow();
        let mut inner = self.lock();
        let Some(log) = self.follower_log(&mut inner, leader_epoch) else {
            return Ok(None);
        };
        let leo = log.log_end_offset();
        let to = truncation::truncation_offset(
            diverging,
            |epoch| log.end_offset_for_epoch(epoch),
            leo,
            hw,
        );
        self.truncate_follower(log, to)?;
        Ok(Some(log.log_end_offset()))
    }

    /// Follower side: the fetch offset is outside the leader's log. Below
    /// its start (retention ran there): restart empty at the leader's log
    /// start. Past its end: cut to it.
    pub fn reset_out_of_range(
        &self,
        leader_epoch: LeaderEpoch,
        leader_log_start: Offset,
        leader_log_end: Offset,
    ) -> Result<bool, PartitionError> {
        let mut inner = self.lock();
        let Some(log) = self.follower_log(&mut inner, leader_epoch) else {
            return Ok(false);
        };
        let leo = log.log_end_offset();
        if leo < leader_log_start {
            self.failure.on_storage_error(
                LogOperation::Truncate,
                &self.tp,
                log.truncate_fully_and_start_at(leader_log_start)
                    .map_err(PartitionError::KafkaStorage),
            )?;
            tracing::info!(tp = %self.tp, leader_log_start, "follower log restarted at the leader's log start");
        } else if leo > leader_log_end && leader_log_end >= 0 {
            self.truncate_follower(log, leader_log_end)?;
        } else {
            return Ok(false);
        }
        let leo = log.log_end_offset();
        self.publish_leo(leo);
        self.hw.send_if_modified(|hw| {
            let changed = *hw > leo || *hw < log.log_start_offset();
            *hw = (*hw).min(leo).max(log.log_start_offset());
            changed
        });
        Ok(true)
    }

    fn truncate_follower(&self, log: &mut Log, to: Offset) -> Result<(), PartitionError> {
        let before = log.log_end_offset();
        if to >= before {
            return Ok(());
        }
        self.failure.on_storage_error(
            LogOperation::Truncate,
            &self.tp,
            log.truncate_to(to).map_err(PartitionError::KafkaStorage),
        )?;
        let leo = log.log_end_offset();
        tracing::info!(tp = %self.tp, from = before, to = leo, "follower truncated its diverging log");
        self.publish_leo(leo);
        // A follower's high watermark is only a copy of the leader's, bounded
        // by its own log: it follows the log down.
        self.hw.send_if_modified(|hw| {
            let changed = *hw > leo;
            *hw = (*hw).min(leo);
            changed
        });
        Ok(())
    }

    /// The high watermark to checkpoint, if it changed since the last one,
    /// with the partition directory.
    pub fn hw_checkpoint_due(&self) -> Option<(PathBuf, Offset)> {
        if self.failure.is_offline() {
            return None;
        }
        let inner = self.lock();
        let dir = inner.log.as_ref()?.dir().to_path_buf();
        let hw = *self.hw.borrow();
        (hw != inner.checkpointed_hw).then_some((dir, hw))
    }

    pub fn hw_checkpointed(&self, hw: Offset) {
        self.lock().checkpointed_hw = hw;
    }

    /// OffsetForLeaderEpoch: where `epoch` ends in this leader's log (the
    /// log end for the latest epoch); `None` for an unknown epoch (Kafka's
    /// UNDEFINED answer).
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    ) -> Result<Option<(LeaderEpoch, Offset)>, PartitionError> {
        let inner = self.lock();
        let log = self.leader_log_at(&inner, current_leader_epoch)?;
        Ok(log.end_offset_for_epoch(epoch))
    }

    /// ListOffsets: offsets a consumer at `isolation` can fetch, i.e. below
    /// the high watermark, or below the last stable offset with
    /// READ_COMMITTED (Kafka's `lastFetchableOffset`); LATEST is that bound.
    pub fn list_offset(
        &self,
        spec: OffsetSpec,
        current_leader_epoch: LeaderEpoch,
        isolation: IsolationLevel,
    ) -> Result<ListedOffset, PartitionError> {
        let inner = self.lock();
        let log = self.leader_log_at(&inner, current_leader_epoch)?;
        let leader_epoch = inner.assignment.leader_epoch;
        let fetchable = match isolation {
            IsolationLevel::ReadUncommitted => *self.hw.borrow(),
            IsolationLevel::ReadCommitted => log.last_stable_offset(*self.hw.borrow()),
        };
        let found = |offset, timestamp| ListedOffset {
            offset,
            timestamp,
            leader_epoch,
        };
        let not_found = ListedOffset {
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        };
        Ok(match spec {
            OffsetSpec::Earliest => found(log.log_start_offset(), -1),
            OffsetSpec::Latest => found(fetchable, -1),
            OffsetSpec::MaxTimestamp => match log.max_timestamp() {
                Some((timestamp, offset)) if offset < fetchable => found(offset, timestamp),
                _ => not_found,
            },
            OffsetSpec::Timestamp(ts) => match self.failure.on_storage_error(
                LogOperation::Read,
                &self.tp,
                log.offset_for_timestamp(ts)
                    .map_err(PartitionError::from_log),
            )? {
                Some((offset, timestamp)) if offset < fetchable => found(offset, timestamp),
                _ => not_found,
            },
        })
    }

    /// Delete segments past retention; returns how many. A failure goes
    /// to the log directory's fault handler.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        if self.failure.is_offline() {
            return 0;
        }
        let mut inner = self.lock();
        // Never past the high watermark (Kafka's rule): the log start offset
        // must not pass what consumers may read.
        let hw = *self.hw.borrow();
        match inner
            .log
            .as_mut()
            .map(|log| log.apply_retention(now_ms, hw))
        {
            Some(Ok(deleted)) => deleted,
            Some(Err(err)) => {
                self.failure
                    .report(LogOperation::Retention, Some(&self.tp), &err);
                0
            }
            None => 0,
        }
    }

    /// Log cleaner, under the lock: the cleanable range of this replica's
    /// log (leader or follower: every replica cleans its own copy) up to its
    /// last stable offset, and whether a pass is due; `None` unless the log
    /// is compacted and online.
    pub fn cleanable_range(&self, now_ms: i64) -> Option<(CleanableRange, bool)> {
        if self.failure.is_offline() {
            return None;
        }
        let hw = *self.hw.borrow();
        let inner = self.lock();
        let log = inner.log.as_ref()?;
        if !log.config().cleanup_policy.compacts() {
            return None;
        }
        match log.cleanable_range(log.last_stable_offset(hw), now_ms) {
            Ok(range) => Some((range, range.is_due(log.config()))),
            Err(err) => {
                self.failure.fail(LogOperation::Clean, Some(&self.tp), &err);
                None
            }
        }
    }

    /// Log cleaner step 1, under the lock: a plan when a pass is due (see
    /// [`Log::plan_cleaning`]). The pass itself runs without the lock.
    pub fn plan_cleaning(&self, now_ms: i64) -> Option<CleaningPlan> {
        if self.failure.is_offline() {
            return None;
        }
        let hw = *self.hw.borrow();
        let inner = self.lock();
        let log = inner.log.as_ref()?;
        match log.plan_cleaning(log.last_stable_offset(hw), now_ms) {
            Ok(plan) => plan,
            Err(err) => {
                self.failure.fail(LogOperation::Clean, Some(&self.tp), &err);
                None
            }
        }
    }

    /// Log cleaner step 3, under the lock: swap a pass's segments in (or
    /// discard them if the log changed meanwhile, or is gone). A failure
    /// goes to the log directory's fault handler (a half-done swap is
    /// completed by the next open).
    pub fn swap_cleaned(&self, cleaned: CleanedLog) -> Option<SwapOutcome> {
        if self.failure.is_offline() {
            cleaned.discard();
            return None;
        }
        let mut inner = self.lock();
        let Some(log) = inner.log.as_mut() else {
            cleaned.discard();
            return Some(SwapOutcome::Discarded);
        };
        match log.swap_cleaned(cleaned) {
            Ok(outcome) => Some(outcome),
            Err(err) => {
                self.failure.fail(LogOperation::Clean, Some(&self.tp), &err);
                None
            }
        }
    }

    /// Forget idempotent producers idle for `producer.id.expiration.ms`
    /// (memory only: no I/O); returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        if self.failure.is_offline() {
            return 0;
        }
        let mut inner = self.lock();
        inner
            .log
            .as_mut()
            .map_or(0, |log| log.remove_expired_producers(now_ms))
    }

    /// The log directory's fault handler.
    pub fn log_dir_failure(&self) -> &LogDirFailure {
        &self.failure
    }

    /// Take the log out, for closing (shutdown) or deleting (topic deleted).
    /// Requests still holding this partition then see UNKNOWN_TOPIC_OR_PARTITION,
    /// and acks=all waits end.
    pub fn take_log(&self) -> Option<Log> {
        let mut inner = self.lock();
        inner.leader = None;
        self.leading.send_replace(None);
        inner.log.take()
    }

    /// DescribeProducers: the producers of this replica's log, leader or
    /// follower (Kafka's `activeProducerState`: Admin may ask a follower,
    /// to compare replicas); NOT_LEADER_OR_FOLLOWER once the log is gone.
    pub fn active_producers(&self) -> Result<Vec<fjord_log::ActiveProducer>, PartitionError> {
        self.failure.check()?;
        let inner = self.lock();
        let leader = inner.assignment.leader;
        inner
            .log
            .as_ref()
            .map(Log::active_producers)
            .ok_or(PartitionError::NotLeaderOrFollower {
                leader: (leader >= 0).then_some(leader),
            })
    }
}

/// A fetch's answer for one partition from what the log read: the planned
/// read outside the lock and the read under it (after a truncation) answer
/// alike.
fn fetch_partition_data(
    high_watermark: Offset,
    last_stable_offset: Offset,
    read: fjord_log::ReadInfo,
    aborted: Option<Vec<fjord_log::AbortedTxn>>,
) -> FetchPartitionData {
    FetchPartitionData {
        high_watermark,
        last_stable_offset,
        log_start_offset: read.log_start_offset,
        records: read.records,
        aborted_transactions: aborted.map(|txns| {
            txns.into_iter()
                .map(|t| AbortedTransaction {
                    producer_id: t.producer_id,
                    first_offset: t.first_offset,
                })
                .collect()
        }),
    }
}

/// The headers of a produce request's batches (per batch, never per record).
/// Malformed framing is left for the log's validation to report.
fn batch_headers(records: &Bytes) -> Vec<BatchHeader> {
    let mut headers = Vec::with_capacity(1);
    let mut rest: &[u8] = records;
    while let Some(header) = BatchHeader::parse(rest) {
        if header.size() > rest.len() || header.size() < fjord_log::HEADER_LEN {
            break;
        }
        headers.push(header);
        rest = &rest[header.size()..];
    }
    headers
}
