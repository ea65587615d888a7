//! fjord-controller: the metadata quorum.
//!
//! # What it owns
//!
//! The cluster metadata image ([`MetadataImage`]: cluster id, registered brokers, topics,
//! partitions with replicas / ISR / leader / epochs, topic configs) and the Raft node
//! (openraft `=0.10.0-alpha.37`) that orders every change to it. A change is a
//! [`MetadataCommand`] in the Raft log; [`MetadataImage::apply`] validates and applies
//! it, deterministically, when it is committed. The crate also holds the pure replica
//! placement rule ([`assign_replicas`]), the controller-to-controller transport over
//! gRPC (Raft traffic, forwarded writes and heartbeats, learners joining), and broker
//! liveness (heartbeats, session expiry) on the active controller.
//!
//! # Layout
//!
//! - `command.rs` — [`MetadataCommand`], [`MetadataResponse`], [`MetadataError`].
//! - `image.rs` — [`MetadataImage`] and `apply` (pure; table-driven tests).
//! - `election.rs` — fencing, controlled shutdown, AlterPartition, ElectLeaders (pure).
//! - `reassignment.rs` — AlterPartitionReassignments: start, complete, cancel (pure).
//! - `placement.rs` — [`assign_replicas`] (pure).
//! - `types.rs` — the openraft type config ([`TypeConfig`]: NodeId = `u64` = Kafka
//!   `node.id`, Node = [`ControllerNode`], D = `MetadataCommand`, R = `MetadataResponse`).
//! - `log_store.rs` — the Raft log on RocksDB (`<data_dir>/raft/`): column family
//!   `logs` keyed by big-endian index, `meta` with vote, committed, last purged.
//! - `snapshot_store.rs` — snapshot files in `<data_dir>/snapshots/`.
//! - `state_machine.rs` — openraft's state machine over the in-memory image.
//! - `grpc_network.rs` — [`GrpcNetworkFactory`]: the Raft transport over
//!   `ControllerService` (`proto/fjord.proto`), openraft messages as JSON, one lazily
//!   connected tonic channel per peer address shared with write forwarding.
//! - `service.rs` — [`ControllerRpc`], the receiving side of `ControllerService`.
//! - `status.rs` — [`RaftStatus`]: leader, term, applied and committed index, for
//!   health checks and metrics.
//! - `liveness.rs` — broker sessions on the leader ([`Heartbeat`], [`HeartbeatState`]),
//!   pure code over an explicit `now`.
//! - `controller.rs` — [`Controller`], the handle the server uses.
//!
//! # Using it
//!
//! ```text
//! let controller = Controller::open(config).await?;        // RocksDB + Raft, no waiting
//! server.add_service(controller.rpc_service());             // serve it (with ReplicaService)
//! controller.ready().await?;                                // join the quorum
//! controller.write(cmd).await?;                             // on any node
//! controller.heartbeat(hb).await?;                          // brokers, every 2 s
//! let image = controller.image();                           // watch the committed image
//! ```
//!
//! The RPC server must listen before `ready` (voters must reach each other to elect a
//! leader). [`Controller::start`] is `open` + `ready` and is enough for a single voter,
//! which needs no RPC server at all.
//!
//! - **Voters** (`node_id` in `voters`): on a fresh store every voter initializes the
//!   quorum with the whole configured voter set; the membership entry is identical on
//!   all of them, so it does not matter who does it first, and a voter that starts
//!   after the others formed the quorum is simply brought up to date. Pre-vote is on,
//!   so a (re)starting voter cannot depose a healthy leader.
//! - **Learners** (broker-only nodes, `node_id` not in `voters`, own `rpc_addr` set):
//!   never initialize; `ready` asks the voters (following `not_leader` hints) to add
//!   them with `add_learner`, then they receive the log like a voter (deltas by
//!   AppendEntries, a snapshot when far behind) without voting. Their
//!   [`Controller::image`] is the metadata stream of a broker-only node.
//! - `ready` waits (up to `startup_timeout_ms`, default 120 s, logging every 5 s) for a
//!   leader, lets the leader write `InitCluster` when the image has no cluster id, and
//!   returns once the local image has the cluster id and the committed log applied.
//! - [`Controller::write`] and [`Controller::heartbeat`] work on every node: the leader
//!   runs them; any other node forwards them over gRPC to the leader it knows, retrying
//!   (50 ms doubling to 500 ms) on not-leader, no leader yet or unreachable, until
//!   `write_timeout_ms` (default 10 s).
//! - The leader tracks broker heartbeats (Kafka KRaft semantics): every 250 ms it
//!   writes `FenceBroker` for an unfenced broker silent for `broker_session_timeout_ms`
//!   (default 9 s; a new leader first gives every broker a full timeout of grace); a
//!   fenced broker heartbeating with its current epoch and caught up to it is
//!   unfenced; `want_shut_down` writes `ControlledShutdown` once and then answers
//!   `shutdown_ready`; a wrong epoch answers `stale_broker_epoch`.
//! - Early fencing (`failure_detector`, `unreachable`; `broker_fast_fencing_enable`):
//!   [`Controller::report_unreachable`] (forwarded like heartbeats) tells the leader a
//!   broker cannot reach a peer; the leader connects to the peer's gRPC port itself and
//!   writes `FenceBroker` at once when the connection is refused, or when several
//!   peers report it, its own connect gets no answer and the peer's heartbeats
//!   stopped. Anything less waits for the session timeout.
//!
//! # Invariants
//!
//! - `apply` is a pure function of (image, index, command): every replica and every
//!   replay after a restart reach the same image. Rejected commands change nothing but
//!   `metadata_offset`, which always equals the index of the last applied entry.
//! - `topic_ids` is the exact inverse of `topics[*].name`; new partitions start with
//!   ISR = replicas, leader = first replica, epochs 0; `broker_epoch` is the offset of
//!   the registration that created the broker's current incarnation.
//! - Durability: log appends, votes, truncations and purges are synced
//!   (`WriteOptions::sync`) before openraft is told they are flushed; snapshots are
//!   written to a temp file, fsynced, renamed and the directory fsynced. The image
//!   itself lives only in memory and is rebuilt on start from the newest snapshot plus
//!   the committed log after it (openraft re-applies; `committed` is persisted).
//! - The log stays bounded: openraft snapshots every `snapshot_every_logs` entries and
//!   purges the log up to one interval behind the snapshot.
//! - RocksDB and file I/O run on tokio's blocking pool, never on async worker threads.
//! - A quorum is initialized only on a fresh store; a restart never re-initializes, and
//!   a learner never initializes.
//! - A request forwarded to a node that is not the leader is answered `not_leader`,
//!   never forwarded again: no loops.
//! - [`Controller::image`] is updated before a local write's response is sent: when
//!   [`Controller::write`] returns on the leader, its image shows the result; other
//!   nodes see it once replicated (typically within one heartbeat interval).
//! - Liveness state is soft, leader-local and never replicated: only the commands it
//!   writes are.
//!
//! # Not done yet
//!
//! - **Membership changes.** The voter set is fixed at first start; a changed
//!   `voters` config is ignored with a warning (the stored quorum wins). Learners are
//!   never removed from the membership (a decommissioned broker stays a learner that
//!   the leader keeps trying to reach, with backoff).
//! - A forwarded write whose connection breaks after the request was sent (tonic
//!   reports `Unavailable`) is retried: it may then be applied twice. Commands are
//!   deterministic in apply, so a duplicate is either a no-op or a rejected command
//!   whose error the caller sees instead of the first result. A forwarded write that
//!   gets no answer before `write_timeout_ms` is reported as `WriteOutcomeUnknown`.
//! - No TLS or authentication between nodes.
//! - A full snapshot is one gRPC message (limit 256 MiB), not a chunked stream.
//! - Topic config values are stored as given; validating them is the gateway's job.

mod acl;
mod command;
mod controller;
mod election;
mod failure_detector;
mod grpc_network;
mod image;
mod liveness;
mod log_store;
mod placement;
mod quota;
mod reassignment;
mod scram;
mod service;
mod snapshot_store;
mod state_machine;
mod status;
#[cfg(test)]
mod test_support;
mod types;
mod unreachable;

pub use acl::AclBinding;
pub use acl::AclBindingFilter;
pub use acl::AclImage;
pub use acl::AclOperation;
pub use acl::AclPatternFilter;
pub use acl::AclPatternType;
pub use acl::AclPermission;
pub use acl::AclResourceType;
pub use acl::CLUSTER_RESOURCE_NAME;
pub use acl::WILDCARD;
pub use command::AlterPartitionError;
pub use command::ElectionError;
pub use command::ElectionResult;
pub use command::ElectionType;
pub use command::MetadataCommand;
pub use command::MetadataError;
pub use command::MetadataResponse;
pub use command::PartitionsError;
pub use command::ReassignmentError;
pub use command::ReassignmentResult;
pub use command::RegistrationError;
pub use command::ReplicaAssignmentError;
pub use command::TopicNameError;
pub use controller::ConfigError;
pub use controller::Controller;
pub use controller::ControllerConfig;
pub use controller::ControllerError;
pub use controller::DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS;
pub use controller::DEFAULT_BROKER_SESSION_TIMEOUT_MS;
pub use controller::DEFAULT_STARTUP_TIMEOUT_MS;
pub use controller::DEFAULT_WRITE_TIMEOUT_MS;
pub use controller::RAFT_DIR;
pub use controller::SNAPSHOT_DIR;
pub use controller::random_cluster_id;
pub use grpc_network::GrpcNetwork;
pub use grpc_network::GrpcNetworkFactory;
pub use grpc_network::PeerError;
pub use image::BrokerRegistration;
pub use image::DynamicBrokerConfigs;
pub use image::Listener;
pub use image::MAX_TOPIC_NAME_LEN;
pub use image::MetadataImage;
pub use image::PartitionRegistration;
pub use image::TopicImage;
pub use image::validate_topic_name;
pub use liveness::Heartbeat;
pub use liveness::HeartbeatState;
pub use liveness::UnreachableReport;
pub use log_store::LogStoreError;
pub use placement::PlacementError;
pub use placement::assign_replicas;
pub use quota::ClientQuotaAlteration;
pub use quota::ClientQuotaEntity;
pub use quota::ClientQuotaImage;
pub use quota::QuotaEntityName;
pub use quota::QuotaKey;
pub use quota::QuotaValue;
pub use scram::RequestedDeletion;
pub use scram::RequestedUpsertion;
pub use scram::ScramAlteration;
pub use scram::ScramAlterationResult;
pub use scram::ScramCredentialError;
pub use scram::ScramDeletion;
pub use scram::ScramDescribeError;
pub use scram::ScramImage;
pub use scram::ScramUpsertion;
pub use scram::ScramUserDescription;
pub use service::ControllerRpc;
pub use snapshot_store::SnapshotError;
pub use state_machine::MetadataSnapshotBuilder;
pub use state_machine::MetadataStateMachine;
pub use status::RaftStatus;
pub use types::ControllerNode;
pub use types::ControllerRaft;
pub use types::NodeId;
pub use types::SnapshotData;
pub use types::TypeConfig;
pub use types::broker_id_of;
pub use types::node_id_of;
