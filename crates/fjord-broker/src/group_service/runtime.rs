//! The coordinator runtime (Kafka's `CoordinatorRuntime` shape): one shard
//! per led `__consumer_offsets` partition, each a [`GroupCoordinator`]
//! holding only that partition's groups behind its own lock.
//!
//! - A write runs apply → append (acks=all) → wait → reply with the shard
//!   locked, so an append stalled on one partition holds only that shard.
//!   Unlike Kafka, which applies further writes on the uncommitted state and
//!   defers their answers, a shard takes one write at a time: then reverting
//!   a failed append concerns only that write.
//! - Revert rule (Kafka's `CoordinatorRuntime`): before applying, the shard
//!   keeps a snapshot of its groups; if the append fails before anything was
//!   written (not leader, too few in-sync replicas, a storage error), the
//!   snapshot is put back and the caller, and every parked request the write
//!   answered, get the error of [`append_error`]. A write that reached the
//!   local log but whose replication timed out is *not* reverted: its records
//!   stay in the log and become committed once the high watermark passes them
//!   (or vanish with a leadership move, which unloads the shard), so memory
//!   keeps agreeing with the log; the caller still gets
//!   COORDINATOR_NOT_AVAILABLE (the outcome is unknown to it, as on Kafka,
//!   whose runtime fails the deferred answer on its write timeout but keeps
//!   the uncommitted state). Departure: Fjord's reads see that state before
//!   it is committed (Kafka reads at the last committed offset). A snapshot
//!   rather than a replay of the partition: it costs one clone of one
//!   partition's groups per write, and needs no read of the log on the
//!   failure path (the log may be what failed).
//! - Loading: the led set is compared with the one the shards reflect;
//!   only partitions that were gained (or whose leader epoch changed) are
//!   replayed, only lost ones are unloaded (their parked requests get
//!   NOT_COORDINATOR). Loads replay synchronously, as before.
//! - Timers per shard: one timer task walks the shards and runs the due
//!   ones' ticks concurrently, so a tick stalled in an append delays only
//!   its own shard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard as StdMutexGuard};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Mutex, MutexGuard, Notify, oneshot};

use super::offsets_log::{Led, OffsetsLog, append_error, encode_batch};
use super::{GroupServiceConfig, partition_for};
use crate::error::PartitionError;
use crate::group::{
    CoordinatorOutput, DelayedResponse, GroupCoordinator, GroupError, RequestToken, codec,
};
use crate::replica_manager::now_ms;

/// The longest the timer sleeps without looking again.
const MAX_TICK: Duration = Duration::from_secs(1);

/// The groups of one `__consumer_offsets` partition.
pub(crate) struct Shard {
    pub(crate) partition: i32,
    pub(crate) coordinator: GroupCoordinator,
    /// Set once the shard's groups were unloaded (NOT_COORDINATOR sent).
    unloaded: bool,
}

/// A shard and whether it is still loaded.
pub(crate) struct ShardCell {
    /// Cleared (before locking) when leadership of the partition moved.
    active: AtomicBool,
    state: Mutex<Shard>,
}

/// A locked shard; on drop, a shard that became inactive meanwhile is unloaded.
pub(crate) struct LockedShard<'a> {
    service: &'a GroupService,
    cell: &'a ShardCell,
    guard: Option<MutexGuard<'a, Shard>>,
}

impl std::ops::Deref for LockedShard<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        self.guard.as_deref().expect("guard held until drop")
    }
}

impl std::ops::DerefMut for LockedShard<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        self.guard.as_deref_mut().expect("guard held until drop")
    }
}

impl Drop for LockedShard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        self.service.unload_if_inactive(self.cell);
    }
}

pub(crate) struct GroupService {
    pub(crate) config: GroupServiceConfig,
    /// The loaded shards by partition, with the leader epoch they were loaded at.
    shards: StdMutex<BTreeMap<i32, Arc<ShardCell>>>,
    /// Serialises loads and unloads; the led set the shards reflect
    /// (`None` before the first load).
    loaded: Mutex<Option<Led>>,
    /// Parked JoinGroup/SyncGroup requests, by token.
    waiters: StdMutex<HashMap<RequestToken, oneshot::Sender<DelayedResponse>>>,
    next_token: AtomicU64,
    /// Woken after every call, so the timer re-reads the next deadlines.
    timer: Notify,
}

impl GroupService {
    pub(crate) fn new(config: GroupServiceConfig) -> Self {
        GroupService {
            config,
            shards: StdMutex::new(BTreeMap::new()),
            loaded: Mutex::new(None),
            waiters: StdMutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer: Notify::new(),
        }
    }

    pub(crate) fn token(&self) -> RequestToken {
        RequestToken(self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    fn waiters(
        &self,
    ) -> StdMutexGuard<'_, HashMap<RequestToken, oneshot::Sender<DelayedResponse>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard_map(&self) -> StdMutexGuard<'_, BTreeMap<i32, Arc<ShardCell>>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, delayed: Vec<DelayedResponse>) {
        let mut waiters = self.waiters();
        for response in delayed {
            let token = match &response {
                DelayedResponse::Join { token, .. } | DelayedResponse::Sync { token, .. } => *token,
            };
            if let Some(tx) = waiters.remove(&token) {
                // The client may have gone away; nothing to do then.
                let _ = tx.send(response);
            }
        }
    }

    /// The loaded shards, by partition.
    pub(crate) fn loaded_shards(&self) -> Vec<(i32, Arc<ShardCell>)> {
        self.shard_map()
            .iter()
            .map(|(p, cell)| (*p, cell.clone()))
            .collect()
    }

    /// Load the shards of newly led partitions and unload those of lost
    /// ones; shards of partitions led before and after are left alone.
    pub(crate) async fn reconcile(&self, log: &dyn OffsetsLog) {
        let mut loaded = self.loaded.lock().await;
        let led = log.led_partitions();
        if loaded.as_ref() == Some(&led) {
            return;
        }
        let before = loaded.take().unwrap_or_default();
        let mut lost = Vec::new();
        {
            let mut shards = self.shard_map();
            for (partition, epoch) in &before {
                if led.get(partition) != Some(epoch)
                    && let Some(cell) = shards.remove(partition)
                {
                    lost.push(cell);
                }
            }
        }
        let gained: Vec<i32> = led
            .iter()
            .filter(|(p, epoch)| before.get(p) != Some(epoch))
            .map(|(p, _)| *p)
            .collect();
        if !lost.is_empty() || !gained.is_empty() {
            tracing::info!(
                gained = ?gained,
                lost = lost.len(),
                "{} leadership changed; loading and unloading group coordinator shards",
                super::CONSUMER_OFFSETS
            );
        }
        for partition in gained {
            let shard = self.load(log, partition);
            let cell = Arc::new(ShardCell {
                active: AtomicBool::new(true),
                state: Mutex::new(shard),
            });
            self.shard_map().insert(partition, cell);
        }
        *loaded = Some(led);
        drop(loaded);
        // A lost shard may be in the middle of an append: whoever holds its
        // lock unloads it when releasing (see `LockedShard`).
        for cell in lost {
            cell.active.store(false, Ordering::SeqCst);
            self.unload_if_inactive(&cell);
        }
        self.timer.notify_one();
    }

    fn unload_if_inactive(&self, cell: &ShardCell) {
        if cell.active.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut shard) = cell.state.try_lock() else {
            return;
        };
        if shard.unloaded {
            return;
        }
        shard.unloaded = true;
        let output = shard.coordinator.unload(|_| true);
        drop(shard);
        self.deliver(output.delayed);
    }

    /// Replay `partition` into a new shard.
    fn load(&self, log: &dyn OffsetsLog, partition: i32) -> Shard {
        let started = std::time::Instant::now();
        let mut coordinator = GroupCoordinator::new(self.config.group.clone());
        let mut records = 0usize;
        log.read(partition, &mut |record| {
            let Some(key) = record.key.as_deref() else {
                return;
            };
            match codec::decode(key, record.value.as_deref()) {
                Ok(Some(group_record)) => {
                    coordinator.replay(group_record);
                    records += 1;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(partition, %err, "skipping undecodable group record"),
            }
        });
        coordinator.complete_load(now_ms());
        tracing::info!(
            partition,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator shard loaded"
        );
        Shard {
            partition,
            coordinator,
            unloaded: false,
        }
    }

    /// The locked shard of `group_id`'s partition; NOT_COORDINATOR when
    /// this node does not lead it.
    pub(crate) async fn shard_for(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
    ) -> Result<LockedShardOwned<'_>, GroupError> {
        self.reconcile(log).await;
        let partition = partition_for(group_id, self.config.offsets_topic_num_partitions);
        let cell = self
            .shard_map()
            .get(&partition)
            .cloned()
            .ok_or(GroupError::NotCoordinator)?;
        Ok(LockedShardOwned {
            service: self,
            cell,
        })
    }

    /// Run a write on `shard`: apply `op`, append its records (acks=all),
    /// and on success answer the parked requests it completed. On failure
    /// the shard's groups go back to the snapshot taken before `op`, the
    /// parked requests `op` answered get the error instead, and so does the
    /// caller.
    pub(crate) async fn write<T>(
        &self,
        log: &dyn OffsetsLog,
        shard: &mut Shard,
        op: impl FnOnce(&mut GroupCoordinator, i64) -> CoordinatorOutput<T>,
    ) -> Result<T, GroupError> {
        let snapshot = shard.coordinator.snapshot();
        let now = now_ms();
        let CoordinatorOutput {
            reply,
            records,
            delayed,
        } = op(&mut shard.coordinator, now);
        let appended = match encode_batch(&records, now) {
            Some(batch) => log.append(shard.partition, batch).await,
            None => Ok(()),
        };
        self.timer.notify_one();
        match appended {
            Ok(()) => {
                self.deliver(delayed);
                Ok(reply)
            }
            Err(err) => {
                let error = append_error(&err);
                if written_but_unreplicated(&err) {
                    tracing::warn!(
                        partition = shard.partition,
                        %err,
                        "group coordinator append not replicated in time; its records stay in the log"
                    );
                } else {
                    tracing::warn!(
                        partition = shard.partition,
                        %err,
                        "group coordinator append failed; reverting the shard to its last committed state"
                    );
                    shard.coordinator.restore(snapshot);
                }
                self.deliver(
                    delayed
                        .into_iter()
                        .map(|response| fail(response, &error))
                        .collect(),
                );
                Err(error)
            }
        }
    }

    /// Register `token` before a Join/Sync call, so an answer delivered by
    /// a later call is not missed.
    pub(crate) fn park(&self, token: RequestToken) -> oneshot::Receiver<DelayedResponse> {
        let (tx, rx) = oneshot::channel();
        self.waiters().insert(token, tx);
        rx
    }

    pub(crate) fn unpark(&self, token: RequestToken) {
        self.waiters().remove(&token);
    }

    /// The timer: each loaded shard's due tick runs on its own, so a tick
    /// stalled in an append delays only its shard.
    pub(crate) async fn run_timer(&self, log: &dyn OffsetsLog) {
        let mut ticking = FuturesUnordered::new();
        let mut busy: HashSet<i32> = HashSet::new();
        loop {
            let now = now_ms();
            let mut next = now + MAX_TICK.as_millis() as i64;
            for (partition, cell) in self.loaded_shards() {
                if busy.contains(&partition) {
                    continue;
                }
                // A shard in use is skipped: its call wakes the timer when done.
                let deadline = match cell.state.try_lock() {
                    Ok(shard) => shard.coordinator.next_deadline(),
                    Err(_) => continue,
                };
                match deadline {
                    Some(at) if at <= now => {
                        busy.insert(partition);
                        ticking.push(async move {
                            self.tick(log, &cell).await;
                            partition
                        });
                    }
                    Some(at) => next = next.min(at),
                    None => {}
                }
            }
            let wait = Duration::from_millis((next - now).clamp(0, i64::MAX) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => self.reconcile(log).await,
                _ = self.timer.notified() => {}
                Some(partition) = ticking.next(), if !ticking.is_empty() => {
                    busy.remove(&partition);
                }
            }
        }
    }

    async fn tick(&self, log: &dyn OffsetsLog, cell: &ShardCell) {
        let Ok(mut shard) = cell.lock(self).await else {
            return;
        };
        // A failed tick is reverted like any write; the next tick retries it.
        let _ = self
            .write(log, &mut shard, |coordinator, now| coordinator.on_tick(now))
            .await;
    }
}

/// A shard to lock (the `Arc` outlives the map entry if it is unloaded meanwhile).
pub(crate) struct LockedShardOwned<'a> {
    service: &'a GroupService,
    cell: Arc<ShardCell>,
}

impl LockedShardOwned<'_> {
    /// Lock the shard; NOT_COORDINATOR when it was unloaded meanwhile.
    pub(crate) async fn lock(&self) -> Result<LockedShard<'_>, GroupError> {
        self.cell.lock(self.service).await
    }
}

impl ShardCell {
    /// Lock the shard; NOT_COORDINATOR when it was unloaded meanwhile.
    pub(crate) async fn lock<'a>(
        &'a self,
        service: &'a GroupService,
    ) -> Result<LockedShard<'a>, GroupError> {
        let shard = LockedShard {
            service,
            cell: self,
            guard: Some(self.state.lock().await),
        };
        if !self.active.load(Ordering::SeqCst) {
            return Err(GroupError::NotCoordinator);
        }
        Ok(shard)
    }
}

/// A parked request's answer replaced by `error`.
fn fail(response: DelayedResponse, error: &GroupError) -> DelayedResponse {
    match response {
        DelayedResponse::Join { token, .. } => DelayedResponse::Join {
            token,
            result: Err(error.clone()),
        },
        DelayedResponse::Sync { token, .. } => DelayedResponse::Sync {
            token,
            result: Err(error.clone()),
        },
    }
}

/// The append reached the local log and only its replication timed out
/// (acks=all waited past the write timeout while this broker still led).
fn written_but_unreplicated(err: &PartitionError) -> bool {
    matches!(err, PartitionError::RequestTimedOut)
}
