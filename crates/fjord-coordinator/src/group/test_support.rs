//! Helpers for the group tests: a coordinator with deterministic member
//! ids and short ways to send each request.

use std::collections::BTreeSet;

use bytes::Bytes;
use fjord_types::TopicPartition;

use super::*;

pub(crate) const G: &str = "g";
pub(crate) const SESSION_MS: i32 = 10_000;
pub(crate) const REBALANCE_MS: i32 = 30_000;

pub(crate) fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

/// Member ids come out as `{client_id}-m1`, `-m2`, ...
pub(crate) fn coordinator_with(config: GroupConfig) -> GroupCoordinator {
    let mut n = 0u32;
    GroupCoordinator::with_member_id_suffix(
        config,
        Box::new(move || {
            n += 1;
            format!("m{n}")
        }),
    )
}

pub(crate) fn coordinator() -> GroupCoordinator {
    coordinator_with(config())
}

/// Protocols named `names`, each subscribing to `topic`.
pub(crate) fn protocols(names: &[&str], topic: &str) -> Vec<MemberProtocol> {
    names
        .iter()
        .map(|name| MemberProtocol {
            name: name.to_string(),
            metadata: Bytes::from(format!("{name}:{topic}")),
            topics: Some(BTreeSet::from([topic.to_string()])),
        })
        .collect()
}

pub(crate) fn join_req(token: u64, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        token: RequestToken(token),
        group_id: G.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
        protocols: protocols(&["range"], "t"),
        require_known_member_id: false,
    }
}

pub(crate) fn static_join_req(token: u64, member_id: &str, instance: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group_instance_id: Some(instance.to_string()),
        ..join_req(token, member_id)
    }
}

pub(crate) fn sync_req(token: u64, member_id: &str, generation_id: i32) -> SyncGroupRequest {
    SyncGroupRequest {
        token: RequestToken(token),
        group_id: G.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }
}

pub(crate) fn heartbeat(
    c: &mut GroupCoordinator,
    member_id: &str,
    generation_id: i32,
    now: i64,
) -> Result<(), GroupError> {
    let out = c.heartbeat(
        HeartbeatRequest {
            group_id: G.to_string(),
            member_id: member_id.to_string(),
            group_instance_id: None,
            generation_id,
        },
        now,
    );
    out.reply
}

/// The delayed JoinGroup answer for `token`.
pub(crate) fn join_answer(
    delayed: &[DelayedResponse],
    token: u64,
) -> Result<JoinGroupResult, GroupError> {
    delayed
        .iter()
        .find_map(|d| match d {
            DelayedResponse::Join { token: t, result } if *t == RequestToken(token) => {
                Some(result.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join answer for token {token} in {delayed:?}"))
}

/// The delayed SyncGroup answer for `token`.
pub(crate) fn sync_answer(
    delayed: &[DelayedResponse],
    token: u64,
) -> Result<SyncGroupResult, GroupError> {
    delayed
        .iter()
        .find_map(|d| match d {
            DelayedResponse::Sync { token: t, result } if *t == RequestToken(token) => {
                Some(result.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync answer for token {token} in {delayed:?}"))
}

/// A dynamic member joins alone (delay 0) and syncs: returns its id; the
/// group is Stable at generation 1 with the member assigned `a-<id>`.
pub(crate) fn stable_single(c: &mut GroupCoordinator, now: i64) -> String {
    let out = c.join_group(join_req(1, ""), now);
    let joined = join_answer(&out.delayed, 1).expect("join");
    let id = joined.member_id.clone();
    let mut sync = sync_req(2, &id, joined.generation_id);
    sync.assignments = vec![(id.clone(), Bytes::from(format!("a-{id}")))];
    let out = c.sync_group(sync, now);
    sync_answer(&out.delayed, 2).expect("sync");
    id
}

/// Brings a group of `n` dynamic members to Stable (one join phase):
/// returns the member ids in join order and the generation.
pub(crate) fn stable_group(c: &mut GroupCoordinator, n: u64, now: i64) -> (Vec<String>, i32) {
    // The first member makes generation 1 alone; the others join it.
    let first = stable_single(c, now);
    let mut delayed = Vec::new();
    let mut tokens = vec![(100, first.clone())];
    for i in 1..n {
        let out = c.join_group(join_req(100 + i, ""), now);
        assert_eq!(out.reply, Reply::Pending);
        delayed.extend(out.delayed);
    }
    let out = c.join_group(join_req(100, &first), now);
    delayed.extend(out.delayed);
    let mut ids = vec![first];
    for i in 1..n {
        let answer = join_answer(&delayed, 100 + i).expect("join");
        ids.push(answer.member_id.clone());
        tokens.push((100 + i, answer.member_id));
    }
    let generation = join_answer(&delayed, 100).expect("join").generation_id;
    let mut delayed = Vec::new();
    for (token, id) in tokens.iter().rev() {
        let mut sync = sync_req(token + 100, id, generation);
        if c.group(G).is_some_and(|g| g.is_leader(id)) {
            sync.assignments = ids
                .iter()
                .map(|m| (m.clone(), Bytes::from(format!("a-{m}"))))
                .collect();
        }
        let out = c.sync_group(sync, now);
        delayed.extend(out.delayed);
    }
    for (token, _) in &tokens {
        sync_answer(&delayed, token + 100).expect("sync");
    }
    assert_eq!(c.group(G).map(|g| g.state()), Some(GroupState::Stable));
    (ids, generation)
}

/// LeaveGroup of one dynamic member of group `G`.
pub(crate) fn leave_req(member_id: &str) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: G.to_string(),
        members: vec![LeavingMember {
            member_id: member_id.to_string(),
            group_instance_id: None,
        }],
    }
}

pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(crate) fn commit_req(
    member_id: &str,
    generation_id: i32,
    parts: &[(TopicPartition, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: G.to_string(),
        generation_id,
        member_id: member_id.to_string(),
        group_instance_id: None,
        partitions: parts
            .iter()
            .map(|(tp, offset)| OffsetCommitPartition {
                tp: tp.clone(),
                offset: *offset,
                leader_epoch: Some(0),
                metadata: String::new(),
            })
            .collect(),
    }
}

/// A small deterministic generator (SplitMix64), so a failing seed replays.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
