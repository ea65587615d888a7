//! The group coordinator as a shard type: [`GroupCoordinator`] over
//! `__consumer_offsets`; its effects are the answers of parked
//! JoinGroup/SyncGroup requests.

use bytes::Bytes;
use kafka_protocol::records::Record;

use super::coordinator_shard::{CoordinatorShard, IntoShardOutput, ShardOutput};
use super::writer::{WriteError, append_error};
use crate::CONSUMER_OFFSETS;
use crate::group::{
    CoordinatorOutput, DelayedResponse, GroupCoordinator, GroupError, GroupRecord, GroupsSnapshot,
    codec,
};
use crate::wire::CodecError;

impl CoordinatorShard for GroupCoordinator {
    type Record = GroupRecord;
    type Snapshot = GroupsSnapshot;
    type Effects = Vec<DelayedResponse>;
    type Error = GroupError;

    const TOPIC: &'static str = CONSUMER_OFFSETS;
    const NAME: &'static str = "group coordinator";
    const KEEP_UNREPLICATED_WRITES: bool = true;

    fn encode(record: &GroupRecord) -> Result<(Bytes, Option<Bytes>), CodecError> {
        codec::try_encode(record)
    }

    fn batch_producer(record: &GroupRecord) -> Option<(i64, i16)> {
        match record {
            GroupRecord::TxnOffset {
                producer_id,
                producer_epoch,
                ..
            } => Some((*producer_id, *producer_epoch)),
            _ => None,
        }
    }

    /// Transactional offset commits and transaction markers included.
    fn decode(record: &Record) -> Result<Option<GroupRecord>, CodecError> {
        codec::decode_batch_record(record)
    }

    fn replay(&mut self, record: GroupRecord) {
        GroupCoordinator::replay(self, record);
    }

    fn complete_load(&mut self, now_ms: i64) -> ShardOutput<Self, ()> {
        GroupCoordinator::complete_load(self, now_ms);
        ShardOutput {
            reply: (),
            records: Vec::new(),
            effects: Vec::new(),
        }
    }

    fn snapshot(&self) -> GroupsSnapshot {
        GroupCoordinator::snapshot(self)
    }

    fn restore(&mut self, snapshot: GroupsSnapshot) {
        GroupCoordinator::restore(self, snapshot);
    }

    fn next_deadline(&self) -> Option<i64> {
        GroupCoordinator::next_deadline(self)
    }

    fn on_tick(&mut self, now_ms: i64) -> ShardOutput<Self, ()> {
        GroupCoordinator::on_tick(self, now_ms).into_shard_output()
    }

    fn unload(&mut self) -> Vec<DelayedResponse> {
        GroupCoordinator::unload(self, |_| true).delayed
    }

    fn append_error(err: &WriteError) -> GroupError {
        append_error(err)
    }

    fn not_coordinator() -> GroupError {
        GroupError::NotCoordinator
    }

    fn load_in_progress() -> GroupError {
        GroupError::CoordinatorLoadInProgress
    }
}

impl<T> IntoShardOutput<GroupCoordinator> for CoordinatorOutput<T> {
    type Reply = T;
    fn into_shard_output(self) -> ShardOutput<GroupCoordinator, T> {
        ShardOutput {
            reply: self.reply,
            records: self.records,
            effects: self.delayed,
        }
    }
}
