//! Loading and unloading shards as leadership of `__consumer_offsets`
//! partitions moves (Kafka's `onElection` / `onResignation` and its
//! `CoordinatorLoader`).
//!
//! - The node tells the runtime which partitions it became leader or
//!   follower of ([`GroupService::on_election`],
//!   [`GroupService::on_resignation`]), from its local replica changes; only
//!   those partitions are touched. [`GroupService::rescan`] compares every
//!   partition with [`PartitionWriter::leader_epoch`], at start and when
//!   the node lost track of its changes.
//! - A load replays the partition from its log start to its log end in a
//!   background task, off the request path: until it is done, requests for
//!   its groups get COORDINATOR_LOAD_IN_PROGRESS (retriable), as on Kafka.
//! - An election at a leader epoch the runtime already holds (or a newer
//!   one) is ignored, so repeated changes do not replay twice; a
//!   resignation at an epoch not newer than the shard's is stale and
//!   ignored too (Kafka's rules).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use fjord_types::{LeaderEpoch, Offset, TopicPartition};

use super::GroupService;
use super::batch::visit_batches;
use super::shard::{ShardCell, Slot};
use super::writer::{PartitionWriter, ReadError};
use crate::CONSUMER_OFFSETS;
use crate::group::{GroupConfig, GroupCoordinator, codec};

/// A leadership move of one `__consumer_offsets` partition on this node,
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

impl GroupService {
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
        if !(0..self.config.offsets_topic_num_partitions).contains(&partition) {
            return;
        }
        let cancel = self.cancel.child_token();
        let load = self.next_load.fetch_add(1, Ordering::Relaxed);
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
        tracing::info!(partition, leader_epoch, "loading group coordinator shard");
        let task = LoadTask {
            writer: self.writer.clone(),
            group: self.config.group.clone(),
            clock: self.clock.clone(),
            member_ids: self.member_ids.clone(),
            partition,
        };
        let (shards, timer) = (self.shards.clone(), self.timer.clone());
        self.tasks.spawn(async move {
            let loaded = tokio::select! {
                _ = cancel.cancelled() => return,
                loaded = task.run() => loaded,
            };
            let mut shards = shards.lock().unwrap_or_else(|p| p.into_inner());
            let ours = matches!(
                shards.get(&partition),
                Some(Slot::Loading { load: current, .. }) if *current == load
            );
            if !ours {
                return;
            }
            match loaded {
                Ok(coordinator) => {
                    let cell = Arc::new(ShardCell::new(partition, coordinator));
                    shards.insert(partition, Slot::Active { leader_epoch, cell });
                }
                Err(err) => {
                    // Kafka's runtime fails the shard too: until the next
                    // election here, requests get NOT_COORDINATOR. A read
                    // that lost a race with a leadership move is expected;
                    // any other failure leaves a led partition unserved.
                    if err.moved() {
                        tracing::info!(partition, leader_epoch, %err, "group coordinator shard load overtaken by a leadership move");
                    } else {
                        tracing::error!(partition, leader_epoch, %err, "cannot load group coordinator shard");
                    }
                    shards.remove(&partition);
                }
            }
            drop(shards);
            timer.notify_one();
        });
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
            tracing::info!(
                partition,
                ?leader_epoch,
                "unloading group coordinator shard"
            );
            slot.retire(self);
            self.timer.notify_one();
        }
    }

    /// Compare every partition with what the log says this node leads, and
    /// load or unload the ones that differ (at start, and after missing
    /// local replica changes).
    pub fn rescan(&self) {
        for partition in 0..self.config.offsets_topic_num_partitions {
            let tp = TopicPartition::new(CONSUMER_OFFSETS, partition);
            match self.writer.leader_epoch(&tp) {
                Some(leader_epoch) => self.on_election(partition, leader_epoch),
                None => self.on_resignation(partition, None),
            }
        }
    }
}

/// What a background load needs, owned (the task outlives the call).
struct LoadTask {
    writer: Arc<dyn PartitionWriter>,
    group: GroupConfig,
    clock: super::Clock,
    member_ids: super::MemberIdSource,
    partition: i32,
}

impl LoadTask {
    /// Replay the partition into a new coordinator. Cancellation-safe: a
    /// dropped load leaves nothing behind.
    async fn run(self) -> Result<GroupCoordinator, ReadError> {
        let started = Instant::now();
        let tp = TopicPartition::new(CONSUMER_OFFSETS, self.partition);
        let member_ids = self.member_ids;
        let mut coordinator =
            GroupCoordinator::with_member_id_suffix(self.group, Box::new(move || member_ids()));
        let records = replay(&*self.writer, &tp, &mut coordinator).await?;
        coordinator.complete_load((self.clock)());
        tracing::info!(
            partition = self.partition,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator shard loaded"
        );
        Ok(coordinator)
    }
}

/// Replay `tp` from its log start to its log end into `coordinator`; the
/// number of group records replayed.
async fn replay(
    writer: &dyn PartitionWriter,
    tp: &TopicPartition,
    coordinator: &mut GroupCoordinator,
) -> Result<usize, ReadError> {
    let mut offset: Offset = 0;
    let mut records = 0usize;
    loop {
        let chunk = writer.read(tp, offset).await?;
        let next = visit_batches(chunk.records, &mut |record| {
            // With the batch's flags: transactional offsets and markers.
            match codec::decode_batch_record(record) {
                Ok(Some(group_record)) => {
                    coordinator.replay(group_record);
                    records += 1;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%tp, %err, "skipping undecodable group record"),
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

impl GroupService {
    /// Where `partition`'s shard is (`None`: not led here, or its load failed).
    pub fn shard_status(&self, partition: i32) -> Option<ShardStatus> {
        self.shard_map().get(&partition).map(|slot| match slot {
            Slot::Loading { .. } => ShardStatus::Loading,
            Slot::Active { .. } => ShardStatus::Active,
        })
    }
}
