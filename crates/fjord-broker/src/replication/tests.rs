//! Leader and follower partitions replicating through the same calls the
//! fetch service and the fetcher make, without sockets: HW and ISR
//! bookkeeping, KIP-101 truncation after a leader change, and acks=all
//! waits that lose leadership.

use std::sync::Arc;
use std::time::Duration;

use fjord_log::testing::batch;
use fjord_log::{IsolationLevel, Log, LogConfig};
use fjord_types::{BrokerId, TopicId, TopicPartition};

use crate::error::PartitionError;
use crate::leader_state::IsrProposal;
use crate::partition::{Assignment, Partition, ReplicaFetch};
use crate::replica_manager::ReplicaManager;
use crate::types::{Acks, ProducePartition};

/// These tests drive time with a small logical clock (0, 1, 2...), far
/// behind the records' timestamps: no timestamp bound, so
/// `message.timestamp.after.max.ms` does not refuse them.
fn logical_clock_config() -> LogConfig {
    LogConfig {
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

pub(super) fn assignment(
    leader: BrokerId,
    epoch: i32,
    partition_epoch: i32,
    isr: &[BrokerId],
) -> Assignment {
    Assignment {
        leader,
        leader_epoch: epoch,
        partition_epoch,
        replicas: vec![1, 2],
        isr: isr.to_vec(),
    }
}

pub(super) fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

pub(super) fn open(
    dir: &std::path::Path,
    node: BrokerId,
    a: Assignment,
    checkpoint: Option<i64>,
) -> Partition {
    let log = Log::open(dir, logical_clock_config()).expect("open");
    Partition::new(
        tp(),
        TopicId(uuid::Uuid::nil()),
        node,
        log,
        a,
        1,
        checkpoint,
    )
}

/// One fetch by `follower` (broker `id`) from `leader`, applied as the fetcher does.
pub(super) fn round(
    leader: &Partition,
    follower: &Partition,
    id: BrokerId,
    now: i64,
) -> Option<IsrProposal> {
    let pos = follower.follower_position().expect("follows");
    let fetched = leader
        .read_for_follower(
            ReplicaFetch {
                replica: id,
                current_leader_epoch: pos.leader_epoch,
                fetch_offset: pos.fetch_offset,
                last_fetched_epoch: pos.last_fetched_epoch,
                max_bytes: 1 << 20,
                min_one_batch: true,
                log_start_offset: pos.log_start_offset,
            },
            now,
        )
        .expect("fetch");
    match fetched.diverging {
        Some(d) => {
            follower
                .truncate_diverging(pos.leader_epoch, d)
                .expect("truncate");
        }
        None => {
            follower
                .append_from_leader(
                    pos.leader_epoch,
                    &fetched.records,
                    fetched.high_watermark,
                    fetched.log_start_offset,
                    now,
                )
                .expect("append");
        }
    }
    fetched.isr_change
}

#[test]
fn followers_copy_the_leader_and_the_high_watermark_waits_for_them() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None);
    let follower = open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None);
    leader.append(&batch(3), Acks::All, 0).expect("append");
    // The follower has not reported: nothing is committed.
    assert_eq!(leader.high_watermark(), 0);
    assert_eq!(round(&leader, &follower, 2, 1), None);
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(leader.high_watermark(), 0);
    // Its next fetch reports offset 3: committed, and the follower learns it.
    round(&leader, &follower, 2, 2);
    assert_eq!(leader.high_watermark(), 3);
    round(&leader, &follower, 2, 3);
    assert_eq!(follower.high_watermark(), 3);
    // A stranger's fetch is refused.
    let stranger = leader.read_for_follower(
        ReplicaFetch {
            replica: 9,
            current_leader_epoch: 0,
            fetch_offset: 0,
            last_fetched_epoch: -1,
            max_bytes: 100,
            min_one_batch: true,
            log_start_offset: 0,
        },
        4,
    );
    assert!(matches!(
        stranger,
        Err(PartitionError::NotLeaderOrFollower { .. })
    ));
}

#[test]
fn a_new_leader_makes_the_old_leader_drop_its_unreplicated_tail() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None);
    let two = open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None);
    one.append(&batch(3), Acks::All, 0).expect("append");
    one.append(&batch(2), Acks::All, 0).expect("append");
    for now in 1..4 {
        round(&one, &two, 2, now);
    }
    assert_eq!((two.log_end_offset(), one.high_watermark()), (5, 5));
    // Written by the old leader, never replicated.
    one.append(&batch(2), Acks::Leader, 5).expect("append");
    assert_eq!(one.log_end_offset(), 7);

    // Broker 1 fails; broker 2 leads at epoch 1 and takes a new write at 5.
    let config = logical_clock_config();
    two.update(assignment(2, 1, 1, &[2]), config.clone(), 1, 10);
    assert!(two.is_leader());
    two.append(&batch(1), Acks::Leader, 11).expect("append");
    assert_eq!(two.log_end_offset(), 6);
    // Broker 1 comes back as a follower. Its first fetch diverges at epoch 0
    // (ending at 5 on the new leader): offsets 5 and 6 are cut.
    one.update(assignment(2, 1, 1, &[2]), config, 1, 12);
    assert!(!one.is_leader());
    assert_eq!(round(&two, &one, 1, 13), None);
    assert_eq!(one.log_end_offset(), 5);
    // Then it copies the new leader's record at 5, and once it reached the
    // high watermark and the new epoch's start it is due back in the ISR.
    round(&two, &one, 1, 14);
    assert_eq!(one.log_end_offset(), 6);
    let proposal = round(&two, &one, 1, 15).expect("expansion");
    assert_eq!(proposal.new_isr, vec![2, 1]);
    assert_eq!((proposal.leader_epoch, proposal.partition_epoch), (1, 1));
    let pos = one.follower_position().expect("follows");
    assert_eq!((pos.fetch_offset, pos.last_fetched_epoch), (6, 1));
}

#[test]
fn a_promoted_follower_answers_a_retry_with_the_original_offsets() {
    use fjord_log::testing::{TIMESTAMP, idempotent_batch};
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None);
    let two = open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None);
    one.append(&batch(2), Acks::All, 0).expect("append");
    let first = idempotent_batch(7, 0, 0, 3, TIMESTAMP);
    let written = one.append(&first, Acks::All, 0).expect("append");
    assert_eq!((written.info.base_offset, written.last_offset), (2, 4));
    for now in 1..4 {
        round(&one, &two, 2, now);
    }
    assert_eq!(two.log_end_offset(), 5);

    // Broker 1 fails after the write was replicated; the producer retries
    // on broker 2, which learnt the producer's sequence as a follower.
    two.update(assignment(2, 1, 1, &[2]), logical_clock_config(), 1, 10);
    assert!(two.is_leader());
    let retried = two.append(&first, Acks::Leader, 11).expect("retry");
    assert_eq!((retried.info.base_offset, retried.last_offset), (2, 4));
    assert_eq!(two.log_end_offset(), 5, "written once");
    // The next batch in sequence is appended; one past it is a gap.
    let next = two
        .append(&idempotent_batch(7, 0, 3, 1, TIMESTAMP), Acks::Leader, 12)
        .expect("next");
    assert_eq!(next.info.base_offset, 5);
    assert!(matches!(
        two.append(&idempotent_batch(7, 0, 9, 1, TIMESTAMP), Acks::Leader, 13),
        Err(PartitionError::OutOfOrderSequenceNumber(_))
    ));
}

/// A COMMIT marker (control + transactional) from producer 7, as the
/// transaction coordinator writes it.
fn commit_marker() -> bytes::Bytes {
    use fjord_log::testing::{TIMESTAMP, encode, record};
    let key = bytes::Bytes::from_static(&[0, 0, 0, 1]); // version 0, COMMIT
    let mut marker = record(0, TIMESTAMP, Some(key), bytes::Bytes::from_static(&[0; 6]));
    (marker.control, marker.transactional) = (true, true);
    (marker.producer_id, marker.producer_epoch) = (7, 0);
    encode(&[marker], kafka_protocol::records::Compression::None)
}

#[test]
fn the_leader_refuses_a_clients_marker_and_a_follower_stores_the_leaders() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None);
    let follower = open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None);
    let refused = leader.append(&commit_marker(), Acks::Leader, 0).err();
    assert!(
        matches!(
            refused,
            Some(PartitionError::ControlBatchFromClient { producer_id: 7 })
        ),
        "{refused:?}"
    );
    assert_eq!(leader.log_end_offset(), 0);
    // Markers reach followers from the leader: stored as given.
    let applied = follower.append_from_leader(0, &commit_marker(), 0, 0, 1);
    assert!(applied.expect("follower append"));
    assert_eq!(follower.log_end_offset(), 1);
}

#[test]
fn fencing_by_leader_epoch() {
    let d = tempfile::tempdir().unwrap();
    let p = open(d.path(), 1, assignment(1, 4, 0, &[1]), None);
    assert!(
        p.read(0, 100, true, -1, IsolationLevel::ReadUncommitted)
            .is_ok()
    );
    assert!(
        p.read(0, 100, true, 4, IsolationLevel::ReadUncommitted)
            .is_ok()
    );
    assert!(matches!(
        p.read(0, 100, true, 3, IsolationLevel::ReadUncommitted),
        Err(PartitionError::FencedLeaderEpoch {
            given: 3,
            current: 4
        })
    ));
    assert!(matches!(
        p.list_offset(
            crate::OffsetSpec::Latest,
            5,
            IsolationLevel::ReadUncommitted
        ),
        Err(PartitionError::UnknownLeaderEpoch {
            given: 5,
            current: 4
        })
    ));
    // The leader recorded its epoch at the log end on taking over.
    assert_eq!(p.end_offset_for_epoch(-1, 4).expect("leader"), Some((4, 0)));
    assert_eq!(p.end_offset_for_epoch(-1, 7).expect("leader"), None);
}

#[test]
fn a_restarted_replica_starts_from_its_checkpointed_high_watermark() {
    let d = tempfile::tempdir().unwrap();
    {
        let p = open(d.path(), 1, assignment(1, 0, 0, &[1]), None);
        p.append(&batch(5), Acks::Leader, 0).expect("append");
        p.take_log().expect("log").close().expect("close");
    }
    // With another replica, the tail past the checkpoint is not trusted.
    let p = open(d.path(), 1, assignment(1, 0, 0, &[1, 2]), Some(2));
    assert_eq!(p.high_watermark(), 2);
    p.take_log().expect("log").close().expect("close");
    let p = open(d.path(), 1, assignment(1, 0, 0, &[1, 2]), Some(9));
    assert_eq!(p.high_watermark(), 5);
    p.take_log().expect("log").close().expect("close");
    // A sole replica's log end is committed.
    let mut sole = assignment(1, 0, 0, &[1]);
    sole.replicas = vec![1];
    let p = open(d.path(), 1, sole, None);
    assert_eq!(p.high_watermark(), 5);
}

#[tokio::test]
async fn acks_all_fails_with_not_leader_when_leadership_moves() {
    let d = tempfile::tempdir().unwrap();
    let partition = Arc::new(open(d.path(), 1, assignment(1, 0, 0, &[1, 2]), None));
    let replicas = Arc::new(ReplicaManager::new(
        1,
        crate::log_dir_failure::LogDirFailure::new("/nonexistent"),
    ));
    replicas.insert(partition.clone());
    let produce = {
        let replicas = replicas.clone();
        tokio::spawn(async move {
            replicas
                .produce(
                    vec![ProducePartition {
                        tp: tp(),
                        records: batch(1),
                        verification: None,
                    }],
                    Acks::All,
                    Duration::from_secs(30),
                )
                .await
        })
    };
    // Wait until the append happened, then move leadership away.
    tokio::time::timeout(
        Duration::from_secs(5),
        partition.subscribe_leo().wait_for(|leo| *leo > 0),
    )
    .await
    .expect("appended")
    .expect("open");
    partition.update(assignment(2, 1, 1, &[2]), logical_clock_config(), 1, 1);
    let results = tokio::time::timeout(Duration::from_secs(5), produce)
        .await
        .expect("answered before the timeout")
        .expect("task");
    assert!(
        matches!(
            results[0].1,
            Err(PartitionError::NotLeaderOrFollower { leader: Some(2) })
        ),
        "{:?}",
        results[0].1
    );
}

/// A leader whose log already holds transactional data (clients cannot
/// write it yet: produce refuses transactional batches until the
/// coordinator exists), and a follower with an empty log.
fn leader_with_transactions(d1: &std::path::Path, d2: &std::path::Path) -> (Partition, Partition) {
    use fjord_log::testing::{TIMESTAMP, transactional_batch};
    let mut log = Log::open(d1, logical_clock_config()).expect("open");
    log.assign_leader_epoch(0).expect("epoch");
    // Producer 7: offsets 0..=1; producer 8: offset 2; plain data: 3. One
    // time for all (segment.ms rolls by record time: years apart would
    // roll a segment).
    for b in [
        transactional_batch(7, 0, 0, 2, TIMESTAMP),
        transactional_batch(8, 0, 0, 1, TIMESTAMP),
        batch(1),
    ] {
        log.append_as_leader(&b, 0, 0).expect("append");
    }
    let leader = Partition::new(
        tp(),
        TopicId(uuid::Uuid::nil()),
        1,
        log,
        assignment(1, 0, 0, &[1, 2]),
        1,
        None,
    );
    let follower = open(d2, 2, assignment(1, 0, 0, &[1, 2]), None);
    (leader, follower)
}

#[test]
fn read_committed_fetches_stop_at_the_lso_and_carry_the_aborted_transactions() {
    use fjord_log::control::TxnResult;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, follower) = leader_with_transactions(d1.path(), d2.path());
    for now in 1..3 {
        round(&leader, &follower, 2, now);
    }
    assert_eq!(leader.high_watermark(), 4);
    let committed = |p: &Partition, from| {
        p.read(from, 1 << 20, true, -1, IsolationLevel::ReadCommitted)
            .expect("read")
    };

    // Both transactions open: nothing past offset 0 is stable.
    let data = committed(&leader, 0);
    assert_eq!((data.high_watermark, data.last_stable_offset), (4, 0));
    assert!(data.records.is_empty());
    assert_eq!(data.aborted_transactions, Some(vec![]));
    let uncommitted = leader
        .read(0, 1 << 20, true, -1, IsolationLevel::ReadUncommitted)
        .expect("read");
    assert_eq!(uncommitted.last_stable_offset, 0);
    assert_eq!(uncommitted.aborted_transactions, None);
    assert!(!uncommitted.records.is_empty());
    let latest = |isolation| {
        leader
            .list_offset(crate::OffsetSpec::Latest, -1, isolation)
            .expect("list")
            .offset
    };
    assert_eq!(latest(IsolationLevel::ReadCommitted), 0);
    assert_eq!(latest(IsolationLevel::ReadUncommitted), 4);

    // Producer 7 aborts (marker at 4): until the marker is replicated the
    // LSO stays at 0; then producer 8's open transaction (at 2) holds it.
    let abort = leader
        .append_txn_marker(7, 0, 3, TxnResult::Abort, 10)
        .expect("marker");
    assert_eq!(abort.last_offset, 4);
    assert_eq!(committed(&leader, 0).last_stable_offset, 0);
    for now in 11..13 {
        round(&leader, &follower, 2, now);
    }
    assert_eq!(leader.high_watermark(), 5);
    let data = committed(&leader, 0);
    assert_eq!(data.last_stable_offset, 2);
    assert_eq!(
        data.aborted_transactions,
        Some(vec![crate::AbortedTransaction {
            producer_id: 7,
            first_offset: 0
        }])
    );
    assert_eq!(latest(IsolationLevel::ReadCommitted), 2);

    // Producer 8 commits: everything up to the HW is stable, and a fetch
    // past the aborted transaction does not report it.
    leader
        .append_txn_marker(8, 0, 3, TxnResult::Commit, 20)
        .expect("marker");
    for now in 21..23 {
        round(&leader, &follower, 2, now);
    }
    let data = committed(&leader, 5);
    assert_eq!((data.high_watermark, data.last_stable_offset), (6, 6));
    assert_eq!(data.aborted_transactions, Some(vec![]));
    assert!(!data.records.is_empty());
    assert_eq!(latest(IsolationLevel::ReadCommitted), 6);

    // Fencing: an older coordinator, an older producer epoch.
    assert!(matches!(
        leader.append_txn_marker(8, 0, 2, TxnResult::Commit, 30),
        Err(PartitionError::TransactionCoordinatorFenced(_))
    ));
    assert!(matches!(
        leader.append_txn_marker(8, -1, 3, TxnResult::Commit, 30),
        Err(PartitionError::InvalidProducerEpoch(_))
    ));
    // Only the leader writes markers.
    assert!(matches!(
        follower.append_txn_marker(8, 0, 3, TxnResult::Commit, 30),
        Err(PartitionError::NotLeaderOrFollower { .. })
    ));
}

#[test]
fn markers_replicate_and_the_follower_state_matches_the_leader() {
    use fjord_log::control::TxnResult;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, follower) = leader_with_transactions(d1.path(), d2.path());
    leader
        .append_txn_marker(7, 0, 1, TxnResult::Abort, 10)
        .expect("marker");
    leader
        .append_txn_marker(8, 1, 1, TxnResult::Commit, 10)
        .expect("marker with a bumped epoch");
    for now in 11..14 {
        round(&leader, &follower, 2, now);
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.high_watermark(), leader.high_watermark());
    let (leader_log, follower_log) = (
        leader.take_log().expect("leader log"),
        follower.take_log().expect("follower log"),
    );
    let (l, f) = (leader_log.producer_state(), follower_log.producer_state());
    assert_eq!(f.producers(), l.producers());
    assert_eq!(f.producers()[&8].epoch, 1);
    assert_eq!(f.producers()[&7].coordinator_epoch, Some(1));
    assert_eq!(f.ongoing_transactions(), l.ongoing_transactions());
    assert!(f.ongoing_transactions().is_empty());
    assert_eq!(
        follower_log.aborted_transactions(),
        leader_log.aborted_transactions()
    );
    assert_eq!(follower_log.aborted_transactions().len(), 1);
    let hw = leader_log.log_end_offset();
    assert_eq!(follower_log.last_stable_offset(hw), hw);
}

#[tokio::test]
async fn write_txn_markers_waits_for_the_marker_to_be_committed() {
    use fjord_log::control::TxnResult;
    let d = tempfile::tempdir().unwrap();
    let mut sole = assignment(1, 0, 0, &[1]);
    sole.replicas = vec![1];
    let partition = Arc::new(open(d.path(), 1, sole, None));
    let replicas = ReplicaManager::new(
        1,
        crate::log_dir_failure::LogDirFailure::new("/nonexistent"),
    );
    replicas.insert(partition.clone());
    let tp = tp();
    let write = |coordinator_epoch| {
        replicas.append_txn_marker(
            &tp,
            5,
            0,
            coordinator_epoch,
            TxnResult::Commit,
            Duration::from_secs(5),
        )
    };
    write(2).await.expect("marker committed");
    assert_eq!(partition.high_watermark(), 1);
    assert!(matches!(
        write(1).await,
        Err(PartitionError::TransactionCoordinatorFenced(_))
    ));
    assert!(matches!(
        replicas
            .append_txn_marker(
                &TopicPartition::new("other", 0),
                5,
                0,
                2,
                TxnResult::Abort,
                Duration::from_secs(5),
            )
            .await,
        Err(PartitionError::UnknownTopicOrPartition)
    ));
}

/// `flush.messages=1`, through the replica manager as a produce request
/// goes: the appends do not fsync but queue the partition once for the
/// flusher, every produce (acks=1) stays unanswered until the flusher's
/// fsync, and that one fsync answers all of them (group commit).
#[tokio::test]
async fn flush_messages_produces_are_answered_after_one_shared_fsync() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(
        d.path(),
        LogConfig {
            flush_messages: 1,
            ..logical_clock_config()
        },
    )
    .expect("open");
    let sole = Assignment {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
    };
    let partition = Arc::new(Partition::new(
        tp(),
        TopicId(uuid::Uuid::nil()),
        1,
        log,
        sole,
        1,
        None,
    ));
    let replicas = Arc::new(ReplicaManager::new(
        1,
        crate::log_dir_failure::LogDirFailure::new("/nonexistent"),
    ));
    replicas.insert(partition.clone());

    // Four concurrent produces, all appended, none answered.
    let produces: Vec<_> = (0..4)
        .map(|_| {
            let replicas = replicas.clone();
            tokio::spawn(async move {
                let produce = ProducePartition {
                    tp: tp(),
                    records: batch(1),
                    verification: None,
                };
                replicas
                    .produce(vec![produce], Acks::Leader, Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    tokio::time::timeout(
        Duration::from_secs(5),
        partition.subscribe_leo().wait_for(|leo| *leo == 4),
    )
    .await
    .expect("appended")
    .expect("open");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        produces.iter().all(|p| !p.is_finished()),
        "answered before the fsync"
    );
    assert_eq!(partition.subscribe_flushed().borrow().durable, 0);
    assert_eq!(replicas.flush_queue().take(), vec![tp()], "queued once");

    // One flush (as the flusher runs it) answers all four.
    tokio::task::spawn_blocking({
        let partition = partition.clone();
        move || partition.flush()
    })
    .await
    .expect("flush");
    assert_eq!(partition.subscribe_flushed().borrow().durable, 4);
    for produce in produces {
        let results = tokio::time::timeout(Duration::from_secs(5), produce)
            .await
            .expect("answered after the fsync")
            .expect("task");
        assert!(results[0].1.is_ok(), "{:?}", results[0].1);
    }
    let log = partition.take_log().expect("log");
    assert_eq!(log.recovery_point(), 4);
    drop(log);
    assert_eq!(
        std::fs::read_to_string(d.path().join("recovery-point-checkpoint")).expect("checkpoint"),
        "0\n4\n"
    );
}

/// A partition outside a replica manager (no flusher) flushes inline, and
/// its appends have nothing to wait for.
#[test]
fn without_a_flusher_a_due_flush_runs_in_the_append() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(
        d.path(),
        LogConfig {
            flush_messages: 1,
            ..logical_clock_config()
        },
    )
    .expect("open");
    let sole = Assignment {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
    };
    let p = Partition::new(tp(), TopicId(uuid::Uuid::nil()), 1, log, sole, 1, None);
    let appended = p.append(&batch(2), Acks::All, 1).expect("append");
    assert!(appended.flush.is_none());
    assert_eq!(p.subscribe_flushed().borrow().durable, 2);
    assert_eq!(p.take_log().expect("log").recovery_point(), 2);
}
