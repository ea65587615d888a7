//! `fjord-coordinator`: Kafka's group and transaction coordinators, without
//! the broker.
//!
//! What it owns:
//! - [`group`]: the classic consumer-group state machine as plain code
//!   (events in, decisions and records out) and the codec of Kafka's
//!   `__consumer_offsets` records.
//! - [`runtime`]: the coordinator runtime around them (Kafka's
//!   `coordinator-common` shape), generic over the shard's state machine
//!   ([`runtime::CoordinatorShard`]): one shard per led partition of the
//!   shard type's topic with its own lock; apply → append (acks=all) →
//!   wait → reply; revert on a failed append; shards loaded in the
//!   background as leadership moves; the timers. Two instances:
//!   [`GroupService`] over `__consumer_offsets` and
//!   [`runtime::TransactionService`] over `__transaction_state` (with the
//!   [`runtime::MarkerSender`] seam for markers).
//! - [`offsets_topic`]: the topic's name and which partition holds a group.
//! - [`txn`]: Kafka's transaction coordinator for one `__transaction_state`
//!   partition as plain code (InitProducerId, AddPartitionsToTxn and the
//!   KIP-890 verification, AddOffsetsToTxn, EndTxn with its markers,
//!   timeouts, expiry, Describe/ListTransactions data, replay) and the
//!   codec of Kafka's `__transaction_state` records. Runs on the runtime;
//!   not reachable by clients yet.
//! - `wire` (private): Kafka's primitive encodings both codecs share.
//!
//! The node that hosts `__consumer_offsets` and `__transaction_state`
//! supplies their partitions through [`runtime::PartitionWriter`] (append with acks=all, read from the log
//! start, the leader epoch) and tells the runtime which partitions it
//! became leader or follower of; this crate never sees the broker, as
//! Kafka's `group-coordinator` never sees `core`.
//!
//! Invariants:
//! - A caller is answered success only after the records of its call are
//!   committed (the high watermark passed them); a write refused before
//!   anything was written leaves the shard as it was before the call.
//! - A shard's memory agrees with its partition's log: replaying the log
//!   rebuilds the persisted part of the shard's state.
//! - A request for a group whose partition this node does not lead gets
//!   NOT_COORDINATOR; one whose partition is still loading gets
//!   COORDINATOR_LOAD_IN_PROGRESS.

pub mod group;
pub mod offsets_topic;
pub mod runtime;
pub mod txn;
mod wire;

pub use offsets_topic::{CONSUMER_OFFSETS, partition_for};
pub use runtime::{GroupOffset, GroupService, GroupServiceConfig};
