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

fn assignment(leader: BrokerId, epoch: i32, partition_epoch: i32, isr: &[BrokerId]) -> Assignment {
    Assignment {
        leader,
        leader_epoch: epoch,
        partition_epoch,
        replicas: vec![1, 2],
        isr: isr.to_vec(),
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn open(
    dir: &std::path::Path,
    node: BrokerId,
    a: Assignment,
    checkpoint: Option<i64>,
) -> Partition {
    let log = Log::open(dir, LogConfig::default()).expect("open");
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
fn round(leader: &Partition, follower: &Partition, id: BrokerId, now: i64) -> Option<IsrProposal> {
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
    let config = LogConfig::default();
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
    two.update(assignment(2, 1, 1, &[2]), LogConfig::default(), 1, 10);
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
    let applied = follower.append_from_leader(0, &commit_marker(), 0, 1);
    assert!(applied.expect("follower append"));
    assert_eq!(follower.log_end_offset(), 1);
}

#[test]
fn fencing_by_leader_epoch() {
    let d = tempfile::tempdir().unwrap();
    let p = open(d.path(), 1, assignment(1, 4, 0, &[1]), None);
    assert!(p.read(0, 100, true, -1, IsolationLevel::ReadUncommitted).is_ok());
    assert!(p.read(0, 100, true, 4, IsolationLevel::ReadUncommitted).is_ok());
    assert!(matches!(
        p.read(0, 100, true, 3, IsolationLevel::ReadUncommitted),
        Err(PartitionError::FencedLeaderEpoch {
            given: 3,
            current: 4
        })
    ));
    assert!(matches!(
        p.list_offset(crate::OffsetSpec::Latest, 5, IsolationLevel::ReadUncommitted),
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
    partition.update(assignment(2, 1, 1, &[2]), LogConfig::default(), 1, 1);
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
