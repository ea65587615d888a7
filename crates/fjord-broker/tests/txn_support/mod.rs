//! Helpers of the transaction coordinator tests: retrying its retriable
//! answers, the markers in a partition's log, a whole commit.

use std::collections::BTreeSet;
use std::time::Duration;

use fjord_broker::Broker;
use fjord_coordinator::runtime::visit_batches;
use fjord_coordinator::txn::{
    EndTxnRequest, InitProducerIdRequest, ProducerIdAndEpoch, TransactionResult, TransactionState,
    TxnError, TxnProducer,
};
use fjord_log::IsolationLevel;
use fjord_types::TopicPartition;
use tokio::time::Instant;

pub const CONVERGE: Duration = Duration::from_secs(20);
pub const ID: &str = "txn-1";

/// Retry `call` while it answers a retriable coordinator error (the topic
/// being created, its shard loading, a block of producer ids on its way).
pub async fn retried<T, F: Future<Output = Result<T, TxnError>>>(
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
pub fn markers(broker: &Broker, tp: &TopicPartition) -> Vec<(i64, Vec<u8>)> {
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

/// InitProducerId, AddPartitionsToTxn of `tp`, EndTxn(commit) on `broker`
/// (the transactional id's coordinator), then wait until the transaction
/// is CompleteCommit: the producer id and epoch.
pub async fn commit_one(broker: &Broker, tp: &TopicPartition) -> ProducerIdAndEpoch {
    let txns = broker.txns().clone();
    let pid = retried("InitProducerId", || {
        txns.init_producer_id(InitProducerIdRequest {
            transactional_id: Some(ID.into()),
            transaction_timeout_ms: 60_000,
            expected: None,
        })
    })
    .await;
    let producer = TxnProducer {
        transactional_id: ID.into(),
        producer_id: pid.producer_id,
        producer_epoch: pid.epoch,
    };
    retried("AddPartitionsToTxn", || {
        txns.add_partitions(producer.clone(), BTreeSet::from([tp.clone()]))
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
    let deadline = Instant::now() + CONVERGE;
    loop {
        let done = txns
            .service()
            .describe(ID)
            .await
            .is_ok_and(|d| d.state == TransactionState::CompleteCommit);
        if done {
            return pid;
        }
        assert!(Instant::now() < deadline, "transaction did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The key of a COMMIT marker: version 0, type 1.
pub const COMMIT_KEY: [u8; 4] = [0, 0, 0, 1];
