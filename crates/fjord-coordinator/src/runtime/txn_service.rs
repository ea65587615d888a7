//! [`TransactionService`]: the transaction coordinator of one node, a
//! [`CoordinatorRuntime`] of [`TransactionCoordinator`] shards over
//! `__transaction_state`, plus the sending of the markers its committed
//! writes request (through the [`MarkerSender`] seam the node implements).
//!
//! Markers (Kafka's `TransactionMarkerChannelManager`):
//! - A write's marker requests are started only once its records
//!   (PrepareCommit/PrepareAbort) are committed; the reply to EndTxn goes
//!   out at the same moment, so a client hears of its commit only once the
//!   decision is durable.
//! - One task per partition of a request writes its marker with the
//!   shard's leader epoch as the coordinator epoch, retrying retriable
//!   failures while the shard still serves at that epoch; on success (or
//!   when the partition is gone) it calls
//!   [`TransactionCoordinator::marker_written`] as a write on the shard,
//!   whose last acknowledgement appends CompleteCommit/CompleteAbort.
//! - A shard unloaded meanwhile drops its markers: the next coordinator's
//!   load requests them again (partitions dedupe by coordinator epoch).
//!
//! Reads: [`TransactionService::describe`] (one id's shard) and
//! [`TransactionService::list`] (every loaded shard), from the state
//! before a write in flight, as the group reads.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::Duration;

use fjord_types::TopicPartition;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::coordinator_shard::{EffectSink, ShardId};
use super::{Cause, Clock, CoordinatorRuntime, Inner, PartitionWriter, RuntimeParts};
use crate::txn::{
    EndTxnRequest, InitProducerIdRequest, ListTransactionsData, ListTransactionsFilter,
    MarkerRequest, ProducerIdAllocator, ProducerIdAndEpoch, TRANSACTION_STATE,
    TransactionCoordinator, TransactionDescription, TransactionResult, TransactionState, TxnConfig,
    TxnError, TxnProducer, VerifyResult, partition_for,
};

/// Settings of the transaction coordinator runtime, with Kafka's names.
#[derive(Clone, Debug)]
pub struct TransactionServiceConfig {
    /// `transaction.state.log.num.partitions`.
    pub num_partitions: i32,
    /// `transaction.state.log.replication.factor`: the topic is created
    /// with exactly this many replicas, never fewer (COORDINATOR_NOT_AVAILABLE
    /// until enough brokers are unfenced), as `__consumer_offsets`.
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: u64,
    /// How long a write waits for its records to be replicated (Kafka
    /// appends `__transaction_state` records with `request.timeout.ms`).
    pub write_timeout: Duration,
    /// How long a marker waits to be committed on its partition, and the
    /// pause before a failed marker or acknowledgement is retried.
    pub marker_timeout: Duration,
    pub marker_retry_backoff: Duration,
    pub txn: TxnConfig,
}

impl Default for TransactionServiceConfig {
    fn default() -> Self {
        TransactionServiceConfig {
            num_partitions: 50,
            replication_factor: 3,
            min_isr: 2,
            segment_bytes: 100 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            marker_timeout: Duration::from_secs(30),
            marker_retry_backoff: Duration::from_millis(100),
            txn: TxnConfig::default(),
        }
    }
}

/// One marker to write: WriteTxnMarkers for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerWrite {
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TransactionResult,
    /// The leader epoch of the `__transaction_state` partition whose shard
    /// decided the transaction.
    pub coordinator_epoch: i32,
    /// How long the marker may wait to be committed on its partition.
    pub timeout: Duration,
}

/// Why a marker was not written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MarkerError {
    /// The partition no longer exists: there is nothing to mark, and the
    /// transaction goes on as if it were written (Kafka's rule).
    #[error("{tp} no longer exists")]
    PartitionGone { tp: TopicPartition },
    /// The partition refused the marker's producer or coordinator epoch:
    /// a newer producer or coordinator owns the transaction; stop sending.
    #[error("{tp}: marker fenced")]
    Fenced { tp: TopicPartition },
    /// Anything a retry may fix (not leader, too few replicas, timeout,
    /// leader unknown or remote and not reachable yet).
    #[error("{tp}: marker not written")]
    Retriable {
        tp: TopicPartition,
        #[source]
        source: Cause,
    },
}

/// Writes transaction markers to partition leaders (the node implements it).
pub trait MarkerSender: Send + Sync + 'static {
    /// Write `marker` on its partition's leader and wait until it is
    /// committed there (acks=all). Dropping the future abandons the wait.
    fn write_marker(&self, marker: MarkerWrite) -> BoxFuture<'_, Result<(), MarkerError>>;
}

/// The transaction coordinator of one node (cheap to clone: shared).
#[derive(Clone)]
pub struct TransactionService {
    config: Arc<TransactionServiceConfig>,
    runtime: CoordinatorRuntime<TransactionCoordinator>,
    allocator: Arc<StdMutex<dyn ProducerIdAllocator + Send>>,
}

/// The effect sink of the transaction shards: starts their markers.
struct MarkerDispatch {
    sender: Arc<dyn MarkerSender>,
    config: Arc<TransactionServiceConfig>,
    /// Set right after the runtime is built (weak: the runtime owns this).
    runtime: OnceLock<Weak<Inner<TransactionCoordinator>>>,
}

impl TransactionService {
    /// A runtime with no shard yet: the node calls [`rescan`](Self::rescan)
    /// once it follows its local replica changes.
    pub fn new(
        config: TransactionServiceConfig,
        writer: Arc<dyn PartitionWriter>,
        allocator: Arc<StdMutex<dyn ProducerIdAllocator + Send>>,
        sender: Arc<dyn MarkerSender>,
        tasks: TaskTracker,
        cancel: CancellationToken,
        clock: Clock,
    ) -> Self {
        let config = Arc::new(config);
        let dispatch = Arc::new(MarkerDispatch {
            sender,
            config: config.clone(),
            runtime: OnceLock::new(),
        });
        let txn = config.txn.clone();
        let runtime = CoordinatorRuntime::new(RuntimeParts {
            partitions: config.num_partitions,
            write_timeout: config.write_timeout,
            writer,
            clock,
            new_shard: Arc::new(move || TransactionCoordinator::new(txn.clone())),
            effects: dispatch.clone(),
            tasks,
            cancel,
        });
        let _ = dispatch.runtime.set(Arc::downgrade(&runtime.inner));
        TransactionService {
            config,
            runtime,
            allocator,
        }
    }

    pub fn config(&self) -> &TransactionServiceConfig {
        &self.config
    }

    /// The runtime: leadership changes, timers, shard status.
    pub fn runtime(&self) -> &CoordinatorRuntime<TransactionCoordinator> {
        &self.runtime
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.num_partitions)
    }

    /// The `__transaction_state` topic partition of `transactional_id`.
    pub fn state_partition(&self, transactional_id: &str) -> TopicPartition {
        TopicPartition::new(TRANSACTION_STATE, self.partition_of(transactional_id))
    }

    /// InitProducerId. Without a transactional id any node answers
    /// (Kafka's coordinator serves it without a partition).
    pub async fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        let Some(id) = req.transactional_id.clone() else {
            let mut idle = TransactionCoordinator::new(self.config.txn.clone());
            let mut allocator = self.allocator.lock().unwrap_or_else(|p| p.into_inner());
            return idle.init_producer_id(req, &mut *allocator, 0).reply;
        };
        let allocator = self.allocator.clone();
        self.runtime
            .write_to(self.partition_of(&id), move |c, now| {
                let mut allocator = allocator.lock().unwrap_or_else(|p| p.into_inner());
                c.init_producer_id(req, &mut *allocator, now)
            })
            .await?
    }

    /// AddPartitionsToTxn (v0-3) for one transactional id.
    pub async fn add_partitions(
        &self,
        producer: TxnProducer,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        self.runtime
            .write_to(self.partition_of(&producer.transactional_id), |c, now| {
                c.add_partitions(&producer, &partitions, now)
            })
            .await?
    }

    /// AddOffsetsToTxn.
    pub async fn add_offsets(&self, producer: TxnProducer, group_id: &str) -> Result<(), TxnError> {
        self.runtime
            .write_to(self.partition_of(&producer.transactional_id), |c, now| {
                c.add_offsets(&producer, group_id, now)
            })
            .await?
    }

    /// EndTxn: answered once Prepare* is committed; the markers start then.
    pub async fn end_txn(&self, req: EndTxnRequest) -> Result<ProducerIdAndEpoch, TxnError> {
        let allocator = self.allocator.clone();
        self.runtime
            .write_to(self.partition_of(&req.transactional_id), move |c, now| {
                let mut allocator = allocator.lock().unwrap_or_else(|p| p.into_inner());
                c.end_txn(&req, &mut *allocator, now)
            })
            .await?
    }

    /// DescribeTransactions of one id (a read of the last committed state).
    pub async fn describe(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, TxnError> {
        self.read(transactional_id, |c| c.describe(transactional_id))
            .await
    }

    /// KIP-890 part 1: whether `partitions` are in the producer's ongoing
    /// transaction, per partition (a read of the last committed state: a
    /// partition is verified only once its AddPartitionsToTxn committed).
    pub async fn verify(
        &self,
        producer: TxnProducer,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<VerifyResult, TxnError> {
        self.read(&producer.transactional_id, |c| {
            Ok(c.verify_partitions(&producer, &partitions))
        })
        .await
    }

    /// A read on the id's shard: from the state before a write in flight,
    /// without waiting behind it.
    async fn read<T>(
        &self,
        transactional_id: &str,
        read: impl Fn(&TransactionCoordinator) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        let cell = self
            .runtime
            .shard_for(self.partition_of(transactional_id))?;
        if let Some(before) = cell.during_write()? {
            return read(&before);
        }
        let locked = cell.lock(&self.runtime).await?;
        read(&locked.coordinator)
    }

    /// ListTransactions: the transactions of every loaded shard, i.e. of
    /// every `__transaction_state` partition this node leads (clients ask
    /// every broker and merge); COORDINATOR_LOAD_IN_PROGRESS while a led
    /// partition loads (the runtime's `read_loaded`, which ListGroups uses).
    pub async fn list(
        &self,
        filter: &ListTransactionsFilter,
    ) -> Result<ListTransactionsData, TxnError> {
        let now = self.runtime.now_ms();
        let read = |c: &TransactionCoordinator| c.list(filter, now);
        let shards = self.runtime.read_loaded(read, read).await?;
        let mut listed = ListTransactionsData {
            unknown_state_filters: filter
                .states
                .iter()
                .filter(|name| TransactionState::from_name(name).is_none())
                .cloned()
                .collect(),
            transactions: Vec::new(),
        };
        for shard in shards {
            listed.transactions.extend(shard.transactions);
        }
        Ok(listed)
    }

    /// Load or unload the shard a leadership move of a
    /// `__transaction_state` partition concerns.
    pub fn on_leadership_change(&self, change: super::LeadershipChange) {
        self.runtime.on_leadership_change(change);
    }

    /// Compare every partition with what the log says this node leads.
    pub fn rescan(&self) {
        self.runtime.rescan();
    }

    /// Run the shards' timers (transaction timeouts, id expiry) until the
    /// future is dropped.
    pub async fn run_timer(&self) {
        self.runtime.run_timer().await;
    }
}

impl EffectSink<TransactionCoordinator> for MarkerDispatch {
    fn committed(&self, shard: ShardId, markers: Vec<MarkerRequest>) {
        let Some(runtime) = self
            .runtime
            .get()
            .and_then(Weak::upgrade)
            .map(|inner| CoordinatorRuntime { inner })
        else {
            return;
        };
        for request in markers {
            for tp in &request.partitions {
                let task = MarkerTask {
                    runtime: runtime.clone(),
                    sender: self.sender.clone(),
                    backoff: self.config.marker_retry_backoff,
                    shard,
                    transactional_id: request.transactional_id.clone(),
                    marker: MarkerWrite {
                        tp: tp.clone(),
                        producer_id: request.producer_id,
                        producer_epoch: request.producer_epoch,
                        result: request.result,
                        coordinator_epoch: shard.leader_epoch,
                        timeout: self.config.marker_timeout,
                    },
                };
                let cancel = runtime.cancel().clone();
                runtime.tasks().spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = task.run() => {}
                    }
                });
            }
        }
    }

    /// The Prepare* was not written: no marker may be sent.
    fn failed(&self, _: ShardId, _: Vec<MarkerRequest>, _: &TxnError) {}
}

/// One partition's marker of one transaction, then its acknowledgement.
struct MarkerTask {
    runtime: CoordinatorRuntime<TransactionCoordinator>,
    sender: Arc<dyn MarkerSender>,
    backoff: Duration,
    shard: ShardId,
    transactional_id: String,
    marker: MarkerWrite,
}

impl MarkerTask {
    async fn run(self) {
        loop {
            if !self.runtime.serves(self.shard) {
                return;
            }
            match self.sender.write_marker(self.marker.clone()).await {
                Ok(()) | Err(MarkerError::PartitionGone { .. }) => break,
                Err(err @ MarkerError::Fenced { .. }) => {
                    tracing::info!(transactional_id = self.transactional_id, %err, "stop sending a fenced transaction marker");
                    return;
                }
                Err(err) => {
                    tracing::debug!(transactional_id = self.transactional_id, %err, "transaction marker not written; retrying");
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
        loop {
            let acked = self
                .runtime
                .write_at(self.shard, |c, now| {
                    c.marker_written(
                        &self.transactional_id,
                        self.marker.producer_id,
                        self.marker.producer_epoch,
                        &self.marker.tp,
                        now,
                    )
                })
                .await;
            match acked {
                Ok(()) | Err(TxnError::NotCoordinator) => return,
                // The Complete* append failed and was reverted: ack again.
                Err(_) => tokio::time::sleep(self.backoff).await,
            }
        }
    }
}
