//! The runtime against a fake partition writer: failed appends revert,
//! unreplicated ones stay as the log holds them, a stalled shard does not
//! hold the others, leadership changes load (in the background) and unload
//! one shard each.

use std::sync::Arc;
use std::time::Duration;

use fjord_types::TopicPartition;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fake_writer::{FakeWriter, Fault};
use super::*;
use crate::group::GroupError;
use crate::group::{
    GroupConfig, OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest, PartitionResults,
};
use crate::partition_for;

const PARTITIONS: i32 = 4;

fn service(writer: &Arc<FakeWriter>) -> Arc<GroupService> {
    let config = GroupServiceConfig {
        offsets_topic_num_partitions: PARTITIONS,
        group: GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
        ..GroupServiceConfig::default()
    };
    let writer: Arc<dyn PartitionWriter> = writer.clone();
    Arc::new(GroupService::new(
        config,
        writer,
        TaskTracker::new(),
        CancellationToken::new(),
    ))
}

/// Wait (bounded) until `partitions` are loaded.
async fn loaded(service: &GroupService, partitions: impl IntoIterator<Item = i32> + Clone) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !partitions
            .clone()
            .into_iter()
            .all(|p| service.shard_status(p) == Some(ShardStatus::Active))
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("shards load");
}

/// A service leading every partition, loaded.
async fn started() -> (Arc<GroupService>, Arc<FakeWriter>) {
    let writer = FakeWriter::leading(0..PARTITIONS);
    let service = service(&writer);
    service.rescan();
    loaded(&service, 0..PARTITIONS).await;
    (service, writer)
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

/// A commit outside any generation (a simple consumer's) of `t-0`.
pub(super) fn commit_req(group: &str, offset: i64) -> OffsetCommitRequest {
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

/// The committed offset of `t-0` for `group` (also the simulation's read).
pub(super) async fn committed(
    service: &GroupService,
    group: &str,
) -> Result<Option<i64>, GroupError> {
    let fetched = service
        .offset_fetch(OffsetFetchRequest {
            group_id: group.to_string(),
            partitions: Some(vec![tp()]),
            require_stable: false,
        })
        .await?;
    match fetched.into_iter().find(|(t, _)| *t == tp()) {
        Some((_, committed)) => Ok(committed?.map(|c| c.offset)),
        None => Ok(None),
    }
}

/// A commit of `offset` for `group` whose append stalls, once it stalls.
async fn stalled_commit(
    service: &Arc<GroupService>,
    writer: &FakeWriter,
    group: &'static str,
    offset: i64,
) -> JoinHandle<PartitionResults> {
    writer.set_fault(partition_for(group, PARTITIONS), Some(Fault::Stall));
    let stalled = tokio::spawn({
        let service = service.clone();
        async move { service.offset_commit(commit_req(group, offset)).await }
    });
    tokio::time::timeout(Duration::from_secs(5), writer.stalled.notified())
        .await
        .expect("the append stalls");
    stalled
}

/// Let a stalled commit go on; its answer.
async fn released(writer: &FakeWriter, stalled: JoinHandle<PartitionResults>) -> PartitionResults {
    writer.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), stalled)
        .await
        .expect("released")
        .expect("no panic")
}

/// Commits 5, then 9 while `fault` holds the group's partition; the second
/// commit must answer `expected`. Returns the committed offset afterwards as
/// this shard sees it and as a coordinator that loads the partition from the
/// log sees it.
async fn commit_with_fault(fault: Fault, expected: GroupError) -> (Option<i64>, Option<i64>) {
    let (service, writer) = started().await;
    let group = "g0";
    let partition = partition_for(group, PARTITIONS);
    let results = service.offset_commit(commit_req(group, 5)).await;
    assert_eq!(results, vec![(tp(), Ok(()))]);

    writer.set_fault(partition, Some(fault));
    let results = service.offset_commit(commit_req(group, 9)).await;
    assert_eq!(results, vec![(tp(), Err(expected))]);
    writer.set_fault(partition, None);
    let in_memory = committed(&service, group).await.expect("fetch");
    let reloaded = self::service(&writer);
    reloaded.rescan();
    loaded(&reloaded, [partition]).await;
    let from_log = committed(&reloaded, group).await.expect("fetch");
    (in_memory, from_log)
}

/// An append refused before anything was written (NOT_ENOUGH_REPLICAS):
/// the shard reverts; the old offset is still the committed one, in memory
/// and in the log; the caller may retry (COORDINATOR_NOT_AVAILABLE).
#[tokio::test]
async fn failed_append_answers_an_error_and_keeps_the_committed_offset() {
    let seen = commit_with_fault(
        Fault::NotEnoughReplicas,
        GroupError::CoordinatorNotAvailable,
    )
    .await;
    assert_eq!(seen, (Some(5), Some(5)));
}

/// Records the log refuses as too large are not retriable: Kafka answers
/// UNKNOWN_SERVER_ERROR, and the shard reverts.
#[tokio::test]
async fn a_too_large_append_answers_unknown_server_error() {
    let seen = commit_with_fault(Fault::TooLarge, GroupError::UnknownServerError).await;
    assert_eq!(seen, (Some(5), Some(5)));
}

/// A storage failure sends the client to find its coordinator again.
#[tokio::test]
async fn a_storage_failure_answers_not_coordinator() {
    let seen = commit_with_fault(Fault::Storage, GroupError::NotCoordinator).await;
    assert_eq!(seen, (Some(5), Some(5)));
}

/// A write that reached the log but timed out waiting for replication is
/// kept: its records will be committed with the log, so the shard must not
/// forget them (Kafka's runtime keeps the uncommitted state too); the caller
/// still got an error, and a shard loaded from the log agrees.
#[tokio::test]
async fn an_unreplicated_append_keeps_what_the_log_holds() {
    let seen = commit_with_fault(Fault::TimeOut, GroupError::CoordinatorNotAvailable).await;
    assert_eq!(seen, (Some(9), Some(9)));
}

#[tokio::test]
async fn a_stalled_append_holds_only_its_shard() {
    let (service, writer) = started().await;
    let (stalled_group, other_group) = two_groups();

    // Phase: a commit on one shard waits in its append.
    let stalled = stalled_commit(&service, &writer, stalled_group, 1).await;

    // Phase: the other shard commits and fetches meanwhile.
    let results = tokio::time::timeout(
        Duration::from_secs(2),
        service.offset_commit(commit_req(other_group, 7)),
    )
    .await
    .expect("a commit on another shard is not blocked");
    assert_eq!(results, vec![(tp(), Ok(()))]);
    assert_eq!(committed(&service, other_group).await, Ok(Some(7)));
    assert!(!stalled.is_finished());

    // Phase: released, the stalled commit completes.
    assert_eq!(released(&writer, stalled).await, vec![(tp(), Ok(()))]);
}

#[tokio::test]
async fn leadership_moves_load_and_unload_one_shard() {
    let (service, writer) = started().await;
    let (moving, staying) = two_groups();
    let (moving_p, staying_p) = (
        partition_for(moving, PARTITIONS),
        partition_for(staying, PARTITIONS),
    );
    for (group, offset) in [(moving, 3), (staying, 4)] {
        let results = service.offset_commit(commit_req(group, offset)).await;
        assert_eq!(results, vec![(tp(), Ok(()))]);
    }
    assert_eq!((writer.reads(moving_p), writer.reads(staying_p)), (1, 1));

    // Phase: leadership of one partition moves away.
    writer.resign(moving_p);
    service.on_resignation(moving_p, Some(2));
    assert_eq!(committed(&service, staying).await, Ok(Some(4)));
    assert_eq!(
        committed(&service, moving).await,
        Err(GroupError::NotCoordinator)
    );

    // Phase: it comes back at a new epoch; only that partition is replayed.
    writer.lead(moving_p, 3);
    service.on_election(moving_p, 3);
    loaded(&service, [moving_p]).await;
    assert_eq!(committed(&service, moving).await, Ok(Some(3)));
    assert_eq!(committed(&service, staying).await, Ok(Some(4)));
    assert_eq!((writer.reads(moving_p), writer.reads(staying_p)), (2, 1));

    // Phase: repeated and stale changes touch nothing.
    service.on_election(moving_p, 3);
    service.on_election(moving_p, 2);
    service.on_resignation(moving_p, Some(3));
    service.rescan();
    assert_eq!(service.shard_status(moving_p), Some(ShardStatus::Active));
    assert_eq!(committed(&service, moving).await, Ok(Some(3)));
    assert_eq!((writer.reads(moving_p), writer.reads(staying_p)), (2, 1));
}

/// While a partition replays, its groups get COORDINATOR_LOAD_IN_PROGRESS
/// (retriable) instead of waiting; other shards serve; a partition not led
/// here gets NOT_COORDINATOR.
#[tokio::test]
async fn a_loading_shard_answers_load_in_progress() {
    let writer = FakeWriter::leading([0i32; 0]);
    let service = service(&writer);
    let (group, other) = two_groups();
    let (partition, other_p) = (
        partition_for(group, PARTITIONS),
        partition_for(other, PARTITIONS),
    );
    assert_eq!(
        committed(&service, group).await,
        Err(GroupError::NotCoordinator)
    );

    // Phase: both partitions are elected; one's replay is held.
    writer.hold_reads(partition, true);
    for p in [partition, other_p] {
        writer.lead(p, 1);
        service.on_election(p, 1);
    }
    loaded(&service, [other_p]).await;
    assert_eq!(service.shard_status(partition), Some(ShardStatus::Loading));
    assert_eq!(
        committed(&service, group).await,
        Err(GroupError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        service.offset_commit(commit_req(group, 1)).await,
        vec![(tp(), Err(GroupError::CoordinatorLoadInProgress))]
    );
    assert_eq!(
        service.list_groups(&[]).await,
        Err(GroupError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        service.offset_commit(commit_req(other, 2)).await,
        vec![(tp(), Ok(()))]
    );

    // Phase: a caller may wait for the load, bounded.
    assert!(
        !service
            .wait_loaded(Some(group), Duration::from_millis(50))
            .await
    );
    assert!(!service.wait_loaded(None, Duration::from_millis(50)).await);
    assert!(
        service
            .wait_loaded(Some(other), Duration::from_millis(50))
            .await
    );

    // Phase: the replay finishes while a caller waits; the group is served.
    let waiting = service.wait_loaded(Some(group), Duration::from_secs(10));
    let release = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.hold_reads(partition, false);
        writer.release_reads.notify_one();
    };
    let (finished, ()) = tokio::join!(waiting, release);
    assert!(finished, "the wait ends with the load");
    loaded(&service, [partition]).await;
    assert!(service.wait_loaded(None, Duration::ZERO).await);
    assert_eq!(committed(&service, group).await, Ok(None));
    assert_eq!(service.list_groups(&[]).await.map(|l| l.len()), Ok(1));
}

/// A resignation during a load cancels it: the shard never serves state of
/// an epoch this node no longer leads.
#[tokio::test]
async fn a_resignation_cancels_a_load() {
    let writer = FakeWriter::leading([0]);
    let service = service(&writer);
    writer.hold_reads(0, true);
    service.on_election(0, 1);
    assert_eq!(service.shard_status(0), Some(ShardStatus::Loading));
    service.on_resignation(0, Some(2));
    assert_eq!(service.shard_status(0), None);
    writer.release_reads.notify_one();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(service.shard_status(0), None);
}

/// A load that cannot read its partition fails the shard, as Kafka's
/// runtime does: its groups get NOT_COORDINATOR until the next election.
#[tokio::test]
async fn a_failed_load_answers_not_coordinator() {
    let writer = FakeWriter::leading([0, 1]);
    let service = service(&writer);
    writer.fail_reads(0);
    service.rescan();
    loaded(&service, [1]).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while service.shard_status(0).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the failed load gives the partition up");
    let group = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"]
        .into_iter()
        .find(|g| partition_for(g, PARTITIONS) == 0)
        .expect("a group on partition 0");
    assert_eq!(
        committed(&service, group).await,
        Err(GroupError::NotCoordinator)
    );
}

/// A shard unloaded while its append is in flight answers that write by its
/// outcome, then NOT_COORDINATOR.
#[tokio::test]
async fn a_shard_unloaded_during_an_append_finishes_it_then_refuses() {
    let (service, writer) = started().await;
    let group = "g0";
    let partition = partition_for(group, PARTITIONS);
    let stalled = stalled_commit(&service, &writer, group, 1).await;
    service.on_resignation(partition, Some(2));
    assert_eq!(released(&writer, stalled).await, vec![(tp(), Ok(()))]);
    assert_eq!(
        committed(&service, group).await,
        Err(GroupError::NotCoordinator)
    );
}

/// A read does not wait behind an append in flight on its shard: it
/// answers from the state before that write (the last committed one, as
/// Kafka reads), and sees the write once it is answered.
#[tokio::test]
async fn a_read_answers_from_before_a_write_in_flight() {
    let (service, writer) = started().await;
    let group = "g0";
    let results = service.offset_commit(commit_req(group, 5)).await;
    assert_eq!(results, vec![(tp(), Ok(()))]);
    let stalled = stalled_commit(&service, &writer, group, 9).await;

    let read = tokio::time::timeout(Duration::from_secs(1), committed(&service, group))
        .await
        .expect("a read does not wait for the append");
    assert_eq!(read, Ok(Some(5)));
    let described = service.describe_group(group).await.expect("describe");
    assert_eq!(described.group_id, group);
    let listed = tokio::time::timeout(Duration::from_secs(1), service.list_groups(&[]))
        .await
        .expect("ListGroups does not wait for the append");
    assert_eq!(listed.map(|l| l.len()), Ok(1));

    assert_eq!(released(&writer, stalled).await, vec![(tp(), Ok(()))]);
    assert_eq!(committed(&service, group).await, Ok(Some(9)));
}
