//! The transaction coordinator on a real single-node broker (not reachable
//! by clients yet): InitProducerId creates `__transaction_state`, its
//! shard loads on leadership, and EndTxn(commit) writes PrepareCommit,
//! then the COMMIT marker into the data partition this broker leads
//! (through `ReplicaManager::append_txn_marker`), then CompleteCommit.

mod txn_support;

use std::time::Duration;

use fjord_broker::{Broker, BrokerConfig, NewTopic};
use fjord_controller::{Controller, ControllerConfig};
use fjord_coordinator::runtime::TransactionServiceConfig;
use fjord_coordinator::txn::TRANSACTION_STATE;
use fjord_types::TopicPartition;
use txn_support::{COMMIT_KEY, commit_one, markers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_marks_a_locally_led_partition() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let controller = Controller::start(ControllerConfig::single_voter(
            1,
            dir.path().join("controller"),
            "127.0.0.1:1".into(),
        ))
        .await
        .expect("controller");
        let mut config = BrokerConfig::new(1, dir.path().join("logs"), "127.0.0.1".into(), 9092);
        config.transactions = TransactionServiceConfig {
            num_partitions: 2,
            replication_factor: 1,
            min_isr: 1,
            ..TransactionServiceConfig::default()
        };
        let broker = Broker::start(config, controller.clone())
            .await
            .expect("broker");

        let data = TopicPartition::new("orders", 0);
        let created = broker
            .admin()
            .create_topics(
                vec![NewTopic {
                    name: "orders".into(),
                    num_partitions: 1,
                    replication_factor: 1,
                    assignments: Vec::new(),
                    configs: Default::default(),
                }],
                false,
            )
            .await;
        assert!(created.iter().all(|(_, r)| r.is_ok()), "{created:?}");

        let pid = commit_one(&broker, &data).await;
        assert!(broker.metadata().topic_ids.contains_key(TRANSACTION_STATE));
        assert_eq!(
            markers(&broker, &data),
            vec![(pid.producer_id, COMMIT_KEY.to_vec())]
        );

        broker.shutdown().await;
        controller.shutdown().await.expect("controller shutdown");
    })
    .await
    .expect("test timed out");
}
