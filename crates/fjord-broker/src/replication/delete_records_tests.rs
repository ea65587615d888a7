//! DeleteRecords between a leader and a follower driven through the same
//! calls the fetch service and the fetcher make: the leader moves its log
//! start, the follower adopts it from the next fetch response and reports
//! it in the fetch after, and only then does the request complete.

use std::sync::Arc;
use std::time::Duration;

use fjord_log::IsolationLevel;
use fjord_log::testing::batch;
use fjord_types::TopicPartition;

use super::tests::{assignment, open, round, tp};
use crate::OffsetSpec;
use crate::error::PartitionError;
use crate::replica_manager::ReplicaManager;
use crate::types::Acks;

fn manager() -> Arc<ReplicaManager> {
    Arc::new(ReplicaManager::new(
        1,
        crate::log_dir_failure::LogDirFailure::new("/nonexistent"),
    ))
}

#[tokio::test]
async fn delete_records_completes_once_the_isr_moved_its_log_start() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Arc::new(open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None));
    let follower = open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None);
    // Phase 1: six records, replicated and committed.
    for _ in 0..3 {
        leader.append(&batch(2), Acks::All, 0).expect("append");
    }
    for now in 1..4 {
        round(&leader, &follower, 2, now);
    }
    assert_eq!(leader.high_watermark(), 6);

    // Phase 2: past the high watermark is refused and moves nothing.
    assert!(matches!(
        leader.delete_records_on_leader(7),
        Err(PartitionError::OffsetOutOfRange { requested: 7, .. })
    ));
    assert!(matches!(
        leader.delete_records_on_leader(-2),
        Err(PartitionError::OffsetOutOfRange { .. })
    ));
    assert_eq!(leader.log_start_offset(), Some(0));

    // Phase 3: delete below 4; the request waits for the follower.
    let replicas = manager();
    replicas.insert(leader.clone());
    let request = {
        let replicas = replicas.clone();
        tokio::spawn(async move {
            replicas
                .delete_records(vec![(tp(), 4)], Duration::from_secs(10))
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(5), async {
        while leader.log_start_offset() != Some(4) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the leader moved its log start");
    assert!(
        !request.is_finished(),
        "completed before the follower moved"
    );
    // The follower adopts the leader's log start from this response...
    round(&leader, &follower, 2, 10);
    assert_eq!(follower.log_start_offset(), Some(4));
    assert!(
        !request.is_finished(),
        "completed before the follower reported"
    );
    // ... and reports it in the next fetch.
    round(&leader, &follower, 2, 11);
    let results = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("completed")
        .expect("task");
    assert!(matches!(results[0].1, Ok(4)), "{:?}", results[0].1);

    // Phase 4: consumers see the new log start.
    assert!(matches!(
        leader.read(3, 1 << 20, true, -1, IsolationLevel::ReadUncommitted),
        Err(PartitionError::OffsetOutOfRange { log_start: 4, .. })
    ));
    let earliest = leader
        .list_offset(OffsetSpec::Earliest, -1, IsolationLevel::ReadUncommitted)
        .expect("list");
    assert_eq!(earliest.offset, 4);

    // Phase 5: -1 means the high watermark; without follower fetches the
    // request times out, though the leader's log start has moved.
    let results = replicas
        .delete_records(vec![(tp(), -1)], Duration::from_millis(100))
        .await;
    assert!(
        matches!(results[0].1, Err(PartitionError::RequestTimedOut)),
        "{:?}",
        results[0].1
    );
    assert_eq!(leader.log_start_offset(), Some(6));
    round(&leader, &follower, 2, 20);
    round(&leader, &follower, 2, 21);
    assert_eq!(follower.log_start_offset(), Some(6));
    // Below the current log start: a no-op answered with the low watermark.
    let results = replicas
        .delete_records(vec![(tp(), 2)], Duration::from_millis(100))
        .await;
    assert!(matches!(results[0].1, Ok(6)), "{:?}", results[0].1);
}

#[tokio::test]
async fn delete_records_errors_as_kafka() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Arc::new(open(d1.path(), 1, assignment(1, 0, 0, &[1, 2]), None));
    let follower = Arc::new(open(d2.path(), 2, assignment(1, 0, 0, &[1, 2]), None));
    let replicas = manager();
    replicas.insert(follower);
    let results = replicas
        .delete_records(
            vec![(tp(), 0), (TopicPartition::new("other", 0), 0)],
            Duration::from_millis(100),
        )
        .await;
    assert!(
        matches!(
            results[0].1,
            Err(PartitionError::NotLeaderOrFollower { leader: Some(1) })
        ),
        "{:?}",
        results[0].1
    );
    assert!(matches!(
        results[1].1,
        Err(PartitionError::UnknownTopicOrPartition)
    ));
    // A compact-only topic refuses with POLICY_VIOLATION.
    let compact = fjord_log::LogConfig {
        cleanup_policy: fjord_log::CleanupPolicy::Compact,
        ..fjord_log::LogConfig::default()
    };
    leader.update(assignment(1, 0, 0, &[1, 2]), compact, 1, 0);
    assert!(matches!(
        leader.delete_records_on_leader(0),
        Err(PartitionError::PolicyViolation { .. })
    ));
}
