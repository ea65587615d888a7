//! The group coordinator's async shell: it owns the socket-free
//! [`GroupCoordinator`](crate::group::GroupCoordinator), persists what it
//! decides to `__consumer_offsets` through the normal log, answers parked
//! JoinGroup/SyncGroup requests, and runs its timers.
//!
//! - The coordinator of a group is the leader of `__consumer_offsets`
//!   partition `abs(java_hash(group)) % partitions` (Kafka's rule, so Kafka
//!   tooling agrees on it). The topic is created (compacted) on first use.
//! - Every call mutates state and appends its records under one async lock,
//!   so the log holds records in the order the state changed and a replay
//!   rebuilds the same state. Answers go out only after the records are
//!   committed (acks=all).
//! - On first use the shell replays every `__consumer_offsets` partition this
//!   broker leads (up to its log end, as Kafka does), then serves. It
//!   remembers which partitions it loaded at which leader epoch; when that
//!   changes (a partition's leadership came here, left, or came back), the
//!   next call drops the state and replays again, so a coordinator that moved
//!   back never serves state from before it moved away.
//!
//! Known limits: one lock for all groups of a broker (group calls are not on
//! the produce/fetch path); a failed append is logged and the in-memory
//! state kept (a single node's log failing is a storage fault anyway).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_types::{BrokerId, TopicPartition};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{Mutex, Notify, oneshot};

use crate::broker::Broker;
use crate::group::{
    CoordinatorOutput, DelayedResponse, GroupConfig, GroupCoordinator, GroupDescription,
    GroupError, GroupListing, GroupRecord, GroupState, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResult, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, PartitionResults, Reply, RequestToken,
    SyncGroupRequest, SyncGroupResult, codec,
};
use crate::replica_manager::now_ms;
use crate::types::{Acks, NewTopic, ProducePartition};

/// Kafka's internal topic of group metadata and committed offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// How long a coordinator append may wait for the high watermark.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest the timer sleeps without looking again.
const MAX_TICK: Duration = Duration::from_secs(1);

/// Settings of the group coordinator (Kafka's names in the docs).
#[derive(Clone, Debug)]
pub struct GroupServiceConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`: the topic is created with exactly this
    /// many replicas, never fewer; until that many brokers are unfenced,
    /// FindCoordinator answers COORDINATOR_NOT_AVAILABLE (Kafka).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    pub group: GroupConfig,
}

impl Default for GroupServiceConfig {
    fn default() -> Self {
        GroupServiceConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            group: GroupConfig::default(),
        }
    }
}

/// The `__consumer_offsets` partitions this broker leads, with their leader epochs.
type Led = BTreeMap<i32, fjord_types::LeaderEpoch>;

/// The coordinator state and what is loaded.
struct State {
    coordinator: GroupCoordinator,
    /// What the state was replayed from; `None` before the first load.
    loaded: Option<Led>,
}

pub(crate) struct GroupService {
    config: GroupServiceConfig,
    state: Mutex<State>,
    /// Parked JoinGroup/SyncGroup requests, by token.
    waiters: StdMutex<HashMap<RequestToken, oneshot::Sender<DelayedResponse>>>,
    next_token: AtomicU64,
    /// Woken after every call, so the timer re-reads the next deadline.
    timer: Notify,
}

/// One committed offset of a group (see [`Broker::coordinated_offsets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffset {
    pub group_id: String,
    pub tp: TopicPartition,
    pub offset: fjord_types::Offset,
}

/// Java's `String.hashCode` over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding `group_id` (Kafka's `partitionFor`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs: i32::MIN maps to 0 rather than overflowing.
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

impl GroupService {
    pub(crate) fn new(config: GroupServiceConfig) -> Self {
        GroupService {
            state: Mutex::new(State {
                coordinator: GroupCoordinator::new(config.group.clone()),
                loaded: None,
            }),
            config,
            waiters: StdMutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer: Notify::new(),
        }
    }

    fn token(&self) -> RequestToken {
        RequestToken(self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    fn park(&self, token: RequestToken) -> oneshot::Receiver<DelayedResponse> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, tx);
        rx
    }

    fn deliver(&self, delayed: Vec<DelayedResponse>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
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

impl Broker {
    fn groups(&self) -> &GroupService {
        &self.group_service
    }

    fn offsets_partition(&self, group_id: &str) -> TopicPartition {
        let partitions = self.groups().config.offsets_topic_num_partitions;
        TopicPartition::new(CONSUMER_OFFSETS, partition_for(group_id, partitions))
    }

    /// Create `__consumer_offsets` if it does not exist yet, with
    /// `offsets.topic.replication.factor` replicas. While fewer brokers are
    /// unfenced, nothing is created and the caller gets COORDINATOR_NOT_AVAILABLE
    /// (retriable), as Kafka: the topic is never created with a lower factor.
    async fn ensure_offsets_topic(&self) -> Result<(), GroupError> {
        if self.metadata().topic_ids.contains_key(CONSUMER_OFFSETS) {
            return Ok(());
        }
        let config = &self.groups().config;
        let rf = config.offsets_topic_replication_factor;
        let live_brokers = self
            .metadata()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .count();
        if live_brokers < usize::try_from(rf).unwrap_or(0) {
            tracing::debug!(
                live_brokers,
                offsets_topic_replication_factor = rf,
                "not creating {CONSUMER_OFFSETS}: fewer live brokers than its replication factor"
            );
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let topic = NewTopic {
            name: CONSUMER_OFFSETS.to_string(),
            num_partitions: config.offsets_topic_num_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    config.offsets_topic_segment_bytes.to_string(),
                ),
            ]),
        };
        match self.create_topics(vec![topic], false).await.pop() {
            Some((_, Ok(_))) | Some((_, Err(crate::AdminError::TopicAlreadyExists))) => Ok(()),
            Some((_, Err(err))) => {
                tracing::warn!(%err, "cannot create {CONSUMER_OFFSETS}");
                Err(GroupError::CoordinatorNotAvailable)
            }
            None => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// FindCoordinator for a group: the leader of its `__consumer_offsets` partition.
    pub async fn find_group_coordinator(&self, group_id: &str) -> Result<BrokerId, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        let image = self.metadata();
        let tp = self.offsets_partition(group_id);
        image
            .topic_ids
            .get(CONSUMER_OFFSETS)
            .and_then(|id| image.topics.get(id))
            .and_then(|t| t.partitions.get(tp.partition as usize))
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// Lock the coordinator, loading `__consumer_offsets` on first use, and
    /// check that this broker coordinates `group_id`.
    async fn coordinator_for(
        &self,
        group_id: &str,
    ) -> Result<tokio::sync::MutexGuard<'_, State>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_offsets_topic().await?;
        let tp = self.offsets_partition(group_id);
        let partition = self.replicas.get(&tp).ok_or(GroupError::NotCoordinator)?;
        if !partition.is_leader() {
            return Err(GroupError::NotCoordinator);
        }
        Ok(self.loaded_state().await)
    }

    /// Lock the coordinator, (re)loading it when the set of led
    /// `__consumer_offsets` partitions changed since the last load.
    async fn loaded_state(&self) -> tokio::sync::MutexGuard<'_, State> {
        let mut state = self.groups().state.lock().await;
        let led = self.led_offsets_partitions();
        if state.loaded.as_ref() != Some(&led) {
            if state.loaded.is_some() {
                tracing::info!(
                    partitions = led.len(),
                    "{CONSUMER_OFFSETS} leadership changed; reloading group coordinator state"
                );
                state.coordinator = GroupCoordinator::new(self.groups().config.group.clone());
                // Requests parked on the old state get COORDINATOR_NOT_AVAILABLE and retry.
                self.groups()
                    .waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
            }
            self.load(&mut state, &led);
            state.loaded = Some(led);
            self.groups().timer.notify_one();
        }
        state
    }

    fn led_offsets_partitions(&self) -> Led {
        self.replicas
            .all()
            .into_iter()
            .filter(|p| p.tp.topic == CONSUMER_OFFSETS && p.is_leader())
            .map(|p| (p.tp.partition, p.assignment().leader_epoch))
            .collect()
    }

    /// Replay every `__consumer_offsets` partition this broker leads (`led`);
    /// follower replicas hold groups another broker coordinates.
    fn load(&self, state: &mut State, led: &Led) {
        let started = std::time::Instant::now();
        let mut records = 0usize;
        for partition in self.replicas.all() {
            if partition.tp.topic != CONSUMER_OFFSETS || !led.contains_key(&partition.tp.partition)
            {
                continue;
            }
            let mut offset = match partition.list_offset(crate::OffsetSpec::Earliest, -1) {
                Ok(listed) => listed.offset,
                Err(_) => continue,
            };
            loop {
                let data = match partition.read_to_log_end(offset, 1 << 20) {
                    Ok(data) if !data.records.is_empty() => data,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::error!(tp = %partition.tp, %err, "cannot load group coordinator state");
                        break;
                    }
                };
                let mut buf = data.records.clone();
                while !buf.is_empty() {
                    let set = match RecordBatchDecoder::decode(&mut buf) {
                        Ok(set) => set,
                        Err(err) => {
                            tracing::error!(tp = %partition.tp, %err, "undecodable batch in {CONSUMER_OFFSETS}");
                            buf.clear();
                            break;
                        }
                    };
                    for record in set.records {
                        offset = offset.max(record.offset + 1);
                        let Some(key) = record.key.as_deref() else {
                            continue;
                        };
                        match codec::decode(key, record.value.as_deref()) {
                            Ok(Some(group_record)) => {
                                state.coordinator.replay(group_record);
                                records += 1;
                            }
                            Ok(None) => {}
                            Err(err) => {
                                tracing::warn!(tp = %partition.tp, %err, "skipping undecodable group record")
                            }
                        }
                    }
                }
                if offset >= partition.log_end_offset() {
                    break;
                }
            }
        }
        state.coordinator.complete_load(now_ms());
        tracing::info!(
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator loaded"
        );
    }

    /// Append a call's records to `__consumer_offsets` (acks=all), grouped by partition.
    async fn persist(&self, records: Vec<GroupRecord>) {
        if records.is_empty() {
            return;
        }
        let now = now_ms();
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for record in &records {
            let tp = self.offsets_partition(record.group_id());
            let (key, value) = match codec::try_encode(record) {
                Ok(encoded) => encoded,
                Err(err) => {
                    // Kafka's schema caps strings at 32767 bytes; such a
                    // record cannot be stored. Kafka fails the append the same way.
                    tracing::warn!(group = record.group_id(), %err, "group record not persisted");
                    continue;
                }
            };
            let batch = by_partition.entry(tp.partition).or_default();
            let delta = batch.len() as i32;
            batch.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(delta),
                // offset - sequence constant: one batch per partition.
                sequence: delta,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            });
        }
        let mut requests = Vec::with_capacity(by_partition.len());
        for (partition, batch) in by_partition {
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            if let Err(err) = RecordBatchEncoder::encode(&mut buf, &batch, &options) {
                tracing::error!(%err, "cannot encode group records");
                continue;
            }
            requests.push(ProducePartition {
                tp: TopicPartition::new(CONSUMER_OFFSETS, partition),
                records: Bytes::from(buf),
            });
        }
        for (tp, result) in self.produce(requests, Acks::All, APPEND_TIMEOUT).await {
            if let Err(err) = result {
                tracing::error!(%tp, %err, "cannot persist group coordinator records");
            }
        }
    }

    /// Persist a call's records, answer the requests it completed.
    async fn finish<T>(&self, output: CoordinatorOutput<T>) -> T {
        let CoordinatorOutput {
            reply,
            records,
            delayed,
        } = output;
        self.persist(records).await;
        self.groups().deliver(delayed);
        self.groups().timer.notify_one();
        reply
    }

    /// Persist a Join/Sync call's effects, release the coordinator, and
    /// answer now or once the phase completes (the parked token is
    /// registered before the lock is released, so no answer is missed).
    async fn answer_parked<R>(
        &self,
        state: tokio::sync::MutexGuard<'_, State>,
        output: CoordinatorOutput<Reply<Result<R, GroupError>>>,
        token: RequestToken,
        unpack: fn(DelayedResponse) -> Option<Result<R, GroupError>>,
    ) -> Result<R, GroupError> {
        let parked = matches!(output.reply, Reply::Pending).then(|| self.groups().park(token));
        let reply = self.finish(output).await;
        drop(state);
        match (reply, parked) {
            (Reply::Now(result), _) => result,
            (Reply::Pending, Some(rx)) => rx
                .await
                .ok()
                .and_then(unpack)
                .unwrap_or(Err(GroupError::CoordinatorNotAvailable)),
            (Reply::Pending, None) => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    pub async fn join_group(
        &self,
        mut req: JoinGroupRequest,
    ) -> Result<JoinGroupResult, GroupError> {
        let mut state = self.coordinator_for(&req.group_id).await?;
        let token = self.groups().token();
        req.token = token;
        let output = state.coordinator.join_group(req, now_ms());
        self.answer_parked(state, output, token, |delayed| match delayed {
            DelayedResponse::Join { result, .. } => Some(result),
            DelayedResponse::Sync { .. } => None,
        })
        .await
    }

    pub async fn sync_group(
        &self,
        mut req: SyncGroupRequest,
    ) -> Result<SyncGroupResult, GroupError> {
        let mut state = self.coordinator_for(&req.group_id).await?;
        let token = self.groups().token();
        req.token = token;
        let output = state.coordinator.sync_group(req, now_ms());
        self.answer_parked(state, output, token, |delayed| match delayed {
            DelayedResponse::Sync { result, .. } => Some(result),
            DelayedResponse::Join { .. } => None,
        })
        .await
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), GroupError> {
        let mut state = self.coordinator_for(&req.group_id).await?;
        let output = state.coordinator.heartbeat(req, now_ms());
        self.finish(output).await
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest) -> LeaveGroupResponse {
        match self.coordinator_for(&req.group_id).await {
            Ok(mut state) => {
                let output = state.coordinator.leave_group(req, now_ms());
                self.finish(output).await
            }
            Err(err) => Err(err),
        }
    }

    pub async fn offset_commit(&self, req: OffsetCommitRequest) -> PartitionResults {
        match self.coordinator_for(&req.group_id).await {
            Ok(mut state) => {
                let output = state.coordinator.offset_commit(req, now_ms());
                self.finish(output).await
            }
            Err(err) => req
                .partitions
                .iter()
                .map(|p| (p.tp.clone(), Err(err.clone())))
                .collect(),
        }
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let state = self.coordinator_for(&req.group_id).await?;
        state.coordinator.offset_fetch(&req)
    }

    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<PartitionResults, GroupError> {
        let mut state = self.coordinator_for(group_id).await?;
        let output = state
            .coordinator
            .offset_delete(group_id, partitions, now_ms());
        self.finish(output).await
    }

    pub async fn delete_groups(
        &self,
        group_ids: Vec<String>,
    ) -> Vec<(String, Result<(), GroupError>)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = match self.coordinator_for(&group_id).await {
                Ok(mut state) => {
                    let output = state.coordinator.delete_groups(vec![group_id.clone()]);
                    self.finish(output).await.pop().map_or(Ok(()), |(_, r)| r)
                }
                Err(err) => Err(err),
            };
            results.push((group_id, result));
        }
        results
    }

    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let state = self.coordinator_for(group_id).await?;
        Ok(state.coordinator.describe_group(group_id))
    }

    /// ListGroups: the groups this broker coordinates, i.e. those whose
    /// `__consumer_offsets` partition it leads (Kafka's rule; clients ask
    /// every broker and merge). The loaded state also holds groups replayed
    /// from partitions led elsewhere, which are left out.
    pub async fn list_groups(&self, states: &[GroupState]) -> Vec<GroupListing> {
        // No topic means no groups yet; ListGroups does not create it.
        if !self.metadata().topic_ids.contains_key(CONSUMER_OFFSETS) {
            return Vec::new();
        }
        let state = self.loaded_state().await;
        let Some(led) = state.loaded.as_ref() else {
            return Vec::new();
        };
        let partitions = self.groups().config.offsets_topic_num_partitions;
        state
            .coordinator
            .list_groups(states)
            .into_iter()
            .filter(|g| led.contains_key(&partition_for(&g.group_id, partitions)))
            .collect()
    }

    /// The committed offsets of the groups this broker coordinates now (the
    /// leader of their `__consumer_offsets` partition), for lag metrics.
    /// Groups still loaded from a partition whose leadership moved away are
    /// left out: their new coordinator reports them.
    pub async fn coordinated_offsets(&self) -> Vec<GroupOffset> {
        let state = self.groups().state.lock().await;
        state
            .coordinator
            .groups()
            .filter(|group| {
                self.local_replica(&self.offsets_partition(group.group_id()))
                    .is_some_and(|p| p.is_leader())
            })
            .flat_map(|group| {
                group.offsets().iter().map(|(tp, committed)| GroupOffset {
                    group_id: group.group_id().to_string(),
                    tp: tp.clone(),
                    offset: committed.offset,
                })
            })
            .collect()
    }

    /// The timer: sleep until the coordinator's next deadline, then tick.
    pub(crate) async fn run_group_timer(&self) {
        loop {
            let deadline = {
                let state = self.groups().state.lock().await;
                state
                    .loaded
                    .is_some()
                    .then(|| state.coordinator.next_deadline())
                    .flatten()
            };
            let wait = deadline
                .map(|at| {
                    Duration::from_millis(
                        (at - now_ms()).clamp(0, MAX_TICK.as_millis() as i64) as u64
                    )
                })
                .unwrap_or(MAX_TICK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.groups().timer.notified() => continue,
            }
            let mut state = self.groups().state.lock().await;
            if state.loaded.is_none() {
                continue;
            }
            let output = state.coordinator.on_tick(now_ms());
            let CoordinatorOutput {
                records, delayed, ..
            } = output;
            self.persist(records).await;
            drop(state);
            self.groups().deliver(delayed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_matches_kafka() {
        // Java's String.hashCode by definition, and values computed with an
        // independent implementation (UTF-16 code units, 32-bit wrap).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(java_string_hash("ünïcode"), -609_351_766);
        assert_eq!(partition_for("ünïcode", 50), 16);
        assert_eq!(partition_for("x", 1), 0);
    }
}
