//! What the runtime needs from the state machine of one shard
//! ([`CoordinatorShard`], Kafka's `CoordinatorShard`): its records and
//! their codec, replay, a snapshot to revert a failed write, the end of a
//! load, timers, and unloading. The group coordinator and the transaction
//! coordinator implement it (`group_shard`, `txn_shard`).
//!
//! A call on a shard returns a [`ShardOutput`]: the reply, the records to
//! append, and the shard type's *effects* (parked answers for groups,
//! marker requests for transactions), which the runtime hands to the
//! shard type's [`EffectSink`] once the records are committed, or with
//! the error when the append failed.

use bytes::Bytes;
use fjord_types::LeaderEpoch;
use kafka_protocol::records::Record;

use super::writer::WriteError;
use crate::wire::CodecError;

/// The state machine of one coordinator partition.
pub trait CoordinatorShard: Send + Sized + 'static {
    /// One record of the shard's topic.
    type Record: Send;
    /// The state a failed write reverts to; reads during a write see it.
    type Snapshot: Clone + Send + Sync + 'static;
    /// What a write decided besides its records and reply, carried out
    /// once the records are committed (or failed with the write's error).
    type Effects: Send + 'static;
    /// The error a caller gets.
    type Error: Clone + Send + 'static;

    /// The internal topic the shards live in.
    const TOPIC: &'static str;
    /// For logs: "group coordinator", "transaction coordinator".
    const NAME: &'static str;
    /// Whether a write whose records reached the local log but were not
    /// replicated in time keeps its state in memory (the group
    /// coordinator, as Kafka's runtime) or is reverted like a refused one
    /// (the transaction coordinator, as Kafka's `TransactionStateManager`,
    /// which moves to the new state only once the append succeeded: its
    /// effects — markers — must never follow a decision not known durable,
    /// and the log's record, if it commits, is acted on by the next load).
    const KEEP_UNREPLICATED_WRITES: bool;

    fn encode(record: &Self::Record) -> Result<(Bytes, Option<Bytes>), CodecError>;
    /// The producer whose transactional batch carries `record` (the
    /// group coordinator's TxnOffsetCommit records), `None` for the plain
    /// batches every other record goes in. A write's records share one
    /// batch, so they all answer alike.
    fn batch_producer(record: &Self::Record) -> Option<(i64, i16)> {
        let _ = record;
        None
    }
    /// One record read from the log, with its batch's flags (`Ok(None)`:
    /// nothing for this shard, e.g. a record without a key).
    fn decode(record: &Record) -> Result<Option<Self::Record>, CodecError>;

    /// Apply one record read from the log (a load).
    fn replay(&mut self, record: Self::Record);
    /// The load is over: what to write and do before serving.
    fn complete_load(&mut self, now_ms: i64) -> ShardOutput<Self, ()>;

    fn snapshot(&self) -> Self::Snapshot;
    fn restore(&mut self, snapshot: Self::Snapshot);

    /// When [`on_tick`](Self::on_tick) next has work to do.
    fn next_deadline(&self) -> Option<i64>;
    fn on_tick(&mut self, now_ms: i64) -> ShardOutput<Self, ()>;

    /// Leadership moved away: forget everything; what to tell the parked.
    fn unload(&mut self) -> Self::Effects;

    /// The caller's error when an append failed.
    fn append_error(err: &WriteError) -> Self::Error;
    fn not_coordinator() -> Self::Error;
    fn load_in_progress() -> Self::Error;
}

/// What one call on a shard decided.
pub struct ShardOutput<S: CoordinatorShard, T> {
    pub reply: T,
    /// To append, in order, as one batch, before anything else happens.
    pub records: Vec<S::Record>,
    pub effects: S::Effects,
}

/// A state machine's own output type, turned into a [`ShardOutput`] (so
/// the operations keep returning `CoordinatorOutput` / `TxnOutput`).
pub trait IntoShardOutput<S: CoordinatorShard> {
    type Reply;
    fn into_shard_output(self) -> ShardOutput<S, Self::Reply>;
}

impl<S: CoordinatorShard, T> IntoShardOutput<S> for ShardOutput<S, T> {
    type Reply = T;
    fn into_shard_output(self) -> ShardOutput<S, T> {
        self
    }
}

/// Which shard produced effects: its partition, and the leader epoch it
/// was loaded at (the transaction coordinator's epoch in its markers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardId {
    pub partition: i32,
    pub leader_epoch: LeaderEpoch,
}

/// Carries out a shard type's effects.
pub trait EffectSink<S: CoordinatorShard>: Send + Sync + 'static {
    /// The write's records are committed (or there were none), or the
    /// shard was unloaded.
    fn committed(&self, shard: ShardId, effects: S::Effects);
    /// The write's append failed with `error`.
    fn failed(&self, shard: ShardId, effects: S::Effects, error: &S::Error);
}
