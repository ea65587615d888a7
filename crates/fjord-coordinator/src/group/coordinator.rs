//! [`GroupCoordinator`]: the groups of the `__consumer_offsets` partitions
//! this node leads, and the membership APIs (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) plus time, replay and the read-only APIs. The
//! offset APIs are in `offsets.rs`.

use std::collections::BTreeMap;

use super::api::{
    CoordinatorOutput, GroupDescription, GroupListing, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResult, LeaveGroupRequest, LeaveGroupResponse, OffsetFetchRequest,
    OffsetFetchResponse, Reply, SyncGroupRequest, SyncGroupResult,
};
use super::rebalance::{self, Effects};
use super::records::{self, GroupRecord};
use super::{ClassicGroup, GroupConfig, GroupError, GroupState, Member};

/// Makes the random part of new member ids (`{client_id}-{suffix}`).
pub type MemberIdSuffix = Box<dyn FnMut() -> String + Send>;

/// The classic group coordinator of one node, without I/O.
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, ClassicGroup>,
    member_id_suffix: MemberIdSuffix,
}

/// A copy of a coordinator's groups (see [`GroupCoordinator::snapshot`]);
/// reads of it answer as the coordinator did when it was taken (the
/// runtime serves reads from the last committed state this way while a
/// write is in flight).
#[derive(Clone, Debug)]
pub struct GroupsSnapshot(BTreeMap<String, ClassicGroup>);

impl GroupsSnapshot {
    pub fn offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        super::offsets::offset_fetch(&self.0, req)
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        describe_group(&self.0, group_id)
    }

    pub fn list_groups(&self, states: &[GroupState]) -> Vec<GroupListing> {
        list_groups(&self.0, states)
    }
}

/// DescribeGroups of one group (unknown groups are Dead with no members).
fn describe_group(groups: &BTreeMap<String, ClassicGroup>, group_id: &str) -> GroupDescription {
    match groups.get(group_id) {
        Some(group) => group.describe(),
        None => GroupDescription {
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        },
    }
}

/// ListGroups, filtered by state when `states` is non-empty.
fn list_groups(
    groups: &BTreeMap<String, ClassicGroup>,
    states: &[GroupState],
) -> Vec<GroupListing> {
    groups
        .values()
        .filter(|g| states.is_empty() || states.contains(&g.state))
        .map(|g| GroupListing {
            group_id: g.group_id.clone(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            state: g.state,
        })
        .collect()
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator whose member ids end in a random UUID, as Kafka's do.
    pub fn new(config: GroupConfig) -> Self {
        Self::with_member_id_suffix(config, Box::new(|| uuid::Uuid::new_v4().to_string()))
    }

    /// A coordinator with deterministic member ids (tests, simulation).
    pub fn with_member_id_suffix(config: GroupConfig, member_id_suffix: MemberIdSuffix) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            member_id_suffix,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &ClassicGroup> {
        self.groups.values()
    }

    /// The groups as they are now, for [`restore`](Self::restore) when the
    /// records of the next call cannot be made durable (the shell reverts
    /// to its last committed state, as Kafka's coordinator runtime does).
    pub fn snapshot(&self) -> GroupsSnapshot {
        GroupsSnapshot(self.groups.clone())
    }

    /// Put back the groups of a [`snapshot`](Self::snapshot).
    pub fn restore(&mut self, snapshot: GroupsSnapshot) {
        self.groups = snapshot.0;
    }

    /// JoinGroup (Kafka's `handleJoinGroup`).
    pub fn join_group(
        &mut self,
        req: JoinGroupRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<Reply<Result<JoinGroupResult, GroupError>>> {
        let mut fx = Effects::default();
        let group_id = req.group_id.clone();
        let existed = self.groups.contains_key(&group_id);
        let reply = self
            .do_join(req, now_ms, &mut fx)
            .unwrap_or_else(|e| Reply::Now(Err(e)));
        self.after_call(&group_id, now_ms, &mut fx);
        self.forget_failed_creation(&group_id, existed);
        output(reply, fx)
    }

    fn do_join(
        &mut self,
        req: JoinGroupRequest,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<Reply<Result<JoinGroupResult, GroupError>>, GroupError> {
        let cfg = &self.config;
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout {
                timeout_ms: req.session_timeout_ms,
                min_ms: cfg.min_session_timeout_ms,
                max_ms: cfg.max_session_timeout_ms,
            });
        }
        let is_unknown = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !is_unknown {
                return Err(GroupError::UnknownMemberId {
                    member_id: req.member_id,
                });
            }
            self.groups.insert(
                req.group_id.clone(),
                ClassicGroup::new(req.group_id.clone(), Some(now_ms)),
            );
        }
        let new_member_id = if is_unknown {
            let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
            format!("{prefix}-{}", (self.member_id_suffix)())
        } else {
            String::new()
        };
        let cfg = &self.config;
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let is_known_static = req
            .group_instance_id
            .as_deref()
            .is_some_and(|i| group.static_members.contains_key(i));
        if is_unknown
            && !is_known_static
            && group.members.len() + group.pending_members.len() >= cfg.max_size
        {
            return Err(GroupError::GroupMaxSizeReached { max: cfg.max_size });
        }
        if is_unknown {
            new_member_join(group, cfg, new_member_id, req, now_ms, fx)
        } else {
            current_member_join(group, cfg, req, now_ms, fx)
        }
    }

    /// SyncGroup (Kafka's `handleSyncGroup`).
    pub fn sync_group(
        &mut self,
        req: SyncGroupRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<Reply<Result<SyncGroupResult, GroupError>>> {
        let mut fx = Effects::default();
        let group_id = req.group_id.clone();
        let reply = self
            .do_sync(req, now_ms, &mut fx)
            .unwrap_or_else(|e| Reply::Now(Err(e)));
        self.after_call(&group_id, now_ms, &mut fx);
        output(reply, fx)
    }

    fn do_sync(
        &mut self,
        req: SyncGroupRequest,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<Reply<Result<SyncGroupResult, GroupError>>, GroupError> {
        let group =
            self.groups
                .get_mut(&req.group_id)
                .ok_or_else(|| GroupError::UnknownMemberId {
                    member_id: req.member_id.clone(),
                })?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        validate_current_member(group, &req.member_id, req.group_instance_id.as_deref())?;
        validate_generation(group, req.generation_id)?;
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty => Err(GroupError::UnknownMemberId {
                member_id: req.member_id,
            }),
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                if let Some(member) = group.members.get_mut(&req.member_id)
                    && let Some(old) = member.awaiting_sync.replace(req.token)
                {
                    fx.sync(old, Err(GroupError::RebalanceInProgress));
                }
                if group.is_leader(&req.member_id) {
                    rebalance::complete_sync(group, req.assignments, now_ms, fx);
                }
                Ok(Reply::Pending)
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol_name.clone();
                let member = group.members.get_mut(&req.member_id).ok_or_else(|| {
                    GroupError::UnknownMemberId {
                        member_id: req.member_id.clone(),
                    }
                })?;
                member.touch(now_ms);
                Ok(Reply::Now(Ok(SyncGroupResult {
                    protocol_type,
                    protocol_name,
                    assignment: member.assignment.clone(),
                })))
            }
        }
    }

    /// Heartbeat (Kafka's `handleHeartbeat`): restarts the member's session;
    /// REBALANCE_IN_PROGRESS tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<Result<(), GroupError>> {
        let mut fx = Effects::default();
        let reply = self.do_heartbeat(&req, now_ms);
        self.after_call(&req.group_id, now_ms, &mut fx);
        output(reply, fx)
    }

    fn do_heartbeat(&mut self, req: &HeartbeatRequest, now_ms: i64) -> Result<(), GroupError> {
        let unknown = || GroupError::UnknownMemberId {
            member_id: req.member_id.clone(),
        };
        let group = self.groups.get_mut(&req.group_id).ok_or_else(unknown)?;
        match group.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(unknown()),
            _ => {}
        }
        validate_current_member(group, &req.member_id, req.group_instance_id.as_deref())?;
        validate_generation(group, req.generation_id)?;
        let member = group.members.get_mut(&req.member_id).ok_or_else(unknown)?;
        member.touch(now_ms);
        if group.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup (Kafka's `handleLeaveGroup`, v3+ batches).
    pub fn leave_group(
        &mut self,
        req: LeaveGroupRequest,
        now_ms: i64,
    ) -> CoordinatorOutput<LeaveGroupResponse> {
        let mut fx = Effects::default();
        let cfg = &self.config;
        let reply = match self.groups.get_mut(&req.group_id) {
            None => Ok(req
                .members
                .into_iter()
                .map(|m| {
                    let e = GroupError::UnknownMemberId {
                        member_id: m.member_id.clone(),
                    };
                    (m, Err(e))
                })
                .collect()),
            Some(group) if group.state == GroupState::Dead => {
                Err(GroupError::CoordinatorNotAvailable)
            }
            Some(group) => Ok(req
                .members
                .into_iter()
                .map(|leaving| {
                    let result = leave_one(
                        group,
                        cfg,
                        &leaving.member_id,
                        leaving.group_instance_id.as_deref(),
                        now_ms,
                        &mut fx,
                    );
                    (leaving, result)
                })
                .collect()),
        };
        self.after_call(&req.group_id, now_ms, &mut fx);
        output(reply, fx)
    }

    /// The earliest time [`on_tick`](Self::on_tick) has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let retention = self.config.offsets_retention_ms;
        let check_interval = self.config.offsets_retention_check_interval_ms;
        self.groups
            .values()
            .flat_map(|g| {
                [
                    rebalance::next_deadline(g),
                    g.next_cleanup_deadline(retention, check_interval),
                ]
            })
            .flatten()
            .min()
    }

    /// Time passed: expire sessions, KIP-394 pending members, join phases,
    /// pending syncs, offsets past retention, Empty groups whose last offsets
    /// expired and Empty groups without offsets for a cleanup interval.
    pub fn on_tick(&mut self, now_ms: i64) -> CoordinatorOutput<()> {
        let mut fx = Effects::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            if let Some(group) = self.groups.get_mut(&id) {
                rebalance::expire(group, &self.config, now_ms, &mut fx);
            }
        }
        self.expire_offsets(now_ms, &mut fx);
        output((), fx)
    }

    /// Rebuilds state from one `__consumer_offsets` record, in log order.
    pub fn replay(&mut self, record: GroupRecord) {
        records::replay(&mut self.groups, record);
    }

    /// Loading finished: sessions of loaded members start now, and the
    /// cleanup spares loaded groups for one interval (Kafka's first cleanup
    /// runs one interval after a load).
    pub fn complete_load(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            group.cleanup_grace_from_ms = Some(now_ms);
            for member in group.members.values_mut() {
                member.touch(now_ms);
            }
        }
    }

    /// Leadership of a `__consumer_offsets` partition moved away: forget
    /// the groups `belongs(group_id)` selects (Kafka's `onGroupUnloaded`);
    /// their parked JoinGroup/SyncGroup requests get NOT_COORDINATOR.
    pub fn unload(&mut self, belongs: impl Fn(&str) -> bool) -> CoordinatorOutput<()> {
        let mut fx = Effects::default();
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|id| belongs(id))
            .cloned()
            .collect();
        for group_id in gone {
            let Some(group) = self.groups.remove(&group_id) else {
                continue;
            };
            for member in group.members.into_values() {
                if let Some(token) = member.awaiting_join {
                    fx.join(token, Err(GroupError::NotCoordinator));
                }
                if let Some(token) = member.awaiting_sync {
                    fx.sync(token, Err(GroupError::NotCoordinator));
                }
            }
        }
        output((), fx)
    }

    /// DescribeGroups of one group (unknown groups are Dead with no members).
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        describe_group(&self.groups, group_id)
    }

    /// ListGroups, filtered by state when `states` is non-empty.
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<GroupListing> {
        list_groups(&self.groups, states)
    }

    /// After any membership call on a group: let a join phase end if it can.
    fn after_call(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        if let Some(group) = self.groups.get_mut(group_id) {
            rebalance::try_complete_join(group, now_ms, fx);
        }
    }

    /// Forgets a group this call created (`existed` is false) and left
    /// holding nothing: its join or commit failed and nothing about it was
    /// written. Groups that existed before stay until DeleteGroups or the
    /// cleanup, even when they hold nothing (Kafka keeps them Empty).
    pub(crate) fn forget_failed_creation(&mut self, group_id: &str, existed: bool) {
        if !existed
            && self
                .groups
                .get(group_id)
                .is_some_and(ClassicGroup::is_unused)
        {
            self.groups.remove(group_id);
        }
    }
}

pub(crate) fn output<T>(reply: T, fx: Effects) -> CoordinatorOutput<T> {
    CoordinatorOutput {
        reply,
        records: fx.records,
        delayed: fx.delayed,
    }
}

/// Kafka's `validateCurrentMember`: a static member whose instance id now
/// belongs to another member id is fenced; an unknown member id is unknown.
pub(crate) fn validate_current_member(
    group: &ClassicGroup,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), GroupError> {
    if let Some(instance) = group_instance_id
        && group
            .static_member_id(instance)
            .is_some_and(|current| current != member_id)
    {
        return Err(GroupError::FencedInstanceId {
            group_instance_id: instance.to_string(),
            member_id: member_id.to_string(),
        });
    }
    if group.member(member_id).is_none() {
        return Err(GroupError::UnknownMemberId {
            member_id: member_id.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn validate_generation(
    group: &ClassicGroup,
    generation_id: i32,
) -> Result<(), GroupError> {
    if generation_id != group.generation_id {
        return Err(GroupError::IllegalGeneration {
            generation_id,
            current: group.generation_id,
        });
    }
    Ok(())
}

fn new_member(req: &JoinGroupRequest, member_id: String, now_ms: i64) -> Member {
    let mut member = Member {
        member_id,
        group_instance_id: req.group_instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        session_timeout_ms: req.session_timeout_ms,
        protocols: req.protocols.clone(),
        assignment: Default::default(),
        awaiting_join: Some(req.token),
        awaiting_sync: None,
        is_new: false,
        heartbeat_deadline_ms: 0,
        join_seq: 0,
    };
    member.touch(now_ms);
    member
}

/// Kafka's `doNewMemberJoin`.
fn new_member_join(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    member_id: String,
    req: JoinGroupRequest,
    now_ms: i64,
    fx: &mut Effects,
) -> Result<Reply<Result<JoinGroupResult, GroupError>>, GroupError> {
    if let Some(instance) = req.group_instance_id.as_deref() {
        if let Some(old_member_id) = group.static_member_id(instance).map(str::to_string) {
            return Ok(update_static_member_and_rebalance(
                group,
                cfg,
                &old_member_id,
                member_id,
                &req,
                now_ms,
                fx,
            ));
        }
        return Ok(add_member_and_rebalance(
            group, cfg, member_id, &req, now_ms, fx,
        ));
    }
    if req.require_known_member_id {
        let deadline = now_ms.saturating_add(i64::from(req.session_timeout_ms));
        group.pending_members.insert(member_id.clone(), deadline);
        return Err(GroupError::MemberIdRequired { member_id });
    }
    Ok(add_member_and_rebalance(
        group, cfg, member_id, &req, now_ms, fx,
    ))
}

/// Kafka's `doCurrentMemberJoin`.
fn current_member_join(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    req: JoinGroupRequest,
    now_ms: i64,
    fx: &mut Effects,
) -> Result<Reply<Result<JoinGroupResult, GroupError>>, GroupError> {
    let member_id = req.member_id.clone();
    if group.is_pending_member(&member_id) {
        // Pending ids are handed to dynamic members only; one that now
        // claims an instance id owned by another member is fenced (Kafka
        // treats this as an illegal state).
        if let Some(instance) = req.group_instance_id.as_deref()
            && group.static_member_id(instance).is_some()
        {
            return Err(GroupError::FencedInstanceId {
                group_instance_id: instance.to_string(),
                member_id,
            });
        }
        return Ok(add_member_and_rebalance(
            group, cfg, member_id, &req, now_ms, fx,
        ));
    }
    validate_current_member(group, &member_id, req.group_instance_id.as_deref())?;
    let matches = group
        .member(&member_id)
        .is_some_and(|m| m.matches(&req.protocols));
    let answer_now = match group.state {
        GroupState::PreparingRebalance => false,
        // The member lost its JoinGroup response: send it again.
        GroupState::CompletingRebalance => matches,
        // A follower rejoining with the same metadata changes nothing.
        GroupState::Stable => matches && !group.is_leader(&member_id),
        GroupState::Empty | GroupState::Dead => {
            return Err(GroupError::UnknownMemberId { member_id });
        }
    };
    if answer_now {
        if let Some(member) = group.members.get_mut(&member_id) {
            member.touch(now_ms);
        }
        return Ok(Reply::Now(Ok(rebalance::join_result(
            group, &member_id, false,
        ))));
    }
    update_member_and_rebalance(group, cfg, &member_id, &req, now_ms, fx);
    Ok(Reply::Pending)
}

/// Kafka's `addMemberAndRebalance`.
fn add_member_and_rebalance(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    member_id: String,
    req: &JoinGroupRequest,
    now_ms: i64,
    fx: &mut Effects,
) -> Reply<Result<JoinGroupResult, GroupError>> {
    let mut member = new_member(req, member_id, now_ms);
    if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
        // Joins the group's first rebalance: extends the initial delay.
        member.is_new = true;
        member.heartbeat_deadline_ms = now_ms.saturating_add(cfg.new_member_join_timeout_ms);
        group.new_member_added = true;
    }
    group.add_member(member, &req.protocol_type);
    rebalance::maybe_prepare_rebalance(group, cfg, now_ms, fx);
    Reply::Pending
}

/// Kafka's `updateMemberAndRebalance`: new protocols and timeouts, park the join.
fn update_member_and_rebalance(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    member_id: &str,
    req: &JoinGroupRequest,
    now_ms: i64,
    fx: &mut Effects,
) {
    if let Some(member) = group.members.get_mut(member_id) {
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        if let Some(old) = member.awaiting_join.replace(req.token) {
            fx.join(old, Err(GroupError::RebalanceInProgress));
        }
    }
    rebalance::maybe_prepare_rebalance(group, cfg, now_ms, fx);
}

/// Kafka's `updateStaticMemberAndRebalance` (KIP-345): the new member id
/// takes the instance's place; the old one is fenced. In a Stable group
/// whose chosen protocol stays the same there is no rebalance: the group
/// is stored and the member answered at once with the current generation.
fn update_static_member_and_rebalance(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    old_member_id: &str,
    new_member_id: String,
    req: &JoinGroupRequest,
    now_ms: i64,
    fx: &mut Effects,
) -> Reply<Result<JoinGroupResult, GroupError>> {
    let Some(old) = group.replace_static_member(old_member_id, &new_member_id) else {
        return add_member_and_rebalance(group, cfg, new_member_id, req, now_ms, fx);
    };
    let fenced = || GroupError::FencedInstanceId {
        group_instance_id: req.group_instance_id.clone().unwrap_or_default(),
        member_id: old_member_id.to_string(),
    };
    if let Some(token) = old.awaiting_join {
        fx.join(token, Err(fenced()));
    }
    if let Some(token) = old.awaiting_sync {
        fx.sync(token, Err(fenced()));
    }
    if let Some(member) = group.members.get_mut(&new_member_id) {
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.awaiting_join = Some(req.token);
        member.touch(now_ms);
    }
    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol_name => {
            fx.records
                .push(GroupRecord::Metadata(group.metadata_record()));
            if let Some(member) = group.members.get_mut(&new_member_id) {
                member.awaiting_join = None;
            }
            let is_leader = group.is_leader(&new_member_id);
            Reply::Now(Ok(rebalance::join_result(group, &new_member_id, is_leader)))
        }
        GroupState::Stable | GroupState::Empty => {
            rebalance::maybe_prepare_rebalance(group, cfg, now_ms, fx);
            Reply::Pending
        }
        // The leader may already assign to the old member id: start over.
        GroupState::CompletingRebalance => {
            rebalance::prepare_rebalance(group, cfg, now_ms, fx);
            Reply::Pending
        }
        GroupState::PreparingRebalance | GroupState::Dead => Reply::Pending,
    }
}

/// One member of a LeaveGroup.
fn leave_one(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    member_id: &str,
    group_instance_id: Option<&str>,
    now_ms: i64,
    fx: &mut Effects,
) -> Result<(), GroupError> {
    if member_id.is_empty() {
        // Administrative removal by instance id.
        let current = group_instance_id
            .and_then(|i| group.static_member_id(i))
            .map(str::to_string)
            .ok_or_else(|| GroupError::UnknownMemberId {
                member_id: String::new(),
            })?;
        rebalance::remove_member_and_update_group(group, &current, cfg, now_ms, fx);
        return Ok(());
    }
    if group.pending_members.remove(member_id).is_some() {
        rebalance::try_complete_join(group, now_ms, fx);
        return Ok(());
    }
    validate_current_member(group, member_id, group_instance_id)?;
    rebalance::remove_member_and_update_group(group, member_id, cfg, now_ms, fx);
    Ok(())
}
