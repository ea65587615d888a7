//! The follower side: one fetcher task per leader node, fetching every
//! partition this broker follows from that leader in one request, over one
//! gRPC channel.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_controller::MetadataImage;
use fjord_rpc::replica_service_client::ReplicaServiceClient;
use fjord_rpc::{FetchPartition, FetchedPartition, ReplicaFetchRequest};
use fjord_types::{BrokerId, TopicPartition};
use kafka_protocol::ResponseError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::broker::Broker;
use crate::config::REPLICATION_LISTENER;
use crate::error::PartitionError;
use crate::metadata_applier::LocalReplicaChange;
use crate::partition::{FollowerPosition, Partition};
use crate::replica_manager::{ReplicaManager, now_ms};
use crate::replication::reporter::UnreachableReporter;
use crate::truncation::{EpochEndOffset, UNDEFINED_OFFSET};

/// The first back-off after a failed fetch; it doubles up to
/// `replica.fetch.backoff.ms`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Responses may carry `replica.fetch.response.max.bytes` of records plus framing.
const MAX_MESSAGE_SLACK: usize = 1 << 20;

/// The gRPC address (`host:port`) of `broker`'s replication listener.
pub(crate) fn replication_address(image: &MetadataImage, broker: BrokerId) -> Option<String> {
    image
        .brokers
        .get(&broker)?
        .listeners
        .iter()
        .find(|l| l.name == REPLICATION_LISTENER)
        .map(|l| format!("{}:{}", l.host, l.port))
}

struct FetcherHandle {
    partitions: watch::Sender<Vec<Arc<Partition>>>,
    cancel: CancellationToken,
}

/// The partitions this broker follows, by leader: what the fetcher manager
/// keeps in step with the local replica changes.
#[derive(Default)]
struct Followed {
    leader_of: HashMap<TopicPartition, BrokerId>,
    by_leader: BTreeMap<BrokerId, BTreeMap<TopicPartition, Arc<Partition>>>,
}

impl Followed {
    /// Every hosted replica that follows a live leader now.
    fn scan(replicas: &ReplicaManager) -> Followed {
        let mut followed = Followed::default();
        for partition in replicas.all() {
            if let Some(position) = partition.follower_position() {
                followed.follow(position.leader, partition);
            }
        }
        followed
    }

    fn follow(&mut self, leader: BrokerId, partition: Arc<Partition>) {
        self.unfollow(&partition.tp);
        self.leader_of.insert(partition.tp.clone(), leader);
        self.by_leader
            .entry(leader)
            .or_default()
            .insert(partition.tp.clone(), partition);
    }

    /// Stop following `tp`; the leader it was fetched from, if any.
    fn unfollow(&mut self, tp: &TopicPartition) -> Option<BrokerId> {
        let leader = self.leader_of.remove(tp)?;
        if let Some(partitions) = self.by_leader.get_mut(&leader) {
            partitions.remove(tp);
            if partitions.is_empty() {
                self.by_leader.remove(&leader);
            }
        }
        Some(leader)
    }

    /// Apply one image's changes; the leaders whose fetchers must hear of it.
    fn apply(
        &mut self,
        replicas: &ReplicaManager,
        changes: &[LocalReplicaChange],
    ) -> BTreeSet<BrokerId> {
        let mut touched = BTreeSet::new();
        for change in changes {
            match change {
                LocalReplicaChange::BecameFollower { tp, leader, .. } => {
                    touched.extend(self.unfollow(tp));
                    if *leader >= 0
                        && let Some(partition) = replicas.get(tp)
                    {
                        self.follow(*leader, partition);
                        touched.insert(*leader);
                    }
                }
                LocalReplicaChange::BecameLeader { tp, .. }
                | LocalReplicaChange::Deleted { tp, .. } => touched.extend(self.unfollow(tp)),
                // A new ISR or replica set: the fetcher retries the partition
                // now if it had backed off (the leader may be ready for it).
                LocalReplicaChange::Updated { tp, .. } => {
                    touched.extend(self.leader_of.get(tp).copied());
                }
            }
        }
        touched
    }

    fn partitions_of(&self, leader: BrokerId) -> Vec<Arc<Partition>> {
        self.by_leader
            .get(&leader)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl Broker {
    /// Keep one fetcher per leader this broker follows partitions of, driven
    /// by the local replica changes of each applied image: only the
    /// fetchers of leaders whose partitions changed hear of it.
    pub(crate) fn spawn_fetcher_manager(self: &Arc<Self>) {
        let (broker, cancel) = (self.clone(), self.cancel.clone());
        // Subscribe before the first scan: a change applied in between is
        // then seen twice (harmless), never missed.
        let mut changes = self.subscribe_local_changes();
        self.tasks.spawn(async move {
            let mut fetchers: BTreeMap<BrokerId, FetcherHandle> = BTreeMap::new();
            let mut followed = Followed::scan(&broker.replicas);
            let mut touched: BTreeSet<BrokerId> = followed.by_leader.keys().copied().collect();
            loop {
                for leader in std::mem::take(&mut touched) {
                    let partitions = followed.partitions_of(leader);
                    if partitions.is_empty() {
                        if let Some(handle) = fetchers.remove(&leader) {
                            handle.cancel.cancel();
                            tracing::info!(leader, "replica fetcher stopped");
                        }
                    } else if let Some(handle) = fetchers.get(&leader) {
                        handle.partitions.send_replace(partitions);
                    } else {
                        let (tx, rx) = watch::channel(partitions);
                        let token = cancel.child_token();
                        tracing::info!(leader, "replica fetcher started");
                        broker
                            .tasks
                            .spawn(run_fetcher(broker.clone(), leader, rx, token.clone()));
                        fetchers.insert(
                            leader,
                            FetcherHandle {
                                partitions: tx,
                                cancel: token,
                            },
                        );
                    }
                }
                let received = tokio::select! {
                    _ = cancel.cancelled() => None,
                    received = changes.recv() => Some(received),
                };
                match received {
                    Some(Ok(batch)) => touched = followed.apply(&broker.replicas, &batch),
                    Some(Err(broadcast::error::RecvError::Lagged(missed))) => {
                        tracing::warn!(
                            missed,
                            "fetcher manager fell behind metadata; rescanning replicas"
                        );
                        followed = Followed::scan(&broker.replicas);
                        touched = fetchers
                            .keys()
                            .chain(followed.by_leader.keys())
                            .copied()
                            .collect();
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) | None => {
                        for handle in fetchers.values() {
                            handle.cancel.cancel();
                        }
                        return;
                    }
                }
            }
        });
    }
}

/// Per-partition follower state the fetcher keeps between fetches.
#[derive(Default)]
struct FetcherState {
    /// Partitions backed off after an error, until then.
    delayed: HashMap<TopicPartition, Instant>,
    /// Partitions whose leader had no epoch history to compare: fetched once
    /// without the divergence check (they were cut to their high watermark).
    skip_epoch_check: HashSet<TopicPartition>,
}

async fn run_fetcher(
    broker: Arc<Broker>,
    leader: BrokerId,
    mut partitions: watch::Receiver<Vec<Arc<Partition>>>,
    cancel: CancellationToken,
) {
    let config = broker.replication.clone();
    let max_backoff = config.replica_fetch_backoff.max(MIN_BACKOFF);
    let mut backoff = MIN_BACKOFF;
    let mut client: Option<(String, ReplicaServiceClient<Channel>)> = None;
    let mut state = FetcherState::default();
    let mut reporter = UnreachableReporter::default();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        if partitions.has_changed().unwrap_or(false) {
            state.delayed.clear();
        }
        let current = partitions.borrow_and_update().clone();
        let Some(address) = replication_address(&broker.metadata(), leader) else {
            tracing::warn!(
                leader,
                "leader has no {REPLICATION_LISTENER} listener; cannot replicate from it"
            );
            wait(&cancel, &mut partitions, max_backoff).await;
            continue;
        };
        if !matches!(&client, Some((addr, _)) if *addr == address) {
            match config.peer_tls.endpoint(&address) {
                Ok(endpoint) => {
                    let channel = endpoint
                        .connect_timeout(Duration::from_secs(2))
                        .tcp_nodelay(true)
                        .connect_lazy();
                    let rpc = ReplicaServiceClient::new(channel).max_decoding_message_size(
                        config.replica_fetch_response_max_bytes as usize + MAX_MESSAGE_SLACK,
                    );
                    client = Some((address, rpc));
                }
                Err(err) => {
                    tracing::warn!(leader, %address, %err, "bad replication address");
                    wait(&cancel, &mut partitions, max_backoff).await;
                    continue;
                }
            }
        }
        let Some((_, rpc)) = client.as_mut() else {
            continue;
        };

        let now = Instant::now();
        let mut sent: Vec<(Arc<Partition>, FollowerPosition)> = Vec::new();
        let mut next_retry: Option<Instant> = None;
        for partition in current {
            if let Some(&until) = state.delayed.get(&partition.tp) {
                if until > now {
                    next_retry = Some(next_retry.map_or(until, |t| t.min(until)));
                    continue;
                }
                state.delayed.remove(&partition.tp);
            }
            if let Some(position) = partition.follower_position()
                && position.leader == leader
            {
                sent.push((partition, position));
            }
        }
        if sent.is_empty() {
            let pause = next_retry.map_or(max_backoff, |t| t.saturating_duration_since(now));
            wait(&cancel, &mut partitions, pause).await;
            continue;
        }
        let request = ReplicaFetchRequest {
            replica_id: broker.node_id(),
            broker_epoch: broker.broker_epoch(),
            max_wait_ms: config.replica_fetch_wait_max.as_millis() as u32,
            min_bytes: 1,
            max_bytes: config.replica_fetch_response_max_bytes,
            partitions: sent
                .iter()
                .map(|(p, pos)| FetchPartition {
                    topic_id: Bytes::copy_from_slice(p.topic_id.0.as_bytes()),
                    partition: p.tp.partition,
                    current_leader_epoch: pos.leader_epoch,
                    fetch_offset: pos.fetch_offset,
                    last_fetched_epoch: if state.skip_epoch_check.contains(&p.tp) {
                        -1
                    } else {
                        pos.last_fetched_epoch
                    },
                    log_start_offset: pos.log_start_offset,
                    max_bytes: config.replica_fetch_max_bytes,
                })
                .collect(),
        };
        let timeout = config.replica_fetch_wait_max + Duration::from_secs(10);
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = tokio::time::timeout(timeout, rpc.fetch(request)) => outcome,
        };
        let response = match outcome {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                // UNAVAILABLE: the leader's process is (re)starting or gone.
                if status.code() == tonic::Code::Unavailable {
                    tracing::debug!(leader, %status, "replica fetch failed");
                } else {
                    tracing::warn!(leader, %status, "replica fetch failed");
                }
                if transport_failure(&status) {
                    reporter.report(&broker, leader);
                }
                wait(&cancel, &mut partitions, backoff).await;
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
            Err(_) => {
                tracing::warn!(leader, "replica fetch timed out");
                reporter.report(&broker, leader);
                client = None;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::warn!(
                leader,
                error_code = response.error_code,
                "leader refused the replica fetch"
            );
            wait(&cancel, &mut partitions, backoff).await;
            backoff = (backoff * 2).min(max_backoff);
            continue;
        }
        backoff = MIN_BACKOFF;
        let by_key: HashMap<(Bytes, i32), &FetchedPartition> = response
            .partitions
            .iter()
            .map(|p| ((p.topic_id.clone(), p.partition), p))
            .collect();
        for (partition, position) in &sent {
            let key = (
                Bytes::copy_from_slice(partition.topic_id.0.as_bytes()),
                partition.tp.partition,
            );
            let Some(fetched) = by_key.get(&key) else {
                continue;
            };
            if let Err(delay) = apply(partition, position, fetched, &mut state) {
                let until = Instant::now() + delay.unwrap_or(max_backoff);
                state.delayed.insert(partition.tp.clone(), until);
            }
        }
    }
}

/// The fetch did not get an answer from the leader's process (connection refused, reset
/// or closed, stream broken): worth telling the controller. Answers the leader gave
/// (any other status) are not.
fn transport_failure(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// Apply one partition's answer. `Err(None)`: back off this partition.
fn apply(
    partition: &Partition,
    position: &FollowerPosition,
    fetched: &FetchedPartition,
    state: &mut FetcherState,
) -> Result<(), Option<Duration>> {
    let tp = &partition.tp;
    let epoch = position.leader_epoch;
    let code = fetched.error_code;
    if code == 0 {
        if let Some(d) = &fetched.diverging_epoch {
            let diverging = EpochEndOffset {
                epoch: d.epoch,
                end_offset: d.end_offset,
            };
            if diverging.end_offset == UNDEFINED_OFFSET {
                state.skip_epoch_check.insert(tp.clone());
            }
            return partition
                .truncate_diverging(epoch, diverging)
                .map(|_| ())
                .map_err(|err| not_applied(tp, "truncate", &err));
        }
        state.skip_epoch_check.remove(tp);
        return partition
            .append_from_leader(
                epoch,
                &fetched.records,
                fetched.high_watermark,
                fetched.log_start_offset,
                now_ms(),
            )
            .map(|_| ())
            .map_err(|err| not_applied(tp, "append replicated batches to", &err));
    }
    if code == i32::from(ResponseError::OffsetOutOfRange.code()) {
        return match partition.reset_out_of_range(
            epoch,
            fetched.log_start_offset,
            fetched.log_end_offset,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(None),
            Err(err) => Err(not_applied(tp, "reset", &err)),
        };
    }
    // Metadata differs between leader and follower (NOT_LEADER_OR_FOLLOWER,
    // FENCED/UNKNOWN_LEADER_EPOCH, unknown partition): wait for the next
    // image, which resets the back-off.
    tracing::debug!(%tp, leader = position.leader, code, "replica fetch refused for partition");
    Err(None)
}

/// Sleep `pause`, waking early when the partition set changes or on cancel.
async fn wait(
    cancel: &CancellationToken,
    partitions: &mut watch::Receiver<Vec<Arc<Partition>>>,
    pause: Duration,
) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = partitions.changed() => {}
        _ = tokio::time::sleep(pause) => {}
    }
}

/// A fetched partition's data could not be applied: back off it. Storage
/// failures were already reported to the log directory's fault handler
/// (which stops the node, or for a full disk marks it full: the fetch is
/// retried after the back-off); anything else (corrupt batches from the
/// leader) is logged here.
fn not_applied(tp: &TopicPartition, what: &str, err: &PartitionError) -> Option<Duration> {
    match err {
        PartitionError::KafkaStorage(_) | PartitionError::LogDirOffline => {
            tracing::debug!(%tp, %err, "cannot {what} the follower log: log directory full or failed");
        }
        _ => tracing::error!(%tp, %err, "cannot {what} the follower log"),
    }
    None
}
