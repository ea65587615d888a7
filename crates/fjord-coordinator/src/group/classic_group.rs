//! One classic group (Kafka's `GroupMetadata` / `ClassicGroup`): its
//! membership bookkeeping, protocol selection and offsets. The rebalance
//! rules that drive it live in `rebalance.rs`.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::TopicPartition;

use super::api::{
    CommittedOffset, GroupDescription, JoinedMember, MemberDescription, union_topics,
};
use super::records::{GroupMetadataValue, MemberMetadataValue};
use super::txn_offsets::PendingTxnOffsets;
use super::{CONSUMER_PROTOCOL_TYPE, GroupState, Member};

/// The join phase of a PreparingRebalance group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JoinPhase {
    /// When the phase ends even if members are missing.
    pub(crate) deadline_ms: i64,
    /// The initial delay of an Empty group's first rebalance: the phase only
    /// ends at its deadline and is extended while new members arrive.
    pub(crate) initial_delay: Option<InitialDelay>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InitialDelay {
    pub(crate) delay_ms: i64,
    pub(crate) remaining_ms: i64,
}

/// One classic group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicGroup {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    /// When the group entered its current state (Kafka's
    /// `currentStateTimestamp`); offsets of an Empty group expire from it.
    pub(crate) state_timestamp_ms: Option<i64>,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    pub(crate) static_members: BTreeMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with the
    /// deadline by which they must rejoin.
    pub(crate) pending_members: BTreeMap<String, i64>,
    /// Members of the current generation that have not synced yet.
    pub(crate) pending_sync: BTreeSet<String>,
    pub(crate) pending_sync_deadline_ms: Option<i64>,
    pub(crate) join_phase: Option<JoinPhase>,
    pub(crate) new_member_added: bool,
    pub(crate) next_join_seq: u64,
    pub(crate) subscribed_topics: Option<BTreeSet<String>>,
    pub(crate) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Transactional offsets waiting for their producer's marker; not in
    /// `offsets` (OffsetFetch does not see them) until committed.
    pub(crate) pending_txn: PendingTxnOffsets,
    /// When the group was loaded or last lost offsets to OffsetDelete: an
    /// Empty group without offsets is kept at least one cleanup interval
    /// from then (and from becoming Empty), as Kafka's periodic cleanup
    /// would keep it.
    pub(crate) cleanup_grace_from_ms: Option<i64>,
}

impl ClassicGroup {
    pub(crate) fn new(group_id: String, now_ms: Option<i64>) -> Self {
        ClassicGroup {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            pending_sync_deadline_ms: None,
            join_phase: None,
            new_member_added: false,
            next_join_seq: 0,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            pending_txn: PendingTxnOffsets::default(),
            cleanup_grace_from_ms: None,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }
    /// Members in join order.
    pub fn members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_seq);
        members
    }
    pub fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members
            .get(group_instance_id)
            .map(String::as_str)
    }
    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id)
    }
    pub fn offsets(&self) -> &BTreeMap<TopicPartition, CommittedOffset> {
        &self.offsets
    }
    /// The transactional offset of `producer_id` for `tp` that waits for
    /// its transaction's marker.
    pub fn pending_txn_offset(
        &self,
        producer_id: i64,
        tp: &TopicPartition,
    ) -> Option<&CommittedOffset> {
        self.pending_txn.get(producer_id, tp)
    }
    /// Whether `tp` has transactional offsets waiting for their marker.
    pub fn has_pending_txn_offsets(&self, tp: &TopicPartition) -> bool {
        self.pending_txn.has_partition(tp)
    }
    pub fn subscribed_topics(&self) -> Option<&BTreeSet<String>> {
        self.subscribed_topics.as_ref()
    }
    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }
    pub fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Moves to `to`, stamping the time. Callers only ask for transitions
    /// Kafka allows (checked in debug builds).
    pub(crate) fn transition_to(&mut self, to: GroupState, now_ms: i64) {
        debug_assert!(to.can_transition_from(self.state), "{} -> {to}", self.state);
        self.state = to;
        self.state_timestamp_ms = Some(now_ms);
    }

    /// Adds a member; the first member sets the protocol type and leads.
    pub(crate) fn add_member(&mut self, mut member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        member.join_seq = self.next_join_seq;
        self.next_join_seq += 1;
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; if it led, the oldest remaining member leads.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members().first().map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// Gives a static member's place to `new_member_id` (KIP-345): same
    /// instance id, assignment and join order; leadership and pending sync
    /// move along. Returns the old member.
    pub(crate) fn replace_static_member(
        &mut self,
        old_member_id: &str,
        new_member_id: &str,
    ) -> Option<Member> {
        let old = self.members.remove(old_member_id)?;
        let mut new = old.clone();
        new.member_id = new_member_id.to_string();
        new.awaiting_join = None;
        new.awaiting_sync = None;
        if let Some(instance) = &new.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.to_string());
        }
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.to_string());
        }
        self.members.insert(new_member_id.to_string(), new);
        Some(old)
    }

    /// Whether a member with these protocols may join (Kafka's
    /// `supportsProtocols`): any type and protocols for an Empty group,
    /// otherwise the group's type and a protocol every member supports.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[super::MemberProtocol],
    ) -> bool {
        if self.state == GroupState::Empty && self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.metadata(&p.name).is_some()))
    }

    /// Kafka's `selectProtocol`: among the protocols all members support,
    /// the one most members prefer; ties go to the lexicographically first
    /// name (Kafka leaves ties to hash order).
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: BTreeSet<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.metadata(name).is_some()))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    /// The longest rebalance timeout of the members (Kafka's `rebalanceTimeoutMs`).
    pub(crate) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Every member's JoinGroup is parked and no KIP-394 member is pending.
    pub(crate) fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    /// Members with their metadata for the chosen protocol, for the leader.
    pub(crate) fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members()
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m
                    .metadata(protocol)
                    .map(|p| p.metadata.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Subscribed topics of a consumer group (Kafka's `computeSubscribedTopics`).
    pub(crate) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.is_consumer_group() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        union_topics(
            self.members
                .values()
                .map(|m| m.metadata(protocol).and_then(|p| p.topics.as_ref())),
        )
    }

    /// Kafka's `isSubscribedToTopic`: unknown subscriptions guard nothing.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|topics| topics.contains(topic))
    }

    /// Offsets retention (Kafka's `removeExpiredOffsets` rules), as
    /// (partition, expiry time) for every offset that can expire: in an
    /// Empty group counted from when it became empty; in a Stable consumer
    /// group with known subscriptions, unsubscribed topics counted from
    /// their commit; in a standalone group (no protocol type) counted from
    /// their commit. Other offsets do not expire, nor do offsets of a
    /// partition with pending transactional offsets (Kafka waits for the
    /// transaction).
    pub(crate) fn offset_expiries(&self, retention_ms: i64) -> Vec<(&TopicPartition, i64)> {
        let mut expiries = self.offset_expiries_ignoring_txns(retention_ms);
        if !self.pending_txn.is_empty() {
            expiries.retain(|(tp, _)| !self.pending_txn.has_partition(tp));
        }
        expiries
    }

    fn offset_expiries_ignoring_txns(&self, retention_ms: i64) -> Vec<(&TopicPartition, i64)> {
        let from = |base: i64| base.saturating_add(retention_ms);
        match (&self.protocol_type, self.state) {
            (Some(_), GroupState::Empty) => self
                .offsets
                .iter()
                .map(|(tp, c)| {
                    (
                        tp,
                        from(self.state_timestamp_ms.unwrap_or(c.commit_timestamp_ms)),
                    )
                })
                .collect(),
            (Some(_), GroupState::Stable) if self.is_consumer_group() => {
                match &self.subscribed_topics {
                    Some(topics) => self
                        .offsets
                        .iter()
                        .filter(|(tp, _)| !topics.contains(&tp.topic))
                        .map(|(tp, c)| (tp, from(c.commit_timestamp_ms)))
                        .collect(),
                    None => Vec::new(),
                }
            }
            (None, _) => self
                .offsets
                .iter()
                .map(|(tp, c)| (tp, from(c.commit_timestamp_ms)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An Empty group with no offsets (committed or pending) and nobody
    /// about to join is deleted by the cleanup (Kafka's
    /// `cleanupGroupMetadata`).
    pub(crate) fn is_dead_after_cleanup(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.pending_txn.is_empty()
            && self.pending_members.is_empty()
    }

    /// When the cleanup deletes a group that [is dead after
    /// cleanup](Self::is_dead_after_cleanup): one check interval after it
    /// became Empty, was loaded or lost offsets, whichever is last.
    pub(crate) fn empty_cleanup_deadline(&self, check_interval_ms: i64) -> i64 {
        self.state_timestamp_ms
            .unwrap_or(0)
            .max(self.cleanup_grace_from_ms.unwrap_or(0))
            .saturating_add(check_interval_ms)
    }

    /// Created by a request that failed and holding nothing: forget it
    /// (nothing about it was written).
    pub(crate) fn is_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.generation_id == 0
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.pending_txn.is_empty()
    }

    /// When offsets retention or the cleanup next has work for this group.
    pub(crate) fn next_cleanup_deadline(
        &self,
        retention_ms: i64,
        check_interval_ms: i64,
    ) -> Option<i64> {
        if self.is_dead_after_cleanup() {
            return Some(self.empty_cleanup_deadline(check_interval_ms));
        }
        self.offset_expiries(retention_ms)
            .into_iter()
            .map(|(_, at)| at)
            .min()
    }

    /// The record Kafka's `storeGroup` writes for the current state.
    pub(crate) fn metadata_record(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation_id,
            protocol_name: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members()
                .into_iter()
                .map(|m| {
                    let chosen = protocol.as_deref().and_then(|p| m.metadata(p));
                    MemberMetadataValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: chosen.map(|p| p.metadata.clone()).unwrap_or_default(),
                        subscribed_topics: chosen.and_then(|p| p.topics.clone()),
                        assignment: m.assignment.clone(),
                    }
                })
                .collect(),
        }
    }

    /// DescribeGroups: metadata, assignment and protocol only when Stable.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: self
                .members()
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                            .map(|p| p.metadata.clone())
                            .unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                })
                .collect(),
        }
    }
}
