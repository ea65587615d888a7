//! Kafka's transaction coordinator as plain code (placeholder docs).

pub mod codec;
mod errors;
mod metadata;
mod state;

pub use errors::TxnError;
pub use metadata::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionLogValue, TransactionMetadata, TxnRecord,
};
pub use state::TransactionState;

/// Kafka's internal topic of transaction metadata.
pub const TRANSACTION_STATE: &str = "__transaction_state";

/// The `__transaction_state` partition holding `transactional_id`: Kafka's
/// `partitionFor`, the same Java `String.hashCode` rule as groups.
pub use crate::offsets_topic::partition_for;
