//! A seeded random walk over the coordinator's APIs and clock, checking
//! invariants after every step. A failure prints the seed and step.

use std::collections::BTreeSet;

use super::test_support::*;
use super::*;

struct World {
    c: GroupCoordinator,
    now: i64,
    next_token: u64,
    /// Tokens answered with `Reply::Pending` and not yet answered.
    pending: BTreeSet<RequestToken>,
    /// Member ids clients believe they have.
    known: Vec<String>,
    last_generation: i32,
    /// Every record emitted, in order: the `__consumer_offsets` partition.
    log: Vec<GroupRecord>,
}

impl World {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn absorb<T>(&mut self, out: &CoordinatorOutput<T>, ctx: &str) {
        self.log.extend(out.records.iter().cloned());
        for d in &out.delayed {
            let token = match d {
                DelayedResponse::Join { token, result } => {
                    if let Ok(r) = result {
                        self.known.push(r.member_id.clone());
                    }
                    token
                }
                DelayedResponse::Sync { token, .. } => token,
            };
            assert!(
                self.pending.remove(token),
                "{ctx}: {token:?} answered twice or never parked"
            );
        }
    }

    fn park<T>(&mut self, token: u64, reply: &Reply<T>) {
        if matches!(reply, Reply::Pending) {
            self.pending.insert(RequestToken(token));
        }
    }

    fn check(&mut self, ctx: &str) {
        if let Some(group) = self.c.group(G) {
            if !group.members().is_empty() {
                let leader = group.leader_id().unwrap_or_default();
                assert!(
                    group.member(leader).is_some(),
                    "{ctx}: leader {leader:?} is not a member"
                );
            }
            assert!(
                group.generation_id() >= self.last_generation,
                "{ctx}: generation went back"
            );
            self.last_generation = group.generation_id();
            for m in group.members() {
                if let Some(instance) = &m.group_instance_id {
                    assert_eq!(
                        group.static_member_id(instance),
                        Some(m.member_id.as_str()),
                        "{ctx}"
                    );
                }
            }
        } else {
            // Deleted (retention or cleanup): a new group starts over.
            self.last_generation = 0;
        }
    }
}

/// Runs one walk; returns how many replay checks saw a Stable group.
fn run(seed: u64, steps: usize) -> usize {
    let mut stable_checks = 0;
    let mut rng = Rng(seed);
    let mut w = World {
        c: coordinator_with(GroupConfig {
            initial_rebalance_delay_ms: if seed.is_multiple_of(2) { 0 } else { 3_000 },
            ..config()
        }),
        now: 0,
        next_token: 0,
        pending: BTreeSet::new(),
        known: Vec::new(),
        last_generation: 0,
        log: Vec::new(),
    };
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        // Mostly current members (and often the leader), sometimes stale
        // ids from `known`, sometimes no id at all.
        let current: Vec<String> =
            w.c.group(G)
                .map(|g| g.members().iter().map(|m| m.member_id.clone()).collect())
                .unwrap_or_default();
        let leader = w.c.group(G).and_then(|g| g.leader_id().map(str::to_string));
        let pick = |rng: &mut Rng, known: &[String]| -> String {
            match rng.below(8) {
                0 => String::new(),
                1 | 2 if leader.is_some() => leader.clone().unwrap_or_default(),
                3..=5 if !current.is_empty() => {
                    current[rng.below(current.len() as u64) as usize].clone()
                }
                _ if !known.is_empty() => known[rng.below(known.len() as u64) as usize].clone(),
                _ => String::new(),
            }
        };
        let generation =
            w.c.group(G).map_or(0, |g| g.generation_id()) - i32::from(rng.below(6) == 0);
        match rng.below(20) {
            0 | 1 => {
                let token = w.token();
                let member = pick(&mut rng, &w.known);
                let mut req = match rng.below(4) {
                    0 => static_join_req(token, &member, &format!("i{}", rng.below(3))),
                    _ => join_req(token, &member),
                };
                req.require_known_member_id = rng.below(2) == 0;
                if rng.below(5) == 0 {
                    req.protocols = protocols(&["cooperative-sticky", "range"], "t2");
                }
                let out = w.c.join_group(req, w.now);
                match &out.reply {
                    Reply::Now(Err(GroupError::MemberIdRequired { member_id })) => {
                        w.known.push(member_id.clone())
                    }
                    Reply::Now(Ok(r)) => w.known.push(r.member_id.clone()),
                    _ => {}
                }
                w.park(token, &out.reply);
                w.absorb(&out, &ctx);
            }
            2..=7 => {
                let token = w.token();
                let member = pick(&mut rng, &w.known);
                let mut req = sync_req(token, &member, generation);
                if let Some(g) = w.c.group(G) {
                    req.assignments = g
                        .members()
                        .iter()
                        .map(|m| (m.member_id.clone(), "x".into()))
                        .collect();
                }
                let out = w.c.sync_group(req, w.now);
                w.park(token, &out.reply);
                w.absorb(&out, &ctx);
            }
            8..=11 => {
                let member = pick(&mut rng, &w.known);
                let _ = heartbeat(&mut w.c, &member, generation, w.now);
            }
            12 => {
                let member = pick(&mut rng, &w.known);
                let out = w.c.leave_group(
                    LeaveGroupRequest {
                        group_id: G.into(),
                        members: vec![LeavingMember {
                            member_id: member,
                            group_instance_id: None,
                        }],
                    },
                    w.now,
                );
                w.absorb(&out, &ctx);
            }
            13..=15 => {
                let member = pick(&mut rng, &w.known);
                let offsets = [(tp("t", rng.below(2) as i32), step as i64)];
                let producer_id = 1 + rng.below(2) as i64;
                match rng.below(4) {
                    // A transactional commit, and later its producer's marker.
                    0 => {
                        let req = TxnOffsetCommitRequest {
                            group_id: G.into(),
                            producer_id,
                            producer_epoch: 0,
                            generation_id: generation,
                            member_id: member.clone(),
                            group_instance_id: None,
                            partitions: commit_req(&member, generation, &offsets).partitions,
                        };
                        let out = w.c.txn_offset_commit(req, w.now);
                        w.absorb(&out, &ctx);
                    }
                    1 => {
                        let result = if rng.below(2) == 0 {
                            crate::txn::TransactionResult::Commit
                        } else {
                            crate::txn::TransactionResult::Abort
                        };
                        w.c.complete_txn(producer_id, result);
                        w.log.push(GroupRecord::EndTxnMarker {
                            producer_id,
                            producer_epoch: 0,
                            result,
                            coordinator_epoch: 0,
                        });
                    }
                    _ => {
                        let out =
                            w.c.offset_commit(commit_req(&member, generation, &offsets), w.now);
                        w.absorb(&out, &ctx);
                    }
                }
            }
            _ => {
                w.now += if rng.below(10) == 0 {
                    12_000
                } else {
                    rng.below(3_000) as i64
                };
                let out = w.c.on_tick(w.now);
                w.absorb(&out, &ctx);
                assert!(
                    w.c.next_deadline().is_none_or(|d| d > w.now),
                    "{ctx}: deadline not in the future"
                );
            }
        }
        w.check(&ctx);
        if step.is_multiple_of(10) && check_replay(&w, &ctx) {
            stable_checks += 1;
        }
    }
    // Everyone goes silent: time answers every parked request.
    for _ in 0..20 {
        let Some(deadline) = w.c.next_deadline() else {
            break;
        };
        w.now = w.now.max(deadline);
        let out = w.c.on_tick(w.now);
        w.absorb(&out, "drain");
        if w.pending.is_empty() {
            break;
        }
    }
    assert!(
        w.pending.is_empty(),
        "seed {seed}: never answered: {:?}",
        w.pending
    );
    stable_checks
}

/// In the states Kafka persists (Stable, Empty, gone), replaying the log
/// gives the same group.
fn check_replay(w: &World, ctx: &str) -> bool {
    let state = w.c.group(G).map(|g| g.state());
    if !matches!(state, None | Some(GroupState::Stable | GroupState::Empty)) {
        return false;
    }
    let mut loaded = coordinator();
    for record in &w.log {
        loaded.replay(record.clone());
    }
    for require_stable in [false, true] {
        for partitions in [None, Some(vec![tp("t", 0), tp("t", 1)])] {
            let req = OffsetFetchRequest {
                group_id: G.into(),
                partitions,
                require_stable,
            };
            assert_eq!(loaded.offset_fetch(&req), w.c.offset_fetch(&req), "{ctx}");
        }
    }
    let (Some(original), Some(replayed)) = (w.c.group(G), loaded.group(G)) else {
        // A group that only exists in memory holds nothing persisted.
        assert!(
            w.c.group(G)
                .is_none_or(|g| g.offsets().is_empty() && g.members().is_empty()),
            "{ctx}"
        );
        return false;
    };
    assert_eq!(replayed.describe(), original.describe(), "{ctx}");
    if original.state() == GroupState::Stable {
        assert_eq!(replayed.generation_id(), original.generation_id(), "{ctx}");
        assert_eq!(replayed.leader_id(), original.leader_id(), "{ctx}");
        return !original.members().is_empty();
    }
    false
}

#[test]
fn random_walks_keep_invariants() {
    let stable_checks: usize = (0..200).map(|seed| run(seed, 300)).sum();
    // The walk must reach the interesting states, not just bounce off errors.
    assert!(
        stable_checks > 300,
        "only {stable_checks} checks saw a Stable group"
    );
}
