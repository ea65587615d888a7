//! The partitions this broker hosts, and the produce, fetch and offset paths
//! over them.
//!
//! The map of partitions is read-mostly: the produce and fetch paths take its
//! read lock only long enough to clone an `Arc<Partition>`; it is written
//! only when committed metadata adds or removes partitions. All I/O happens
//! under the partition's own lock.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use fjord_log::IsolationLevel;
use fjord_log::control::TxnResult;
use fjord_types::{BrokerId, LeaderEpoch, Offset, TopicPartition};
use futures::future::select_all;
use tokio::time::Instant;

use crate::error::PartitionError;
use crate::log_dir_failure::LogDirFailure;
use crate::partition::{Appended, FlushOutcome, FlushQueue, Partition, RecordsDeleted};
use crate::types::{
    Acks, AppendOrigin, FetchParams, FetchResult, ListedOffset, OffsetSpec, ProducePartition,
    ProduceResult, TxnVerification,
};
use bytes::Bytes;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct ReplicaManager {
    node_id: BrokerId,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// The log directory's fault handler, shared by every partition here.
    failure: LogDirFailure,
    /// A hosted partition's log could not be opened for lack of space: the
    /// metadata apply task retries ([`crate::metadata_applier::open_pending`]).
    opens_pending: std::sync::atomic::AtomicBool,
    /// Partitions an append made a flush due on; the broker's flusher task
    /// flushes them on a blocking thread.
    flush_queue: Arc<FlushQueue>,
    /// Held by a pass writing high watermark checkpoints: the periodic pass
    /// and the one of `close` write the same temporary files, so a pass
    /// that outlives the broker tasks' stop deadline (tens of thousands of
    /// partitions, three fsyncs each) must not run beside the last one.
    hw_checkpoint_pass: std::sync::Mutex<()>,
}

impl ReplicaManager {
    pub fn new(node_id: BrokerId, failure: LogDirFailure) -> Self {
        ReplicaManager {
            node_id,
            partitions: RwLock::new(HashMap::new()),
            failure,
            opens_pending: std::sync::atomic::AtomicBool::new(false),
            flush_queue: Arc::new(FlushQueue::default()),
            hw_checkpoint_pass: std::sync::Mutex::new(()),
        }
    }

    /// Whether some hosted partition's log is still to be opened (the disk
    /// was full when the metadata asked for it).
    /// Taken for the whole of a high watermark checkpoint pass.
    pub(crate) fn hw_checkpoint_pass(&self) -> std::sync::MutexGuard<'_, ()> {
        self.hw_checkpoint_pass
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn opens_pending(&self) -> bool {
        self.opens_pending
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set_opens_pending(&self, pending: bool) {
        self.opens_pending
            .store(pending, std::sync::atomic::Ordering::Release);
    }

    /// The log directory's fault handler.
    pub fn log_dir_failure(&self) -> &LogDirFailure {
        &self.failure
    }

    pub fn node_id(&self) -> BrokerId {
        self.node_id
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.read_map().get(tp).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.read_map().values().cloned().collect()
    }

    /// Where an append that makes a flush due queues its partition (see
    /// [`Partition::set_flusher`]).
    pub fn flush_queue(&self) -> &Arc<FlushQueue> {
        &self.flush_queue
    }

    pub fn insert(&self, partition: Arc<Partition>) {
        partition.set_flusher(Arc::clone(&self.flush_queue));
        self.write_map().insert(partition.tp.clone(), partition);
    }

    pub fn remove(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.write_map().remove(tp)
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_map(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        self.partitions.write().unwrap_or_else(|p| p.into_inner())
    }

    fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>, PartitionError> {
        self.get(tp).ok_or(PartitionError::UnknownTopicOrPartition)
    }

    /// Append every partition's batches, then (acks=all) wait until the high
    /// watermark passes each of them or `timeout` runs out.
    pub async fn produce(
        &self,
        requests: Vec<ProducePartition>,
        acks: Acks,
        timeout: std::time::Duration,
    ) -> Vec<ProduceResult> {
        self.produce_from(AppendOrigin::Client, requests, acks, timeout)
            .await
    }

    /// [`produce`](Self::produce) for `origin` (see [`Partition::append_from`]).
    pub async fn produce_from(
        &self,
        origin: AppendOrigin,
        requests: Vec<ProducePartition>,
        acks: Acks,
        timeout: std::time::Duration,
    ) -> Vec<ProduceResult> {
        let now = now_ms();
        let deadline = Instant::now() + timeout;
        let mut waits = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for req in requests {
            let appended = self.partition(&req.tp).and_then(|p| {
                p.append_from(origin, &req.records, req.verification, acks, now)
                    .map(|a| (p, a))
            });
            match appended {
                Ok((partition, appended)) => {
                    results.push((req.tp, Ok(appended.info)));
                    if acks == Acks::All || appended.flush.is_some() {
                        waits.push((results.len() - 1, partition, appended));
                    }
                }
                Err(e) => results.push((req.tp, Err(e))),
            }
        }
        // All appends first, then the waits: the flusher's fsyncs and the
        // followers' fetches run for every partition at once.
        for (index, partition, appended) in waits {
            let flushed = wait_flushed(&partition, &appended, deadline, &self.failure).await;
            results[index].1 = match flushed {
                Ok(()) if acks == Acks::All => {
                    wait_committed(&partition, &appended, deadline, &self.failure)
                        .await
                        .map(|()| appended.info)
                }
                Ok(()) => Ok(appended.info),
                Err(e) => Err(e),
            };
        }
        results
    }

    /// See [`Partition::start_txn_verification`].
    pub fn start_txn_verification(
        &self,
        tp: &TopicPartition,
        records: &Bytes,
    ) -> Result<Option<TxnVerification>, PartitionError> {
        self.partition(tp)?.start_txn_verification(records)
    }

    /// WriteTxnMarkers on one partition (for the transaction coordinator):
    /// write the marker as leader ([`Partition::append_txn_marker`]) and wait,
    /// as acks=all, until the high watermark passes it or `timeout` runs out.
    pub async fn append_txn_marker(
        &self,
        tp: &TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        result: TxnResult,
        timeout: std::time::Duration,
    ) -> Result<(), PartitionError> {
        let deadline = Instant::now() + timeout;
        let partition = self.partition(tp)?;
        let appended = partition.append_txn_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            result,
            now_ms(),
        )?;
        wait_committed(&partition, &appended, deadline, &self.failure).await
    }

    /// Serve a fetch: read now, and while fewer than `min_bytes` are there and
    /// nothing failed, wait for a high watermark to move until `max_wait`.
    pub async fn fetch(&self, params: FetchParams) -> Vec<FetchResult> {
        let deadline = Instant::now() + params.max_wait;
        let partitions: Vec<Option<Arc<Partition>>> =
            params.partitions.iter().map(|p| self.get(&p.tp)).collect();
        loop {
            // Subscribe before reading, so a batch appended between the read
            // and the wait still wakes us.
            let mut watchers: Vec<_> = partitions
                .iter()
                .flatten()
                .map(|p| p.subscribe_hw())
                .collect();
            let results = Self::read_all(&params, &partitions);
            let bytes: usize = results
                .iter()
                .map(|(_, r)| r.as_ref().map_or(0, |d| d.records.len()))
                .sum();
            let failed = results.iter().any(|(_, r)| r.is_err());
            if bytes >= params.min_bytes
                || failed
                || watchers.is_empty()
                || Instant::now() >= deadline
            {
                return results;
            }
            let any_moved = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            if tokio::time::timeout_at(deadline, any_moved).await.is_err() {
                return Self::read_all(&params, &partitions);
            }
        }
    }

    fn read_all(params: &FetchParams, partitions: &[Option<Arc<Partition>>]) -> Vec<FetchResult> {
        let mut remaining = params.max_bytes;
        let mut first_data = true;
        params
            .partitions
            .iter()
            .zip(partitions)
            .map(|(req, partition)| {
                let result = match partition {
                    None => Err(PartitionError::UnknownTopicOrPartition),
                    Some(p) => {
                        // KIP-74: the first partition with data returns at least
                        // one whole batch even past the limits, so a consumer
                        // never stalls on a batch larger than its max bytes.
                        let max = req.partition_max_bytes.min(remaining);
                        p.read(
                            req.fetch_offset,
                            max,
                            first_data,
                            req.current_leader_epoch,
                            params.isolation,
                        )
                    }
                };
                if let Ok(data) = &result
                    && !data.records.is_empty()
                {
                    first_data = false;
                    remaining = remaining.saturating_sub(data.records.len());
                }
                (req.tp.clone(), result)
            })
            .collect()
    }

    pub fn list_offset(
        &self,
        tp: &TopicPartition,
        spec: OffsetSpec,
        current_leader_epoch: LeaderEpoch,
        isolation: IsolationLevel,
    ) -> Result<ListedOffset, PartitionError> {
        self.partition(tp)?
            .list_offset(spec, current_leader_epoch, isolation)
    }

    /// OffsetForLeaderEpoch on one partition this broker leads.
    pub fn end_offset_for_epoch(
        &self,
        tp: &TopicPartition,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    ) -> Result<Option<(LeaderEpoch, Offset)>, PartitionError> {
        self.partition(tp)?
            .end_offset_for_epoch(current_leader_epoch, epoch)
    }

    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<Offset> {
        self.get(tp).map(|p| p.high_watermark())
    }

    /// DeleteRecords: on each partition this broker leads, move the log
    /// start offset to the requested offset (-1: the high watermark), then
    /// wait, up to `timeout` for all of them together, until the low
    /// watermark (the smallest log start over the ISR) reaches it (Kafka's
    /// `DelayedDeleteRecords`). Each answer is the low watermark reached, or
    /// the partition's error: REQUEST_TIMED_OUT when followers did not
    /// report in time (the leader's log start has moved regardless),
    /// NOT_LEADER_OR_FOLLOWER when leadership moved meanwhile.
    pub async fn delete_records(
        &self,
        requests: Vec<(TopicPartition, Offset)>,
        timeout: std::time::Duration,
    ) -> Vec<(TopicPartition, Result<Offset, PartitionError>)> {
        let deadline = Instant::now() + timeout;
        let started: Vec<_> = requests
            .into_iter()
            .map(|(tp, offset)| {
                let done = self
                    .partition(&tp)
                    .and_then(|p| p.delete_records_on_leader(offset).map(|d| (p, d)));
                (tp, done)
            })
            .collect();
        let mut results = Vec::with_capacity(started.len());
        for (tp, done) in started {
            let result = match done {
                Err(err) => Err(err),
                Ok((_, deleted)) if deleted.low_watermark >= deleted.requested_offset => {
                    Ok(deleted.low_watermark)
                }
                Ok((partition, deleted)) => {
                    wait_low_watermark(&partition, &deleted, deadline, &self.failure).await
                }
            };
            results.push((tp, result));
        }
        results
    }

    /// DescribeProducers on one partition hosted here.
    pub fn active_producers(
        &self,
        tp: &TopicPartition,
    ) -> Result<Vec<fjord_log::ActiveProducer>, PartitionError> {
        self.partition(tp)?.active_producers()
    }
}

/// An append that made `flush.messages` / `flush.ms` due: wait until the
/// flusher's fsync covers it (Kafka fsyncs inside such an append, so its
/// ack means fsynced), without the partition lock and without blocking the
/// thread. A failed fsync answers KAFKA_STORAGE_ERROR; a truncation or a
/// lost leadership meanwhile NOT_LEADER_OR_FOLLOWER (the batch may be gone).
async fn wait_flushed(
    partition: &Partition,
    appended: &Appended,
    deadline: Instant,
    failure: &LogDirFailure,
) -> Result<(), PartitionError> {
    let Some(wait) = appended.flush else {
        return Ok(());
    };
    let halted = failure.halted();
    let mut flushed = partition.subscribe_flushed();
    let mut leading = partition.subscribe_leading();
    let waited = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            biased;
            _ = halted.cancelled() => FlushOutcome::Failed,
            _ = leading.wait_for(|t| *t != Some(appended.term)) => FlushOutcome::Truncated,
            f = flushed.wait_for(|f| f.outcome(wait) != FlushOutcome::Pending) => {
                f.map_or(FlushOutcome::Truncated, |f| f.outcome(wait))
            }
        }
    })
    .await;
    match waited {
        Ok(FlushOutcome::Durable) => Ok(()),
        _ if failure.is_offline() => Err(PartitionError::LogDirOffline),
        Err(_) => Err(PartitionError::RequestTimedOut),
        Ok(FlushOutcome::Failed) => Err(PartitionError::FlushFailed),
        Ok(FlushOutcome::Truncated | FlushOutcome::Pending) => {
            let leader = partition.assignment().leader;
            Err(PartitionError::NotLeaderOrFollower {
                leader: (leader >= 0).then_some(leader),
            })
        }
    }
}

/// acks=all: wait until the high watermark passes the append's last offset
/// while this broker still leads in the term it appended in. Losing leadership fails
/// the wait with NOT_LEADER_OR_FOLLOWER, as Kafka does: the batch may be
/// truncated by the new leader, and a high watermark seen as follower says
/// nothing about it.
async fn wait_committed(
    partition: &Partition,
    appended: &Appended,
    deadline: Instant,
    failure: &LogDirFailure,
) -> Result<(), PartitionError> {
    let (last_offset, term) = (appended.last_offset, appended.term);
    let halted = failure.halted();
    let mut hw = partition.subscribe_hw();
    let mut leading = partition.subscribe_leading();
    let not_leader = || {
        let leader = partition.assignment().leader;
        PartitionError::NotLeaderOrFollower {
            leader: (leader >= 0).then_some(leader),
        }
    };
    let waited = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            biased;
            // The log directory failed: the batch is not acknowledged.
            _ = halted.cancelled() => false,
            _ = leading.wait_for(|t| *t != Some(term)) => false,
            reached = hw.wait_for(|hw| *hw > last_offset) => reached.is_ok(),
        }
    })
    .await;
    match waited {
        _ if failure.is_offline() => Err(PartitionError::LogDirOffline),
        Err(_) => Err(PartitionError::RequestTimedOut),
        // Checked again: the high watermark may have moved because this
        // broker just became a follower.
        Ok(true) if *partition.subscribe_leading().borrow() == Some(term) => Ok(()),
        Ok(_) => Err(not_leader()),
    }
}

/// DeleteRecords: wait until the low watermark reaches the requested offset
/// while this broker still leads in the term the deletion happened in.
async fn wait_low_watermark(
    partition: &Partition,
    deleted: &RecordsDeleted,
    deadline: Instant,
    failure: &LogDirFailure,
) -> Result<Offset, PartitionError> {
    let halted = failure.halted();
    let mut low_watermark = partition.subscribe_low_watermark();
    let mut leading = partition.subscribe_leading();
    let waited = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            biased;
            _ = halted.cancelled() => None,
            _ = leading.wait_for(|t| *t != Some(deleted.term)) => None,
            reached = low_watermark.wait_for(|lw| *lw >= deleted.requested_offset) => {
                reached.ok().map(|lw| *lw)
            }
        }
    })
    .await;
    match waited {
        _ if failure.is_offline() => Err(PartitionError::LogDirOffline),
        Err(_) => Err(PartitionError::RequestTimedOut),
        Ok(Some(lw)) if *partition.subscribe_leading().borrow() == Some(deleted.term) => Ok(lw),
        Ok(_) => {
            let leader = partition.assignment().leader;
            Err(PartitionError::NotLeaderOrFollower {
                leader: (leader >= 0).then_some(leader),
            })
        }
    }
}
