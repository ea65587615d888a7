//! Why a transaction coordinator request failed. Each variant is one Kafka
//! error code; the gateway maps them in its single error-code module.

use super::TransactionState;

/// A transaction coordinator request error (Kafka's error code in the doc
/// of each).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// INVALID_REQUEST: the transactional id is empty.
    #[error("the transactional id is empty")]
    EmptyTransactionalId,
    /// COORDINATOR_NOT_AVAILABLE (retriable): `__transaction_state` cannot
    /// be created yet, or the call's records could not be replicated.
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    /// NOT_COORDINATOR: this node no longer leads the id's partition.
    #[error("this node is not the transactional id's coordinator")]
    NotCoordinator,
    /// COORDINATOR_LOAD_IN_PROGRESS (retriable): the id's partition is still
    /// being replayed, or no producer id can be allocated right now (Kafka
    /// answers this while it waits for a new block of producer ids).
    #[error("the transaction coordinator is loading")]
    CoordinatorLoadInProgress,
    /// UNKNOWN_SERVER_ERROR: the records of the call could not be appended
    /// for a reason a retry does not fix.
    #[error("the transaction coordinator could not write the call's records")]
    UnknownServerError,
    /// INVALID_TRANSACTION_TIMEOUT
    #[error("transaction timeout {timeout_ms} ms is not in (0, {max_ms}]")]
    InvalidTransactionTimeout { timeout_ms: i32, max_ms: i32 },
    /// INVALID_PRODUCER_ID_MAPPING: the id is unknown or uses another
    /// producer id.
    #[error("producer id {producer_id} is not the transactional id's")]
    InvalidProducerIdMapping { producer_id: i64 },
    /// PRODUCER_FENCED: a newer producer (epoch) owns the transactional id.
    #[error("producer epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced { epoch: i16, current: i16 },
    /// INVALID_PRODUCER_EPOCH: kept for the leader's mapping of
    /// PRODUCER_FENCED for old Produce/TxnOffsetCommit versions (KIP-890);
    /// the coordinator itself answers PRODUCER_FENCED, as Kafka 4 does.
    #[error("producer epoch {epoch} is not the current epoch {current}")]
    InvalidProducerEpoch { epoch: i16, current: i16 },
    /// INVALID_TXN_STATE: the request does not fit the transaction's state
    /// (EndTxn without a transaction, commit after abort, ...).
    #[error("the transaction is {state}: the request does not apply")]
    InvalidTxnState { state: TransactionState },
    /// CONCURRENT_TRANSACTIONS (retriable): markers of the previous
    /// transaction are still being written, or a fence is in progress.
    #[error("the transaction is {state}: retry once it completes")]
    ConcurrentTransactions { state: TransactionState },
    /// TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactions).
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// TRANSACTION_ABORTABLE (KIP-890 verification): the partition is not
    /// in the producer's transaction.
    #[error("the partition is not part of the transaction")]
    TransactionAbortable,
}

impl TxnError {
    /// Kafka's error code for it (the gateway's answers, and what a
    /// partition leader hears back from a verification).
    pub fn kafka_error(&self) -> kafka_protocol::ResponseError {
        use kafka_protocol::ResponseError as E;
        match self {
            TxnError::EmptyTransactionalId => E::InvalidRequest,
            TxnError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
            TxnError::NotCoordinator => E::NotCoordinator,
            TxnError::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress,
            TxnError::UnknownServerError => E::UnknownServerError,
            TxnError::InvalidTransactionTimeout { .. } => E::InvalidTransactionTimeout,
            TxnError::InvalidProducerIdMapping { .. } => E::InvalidProducerIdMapping,
            TxnError::ProducerFenced { .. } => E::ProducerFenced,
            TxnError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch,
            TxnError::InvalidTxnState { .. } => E::InvalidTxnState,
            TxnError::ConcurrentTransactions { .. } => E::ConcurrentTransactions,
            TxnError::TransactionalIdNotFound => E::TransactionalIdNotFound,
            TxnError::TransactionAbortable => E::TransactionAbortable,
        }
    }
}
