//! The runtime against a fake `__consumer_offsets` log: failed appends
//! revert, unreplicated ones stay as the log holds them, a stalled shard does not hold the others, leadership changes
//! load and unload one shard each.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fjord_types::TopicPartition;
use futures::future::BoxFuture;
use kafka_protocol::records::Record;
use tokio::sync::Notify;

use super::offsets_log::{Led, OffsetsLog, visit_batches};
use super::*;
use crate::error::PartitionError;
use crate::group::{OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest};

const PARTITIONS: i32 = 4;

/// A log that keeps appended batches in memory; appends to partitions in
/// `fail` fail with NOT_ENOUGH_REPLICAS (nothing written), those to
/// partitions in `time_out` are written and then answer REQUEST_TIMED_OUT
/// (replication too slow), those to partitions in `stall` wait for `release`.
#[derive(Default)]
struct FakeLog {
    led: Mutex<Led>,
    batches: Mutex<BTreeMap<i32, Vec<Bytes>>>,
    reads: Mutex<BTreeMap<i32, usize>>,
    fail: Mutex<HashSet<i32>>,
    time_out: Mutex<HashSet<i32>>,
    stall: Mutex<HashSet<i32>>,
    stalled: Notify,
    release: Notify,
}

impl FakeLog {
    fn leading(partitions: impl IntoIterator<Item = i32>) -> Arc<Self> {
        let log = FakeLog::default();
        *log.led.lock().unwrap() = partitions.into_iter().map(|p| (p, 1)).collect();
        Arc::new(log)
    }

    fn reads(&self, partition: i32) -> usize {
        self.reads
            .lock()
            .unwrap()
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }
}

impl OffsetsLog for FakeLog {
    fn led_partitions(&self) -> Led {
        self.led.lock().unwrap().clone()
    }

    fn read(&self, partition: i32, visit: &mut dyn FnMut(&Record)) {
        *self.reads.lock().unwrap().entry(partition).or_default() += 1;
        let batches = self.batches.lock().unwrap().get(&partition).cloned();
        for batch in batches.unwrap_or_default() {
            visit_batches(batch, visit).expect("decodable");
        }
    }

    fn append(&self, partition: i32, batch: Bytes) -> BoxFuture<'_, Result<(), PartitionError>> {
        Box::pin(async move {
            if self.fail.lock().unwrap().contains(&partition) {
                return Err(PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 });
            }
            if self.stall.lock().unwrap().contains(&partition) {
                self.stalled.notify_one();
                self.release.notified().await;
            }
            self.batches
                .lock()
                .unwrap()
                .entry(partition)
                .or_default()
                .push(batch);
            if self.time_out.lock().unwrap().contains(&partition) {
                return Err(PartitionError::RequestTimedOut);
            }
            Ok(())
        })
    }
}

fn service() -> Arc<GroupService> {
    Arc::new(GroupService::new(GroupServiceConfig {
        offsets_topic_num_partitions: PARTITIONS,
        group: GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
        ..GroupServiceConfig::default()
    }))
}

/// Two groups whose shards differ.
fn two_groups() -> (&'static str, &'static str) {
    let names = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"];
    let a = names[0];
    let b = names
        .iter()
        .find(|n| partition_for(n, PARTITIONS) != partition_for(a, PARTITIONS))
        .expect("two partitions among eight names");
    (a, b)
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn commit_req(group: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        partitions: vec![OffsetCommitPartition {
            tp: tp(),
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }],
    }
}

async fn committed(
    service: &GroupService,
    log: &dyn OffsetsLog,
    group: &str,
) -> Result<Option<i64>, GroupError> {
    let fetched = service
        .offset_fetch(
            log,
            OffsetFetchRequest {
                group_id: group.to_string(),
                partitions: Some(vec![tp()]),
            },
        )
        .await?;
    Ok(fetched
        .into_iter()
        .find(|(t, _)| *t == tp())
        .and_then(|(_, c)| c.map(|c| c.offset)))
}

/// Commits 5, then 9 while `faulty` (one of the log's fault sets) holds the
/// group's partition: the second commit must answer COORDINATOR_NOT_AVAILABLE
/// (Kafka's mapping of both NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT of a
/// coordinator write). Returns the committed offset afterwards as this shard
/// sees it and as a coordinator that loads the partition from the log sees it.
async fn commit_with_fault(
    faulty: impl Fn(&FakeLog) -> &Mutex<HashSet<i32>>,
) -> (Option<i64>, Option<i64>) {
    let (service, log) = (service(), FakeLog::leading(0..PARTITIONS));
    let group = "g0";
    let results = service.offset_commit(&*log, commit_req(group, 5)).await;
    assert_eq!(results, vec![(tp(), Ok(()))]);

    faulty(&log)
        .lock()
        .unwrap()
        .insert(partition_for(group, PARTITIONS));
    let results = service.offset_commit(&*log, commit_req(group, 9)).await;
    assert_eq!(
        results,
        vec![(tp(), Err(GroupError::CoordinatorNotAvailable))]
    );
    faulty(&log).lock().unwrap().clear();
    let in_memory = committed(&service, &*log, group).await.expect("fetch");
    let from_log = committed(&self::service(), &*log, group)
        .await
        .expect("fetch");
    (in_memory, from_log)
}

/// An append refused before anything was written (NOT_ENOUGH_REPLICAS):
/// the shard reverts; the old offset is still the committed one, in memory
/// and in the log.
#[tokio::test]
async fn failed_append_answers_an_error_and_keeps_the_committed_offset() {
    let seen = commit_with_fault(|log| &log.fail).await;
    assert_eq!(seen, (Some(5), Some(5)));
}

/// A write that reached the log but timed out waiting for replication is
/// kept: its records will be committed with the log, so the shard must not
/// forget them (Kafka's runtime keeps the uncommitted state too); the caller
/// still got an error, and a shard loaded from the log agrees.
#[tokio::test]
async fn an_unreplicated_append_keeps_what_the_log_holds() {
    let seen = commit_with_fault(|log| &log.time_out).await;
    assert_eq!(seen, (Some(9), Some(9)));
}

#[tokio::test]
async fn a_stalled_append_holds_only_its_shard() {
    let (service, log) = (service(), FakeLog::leading(0..PARTITIONS));
    let (stalled_group, other_group) = two_groups();
    log.stall
        .lock()
        .unwrap()
        .insert(partition_for(stalled_group, PARTITIONS));

    // Phase: a commit on one shard waits in its append.
    let stalled = tokio::spawn({
        let (service, log) = (service.clone(), log.clone());
        async move {
            service
                .offset_commit(&*log, commit_req(stalled_group, 1))
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(5), log.stalled.notified())
        .await
        .expect("the append stalls");

    // Phase: the other shard commits and fetches meanwhile.
    let results = tokio::time::timeout(
        Duration::from_secs(2),
        service.offset_commit(&*log, commit_req(other_group, 7)),
    )
    .await
    .expect("a commit on another shard is not blocked");
    assert_eq!(results, vec![(tp(), Ok(()))]);
    assert_eq!(committed(&service, &*log, other_group).await, Ok(Some(7)));
    assert!(!stalled.is_finished());

    // Phase: released, the stalled commit completes.
    log.release.notify_one();
    let results = tokio::time::timeout(Duration::from_secs(5), stalled)
        .await
        .expect("released")
        .expect("no panic");
    assert_eq!(results, vec![(tp(), Ok(()))]);
}

#[tokio::test]
async fn leadership_moves_load_and_unload_one_shard() {
    let (service, log) = (service(), FakeLog::leading(0..PARTITIONS));
    let (moving, staying) = two_groups();
    let (moving_p, staying_p) = (
        partition_for(moving, PARTITIONS),
        partition_for(staying, PARTITIONS),
    );
    for (group, offset) in [(moving, 3), (staying, 4)] {
        let results = service
            .offset_commit(&*log, commit_req(group, offset))
            .await;
        assert_eq!(results, vec![(tp(), Ok(()))]);
    }
    assert_eq!((log.reads(moving_p), log.reads(staying_p)), (1, 1));

    // Phase: leadership of one partition moves away.
    log.led.lock().unwrap().remove(&moving_p);
    assert_eq!(committed(&service, &*log, staying).await, Ok(Some(4)));
    assert_eq!(
        committed(&service, &*log, moving).await,
        Err(GroupError::NotCoordinator)
    );

    // Phase: it comes back at a new epoch; only that partition is replayed.
    log.led.lock().unwrap().insert(moving_p, 2);
    assert_eq!(committed(&service, &*log, moving).await, Ok(Some(3)));
    assert_eq!(committed(&service, &*log, staying).await, Ok(Some(4)));
    assert_eq!((log.reads(moving_p), log.reads(staying_p)), (2, 1));
}
