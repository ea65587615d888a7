//! The broker's side of the transaction coordinator (`fjord-coordinator`'s
//! `TransactionService`): it supplies `__transaction_state` to the
//! coordinator runtime through the same writer as `__consumer_offsets`,
//! forwards leadership moves of its partitions, hands out producer ids
//! from this broker's blocks ([`BrokerProducerIds`]), writes the markers
//! of committed decisions ([`ReplicaMarkerSender`]), and offers the
//! transaction APIs as a service ([`TransactionCoordinatorAdapter`]),
//! which creates `__transaction_state` (compacted) on first use.
//!
//! The gateway's transaction handlers call the adapter (the client APIs,
//! DescribeTransactions, ListTransactions) and, for WriteTxnMarkers from
//! a client (Admin `abortTransaction`), the [`LocalMarkerWriter`].

mod markers;
mod peers;
mod producer_ids;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use fjord_coordinator::runtime::{TransactionService, TransactionServiceConfig, system_clock};
use fjord_coordinator::txn::{
    EndTxnRequest, InitProducerIdRequest, ListTransactionsData, ListTransactionsFilter,
    ProducerIdAllocator, ProducerIdAndEpoch, TRANSACTION_STATE, TransactionDescription, TxnError,
    TxnProducer,
};
use fjord_types::{BrokerId, TopicPartition};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminService;
use crate::broker::Broker;
use crate::group_service::writer::CoordinatorPartitionWriter;
use crate::internal_topics::{ensure_internal_topic, partition_leader};
use crate::metadata_cache::MetadataCache;
use crate::producer_ids::ProducerIdService;
use crate::replica_manager::ReplicaManager;
use crate::types::NewTopic;
pub use markers::{LocalMarkerWriter, MarkerAppend, ReplicaMarkerSender, marker_error_code};
pub use peers::PeerError;
use peers::Peers;
pub use producer_ids::BrokerProducerIds;
pub use verify::VerifyError;

/// The transaction APIs as the gateway will call them (Kafka's
/// `TransactionCoordinator` entry points in `KafkaApis`): the transaction
/// runtime over this broker's replicas, plus the metadata cache to find
/// coordinators and the admin service to create `__transaction_state`.
pub struct TransactionCoordinatorAdapter {
    node_id: BrokerId,
    service: TransactionService,
    admin: Arc<AdminService>,
    metadata: MetadataCache,
    /// The other brokers' `ReplicaService` (markers, verifications).
    peers: Arc<Peers>,
}

/// What the adapter is built from.
pub(crate) struct TxnAdapterParts {
    pub(crate) config: TransactionServiceConfig,
    pub(crate) node_id: BrokerId,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) markers: Arc<LocalMarkerWriter>,
    pub(crate) producer_ids: Arc<ProducerIdService>,
    pub(crate) admin: Arc<AdminService>,
    pub(crate) metadata: MetadataCache,
    pub(crate) peer_tls: fjord_rpc::PeerTls,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
}

impl TransactionCoordinatorAdapter {
    /// The runtime's loads and markers run on the broker's tasks and stop
    /// with them.
    pub(crate) fn new(parts: TxnAdapterParts) -> Self {
        let writer = Arc::new(CoordinatorPartitionWriter {
            replicas: parts.replicas.clone(),
        });
        let allocator: Arc<Mutex<dyn ProducerIdAllocator + Send>> =
            Arc::new(Mutex::new(BrokerProducerIds::new(
                parts.producer_ids,
                parts.tasks.clone(),
                parts.cancel.clone(),
            )));
        let peers = Arc::new(Peers::new(parts.metadata.clone(), parts.peer_tls));
        let sender = Arc::new(ReplicaMarkerSender {
            node_id: parts.node_id,
            local: parts.markers,
            peers: peers.clone(),
        });
        TransactionCoordinatorAdapter {
            node_id: parts.node_id,
            peers,
            service: TransactionService::new(
                parts.config,
                writer,
                allocator,
                sender,
                parts.tasks,
                parts.cancel,
                system_clock(),
            ),
            admin: parts.admin,
            metadata: parts.metadata,
        }
    }

    /// The transaction runtime (shard status, describe; tests).
    pub fn service(&self) -> &TransactionService {
        &self.service
    }

    /// Create `__transaction_state` if it does not exist yet, with
    /// `transaction.state.log.replication.factor` replicas and
    /// `transaction.state.log.min.isr` (Kafka's
    /// `TransactionStateManager.transactionTopicConfigs`). While fewer
    /// brokers are unfenced, nothing is created and the caller gets
    /// COORDINATOR_NOT_AVAILABLE (retriable).
    async fn ensure_transaction_state_topic(&self) -> Result<(), TxnError> {
        let config = self.service.config();
        let topic = NewTopic {
            name: TRANSACTION_STATE.to_string(),
            num_partitions: config.num_partitions,
            replication_factor: config.replication_factor,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    config.segment_bytes.to_string(),
                ),
                (
                    "min.insync.replicas".to_string(),
                    config.min_isr.to_string(),
                ),
            ]),
        };
        ensure_internal_topic(&self.admin, &self.metadata.image(), topic)
            .await
            .map_err(|err| {
                tracing::debug!(%err, "{TRANSACTION_STATE} not available");
                TxnError::CoordinatorNotAvailable
            })
    }

    /// FindCoordinator(TRANSACTION): the leader of the id's
    /// `__transaction_state` partition.
    pub async fn find_coordinator(&self, transactional_id: &str) -> Result<BrokerId, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::EmptyTransactionalId);
        }
        self.ensure_transaction_state_topic().await?;
        let partition = self.service.partition_of(transactional_id);
        partition_leader(&self.metadata.image(), TRANSACTION_STATE, partition)
            .ok_or(TxnError::CoordinatorNotAvailable)
    }

    pub async fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        if req.transactional_id.is_some() {
            self.ensure_transaction_state_topic().await?;
        }
        self.service.init_producer_id(req).await
    }

    pub async fn add_partitions(
        &self,
        producer: TxnProducer,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        self.ensure_transaction_state_topic().await?;
        self.service.add_partitions(producer, partitions).await
    }

    pub async fn add_offsets(&self, producer: TxnProducer, group_id: &str) -> Result<(), TxnError> {
        self.ensure_transaction_state_topic().await?;
        self.service.add_offsets(producer, group_id).await
    }

    pub async fn end_txn(&self, req: EndTxnRequest) -> Result<ProducerIdAndEpoch, TxnError> {
        self.ensure_transaction_state_topic().await?;
        self.service.end_txn(req).await
    }

    /// DescribeTransactions of one id: NOT_COORDINATOR where this broker
    /// does not lead the id's partition (`__transaction_state` is not
    /// created for a read).
    pub async fn describe(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, TxnError> {
        self.service.describe(transactional_id).await
    }

    /// ListTransactions over the `__transaction_state` partitions this
    /// broker leads.
    pub async fn list(
        &self,
        filter: &ListTransactionsFilter,
    ) -> Result<ListTransactionsData, TxnError> {
        self.service.list(filter).await
    }
}

impl Broker {
    /// The transaction coordinator's background work: its timers, and its
    /// shard loads following this broker's leadership of
    /// `__transaction_state`.
    pub(crate) fn spawn_transaction_coordinator(&self) {
        self.spawn_coordinator_runtime(self.txns.service().runtime().clone());
    }
}
