//! The transaction coordinator on a real single-node broker (not reachable
//! by clients yet): InitProducerId creates `__transaction_state`, its
//! shard loads on leadership, and EndTxn(commit) writes PrepareCommit,
//! then the COMMIT marker into the data partition this broker leads
//! (through `ReplicaManager::append_txn_marker`), then CompleteCommit.

use std::collections::BTreeSet;
use std::time::Duration;

use fjord_broker::{Broker, BrokerConfig, NewTopic};
use fjord_controller::{Controller, ControllerConfig};
use fjord_coordinator::runtime::{TransactionServiceConfig, visit_batches};
use fjord_coordinator::txn::{
    EndTxnRequest, InitProducerIdRequest, ProducerIdAndEpoch, TRANSACTION_STATE, TransactionResult,
    TransactionState, TxnError, TxnProducer,
};
use fjord_log::IsolationLevel;
use fjord_types::TopicPartition;
use tokio::time::Instant;

const CONVERGE: Duration = Duration::from_secs(20);
const ID: &str = "txn-1";

/// Retry `call` while it answers a retriable coordinator error (the topic
/// being created, its shard loading, a block of producer ids on its way).
async fn retried<T, F: Future<Output = Result<T, TxnError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        match call().await {
            Ok(v) => return v,
            Err(
                TxnError::CoordinatorNotAvailable
                | TxnError::CoordinatorLoadInProgress
                | TxnError::NotCoordinator,
            ) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(err) => panic!("{what}: {err}"),
        }
    }
}

/// The control records (markers) of `tp` as (producer id, key bytes).
fn markers(broker: &Broker, tp: &TopicPartition) -> Vec<(i64, Vec<u8>)> {
    let Some(partition) = broker.replicas().get(tp) else {
        return Vec::new();
    };
    let Ok(data) = partition.read(0, 1 << 20, true, -1, IsolationLevel::ReadUncommitted) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    visit_batches(data.records, &mut |r| {
        if r.control {
            found.push((r.producer_id, r.key.as_deref().unwrap_or_default().to_vec()));
        }
    })
    .expect("decodable");
    found
}

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

        let txns = broker.txns().clone();
        let pid: ProducerIdAndEpoch = retried("InitProducerId", || {
            txns.init_producer_id(InitProducerIdRequest {
                transactional_id: Some(ID.into()),
                transaction_timeout_ms: 60_000,
                expected: None,
            })
        })
        .await;
        assert!(broker.metadata().topic_ids.contains_key(TRANSACTION_STATE));
        let producer = TxnProducer {
            transactional_id: ID.into(),
            producer_id: pid.producer_id,
            producer_epoch: pid.epoch,
        };
        retried("AddPartitionsToTxn", || {
            txns.add_partitions(producer.clone(), BTreeSet::from([data.clone()]))
        })
        .await;
        retried("EndTxn", || {
            txns.end_txn(EndTxnRequest {
                transactional_id: ID.into(),
                producer_id: pid.producer_id,
                producer_epoch: pid.epoch,
                result: TransactionResult::Commit,
                client_transaction_version: 1,
            })
        })
        .await;

        // The COMMIT marker (key: version 0, type 1) lands in `orders-0`,
        // and the transaction completes.
        let deadline = Instant::now() + CONVERGE;
        loop {
            let done = txns
                .service()
                .describe(ID)
                .await
                .is_ok_and(|d| d.state == TransactionState::CompleteCommit);
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "transaction did not complete");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            markers(&broker, &data),
            vec![(pid.producer_id, vec![0, 0, 0, 1])]
        );

        broker.shutdown().await;
        controller.shutdown().await.expect("controller shutdown");
    })
    .await
    .expect("test timed out");
}
