//! Requests and responses of the transaction coordinator in domain terms.
//! The gateway translates Kafka wire types to and from these.

use std::collections::BTreeSet;

use fjord_types::TopicPartition;

use super::{TransactionState, TxnError, TxnRecord};

/// What one coordinator call decided.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct TxnOutput<T> {
    /// The answer to the request, to send once `records` are committed.
    pub reply: T,
    /// To append to `__transaction_state`, in order, before answering.
    pub records: Vec<TxnRecord>,
    /// Markers to write, to start only once `records` are committed.
    pub markers: Vec<MarkerRequest>,
}

impl<T> TxnOutput<T> {
    pub(crate) fn reply(reply: T) -> Self {
        TxnOutput {
            reply,
            records: Vec::new(),
            markers: Vec::new(),
        }
    }
}

/// A producer id with its epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionResult {
    Commit,
    Abort,
}

/// "Write these markers": WriteTxnMarkers to the leaders of `partitions`
/// (the shell adds the coordinator epoch, the `__transaction_state`
/// partition's leader epoch). The shell calls
/// [`TransactionCoordinator::marker_written`](super::TransactionCoordinator::marker_written)
/// once per partition as each is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TransactionResult,
    pub partitions: BTreeSet<TopicPartition>,
}

/// InitProducerId.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// `None`: an idempotent producer, which just gets a producer id.
    pub transactional_id: Option<String>,
    pub transaction_timeout_ms: i32,
    /// KIP-360 (v3+): the producer id and epoch the producer has, when it
    /// has one (the wire's -1/-1 is `None`).
    pub expected: Option<ProducerIdAndEpoch>,
}

/// EndTxn. Its reply carries the producer id and epoch to go on with,
/// which only EndTxn v5 returns (Kafka answers -1/-1 under TV1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndTxnRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TransactionResult,
    /// The client's transaction version: 2 for EndTxn v5+ (KIP-890 part 2),
    /// 1 below.
    pub client_transaction_version: i16,
}

/// A transactional id's producer: who asks AddPartitionsToTxn,
/// AddOffsetsToTxn and the KIP-890 verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// DescribeTransactions data of one id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub state: TransactionState,
    pub timeout_ms: i32,
    /// -1 when no transaction was started.
    pub start_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: BTreeSet<TopicPartition>,
}

/// ListTransactions filters (empty: no filter).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListTransactionsFilter {
    /// State names (Kafka's); unknown ones come back in
    /// [`ListTransactionsData::unknown_state_filters`].
    pub states: Vec<String>,
    pub producer_ids: BTreeSet<i64>,
    /// v1: only transactions running for longer than this; -1: no filter.
    pub duration_ms: i64,
}

/// One listed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TransactionState,
}

/// ListTransactions data of one coordinator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListTransactionsData {
    pub unknown_state_filters: Vec<String>,
    pub transactions: Vec<TransactionListing>,
}

/// Per-partition answers of the KIP-890 verification (AddPartitionsToTxn
/// v4+ with VerifyOnly).
pub type VerifyResult = Vec<(TopicPartition, Result<(), TxnError>)>;
