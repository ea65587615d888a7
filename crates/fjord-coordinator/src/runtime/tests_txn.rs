//! The transaction coordinator on the runtime, against a fake partition
//! writer and a fake marker sender: a commit writes PrepareCommit, answers
//! once it is durable, then sends the markers and writes CompleteCommit; a
//! failed append reverts and answers Kafka's error; loads answer
//! COORDINATOR_LOAD_IN_PROGRESS; leadership moving away and back replays
//! `__transaction_state` and resumes the markers of a prepared transaction.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fake_writer::{FakeWriter, Fault};
use super::*;
use crate::txn::test_support::{CountingAllocator, tps};
use crate::txn::{
    EndTxnRequest, InitProducerIdRequest, ListTransactionsFilter, ProducerIdAndEpoch,
    TransactionResult, TransactionState, TxnConfig, TxnError, TxnProducer, TxnRecord, codec,
};

const PARTITIONS: i32 = 4;
const ID: &str = "txn-a";

/// Records the markers it is asked for; refuses them (retriably) while
/// `refuse` is set.
#[derive(Default)]
struct FakeSender {
    written: Mutex<Vec<MarkerWrite>>,
    refuse: AtomicBool,
}

impl FakeSender {
    fn written(&self) -> Vec<MarkerWrite> {
        self.written.lock().expect("lock").clone()
    }
}

impl MarkerSender for FakeSender {
    fn write_marker(&self, marker: MarkerWrite) -> BoxFuture<'_, Result<(), MarkerError>> {
        Box::pin(async move {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(MarkerError::Retriable {
                    tp: marker.tp,
                    source: Arc::new(std::io::Error::other("leader unknown")),
                });
            }
            self.written.lock().expect("lock").push(marker);
            Ok(())
        })
    }
}

struct Setup {
    service: TransactionService,
    writer: Arc<FakeWriter>,
    sender: Arc<FakeSender>,
    /// The `__transaction_state` partition of [`ID`].
    p: i32,
}

fn setup() -> Setup {
    let writer = FakeWriter::leading(0..PARTITIONS);
    let sender = Arc::new(FakeSender::default());
    let config = TransactionServiceConfig {
        num_partitions: PARTITIONS,
        marker_retry_backoff: Duration::from_millis(1),
        txn: TxnConfig::default(),
        ..TransactionServiceConfig::default()
    };
    let allocator: Arc<Mutex<dyn crate::txn::ProducerIdAllocator + Send>> =
        Arc::new(Mutex::new(CountingAllocator::default()));
    let service = TransactionService::new(
        config,
        writer.clone(),
        allocator,
        sender.clone(),
        TaskTracker::new(),
        CancellationToken::new(),
        system_clock(),
    );
    let p = service.partition_of(ID);
    Setup {
        service,
        writer,
        sender,
        p,
    }
}

/// Wait (bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn started() -> Setup {
    let s = setup();
    s.service.rescan();
    let runtime = s.service.runtime().clone();
    eventually("shards load", || {
        (0..PARTITIONS).all(|p| runtime.shard_status(p) == Some(ShardStatus::Active))
    })
    .await;
    s
}

/// The states written to `partition`, in order.
fn states(writer: &FakeWriter, partition: i32) -> Vec<TransactionState> {
    writer
        .records(partition)
        .iter()
        .filter_map(|r| {
            let key = r.key.as_deref()?;
            match codec::decode(key, r.value.as_deref()).expect("decodable") {
                Some(TxnRecord::Metadata { value, .. }) => Some(value.state),
                _ => None,
            }
        })
        .collect()
}

/// Wait until the id's partition holds exactly one committed transaction:
/// Empty, Ongoing, PrepareCommit, CompleteCommit.
async fn committed_once(s: &Setup) {
    eventually("CompleteCommit written", || {
        states(&s.writer, s.p).last() == Some(&TransactionState::CompleteCommit)
    })
    .await;
    assert_eq!(
        states(&s.writer, s.p),
        [
            TransactionState::Empty,
            TransactionState::Ongoing,
            TransactionState::PrepareCommit,
            TransactionState::CompleteCommit,
        ]
    );
}

fn init_req() -> InitProducerIdRequest {
    InitProducerIdRequest {
        transactional_id: Some(ID.to_string()),
        transaction_timeout_ms: 60_000,
        expected: None,
    }
}

fn producer(pid: ProducerIdAndEpoch) -> TxnProducer {
    TxnProducer {
        transactional_id: ID.to_string(),
        producer_id: pid.producer_id,
        producer_epoch: pid.epoch,
    }
}

fn commit(pid: ProducerIdAndEpoch) -> EndTxnRequest {
    EndTxnRequest {
        transactional_id: ID.to_string(),
        producer_id: pid.producer_id,
        producer_epoch: pid.epoch,
        result: TransactionResult::Commit,
        client_transaction_version: 1,
    }
}

fn data_partitions() -> BTreeSet<fjord_types::TopicPartition> {
    tps(&[("data", 0), ("data", 1)])
}

/// InitProducerId and AddPartitionsToTxn of `data-0`, `data-1`.
async fn ongoing(service: &TransactionService) -> ProducerIdAndEpoch {
    let pid = service.init_producer_id(init_req()).await.expect("init");
    service
        .add_partitions(producer(pid), data_partitions())
        .await
        .expect("add partitions");
    pid
}

#[tokio::test]
async fn commit_writes_prepare_then_markers_then_complete() {
    let s = started().await;
    let pid = ongoing(&s.service).await;
    s.service.end_txn(commit(pid)).await.expect("end txn");

    committed_once(&s).await;
    let mut marked: Vec<_> = s.sender.written().into_iter().map(|m| m.tp).collect();
    marked.sort();
    assert_eq!(marked, data_partitions().into_iter().collect::<Vec<_>>());
    for marker in s.sender.written() {
        assert_eq!(marker.result, TransactionResult::Commit);
        assert_eq!(
            (marker.producer_id, marker.producer_epoch),
            (pid.producer_id, pid.epoch)
        );
        // The `__transaction_state` partition's leader epoch.
        assert_eq!(marker.coordinator_epoch, 1);
    }
    let described = s.service.describe(ID).await.expect("describe");
    assert_eq!(described.state, TransactionState::CompleteCommit);
}

#[tokio::test]
async fn end_txn_answers_only_once_prepare_is_durable() {
    let s = started().await;
    let pid = ongoing(&s.service).await;
    s.writer.set_fault(s.p, Some(Fault::Stall));

    let stalled = s.writer.stalled.notified();
    let service = s.service.clone();
    let end = tokio::spawn(async move { service.end_txn(commit(pid)).await });
    stalled.await;
    // The PrepareCommit append waits: no answer, no marker, and reads see
    // the last committed state.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!end.is_finished());
    assert!(s.sender.written().is_empty());
    let during = s.service.describe(ID).await.expect("describe");
    assert_eq!(during.state, TransactionState::Ongoing);

    s.writer.set_fault(s.p, None);
    s.writer.release.notify_one();
    end.await.expect("task").expect("end txn");
    eventually("markers then CompleteCommit", || {
        s.sender.written().len() == 2
            && states(&s.writer, s.p).last() == Some(&TransactionState::CompleteCommit)
    })
    .await;
}

#[tokio::test]
async fn a_failed_append_reverts_and_answers_kafkas_error() {
    let s = started().await;
    let pid = ongoing(&s.service).await;
    let table = [
        (Fault::NotEnoughReplicas, TxnError::CoordinatorNotAvailable),
        (Fault::NotLeader, TxnError::NotCoordinator),
        (Fault::Storage, TxnError::NotCoordinator),
        (Fault::TooLarge, TxnError::UnknownServerError),
    ];
    for (fault, error) in table {
        s.writer.set_fault(s.p, Some(fault));
        assert_eq!(
            s.service.end_txn(commit(pid)).await,
            Err(error),
            "{fault:?}"
        );
        let after = s.service.describe(ID).await.expect("describe");
        assert_eq!(
            after.state,
            TransactionState::Ongoing,
            "{fault:?}: reverted"
        );
        assert_eq!(after.partitions, data_partitions());
        assert!(s.sender.written().is_empty(), "{fault:?}: no marker");
    }
    s.writer.set_fault(s.p, None);
    s.service.end_txn(commit(pid)).await.expect("end txn");
    committed_once(&s).await;
}

#[tokio::test]
async fn list_reads_every_loaded_shard_with_filters_and_during_a_write() {
    let s = started().await;
    let pid = ongoing(&s.service).await;
    let other = "txn-other";
    assert_ne!(s.service.partition_of(other), s.p, "two shards");
    let other_pid = s
        .service
        .init_producer_id(InitProducerIdRequest {
            transactional_id: Some(other.into()),
            ..init_req()
        })
        .await
        .expect("init");
    let list = |states: &[&str], producer_ids: &[i64], duration_ms| {
        let filter = ListTransactionsFilter {
            states: states.iter().map(|s| s.to_string()).collect(),
            producer_ids: producer_ids.iter().copied().collect(),
            duration_ms,
        };
        let service = s.service.clone();
        async move {
            let mut listed = service.list(&filter).await.expect("list");
            listed
                .transactions
                .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            let rows: Vec<(String, i64, TransactionState)> = listed
                .transactions
                .into_iter()
                .map(|t| (t.transactional_id, t.producer_id, t.state))
                .collect();
            (rows, listed.unknown_state_filters)
        }
    };
    let a = (ID.to_string(), pid.producer_id, TransactionState::Ongoing);
    let b = (
        other.to_string(),
        other_pid.producer_id,
        TransactionState::Empty,
    );

    // Phase: filters.
    assert_eq!(
        list(&[], &[], -1).await,
        (vec![a.clone(), b.clone()], vec![])
    );
    assert_eq!(
        list(&["Ongoing", "Bogus"], &[], -1).await,
        (vec![a.clone()], vec!["Bogus".to_string()])
    );
    assert_eq!(
        list(&[], &[other_pid.producer_id], -1).await.0,
        vec![b.clone()]
    );
    // Running for longer than an hour (v1 DurationFilter): not the open
    // transaction; the Empty id has no start time (-1) and passes, as in
    // Kafka's `listTransactionStates`.
    assert_eq!(list(&[], &[], 3_600_000).await.0, vec![b.clone()]);

    // Phase: a write in flight on the id's shard; the list does not wait
    // behind it and shows the state before it.
    s.writer.set_fault(s.p, Some(Fault::Stall));
    let stalled = s.writer.stalled.notified();
    let service = s.service.clone();
    let end = tokio::spawn(async move { service.end_txn(commit(pid)).await });
    stalled.await;
    let during = tokio::time::timeout(Duration::from_secs(1), list(&[], &[], -1))
        .await
        .expect("list does not wait behind a write");
    assert_eq!(during.0, vec![a, b]);
    s.writer.set_fault(s.p, None);
    s.writer.release.notify_one();
    end.await.expect("task").expect("end txn");
}

#[tokio::test]
async fn requests_during_a_load_get_load_in_progress() {
    let s = setup();
    s.writer.hold_reads(s.p, true);
    s.service.rescan();
    let runtime = s.service.runtime().clone();
    eventually("load started", || s.writer.reads(s.p) > 0).await;
    assert_eq!(
        s.service.init_producer_id(init_req()).await,
        Err(TxnError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        s.service.describe(ID).await,
        Err(TxnError::CoordinatorLoadInProgress)
    );
    // A list while any led partition loads would look complete but is not.
    assert_eq!(
        s.service.list(&ListTransactionsFilter::default()).await,
        Err(TxnError::CoordinatorLoadInProgress)
    );
    s.writer.hold_reads(s.p, false);
    s.writer.release_reads.notify_one();
    eventually("loaded", || {
        runtime.shard_status(s.p) == Some(ShardStatus::Active)
    })
    .await;
    s.service.init_producer_id(init_req()).await.expect("init");
}

#[tokio::test]
async fn leadership_away_and_back_replays_transaction_state() {
    let s = started().await;
    let pid = ongoing(&s.service).await;

    s.writer.resign(s.p);
    s.service.runtime().on_resignation(s.p, Some(2));
    assert_eq!(
        s.service.describe(ID).await.map(|d| d.state),
        Err(TxnError::NotCoordinator)
    );

    s.writer.lead(s.p, 3);
    s.service.runtime().on_election(s.p, 3);
    let runtime = s.service.runtime().clone();
    eventually("reloaded", || {
        runtime.shard_status(s.p) == Some(ShardStatus::Active)
    })
    .await;
    let reloaded = s.service.describe(ID).await.expect("describe");
    assert_eq!(reloaded.state, TransactionState::Ongoing);
    assert_eq!(
        (reloaded.producer_id, reloaded.producer_epoch),
        (pid.producer_id, pid.epoch)
    );
    assert_eq!(reloaded.partitions, data_partitions());
    s.service
        .end_txn(commit(pid))
        .await
        .expect("end txn after reload");
}

#[tokio::test]
async fn a_reload_resumes_the_markers_of_a_prepared_transaction() {
    let s = started().await;
    let pid = ongoing(&s.service).await;
    s.sender.refuse.store(true, Ordering::SeqCst);
    s.service.end_txn(commit(pid)).await.expect("end txn");

    // The markers cannot be written; leadership moves away and back.
    s.writer.resign(s.p);
    s.service.runtime().on_resignation(s.p, Some(2));
    s.writer.lead(s.p, 3);
    s.sender.refuse.store(false, Ordering::SeqCst);
    s.service.runtime().on_election(s.p, 3);

    eventually("CompleteCommit after the reload", || {
        states(&s.writer, s.p).last() == Some(&TransactionState::CompleteCommit)
    })
    .await;
    // Written by the new shard, with its coordinator epoch.
    let written = s.sender.written();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|m| m.coordinator_epoch == 3));
}

#[tokio::test]
async fn an_unreplicated_prepare_is_reverted_until_a_reload_acts_on_it() {
    let s = started().await;
    let pid = ongoing(&s.service).await;

    // PrepareCommit reaches the log but is not replicated in time: the
    // client hears COORDINATOR_NOT_AVAILABLE, memory stays Ongoing (as
    // Kafka's TransactionStateManager), and no marker goes out.
    s.writer.set_fault(s.p, Some(Fault::TimeOut));
    assert_eq!(
        s.service.end_txn(commit(pid)).await,
        Err(TxnError::CoordinatorNotAvailable)
    );
    s.writer.set_fault(s.p, None);
    assert_eq!(
        states(&s.writer, s.p).last(),
        Some(&TransactionState::PrepareCommit)
    );
    let after = s.service.describe(ID).await.expect("describe");
    assert_eq!(after.state, TransactionState::Ongoing);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(s.sender.written().is_empty());

    // The log's PrepareCommit (committed after all) is acted on by the
    // next load: markers, then CompleteCommit.
    s.writer.resign(s.p);
    s.service.runtime().on_resignation(s.p, Some(2));
    s.writer.lead(s.p, 3);
    s.service.runtime().on_election(s.p, 3);
    eventually("CompleteCommit after the reload", || {
        states(&s.writer, s.p).last() == Some(&TransactionState::CompleteCommit)
    })
    .await;
    assert_eq!(s.sender.written().len(), 2);
}
