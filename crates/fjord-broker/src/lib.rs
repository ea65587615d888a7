//! `fjord-broker`: the partitions a node hosts and the operations on them.
//!
//! What it owns:
//! - [`Broker`]: registers with the controller, follows committed metadata
//!   (opening, updating and deleting partition logs to match it) and serves
//!   produce, fetch and offset lookups in domain terms; it owns the
//!   services below and hands them out.
//! - [`AdminService`](admin::AdminService): topic administration, leader
//!   elections and reassignments, configs and ACLs, through the controller.
//! - [`Authorizer`](authorizer::Authorizer): Kafka's StandardAuthorizer
//!   over an immutable snapshot of the applied image's ACLs, swapped in
//!   whole (no lock on the request path) by the metadata follower.
//! - [`ScramCredentialStore`](scram_credentials::ScramCredentialStore): the
//!   applied image's SCRAM credentials, swapped in whole like the ACLs.
//! - [`QuotaManager`](quota::QuotaManager): Kafka's client quotas (byte
//!   rates and request time per user and client id) over a snapshot of the
//!   applied image's quotas, swapped in like the authorizer's.
//! - [`ProducerIdService`](producer_ids::ProducerIdService): producer id blocks.
//! - [`MetadataCache`](metadata_cache::MetadataCache): the applied image.
//! - [`ReplicaManager`](replica_manager::ReplicaManager): the partitions hosted here.
//! - [`Partition`](partition::Partition): one replica's log, leadership and
//!   high watermark.
//! - [`LeaderState`](leader_state::LeaderState): the ISR / high-watermark
//!   rules as plain code.
//! - `produce_validation`: what a client may not write with Produce (control
//!   and, until transactions exist, transactional batches), checked before
//!   anything is appended; followers store the leader's batches as given.
//!
//! Invariants:
//! - A record is visible to consumers only below the high watermark, which
//!   is the minimum log end offset over the ISR and never moves backwards.
//! - acks=all answers only once the high watermark passed the batch, and is
//!   refused with NOT_ENOUGH_REPLICAS when the ISR is below
//!   `min.insync.replicas`.
//! - Metadata clients see (`Broker::metadata`) is the image whose logs are
//!   already open here.
//! - No lock spans partitions on the produce or fetch path: the partition
//!   map is read-locked only to clone an `Arc`.
//!
//! - `group_service`: the broker's side of the group coordinator
//!   (`fjord-coordinator`): it owns the coordinator's runtime, supplies the
//!   `__consumer_offsets` partitions to it through the coordinator's
//!   `PartitionWriter`, forwards leadership changes of those partitions, and
//!   offers the group APIs on [`Broker`]. Its `spawn_coordinator_runtime`
//!   runs any coordinator runtime's timer and leadership forwarding.
//! - [`txn_service`]: the broker's side of the transaction coordinator
//!   (not reachable by clients yet): `__transaction_state` through the same
//!   writer, producer ids from this broker's blocks, markers written on
//!   partition leaders (locally, or over the `WriteTxnMarkers` RPC).
//! - `internal_topics`: creating the coordinators' topics on first use,
//!   never with fewer replicas than configured.
//!
//! - [`replication`]: the leader side of replica fetch (a gRPC service,
//!   which also serves WriteTxnMarkers) and
//!   the follower side (one fetcher per leader node), with ISR changes
//!   proposed to the controller (AlterPartition); divergence rules in
//!   [`truncation`].
//!
//! - [`log_cleaner`]: the log cleaner manager: every replica's compacted
//!   log, dirtiest first, one pass at a time on a blocking thread; the
//!   partition lock is held only to plan and to swap (`log.cleaner.*`).
//! - [`log_dir_failure`]: the one fault handler for log I/O failures: the
//!   first one takes the (single) log directory offline — its partitions
//!   answer KAFKA_STORAGE_ERROR — and stops the node.
//!
//! Not yet here (next issues): the transaction APIs for clients
//! (transactional produce, TxnOffsetCommit, the gateway handlers).

pub mod admin;
pub mod authorizer;
mod broker;
pub mod config;
mod dynamic_config;
pub mod error;
pub mod group_service;
mod heartbeat;
mod hw_checkpoint;
mod internal_topics;
pub mod leader_state;
pub mod log_cleaner;
pub mod log_dir_failure;
mod log_dirs;
mod metadata_applier;
pub mod metadata_cache;
mod parallel;
pub mod partition;
mod produce_validation;
pub mod producer_ids;
pub mod quota;
pub mod replica_manager;
pub mod replication;
pub mod scram_credentials;
pub mod truncation;
pub mod txn_service;
pub mod types;

pub use admin::{AdminService, ElectionOutcome, OngoingReassignment, ReassignmentOutcome};
pub use broker::Broker;
pub use broker::LocalReplicaChanges;
pub use config::{
    AdvertisedListener, BrokerConfig, DEFAULT_LISTENER, REPLICATION_LISTENER, ReplicationConfig,
};
pub use error::{AdminError, BrokerError, PartitionError, RecordError, RecordErrorKind};
pub use fjord_controller::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternFilter, AclPatternType, AclPermission,
    AclResourceType, CLUSTER_RESOURCE_NAME, WILDCARD,
};
pub use fjord_controller::{
    BrokerRegistration, Controller, ElectionError, ElectionType, Listener, MetadataImage,
    PartitionRegistration, ReassignmentError, ReplicaAssignmentError, TopicImage,
};
pub use fjord_controller::{
    ClientQuotaAlteration, ClientQuotaEntity, QuotaEntityName, QuotaKey, QuotaValue,
    RequestedDeletion, RequestedUpsertion, ScramAlteration, ScramAlterationResult,
    ScramCredentialError, ScramDescribeError, ScramUserDescription,
};
pub use metadata_applier::LocalReplicaChange;
pub use types::*;
