//! The coordinator runtime (Kafka's `CoordinatorRuntime` shape), generic
//! over the shard's state machine ([`CoordinatorShard`]): one shard per led
//! partition of the shard type's topic, each behind its own lock. Two
//! shard types: the group coordinator over `__consumer_offsets`
//! ([`GroupService`]) and the transaction coordinator over
//! `__transaction_state` ([`TransactionService`]).
//!
//! Layout: `coordinator_shard` (the trait, the output of a call, the
//! effect sink), [`CoordinatorRuntime`] (here: the slots and the write
//! path), `shard` (a shard, its lock, a partition's slot: loading or
//! active), `loader` (elections and resignations, background loads),
//! `timer` (the shards' ticks), `writer` (the [`PartitionWriter`] seam and
//! its errors), `batch` (one record batch per write; decoding on load).
//! Each coordinator's adapter beside it: `group_shard` + `group_service` +
//! `operations` + `config` (groups), `txn_shard` + `txn_service`
//! (transactions, with the [`MarkerSender`] seam).
//!
//! - A write runs apply → append (acks=all) → wait → reply with the shard
//!   locked, so an append stalled on one partition holds only that shard.
//!   Unlike Kafka, which applies further writes on the uncommitted state and
//!   defers their answers, a shard takes one write at a time: then reverting
//!   a failed append concerns only that write.
//! - Revert rule (Kafka's `CoordinatorRuntime`): before applying, the shard
//!   keeps a snapshot of its state; if the append fails before anything was
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
//!   it is committed. The transaction coordinator opts out
//!   ([`CoordinatorShard::KEEP_UNREPLICATED_WRITES`]): like Kafka's
//!   `TransactionStateManager` it reverts such a write too, so markers
//!   never follow a decision not known to be durable. Reads do not wait behind an append in flight: they
//!   answer from the snapshot taken before that write (its last committed
//!   state, as Kafka reads at the last committed offset). A snapshot
//!   rather than a replay of the partition: it costs one clone of one
//!   partition's state per write, and needs no read of the log on the
//!   failure path (the log may be what failed).
//! - Loading (see `loader`): shards load in the background when this node
//!   becomes leader of a partition, and unload when it stops; a request
//!   for a partition being loaded gets COORDINATOR_LOAD_IN_PROGRESS, one
//!   for a partition not led here NOT_COORDINATOR.
//! - Every task the runtime spawns (loads) belongs to the node's
//!   `TaskTracker` and stops with its `CancellationToken`.

mod batch;
mod config;
mod coordinator_shard;
mod group_service;
mod group_shard;
mod loader;
mod operations;
mod shard;
mod timer;
mod txn_service;
mod txn_shard;
mod writer;

#[cfg(test)]
mod fake_writer;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_simulation;
#[cfg(test)]
mod tests_txn;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::time::Duration;

use fjord_types::TopicPartition;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use batch::{encode_batch, visit_batches};
pub use config::GroupServiceConfig;
pub use coordinator_shard::{CoordinatorShard, EffectSink, IntoShardOutput, ShardId, ShardOutput};
pub use group_service::{GroupService, MemberIdSource};
pub use loader::{LeadershipChange, ShardStatus};
pub use operations::GroupOffset;
use shard::{LockedShard, ShardCell, Slot};
pub use txn_service::{
    MarkerError, MarkerSender, MarkerWrite, TransactionService, TransactionServiceConfig,
};
pub use writer::{
    AppendFailure, Cause, PartitionWriter, ReadChunk, ReadError, WriteError, append_error,
};

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

/// Makes the empty state machine of a shard about to load.
pub type NewShard<S> = Arc<dyn Fn() -> S + Send + Sync>;

/// What a runtime is built from.
pub struct RuntimeParts<S: CoordinatorShard> {
    /// The partition count of `S::TOPIC`.
    pub partitions: i32,
    /// How long a write waits for its records to be replicated.
    pub write_timeout: Duration,
    pub writer: Arc<dyn PartitionWriter>,
    pub clock: Clock,
    pub new_shard: NewShard<S>,
    pub effects: Arc<dyn EffectSink<S>>,
    /// Owns the background loads; they stop with `cancel`.
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
}

/// The shards of one shard type on one node (cheap to clone: shared).
pub struct CoordinatorRuntime<S: CoordinatorShard> {
    inner: Arc<Inner<S>>,
}

impl<S: CoordinatorShard> Clone for CoordinatorRuntime<S> {
    fn clone(&self) -> Self {
        CoordinatorRuntime {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S: CoordinatorShard> {
    parts: RuntimeParts<S>,
    /// Each led partition's slot (shared with the load tasks).
    shards: StdMutex<BTreeMap<i32, Slot<S>>>,
    next_load: AtomicU64,
    /// Woken after every call and load, so the timer re-reads the deadlines.
    timer: Notify,
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// A runtime with no shard yet: the node calls [`rescan`](Self::rescan)
    /// once it follows its local replica changes.
    pub fn new(parts: RuntimeParts<S>) -> Self {
        CoordinatorRuntime {
            inner: Arc::new(Inner {
                parts,
                shards: StdMutex::default(),
                next_load: AtomicU64::new(1),
                timer: Notify::new(),
            }),
        }
    }

    /// The number of partitions of the shard type's topic.
    pub fn partitions(&self) -> i32 {
        self.inner.parts.partitions
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.inner.parts.clock)()
    }

    pub(crate) fn effects(&self) -> &dyn EffectSink<S> {
        &*self.inner.parts.effects
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.parts.tasks
    }

    pub(crate) fn cancel(&self) -> &CancellationToken {
        &self.inner.parts.cancel
    }

    fn shard_map(&self) -> StdMutexGuard<'_, BTreeMap<i32, Slot<S>>> {
        self.inner.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loaded shards, by partition.
    pub(crate) fn loaded_cells(&self) -> Vec<(i32, Arc<ShardCell<S>>)> {
        self.shard_map()
            .iter()
            .filter_map(|(p, slot)| match slot {
                Slot::Active { cell, .. } => Some((*p, cell.clone())),
                Slot::Loading { .. } => None,
            })
            .collect()
    }

    /// A read of every loaded shard (ListGroups, ListTransactions): of a
    /// shard with a write in flight, from the state before that write
    /// (`before`), else from the shard (`current`). While a led partition
    /// loads, COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers: a partial
    /// answer would look complete to the client. A shard unloaded
    /// meanwhile is left out (its partition is no longer led here).
    pub(crate) async fn read_loaded<R>(
        &self,
        before: impl Fn(&S::Snapshot) -> R,
        current: impl Fn(&S) -> R,
    ) -> Result<Vec<R>, S::Error> {
        if self.any_loading() {
            return Err(S::load_in_progress());
        }
        let mut read = Vec::new();
        for (_, cell) in self.loaded_cells() {
            match cell.during_write() {
                Ok(Some(snapshot)) => read.push(before(&snapshot)),
                Ok(None) => {
                    if let Ok(shard) = cell.lock(self).await {
                        read.push(current(&shard.coordinator));
                    }
                }
                Err(_) => {}
            }
        }
        Ok(read)
    }

    /// The loaded shard of `partition`, if any (the simulations compare it
    /// with its log).
    #[cfg(test)]
    pub(crate) fn active_cell(&self, partition: i32) -> Option<Arc<ShardCell<S>>> {
        match self.shard_map().get(&partition) {
            Some(Slot::Active { cell, .. }) => Some(cell.clone()),
            _ => None,
        }
    }

    /// Wait until `partition` (`None`: every led partition) is no longer
    /// loading, at most `timeout`; whether it finished. Loads are rare
    /// (leadership moves only), so this looks every few milliseconds
    /// instead of keeping a notification per load.
    pub(crate) async fn wait_loaded(&self, partition: Option<i32>, timeout: Duration) -> bool {
        const POLL: Duration = Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let loading = match partition {
                Some(partition) => {
                    matches!(self.shard_map().get(&partition), Some(Slot::Loading { .. }))
                }
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
    pub(crate) fn any_loading(&self) -> bool {
        self.shard_map()
            .values()
            .any(|slot| matches!(slot, Slot::Loading { .. }))
    }

    /// The shard of `partition`: NOT_COORDINATOR when this node does not
    /// lead it, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub(crate) fn shard_for(&self, partition: i32) -> Result<Arc<ShardCell<S>>, S::Error> {
        match self.shard_map().get(&partition) {
            None => Err(S::not_coordinator()),
            Some(Slot::Loading { .. }) => Err(S::load_in_progress()),
            Some(Slot::Active { cell, .. }) => Ok(cell.clone()),
        }
    }

    /// Lock `partition`'s shard and run a write on it.
    pub(crate) async fn write_to<O: IntoShardOutput<S>>(
        &self,
        partition: i32,
        op: impl FnOnce(&mut S, i64) -> O,
    ) -> Result<O::Reply, S::Error> {
        let cell = self.shard_for(partition)?;
        let mut locked = cell.lock(self).await?;
        self.write(&mut locked, op).await
    }

    /// Whether the shard `id` names still serves (loaded at that leader epoch).
    pub(crate) fn serves(&self, id: ShardId) -> bool {
        matches!(
            self.shard_map().get(&id.partition),
            Some(Slot::Active { leader_epoch, .. }) if *leader_epoch == id.leader_epoch
        )
    }

    /// A write on the shard `id` names, NOT_COORDINATOR when that shard
    /// (partition at that leader epoch) no longer serves: for effects that
    /// call back into the shard that produced them.
    pub(crate) async fn write_at<O: IntoShardOutput<S>>(
        &self,
        id: ShardId,
        op: impl FnOnce(&mut S, i64) -> O,
    ) -> Result<O::Reply, S::Error> {
        let cell = self.shard_for(id.partition)?;
        let mut locked = cell.lock(self).await?;
        if locked.leader_epoch != id.leader_epoch {
            return Err(S::not_coordinator());
        }
        self.write(&mut locked, op).await
    }

    /// Run a write on `shard`: apply `op`, append its records (acks=all),
    /// and on success hand its effects to the sink. On failure the shard
    /// goes back to the snapshot taken before `op` (unless the records
    /// were written), and the effects and the caller get the error.
    pub(crate) async fn write<O: IntoShardOutput<S>>(
        &self,
        shard: &mut LockedShard<'_, S>,
        op: impl FnOnce(&mut S, i64) -> O,
    ) -> Result<O::Reply, S::Error> {
        let snapshot = Arc::new(shard.coordinator.snapshot());
        // Reads meanwhile answer from the state before this write, not
        // waiting behind its append; they come back to the shard before
        // anyone is answered, so a client reads its own write.
        let reads = shard.reads_from(snapshot.clone());
        let now = self.now_ms();
        let ShardOutput {
            reply,
            records,
            effects,
        } = op(&mut shard.coordinator, now).into_shard_output();
        let appended = match encode_batch::<S>(&records, now) {
            Some(batch) => {
                let tp = TopicPartition::new(S::TOPIC, shard.partition);
                let timeout = self.inner.parts.write_timeout;
                self.inner.parts.writer.append(&tp, batch, timeout).await
            }
            None => Ok(()),
        };
        self.inner.timer.notify_one();
        drop(reads);
        let id = ShardId {
            partition: shard.partition,
            leader_epoch: shard.leader_epoch,
        };
        match appended {
            Ok(()) => {
                self.effects().committed(id, effects);
                Ok(reply)
            }
            Err(err) => {
                let error = S::append_error(&err);
                if err.written() && S::KEEP_UNREPLICATED_WRITES {
                    tracing::warn!(
                        partition = shard.partition,
                        %err,
                        "{} append not replicated in time; its records stay in the log",
                        S::NAME
                    );
                } else {
                    tracing::warn!(
                        partition = shard.partition,
                        %err,
                        "{} append failed; reverting the shard to its last committed state",
                        S::NAME
                    );
                    shard.coordinator.restore(Arc::unwrap_or_clone(snapshot));
                }
                self.effects().failed(id, effects, &error);
                Err(error)
            }
        }
    }
}
