//! Scenario tests of the deadlines (pending sync, rebalance timeout with
//! static members, new-member join timeout) and of the remaining JoinGroup
//! refusals (fencing, group.max.size).

use bytes::Bytes;

use super::test_support::*;
use super::*;

#[test]
fn member_that_never_syncs_is_removed_at_pending_sync_deadline() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    // A third member joins; everyone rejoins at t=100: generation 3.
    let _ = c.join_group(join_req(1, ""), 100);
    let _ = c.join_group(join_req(2, &ids[1]), 100);
    let out = c.join_group(join_req(3, &ids[0]), 100);
    let newcomer = join_answer(&out.delayed, 1).expect("join").member_id;
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::CompletingRebalance)
    );
    // Heartbeats are fine while the assignment is awaited.
    assert_eq!(heartbeat(&mut c, &newcomer, generation + 1, 200), Ok(()));
    // The leader and one follower sync; the newcomer never does.
    let mut sync = sync_req(4, &ids[0], generation + 1);
    sync.assignments = vec![(ids[0].clone(), Bytes::from("x"))];
    let _ = c.sync_group(sync_req(5, &ids[1], generation + 1), 300);
    let out = c.sync_group(sync, 300);
    assert_eq!(
        sync_answer(&out.delayed, 5).map(|r| r.assignment),
        Ok(Bytes::new())
    );
    let deadline = 100 + i64::from(REBALANCE_MS);
    for t in [5_000, 10_000, 15_000, 20_000, 25_000] {
        assert_eq!(heartbeat(&mut c, &newcomer, generation + 1, t), Ok(()));
        assert_eq!(heartbeat(&mut c, &ids[0], generation + 1, t), Ok(()));
        assert_eq!(heartbeat(&mut c, &ids[1], generation + 1, t), Ok(()));
    }
    assert_eq!(c.next_deadline(), Some(deadline));
    let _ = c.on_tick(deadline);
    let group = c.group(G).expect("group");
    assert!(group.member(&newcomer).is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn rebalance_timeout_drops_dynamic_members_but_keeps_static_ones() {
    let mut c = coordinator();
    // A static and a dynamic member in one generation.
    let out = c.join_group(static_join_req(1, "", "i1"), 0);
    let static_id = join_answer(&out.delayed, 1).expect("join").member_id;
    let _ = c.sync_group(sync_req(2, &static_id, 1), 0);
    let _ = c.join_group(join_req(3, ""), 10);
    let out = c.join_group(static_join_req(4, &static_id, "i1"), 10);
    let dynamic_id = join_answer(&out.delayed, 3).expect("join").member_id;
    let mut sync = sync_req(5, &static_id, 2);
    sync.assignments = vec![
        (static_id.clone(), Bytes::from("s")),
        (dynamic_id.clone(), Bytes::from("d")),
    ];
    let _ = c.sync_group(sync_req(6, &dynamic_id, 2), 20);
    let _ = c.sync_group(sync, 20);
    // A newcomer joins; neither old member rejoins but both keep heartbeating.
    let out = c.join_group(join_req(7, ""), 1_000);
    assert_eq!(out.reply, Reply::Pending);
    for t in [5_000, 10_000, 15_000, 20_000, 25_000, 30_000] {
        assert_eq!(
            heartbeat(&mut c, &dynamic_id, 2, t),
            Err(GroupError::RebalanceInProgress)
        );
        let out = c.heartbeat(
            HeartbeatRequest {
                group_id: G.into(),
                member_id: static_id.clone(),
                group_instance_id: Some("i1".into()),
                generation_id: 2,
            },
            t,
        );
        assert_eq!(out.reply, Err(GroupError::RebalanceInProgress));
    }
    let out = c.on_tick(1_000 + i64::from(REBALANCE_MS));
    let answer = join_answer(&out.delayed, 7).expect("join");
    assert_eq!(answer.generation_id, 3);
    let group = c.group(G).expect("group");
    assert!(
        group.member(&dynamic_id).is_none(),
        "dynamic member that did not rejoin is gone"
    );
    assert!(
        group.member(&static_id).is_some(),
        "static member stays until its session ends"
    );
    assert_eq!(
        answer.leader, answer.member_id,
        "only the newcomer rejoined: it leads"
    );
}

#[test]
fn join_with_replaced_static_member_id_is_fenced() {
    let mut c = coordinator();
    let out = c.join_group(static_join_req(1, "", "i1"), 0);
    let old_id = join_answer(&out.delayed, 1).expect("join").member_id;
    let _ = c.sync_group(sync_req(2, &old_id, 1), 0);
    let out = c.join_group(static_join_req(3, "", "i1"), 10);
    assert!(matches!(out.reply, Reply::Now(Ok(_))));
    // The zombie with the old id tries to rejoin, sync and commit.
    let out = c.join_group(static_join_req(4, &old_id, "i1"), 20);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::FencedInstanceId { .. }))
    ));
    let mut sync = sync_req(5, &old_id, 1);
    sync.group_instance_id = Some("i1".into());
    let out = c.sync_group(sync, 20);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::FencedInstanceId { .. }))
    ));
    let mut commit = commit_req(&old_id, 1, &[(tp("t", 0), 1)]);
    commit.group_instance_id = Some("i1".into());
    let out = c.offset_commit(commit, 20);
    assert!(matches!(
        out.reply[0].1,
        Err(GroupError::FencedInstanceId { .. })
    ));
}

#[test]
fn static_member_replaced_while_parked_in_join_gets_fenced_answer() {
    let mut c = coordinator();
    let (ids, _) = stable_group(&mut c, 1, 0);
    let out = c.join_group(static_join_req(1, "", "i1"), 10);
    assert_eq!(out.reply, Reply::Pending);
    // The group now prepares a rebalance; the leader has not rejoined, so the
    // static member's JoinGroup (token 1) is parked. Its client restarts.
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::PreparingRebalance)
    );
    let out = c.join_group(static_join_req(2, "", "i1"), 20);
    assert!(matches!(
        join_answer(&out.delayed, 1),
        Err(GroupError::FencedInstanceId { .. })
    ));
    // The leader rejoins: the phase completes with the new static id.
    let out = c.join_group(join_req(3, &ids[0]), 30);
    let leader = join_answer(&out.delayed, 3).expect("join");
    let static_answer = join_answer(&out.delayed, 2).expect("join");
    assert!(
        leader
            .members
            .iter()
            .any(|m| m.member_id == static_answer.member_id)
    );
    assert_eq!(leader.members.len(), 2);
}

#[test]
fn group_max_size_refuses_new_members() {
    let mut c = coordinator_with(GroupConfig {
        max_size: 2,
        ..config()
    });
    let (ids, _) = stable_group(&mut c, 2, 0);
    let out = c.join_group(join_req(1, ""), 10);
    assert_eq!(
        out.reply,
        Reply::Now(Err(GroupError::GroupMaxSizeReached { max: 2 }))
    );
    // Known members may still rejoin.
    let out = c.join_group(join_req(2, &ids[1]), 10);
    assert!(matches!(out.reply, Reply::Now(Ok(_))));
}

#[test]
fn new_member_in_first_rebalance_expires_after_join_timeout() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let _ = c.join_group(join_req(1, ""), 0);
    let out = c.join_group(join_req(2, ""), 1);
    assert_eq!(out.reply, Reply::Pending);
    assert!(
        c.group(G)
            .and_then(|g| g.member("c-m2"))
            .is_some_and(|m| m.is_new)
    );
    // The group's first join phase completes as the delay allows.
    let out = c.on_tick(3_000);
    assert!(out.delayed.is_empty());
    let out = c.on_tick(6_000);
    assert_eq!(join_answer(&out.delayed, 2).map(|r| r.generation_id), Ok(1));
    assert!(
        c.group(G)
            .and_then(|g| g.member("c-m2"))
            .is_some_and(|m| !m.is_new)
    );
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut c = coordinator();
    let (ids, _) = stable_group(&mut c, 2, 0);
    let _ = c.join_group(join_req(1, ""), 10);
    let out = c.join_group(join_req(2, &ids[0]), 10);
    assert_eq!(out.reply, Reply::Pending);
    let out = c.unload(|group_id| group_id == G);
    assert_eq!(
        join_answer(&out.delayed, 1),
        Err(GroupError::NotCoordinator)
    );
    assert_eq!(
        join_answer(&out.delayed, 2),
        Err(GroupError::NotCoordinator)
    );
    assert!(c.group(G).is_none());
    assert_eq!(c.next_deadline(), None);
}
