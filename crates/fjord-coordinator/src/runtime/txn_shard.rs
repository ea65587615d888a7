//! The transaction coordinator as a shard type: [`TransactionCoordinator`]
//! over `__transaction_state`; its effects are the marker requests of a
//! write, to send once its records (Prepare*) are committed.

use bytes::Bytes;
use kafka_protocol::records::Record;

use super::coordinator_shard::{CoordinatorShard, IntoShardOutput, ShardOutput};
use super::writer::{AppendFailure, WriteError};
use crate::txn::{
    MarkerRequest, TRANSACTION_STATE, TransactionCoordinator, TxnError, TxnOutput, TxnRecord, codec,
};
use crate::wire::CodecError;

impl CoordinatorShard for TransactionCoordinator {
    type Record = TxnRecord;
    /// The whole coordinator: its pending markers are reverted too.
    type Snapshot = TransactionCoordinator;
    type Effects = Vec<MarkerRequest>;
    type Error = TxnError;

    const TOPIC: &'static str = TRANSACTION_STATE;
    const NAME: &'static str = "transaction coordinator";
    /// A PrepareX written but not replicated in time is reverted: the
    /// client hears COORDINATOR_NOT_AVAILABLE and retries EndTxn from
    /// Ongoing; no marker goes out for it.
    const KEEP_UNREPLICATED_WRITES: bool = false;

    fn encode(record: &TxnRecord) -> Result<(Bytes, Option<Bytes>), CodecError> {
        codec::encode(record)
    }

    /// Transaction markers hold no coordinator record.
    fn decode(record: &Record) -> Result<Option<TxnRecord>, CodecError> {
        match record.key.as_deref() {
            Some(key) if !record.control => codec::decode(key, record.value.as_deref()),
            _ => Ok(None),
        }
    }

    fn replay(&mut self, record: TxnRecord) {
        TransactionCoordinator::replay(self, record);
    }

    fn complete_load(&mut self, now_ms: i64) -> ShardOutput<Self, ()> {
        TransactionCoordinator::complete_load(self, now_ms).into_shard_output()
    }

    fn snapshot(&self) -> TransactionCoordinator {
        self.clone()
    }

    fn restore(&mut self, snapshot: TransactionCoordinator) {
        *self = snapshot;
    }

    fn next_deadline(&self) -> Option<i64> {
        TransactionCoordinator::next_deadline(self)
    }

    fn on_tick(&mut self, now_ms: i64) -> ShardOutput<Self, ()> {
        TransactionCoordinator::on_tick(self, now_ms).into_shard_output()
    }

    /// Markers in flight are dropped: the next coordinator resends them
    /// after its load.
    fn unload(&mut self) -> Vec<MarkerRequest> {
        TransactionCoordinator::unload(self);
        Vec::new()
    }

    /// Kafka's transaction coordinator answers as the group coordinator
    /// does (`TransactionStateManager.appendTransactionToLog`).
    fn append_error(err: &WriteError) -> TxnError {
        match err.failure() {
            AppendFailure::NotCoordinator => TxnError::NotCoordinator,
            AppendFailure::CoordinatorNotAvailable => TxnError::CoordinatorNotAvailable,
            AppendFailure::UnknownServerError => TxnError::UnknownServerError,
        }
    }

    fn not_coordinator() -> TxnError {
        TxnError::NotCoordinator
    }

    fn load_in_progress() -> TxnError {
        TxnError::CoordinatorLoadInProgress
    }
}

impl<T> IntoShardOutput<TransactionCoordinator> for TxnOutput<T> {
    type Reply = T;
    fn into_shard_output(self) -> ShardOutput<TransactionCoordinator, T> {
        ShardOutput {
            reply: self.reply,
            records: self.records,
            effects: self.markers,
        }
    }
}
