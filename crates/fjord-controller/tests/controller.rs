//! A real controller node on a temp dir: start, write, restart, snapshot, purge.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fjord_controller::Controller;
use fjord_controller::ControllerConfig;
use fjord_controller::ControllerError;
use fjord_controller::Listener;
use fjord_controller::MetadataCommand;
use fjord_controller::MetadataError;
use fjord_controller::MetadataImage;
use fjord_controller::MetadataResponse;
use fjord_controller::SNAPSHOT_DIR;
use fjord_controller::assign_replicas;
use fjord_types::BrokerId;
use fjord_types::TopicId;
use openraft::async_runtime::WatchReceiver;
use uuid::Uuid;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}

fn config(dir: &Path, snapshot_every_logs: u64) -> ControllerConfig {
    ControllerConfig {
        election_timeout_ms: (150, 300),
        heartbeat_interval_ms: 50,
        snapshot_every_logs,
        ..ControllerConfig::single_voter(1, dir.to_owned(), "127.0.0.1:9093".to_owned())
    }
}

fn register(broker_id: BrokerId) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + broker_id as u16,
        }],
        rack: None,
    }
}

async fn create_topic(c: &Controller, name: &str, partitions: i32, rf: i16) -> TopicId {
    let image = c.image().borrow().clone();
    let assignment = assign_replicas(&image, partitions, rf, 0).expect("placement");
    let topic_id = TopicId::random();
    let resp = c
        .write(MetadataCommand::CreateTopic {
            topic_id,
            name: name.into(),
            partitions: assignment,
            configs: BTreeMap::from([("retention.ms".into(), "60000".into())]),
        })
        .await
        .expect("write");
    assert_eq!(resp, MetadataResponse::TopicCreated { topic_id });
    topic_id
}

/// The parts of the image that must survive a restart (the offset may move on: a new
/// leader term appends a blank entry).
fn durable(image: &MetadataImage) -> MetadataImage {
    MetadataImage {
        metadata_offset: 0,
        ..image.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_the_image_without_reinitializing() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");

        // Phase 1: fresh start initializes the quorum and the cluster id.
        let c = Controller::start(config(dir.path(), 1000))
            .await
            .expect("start");
        assert_eq!(c.node_id(), 1);
        assert_eq!(c.leader_id(), Some(1));
        let cluster_id = c.image().borrow().cluster_id.clone();
        assert_eq!(cluster_id.len(), 22, "{cluster_id:?}");

        // Phase 2: brokers and topics.
        for b in 1..=3 {
            let resp = c.write(register(b)).await.expect("register");
            assert!(matches!(resp, MetadataResponse::BrokerRegistered { broker_id, .. } if broker_id == b));
        }
        let orders = create_topic(&c, "orders", 6, 3).await;
        create_topic(&c, "payments", 3, 2).await;
        let resp = c
            .write(MetadataCommand::CreateTopic {
                topic_id: TopicId::random(),
                name: "orders".into(),
                partitions: vec![vec![1]],
                configs: BTreeMap::new(),
            })
            .await
            .expect("write");
        assert_eq!(
            resp,
            MetadataResponse::Error(MetadataError::TopicAlreadyExists {
                name: "orders".into()
            })
        );
        let before = c.image().borrow().clone();
        let membership_before = c.raft().metrics().borrow_watched().membership_config.clone();
        assert_eq!(before.topics[&orders].partitions.len(), 6);
        assert_eq!(before.topics.len(), 2);

        // Phase 3: restart on the same directory.
        c.shutdown().await.expect("shutdown");
        assert!(matches!(
            c.write(register(4)).await,
            Err(ControllerError::Fatal { .. })
        ));
        drop(c);
        let c = Controller::start(config(dir.path(), 1000))
            .await
            .expect("restart");
        let after = c.image().borrow().clone();
        assert_eq!(after.cluster_id, cluster_id, "cluster re-initialized");
        let membership_after = c.raft().metrics().borrow_watched().membership_config.clone();
        assert_eq!(
            membership_after, membership_before,
            "quorum re-initialized: a new membership entry was written"
        );
        assert_eq!(durable(&after), durable(&before));
        // A restarted single voter may resume its old leadership without a new blank
        // entry, so the offset is at least where it was.
        assert!(after.metadata_offset >= before.metadata_offset);

        // Phase 4: it still takes writes.
        create_topic(&c, "after-restart", 1, 1).await;
        assert!(c.image().borrow().topic_by_name("after-restart").is_some());
        c.shutdown().await.expect("shutdown");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restore_on_restart() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Controller::start(config(dir.path(), 10))
            .await
            .expect("start");

        // Phase 1: many more entries than the snapshot interval.
        for b in 1..=3 {
            c.write(register(b)).await.expect("register");
        }
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(create_topic(&c, &format!("topic-{i}"), 2, 2).await);
        }
        for id in ids.iter().step_by(3) {
            let resp = c
                .write(MetadataCommand::DeleteTopic { topic_id: *id })
                .await
                .expect("delete");
            assert!(matches!(resp, MetadataResponse::TopicDeleted { .. }));
        }
        for id in ids.iter().skip(1).step_by(3) {
            let resp = c
                .write(MetadataCommand::AlterTopicConfigs {
                    topic_id: *id,
                    set: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
                    delete: vec!["retention.ms".into()],
                    expected: None,
                })
                .await
                .expect("alter");
            assert!(matches!(resp, MetadataResponse::TopicConfigsAltered { .. }));
        }
        let before = c.image().borrow().clone();
        assert_eq!(before.topics.len(), 40);

        // Phase 2: openraft snapshots and purges on its own.
        let metrics = c
            .raft()
            .wait(Some(Duration::from_secs(20)))
            .metrics(
                |m| {
                    m.snapshot.as_ref().is_some_and(|s| s.index() >= 60)
                        && m.purged.as_ref().is_some_and(|p| p.index() >= 40)
                },
                "snapshot and purge",
            )
            .await
            .expect("snapshot and purge");
        let purged = metrics.purged.expect("purged");
        // A later snapshot may be in flight, so count finished files only.
        let snapshot_files: Vec<String> = std::fs::read_dir(dir.path().join(SNAPSHOT_DIR))
            .expect("snapshot dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        assert!(
            (1..=2).contains(&snapshot_files.len()),
            "old snapshots are deleted: {snapshot_files:?}"
        );

        // Phase 3: restart from snapshot + log tail.
        c.shutdown().await.expect("shutdown");
        drop(c);
        let c = Controller::start(config(dir.path(), 10))
            .await
            .expect("restart");
        let after = c.image().borrow().clone();
        assert_eq!(durable(&after), durable(&before));
        let m = c.raft().metrics().borrow_watched().clone();
        assert!(
            m.purged
                .as_ref()
                .is_some_and(|p| p.index() >= purged.index()),
            "purge point lost: {:?}",
            m.purged
        );
        c.shutdown().await.expect("shutdown");
    })
    .await;
}
