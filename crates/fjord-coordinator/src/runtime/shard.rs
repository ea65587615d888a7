//! One shard: the groups of one `__consumer_offsets` partition, behind
//! their own lock, and the place of each partition in the runtime (being
//! loaded, or serving).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use fjord_types::LeaderEpoch;
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use super::GroupService;
use crate::group::{GroupCoordinator, GroupError, GroupsSnapshot};

/// A led partition as the runtime sees it.
pub(crate) enum Slot {
    /// A background task replays the partition; requests for its groups get
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
        cell: Arc<ShardCell>,
    },
}

impl Slot {
    pub(crate) fn leader_epoch(&self) -> LeaderEpoch {
        match self {
            Slot::Loading { leader_epoch, .. } | Slot::Active { leader_epoch, .. } => *leader_epoch,
        }
    }

    /// Stop serving or loading: a load is cancelled; a loaded shard is
    /// marked inactive and unloaded now, or by whoever holds its lock when
    /// they release it (an append may be in flight).
    pub(crate) fn retire(self, service: &GroupService) {
        match self {
            Slot::Loading { cancel, .. } => cancel.cancel(),
            Slot::Active { cell, .. } => {
                cell.active.store(false, Ordering::SeqCst);
                cell.unload_if_inactive(service);
            }
        }
    }
}

/// The groups of one `__consumer_offsets` partition.
pub(crate) struct Shard {
    pub(crate) partition: i32,
    pub(crate) coordinator: GroupCoordinator,
    /// Set once the shard's groups were unloaded (NOT_COORDINATOR sent).
    unloaded: bool,
}

/// A loaded shard and whether it still serves.
pub(crate) struct ShardCell {
    /// Cleared (before locking) when leadership of the partition moved.
    active: AtomicBool,
    state: Mutex<Shard>,
    /// While a write is in flight: the groups as they were before it, for
    /// reads that must not wait behind its append (Kafka reads at the last
    /// committed offset). A std mutex: held only to clone the `Arc`.
    before_write: StdMutex<Option<Arc<GroupsSnapshot>>>,
}

/// Serves reads of a shard from the state before a write while the write
/// runs; dropping it (the write is done) sends reads back to the shard.
pub(crate) struct ReadsBeforeWrite<'a> {
    cell: &'a ShardCell,
}

impl Drop for ReadsBeforeWrite<'_> {
    fn drop(&mut self) {
        *self.cell.before_write_slot() = None;
    }
}

impl ShardCell {
    pub(crate) fn new(partition: i32, coordinator: GroupCoordinator) -> Self {
        ShardCell {
            active: AtomicBool::new(true),
            state: Mutex::new(Shard {
                partition,
                coordinator,
                unloaded: false,
            }),
            before_write: StdMutex::new(None),
        }
    }

    fn before_write_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<GroupsSnapshot>>> {
        self.before_write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state reads see while a write is in flight; `None` when no write
    /// is: then reads lock the shard. NOT_COORDINATOR once unloaded.
    pub(crate) fn during_write(&self) -> Result<Option<Arc<GroupsSnapshot>>, GroupError> {
        if !self.active.load(Ordering::SeqCst) {
            return Err(GroupError::NotCoordinator);
        }
        Ok(self.before_write_slot().clone())
    }

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

    /// The shard if nobody holds it (the timer skips busy shards: their
    /// call wakes it when done).
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, Shard>> {
        self.state.try_lock().ok()
    }

    /// Unload an inactive shard unless someone holds it (they unload it on
    /// release); parked requests get NOT_COORDINATOR.
    fn unload_if_inactive(&self, service: &GroupService) {
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
        let output = shard.coordinator.unload(|_| true);
        drop(shard);
        service.deliver(output.delayed);
    }
}

/// A locked shard; on drop, a shard that became inactive meanwhile is unloaded.
pub(crate) struct LockedShard<'a> {
    service: &'a GroupService,
    cell: &'a ShardCell,
    /// `Some` until drop.
    guard: Option<MutexGuard<'a, Shard>>,
}

impl<'a> LockedShard<'a> {
    /// Serve reads from `before` until the returned guard drops (it borrows
    /// the cell, not the lock, so the write can go on mutating the shard).
    pub(crate) fn reads_from(&self, before: Arc<GroupsSnapshot>) -> ReadsBeforeWrite<'a> {
        *self.cell.before_write_slot() = Some(before);
        ReadsBeforeWrite { cell: self.cell }
    }
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
        self.cell.unload_if_inactive(self.service);
    }
}
