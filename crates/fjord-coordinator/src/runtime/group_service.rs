//! [`GroupService`]: the group coordinator of one node, a
//! [`CoordinatorRuntime`] of [`GroupCoordinator`] shards plus the parked
//! JoinGroup/SyncGroup requests their writes answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::time::Duration;

use fjord_types::TopicPartition;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::coordinator_shard::{EffectSink, ShardId};
use super::{Clock, CoordinatorRuntime, GroupServiceConfig, PartitionWriter, RuntimeParts};
use crate::group::{DelayedResponse, GroupCoordinator, GroupError, RequestToken};
use crate::{CONSUMER_OFFSETS, partition_for};

/// Makes the unique part of new member ids (`{client_id}-{suffix}`):
/// random UUIDs as Kafka's, or a simulation's sequence.
pub type MemberIdSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The group coordinator of one node: its shards, parked requests and timers.
pub struct GroupService {
    config: GroupServiceConfig,
    writer: Arc<dyn PartitionWriter>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    clock: Clock,
    member_ids: MemberIdSource,
    pub(crate) runtime: CoordinatorRuntime<GroupCoordinator>,
    waiters: Arc<Waiters>,
    next_token: AtomicU64,
}

/// Parked JoinGroup/SyncGroup requests, by token: the group shards' effect sink.
#[derive(Default)]
struct Waiters(StdMutex<HashMap<RequestToken, oneshot::Sender<DelayedResponse>>>);

impl Waiters {
    fn map(&self) -> StdMutexGuard<'_, HashMap<RequestToken, oneshot::Sender<DelayedResponse>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, delayed: Vec<DelayedResponse>) {
        let mut waiters = self.map();
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
}

impl EffectSink<GroupCoordinator> for Waiters {
    fn committed(&self, _: ShardId, delayed: Vec<DelayedResponse>) {
        self.deliver(delayed);
    }

    fn failed(&self, _: ShardId, delayed: Vec<DelayedResponse>, error: &GroupError) {
        self.deliver(
            delayed
                .into_iter()
                .map(|response| fail(response, error))
                .collect(),
        );
    }
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
        Self::build(
            config,
            writer,
            tasks,
            cancel,
            super::system_clock(),
            Arc::new(|| uuid::Uuid::new_v4().to_string()),
        )
    }

    fn build(
        config: GroupServiceConfig,
        writer: Arc<dyn PartitionWriter>,
        tasks: TaskTracker,
        cancel: CancellationToken,
        clock: Clock,
        member_ids: MemberIdSource,
    ) -> Self {
        let waiters = Arc::new(Waiters::default());
        let group = config.group.clone();
        let runtime = CoordinatorRuntime::new(RuntimeParts {
            partitions: config.offsets_topic_num_partitions,
            // Kafka's group coordinator uses `offsets.commit.timeout.ms` as
            // the write timeout of every operation.
            write_timeout: config.offsets_commit_timeout,
            writer: writer.clone(),
            clock: clock.clone(),
            new_shard: Arc::new({
                let member_ids = member_ids.clone();
                move || {
                    let member_ids = member_ids.clone();
                    GroupCoordinator::with_member_id_suffix(
                        group.clone(),
                        Box::new(move || member_ids()),
                    )
                }
            }),
            effects: waiters.clone(),
            tasks: tasks.clone(),
            cancel: cancel.clone(),
        });
        GroupService {
            config,
            writer,
            tasks,
            cancel,
            clock,
            member_ids,
            runtime,
            waiters,
            next_token: AtomicU64::new(1),
        }
    }

    /// The same runtime reading the time from `clock` (before any load).
    pub fn with_clock(self, clock: Clock) -> Self {
        let member_ids = self.member_ids.clone();
        self.rebuilt(clock, member_ids)
    }

    /// The same runtime naming new members with `member_ids` (before any load).
    pub fn with_member_ids(self, member_ids: MemberIdSource) -> Self {
        let clock = self.clock.clone();
        self.rebuilt(clock, member_ids)
    }

    /// A new runtime from the same parts (the shards' factory and the
    /// runtime's clock are fixed at build).
    fn rebuilt(self, clock: Clock, member_ids: MemberIdSource) -> Self {
        Self::build(
            self.config,
            self.writer,
            self.tasks,
            self.cancel,
            clock,
            member_ids,
        )
    }

    pub fn config(&self) -> &GroupServiceConfig {
        &self.config
    }

    /// The runtime: leadership changes, timers, shard status.
    pub fn runtime(&self) -> &CoordinatorRuntime<GroupCoordinator> {
        &self.runtime
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn offsets_partition(&self, group_id: &str) -> TopicPartition {
        TopicPartition::new(CONSUMER_OFFSETS, self.partition_of(group_id))
    }

    /// Wait until `group_id`'s partition (`None`: every led partition) is
    /// no longer loading, at most `timeout`; whether it finished.
    pub async fn wait_loaded(&self, group_id: Option<&str>, timeout: Duration) -> bool {
        let partition = group_id.map(|g| self.partition_of(g));
        self.runtime.wait_loaded(partition, timeout).await
    }

    fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.offsets_topic_num_partitions)
    }

    pub(crate) fn token(&self) -> RequestToken {
        RequestToken(self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    /// The shard of `group_id`'s partition: NOT_COORDINATOR when this node
    /// does not lead it, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub(crate) fn shard_for(
        &self,
        group_id: &str,
    ) -> Result<Arc<super::shard::ShardCell<GroupCoordinator>>, GroupError> {
        self.runtime.shard_for(self.partition_of(group_id))
    }

    /// Register `token` before a Join/Sync call, so an answer delivered by
    /// a later call is not missed.
    pub(crate) fn park(&self, token: RequestToken) -> oneshot::Receiver<DelayedResponse> {
        let (tx, rx) = oneshot::channel();
        self.waiters.map().insert(token, tx);
        rx
    }

    pub(crate) fn unpark(&self, token: RequestToken) {
        self.waiters.map().remove(&token);
    }

    /// Load or unload the shard a leadership move concerns.
    pub fn on_leadership_change(&self, change: super::LeadershipChange) {
        self.runtime.on_leadership_change(change);
    }

    /// This node leads `partition` at `leader_epoch`: load its shard.
    pub fn on_election(&self, partition: i32, leader_epoch: fjord_types::LeaderEpoch) {
        self.runtime.on_election(partition, leader_epoch);
    }

    /// This node no longer leads `partition`: unload its shard.
    pub fn on_resignation(&self, partition: i32, leader_epoch: Option<fjord_types::LeaderEpoch>) {
        self.runtime.on_resignation(partition, leader_epoch);
    }

    /// The loaded shard of `partition`, if any.
    #[cfg(test)]
    pub(crate) fn active_cell(
        &self,
        partition: i32,
    ) -> Option<Arc<super::shard::ShardCell<GroupCoordinator>>> {
        self.runtime.active_cell(partition)
    }

    /// Compare every partition with what the log says this node leads.
    pub fn rescan(&self) {
        self.runtime.rescan();
    }

    /// Where `partition`'s shard is (`None`: not led here, or its load failed).
    pub fn shard_status(&self, partition: i32) -> Option<super::ShardStatus> {
        self.runtime.shard_status(partition)
    }

    /// Run the shards' timers until the future is dropped (see
    /// [`CoordinatorRuntime::run_timer`]).
    pub async fn run_timer(&self) {
        self.runtime.run_timer().await;
    }

    /// Run the due ticks of every loaded shard once, in turn.
    pub async fn tick_due(&self) {
        self.runtime.tick_due().await;
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
