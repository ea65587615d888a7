//! The offset APIs of [`GroupCoordinator`]: OffsetCommit, OffsetFetch,
//! OffsetDelete, DeleteGroups and offsets retention.

use std::collections::BTreeMap;

use fjord_types::TopicPartition;

use super::api::{
    CommittedOffset, CoordinatorOutput, OffsetCommitRequest, OffsetFetchRequest,
    OffsetFetchResponse, PartitionResults,
};
use super::coordinator::{output, validate_current_member, validate_generation};
use super::rebalance::Effects;
use super::records::GroupRecord;
use super::{ClassicGroup, GroupCoordinator, GroupError, GroupState, OffsetCommitPartition};

/// The parts of an OffsetCommit or TxnOffsetCommit the shared path reads.
pub(crate) struct Commit<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) generation_id: i32,
    pub(crate) partitions: &'a [OffsetCommitPartition],
    pub(crate) now_ms: i64,
}

impl GroupCoordinator {
    /// OffsetCommit (Kafka's `handleCommitOffsets`). Members commit with
    /// their generation; a standalone commit (generation < 0, no member)
    /// is allowed only while the group is Empty or does not exist.
    pub fn offset_commit(
        &mut self,
        req: OffsetCommitRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<PartitionResults> {
        let commit = Commit {
            group_id: &req.group_id,
            generation_id: req.generation_id,
            partitions: &req.partitions,
            now_ms,
        };
        self.commit_offsets(
            commit,
            |group| {
                validate_offset_commit(group, &req)?;
                match group.state {
                    GroupState::Empty => {}
                    GroupState::Stable | GroupState::PreparingRebalance => {
                        // Members learn of a rebalance from their heartbeats;
                        // the commit itself still counts as a sign of life.
                        if let Some(member) = group.members.get_mut(&req.member_id) {
                            member.touch(now_ms);
                        }
                    }
                    GroupState::CompletingRebalance => {
                        return Err(GroupError::RebalanceInProgress);
                    }
                    GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
                }
                Ok(())
            },
            |group, tp, committed| {
                group.pending_txn.on_committed(tp);
                group.offsets.insert(tp.clone(), committed.clone());
                GroupRecord::Offset {
                    group_id: req.group_id.clone(),
                    tp: tp.clone(),
                    committed,
                }
            },
        )
    }

    /// What OffsetCommit and TxnOffsetCommit share: the group (created by a
    /// commit without generation, forgotten again if the call fails),
    /// `validate`, then per partition the metadata size check and `store`,
    /// which keeps the offset and gives its record.
    pub(crate) fn commit_offsets(
        &mut self,
        commit: Commit<'_>,
        validate: impl FnOnce(&mut ClassicGroup) -> Result<(), GroupError>,
        store: impl FnMut(&mut ClassicGroup, &TopicPartition, CommittedOffset) -> GroupRecord,
    ) -> CoordinatorOutput<PartitionResults> {
        let mut fx = Effects::default();
        let existed = self.groups.contains_key(commit.group_id);
        let reply = match self.do_commit_offsets(&commit, validate, store, &mut fx) {
            Ok(results) => results,
            Err(e) => commit
                .partitions
                .iter()
                .map(|p| (p.tp.clone(), Err(e.clone())))
                .collect(),
        };
        self.forget_failed_creation(commit.group_id, existed);
        output(reply, fx)
    }

    fn do_commit_offsets(
        &mut self,
        commit: &Commit<'_>,
        validate: impl FnOnce(&mut ClassicGroup) -> Result<(), GroupError>,
        mut store: impl FnMut(&mut ClassicGroup, &TopicPartition, CommittedOffset) -> GroupRecord,
        fx: &mut Effects,
    ) -> Result<PartitionResults, GroupError> {
        let group_id = commit.group_id;
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if !self.groups.contains_key(group_id) {
            if commit.generation_id >= 0 {
                return Err(GroupError::IllegalGeneration {
                    generation_id: commit.generation_id,
                    current: -1,
                });
            }
            self.groups.insert(
                group_id.to_string(),
                ClassicGroup::new(group_id.to_string(), Some(commit.now_ms)),
            );
        }
        let max_metadata = self.config.offset_metadata_max_bytes;
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        validate(group)?;
        let mut results = Vec::with_capacity(commit.partitions.len());
        for p in commit.partitions {
            if p.metadata.len() > max_metadata {
                let e = GroupError::OffsetMetadataTooLarge {
                    size: p.metadata.len(),
                    max: max_metadata,
                };
                results.push((p.tp.clone(), Err(e)));
                continue;
            }
            let committed = CommittedOffset {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata: p.metadata.clone(),
                commit_timestamp_ms: commit.now_ms,
            };
            fx.records.push(store(group, &p.tp, committed));
            results.push((p.tp.clone(), Ok(())));
        }
        Ok(results)
    }

    /// OffsetFetch: committed offsets of the asked partitions (`None` for
    /// partitions without one), or of every partition with one. With
    /// `require_stable`, a partition with pending transactional offsets
    /// answers UNSTABLE_OFFSET_COMMIT (Kafka answers per partition, at
    /// every version).
    pub fn offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        offset_fetch(&self.groups, req)
    }

    /// OffsetDelete (Kafka's `handleDeleteOffsets`): in a non-empty
    /// consumer group only partitions of topics nobody subscribes to. The
    /// group stays, even without offsets (Kafka 4 keeps it Empty until
    /// DeleteGroups or the cleanup).
    pub fn offset_delete(
        &mut self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
        now_ms: i64,
    ) -> CoordinatorOutput<Result<PartitionResults, GroupError>> {
        let mut fx = Effects::default();
        let reply = self.do_offset_delete(group_id, partitions, now_ms, &mut fx);
        output(reply, fx)
    }

    fn do_offset_delete(
        &mut self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<PartitionResults, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        let mut results = Vec::with_capacity(partitions.len());
        let eligible: Vec<TopicPartition> = match group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => partitions,
            _ if group.is_consumer_group() => {
                let mut eligible = Vec::new();
                for tp in partitions {
                    if group.is_subscribed_to_topic(&tp.topic) {
                        results.push((tp, Err(GroupError::GroupSubscribedToTopic)));
                    } else {
                        eligible.push(tp);
                    }
                }
                eligible
            }
            _ => return Err(GroupError::NonEmptyGroup),
        };
        for tp in eligible {
            // Kafka writes the tombstone for pending transactional offsets too.
            let had_pending = group.pending_txn.has_partition(&tp);
            group.pending_txn.remove_partition(&tp);
            if group.offsets.remove(&tp).is_some() || had_pending {
                group.cleanup_grace_from_ms = Some(now_ms);
                fx.records.push(GroupRecord::OffsetTombstone {
                    group_id: group_id.to_string(),
                    tp: tp.clone(),
                });
            }
            results.push((tp, Ok(())));
        }
        Ok(results)
    }

    /// DeleteGroups (Kafka's `handleDeleteGroups`): only Empty groups; their
    /// offsets and metadata get tombstones.
    pub fn delete_groups(
        &mut self,
        group_ids: Vec<String>,
    ) -> CoordinatorOutput<Vec<(String, Result<(), GroupError>)>> {
        let mut fx = Effects::default();
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = match self.groups.get_mut(&group_id) {
                _ if group_id.is_empty() => Err(GroupError::InvalidGroupId),
                None => Err(GroupError::GroupIdNotFound),
                Some(group) => match group.state {
                    GroupState::Dead => Err(GroupError::GroupIdNotFound),
                    GroupState::Empty => {
                        group.transition_to(GroupState::Dead, 0);
                        self.remove_dead_group(&group_id, &mut fx);
                        Ok(())
                    }
                    _ => Err(GroupError::NonEmptyGroup),
                },
            };
            results.push((group_id, result));
        }
        output(results, fx)
    }

    /// Offsets retention and group cleanup (Kafka's `cleanupGroupMetadata`,
    /// run here at the exact expiry times rather than every check
    /// interval): expired offsets get tombstones; an Empty group whose last
    /// offsets expired now is deleted with them, one that has had none for a
    /// check interval is deleted too.
    pub(crate) fn expire_offsets(&mut self, now_ms: i64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        let check_interval = self.config.offsets_retention_check_interval_ms;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            let expired: Vec<TopicPartition> = group
                .offset_expiries(retention)
                .into_iter()
                .filter(|(_, at)| *at <= now_ms)
                .map(|(tp, _)| tp.clone())
                .collect();
            let lost_offsets = !expired.is_empty();
            for tp in expired {
                group.offsets.remove(&tp);
                fx.records.push(GroupRecord::OffsetTombstone {
                    group_id: group.group_id.clone(),
                    tp,
                });
            }
            if group.is_dead_after_cleanup()
                && (lost_offsets || group.empty_cleanup_deadline(check_interval) <= now_ms)
            {
                dead.push(group.group_id.clone());
            }
        }
        for group_id in dead {
            self.remove_dead_group(&group_id, fx);
        }
    }

    /// Tombstones for what is left of the group, then forget it.
    fn remove_dead_group(&mut self, group_id: &str, fx: &mut Effects) {
        let Some(group) = self.groups.remove(group_id) else {
            return;
        };
        // Partitions with only pending transactional offsets get one too
        // (Kafka's `deleteAllOffsets`).
        let pending_only: Vec<TopicPartition> = group
            .pending_txn
            .partitions()
            .into_iter()
            .filter(|tp| !group.offsets.contains_key(tp))
            .collect();
        for tp in group.offsets.into_keys().chain(pending_only) {
            fx.records.push(GroupRecord::OffsetTombstone {
                group_id: group_id.to_string(),
                tp,
            });
        }
        fx.records.push(GroupRecord::GroupTombstone {
            group_id: group_id.to_string(),
        });
    }
}

/// Kafka's `validateOffsetCommit`.
fn validate_offset_commit(
    group: &ClassicGroup,
    req: &OffsetCommitRequest,
) -> Result<(), GroupError> {
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_current_member(group, &req.member_id, req.group_instance_id.as_deref())?;
        validate_generation(group, req.generation_id)
    } else if group.state != GroupState::Empty {
        // Only members commit to a group with members.
        Err(GroupError::UnknownMemberId {
            member_id: req.member_id.clone(),
        })
    } else {
        Ok(())
    }
}

/// OffsetFetch over `groups` (a coordinator's, or a snapshot's).
pub(crate) fn offset_fetch(
    groups: &BTreeMap<String, ClassicGroup>,
    req: &OffsetFetchRequest,
) -> OffsetFetchResponse {
    if req.group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    let group = groups.get(&req.group_id);
    if group.is_some_and(|g| g.state == GroupState::Dead) {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    let answer = |tp: &TopicPartition, committed: Option<&CommittedOffset>| {
        if req.require_stable && group.is_some_and(|g| g.pending_txn.has_partition(tp)) {
            Err(GroupError::UnstableOffsetCommit)
        } else {
            Ok(committed.cloned())
        }
    };
    Ok(match &req.partitions {
        Some(partitions) => partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    answer(tp, group.and_then(|g| g.offsets.get(tp))),
                )
            })
            .collect(),
        // Partitions with only pending offsets are not listed (Kafka's
        // `fetchAllOffsets` walks the committed ones).
        None => group
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(tp, c)| (tp.clone(), answer(tp, Some(c))))
                    .collect()
            })
            .unwrap_or_default(),
    })
}
