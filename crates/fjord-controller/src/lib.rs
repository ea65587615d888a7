//! fjord-controller: the metadata quorum.
//!
//! # What it owns
//!
//! The cluster metadata image ([`MetadataImage`]: cluster id, registered brokers, topics,
//! partitions with replicas / ISR / leader / epochs, topic configs) and the Raft node
//! (openraft `=0.10.0-alpha.37`) that orders every change to it. A change is a
//! [`MetadataCommand`] in the Raft log; [`MetadataImage::apply`] validates and applies
//! it, deterministically, when it is committed. The crate also holds the pure replica
//! placement rule ([`assign_replicas`]).
//!
//! # Layout
//!
//! - `command.rs` — [`MetadataCommand`], [`MetadataResponse`], [`MetadataError`].
//! - `image.rs` — [`MetadataImage`] and `apply` (pure; table-driven tests).
//! - `placement.rs` — [`assign_replicas`] (pure).
//! - `types.rs` — the openraft type config ([`TypeConfig`]: NodeId = `u64` = Kafka
//!   `node.id`, Node = [`ControllerNode`], D = `MetadataCommand`, R = `MetadataResponse`).
//! - `log_store.rs` — the Raft log on RocksDB (`<data_dir>/raft/`): column family
//!   `logs` keyed by big-endian index, `meta` with vote, committed, last purged.
//! - `snapshot_store.rs` — snapshot files in `<data_dir>/snapshots/`.
//! - `state_machine.rs` — openraft's state machine over the in-memory image.
//! - `network.rs` — a network that reaches nobody (see below).
//! - `controller.rs` — [`Controller`], the handle the server uses.
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
//! - A quorum is initialized only on a fresh store; a restart never re-initializes.
//! - [`Controller::image`] is updated before a write's response is sent: when
//!   [`Controller::write`] returns, the image shows the result.
//!
//! # Not done yet
//!
//! - **Multi-voter quorums.** There is no controller-to-controller transport:
//!   [`UnreachableNetworkFactory`] answers every RPC with `Unreachable`, and
//!   [`Controller::start`] refuses voter sets other than `{self}`. The gRPC transport is
//!   the next issue; it plugs in through [`Controller::start_with_network`] and
//!   [`Controller::raft`] (the receiving side), and must also decide multi-voter
//!   bootstrap and membership changes.
//! - Broker heartbeats, fencing and leader election from the ISR, AlterPartition,
//!   producer-id blocks, ACLs, quotas, and the delta stream to brokers: brokers follow
//!   the whole image through [`Controller::image`] for now.
//! - Topic config values are stored as given; validating them is the gateway's job.

mod command;
mod controller;
mod election;
mod image;
mod log_store;
mod network;
mod placement;
mod snapshot_store;
mod state_machine;
mod types;

pub use command::AlterPartitionError;
pub use command::ElectionError;
pub use command::ElectionResult;
pub use command::ElectionType;
pub use command::MetadataCommand;
pub use command::MetadataError;
pub use command::MetadataResponse;
pub use command::PartitionsError;
pub use command::RegistrationError;
pub use command::ReplicaAssignmentError;
pub use command::TopicNameError;
pub use controller::ConfigError;
pub use controller::Controller;
pub use controller::ControllerConfig;
pub use controller::ControllerError;
pub use controller::RAFT_DIR;
pub use controller::SNAPSHOT_DIR;
pub use controller::random_cluster_id;
pub use image::BrokerRegistration;
pub use image::Listener;
pub use image::MAX_TOPIC_NAME_LEN;
pub use image::MetadataImage;
pub use image::PartitionRegistration;
pub use image::TopicImage;
pub use image::validate_topic_name;
pub use log_store::LogStoreError;
pub use network::NoTransport;
pub use network::UnreachableNetwork;
pub use network::UnreachableNetworkFactory;
pub use placement::PlacementError;
pub use placement::assign_replicas;
pub use snapshot_store::SnapshotError;
pub use state_machine::MetadataSnapshotBuilder;
pub use state_machine::MetadataStateMachine;
pub use types::ControllerNode;
pub use types::ControllerRaft;
pub use types::NodeId;
pub use types::SnapshotData;
pub use types::TypeConfig;
pub use types::broker_id_of;
pub use types::node_id_of;
