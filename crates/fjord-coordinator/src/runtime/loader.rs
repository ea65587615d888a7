//! Loading and unloading shards as leadership of the partitions of a
//! shard type's topic moves (Kafka's `onElection` / `onResignation` and its
//! `CoordinatorLoader`).
//!
//! - The node tells the runtime which partitions it became leader or
//!   follower of ([`CoordinatorRuntime::on_election`],
//!   [`CoordinatorRuntime::on_resignation`]), from its local replica changes; only
//!   those partitions are touched. [`CoordinatorRuntime::rescan`] compares every
//!   partition with [`PartitionWriter::leader_epoch`], at start and when
//!   the node lost track of its changes.
//! - A load replays the partition from its log start to its log end in a
//!   background task, off the request path: until it is done, requests for
//!   it get COORDINATOR_LOAD_IN_PROGRESS (retriable), as on Kafka. The
//!   shard's `complete_load` then runs as its first write, before any
//!   request reaches it (the transaction coordinator completes or resumes
//!   prepared transactions there).
//! - An election at a leader epoch the runtime already holds (or a newer
//!   one) is ignored, so repeated changes do not replay twice; a
//!   resignation at an epoch not newer than the shard's is stale and
//!   ignored too (Kafka's rules).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use fjord_types::{LeaderEpoch, Offset, TopicPartition};

use super::CoordinatorRuntime;
use super::batch::visit_batches;
use super::coordinator_shard::CoordinatorShard;
use super::shard::{ShardCell, Slot};
use super::writer::{PartitionWriter, ReadError};

/// A leadership move of one partition of a shard type's topic on this node,
/// as the node learns it from its local replica changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadershipChange {
    /// This node leads the partition at `leader_epoch` (newly, or re-elected
    /// at a new epoch).
    Elected {
        partition: i32,
        leader_epoch: LeaderEpoch,
    },
    /// This node no longer leads the partition: `leader_epoch` is the new
    /// leader's, `None` when the replica here was deleted.
    Resigned {
        partition: i32,
        leader_epoch: Option<LeaderEpoch>,
    },
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// Load or unload the shard a leadership move concerns.
    pub fn on_leadership_change(&self, change: LeadershipChange) {
        match change {
            LeadershipChange::Elected {
                partition,
                leader_epoch,
            } => self.on_election(partition, leader_epoch),
            LeadershipChange::Resigned {
                partition,
                leader_epoch,
            } => self.on_resignation(partition, leader_epoch),
        }
    }

    /// This node leads `partition` at `leader_epoch`: load its shard in the
    /// background unless it is loaded or loading at that epoch (or a newer one).
    pub fn on_election(&self, partition: i32, leader_epoch: LeaderEpoch) {
        if !(0..self.partitions()).contains(&partition) {
            return;
        }
        let cancel = self.cancel().child_token();
        let load = self.inner.next_load.fetch_add(1, Ordering::Relaxed);
        let previous = {
            let mut shards = self.shard_map();
            if let Some(slot) = shards.get(&partition)
                && slot.leader_epoch() >= leader_epoch
            {
                return;
            }
            shards.insert(
                partition,
                Slot::Loading {
                    leader_epoch,
                    load,
                    cancel: cancel.clone(),
                },
            )
        };
        if let Some(previous) = previous {
            previous.retire(self);
        }
        tracing::info!(partition, leader_epoch, "loading {} shard", S::NAME);
        let runtime = self.clone();
        self.tasks().spawn(async move {
            let loaded = tokio::select! {
                _ = cancel.cancelled() => return,
                loaded = runtime.load(partition) => loaded,
            };
            runtime
                .activate(partition, leader_epoch, load, loaded)
                .await;
        });
    }

    /// Serve the loaded shard if `load` is still the partition's current
    /// one, after running its `complete_load` as its first write.
    async fn activate(
        &self,
        partition: i32,
        leader_epoch: LeaderEpoch,
        load: u64,
        loaded: Result<S, ReadError>,
    ) {
        let cell = match loaded {
            Ok(coordinator) => Arc::new(ShardCell::new(partition, leader_epoch, coordinator)),
            Err(err) => {
                let mut shards = self.shard_map();
                if matches!(shards.get(&partition), Some(Slot::Loading { load: current, .. }) if *current == load)
                {
                    // Kafka's runtime fails the shard too: until the next
                    // election here, requests get NOT_COORDINATOR. A read
                    // that lost a race with a leadership move is expected;
                    // any other failure leaves a led partition unserved.
                    if err.moved() {
                        tracing::info!(partition, leader_epoch, %err, "{} shard load overtaken by a leadership move", S::NAME);
                    } else {
                        tracing::error!(partition, leader_epoch, %err, "cannot load {} shard", S::NAME);
                    }
                    shards.remove(&partition);
                }
                drop(shards);
                self.inner.timer.notify_one();
                return;
            }
        };
        // Locked before anyone can see it, so `complete_load` comes first.
        let Some(mut locked) = cell.lock_new(self) else {
            return;
        };
        {
            let mut shards = self.shard_map();
            let ours = matches!(
                shards.get(&partition),
                Some(Slot::Loading { load: current, .. }) if *current == load
            );
            if !ours {
                return;
            }
            shards.insert(
                partition,
                Slot::Active {
                    leader_epoch,
                    cell: cell.clone(),
                },
            );
        }
        // A failure is reverted like any write; the records are written
        // again by the next load.
        if self
            .write(&mut locked, |c, now| c.complete_load(now))
            .await
            .is_err()
        {
            tracing::warn!(
                partition,
                "{}: the load's own records were not written",
                S::NAME
            );
        }
        drop(locked);
        self.inner.timer.notify_one();
    }

    /// This node no longer leads `partition` (`leader_epoch`: the new
    /// leader's epoch; `None` when the replica was deleted): unload its shard,
    /// whose parked requests get NOT_COORDINATOR, or cancel its load.
    pub fn on_resignation(&self, partition: i32, leader_epoch: Option<LeaderEpoch>) {
        let removed = {
            let mut shards = self.shard_map();
            match shards.get(&partition) {
                Some(slot) if leader_epoch.is_none_or(|epoch| slot.leader_epoch() < epoch) => {
                    shards.remove(&partition)
                }
                _ => None,
            }
        };
        if let Some(slot) = removed {
            tracing::info!(partition, ?leader_epoch, "unloading {} shard", S::NAME);
            slot.retire(self);
            self.inner.timer.notify_one();
        }
    }

    /// Compare every partition with what the log says this node leads, and
    /// load or unload the ones that differ (at start, and after missing
    /// local replica changes).
    pub fn rescan(&self) {
        for partition in 0..self.partitions() {
            let tp = TopicPartition::new(S::TOPIC, partition);
            match self.inner.parts.writer.leader_epoch(&tp) {
                Some(leader_epoch) => self.on_election(partition, leader_epoch),
                None => self.on_resignation(partition, None),
            }
        }
    }
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// Replay the partition into a new state machine. Cancellation-safe: a
    /// dropped load leaves nothing behind.
    async fn load(&self, partition: i32) -> Result<S, ReadError> {
        let started = Instant::now();
        let tp = TopicPartition::new(S::TOPIC, partition);
        let mut coordinator = (self.inner.parts.new_shard)();
        let records = replay(&*self.inner.parts.writer, &tp, &mut coordinator).await?;
        tracing::info!(
            partition,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{} shard loaded",
            S::NAME
        );
        Ok(coordinator)
    }
}

/// Replay `tp` from its log start to its log end into `coordinator`; the
/// number of records replayed.
async fn replay<S: CoordinatorShard>(
    writer: &dyn PartitionWriter,
    tp: &TopicPartition,
    coordinator: &mut S,
) -> Result<usize, ReadError> {
    let mut offset: Offset = 0;
    let mut records = 0usize;
    loop {
        let chunk = writer.read(tp, offset).await?;
        let next = visit_batches(chunk.records, &mut |record| {
            // With the batch's flags: each shard type decides what its
            // transactional records and markers mean.
            match S::decode(record) {
                Ok(Some(decoded)) => {
                    coordinator.replay(decoded);
                    records += 1;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%tp, %err, "skipping undecodable {} record", S::NAME),
            }
        })
        .ok_or_else(|| ReadError::Corrupt {
            tp: tp.clone(),
            offset,
        })?;
        match next {
            // Every read moves forward, or the partition is corrupt (a loop
            // otherwise).
            Some(next) if next > offset => offset = next,
            Some(_) => {
                return Err(ReadError::Corrupt {
                    tp: tp.clone(),
                    offset,
                });
            }
            None => return Ok(records),
        }
        if offset >= chunk.log_end_offset {
            return Ok(records);
        }
    }
}

/// A shard's load as tests wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardStatus {
    Loading,
    Active,
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// Where `partition`'s shard is (`None`: not led here, or its load failed).
    pub fn shard_status(&self, partition: i32) -> Option<ShardStatus> {
        self.shard_map().get(&partition).map(|slot| match slot {
            Slot::Loading { .. } => ShardStatus::Loading,
            Slot::Active { .. } => ShardStatus::Active,
        })
    }
}
