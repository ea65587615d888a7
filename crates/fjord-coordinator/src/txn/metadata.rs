//! What the coordinator knows of one transactional id, and what it writes
//! of it to `__transaction_state`.

use std::collections::BTreeSet;

use fjord_types::TopicPartition;

use super::TransactionState;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// One transactional id (Kafka's `TransactionMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    /// The producer id the id's producer uses now.
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360: a producer that
    /// missed the rotation's answer retries with it), or [`NO_PRODUCER_ID`].
    pub previous_producer_id: i64,
    /// The producer id the next transaction moves to when the epoch is
    /// exhausted under per-transaction epoch bumps, or [`NO_PRODUCER_ID`].
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump made by InitProducerId with an
    /// expected epoch (so its retry gets the same answer), or
    /// [`NO_PRODUCER_EPOCH`]. In memory only, as in Kafka: a reload forgets it.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TransactionState,
    /// The partitions of the open (or completing) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the current transaction started, or -1.
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
    /// The transaction version the client uses (0-2; 2 is KIP-890 part 2).
    pub client_transaction_version: i16,
}

impl TransactionMetadata {
    /// The record that persists this metadata.
    pub fn to_value(&self) -> TransactionLogValue {
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: self.client_transaction_version,
        }
    }

    /// The metadata a loaded record rebuilds (Kafka's loader: no last epoch).
    pub fn from_value(transactional_id: String, value: TransactionLogValue) -> Self {
        TransactionMetadata {
            transactional_id,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.timeout_ms,
            state: value.state,
            partitions: value.partitions,
            start_timestamp_ms: value.start_timestamp_ms,
            last_update_timestamp_ms: value.last_update_timestamp_ms,
            client_transaction_version: value.client_transaction_version,
        }
    }

    /// The record of this metadata.
    pub fn to_record(&self) -> TxnRecord {
        TxnRecord::Metadata {
            transactional_id: self.transactional_id.clone(),
            value: self.to_value(),
        }
    }
}

/// Kafka's `TransactionLogValue`: the persisted part of a
/// [`TransactionMetadata`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: i64,
    /// Tagged field 0 (value v1+); -1 when absent.
    pub previous_producer_id: i64,
    /// Tagged field 1 (value v1+); -1 when absent.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TransactionState,
    /// Written as null in state Empty (as Kafka does); null reads as empty.
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// Tagged field 2 (value v1+); 0 when absent.
    pub client_transaction_version: i16,
}

/// A `__transaction_state` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnRecord {
    /// The id's metadata after a transition.
    Metadata {
        transactional_id: String,
        value: TransactionLogValue,
    },
    /// The id expired (null value): a reload forgets it.
    Tombstone { transactional_id: String },
}

impl TxnRecord {
    pub fn transactional_id(&self) -> &str {
        match self {
            TxnRecord::Metadata {
                transactional_id, ..
            }
            | TxnRecord::Tombstone { transactional_id } => transactional_id,
        }
    }
}
