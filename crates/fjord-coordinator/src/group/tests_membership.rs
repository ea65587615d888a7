//! Scenario and table tests of JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup: each test is a short sequence of phases on one coordinator.

use bytes::Bytes;

use super::test_support::*;
use super::*;

#[test]
fn three_members_join_and_sync_with_initial_delay() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    // Phase 1: three members join an Empty group; the initial delay parks them.
    for (token, now) in [(1, 0), (2, 10), (3, 20)] {
        let out = c.join_group(join_req(token, ""), now);
        assert_eq!(out.reply, Reply::Pending);
        assert!(out.delayed.is_empty());
    }
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::PreparingRebalance)
    );
    // Phase 2: new members arrived during the delay, so it is extended once.
    assert_eq!(c.next_deadline(), Some(3_000));
    let out = c.on_tick(3_000);
    assert!(out.delayed.is_empty());
    assert_eq!(c.next_deadline(), Some(6_000));
    let out = c.on_tick(6_000);
    // Phase 3: everyone gets generation 1; only the leader gets the members.
    let answers: Vec<JoinGroupResult> = (1..=3)
        .map(|t| join_answer(&out.delayed, t).expect("join"))
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.generation_id == 1 && a.leader == "c-m1")
    );
    assert_eq!(answers[0].members.len(), 3);
    assert!(answers[1].members.is_empty() && answers[2].members.is_empty());
    assert_eq!(answers[0].protocol_name.as_deref(), Some("range"));
    assert!(out.records.is_empty(), "nothing is stored before the sync");
    // Phase 4: followers wait for the leader's sync.
    for (token, id) in [(11, "c-m2"), (12, "c-m3")] {
        let out = c.sync_group(sync_req(token, id, 1), 6_001);
        assert_eq!(out.reply, Reply::Pending);
        assert!(out.delayed.is_empty());
    }
    let mut leader_sync = sync_req(10, "c-m1", 1);
    leader_sync.assignments = ["c-m1", "c-m2", "c-m3"]
        .iter()
        .map(|m| (m.to_string(), Bytes::from(format!("a-{m}"))))
        .collect();
    let out = c.sync_group(leader_sync, 6_002);
    assert_eq!(out.records.len(), 1, "group metadata stored at sync");
    for (token, id) in [(10, "c-m1"), (11, "c-m2"), (12, "c-m3")] {
        let got = sync_answer(&out.delayed, token).expect("sync");
        assert_eq!(got.assignment, Bytes::from(format!("a-{id}")));
    }
    assert_eq!(c.group(G).map(|g| g.state()), Some(GroupState::Stable));
    // Phase 5: heartbeats are fine; a late SyncGroup in Stable answers at once.
    assert_eq!(heartbeat(&mut c, "c-m2", 1, 7_000), Ok(()));
    let out = c.sync_group(sync_req(13, "c-m3", 1), 7_000);
    assert!(matches!(out.reply, Reply::Now(Ok(ref r)) if r.assignment == "a-c-m3"));
}

#[test]
fn member_id_required_then_rejoin() {
    let mut c = coordinator();
    let mut req = join_req(1, "");
    req.require_known_member_id = true;
    let out = c.join_group(req.clone(), 0);
    let member_id = "c-m1".to_string();
    assert_eq!(
        out.reply,
        Reply::Now(Err(GroupError::MemberIdRequired {
            member_id: member_id.clone()
        }))
    );
    assert!(c.group(G).is_some_and(|g| g.is_pending_member(&member_id)));
    // Rejoin with the given id completes the (delay 0) join phase.
    req.member_id = member_id.clone();
    req.token = RequestToken(2);
    let out = c.join_group(req, 5);
    let joined = join_answer(&out.delayed, 2).expect("join");
    assert_eq!(
        (joined.member_id.as_str(), joined.generation_id),
        ("c-m1", 1)
    );
    // An id the group never handed out is unknown.
    let out = c.join_group(join_req(3, "made-up"), 6);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::UnknownMemberId { .. }))
    ));
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 1, 0);
    let mut req = join_req(5, "");
    req.require_known_member_id = true;
    let out = c.join_group(req, 100);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::MemberIdRequired { .. }))
    ));
    // A pending member does not rebalance the group by itself.
    assert_eq!(c.group(G).map(|g| g.state()), Some(GroupState::Stable));
    assert_eq!(heartbeat(&mut c, &ids[0], generation, 5_000), Ok(()));
    let _ = c.on_tick(100 + i64::from(SESSION_MS));
    assert!(c.group(G).is_some_and(|g| !g.is_pending_member("c-m2")));
}

#[test]
fn new_member_triggers_rebalance_and_old_members_rejoin() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    assert_eq!(generation, 2);
    let out = c.join_group(join_req(50, ""), 1_000);
    assert_eq!(out.reply, Reply::Pending);
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::PreparingRebalance)
    );
    // Heartbeats tell the others to rejoin.
    assert_eq!(
        heartbeat(&mut c, &ids[1], generation, 1_100),
        Err(GroupError::RebalanceInProgress)
    );
    let out = c.join_group(join_req(51, &ids[1]), 1_200);
    assert!(out.delayed.is_empty());
    let out = c.join_group(join_req(52, &ids[0]), 1_300);
    let leader = join_answer(&out.delayed, 52).expect("join");
    assert_eq!(leader.generation_id, 3);
    assert_eq!(
        leader.leader, ids[0],
        "the leader that rejoined stays leader"
    );
    assert_eq!(leader.members.len(), 3);
    assert_eq!(
        join_answer(&out.delayed, 50).map(|r| r.generation_id),
        Ok(3)
    );
    assert_eq!(
        join_answer(&out.delayed, 51).map(|r| r.members.len()),
        Ok(0)
    );
}

#[test]
fn leader_that_does_not_rejoin_is_replaced_at_rebalance_timeout() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 3, 0);
    // ids[2] rejoins with new metadata: rebalance; ids[1] rejoins; the leader stays silent.
    let mut req = join_req(60, &ids[2]);
    req.protocols = protocols(&["range"], "other");
    let _ = c.join_group(req, 1_000);
    let _ = c.join_group(join_req(61, &ids[1]), 1_000);
    // Heartbeats keep the leader's session alive, but it never rejoins.
    assert_eq!(
        heartbeat(&mut c, &ids[0], generation, 5_000),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(c.next_deadline(), Some(15_000), "the leader's session");
    let _ = heartbeat(&mut c, &ids[0], generation, 14_000);
    let _ = heartbeat(&mut c, &ids[0], generation, 23_000);
    let out = c.on_tick(31_000);
    let answer = join_answer(&out.delayed, 61).expect("join");
    assert_eq!(answer.leader, ids[1], "oldest member that rejoined leads");
    assert_eq!(answer.members.len(), 2);
    assert!(c.group(G).is_some_and(|g| g.member(&ids[0]).is_none()));
}

#[test]
fn protocol_selection_table() {
    let cases: &[(&[&[&str]], Option<&str>)] = &[
        (
            &[
                &["range", "roundrobin"],
                &["roundrobin", "range"],
                &["roundrobin"],
            ],
            Some("roundrobin"),
        ),
        (
            &[
                &["range", "roundrobin"],
                &["range", "roundrobin"],
                &["roundrobin", "range"],
            ],
            Some("range"),
        ),
        (&[&["b", "a"], &["a", "b"]], Some("a")),
        (
            &[&["cooperative-sticky", "range"], &["range"]],
            Some("range"),
        ),
        (
            &[
                &["cooperative-sticky", "range"],
                &["cooperative-sticky", "range"],
            ],
            Some("cooperative-sticky"),
        ),
    ];
    for (members, expected) in cases {
        let mut group = ClassicGroup::new(G.to_string(), Some(0));
        for (i, names) in members.iter().enumerate() {
            let mut req = join_req(i as u64, "");
            req.protocols = protocols(names, "t");
            let member = Member {
                member_id: format!("m{i}"),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: REBALANCE_MS,
                session_timeout_ms: SESSION_MS,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline_ms: 0,
                join_seq: 0,
            };
            group.add_member(member, CONSUMER_PROTOCOL_TYPE);
        }
        assert_eq!(group.select_protocol().as_deref(), *expected, "{members:?}");
    }
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut c = coordinator();
    let _ = stable_single(&mut c, 0);
    let mut req = join_req(7, "");
    req.protocols = protocols(&["roundrobin"], "t");
    let out = c.join_group(req, 10);
    assert_eq!(
        out.reply,
        Reply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut req = join_req(8, "");
    req.protocol_type = "connect".into();
    let out = c.join_group(req, 10);
    assert_eq!(
        out.reply,
        Reply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut req = join_req(9, "");
    req.session_timeout_ms = 10;
    let out = c.join_group(req, 10);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::InvalidSessionTimeout { .. }))
    ));
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    // ids[1] keeps heartbeating; ids[0] (the leader) goes silent.
    assert_eq!(heartbeat(&mut c, &ids[1], generation, 8_000), Ok(()));
    assert_eq!(c.next_deadline(), Some(i64::from(SESSION_MS)));
    let out = c.on_tick(i64::from(SESSION_MS));
    assert!(out.delayed.is_empty());
    let group = c.group(G).expect("group");
    assert!(group.member(&ids[0]).is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.leader_id(), Some(ids[1].as_str()));
    // The survivor rejoins and the join phase completes at once.
    let out = c.join_group(join_req(70, &ids[1]), 10_100);
    let answer = join_answer(&out.delayed, 70).expect("join");
    assert_eq!(
        (answer.generation_id, answer.leader.as_str()),
        (generation + 1, ids[1].as_str())
    );
}

#[test]
fn static_member_rejoin_without_rebalance_fences_old_id() {
    let mut c = coordinator();
    let out = c.join_group(static_join_req(1, "", "i1"), 0);
    let joined = join_answer(&out.delayed, 1).expect("join");
    assert_eq!(joined.member_id, "i1-m1");
    let mut sync = sync_req(2, "i1-m1", 1);
    sync.assignments = vec![("i1-m1".into(), Bytes::from("a1"))];
    let _ = c.sync_group(sync, 0);
    // The client restarts: same instance id, no member id, same protocols.
    let out = c.join_group(static_join_req(3, "", "i1"), 1_000);
    let Reply::Now(Ok(answer)) = out.reply else {
        panic!("expected an immediate answer, got {:?}", out.reply);
    };
    assert_eq!(answer.member_id, "i1-m2");
    assert_eq!(answer.generation_id, 1, "no rebalance");
    assert!(
        answer.skip_assignment,
        "the static leader must not reassign"
    );
    assert_eq!(out.records.len(), 1, "the new member id is stored");
    let group = c.group(G).expect("group");
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(group.leader_id(), Some("i1-m2"));
    assert_eq!(
        group.member("i1-m2").map(|m| m.assignment.clone()),
        Some(Bytes::from("a1"))
    );
    // The new id syncs and gets the kept assignment; the old id is fenced.
    let out = c.sync_group(sync_req(4, "i1-m2", 1), 1_001);
    assert!(matches!(out.reply, Reply::Now(Ok(ref r)) if r.assignment == "a1"));
    let out = c.heartbeat(
        HeartbeatRequest {
            group_id: G.into(),
            member_id: "i1-m1".into(),
            group_instance_id: Some("i1".into()),
            generation_id: 1,
        },
        1_002,
    );
    assert!(matches!(
        out.reply,
        Err(GroupError::FencedInstanceId { .. })
    ));
    assert!(matches!(
        heartbeat(&mut c, "i1-m1", 1, 1_002),
        Err(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn static_member_rejoin_with_new_protocol_rebalances() {
    let mut c = coordinator();
    let out = c.join_group(static_join_req(1, "", "i1"), 0);
    let _ = join_answer(&out.delayed, 1);
    let _ = c.sync_group(sync_req(2, "i1-m1", 1), 0);
    let mut req = static_join_req(3, "", "i1");
    req.protocols = protocols(&["cooperative-sticky", "range"], "t");
    let out = c.join_group(req, 100);
    // Alone in the group, the join phase completes at once with the new choice.
    let answer = join_answer(&out.delayed, 3).expect("join");
    assert_eq!(answer.generation_id, 2);
    assert_eq!(answer.protocol_name.as_deref(), Some("cooperative-sticky"));
}

#[test]
fn rejoin_with_changed_metadata_during_completing_rebalance() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    // A follower rejoining with the same metadata changes nothing...
    let out = c.join_group(join_req(79, &ids[1]), 50);
    assert!(matches!(out.reply, Reply::Now(Ok(ref r)) if r.generation_id == generation));
    // ...with a new subscription it starts a rebalance.
    let mut req = join_req(80, &ids[1]);
    req.protocols = protocols(&["range"], "t3");
    let _ = c.join_group(req, 100);
    let out = c.join_group(join_req(81, &ids[0]), 100);
    let _ = join_answer(&out.delayed, 80).expect("join");
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::CompletingRebalance)
    );
    // The follower waits in SyncGroup; then the leader rejoins with a new subscription.
    let out = c.sync_group(sync_req(82, &ids[1], generation + 1), 200);
    assert_eq!(out.reply, Reply::Pending);
    let mut req = join_req(83, &ids[0]);
    req.protocols = protocols(&["range"], "t2");
    let out = c.join_group(req, 300);
    assert_eq!(
        sync_answer(&out.delayed, 82),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::PreparingRebalance)
    );
    // The follower rejoins too, which completes the join phase.
    let out = c.join_group(join_req(84, &ids[1]), 400);
    assert_eq!(
        join_answer(&out.delayed, 84).map(|r| r.generation_id),
        Ok(generation + 2)
    );
    assert_eq!(
        join_answer(&out.delayed, 83).map(|r| r.members.len()),
        Ok(2)
    );
}

#[test]
fn sync_group_errors_table() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    let cases: Vec<(SyncGroupRequest, GroupError)> = vec![
        (
            sync_req(1, "nobody", generation),
            GroupError::UnknownMemberId {
                member_id: "nobody".into(),
            },
        ),
        (
            sync_req(2, &ids[1], generation - 1),
            GroupError::IllegalGeneration {
                generation_id: generation - 1,
                current: generation,
            },
        ),
        (
            SyncGroupRequest {
                protocol_name: Some("roundrobin".into()),
                ..sync_req(3, &ids[1], generation)
            },
            GroupError::InconsistentGroupProtocol,
        ),
        (
            SyncGroupRequest {
                protocol_type: Some("connect".into()),
                ..sync_req(4, &ids[1], generation)
            },
            GroupError::InconsistentGroupProtocol,
        ),
    ];
    for (req, expected) in cases {
        let out = c.sync_group(req.clone(), 10);
        assert_eq!(out.reply, Reply::Now(Err(expected)), "{req:?}");
    }
    // While preparing a rebalance, SyncGroup says so.
    let _ = c.join_group(join_req(9, ""), 20);
    let out = c.sync_group(sync_req(10, &ids[1], generation), 20);
    assert_eq!(out.reply, Reply::Now(Err(GroupError::RebalanceInProgress)));
}

#[test]
fn leave_group_batch() {
    let mut c = coordinator();
    let out = c.join_group(static_join_req(1, "", "i1"), 0);
    let _ = join_answer(&out.delayed, 1);
    let _ = c.sync_group(sync_req(2, "i1-m1", 1), 0);
    let out = c.join_group(join_req(3, ""), 10);
    assert_eq!(out.reply, Reply::Pending);
    let out = c.join_group(static_join_req(4, "i1-m1", "i1"), 10);
    let _ = join_answer(&out.delayed, 3).expect("join");
    // One dynamic member by id, the static one by instance id, one stranger.
    let out = c.leave_group(
        LeaveGroupRequest {
            group_id: G.into(),
            members: vec![
                LeavingMember {
                    member_id: "c-m2".into(),
                    group_instance_id: None,
                },
                LeavingMember {
                    member_id: String::new(),
                    group_instance_id: Some("i1".into()),
                },
                LeavingMember {
                    member_id: "stranger".into(),
                    group_instance_id: None,
                },
            ],
        },
        20,
    );
    let results: Vec<bool> = out
        .reply
        .expect("leave")
        .iter()
        .map(|(_, r)| r.is_ok())
        .collect();
    assert_eq!(results, vec![true, true, false]);
    // Nobody left: the group becomes Empty with a new generation, stored.
    let group = c.group(G).expect("group kept until cleanup");
    assert_eq!(
        (group.state(), group.generation_id()),
        (GroupState::Empty, 3)
    );
    assert!(
        out.records
            .iter()
            .any(|r| matches!(r, GroupRecord::Metadata(m) if m.members.is_empty()))
    );
    // A missing group answers UNKNOWN_MEMBER_ID per member.
    let out = c.leave_group(
        LeaveGroupRequest {
            group_id: "nope".into(),
            members: vec![LeavingMember {
                member_id: "x".into(),
                group_instance_id: None,
            }],
        },
        30,
    );
    assert!(matches!(
        out.reply.as_deref(),
        Ok([(_, Err(GroupError::UnknownMemberId { .. }))])
    ));
}

#[test]
fn describe_and_list_groups() {
    let mut c = coordinator();
    let (ids, _) = stable_group(&mut c, 2, 0);
    let description = c.describe_group(G);
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.protocol, "range");
    assert_eq!(description.members.len(), 2);
    assert_eq!(description.members[0].member_id, ids[0]);
    assert_eq!(
        description.members[0].assignment,
        Bytes::from(format!("a-{}", ids[0]))
    );
    assert_eq!(c.describe_group("unknown").state, GroupState::Dead);
    assert_eq!(c.list_groups(&[]).len(), 1);
    assert!(c.list_groups(&[GroupState::Empty]).is_empty());
    assert_eq!(
        c.list_groups(&[GroupState::Stable])[0].protocol_type,
        CONSUMER_PROTOCOL_TYPE
    );
}
