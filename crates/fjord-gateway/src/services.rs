//! What the handlers answer from: the owned services of a node, wired by
//! `fjord-server`. A handler reaches the one service its api belongs to
//! (`svc.replicas` for produce and fetch, `svc.admin` for topic
//! administration, …), so a new api lands in a service, not on a facade.

use std::sync::Arc;

use fjord_broker::admin::AdminService;
use fjord_broker::authorizer::Authorizer;
use fjord_broker::group_service::GroupCoordinatorAdapter;
use fjord_broker::metadata_cache::MetadataCache;
use fjord_broker::producer_ids::ProducerIdService;
use fjord_broker::quota::QuotaManager;
use fjord_broker::replica_manager::ReplicaManager;
use fjord_broker::scram_credentials::ScramCredentialStore;
use fjord_broker::txn_service::{LocalMarkerWriter, TransactionCoordinatorAdapter};
use fjord_broker::{Broker, BrokerConfig, Controller};
use fjord_types::BrokerId;

pub struct Services {
    /// This broker's settings (node id, defaults DescribeConfigs reports).
    pub config: BrokerConfig,
    /// The partitions hosted here: produce, fetch, ListOffsets,
    /// OffsetForLeaderEpoch.
    pub replicas: Arc<ReplicaManager>,
    /// The applied metadata image: Metadata, DescribeCluster, leader hints.
    pub metadata: MetadataCache,
    pub admin: Arc<AdminService>,
    pub producer_ids: Arc<ProducerIdService>,
    /// The group APIs (the group coordinator's front).
    pub groups: Arc<GroupCoordinatorAdapter>,
    /// The transaction APIs (the transaction coordinator's front).
    pub txns: Arc<TransactionCoordinatorAdapter>,
    /// Writes transaction markers on partitions led here (WriteTxnMarkers).
    pub markers: Arc<LocalMarkerWriter>,
    /// ACL checks (everything allowed unless the authorizer is on).
    pub authorizer: Arc<Authorizer>,
    /// SCRAM credentials SaslAuthenticate checks proofs against.
    pub scram_credentials: Arc<ScramCredentialStore>,
    /// Client quotas (nothing recorded unless some are set).
    pub quotas: Arc<QuotaManager>,
    /// For the active controller's id (Metadata, DescribeCluster).
    controller: Controller,
}

impl Services {
    /// The services of a started broker.
    pub fn of(broker: &Arc<Broker>) -> Self {
        Services {
            config: broker.config().clone(),
            replicas: broker.replicas().clone(),
            metadata: broker.metadata_cache().clone(),
            admin: broker.admin().clone(),
            producer_ids: broker.producer_ids().clone(),
            groups: broker.groups().clone(),
            txns: broker.txns().clone(),
            markers: broker.markers().clone(),
            authorizer: broker.authorizer().clone(),
            scram_credentials: broker.scram_credentials().clone(),
            quotas: broker.quotas().clone(),
            controller: broker.controller().clone(),
        }
    }

    pub fn node_id(&self) -> BrokerId {
        self.config.node_id
    }

    /// The active controller, if the quorum has one.
    pub fn controller_id(&self) -> Option<BrokerId> {
        self.controller.leader_id()
    }
}
