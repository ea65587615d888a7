//! The commands the controller's Raft log carries, and what applying one returns.
//!
//! A [`MetadataCommand`] is a request that has been *proposed*; whether it changes the
//! image is decided only when it is applied, in log order, by
//! [`MetadataImage::apply`](crate::MetadataImage::apply). Validation therefore lives in
//! apply (deterministically, from the image alone), not at proposal time: two commands
//! proposed concurrently can both look valid against an old image, and only the first in
//! the log may win.

use std::collections::BTreeMap;
use std::fmt;

use fjord_types::BrokerId;
use fjord_types::TopicId;
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::acl::AclBinding;
use crate::acl::AclBindingFilter;
use crate::image::Listener;
use crate::quota::ClientQuotaAlteration;
use crate::scram::ScramAlterationResult;
use crate::scram::ScramDeletion;
use crate::scram::ScramUpsertion;

/// One entry of the metadata log (the `D` of the Raft type config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Set the cluster id. Accepted once; repeating the same id is a no-op.
    InitCluster { cluster_id: String },
    /// Register (or re-register) a broker. A new `incarnation_id` means the broker
    /// process restarted and gets a new broker epoch.
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
    },
    /// Create a topic. `partitions[p]` is the replica list of partition `p`; its first
    /// replica becomes the leader.
    CreateTopic {
        topic_id: TopicId,
        name: String,
        partitions: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    },
    /// Delete a topic and all its partitions.
    DeleteTopic { topic_id: TopicId },
    /// Append partitions to a topic; `new_partitions[i]` is the replica list of
    /// partition `current_count + i`.
    CreatePartitions {
        topic_id: TopicId,
        new_partitions: Vec<Vec<BrokerId>>,
    },
    /// Set and delete topic configs (incremental, Kafka's IncrementalAlterConfigs shape).
    AlterTopicConfigs {
        topic_id: TopicId,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        /// Compare-and-set: the topic's configs the change was computed
        /// from (APPEND, SUBTRACT and AlterConfigs' replace-all depend on
        /// them); refused with [`MetadataError::ConfigsChanged`] when they
        /// are no longer the current ones. `None` (and entries written
        /// before the field existed): unconditional.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<BTreeMap<String, String>>,
    },
    /// Set and delete dynamic broker configs (Kafka's names, e.g.
    /// `log.retention.ms`): for one broker, or (`broker_id` `None`) the
    /// cluster-wide default every broker without its own value uses.
    AlterBrokerConfigs {
        broker_id: Option<BrokerId>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        /// Compare-and-set, as [`MetadataCommand::AlterTopicConfigs`]'s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<BTreeMap<String, String>>,
    },
    /// Set and delete a group's configs (Kafka's GROUP resource, KIP-848
    /// group configs), validated by the proposing broker.
    AlterGroupConfigs {
        group_id: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        /// Compare-and-set, as [`MetadataCommand::AlterTopicConfigs`]'s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<BTreeMap<String, String>>,
    },
    /// Hand a broker the next block of `count` producer ids (Kafka's
    /// AllocateProducerIds), so ids stay unique across brokers and restarts.
    AllocateProducerIds { broker_id: BrokerId, count: i32 },
    /// The active controller saw no heartbeat from the broker for the session timeout:
    /// it gets no leaderships, leaves every ISR it is not the last member of, and the
    /// partitions it led elect new leaders from their ISR. Ignored (an error) when
    /// `broker_epoch` is not the broker's current epoch.
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// A fenced broker heartbeats again and has caught up with the metadata: it may
    /// lead again. Partitions left without a leader whose ISR holds it elect it.
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// Controlled shutdown (Kafka's `wantShutDown` heartbeat): as `FenceBroker`, asked
    /// for by the broker itself before it stops.
    ControlledShutdown {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// Kafka's AlterPartition: the partition leader proposes a new ISR.
    /// Compare-and-set: accepted only while `leader_epoch` and `partition_epoch` are
    /// still the partition's current ones.
    AlterPartition {
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: TopicId,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    /// Kafka's ElectLeaders. `None` partitions: every partition of every topic.
    ElectLeaders {
        election: ElectionType,
        partitions: Option<Vec<(TopicId, i32)>>,
    },
    /// Kafka's AlterPartitionReassignments (KIP-455): per partition, move its
    /// replicas to the target list, or (`None`) cancel the reassignment in
    /// progress. Each partition succeeds or fails on its own.
    AlterPartitionReassignments {
        reassignments: Vec<(TopicId, i32, Option<Vec<BrokerId>>)>,
    },
    /// Kafka's CreateAcls (`AccessControlEntryRecord`s): add bindings; one
    /// already present is not added twice.
    CreateAcls { acls: Vec<AclBinding> },
    /// Kafka's DeleteAcls: remove every binding a filter selects in the image
    /// as of this entry (so two concurrent deletes cannot both report one
    /// binding), answering what each filter removed.
    DeleteAcls { filters: Vec<AclBindingFilter> },
    /// Kafka's AlterUserScramCredentials (`UserScramCredentialRecord`,
    /// `RemoveUserScramCredentialRecord`): the credentials are derived by
    /// the proposing broker, so no (salted) password is in the log. Each
    /// user succeeds or fails on its own; see `scram::ScramImage::alter`.
    AlterUserScramCredentials {
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    },
    /// Kafka's AlterClientQuotas (`ClientQuotaRecord`s): set or remove
    /// quota values per entity, validated by the gateway.
    AlterClientQuotas {
        alterations: Vec<ClientQuotaAlteration>,
    },
}

/// Which leader an [`MetadataCommand::ElectLeaders`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica, if it is live and in the ISR.
    Preferred,
    /// Any live replica, even out of the ISR, for partitions without a leader
    /// (may lose acknowledged records; Kafka's `unclean.leader.election.enable`).
    Unclean,
}

impl fmt::Display for MetadataCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataCommand::InitCluster { cluster_id } => write!(f, "InitCluster({cluster_id})"),
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation_id,
                ..
            } => write!(
                f,
                "RegisterBroker({broker_id}, incarnation {incarnation_id})"
            ),
            MetadataCommand::CreateTopic {
                topic_id,
                name,
                partitions,
                ..
            } => write!(
                f,
                "CreateTopic({name}, {topic_id}, {} partitions)",
                partitions.len()
            ),
            MetadataCommand::DeleteTopic { topic_id } => write!(f, "DeleteTopic({topic_id})"),
            MetadataCommand::CreatePartitions {
                topic_id,
                new_partitions,
            } => write!(f, "CreatePartitions({topic_id}, +{})", new_partitions.len()),
            MetadataCommand::AlterTopicConfigs {
                topic_id,
                set,
                delete,
                ..
            } => write!(
                f,
                "AlterTopicConfigs({topic_id}, set {}, delete {})",
                set.len(),
                delete.len()
            ),
            MetadataCommand::AlterBrokerConfigs {
                broker_id,
                set,
                delete,
                ..
            } => write!(
                f,
                "AlterBrokerConfigs({}, set {}, delete {})",
                broker_id.map_or("cluster default".to_string(), |b| b.to_string()),
                set.len(),
                delete.len()
            ),
            MetadataCommand::AlterGroupConfigs {
                group_id,
                set,
                delete,
                ..
            } => write!(
                f,
                "AlterGroupConfigs({group_id}, set {}, delete {})",
                set.len(),
                delete.len()
            ),
            MetadataCommand::AllocateProducerIds { broker_id, count } => {
                write!(f, "AllocateProducerIds({broker_id}, {count})")
            }
            MetadataCommand::FenceBroker {
                broker_id,
                broker_epoch,
            } => write!(f, "FenceBroker({broker_id}, epoch {broker_epoch})"),
            MetadataCommand::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => write!(f, "UnfenceBroker({broker_id}, epoch {broker_epoch})"),
            MetadataCommand::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => write!(f, "ControlledShutdown({broker_id}, epoch {broker_epoch})"),
            MetadataCommand::AlterPartition {
                broker_id,
                topic_id,
                partition,
                new_isr,
                ..
            } => write!(
                f,
                "AlterPartition({topic_id}-{partition} by {broker_id}, isr {new_isr:?})"
            ),
            MetadataCommand::ElectLeaders {
                election,
                partitions,
            } => write!(
                f,
                "ElectLeaders({election:?}, {} partitions)",
                partitions
                    .as_ref()
                    .map_or("all".to_string(), |p| p.len().to_string())
            ),
            MetadataCommand::AlterPartitionReassignments { reassignments } => write!(
                f,
                "AlterPartitionReassignments({} partitions)",
                reassignments.len()
            ),
            MetadataCommand::CreateAcls { acls } => write!(f, "CreateAcls({} acls)", acls.len()),
            MetadataCommand::DeleteAcls { filters } => {
                write!(f, "DeleteAcls({} filters)", filters.len())
            }
            MetadataCommand::AlterUserScramCredentials {
                deletions,
                upsertions,
            } => write!(
                f,
                "AlterUserScramCredentials(delete {}, upsert {})",
                deletions.len(),
                upsertions.len()
            ),
            MetadataCommand::AlterClientQuotas { alterations } => {
                write!(f, "AlterClientQuotas({} entities)", alterations.len())
            }
        }
    }
}

/// The result of applying one log entry (the `R` of the Raft type config).
///
/// A rejected command is still a committed log entry: it advances
/// `metadata_offset` and returns [`MetadataResponse::Error`] without changing anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataResponse {
    /// A Raft-internal entry (blank entry of a new leader, membership change).
    Noop,
    ClusterInitialized {
        cluster_id: String,
    },
    BrokerRegistered {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    TopicCreated {
        topic_id: TopicId,
    },
    TopicDeleted {
        topic_id: TopicId,
        name: String,
    },
    PartitionsCreated {
        topic_id: TopicId,
        partition_count: i32,
    },
    TopicConfigsAltered {
        topic_id: TopicId,
    },
    /// AlterBrokerConfigs applied.
    BrokerConfigsAltered {
        broker_id: Option<BrokerId>,
    },
    /// AlterGroupConfigs applied.
    GroupConfigsAltered {
        group_id: String,
    },
    /// Producer ids `first_producer_id .. first_producer_id + count` now belong to the broker.
    ProducerIdsAllocated {
        first_producer_id: i64,
        count: i32,
    },
    /// A broker's fencing state changed (FenceBroker, UnfenceBroker,
    /// ControlledShutdown); `leaders_moved` partitions got a new leader (or none).
    BrokerFencingChanged {
        broker_id: BrokerId,
        fenced: bool,
        leaders_moved: usize,
    },
    /// AlterPartition accepted: the partition's state as now committed.
    PartitionAltered {
        topic_id: TopicId,
        partition: i32,
        leader: BrokerId,
        leader_epoch: i32,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
    },
    /// ElectLeaders: per partition, the leader now (or why none was elected).
    LeadersElected {
        results: Vec<ElectionResult>,
    },
    /// AlterPartitionReassignments: per partition, accepted or why not.
    PartitionReassignmentsAltered {
        results: Vec<ReassignmentResult>,
    },
    /// CreateAcls applied.
    AclsCreated,
    /// DeleteAcls applied: per filter, in order, the bindings it removed (a
    /// binding two filters select is reported under the first).
    AclsDeleted {
        removed: Vec<Vec<AclBinding>>,
    },
    /// AlterUserScramCredentials applied: per user, accepted or why not.
    UserScramCredentialsAltered {
        results: Vec<ScramAlterationResult>,
    },
    /// AlterClientQuotas applied.
    ClientQuotasAltered,
    /// The command was committed but rejected by validation; the image is unchanged
    /// except for `metadata_offset`.
    Error(MetadataError),
}

/// One partition's outcome of an [`MetadataCommand::ElectLeaders`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    pub topic_id: TopicId,
    pub partition: i32,
    pub outcome: Result<BrokerId, ElectionError>,
}

/// Why a partition got no (new) leader from ElectLeaders (Kafka's error codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ElectionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// Kafka's ELECTION_NOT_NEEDED: the wanted leader already leads.
    #[error("election not needed")]
    ElectionNotNeeded,
    /// Kafka's PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE.
    #[error("no eligible leader available")]
    EligibleLeadersNotAvailable,
}

/// One partition's outcome of an [`MetadataCommand::AlterPartitionReassignments`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentResult {
    pub topic_id: TopicId,
    pub partition: i32,
    /// `Ok(partition_epoch)`: accepted, and the partition epoch the change
    /// (and a completion it triggered) left, so a broker can wait until its
    /// own image has caught up with it.
    pub outcome: Result<i32, ReassignmentError>,
}

/// Why a partition's reassignment (or its cancellation) was refused (Kafka's
/// error codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReassignmentError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: ReplicaAssignmentError },
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel for a partition not being moved.
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
    /// INVALID_REPLICATION_FACTOR: the request (v1+) forbids changing the
    /// replication factor and the target would. Checked by the broker that
    /// takes the request, since it is a property of the request.
    #[error(
        "replication factor {current} cannot change to {target} (allowReplicationFactorChange is false)"
    )]
    InvalidReplicationFactor { current: usize, target: usize },
}

impl MetadataResponse {
    /// `Err` for [`MetadataResponse::Error`], `Ok(self)` otherwise.
    pub fn into_result(self) -> Result<MetadataResponse, MetadataError> {
        match self {
            MetadataResponse::Error(e) => Err(e),
            other => Ok(other),
        }
    }
}

/// Why a committed command was rejected. These are deterministic functions of the image
/// and the command, so every replica rejects the same commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetadataError {
    #[error("cluster id is already {existing:?}, refusing {requested:?}")]
    ClusterAlreadyInitialized { existing: String, requested: String },
    #[error("invalid cluster id {cluster_id:?}: must be non-empty")]
    InvalidClusterId { cluster_id: String },
    #[error("invalid broker registration for broker {broker_id}: {reason}")]
    InvalidBrokerRegistration {
        broker_id: BrokerId,
        reason: RegistrationError,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        name: String,
        reason: TopicNameError,
    },
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists { name: String },
    #[error("topic id {topic_id} is already in use")]
    TopicIdAlreadyExists { topic_id: TopicId },
    #[error("unknown topic id {topic_id}")]
    UnknownTopicId { topic_id: TopicId },
    #[error("invalid partitions: {reason}")]
    InvalidPartitions { reason: PartitionsError },
    #[error("invalid replica assignment for partition {partition}: {reason}")]
    InvalidReplicaAssignment {
        partition: i32,
        reason: ReplicaAssignmentError,
    },
    #[error("config {key:?} is both set and deleted in one request")]
    ConflictingConfigChange { key: String },
    #[error("invalid broker id {broker_id} for a broker config change")]
    InvalidConfigBrokerId { broker_id: BrokerId },
    /// A config change's compare-and-set failed: the resource's configs
    /// changed since the proposer read them (it reads again and retries).
    #[error("the configs changed since the change was computed")]
    ConfigsChanged,
    #[error(
        "producer id block of {count} ids requested by broker {broker_id}: must be positive, from a registered broker"
    )]
    InvalidProducerIdBlock { broker_id: BrokerId, count: i32 },
    /// Kafka's STALE_BROKER_EPOCH (or an unknown broker).
    #[error("broker {broker_id} epoch {broker_epoch} is not current")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    #[error("rejected AlterPartition: {reason}")]
    AlterPartition { reason: AlterPartitionError },
}

/// Why an AlterPartition was rejected, in Kafka's validation order; each maps to
/// the Kafka error code named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AlterPartitionError {
    /// UNKNOWN_TOPIC_ID / UNKNOWN_TOPIC_OR_PARTITION.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// NOT_LEADER_OR_FOLLOWER: the sender does not lead the partition.
    #[error("broker {broker_id} is not the leader (leader is {leader})")]
    NotLeader {
        broker_id: BrokerId,
        leader: BrokerId,
    },
    /// FENCED_LEADER_EPOCH: the leader epoch moved on.
    #[error("leader epoch {given} is not current ({current})")]
    FencedLeaderEpoch { given: i32, current: i32 },
    /// INVALID_UPDATE_VERSION: the partition epoch moved on (someone else changed it).
    #[error("partition epoch {given} is not current ({current})")]
    InvalidUpdateVersion { given: i32, current: i32 },
    /// INVALID_REQUEST: the ISR must hold the leader and only replicas, once each.
    #[error("invalid ISR {isr:?}: {why}")]
    InvalidIsr { isr: Vec<BrokerId>, why: String },
    /// INELIGIBLE_REPLICA: a fenced or shutting-down broker may not join the ISR.
    #[error("broker {broker_id} is fenced or shutting down and may not join the ISR")]
    IneligibleReplica { broker_id: BrokerId },
}

/// Why a broker registration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistrationError {
    #[error("broker id must be >= 0")]
    NegativeBrokerId,
    #[error("a broker needs at least one listener")]
    NoListeners,
    #[error("listener {name:?} is listed twice")]
    DuplicateListener { name: String },
    #[error("listener {name:?} has port 0")]
    ZeroPort { name: String },
}

/// Kafka's topic name rules (`org.apache.kafka.common.internals.Topic`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TopicNameError {
    #[error("empty")]
    Empty,
    #[error("\".\" and \"..\" are not allowed")]
    DotOrDotDot,
    #[error("{len} characters, the maximum is 249")]
    TooLong { len: usize },
    #[error("illegal character {ch:?}: only [a-zA-Z0-9._-] are allowed")]
    IllegalCharacter { ch: char },
    #[error("collides with existing topic {existing:?} ('.' and '_' collide in metric names)")]
    Collides { existing: String },
}

/// Why a partition count change was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PartitionsError {
    #[error("a topic needs at least one partition")]
    NoPartitions,
    #[error("the partition count can only grow; no new partitions given (current count {current})")]
    MustGrow { current: i32 },
    #[error("partition count {requested} exceeds i32")]
    TooMany { requested: usize },
}

/// Why one partition's replica list was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplicaAssignmentError {
    #[error("empty replica list")]
    Empty,
    #[error("broker {broker_id} is listed twice")]
    DuplicateReplica { broker_id: BrokerId },
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: BrokerId },
    #[error("{actual} replicas, but the topic's other partitions have {expected}")]
    InconsistentReplicationFactor { expected: usize, actual: usize },
}
