//! The rebalance rules of a classic group as free functions over
//! [`ClassicGroup`]: preparing a rebalance, completing the join phase,
//! handing out assignments, removing members. The coordinator calls them;
//! they only mutate the group and push records and delayed responses.

use super::api::{DelayedResponse, JoinGroupResult, SyncGroupResult};
use super::classic_group::{InitialDelay, JoinPhase};
use super::records::GroupRecord;
use super::{ClassicGroup, GroupConfig, GroupError, GroupState, RequestToken};

/// Records and delayed responses gathered during one coordinator call.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) records: Vec<GroupRecord>,
    pub(crate) delayed: Vec<DelayedResponse>,
}

impl Effects {
    pub(crate) fn join(
        &mut self,
        token: RequestToken,
        result: Result<JoinGroupResult, GroupError>,
    ) {
        self.delayed.push(DelayedResponse::Join { token, result });
    }
    pub(crate) fn sync(
        &mut self,
        token: RequestToken,
        result: Result<SyncGroupResult, GroupError>,
    ) {
        self.delayed.push(DelayedResponse::Sync { token, result });
    }
}

/// The JoinGroup answer for `member_id` in the current generation; the
/// leader gets the members.
pub(crate) fn join_result(
    group: &ClassicGroup,
    member_id: &str,
    skip_assignment: bool,
) -> JoinGroupResult {
    JoinGroupResult {
        member_id: member_id.to_string(),
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone().unwrap_or_default(),
        skip_assignment,
        members: if group.is_leader(member_id) {
            group.current_member_metadata()
        } else {
            Vec::new()
        },
    }
}

/// Kafka's `maybePrepareRebalance`: only from Stable, CompletingRebalance or Empty.
pub(crate) fn maybe_prepare_rebalance(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    fx: &mut Effects,
) {
    if matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
    ) {
        prepare_rebalance(group, cfg, now_ms, fx);
    }
}

/// Kafka's `prepareRebalance`: parked SyncGroups of a CompletingRebalance
/// group get REBALANCE_IN_PROGRESS and assignments are cleared; the join
/// phase starts (with the initial delay for an Empty group).
pub(crate) fn prepare_rebalance(
    group: &mut ClassicGroup,
    cfg: &GroupConfig,
    now_ms: i64,
    fx: &mut Effects,
) {
    if group.state == GroupState::CompletingRebalance {
        for member in group.members.values_mut() {
            member.assignment = Default::default();
            if let Some(token) = member.awaiting_sync.take() {
                fx.sync(token, Err(GroupError::RebalanceInProgress));
                member.touch(now_ms);
            }
        }
    }
    group.pending_sync.clear();
    group.pending_sync_deadline_ms = None;
    let rebalance_timeout = group.rebalance_timeout_ms();
    let delay = i64::from(cfg.initial_rebalance_delay_ms.max(0));
    group.join_phase = Some(if group.state == GroupState::Empty && delay > 0 {
        JoinPhase {
            deadline_ms: now_ms.saturating_add(delay),
            initial_delay: Some(InitialDelay {
                delay_ms: delay,
                remaining_ms: (rebalance_timeout - delay).max(0),
            }),
        }
    } else {
        JoinPhase {
            deadline_ms: now_ms.saturating_add(rebalance_timeout),
            initial_delay: None,
        }
    });
    group.transition_to(GroupState::PreparingRebalance, now_ms);
}

/// Ends the join phase if it can end now (Kafka's DelayedJoin /
/// InitialDelayedJoin `tryComplete` and expiry).
pub(crate) fn try_complete_join(group: &mut ClassicGroup, now_ms: i64, fx: &mut Effects) {
    loop {
        let Some(phase) = group.join_phase.clone() else {
            return;
        };
        if group.state != GroupState::PreparingRebalance {
            group.join_phase = None;
            return;
        }
        match phase.initial_delay {
            Some(initial) => {
                if now_ms < phase.deadline_ms {
                    return;
                }
                if group.new_member_added && initial.remaining_ms > 0 {
                    group.new_member_added = false;
                    let delay = initial.delay_ms.min(initial.remaining_ms);
                    group.join_phase = Some(JoinPhase {
                        deadline_ms: phase.deadline_ms.saturating_add(delay),
                        initial_delay: Some(InitialDelay {
                            delay_ms: initial.delay_ms,
                            remaining_ms: initial.remaining_ms - delay,
                        }),
                    });
                    continue;
                }
            }
            None => {
                if !group.has_all_members_joined() && now_ms < phase.deadline_ms {
                    return;
                }
            }
        }
        complete_join(group, now_ms, fx);
        return;
    }
}

/// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin,
/// keep or elect a leader among those that did, bump the generation and
/// answer every parked JoinGroup.
fn complete_join(group: &mut ClassicGroup, now_ms: i64, fx: &mut Effects) {
    group.join_phase = None;
    group.new_member_added = false;
    let not_rejoined: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.is_awaiting_join() && !m.is_static())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in not_rejoined {
        group.remove_member(&member_id);
    }

    if !group.members.is_empty() && !maybe_elect_new_joined_leader(group) {
        // Nobody rejoined: wait another rebalance timeout, until sessions
        // remove the silent members.
        group.join_phase = Some(JoinPhase {
            deadline_ms: now_ms.saturating_add(group.rebalance_timeout_ms()),
            initial_delay: None,
        });
        return;
    }

    init_next_generation(group, now_ms);
    if group.state == GroupState::Empty {
        fx.records
            .push(GroupRecord::Metadata(group.metadata_record()));
        return;
    }
    let member_ids: Vec<String> = group
        .members()
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in member_ids {
        let result = join_result(group, &member_id, false);
        if let Some(member) = group.members.get_mut(&member_id) {
            if let Some(token) = member.awaiting_join.take() {
                fx.join(token, Ok(result));
            }
            member.touch(now_ms);
            member.is_new = false;
        }
        group.pending_sync.insert(member_id);
    }
    group.pending_sync_deadline_ms = Some(now_ms.saturating_add(group.rebalance_timeout_ms()));
}

/// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined,
/// else pick the oldest member that did; false if none did.
fn maybe_elect_new_joined_leader(group: &mut ClassicGroup) -> bool {
    let leader_joined = group
        .leader_id
        .as_deref()
        .and_then(|id| group.members.get(id))
        .is_some_and(|m| m.is_awaiting_join());
    if leader_joined {
        return true;
    }
    let new_leader = group
        .members()
        .into_iter()
        .find(|m| m.is_awaiting_join())
        .map(|m| m.member_id.clone());
    match new_leader {
        Some(id) => {
            group.leader_id = Some(id);
            true
        }
        None => false,
    }
}

/// Kafka's `initNextGeneration`.
fn init_next_generation(group: &mut ClassicGroup, now_ms: i64) {
    group.generation_id = group.generation_id.saturating_add(1);
    if group.members.is_empty() {
        group.protocol_name = None;
        group.subscribed_topics = group.compute_subscribed_topics();
        group.transition_to(GroupState::Empty, now_ms);
    } else {
        group.protocol_name = group.select_protocol();
        group.subscribed_topics = group.compute_subscribed_topics();
        group.transition_to(GroupState::CompletingRebalance, now_ms);
    }
    group.pending_sync.clear();
    group.pending_sync_deadline_ms = None;
}

/// The leader's SyncGroup in CompletingRebalance: store the assignment
/// (members it left out get an empty one), write the group metadata, hand
/// every parked SyncGroup its assignment and become Stable.
pub(crate) fn complete_sync(
    group: &mut ClassicGroup,
    assignments: Vec<(String, bytes::Bytes)>,
    now_ms: i64,
    fx: &mut Effects,
) {
    for member in group.members.values_mut() {
        member.assignment = Default::default();
    }
    for (member_id, assignment) in assignments {
        if let Some(member) = group.members.get_mut(&member_id) {
            member.assignment = assignment;
        }
    }
    group.transition_to(GroupState::Stable, now_ms);
    fx.records
        .push(GroupRecord::Metadata(group.metadata_record()));
    let protocol_type = group.protocol_type.clone();
    let protocol_name = group.protocol_name.clone();
    for member in group.members.values_mut() {
        if let Some(token) = member.awaiting_sync.take() {
            fx.sync(
                token,
                Ok(SyncGroupResult {
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: member.assignment.clone(),
                }),
            );
            member.touch(now_ms);
        }
    }
}

/// Kafka's `removeMemberAndUpdateGroup`: parked requests of the member get
/// UNKNOWN_MEMBER_ID, then the group rebalances (or its join phase may end).
pub(crate) fn remove_member_and_update_group(
    group: &mut ClassicGroup,
    member_id: &str,
    cfg: &GroupConfig,
    now_ms: i64,
    fx: &mut Effects,
) {
    let Some(member) = group.remove_member(member_id) else {
        return;
    };
    let unknown = || GroupError::UnknownMemberId {
        member_id: member_id.to_string(),
    };
    if let Some(token) = member.awaiting_join {
        fx.join(token, Err(unknown()));
    }
    if let Some(token) = member.awaiting_sync {
        fx.sync(token, Err(unknown()));
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            maybe_prepare_rebalance(group, cfg, now_ms, fx)
        }
        GroupState::PreparingRebalance => try_complete_join(group, now_ms, fx),
        GroupState::Empty | GroupState::Dead => {}
    }
}

/// Deadlines expired at `now_ms`: KIP-394 pending members, sessions,
/// pending syncs, the join phase.
pub(crate) fn expire(group: &mut ClassicGroup, cfg: &GroupConfig, now_ms: i64, fx: &mut Effects) {
    group
        .pending_members
        .retain(|_, deadline| *deadline > now_ms);

    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| m.expiry_deadline().is_some_and(|d| d <= now_ms))
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in expired {
        remove_member_and_update_group(group, &member_id, cfg, now_ms, fx);
    }

    if matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) && group.pending_sync_deadline_ms.is_some_and(|d| d <= now_ms)
    {
        group.pending_sync_deadline_ms = None;
        if !group.pending_sync.is_empty() {
            let pending: Vec<String> = group.pending_sync.iter().cloned().collect();
            for member_id in pending {
                if let Some(member) = group.remove_member(&member_id)
                    && let Some(token) = member.awaiting_sync
                {
                    fx.sync(token, Err(GroupError::UnknownMemberId { member_id }));
                }
            }
            prepare_rebalance(group, cfg, now_ms, fx);
        }
    }
    try_complete_join(group, now_ms, fx);
}

/// The earliest deadline of the group's rebalance machinery.
pub(crate) fn next_deadline(group: &ClassicGroup) -> Option<i64> {
    let members = group.members.values().filter_map(|m| m.expiry_deadline());
    let pending = group.pending_members.values().copied();
    let join = group.join_phase.as_ref().map(|p| p.deadline_ms);
    let sync = if matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) {
        group.pending_sync_deadline_ms
    } else {
        None
    };
    members.chain(pending).chain(join).chain(sync).min()
}
