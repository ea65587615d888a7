//! The coordinator runtime (Kafka's `CoordinatorRuntime` shape): one shard
//! per led `__consumer_offsets` partition, each a [`GroupCoordinator`]
//! holding only that partition's groups behind its own lock.
//!
//! Layout: `shard` (a shard, its lock, a partition's slot: loading or
//! active), `loader` (elections and resignations, background loads),
//! `operations` (one method per group API), `timer` (the shards' ticks),
//! `writer` (the [`PartitionWriter`] seam and its errors), `batch` (one
//! record batch per write; decoding on load), `config`.
//!
//! - A write runs apply → append (acks=all) → wait → reply with the shard
//!   locked, so an append stalled on one partition holds only that shard.
//!   Unlike Kafka, which applies further writes on the uncommitted state and
//!   defers their answers, a shard takes one write at a time: then reverting
//!   a failed append concerns only that write.
//! - Revert rule (Kafka's `CoordinatorRuntime`): before applying, the shard
//!   keeps a snapshot of its groups; if the append fails before anything was
//!   written (not leader, too few in-sync replicas, a storage error, records
//!   too large), the snapshot is put back and the caller, and every parked
//!   request the write answered, get the error of [`append_error`]. A write
//!   that reached the local log but whose replication timed out
//!   ([`WriteError::written`]) is *not* reverted: its records stay in the
//!   log and become committed once the high watermark passes them (or
//!   vanish with a leadership move, which unloads the shard), so memory
//!   keeps agreeing with the log; the caller still gets
//!   COORDINATOR_NOT_AVAILABLE (the outcome is unknown to it, as on Kafka,
//!   whose runtime fails the deferred answer on its write timeout but keeps
//!   the uncommitted state). Departure: Fjord's reads see that state before
//!   it is committed. Reads do not wait behind an append in flight: they
//!   answer from the snapshot taken before that write (its last committed
//!   state, as Kafka reads at the last committed offset). A snapshot
//!   rather than a replay of the partition: it costs one clone of one
//!   partition's groups per write, and needs no read of the log on the
//!   failure path (the log may be what failed).
//! - Loading (see `loader`): shards load in the background when this node
//!   becomes leader of a partition, and unload when it stops; a request
//!   for a partition being loaded gets COORDINATOR_LOAD_IN_PROGRESS, one
//!   for a partition not led here NOT_COORDINATOR.
//! - Every task the runtime spawns (loads) belongs to the node's
//!   `TaskTracker` and stops with its `CancellationToken`.

mod batch;
mod config;
mod loader;
mod operations;
mod shard;
mod timer;
mod writer;

#[cfg(test)]
mod fake_writer;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_simulation;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::time::Duration;

use fjord_types::TopicPartition;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::group::{
    CoordinatorOutput, DelayedResponse, GroupCoordinator, GroupError, RequestToken,
};
use crate::{CONSUMER_OFFSETS, partition_for};
pub use batch::{encode_batch, visit_batches};
pub use config::GroupServiceConfig;
pub use loader::{LeadershipChange, ShardStatus};
pub use operations::GroupOffset;
use shard::{LockedShard, ShardCell, Slot};
pub use writer::{Cause, PartitionWriter, ReadChunk, ReadError, WriteError, append_error};

/// Where the runtime reads the time, in milliseconds since the epoch: the
/// system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// Makes the unique part of new member ids (`{client_id}-{suffix}`):
/// random UUIDs as Kafka's, or a simulation's sequence.
pub type MemberIdSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The group coordinator of one node: its shards, parked requests and timers.
pub struct GroupService {
    config: GroupServiceConfig,
    writer: Arc<dyn PartitionWriter>,
    clock: Clock,
    member_ids: MemberIdSource,
    /// Owns the background loads; they stop with `cancel`.
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Each led partition's slot (shared with the load tasks).
    shards: Arc<StdMutex<BTreeMap<i32, Slot>>>,
    next_load: AtomicU64,
    /// Parked JoinGroup/SyncGroup requests, by token.
    waiters: StdMutex<HashMap<RequestToken, oneshot::Sender<DelayedResponse>>>,
    next_token: AtomicU64,
    /// Woken after every call and load, so the timer re-reads the deadlines.
    timer: Arc<Notify>,
}

impl GroupService {
    /// A runtime with no shard yet: the node calls [`rescan`](Self::rescan)
    /// once it follows its local replica changes. Loads run on `tasks` and
    /// stop with `cancel`.
    pub fn new(
        config: GroupServiceConfig,
        writer: Arc<dyn PartitionWriter>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        GroupService {
            config,
            writer,
            clock: system_clock(),
            member_ids: Arc::new(|| uuid::Uuid::new_v4().to_string()),
            tasks,
            cancel,
            shards: Arc::default(),
            next_load: AtomicU64::new(1),
            waiters: StdMutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer: Arc::new(Notify::new()),
        }
    }

    /// The same runtime reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same runtime naming new members with `member_ids`.
    pub fn with_member_ids(mut self, member_ids: MemberIdSource) -> Self {
        self.member_ids = member_ids;
        self
    }

    pub fn config(&self) -> &GroupServiceConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn offsets_partition(&self, group_id: &str) -> TopicPartition {
        let partition = partition_for(group_id, self.config.offsets_topic_num_partitions);
        TopicPartition::new(CONSUMER_OFFSETS, partition)
    }

    fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    fn token(&self) -> RequestToken {
        RequestToken(self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    fn waiters(
        &self,
    ) -> StdMutexGuard<'_, HashMap<RequestToken, oneshot::Sender<DelayedResponse>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard_map(&self) -> StdMutexGuard<'_, BTreeMap<i32, Slot>> {
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
    fn loaded_cells(&self) -> Vec<(i32, Arc<ShardCell>)> {
        self.shard_map()
            .iter()
            .filter_map(|(p, slot)| match slot {
                Slot::Active { cell, .. } => Some((*p, cell.clone())),
                Slot::Loading { .. } => None,
            })
            .collect()
    }

    /// The loaded shard of `partition`, if any (the simulation compares it
    /// with its log).
    #[cfg(test)]
    fn active_cell(&self, partition: i32) -> Option<Arc<ShardCell>> {
        match self.shard_map().get(&partition) {
            Some(Slot::Active { cell, .. }) => Some(cell.clone()),
            _ => None,
        }
    }

    /// Whether `group_id`'s partition is being loaded here.
    fn is_loading(&self, group_id: &str) -> bool {
        let partition = partition_for(group_id, self.config.offsets_topic_num_partitions);
        matches!(self.shard_map().get(&partition), Some(Slot::Loading { .. }))
    }

    /// Wait until `group_id`'s partition (`None`: every led partition) is
    /// no longer loading, at most `timeout`; whether it finished. Loads are
    /// rare (leadership moves only), so this looks every few milliseconds
    /// instead of keeping a notification per load.
    pub async fn wait_loaded(&self, group_id: Option<&str>, timeout: Duration) -> bool {
        const POLL: Duration = Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let loading = match group_id {
                Some(group_id) => self.is_loading(group_id),
                None => self.any_loading(),
            };
            if !loading {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether some led partition is still being loaded.
    fn any_loading(&self) -> bool {
        self.shard_map()
            .values()
            .any(|slot| matches!(slot, Slot::Loading { .. }))
    }

    /// The shard of `group_id`'s partition: NOT_COORDINATOR when this node
    /// does not lead it, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    fn shard_for(&self, group_id: &str) -> Result<Arc<ShardCell>, GroupError> {
        let partition = partition_for(group_id, self.config.offsets_topic_num_partitions);
        match self.shard_map().get(&partition) {
            None => Err(GroupError::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(GroupError::CoordinatorLoadInProgress),
            Some(Slot::Active { cell, .. }) => Ok(cell.clone()),
        }
    }

    /// Run a write on `shard`: apply `op`, append its records (acks=all),
    /// and on success answer the parked requests it completed. On failure
    /// the shard's groups go back to the snapshot taken before `op` (unless
    /// the records were written), the parked requests `op` answered get the
    /// error instead, and so does the caller.
    async fn write<T>(
        &self,
        shard: &mut LockedShard<'_>,
        op: impl FnOnce(&mut GroupCoordinator, i64) -> CoordinatorOutput<T>,
    ) -> Result<T, GroupError> {
        let snapshot = Arc::new(shard.coordinator.snapshot());
        // Reads meanwhile answer from the state before this write, not
        // waiting behind its append; they come back to the shard before
        // anyone is answered, so a client reads its own write.
        let reads = shard.reads_from(snapshot.clone());
        let now = self.now_ms();
        let CoordinatorOutput {
            reply,
            records,
            delayed,
        } = op(&mut shard.coordinator, now);
        let appended = match encode_batch(&records, now) {
            Some(batch) => {
                let tp = TopicPartition::new(CONSUMER_OFFSETS, shard.partition);
                let timeout = self.config.offsets_commit_timeout;
                self.writer.append(&tp, batch, timeout).await
            }
            None => Ok(()),
        };
        self.timer.notify_one();
        drop(reads);
        match appended {
            Ok(()) => {
                self.deliver(delayed);
                Ok(reply)
            }
            Err(err) => {
                let error = append_error(&err);
                if err.written() {
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
                    shard.coordinator.restore(Arc::unwrap_or_clone(snapshot));
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
    fn park(&self, token: RequestToken) -> oneshot::Receiver<DelayedResponse> {
        let (tx, rx) = oneshot::channel();
        self.waiters().insert(token, tx);
        rx
    }

    fn unpark(&self, token: RequestToken) {
        self.waiters().remove(&token);
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
