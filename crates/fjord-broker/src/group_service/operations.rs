//! The group APIs on the runtime: each finds its group's shard, runs a
//! write (apply → append → wait → reply) or a read on it, and answers.

use super::offsets_log::OffsetsLog;
use super::runtime::GroupService;
use super::{GroupOffset, partition_for};
use crate::group::{
    DelayedResponse, GroupDescription, GroupError, GroupListing, GroupState, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResult, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, PartitionResults, Reply, SyncGroupRequest,
    SyncGroupResult,
};
use fjord_types::TopicPartition;

impl GroupService {
    /// Run a Join/Sync write and answer now or once the phase completes
    /// (the token is parked before the write, so no answer is missed).
    async fn parked<R>(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        token: crate::group::RequestToken,
        op: impl FnOnce(
            &mut crate::group::GroupCoordinator,
            i64,
        ) -> crate::group::CoordinatorOutput<Reply<Result<R, GroupError>>>,
        unpack: fn(DelayedResponse) -> Option<Result<R, GroupError>>,
    ) -> Result<R, GroupError> {
        let shard = self.shard_for(log, group_id).await?;
        let rx = self.park(token);
        let reply = match shard.lock().await {
            Ok(mut locked) => self.write(log, &mut locked, op).await,
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

    pub(crate) async fn join_group(
        &self,
        log: &dyn OffsetsLog,
        mut req: JoinGroupRequest,
    ) -> Result<JoinGroupResult, GroupError> {
        let token = self.token();
        req.token = token;
        let group_id = req.group_id.clone();
        self.parked(
            log,
            &group_id,
            token,
            |c, now| c.join_group(req, now),
            |delayed| match delayed {
                DelayedResponse::Join { result, .. } => Some(result),
                DelayedResponse::Sync { .. } => None,
            },
        )
        .await
    }

    pub(crate) async fn sync_group(
        &self,
        log: &dyn OffsetsLog,
        mut req: SyncGroupRequest,
    ) -> Result<SyncGroupResult, GroupError> {
        let token = self.token();
        req.token = token;
        let group_id = req.group_id.clone();
        self.parked(
            log,
            &group_id,
            token,
            |c, now| c.sync_group(req, now),
            |delayed| match delayed {
                DelayedResponse::Sync { result, .. } => Some(result),
                DelayedResponse::Join { .. } => None,
            },
        )
        .await
    }

    pub(crate) async fn heartbeat(
        &self,
        log: &dyn OffsetsLog,
        req: HeartbeatRequest,
    ) -> Result<(), GroupError> {
        let shard = self.shard_for(log, &req.group_id).await?;
        let mut locked = shard.lock().await?;
        self.write(log, &mut locked, |c, now| c.heartbeat(req, now))
            .await?
    }

    pub(crate) async fn leave_group(
        &self,
        log: &dyn OffsetsLog,
        req: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        let shard = self.shard_for(log, &req.group_id).await?;
        let mut locked = shard.lock().await?;
        self.write(log, &mut locked, |c, now| c.leave_group(req, now))
            .await?
    }

    pub(crate) async fn offset_commit(
        &self,
        log: &dyn OffsetsLog,
        req: OffsetCommitRequest,
    ) -> PartitionResults {
        let partitions: Vec<TopicPartition> = req.partitions.iter().map(|p| p.tp.clone()).collect();
        let result = async {
            let shard = self.shard_for(log, &req.group_id).await?;
            let mut locked = shard.lock().await?;
            self.write(log, &mut locked, |c, now| c.offset_commit(req, now))
                .await
        }
        .await;
        match result {
            Ok(results) => results,
            // The append failed: every partition gets the error (Kafka's
            // `OffsetCommitRequest.getErrorResponse`).
            Err(err) => partitions
                .into_iter()
                .map(|tp| (tp, Err(err.clone())))
                .collect(),
        }
    }

    pub(crate) async fn offset_fetch(
        &self,
        log: &dyn OffsetsLog,
        req: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        let shard = self.shard_for(log, &req.group_id).await?;
        let locked = shard.lock().await?;
        locked.coordinator.offset_fetch(&req)
    }

    pub(crate) async fn offset_delete(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<PartitionResults, GroupError> {
        let shard = self.shard_for(log, group_id).await?;
        let mut locked = shard.lock().await?;
        self.write(log, &mut locked, |c, now| {
            c.offset_delete(group_id, partitions, now)
        })
        .await?
    }

    pub(crate) async fn delete_group(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
    ) -> Result<(), GroupError> {
        let shard = self.shard_for(log, group_id).await?;
        let mut locked = shard.lock().await?;
        self.write(log, &mut locked, |c, _| {
            c.delete_groups(vec![group_id.to_string()])
        })
        .await?
        .pop()
        .map_or(Ok(()), |(_, r)| r)
    }

    pub(crate) async fn describe_group(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
    ) -> Result<GroupDescription, GroupError> {
        let shard = self.shard_for(log, group_id).await?;
        let locked = shard.lock().await?;
        Ok(locked.coordinator.describe_group(group_id))
    }

    /// ListGroups: the groups of every loaded shard, i.e. of every
    /// `__consumer_offsets` partition this broker leads (Kafka's rule;
    /// clients ask every broker and merge).
    pub(crate) async fn list_groups(
        &self,
        log: &dyn OffsetsLog,
        states: &[GroupState],
    ) -> Vec<GroupListing> {
        self.reconcile(log).await;
        let mut listed = Vec::new();
        for (_, cell) in self.loaded_shards() {
            if let Ok(shard) = cell.lock(self).await {
                listed.extend(shard.coordinator.list_groups(states));
            }
        }
        listed
    }

    /// The committed offsets of the groups of every loaded shard.
    pub(crate) async fn coordinated_offsets(&self) -> Vec<GroupOffset> {
        let mut offsets = Vec::new();
        for (partition, cell) in self.loaded_shards() {
            let Ok(shard) = cell.lock(self).await else {
                continue;
            };
            let partitions = self.config.offsets_topic_num_partitions;
            for group in shard.coordinator.groups() {
                debug_assert_eq!(partition_for(group.group_id(), partitions), partition);
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
