//! The cluster metadata image: the controller's state machine, as plain data.
//!
//! [`MetadataImage::apply`] is the only way the image changes. It is pure (no I/O, no
//! clock, no randomness): the same image and command give the same result on every
//! replica and on every replay after a restart.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use fjord_types::BrokerId;
use fjord_types::TopicId;
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::acl::AclBinding;
use crate::acl::AclBindingFilter;
use crate::acl::AclImage;
use crate::command::MetadataCommand;
use crate::command::MetadataError;
use crate::command::MetadataResponse;
use crate::command::PartitionsError;
use crate::command::RegistrationError;
use crate::command::ReplicaAssignmentError;
use crate::command::TopicNameError;
use crate::quota::ClientQuotaAlteration;
use crate::quota::ClientQuotaImage;
use crate::scram::ScramDeletion;
use crate::scram::ScramImage;
use crate::scram::ScramUpsertion;

/// Kafka's maximum topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Committed cluster metadata as of `metadata_offset`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Set once by [`MetadataCommand::InitCluster`]; empty before that.
    pub cluster_id: String,
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Shared between consecutive images: a command changes a topic through
    /// [`MetadataImage::topic_mut`] (copy on write), so publishing an image clones
    /// pointers, and a topic the command did not touch keeps the very same `Arc`
    /// (brokers compare with `Arc::ptr_eq` to find what changed). Serialized as
    /// the plain topic (serde's `rc` feature), so snapshots read the same.
    pub topics: BTreeMap<TopicId, Arc<TopicImage>>,
    /// Topic ids by name; always the inverse of `topics[*].name`.
    pub topic_ids: BTreeMap<String, TopicId>,
    /// Raft log index of the last applied entry (0 before any).
    pub metadata_offset: u64,
    /// The first producer id not yet handed to a broker.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs (AlterBrokerConfigs). Absent from snapshots
    /// written before they existed: empty then.
    #[serde(default, skip_serializing_if = "DynamicBrokerConfigs::is_empty")]
    pub broker_configs: DynamicBrokerConfigs,
    /// Group configs by group id (AlterGroupConfigs); a group without any
    /// has no entry. Absent from older snapshots: empty then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Every ACL (CreateAcls/DeleteAcls). Shared between images like
    /// `topics`: an image whose command did not touch ACLs keeps the very
    /// same `Arc`, so brokers rebuild their authorizer only when it changed.
    /// Absent from older snapshots: empty then.
    #[serde(default, skip_serializing_if = "acls_empty")]
    pub acls: Arc<AclImage>,
    /// Every SCRAM credential (AlterUserScramCredentials), shared between
    /// images like `acls`: brokers republish their credential store only
    /// when the `Arc` changed. Absent from older snapshots: empty then.
    #[serde(default, skip_serializing_if = "scram_empty")]
    pub scram: Arc<ScramImage>,
    /// Every client quota (AlterClientQuotas). Shared between images like
    /// `acls`, so brokers rebuild their quota snapshot only when it changed.
    /// Absent from older snapshots: empty then.
    #[serde(default, skip_serializing_if = "client_quotas_empty")]
    pub client_quotas: Arc<ClientQuotaImage>,
}

fn acls_empty(acls: &Arc<AclImage>) -> bool {
    acls.is_empty()
}

fn scram_empty(scram: &Arc<ScramImage>) -> bool {
    scram.is_empty()
}

fn client_quotas_empty(quotas: &Arc<ClientQuotaImage>) -> bool {
    quotas.is_empty()
}

/// Dynamic broker configs by Kafka's broker config names, as the alter APIs
/// set them. Precedence (per broker over cluster default over the node's
/// static config) is the reader's business: see `fjord_config::resolve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// The cluster-wide defaults (Kafka's broker resource "").
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
    /// Per broker (Kafka's broker resource "N"); a broker without values has no entry.
    #[serde(default)]
    pub brokers: BTreeMap<BrokerId, BTreeMap<String, String>>,
}

impl DynamicBrokerConfigs {
    pub fn is_empty(&self) -> bool {
        self.cluster_default.is_empty() && self.brokers.is_empty()
    }

    /// The dynamic configs of `broker_id`, if it has any.
    pub fn broker(&self, broker_id: BrokerId) -> Option<&BTreeMap<String, String>> {
        self.brokers.get(&broker_id)
    }

    /// The configs of one resource: a broker's, or (`None`) the cluster default.
    pub fn resource(&self, broker_id: Option<BrokerId>) -> Option<&BTreeMap<String, String>> {
        match broker_id {
            Some(id) => self.broker(id),
            None => Some(&self.cluster_default),
        }
    }
}

/// A broker as registered with the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    /// Random per broker process start; a new one means the broker restarted.
    pub incarnation_id: Uuid,
    /// The metadata offset of the registration that created this incarnation.
    pub broker_epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and join no ISR: set when heartbeats stop
    /// (FenceBroker), on controlled shutdown and when a known broker registers a new
    /// incarnation; cleared by UnfenceBroker.
    pub fenced: bool,
}

/// One advertised endpoint of a broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A topic: its name, configs and partitions (indexed by partition id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: TopicId,
    pub name: String,
    pub partitions: Vec<PartitionRegistration>,
    /// Topic-level config overrides, by Kafka's config names.
    pub configs: BTreeMap<String, String>,
}

/// One partition's replicas and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// During a reassignment: the target replicas not yet in the original
    /// ones (Kafka's `addingReplicas`). Empty otherwise.
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    /// During a reassignment: the original replicas not in the target
    /// (Kafka's `removingReplicas`). Empty otherwise.
    #[serde(default)]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    /// A new partition: every replica in sync, the first replica leads, epochs 0.
    fn new(replicas: Vec<BrokerId>) -> Self {
        let leader = replicas.first().copied().unwrap_or(fjord_types::NO_BROKER);
        PartitionRegistration {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replication factor before any reassignment in progress (the
    /// replicas being added do not count yet).
    pub fn replication_factor(&self) -> usize {
        self.replicas
            .len()
            .saturating_sub(self.adding_replicas.len())
    }
}

impl MetadataImage {
    /// Look up a topic by name.
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids
            .get(name)
            .and_then(|id| self.topics.get(id).map(|t| &**t))
    }

    /// A topic to change: cloned first if an earlier (published) image still
    /// shares it, so that image stays as it was. Call it only for a change that
    /// will happen: a topic taken here gets a new `Arc`, which brokers read as
    /// "changed".
    pub(crate) fn topic_mut(&mut self, topic_id: TopicId) -> Option<&mut TopicImage> {
        self.topics.get_mut(&topic_id).map(Arc::make_mut)
    }

    /// A partition to change (see [`MetadataImage::topic_mut`]).
    pub(crate) fn partition_mut(
        &mut self,
        topic_id: TopicId,
        partition: i32,
    ) -> Option<&mut PartitionRegistration> {
        let index = usize::try_from(partition).ok()?;
        if self.topics.get(&topic_id)?.partitions.len() <= index {
            return None;
        }
        self.topic_mut(topic_id)?.partitions.get_mut(index)
    }

    /// A partition, read-only.
    pub fn partition(&self, topic_id: TopicId, partition: i32) -> Option<&PartitionRegistration> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(&topic_id)?.partitions.get(index)
    }

    /// Apply the committed entry at log `index`: validate `cmd` against this image and,
    /// if valid, mutate. `metadata_offset` advances to `index` either way.
    pub fn apply(&mut self, index: u64, cmd: &MetadataCommand) -> MetadataResponse {
        self.metadata_offset = index;
        let result = match cmd {
            MetadataCommand::InitCluster { cluster_id } => self.init_cluster(cluster_id),
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation_id,
                listeners,
                rack,
            } => self.register_broker(index, *broker_id, *incarnation_id, listeners, rack),
            MetadataCommand::CreateTopic {
                topic_id,
                name,
                partitions,
                configs,
            } => self.create_topic(*topic_id, name, partitions, configs),
            MetadataCommand::DeleteTopic { topic_id } => self.delete_topic(*topic_id),
            MetadataCommand::CreatePartitions {
                topic_id,
                new_partitions,
            } => self.create_partitions(*topic_id, new_partitions),
            MetadataCommand::AlterTopicConfigs {
                topic_id,
                set,
                delete,
                expected,
            } => self.alter_topic_configs(*topic_id, set, delete, expected.as_ref()),
            MetadataCommand::AlterBrokerConfigs {
                broker_id,
                set,
                delete,
                expected,
            } => self.alter_broker_configs(*broker_id, set, delete, expected.as_ref()),
            MetadataCommand::AlterGroupConfigs {
                group_id,
                set,
                delete,
                expected,
            } => self.alter_group_configs(group_id, set, delete, expected.as_ref()),
            MetadataCommand::AllocateProducerIds { broker_id, count } => {
                self.allocate_producer_ids(*broker_id, *count)
            }
            MetadataCommand::FenceBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataCommand::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => self.fence_broker(*broker_id, *broker_epoch),
            MetadataCommand::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.unfence_broker(*broker_id, *broker_epoch),
            MetadataCommand::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => self.alter_partition(
                *broker_id,
                *broker_epoch,
                *topic_id,
                *partition,
                crate::election::PartitionVersion {
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                },
                new_isr,
            ),
            MetadataCommand::ElectLeaders {
                election,
                partitions,
            } => Ok(self.elect_leaders(*election, partitions.as_deref())),
            MetadataCommand::AlterPartitionReassignments { reassignments } => {
                Ok(self.alter_partition_reassignments(reassignments))
            }
            MetadataCommand::CreateAcls { acls } => Ok(self.create_acls(acls)),
            MetadataCommand::DeleteAcls { filters } => Ok(self.delete_acls(filters)),
            MetadataCommand::AlterUserScramCredentials {
                deletions,
                upsertions,
            } => Ok(self.alter_user_scram_credentials(deletions, upsertions)),
            MetadataCommand::AlterClientQuotas { alterations } => {
                Ok(self.alter_client_quotas(alterations))
            }
        };
        result.unwrap_or_else(MetadataResponse::Error)
    }

    /// Advance the offset for a log entry that carries no command (blank, membership).
    pub fn advance_offset(&mut self, index: u64) {
        self.metadata_offset = index;
    }

    fn allocate_producer_ids(
        &mut self,
        broker_id: BrokerId,
        count: i32,
    ) -> Result<MetadataResponse, MetadataError> {
        if count <= 0 || !self.brokers.contains_key(&broker_id) {
            return Err(MetadataError::InvalidProducerIdBlock { broker_id, count });
        }
        let first_producer_id = self.next_producer_id;
        self.next_producer_id += i64::from(count);
        Ok(MetadataResponse::ProducerIdsAllocated {
            first_producer_id,
            count,
        })
    }

    fn init_cluster(&mut self, cluster_id: &str) -> Result<MetadataResponse, MetadataError> {
        if cluster_id.is_empty() {
            return Err(MetadataError::InvalidClusterId {
                cluster_id: cluster_id.to_owned(),
            });
        }
        if !self.cluster_id.is_empty() && self.cluster_id != cluster_id {
            return Err(MetadataError::ClusterAlreadyInitialized {
                existing: self.cluster_id.clone(),
                requested: cluster_id.to_owned(),
            });
        }
        self.cluster_id = cluster_id.to_owned();
        Ok(MetadataResponse::ClusterInitialized {
            cluster_id: cluster_id.to_owned(),
        })
    }

    fn register_broker(
        &mut self,
        index: u64,
        broker_id: BrokerId,
        incarnation_id: Uuid,
        listeners: &[Listener],
        rack: &Option<String>,
    ) -> Result<MetadataResponse, MetadataError> {
        let invalid = |reason| MetadataError::InvalidBrokerRegistration { broker_id, reason };
        if broker_id < 0 {
            return Err(invalid(RegistrationError::NegativeBrokerId));
        }
        if listeners.is_empty() {
            return Err(invalid(RegistrationError::NoListeners));
        }
        let mut names = BTreeSet::new();
        for l in listeners {
            if !names.insert(l.name.as_str()) {
                return Err(invalid(RegistrationError::DuplicateListener {
                    name: l.name.clone(),
                }));
            }
            if l.port == 0 {
                return Err(invalid(RegistrationError::ZeroPort {
                    name: l.name.clone(),
                }));
            }
        }
        // The same incarnation registering again is a retry: keep its epoch. A new
        // incarnation (or a first registration) gets the offset of this entry, which is
        // unique and grows, so a stale incarnation can be told apart.
        let (broker_epoch, fenced) = match self.brokers.get(&broker_id) {
            Some(existing) if existing.incarnation_id == incarnation_id => {
                (existing.broker_epoch, existing.fenced)
            }
            // A restarted broker: its old incarnation is gone, so leadership moves
            // away from it now, and the new one stays fenced until its heartbeats
            // show it has caught up with the metadata (UnfenceBroker).
            Some(_) => {
                self.fence_previous_incarnation(broker_id);
                (i64::try_from(index).unwrap_or(i64::MAX), true)
            }
            // A broker never seen before leads nothing yet: it starts unfenced.
            // Raft indexes stay far below i64::MAX; saturate rather than wrap if not.
            None => (i64::try_from(index).unwrap_or(i64::MAX), false),
        };
        self.brokers.insert(
            broker_id,
            BrokerRegistration {
                broker_id,
                incarnation_id,
                broker_epoch,
                listeners: listeners.to_vec(),
                rack: rack.clone(),
                fenced,
            },
        );
        Ok(MetadataResponse::BrokerRegistered {
            broker_id,
            broker_epoch,
        })
    }

    fn create_topic(
        &mut self,
        topic_id: TopicId,
        name: &str,
        partitions: &[Vec<BrokerId>],
        configs: &BTreeMap<String, String>,
    ) -> Result<MetadataResponse, MetadataError> {
        validate_topic_name(name).map_err(|reason| MetadataError::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })?;
        if self.topic_ids.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists {
                name: name.to_owned(),
            });
        }
        let collision_key = metric_name(name);
        if let Some(existing) = self
            .topic_ids
            .keys()
            .find(|existing| metric_name(existing) == collision_key)
        {
            return Err(MetadataError::InvalidTopicName {
                name: name.to_owned(),
                reason: TopicNameError::Collides {
                    existing: existing.clone(),
                },
            });
        }
        if self.topics.contains_key(&topic_id) {
            return Err(MetadataError::TopicIdAlreadyExists { topic_id });
        }
        if partitions.is_empty() {
            return Err(MetadataError::InvalidPartitions {
                reason: PartitionsError::NoPartitions,
            });
        }
        let expected_rf = partitions[0].len();
        self.validate_assignments(0, expected_rf, partitions)?;

        self.topics.insert(
            topic_id,
            Arc::new(TopicImage {
                id: topic_id,
                name: name.to_owned(),
                partitions: partitions
                    .iter()
                    .map(|replicas| PartitionRegistration::new(replicas.clone()))
                    .collect(),
                configs: configs.clone(),
            }),
        );
        self.topic_ids.insert(name.to_owned(), topic_id);
        Ok(MetadataResponse::TopicCreated { topic_id })
    }

    fn delete_topic(&mut self, topic_id: TopicId) -> Result<MetadataResponse, MetadataError> {
        let topic = self
            .topics
            .remove(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        self.topic_ids.remove(&topic.name);
        Ok(MetadataResponse::TopicDeleted {
            topic_id,
            name: topic.name.clone(),
        })
    }

    fn create_partitions(
        &mut self,
        topic_id: TopicId,
        new_partitions: &[Vec<BrokerId>],
    ) -> Result<MetadataResponse, MetadataError> {
        let topic = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        let current = topic.partitions.len();
        let current_count = to_partition_count(current)?;
        if new_partitions.is_empty() {
            return Err(MetadataError::InvalidPartitions {
                reason: PartitionsError::MustGrow {
                    current: current_count,
                },
            });
        }
        let new_count = to_partition_count(current + new_partitions.len())?;
        let expected_rf = topic.partitions.first().map_or(
            new_partitions[0].len(),
            PartitionRegistration::replication_factor,
        );
        self.validate_assignments(current_count, expected_rf, new_partitions)?;

        if let Some(topic) = self.topic_mut(topic_id) {
            topic.partitions.extend(
                new_partitions
                    .iter()
                    .map(|replicas| PartitionRegistration::new(replicas.clone())),
            );
        }
        Ok(MetadataResponse::PartitionsCreated {
            topic_id,
            partition_count: new_count,
        })
    }

    fn alter_topic_configs(
        &mut self,
        topic_id: TopicId,
        set: &BTreeMap<String, String>,
        delete: &[String],
        expected: Option<&BTreeMap<String, String>>,
    ) -> Result<MetadataResponse, MetadataError> {
        let Some(current) = self.topics.get(&topic_id) else {
            return Err(MetadataError::UnknownTopicId { topic_id });
        };
        if expected.is_some_and(|e| *e != current.configs) {
            return Err(MetadataError::ConfigsChanged);
        }
        if let Some(key) = delete.iter().find(|k| set.contains_key(*k)) {
            return Err(MetadataError::ConflictingConfigChange { key: key.clone() });
        }
        let topic = self
            .topic_mut(topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        for (k, v) in set {
            topic.configs.insert(k.clone(), v.clone());
        }
        for k in delete {
            topic.configs.remove(k);
        }
        Ok(MetadataResponse::TopicConfigsAltered { topic_id })
    }

    /// Add ACL bindings. The gateway validated them (concrete types, a
    /// `Type:name` principal), so nothing here can fail.
    fn create_acls(&mut self, acls: &[AclBinding]) -> MetadataResponse {
        if acls.iter().any(|b| !self.acls.bindings.contains(b)) {
            Arc::make_mut(&mut self.acls)
                .bindings
                .extend(acls.iter().cloned());
        }
        MetadataResponse::AclsCreated
    }

    /// Remove the bindings each filter selects, reporting them per filter.
    /// Set or remove client quotas (validated by the gateway). An
    /// alteration that changes nothing keeps the image's `Arc`.
    fn alter_client_quotas(&mut self, alterations: &[ClientQuotaAlteration]) -> MetadataResponse {
        if !self.client_quotas.unchanged_by(alterations) {
            Arc::make_mut(&mut self.client_quotas).alter(alterations);
        }
        MetadataResponse::ClientQuotasAltered
    }

    fn delete_acls(&mut self, filters: &[AclBindingFilter]) -> MetadataResponse {
        let mut removed = Vec::with_capacity(filters.len());
        for filter in filters {
            let matched: Vec<AclBinding> = self.acls.matching(filter).cloned().collect();
            if !matched.is_empty() {
                let acls = Arc::make_mut(&mut self.acls);
                for b in &matched {
                    acls.bindings.remove(b);
                }
            }
            removed.push(matched);
        }
        MetadataResponse::AclsDeleted { removed }
    }

    /// Alter SCRAM credentials; the shared credentials are copied only when
    /// some operation is accepted.
    fn alter_user_scram_credentials(
        &mut self,
        deletions: &[ScramDeletion],
        upsertions: &[ScramUpsertion],
    ) -> MetadataResponse {
        let results = self.scram.outcomes(deletions, upsertions);
        if results.iter().any(|r| r.outcome.is_ok()) {
            Arc::make_mut(&mut self.scram).alter(deletions, upsertions);
        }
        MetadataResponse::UserScramCredentialsAltered { results }
    }

    /// As [`MetadataImage::alter_broker_configs`], for one group.
    fn alter_group_configs(
        &mut self,
        group_id: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
        expected: Option<&BTreeMap<String, String>>,
    ) -> Result<MetadataResponse, MetadataError> {
        let empty = BTreeMap::new();
        let current = self.group_configs.get(group_id).unwrap_or(&empty);
        if expected.is_some_and(|e| e != current) {
            return Err(MetadataError::ConfigsChanged);
        }
        if let Some(key) = delete.iter().find(|k| set.contains_key(*k)) {
            return Err(MetadataError::ConflictingConfigChange { key: key.clone() });
        }
        let configs = self.group_configs.entry(group_id.to_owned()).or_default();
        for (k, v) in set {
            configs.insert(k.clone(), v.clone());
        }
        for k in delete {
            configs.remove(k);
        }
        if configs.is_empty() {
            self.group_configs.remove(group_id);
        }
        Ok(MetadataResponse::GroupConfigsAltered {
            group_id: group_id.to_owned(),
        })
    }

    /// Names and values were validated by the broker that proposed the
    /// change (against the config registry); the image only stores them.
    fn alter_broker_configs(
        &mut self,
        broker_id: Option<BrokerId>,
        set: &BTreeMap<String, String>,
        delete: &[String],
        expected: Option<&BTreeMap<String, String>>,
    ) -> Result<MetadataResponse, MetadataError> {
        if let Some(id) = broker_id
            && id < 0
        {
            return Err(MetadataError::InvalidConfigBrokerId { broker_id: id });
        }
        let empty = BTreeMap::new();
        let current = self.broker_configs.resource(broker_id).unwrap_or(&empty);
        if expected.is_some_and(|e| e != current) {
            return Err(MetadataError::ConfigsChanged);
        }
        if let Some(key) = delete.iter().find(|k| set.contains_key(*k)) {
            return Err(MetadataError::ConflictingConfigChange { key: key.clone() });
        }
        let configs = match broker_id {
            Some(id) => self.broker_configs.brokers.entry(id).or_default(),
            None => &mut self.broker_configs.cluster_default,
        };
        for (k, v) in set {
            configs.insert(k.clone(), v.clone());
        }
        for k in delete {
            configs.remove(k);
        }
        if let Some(id) = broker_id
            && self
                .broker_configs
                .brokers
                .get(&id)
                .is_some_and(BTreeMap::is_empty)
        {
            self.broker_configs.brokers.remove(&id);
        }
        Ok(MetadataResponse::BrokerConfigsAltered { broker_id })
    }

    /// Every replica list non-empty, without duplicates, of registered brokers, and of
    /// the same length as the topic's other partitions.
    fn validate_assignments(
        &self,
        first_partition: i32,
        expected_rf: usize,
        assignments: &[Vec<BrokerId>],
    ) -> Result<(), MetadataError> {
        for (partition, replicas) in (first_partition..).zip(assignments) {
            let invalid = |reason| MetadataError::InvalidReplicaAssignment { partition, reason };
            if replicas.is_empty() {
                return Err(invalid(ReplicaAssignmentError::Empty));
            }
            if replicas.len() != expected_rf {
                return Err(invalid(
                    ReplicaAssignmentError::InconsistentReplicationFactor {
                        expected: expected_rf,
                        actual: replicas.len(),
                    },
                ));
            }
            let mut seen = BTreeSet::new();
            for &broker_id in replicas {
                if !seen.insert(broker_id) {
                    return Err(invalid(ReplicaAssignmentError::DuplicateReplica {
                        broker_id,
                    }));
                }
                if !self.brokers.contains_key(&broker_id) {
                    return Err(invalid(ReplicaAssignmentError::UnknownBroker { broker_id }));
                }
            }
        }
        Ok(())
    }
}

fn to_partition_count(n: usize) -> Result<i32, MetadataError> {
    i32::try_from(n).map_err(|_| MetadataError::InvalidPartitions {
        reason: PartitionsError::TooMany { requested: n },
    })
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::DotOrDotDot);
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicNameError::IllegalCharacter { ch });
    }
    // All characters are ASCII here, so bytes == characters.
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(TopicNameError::TooLong { len: name.len() });
    }
    Ok(())
}

/// Kafka maps '.' to '_' in metric names, so it refuses topics that differ only there.
fn metric_name(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(port: u16) -> Listener {
        Listener {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port,
        }
    }

    fn register(broker_id: BrokerId, incarnation: u128) -> MetadataCommand {
        MetadataCommand::RegisterBroker {
            broker_id,
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: vec![listener(9092)],
            rack: None,
        }
    }

    fn tid(n: u128) -> TopicId {
        TopicId(Uuid::from_u128(n))
    }

    fn create(id: u128, name: &str, partitions: Vec<Vec<BrokerId>>) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            topic_id: tid(id),
            name: name.into(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    /// Image with cluster "c", brokers 1..=3 registered, and topic "t" (id 100,
    /// two partitions, RF 2) at offset 5.
    fn base() -> MetadataImage {
        let mut image = MetadataImage::default();
        let setup = [
            MetadataCommand::InitCluster {
                cluster_id: "c".into(),
            },
            register(1, 1),
            register(2, 2),
            register(3, 3),
            create(100, "t", vec![vec![1, 2], vec![2, 3]]),
        ];
        for (i, cmd) in setup.iter().enumerate() {
            let resp = image.apply(i as u64 + 1, cmd);
            assert!(
                !matches!(resp, MetadataResponse::Error(_)),
                "{cmd}: {resp:?}"
            );
        }
        image
    }

    fn err(e: MetadataError) -> MetadataResponse {
        MetadataResponse::Error(e)
    }

    /// Each case: a command applied at offset 6 to `base()`, the expected response,
    /// and a check of the resulting image.
    #[test]
    fn apply_table() {
        type Check = fn(&MetadataImage);
        let unchanged: Check = |_| {};
        let long_name = "a".repeat(250);
        let max_name = "a".repeat(249);
        let cases: Vec<(&str, MetadataCommand, MetadataResponse, Check)> = vec![
            (
                "init cluster again with the same id is a no-op",
                MetadataCommand::InitCluster {
                    cluster_id: "c".into(),
                },
                MetadataResponse::ClusterInitialized {
                    cluster_id: "c".into(),
                },
                |i| assert_eq!(i.cluster_id, "c"),
            ),
            (
                "init cluster with another id",
                MetadataCommand::InitCluster {
                    cluster_id: "d".into(),
                },
                err(MetadataError::ClusterAlreadyInitialized {
                    existing: "c".into(),
                    requested: "d".into(),
                }),
                |i| assert_eq!(i.cluster_id, "c"),
            ),
            (
                "new broker gets epoch = offset",
                register(4, 4),
                MetadataResponse::BrokerRegistered {
                    broker_id: 4,
                    broker_epoch: 6,
                },
                |i| {
                    let b = &i.brokers[&4];
                    assert_eq!(b.broker_epoch, 6);
                    assert!(!b.fenced);
                },
            ),
            (
                "same incarnation keeps its epoch",
                register(2, 2),
                MetadataResponse::BrokerRegistered {
                    broker_id: 2,
                    broker_epoch: 3,
                },
                |i| assert_eq!(i.brokers[&2].broker_epoch, 3),
            ),
            (
                "new incarnation bumps the epoch",
                register(2, 22),
                MetadataResponse::BrokerRegistered {
                    broker_id: 2,
                    broker_epoch: 6,
                },
                |i| {
                    assert_eq!(i.brokers[&2].broker_epoch, 6);
                    assert_eq!(i.brokers[&2].incarnation_id, Uuid::from_u128(22));
                },
            ),
            (
                "negative broker id",
                register(-1, 9),
                err(MetadataError::InvalidBrokerRegistration {
                    broker_id: -1,
                    reason: RegistrationError::NegativeBrokerId,
                }),
                |i| assert_eq!(i.brokers.len(), 3),
            ),
            (
                "broker without listeners",
                MetadataCommand::RegisterBroker {
                    broker_id: 5,
                    incarnation_id: Uuid::from_u128(5),
                    listeners: vec![],
                    rack: None,
                },
                err(MetadataError::InvalidBrokerRegistration {
                    broker_id: 5,
                    reason: RegistrationError::NoListeners,
                }),
                unchanged,
            ),
            (
                "duplicate listener name",
                MetadataCommand::RegisterBroker {
                    broker_id: 5,
                    incarnation_id: Uuid::from_u128(5),
                    listeners: vec![listener(1), listener(2)],
                    rack: None,
                },
                err(MetadataError::InvalidBrokerRegistration {
                    broker_id: 5,
                    reason: RegistrationError::DuplicateListener {
                        name: "PLAINTEXT".into(),
                    },
                }),
                unchanged,
            ),
            (
                "listener port 0",
                MetadataCommand::RegisterBroker {
                    broker_id: 5,
                    incarnation_id: Uuid::from_u128(5),
                    listeners: vec![listener(0)],
                    rack: None,
                },
                err(MetadataError::InvalidBrokerRegistration {
                    broker_id: 5,
                    reason: RegistrationError::ZeroPort {
                        name: "PLAINTEXT".into(),
                    },
                }),
                unchanged,
            ),
            (
                "create topic",
                create(200, "orders", vec![vec![3, 1], vec![1, 2], vec![2, 3]]),
                MetadataResponse::TopicCreated { topic_id: tid(200) },
                |i| {
                    let t = i.topic_by_name("orders").expect("created");
                    assert_eq!(t.id, tid(200));
                    assert_eq!(t.partitions.len(), 3);
                    assert_eq!(
                        t.partitions[0],
                        PartitionRegistration {
                            replicas: vec![3, 1],
                            isr: vec![3, 1],
                            leader: 3,
                            leader_epoch: 0,
                            partition_epoch: 0,
                            adding_replicas: vec![],
                            removing_replicas: vec![],
                        }
                    );
                },
            ),
            (
                "create topic with an existing name",
                create(200, "t", vec![vec![1, 2]]),
                err(MetadataError::TopicAlreadyExists { name: "t".into() }),
                |i| assert_eq!(i.topics.len(), 1),
            ),
            (
                "create topic with an existing id",
                create(100, "u", vec![vec![1, 2]]),
                err(MetadataError::TopicIdAlreadyExists { topic_id: tid(100) }),
                |i| assert!(i.topic_by_name("u").is_none()),
            ),
            (
                "topic name: empty",
                create(200, "", vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: "".into(),
                    reason: TopicNameError::Empty,
                }),
                |i| assert_eq!(i.topics.len(), 1),
            ),
            (
                "topic name: dot",
                create(200, ".", vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: ".".into(),
                    reason: TopicNameError::DotOrDotDot,
                }),
                unchanged,
            ),
            (
                "topic name: dot dot",
                create(200, "..", vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: "..".into(),
                    reason: TopicNameError::DotOrDotDot,
                }),
                unchanged,
            ),
            (
                "topic name: illegal character",
                create(200, "a b", vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: "a b".into(),
                    reason: TopicNameError::IllegalCharacter { ch: ' ' },
                }),
                unchanged,
            ),
            (
                "topic name: non-ascii",
                create(200, "tø", vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: "tø".into(),
                    reason: TopicNameError::IllegalCharacter { ch: 'ø' },
                }),
                unchanged,
            ),
            (
                "topic name: 250 characters",
                create(200, &long_name, vec![vec![1]]),
                err(MetadataError::InvalidTopicName {
                    name: long_name.clone(),
                    reason: TopicNameError::TooLong { len: 250 },
                }),
                unchanged,
            ),
            (
                "topic name: 249 characters is fine",
                create(200, &max_name, vec![vec![1]]),
                MetadataResponse::TopicCreated { topic_id: tid(200) },
                |i| assert_eq!(i.topics.len(), 2),
            ),
            (
                "topic name: all legal characters",
                create(200, "Az09._-", vec![vec![1]]),
                MetadataResponse::TopicCreated { topic_id: tid(200) },
                |i| assert!(i.topic_by_name("Az09._-").is_some()),
            ),
            (
                "topic name: underscore without a dotted twin is fine",
                create(200, "a_b", vec![vec![1]]),
                MetadataResponse::TopicCreated { topic_id: tid(200) },
                |i| assert!(i.topic_by_name("a_b").is_some()),
            ),
            (
                "no partitions",
                create(200, "u", vec![]),
                err(MetadataError::InvalidPartitions {
                    reason: PartitionsError::NoPartitions,
                }),
                unchanged,
            ),
            (
                "empty replica list",
                create(200, "u", vec![vec![]]),
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 0,
                    reason: ReplicaAssignmentError::Empty,
                }),
                unchanged,
            ),
            (
                "unregistered replica",
                create(200, "u", vec![vec![1, 2], vec![1, 9]]),
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 1,
                    reason: ReplicaAssignmentError::UnknownBroker { broker_id: 9 },
                }),
                |i| assert!(i.topic_by_name("u").is_none()),
            ),
            (
                "duplicate replica",
                create(200, "u", vec![vec![1, 1]]),
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 0,
                    reason: ReplicaAssignmentError::DuplicateReplica { broker_id: 1 },
                }),
                unchanged,
            ),
            (
                "inconsistent replication factor",
                create(200, "u", vec![vec![1, 2], vec![1]]),
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 1,
                    reason: ReplicaAssignmentError::InconsistentReplicationFactor {
                        expected: 2,
                        actual: 1,
                    },
                }),
                unchanged,
            ),
            (
                "delete topic",
                MetadataCommand::DeleteTopic { topic_id: tid(100) },
                MetadataResponse::TopicDeleted {
                    topic_id: tid(100),
                    name: "t".into(),
                },
                |i| {
                    assert!(i.topics.is_empty());
                    assert!(i.topic_ids.is_empty());
                },
            ),
            (
                "delete unknown topic",
                MetadataCommand::DeleteTopic { topic_id: tid(7) },
                err(MetadataError::UnknownTopicId { topic_id: tid(7) }),
                |i| assert_eq!(i.topics.len(), 1),
            ),
            (
                "create partitions",
                MetadataCommand::CreatePartitions {
                    topic_id: tid(100),
                    new_partitions: vec![vec![3, 1]],
                },
                MetadataResponse::PartitionsCreated {
                    topic_id: tid(100),
                    partition_count: 3,
                },
                |i| {
                    let p = &i.topics[&tid(100)].partitions;
                    assert_eq!(p.len(), 3);
                    assert_eq!(p[2].leader, 3);
                    assert_eq!(p[2].isr, vec![3, 1]);
                },
            ),
            (
                "create partitions must grow",
                MetadataCommand::CreatePartitions {
                    topic_id: tid(100),
                    new_partitions: vec![],
                },
                err(MetadataError::InvalidPartitions {
                    reason: PartitionsError::MustGrow { current: 2 },
                }),
                |i| assert_eq!(i.topics[&tid(100)].partitions.len(), 2),
            ),
            (
                "create partitions on unknown topic",
                MetadataCommand::CreatePartitions {
                    topic_id: tid(7),
                    new_partitions: vec![vec![1, 2]],
                },
                err(MetadataError::UnknownTopicId { topic_id: tid(7) }),
                unchanged,
            ),
            (
                "create partitions with the wrong replication factor",
                MetadataCommand::CreatePartitions {
                    topic_id: tid(100),
                    new_partitions: vec![vec![1, 2, 3]],
                },
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 2,
                    reason: ReplicaAssignmentError::InconsistentReplicationFactor {
                        expected: 2,
                        actual: 3,
                    },
                }),
                |i| assert_eq!(i.topics[&tid(100)].partitions.len(), 2),
            ),
            (
                "create partitions with unknown broker",
                MetadataCommand::CreatePartitions {
                    topic_id: tid(100),
                    new_partitions: vec![vec![1, 2], vec![4, 1]],
                },
                err(MetadataError::InvalidReplicaAssignment {
                    partition: 3,
                    reason: ReplicaAssignmentError::UnknownBroker { broker_id: 4 },
                }),
                |i| assert_eq!(i.topics[&tid(100)].partitions.len(), 2),
            ),
            (
                "alter configs",
                MetadataCommand::AlterTopicConfigs {
                    topic_id: tid(100),
                    set: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                    delete: vec!["cleanup.policy".into()],
                    expected: None,
                },
                MetadataResponse::TopicConfigsAltered { topic_id: tid(100) },
                |i| {
                    assert_eq!(
                        i.topics[&tid(100)].configs,
                        BTreeMap::from([("retention.ms".into(), "1000".into())])
                    )
                },
            ),
            (
                "alter configs: set and delete the same key",
                MetadataCommand::AlterTopicConfigs {
                    topic_id: tid(100),
                    set: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                    delete: vec!["retention.ms".into()],
                    expected: None,
                },
                err(MetadataError::ConflictingConfigChange {
                    key: "retention.ms".into(),
                }),
                |i| assert!(i.topics[&tid(100)].configs.is_empty()),
            ),
            (
                "alter configs on unknown topic",
                MetadataCommand::AlterTopicConfigs {
                    topic_id: tid(7),
                    set: BTreeMap::new(),
                    delete: vec![],
                    expected: None,
                },
                err(MetadataError::UnknownTopicId { topic_id: tid(7) }),
                unchanged,
            ),
        ];

        for (name, cmd, expected, check) in cases {
            let mut image = base();
            let before = image.clone();
            let got = image.apply(6, &cmd);
            assert_eq!(got, expected, "case {name:?}");
            assert_eq!(image.metadata_offset, 6, "case {name:?}: offset advances");
            if matches!(got, MetadataResponse::Error(_)) {
                let mut expected_image = before;
                expected_image.metadata_offset = 6;
                assert_eq!(
                    image, expected_image,
                    "case {name:?}: rejected must not mutate"
                );
            }
            check(&image);
        }
    }

    #[test]
    fn init_cluster_on_empty_image() {
        let mut image = MetadataImage::default();
        assert_eq!(
            image.apply(
                1,
                &MetadataCommand::InitCluster {
                    cluster_id: String::new()
                }
            ),
            err(MetadataError::InvalidClusterId {
                cluster_id: String::new()
            })
        );
        assert_eq!(
            image.apply(
                2,
                &MetadataCommand::InitCluster {
                    cluster_id: "x".into()
                }
            ),
            MetadataResponse::ClusterInitialized {
                cluster_id: "x".into()
            }
        );
        assert_eq!(image.cluster_id, "x");
    }

    #[test]
    fn topic_names_colliding_in_metrics_are_rejected() {
        let mut image = base();
        assert_eq!(
            image.apply(6, &create(200, "a.b", vec![vec![1, 2]])),
            MetadataResponse::TopicCreated { topic_id: tid(200) }
        );
        assert_eq!(
            image.apply(7, &create(201, "a_b", vec![vec![1, 2]])),
            err(MetadataError::InvalidTopicName {
                name: "a_b".into(),
                reason: TopicNameError::Collides {
                    existing: "a.b".into()
                },
            })
        );
    }

    #[test]
    fn delete_then_recreate_same_name() {
        let mut image = base();
        image.apply(6, &MetadataCommand::DeleteTopic { topic_id: tid(100) });
        assert_eq!(
            image.apply(7, &create(101, "t", vec![vec![1]])),
            MetadataResponse::TopicCreated { topic_id: tid(101) }
        );
        assert_eq!(image.topic_ids["t"], tid(101));
    }

    #[test]
    fn image_round_trips_through_json() {
        let image = base();
        let bytes = serde_json::to_vec(&image).expect("serialize");
        let back: MetadataImage = serde_json::from_slice(&bytes).expect("deserialize");
        assert_eq!(back, image);
    }

    #[test]
    fn producer_id_blocks_are_disjoint_and_only_for_registered_brokers() {
        let mut image = base();
        let first = image.apply(
            6,
            &MetadataCommand::AllocateProducerIds {
                broker_id: 1,
                count: 1000,
            },
        );
        let second = image.apply(
            7,
            &MetadataCommand::AllocateProducerIds {
                broker_id: 2,
                count: 10,
            },
        );
        assert_eq!(
            first,
            MetadataResponse::ProducerIdsAllocated {
                first_producer_id: 0,
                count: 1000
            }
        );
        assert_eq!(
            second,
            MetadataResponse::ProducerIdsAllocated {
                first_producer_id: 1000,
                count: 10
            }
        );
        for (broker_id, count) in [(9, 10), (1, 0), (1, -5)] {
            let before = image.next_producer_id;
            let resp = image.apply(
                8,
                &MetadataCommand::AllocateProducerIds { broker_id, count },
            );
            assert!(matches!(
                resp,
                MetadataResponse::Error(MetadataError::InvalidProducerIdBlock { .. })
            ));
            assert_eq!(image.next_producer_id, before);
        }
    }

    /// Copy on write: a command changes the `Arc` of the topics it changes and
    /// of no other, and the image published before stays as it was.
    #[test]
    fn unchanged_topics_keep_their_arc() {
        let mut image = crate::test_support::image_with(
            &[],
            vec![crate::test_support::partition(&[1, 2, 3], &[1, 2, 3], 1)],
        );
        let other = TopicId(Uuid::from_u128(8));
        let create = MetadataCommand::CreateTopic {
            topic_id: other,
            name: "other".into(),
            partitions: vec![vec![2, 3]],
            configs: BTreeMap::new(),
        };
        assert!(!matches!(
            image.apply(100, &create),
            MetadataResponse::Error(_)
        ));
        let before = image.clone();
        let shrink = MetadataCommand::AlterPartition {
            broker_id: 1,
            broker_epoch: 10,
            topic_id: crate::test_support::T,
            partition: 0,
            leader_epoch: 5,
            partition_epoch: 8,
            new_isr: vec![1, 2],
        };
        let response = image.apply(101, &shrink);
        assert!(
            matches!(response, MetadataResponse::PartitionAltered { .. }),
            "{response:?}"
        );
        let t = crate::test_support::T;
        assert!(!Arc::ptr_eq(&before.topics[&t], &image.topics[&t]));
        assert!(Arc::ptr_eq(&before.topics[&other], &image.topics[&other]));
        assert_eq!(before.topics[&t].partitions[0].isr, vec![1, 2, 3]);
        assert_eq!(image.topics[&t].partitions[0].isr, vec![1, 2]);

        // A rejected command (stale partition epoch) and one that touches no
        // partition (fencing broker 4, which hosts nothing) take no topic.
        let before = image.clone();
        assert!(matches!(
            image.apply(102, &shrink),
            MetadataResponse::Error(_)
        ));
        let fence = MetadataCommand::FenceBroker {
            broker_id: 4,
            broker_epoch: 40,
        };
        assert!(!matches!(
            image.apply(103, &fence),
            MetadataResponse::Error(_)
        ));
        for (id, topic) in &image.topics {
            assert!(Arc::ptr_eq(&before.topics[id], topic));
        }
    }

    /// Dynamic broker configs: set and delete per broker and cluster-wide;
    /// they survive a snapshot round trip, and a snapshot without them (older
    /// format) loads with none and serializes as before.
    #[test]
    fn broker_configs_alter_and_round_trip() {
        let mut image = MetadataImage::default();
        let set = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let alter = |broker_id, set, delete: &[&str]| MetadataCommand::AlterBrokerConfigs {
            broker_id,
            set,
            delete: delete.iter().map(|s| s.to_string()).collect(),
            expected: None,
        };
        assert_eq!(
            image.apply(1, &alter(None, set(&[("log.retention.ms", "1000")]), &[])),
            MetadataResponse::BrokerConfigsAltered { broker_id: None }
        );
        image.apply(
            2,
            &alter(Some(2), set(&[("min.insync.replicas", "2")]), &[]),
        );
        assert!(matches!(
            image.apply(3, &alter(Some(-1), set(&[]), &[])),
            MetadataResponse::Error(MetadataError::InvalidConfigBrokerId { broker_id: -1 })
        ));
        assert!(matches!(
            image.apply(4, &alter(None, set(&[("a", "1")]), &["a"])),
            MetadataResponse::Error(MetadataError::ConflictingConfigChange { .. })
        ));
        assert_eq!(
            image.broker_configs.cluster_default,
            set(&[("log.retention.ms", "1000")])
        );
        assert_eq!(
            image.broker_configs.broker(2),
            Some(&set(&[("min.insync.replicas", "2")]))
        );
        let bytes = serde_json::to_vec(&image).unwrap();
        let back: MetadataImage = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, image);
        // Compare-and-set: computed from configs that are no longer current.
        let stale = MetadataCommand::AlterBrokerConfigs {
            broker_id: None,
            set: set(&[("log.retention.ms", "5")]),
            delete: vec![],
            expected: Some(BTreeMap::new()),
        };
        assert_eq!(
            image.apply(7, &stale),
            MetadataResponse::Error(MetadataError::ConfigsChanged)
        );
        let fresh = MetadataCommand::AlterBrokerConfigs {
            broker_id: None,
            set: set(&[("log.retention.ms", "5")]),
            delete: vec![],
            expected: Some(set(&[("log.retention.ms", "1000")])),
        };
        assert!(!matches!(
            image.apply(8, &fresh),
            MetadataResponse::Error(_)
        ));
        image.apply(9, &alter(None, set(&[("log.retention.ms", "1000")]), &[]));
        // Group configs: stored per group, compare-and-set, gone with the last value.
        let group = |set, delete: &[&str]| MetadataCommand::AlterGroupConfigs {
            group_id: "g".into(),
            set,
            delete: delete.iter().map(|s| s.to_string()).collect(),
            expected: None,
        };
        image.apply(
            10,
            &group(set(&[("consumer.session.timeout.ms", "50000")]), &[]),
        );
        assert_eq!(
            image.group_configs["g"],
            set(&[("consumer.session.timeout.ms", "50000")])
        );
        let back: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&image).unwrap()).unwrap();
        assert_eq!(back, image);
        image.apply(11, &group(set(&[]), &["consumer.session.timeout.ms"]));
        assert!(image.group_configs.is_empty());
        // Deleting a broker's last value forgets the broker.
        image.apply(5, &alter(Some(2), set(&[]), &["min.insync.replicas"]));
        assert!(image.broker_configs.brokers.is_empty());
        image.apply(6, &alter(None, set(&[]), &["log.retention.ms"]));
        let json = serde_json::to_string(&image).unwrap();
        assert!(!json.contains("broker_configs"), "{json}");
        assert!(!json.contains("group_configs"), "{json}");
    }

    /// Snapshots serialize a shared topic as the topic itself: a snapshot
    /// written before topics were shared loads, and round-trips unchanged.
    #[test]
    fn snapshot_format_unchanged_by_sharing() {
        let written_before = r#"{"cluster_id":"c","brokers":{},"topics":{"00000000-0000-0000-0000-000000000007":{"id":"00000000-0000-0000-0000-000000000007","name":"t","partitions":[{"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}],"configs":{}}},"topic_ids":{"t":"00000000-0000-0000-0000-000000000007"},"metadata_offset":3,"next_producer_id":0}"#;
        let image: MetadataImage = serde_json::from_str(written_before).unwrap();
        let t = crate::test_support::T;
        assert_eq!(image.topics[&t].name, "t");
        assert_eq!(image.topics[&t].partitions[0].leader, 1);
        let again: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&image).unwrap()).unwrap();
        assert_eq!(again, image);
    }

    /// ACLs: added once, removed per filter (each reported under the first
    /// filter that selects it), kept in snapshots, and an image whose
    /// command does not touch them shares them with the one before.
    #[test]
    fn acls_create_delete_and_snapshot() {
        use crate::acl::{
            AclOperation, AclPatternFilter, AclPatternType, AclPermission, AclResourceType,
        };
        let acl = |name: &str, pattern_type| AclBinding {
            resource_type: AclResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        };
        let mut image = base();
        let before = image.acls.clone();
        let acls = vec![
            acl("orders", AclPatternType::Literal),
            acl("ord", AclPatternType::Prefixed),
            acl("orders", AclPatternType::Literal),
        ];
        assert_eq!(
            image.apply(6, &MetadataCommand::CreateAcls { acls }),
            MetadataResponse::AclsCreated
        );
        assert_eq!(image.acls.bindings.len(), 2);
        assert!(
            before.is_empty(),
            "copy on write: the old image is unchanged"
        );
        let shared = image.acls.clone();
        image.apply(7, &create(101, "u", vec![vec![1]]));
        assert!(Arc::ptr_eq(&shared, &image.acls));
        let back: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&image).unwrap()).unwrap();
        assert_eq!(back, image);
        let filter = |pattern_type| AclBindingFilter {
            resource_type: Some(AclResourceType::Topic),
            resource_name: Some("orders".into()),
            pattern_type,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        let deleted = image.apply(
            8,
            &MetadataCommand::DeleteAcls {
                filters: vec![
                    filter(AclPatternFilter::Literal),
                    filter(AclPatternFilter::Match),
                ],
            },
        );
        assert_eq!(
            deleted,
            MetadataResponse::AclsDeleted {
                removed: vec![
                    vec![acl("orders", AclPatternType::Literal)],
                    vec![acl("ord", AclPatternType::Prefixed)],
                ]
            }
        );
        assert!(image.acls.is_empty());
        let json = serde_json::to_string(&image).unwrap();
        assert!(!json.contains("acls"), "{json}");
    }

    /// SCRAM credentials: applied per user, shared with the image before
    /// when a command does not change them, kept in snapshots, left out of
    /// them when empty, and a snapshot from before they existed loads.
    #[test]
    fn scram_credentials_alter_and_snapshot() {
        use crate::scram::{ScramCredentialError, ScramDeletion, ScramUpsertion};
        use fjord_scram::{ScramCredential, ScramMechanism};
        let upsert = |user: &str| ScramUpsertion {
            user: user.into(),
            mechanism: ScramMechanism::Sha512,
            credential: ScramCredential::from_salted_password(
                ScramMechanism::Sha512,
                b"salt".to_vec(),
                b"salted",
                4096,
            ),
        };
        let delete = |user: &str| ScramDeletion {
            user: user.into(),
            mechanism: ScramMechanism::Sha512,
        };
        let mut image = base();
        let before = image.scram.clone();
        let altered = image.apply(
            6,
            &MetadataCommand::AlterUserScramCredentials {
                deletions: vec![delete("ghost")],
                upsertions: vec![upsert("alice")],
            },
        );
        let MetadataResponse::UserScramCredentialsAltered { results } = altered else {
            panic!("{altered:?}");
        };
        assert_eq!(results[0].outcome, Err(ScramCredentialError::NotFound));
        assert_eq!(results[1].outcome, Ok(()));
        assert!(before.is_empty(), "copy on write");
        let json = serde_json::to_string(&image).unwrap();
        assert!(!json.contains("salted"), "{json}");
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        // A refused command, or one about something else, shares the credentials.
        let shared = image.scram.clone();
        image.apply(
            7,
            &MetadataCommand::AlterUserScramCredentials {
                deletions: vec![delete("ghost")],
                upsertions: vec![],
            },
        );
        image.apply(8, &create(101, "u", vec![vec![1]]));
        assert!(Arc::ptr_eq(&shared, &image.scram));
        image.apply(
            9,
            &MetadataCommand::AlterUserScramCredentials {
                deletions: vec![delete("alice")],
                upsertions: vec![],
            },
        );
        assert!(image.scram.is_empty());
        let json = serde_json::to_string(&image).unwrap();
        assert!(!json.contains("scram"), "{json}");
        // The snapshot of `snapshot_format_unchanged_by_sharing`, written
        // before credentials existed, loads with none.
        let written_before = r#"{"cluster_id":"c","brokers":{},"topics":{},"topic_ids":{},"metadata_offset":3,"next_producer_id":0}"#;
        let old: MetadataImage = serde_json::from_str(written_before).unwrap();
        assert!(old.scram.is_empty());
    }

    /// Client quotas: set, shared when untouched, removed, and left out of
    /// snapshots when empty (so snapshots from before quotas still load).
    #[test]
    fn client_quotas_alter_and_snapshot() {
        use crate::quota::{ClientQuotaEntity, QuotaEntityName, QuotaKey, QuotaValue};
        let mut image = MetadataImage::default();
        let entity = ClientQuotaEntity {
            user: Some(QuotaEntityName::Default),
            client_id: Some(QuotaEntityName::Name("app".into())),
        };
        let alter = |value| MetadataCommand::AlterClientQuotas {
            alterations: vec![ClientQuotaAlteration {
                entity: entity.clone(),
                ops: vec![(QuotaKey::ProducerByteRate, value)],
            }],
        };
        assert_eq!(
            image.apply(1, &alter(Some(QuotaValue(2048.0)))),
            MetadataResponse::ClientQuotasAltered
        );
        let shared = image.client_quotas.clone();
        image.apply(2, &alter(Some(QuotaValue(2048.0))));
        assert!(Arc::ptr_eq(&shared, &image.client_quotas));
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        image.apply(3, &alter(None));
        assert!(image.client_quotas.is_empty());
        let json = serde_json::to_string(&image).unwrap();
        assert!(!json.contains("client_quotas"), "{json}");
    }
}
