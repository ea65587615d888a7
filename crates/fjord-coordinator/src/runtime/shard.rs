//! One shard: the state of one coordinator partition, behind its own
//! lock, and the place of each partition in the runtime (being loaded, or
//! serving).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use fjord_types::LeaderEpoch;
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use super::CoordinatorRuntime;
use super::coordinator_shard::{CoordinatorShard, ShardId};

/// A led partition as the runtime sees it.
pub(crate) enum Slot<S: CoordinatorShard> {
    /// A background task replays the partition; requests for it get
    /// COORDINATOR_LOAD_IN_PROGRESS until it is done.
    Loading {
        leader_epoch: LeaderEpoch,
        /// Tells the load's task apart from a later load of the same partition.
        load: u64,
        cancel: CancellationToken,
    },
    /// Loaded: serves requests.
    Active {
        leader_epoch: LeaderEpoch,
        cell: Arc<ShardCell<S>>,
    },
}

impl<S: CoordinatorShard> Slot<S> {
    pub(crate) fn leader_epoch(&self) -> LeaderEpoch {
        match self {
            Slot::Loading { leader_epoch, .. } | Slot::Active { leader_epoch, .. } => *leader_epoch,
        }
    }

    /// Stop serving or loading: a load is cancelled; a loaded shard is
    /// marked inactive and unloaded now, or by whoever holds its lock when
    /// they release it (an append may be in flight).
    pub(crate) fn retire(self, runtime: &CoordinatorRuntime<S>) {
        match self {
            Slot::Loading { cancel, .. } => cancel.cancel(),
            Slot::Active { cell, .. } => {
                cell.active.store(false, Ordering::SeqCst);
                cell.unload_if_inactive(runtime);
            }
        }
    }
}

/// The state machine of one coordinator partition.
pub(crate) struct Shard<S> {
    pub(crate) partition: i32,
    /// The leader epoch it was loaded at.
    pub(crate) leader_epoch: LeaderEpoch,
    pub(crate) coordinator: S,
    /// Set once the shard was unloaded (NOT_COORDINATOR sent).
    unloaded: bool,
}

/// A loaded shard and whether it still serves.
pub(crate) struct ShardCell<S: CoordinatorShard> {
    /// Cleared (before locking) when leadership of the partition moved.
    active: AtomicBool,
    state: Mutex<Shard<S>>,
    /// While a write is in flight: the state as it was before it, for
    /// reads that must not wait behind its append (Kafka reads at the last
    /// committed offset). A std mutex: held only to clone the `Arc`.
    before_write: StdMutex<Option<Arc<S::Snapshot>>>,
}

/// Serves reads of a shard from the state before a write while the write
/// runs; dropping it (the write is done) sends reads back to the shard.
pub(crate) struct ReadsBeforeWrite<'a, S: CoordinatorShard> {
    cell: &'a ShardCell<S>,
}

impl<S: CoordinatorShard> Drop for ReadsBeforeWrite<'_, S> {
    fn drop(&mut self) {
        *self.cell.before_write_slot() = None;
    }
}

impl<S: CoordinatorShard> ShardCell<S> {
    pub(crate) fn new(partition: i32, leader_epoch: LeaderEpoch, coordinator: S) -> Self {
        ShardCell {
            active: AtomicBool::new(true),
            state: Mutex::new(Shard {
                partition,
                leader_epoch,
                coordinator,
                unloaded: false,
            }),
            before_write: StdMutex::new(None),
        }
    }

    fn before_write_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<S::Snapshot>>> {
        self.before_write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state reads see while a write is in flight; `None` when no write
    /// is: then reads lock the shard. NOT_COORDINATOR once unloaded.
    pub(crate) fn during_write(&self) -> Result<Option<Arc<S::Snapshot>>, S::Error> {
        if !self.active.load(Ordering::SeqCst) {
            return Err(S::not_coordinator());
        }
        Ok(self.before_write_slot().clone())
    }

    /// Lock the shard; NOT_COORDINATOR when it was unloaded meanwhile.
    pub(crate) async fn lock<'a>(
        &'a self,
        runtime: &'a CoordinatorRuntime<S>,
    ) -> Result<LockedShard<'a, S>, S::Error> {
        let shard = LockedShard {
            runtime,
            cell: self,
            guard: Some(self.state.lock().await),
        };
        if !self.active.load(Ordering::SeqCst) {
            return Err(S::not_coordinator());
        }
        Ok(shard)
    }

    /// Lock a shard nobody else has seen yet (a load's, before it serves).
    pub(crate) fn lock_new<'a>(
        &'a self,
        runtime: &'a CoordinatorRuntime<S>,
    ) -> Option<LockedShard<'a, S>> {
        Some(LockedShard {
            runtime,
            cell: self,
            guard: Some(self.state.try_lock().ok()?),
        })
    }

    /// The shard if nobody holds it (the timer skips busy shards: their
    /// call wakes it when done).
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, Shard<S>>> {
        self.state.try_lock().ok()
    }

    /// Unload an inactive shard unless someone holds it (they unload it on
    /// release); parked requests get NOT_COORDINATOR.
    fn unload_if_inactive(&self, runtime: &CoordinatorRuntime<S>) {
        if self.active.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut shard) = self.state.try_lock() else {
            return;
        };
        if shard.unloaded {
            return;
        }
        shard.unloaded = true;
        let effects = shard.coordinator.unload();
        let id = ShardId {
            partition: shard.partition,
            leader_epoch: shard.leader_epoch,
        };
        drop(shard);
        runtime.effects().committed(id, effects);
    }
}

/// A locked shard; on drop, a shard that became inactive meanwhile is unloaded.
pub(crate) struct LockedShard<'a, S: CoordinatorShard> {
    runtime: &'a CoordinatorRuntime<S>,
    cell: &'a ShardCell<S>,
    /// `Some` until drop.
    guard: Option<MutexGuard<'a, Shard<S>>>,
}

impl<'a, S: CoordinatorShard> LockedShard<'a, S> {
    /// Serve reads from `before` until the returned guard drops (it borrows
    /// the cell, not the lock, so the write can go on mutating the shard).
    pub(crate) fn reads_from(&self, before: Arc<S::Snapshot>) -> ReadsBeforeWrite<'a, S> {
        *self.cell.before_write_slot() = Some(before);
        ReadsBeforeWrite { cell: self.cell }
    }
}

impl<S: CoordinatorShard> std::ops::Deref for LockedShard<'_, S> {
    type Target = Shard<S>;
    fn deref(&self) -> &Shard<S> {
        self.guard.as_deref().expect("guard held until drop")
    }
}

impl<S: CoordinatorShard> std::ops::DerefMut for LockedShard<'_, S> {
    fn deref_mut(&mut self) -> &mut Shard<S> {
        self.guard.as_deref_mut().expect("guard held until drop")
    }
}

impl<S: CoordinatorShard> Drop for LockedShard<'_, S> {
    fn drop(&mut self) {
        self.guard.take();
        self.cell.unload_if_inactive(self.runtime);
    }
}
