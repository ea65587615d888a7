//! The group APIs on the runtime: each finds its group's shard, runs a
//! write (apply → append → wait → reply) or a read on it, and answers.
//! Reads (OffsetFetch, DescribeGroups, ListGroups) do not wait behind a
//! write in flight: they answer from the state before it.

use fjord_types::{Offset, TopicPartition};

use super::GroupService;
use crate::group::{
    CoordinatorOutput, DelayedResponse, GroupCoordinator, GroupDescription, GroupError,
    GroupListing, GroupState, HeartbeatRequest, JoinGroupRequest, JoinGroupResult,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest, OffsetFetchRequest,
    OffsetFetchResponse, PartitionResults, Reply, RequestToken, SyncGroupRequest, SyncGroupResult,
    TxnOffsetCommitRequest,
};
use crate::txn::TransactionResult;

/// One committed offset of a group (see [`GroupService::coordinated_offsets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffset {
    pub group_id: String,
    pub tp: TopicPartition,
    pub offset: Offset,
}

impl GroupService {
    /// Run a Join/Sync write under a fresh request token and answer now or
    /// once the phase completes (the token is parked before the write, so
    /// no answer is missed).
    async fn parked<R>(
        &self,
        group_id: &str,
        op: impl FnOnce(
            &mut GroupCoordinator,
            RequestToken,
            i64,
        ) -> CoordinatorOutput<Reply<Result<R, GroupError>>>,
        unpack: fn(DelayedResponse) -> Option<Result<R, GroupError>>,
    ) -> Result<R, GroupError> {
        let shard = self.shard_for(group_id)?;
        let token = self.token();
        let rx = self.park(token);
        let reply = match shard.lock(&self.runtime).await {
            Ok(mut locked) => {
                self.runtime
                    .write(&mut locked, |c, now| op(c, token, now))
                    .await
            }
            Err(err) => Err(err),
        };
        match reply {
            Ok(Reply::Pending) => rx
                .await
                .ok()
                .and_then(unpack)
                .unwrap_or(Err(GroupError::CoordinatorNotAvailable)),
            Ok(Reply::Now(result)) => {
                self.unpark(token);
                result
            }
            Err(err) => {
                self.unpark(token);
                Err(err)
            }
        }
    }

    pub async fn join_group(&self, req: JoinGroupRequest) -> Result<JoinGroupResult, GroupError> {
        let group_id = req.group_id.clone();
        self.parked(
            &group_id,
            |c, token, now| c.join_group(JoinGroupRequest { token, ..req }, now),
            |delayed| match delayed {
                DelayedResponse::Join { result, .. } => Some(result),
                DelayedResponse::Sync { .. } => None,
            },
        )
        .await
    }

    pub async fn sync_group(&self, req: SyncGroupRequest) -> Result<SyncGroupResult, GroupError> {
        let group_id = req.group_id.clone();
        self.parked(
            &group_id,
            |c, token, now| c.sync_group(SyncGroupRequest { token, ..req }, now),
            |delayed| match delayed {
                DelayedResponse::Sync { result, .. } => Some(result),
                DelayedResponse::Join { .. } => None,
            },
        )
        .await
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), GroupError> {
        let shard = self.shard_for(&req.group_id)?;
        let mut locked = shard.lock(&self.runtime).await?;
        self.runtime
            .write(&mut locked, |c, now| c.heartbeat(req, now))
            .await?
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest) -> LeaveGroupResponse {
        let shard = self.shard_for(&req.group_id)?;
        let mut locked = shard.lock(&self.runtime).await?;
        self.runtime
            .write(&mut locked, |c, now| c.leave_group(req, now))
            .await?
    }

    pub async fn offset_commit(&self, req: OffsetCommitRequest) -> PartitionResults {
        let partitions: Vec<TopicPartition> = req.partitions.iter().map(|p| p.tp.clone()).collect();
        let group_id = req.group_id.clone();
        self.commit(&group_id, partitions, |c, now| c.offset_commit(req, now))
            .await
    }

    /// TxnOffsetCommit: the offsets stay pending for the producer (in a
    /// transactional batch of it) until its marker lands in the partition.
    pub async fn txn_offset_commit(&self, req: TxnOffsetCommitRequest) -> PartitionResults {
        let partitions: Vec<TopicPartition> = req.partitions.iter().map(|p| p.tp.clone()).collect();
        let group_id = req.group_id.clone();
        self.commit(&group_id, partitions, |c, now| {
            c.txn_offset_commit(req, now)
        })
        .await
    }

    /// What OffsetCommit and TxnOffsetCommit share: a write on the group's
    /// shard whose failed append gives every partition the error (Kafka's
    /// `OffsetCommitRequest.getErrorResponse`).
    async fn commit(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
        op: impl FnOnce(&mut GroupCoordinator, i64) -> CoordinatorOutput<PartitionResults>,
    ) -> PartitionResults {
        let result = async {
            let shard = self.shard_for(group_id)?;
            let mut locked = shard.lock(&self.runtime).await?;
            self.runtime.write(&mut locked, op).await
        }
        .await;
        match result {
            Ok(results) => results,
            Err(err) => partitions
                .into_iter()
                .map(|tp| (tp, Err(err.clone())))
                .collect(),
        }
    }

    /// A COMMIT or ABORT marker of `producer_id` is committed in
    /// `__consumer_offsets` partition `partition` (Kafka's
    /// `onTransactionCompleted`): its pending offsets there become
    /// committed or are dropped. Nothing to do where the partition's shard
    /// is not loaded here: its next load replays the marker.
    pub async fn complete_txn(&self, partition: i32, producer_id: i64, result: TransactionResult) {
        let done = self
            .runtime
            .write_to(partition, |c, _| {
                c.complete_txn(producer_id, result);
                CoordinatorOutput {
                    reply: (),
                    records: Vec::new(),
                    delayed: Vec::new(),
                }
            })
            .await;
        if let Err(err) = done {
            tracing::debug!(%err, partition, producer_id, "transaction marker not applied to the group shard");
        }
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let shard = self.shard_for(&req.group_id)?;
        if let Some(before) = shard.during_write()? {
            return before.offset_fetch(&req);
        }
        let locked = shard.lock(&self.runtime).await?;
        locked.coordinator.offset_fetch(&req)
    }

    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<PartitionResults, GroupError> {
        let shard = self.shard_for(group_id)?;
        let mut locked = shard.lock(&self.runtime).await?;
        self.runtime
            .write(&mut locked, |c, now| {
                c.offset_delete(group_id, partitions, now)
            })
            .await?
    }

    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let shard = self.shard_for(group_id)?;
        let mut locked = shard.lock(&self.runtime).await?;
        self.runtime
            .write(&mut locked, |c, _| {
                c.delete_groups(vec![group_id.to_string()])
            })
            .await?
            .pop()
            .map_or(Ok(()), |(_, r)| r)
    }

    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let shard = self.shard_for(group_id)?;
        if let Some(before) = shard.during_write()? {
            return Ok(before.describe_group(group_id));
        }
        let locked = shard.lock(&self.runtime).await?;
        Ok(locked.coordinator.describe_group(group_id))
    }

    /// ListGroups: the groups of every loaded shard, i.e. of every
    /// `__consumer_offsets` partition this broker leads (Kafka's rule;
    /// clients ask every broker and merge). While a led partition loads,
    /// COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers: a partial list would
    /// look complete to the client.
    pub async fn list_groups(
        &self,
        states: &[GroupState],
    ) -> Result<Vec<GroupListing>, GroupError> {
        let listed = self
            .runtime
            .read_loaded(
                |before| before.list_groups(states),
                |c| c.list_groups(states),
            )
            .await?;
        Ok(listed.into_iter().flatten().collect())
    }

    /// The committed offsets of the groups of every loaded shard.
    pub async fn coordinated_offsets(&self) -> Vec<GroupOffset> {
        let mut offsets = Vec::new();
        for (_, cell) in self.runtime.loaded_cells() {
            let Ok(shard) = cell.lock(&self.runtime).await else {
                continue;
            };
            for group in shard.coordinator.groups() {
                offsets.extend(group.offsets().iter().map(|(tp, committed)| GroupOffset {
                    group_id: group.group_id().to_string(),
                    tp: tp.clone(),
                    offset: committed.offset,
                }));
            }
        }
        offsets
    }
}
