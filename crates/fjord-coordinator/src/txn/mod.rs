//! Kafka's transaction coordinator as plain code: events in, decisions
//! out. No sockets, no timers, no log I/O. It runs as a shard type on the
//! coordinator runtime ([`crate::runtime::TransactionService`]), which the
//! gateway's transaction handlers reach through the broker's adapter.
//!
//! What it owns:
//! - [`TransactionCoordinator`]: the transactional ids of one
//!   `__transaction_state` partition, one method per Kafka API —
//!   InitProducerId (with KIP-360's expected producer id and epoch),
//!   AddPartitionsToTxn v0-3, the KIP-890 part 1 verification
//!   (AddPartitionsToTxn v4+ VerifyOnly), AddOffsetsToTxn, EndTxn, and the
//!   data of DescribeTransactions and ListTransactions — each returning a
//!   [`TxnOutput`]: the reply, the [`TxnRecord`]s to append and the
//!   [`MarkerRequest`]s to send once those are committed.
//! - [`TransactionMetadata`] and [`TransactionState`]: one transactional
//!   id and Kafka's eight states with their allowed transitions.
//! - [`codec`]: Kafka's `TransactionLogKey`/`TransactionLogValue` bytes.
//! - [`TransactionCoordinator::replay`] and
//!   [`TransactionCoordinator::complete_load`]: rebuilding from the log;
//!   transactions found in PrepareCommit/PrepareAbort get their markers
//!   requested again, as Kafka's coordinator does after a load.
//!
//! A transaction's life (TV1):
//! ```text
//!  InitProducerId ──► Empty ──AddPartitions/AddOffsets──► Ongoing ──EndTxn──► PrepareCommit|PrepareAbort
//!        ▲ (epoch+1)                                        │                      │ markers written
//!        └──────────── CompleteCommit|CompleteAbort ◄───────┼──────────────────────┘
//!                                                           │ InitProducerId (fence) or timeout:
//!                                                           └► PrepareEpochFence ─► PrepareAbort (epoch+1)
//!  idle (Empty/Complete*) for transactional.id.expiration.ms ─► Dead: tombstone, forgotten
//! ```
//!
//! Invariants:
//! - The shell appends a call's `records` with acks=all and waits until
//!   they are committed before it sends the reply or starts the markers;
//!   when the append fails it puts back a clone of the coordinator taken
//!   before the call. So the client hears of a commit only once
//!   PrepareCommit is durable, and markers are never sent for a decision
//!   that could be lost.
//! - For one transactional id the producer epoch never goes backwards and
//!   a producer id is replaced only by a newer one from the allocator; an
//!   epoch answered PRODUCER_FENCED never works again.
//! - Within one load, every Prepare* transaction requests its markers once
//!   per partition and writes Complete* only after every partition's
//!   marker was acknowledged ([`TransactionCoordinator::marker_written`]).
//! - Replaying the records the coordinator emitted rebuilds its
//!   transactional ids, except `last_producer_epoch`, which Kafka does not
//!   persist either.
//!
//! Departures from Kafka: timeouts and expiry run at their exact deadline
//! ([`TransactionCoordinator::next_deadline`]) rather than every 10 s and
//! every hour; a fence from InitProducerId that cannot be written is
//! undone by the shell's revert rather than remembered
//! (`hasFailedEpochFence`); an epoch already at i16::MAX is not bumped by
//! a fence or timeout; the KIP-890 part 2 per-transaction epoch bump
//! (behind [`TxnConfig::epoch_bump_per_transaction`], off) does not
//! recognise EndTxn retries at the previous epoch; ListTransactions v2's
//! TransactionalIdPattern is not filtered here; KIP-939 (2PC) is absent.

mod api;
pub mod codec;
mod coordinator;
mod describe;
mod errors;
mod metadata;
mod state;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests_coordinator;
#[cfg(test)]
mod tests_simulation;

pub use api::*;
pub use coordinator::{ProducerIdAllocator, TransactionCoordinator};
pub use errors::TxnError;
pub use metadata::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionLogValue, TransactionMetadata, TxnRecord,
};
pub use state::TransactionState;

/// The `__transaction_state` partition holding `transactional_id`: Kafka's
/// `partitionFor`, the same Java `String.hashCode` rule as groups.
pub use crate::offsets_topic::partition_for;

/// Kafka's internal topic of transaction metadata.
pub const TRANSACTION_STATE: &str = "__transaction_state";

/// Settings of the transaction coordinator, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i64,
    /// `offsets.topic.num.partitions`: where AddOffsetsToTxn finds a group.
    pub offsets_topic_partitions: i32,
    /// KIP-890 part 2 (`transaction.version` 2): bump the epoch at every
    /// EndTxn v5+. Off until the log side and the gateway support it.
    pub epoch_bump_per_transaction: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_topic_partitions: 50,
            epoch_bump_per_transaction: false,
        }
    }
}
