//! Scenario and table tests of OffsetCommit, OffsetFetch, OffsetDelete,
//! DeleteGroups, offsets retention and replay of the emitted records.

use super::test_support::*;
use super::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn fetch_all(
    c: &GroupCoordinator,
    group_id: &str,
) -> Vec<(fjord_types::TopicPartition, Option<CommittedOffset>)> {
    c.offset_fetch(&OffsetFetchRequest {
        group_id: group_id.into(),
        partitions: None,
        require_stable: false,
    })
    .expect("fetch")
    .into_iter()
    .map(|(tp, committed)| (tp, committed.expect("stable")))
    .collect()
}

#[test]
fn offset_commit_validation_table() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    let t0 = tp("t", 0);
    let cases: Vec<(OffsetCommitRequest, Result<(), GroupError>)> = vec![
        (commit_req(&ids[0], generation, &[(t0.clone(), 5)]), Ok(())),
        (
            commit_req(&ids[1], generation - 1, &[(t0.clone(), 6)]),
            Err(GroupError::IllegalGeneration {
                generation_id: generation - 1,
                current: generation,
            }),
        ),
        (
            commit_req("nobody", generation, &[(t0.clone(), 6)]),
            Err(GroupError::UnknownMemberId {
                member_id: "nobody".into(),
            }),
        ),
        // A standalone commit to a group with members is refused.
        (
            commit_req("", -1, &[(t0.clone(), 6)]),
            Err(GroupError::UnknownMemberId {
                member_id: "".into(),
            }),
        ),
        (
            OffsetCommitRequest {
                partitions: vec![OffsetCommitPartition {
                    tp: t0.clone(),
                    offset: 7,
                    leader_epoch: None,
                    metadata: "x".repeat(5000),
                }],
                ..commit_req(&ids[0], generation, &[])
            },
            Err(GroupError::OffsetMetadataTooLarge {
                size: 5000,
                max: 4096,
            }),
        ),
    ];
    for (req, expected) in cases {
        let out = c.offset_commit(req.clone(), 100);
        assert_eq!(out.reply, vec![(t0.clone(), expected.clone())], "{req:?}");
        assert_eq!(out.records.len(), usize::from(expected.is_ok()));
    }
    let fetched = fetch_all(&c, G);
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        fetched[0]
            .1
            .as_ref()
            .map(|o| (o.offset, o.commit_timestamp_ms)),
        Some((5, 100))
    );

    // While the leader's assignment is awaited, commits are refused.
    let _ = c.join_group(join_req(90, &ids[0]), 200);
    let out = c.join_group(join_req(91, &ids[1]), 200);
    let _ = join_answer(&out.delayed, 91).expect("join");
    let out = c.offset_commit(commit_req(&ids[1], generation + 1, &[(t0.clone(), 8)]), 300);
    assert_eq!(out.reply, vec![(t0, Err(GroupError::RebalanceInProgress))]);
}

#[test]
fn commit_during_preparing_rebalance_is_allowed() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 2, 0);
    let _ = c.join_group(join_req(5, ""), 10);
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::PreparingRebalance)
    );
    let out = c.offset_commit(commit_req(&ids[1], generation, &[(tp("t", 1), 3)]), 20);
    assert_eq!(out.reply, vec![(tp("t", 1), Ok(()))]);
}

#[test]
fn standalone_commits_and_fetch() {
    let mut c = coordinator();
    // A commit with a generation to a group that does not exist is refused.
    let out = c.offset_commit(commit_req("m", 3, &[(tp("t", 0), 1)]), 0);
    assert!(matches!(
        out.reply[0].1,
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(c.group(G).is_none());
    // A standalone commit creates an Empty group without protocol type.
    let out = c.offset_commit(commit_req("", -1, &[(tp("t", 0), 1), (tp("t", 1), 2)]), 0);
    assert!(out.reply.iter().all(|(_, r)| r.is_ok()));
    let group = c.group(G).expect("group");
    assert_eq!(
        (group.state(), group.protocol_type()),
        (GroupState::Empty, None)
    );
    let fetched = c
        .offset_fetch(&OffsetFetchRequest {
            group_id: G.into(),
            partitions: Some(vec![tp("t", 1), tp("t", 9)]),
            require_stable: false,
        })
        .expect("fetch");
    assert_eq!(
        fetched[0].1.as_ref().map(|o| o.as_ref().map(|o| o.offset)),
        Ok(Some(2))
    );
    assert_eq!(fetched[1].1, Ok(None));
    let unknown = c
        .offset_fetch(&OffsetFetchRequest {
            group_id: "other".into(),
            partitions: Some(vec![tp("t", 0)]),
            require_stable: false,
        })
        .expect("fetch");
    assert_eq!(unknown, vec![(tp("t", 0), Ok(None))]);
    // Standalone offsets expire by commit time.
    let retention = c.config().offsets_retention_ms;
    assert_eq!(c.next_deadline(), Some(retention));
    let out = c.on_tick(retention);
    assert_eq!(
        out.records.len(),
        3,
        "two offset tombstones and a group tombstone"
    );
    assert!(c.group(G).is_none());
}

#[test]
fn offsets_of_empty_group_expire_after_retention_from_becoming_empty() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 1, 0);
    let _ = c.offset_commit(commit_req(&ids[0], generation, &[(tp("t", 0), 10)]), 100);
    // The member stays a while: offsets of a Stable group it subscribes to never expire.
    let _ = heartbeat(&mut c, &ids[0], generation, 5_000);
    let _ = c.on_tick(5_000 + 7 * DAY_MS);
    // (Its session expired there, so the group is now Empty, since that tick.)
    let group = c.group(G).expect("group");
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.offsets().len(), 1);
    let empty_since = 5_000 + 7 * DAY_MS;
    let retention = c.config().offsets_retention_ms;
    assert_eq!(c.next_deadline(), Some(empty_since + retention));
    let out = c.on_tick(empty_since + retention - 1);
    assert!(out.records.is_empty());
    let out = c.on_tick(empty_since + retention);
    assert_eq!(
        out.records,
        vec![
            GroupRecord::OffsetTombstone {
                group_id: G.into(),
                tp: tp("t", 0)
            },
            GroupRecord::GroupTombstone { group_id: G.into() },
        ]
    );
    assert!(c.group(G).is_none());
}

#[test]
fn delete_groups_rules() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 1, 0);
    let _ = c.offset_commit(commit_req(&ids[0], generation, &[(tp("t", 0), 10)]), 1);
    let out = c.delete_groups(vec![G.into(), "missing".into(), String::new()]);
    assert_eq!(
        out.reply,
        vec![
            (G.to_string(), Err(GroupError::NonEmptyGroup)),
            ("missing".to_string(), Err(GroupError::GroupIdNotFound)),
            (String::new(), Err(GroupError::InvalidGroupId)),
        ]
    );
    let _ = c.leave_group(leave_req(&ids[0]), 2);
    let out = c.delete_groups(vec![G.into()]);
    assert_eq!(out.reply, vec![(G.to_string(), Ok(()))]);
    assert_eq!(
        out.records,
        vec![
            GroupRecord::OffsetTombstone {
                group_id: G.into(),
                tp: tp("t", 0)
            },
            GroupRecord::GroupTombstone { group_id: G.into() },
        ]
    );
    assert!(c.group(G).is_none());
}

#[test]
fn offset_delete_keeps_subscribed_topics() {
    let mut c = coordinator();
    let (ids, generation) = stable_group(&mut c, 1, 0);
    let _ = c.offset_commit(
        commit_req(&ids[0], generation, &[(tp("t", 0), 1), (tp("old", 0), 2)]),
        1,
    );
    let out = c.offset_delete(G, vec![tp("t", 0), tp("old", 0)], 2);
    assert_eq!(
        out.reply,
        Ok(vec![
            (tp("t", 0), Err(GroupError::GroupSubscribedToTopic)),
            (tp("old", 0), Ok(())),
        ])
    );
    assert_eq!(out.records.len(), 1);
    assert_eq!(fetch_all(&c, G).len(), 1);
    assert_eq!(
        c.offset_delete("missing", vec![tp("t", 0)], 2).reply,
        Err(GroupError::GroupIdNotFound)
    );
}

#[test]
fn replay_of_records_rebuilds_state() {
    // Phase 1: a busy coordinator; keep every record it emits, in order.
    let mut c = coordinator();
    let mut log: Vec<GroupRecord> = Vec::new();
    let (ids, generation) = stable_group(&mut c, 3, 0);
    let out = c.join_group(static_join_req(200, "", "i9"), 10);
    log.extend(out.records);
    let mut delayed = out.delayed;
    for (i, id) in ids.iter().enumerate() {
        let out = c.join_group(join_req(210 + i as u64, id), 20);
        log.extend(out.records);
        delayed.extend(out.delayed);
    }
    let leader = join_answer(&delayed, 210).expect("join");
    let static_id = join_answer(&delayed, 200).expect("join").member_id;
    let members: Vec<String> = leader.members.iter().map(|m| m.member_id.clone()).collect();
    let mut sync = sync_req(220, &ids[0], leader.generation_id);
    sync.assignments = members
        .iter()
        .map(|m| (m.clone(), bytes::Bytes::from(format!("p-{m}"))))
        .collect();
    let out = c.sync_group(sync, 30);
    log.extend(out.records);
    let out = c.offset_commit(commit_req(&ids[1], generation + 1, &[(tp("t", 0), 42)]), 40);
    log.extend(out.records);
    // The static member restarts: no rebalance, new member id stored.
    let out = c.join_group(static_join_req(230, "", "i9"), 50);
    assert!(matches!(out.reply, Reply::Now(Ok(_))));
    log.extend(out.records);
    // A standalone group with offsets, and one that is deleted.
    for (group, offset) in [("solo", 7), ("gone", 8)] {
        let mut req = commit_req("", -1, &[(tp("t", 1), offset)]);
        req.group_id = group.into();
        log.extend(c.offset_commit(req, 60).records);
    }
    log.extend(c.delete_groups(vec!["gone".into()]).records);
    let last_metadata = log.iter().rev().find_map(|r| match r {
        GroupRecord::Metadata(m) if m.group_id == G => Some(m.clone()),
        _ => None,
    });
    let stored: Vec<String> = last_metadata
        .map(|m| m.members.into_iter().map(|m| m.member_id).collect())
        .unwrap_or_default();
    assert!(
        !stored.contains(&static_id) && stored.contains(&"i9-m5".to_string()),
        "{stored:?}"
    );

    // Phase 2: a new coordinator loads the records.
    let mut loaded = coordinator();
    for record in log {
        loaded.replay(record);
    }
    loaded.complete_load(1_000);

    // Phase 3: same groups, states, generations, leaders, members, assignments, offsets.
    assert_eq!(loaded.list_groups(&[]), c.list_groups(&[]));
    for group in c.groups() {
        let id = group.group_id();
        assert_eq!(loaded.describe_group(id), c.describe_group(id), "{id}");
        assert_eq!(fetch_all(&loaded, id), fetch_all(&c, id), "{id}");
        let other = loaded.group(id).expect("loaded");
        assert_eq!(other.generation_id(), group.generation_id());
        assert_eq!(other.leader_id(), group.leader_id());
        assert_eq!(other.subscribed_topics(), group.subscribed_topics());
    }
    // Loaded members heartbeat on as before.
    let out = loaded.heartbeat(
        HeartbeatRequest {
            group_id: G.into(),
            member_id: ids[2].clone(),
            group_instance_id: None,
            generation_id: generation + 1,
        },
        1_500,
    );
    assert_eq!(out.reply, Ok(()));
}

#[test]
fn replay_table_of_record_sequences() {
    let offset = |group: &str, partition: i32, value: i64| GroupRecord::Offset {
        group_id: group.into(),
        tp: tp("t", partition),
        committed: CommittedOffset {
            offset: value,
            leader_epoch: None,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        },
    };
    let tombstone = |group: &str| GroupRecord::GroupTombstone {
        group_id: group.into(),
    };
    let offset_tombstone = |group: &str, partition: i32| GroupRecord::OffsetTombstone {
        group_id: group.into(),
        tp: tp("t", partition),
    };
    // (records, expected committed offsets of group "g" by partition; None = no group)
    type Committed = Option<Vec<(i32, i64)>>;
    let cases: Vec<(Vec<GroupRecord>, Committed)> = vec![
        (vec![offset(G, 0, 1), offset(G, 0, 2)], Some(vec![(0, 2)])),
        (
            vec![offset(G, 0, 1), offset(G, 1, 5), offset_tombstone(G, 0)],
            Some(vec![(1, 5)]),
        ),
        (vec![offset(G, 0, 1), tombstone(G)], None),
        // A group deleted and then used again starts from the later records.
        (
            vec![offset(G, 0, 1), tombstone(G), offset(G, 1, 9)],
            Some(vec![(1, 9)]),
        ),
        (vec![offset("other", 0, 1)], None),
    ];
    for (records, expected) in cases {
        let mut c = coordinator();
        for record in records.clone() {
            c.replay(record);
        }
        let got = c.group(G).map(|g| {
            g.offsets()
                .iter()
                .map(|(tp, o)| (tp.partition, o.offset))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, expected, "{records:?}");
        if let Some(group) = c.group(G) {
            assert_eq!(
                (group.state(), group.protocol_type()),
                (GroupState::Empty, None)
            );
        }
    }
}

#[test]
fn loaded_members_sessions_start_at_load() {
    let mut c = coordinator();
    let _ = stable_group(&mut c, 1, 0);
    let record = GroupRecord::Metadata(c.group(G).expect("group").metadata_record());
    let mut loaded = coordinator();
    loaded.replay(record);
    assert_eq!(loaded.group(G).map(|g| g.state()), Some(GroupState::Stable));
    loaded.complete_load(50_000);
    assert_eq!(loaded.next_deadline(), Some(50_000 + i64::from(SESSION_MS)));
    let emptied = 50_000 + i64::from(SESSION_MS);
    let out = loaded.on_tick(emptied);
    // The silent member goes; the group empties and stores that. With no
    // offsets it stays Empty until the cleanup one check interval later.
    assert!(
        matches!(out.records.as_slice(), [GroupRecord::Metadata(m)] if m.members.is_empty()),
        "{:?}",
        out.records
    );
    assert_eq!(loaded.group(G).map(|g| g.state()), Some(GroupState::Empty));
    let interval = loaded.config().offsets_retention_check_interval_ms;
    assert_eq!(loaded.next_deadline(), Some(emptied + interval));
    let out = loaded.on_tick(emptied + interval);
    assert_eq!(
        out.records,
        vec![GroupRecord::GroupTombstone { group_id: G.into() }]
    );
    assert!(loaded.group(G).is_none());
}

#[test]
fn group_whose_last_member_left_without_offsets_stays_empty_until_cleanup() {
    let mut c = coordinator();
    let interval = c.config().offsets_retention_check_interval_ms;
    let (ids, generation) = stable_group(&mut c, 1, 0);
    let out = c.leave_group(leave_req(&ids[0]), 100);
    let log = out.records;
    // Kafka keeps it: Empty, generation bumped, listed and described.
    let group = c.group(G).expect("group kept");
    assert_eq!(
        (group.state(), group.generation_id()),
        (GroupState::Empty, generation + 1)
    );
    assert_eq!(c.list_groups(&[GroupState::Empty]).len(), 1);
    assert_eq!(c.describe_group(G).state, GroupState::Empty);
    assert_eq!(c.describe_group(G).protocol_type, CONSUMER_PROTOCOL_TYPE);
    assert_eq!(c.next_deadline(), Some(100 + interval));
    assert!(c.on_tick(100 + interval - 1).records.is_empty());
    assert!(c.group(G).is_some());
    // A failed call on it does not make it go.
    let out = c.join_group(join_req(5, "stale"), 200);
    assert!(matches!(
        out.reply,
        Reply::Now(Err(GroupError::UnknownMemberId { .. }))
    ));
    assert!(c.group(G).is_some());

    // A coordinator that loads the log sees the same Empty group, spared
    // one interval from the load.
    let mut loaded = coordinator();
    for record in log {
        loaded.replay(record);
    }
    loaded.complete_load(500);
    assert_eq!(loaded.describe_group(G), c.describe_group(G));
    assert_eq!(loaded.list_groups(&[]), c.list_groups(&[]));
    assert_eq!(loaded.next_deadline(), Some(500 + interval));

    // The cleanup deletes it with a tombstone; DeleteGroups would have too.
    let out = c.on_tick(100 + interval);
    assert_eq!(
        out.records,
        vec![GroupRecord::GroupTombstone { group_id: G.into() }]
    );
    assert!(c.group(G).is_none());
    let out = loaded.delete_groups(vec![G.into()]);
    assert_eq!(out.reply, vec![(G.to_string(), Ok(()))]);
    assert!(loaded.group(G).is_none());
}

#[test]
fn offset_delete_of_last_offset_keeps_the_group_empty() {
    let mut c = coordinator();
    let interval = c.config().offsets_retention_check_interval_ms;
    // A standalone group (an admin's commit, as franz-go's kadm does).
    let out = c.offset_commit(commit_req("", -1, &[(tp("t", 0), 0)]), 10);
    assert!(out.reply.iter().all(|(_, r)| r.is_ok()));
    let mut log = out.records;
    let out = c.offset_delete(G, vec![tp("t", 0)], 1_000);
    assert_eq!(out.reply, Ok(vec![(tp("t", 0), Ok(()))]));
    assert_eq!(
        out.records,
        vec![GroupRecord::OffsetTombstone {
            group_id: G.into(),
            tp: tp("t", 0)
        }]
    );
    log.extend(out.records);
    assert_eq!(c.describe_group(G).state, GroupState::Empty);
    assert_eq!(c.list_groups(&[]).len(), 1);
    assert!(fetch_all(&c, G).is_empty());
    // Spared one interval from the OffsetDelete, not from becoming Empty.
    assert_eq!(c.next_deadline(), Some(1_000 + interval));
    // A failed commit to it does not forget it either.
    let out = c.offset_commit(commit_req("m", 4, &[(tp("t", 0), 1)]), 2_000);
    assert!(out.reply.iter().all(|(_, r)| r.is_err()));
    assert!(c.group(G).is_some());
    // Replay gives the same Empty group.
    let mut loaded = coordinator();
    for record in log {
        loaded.replay(record);
    }
    assert_eq!(loaded.list_groups(&[]), c.list_groups(&[]));
    // DeleteGroups removes it.
    let out = c.delete_groups(vec![G.into()]);
    assert_eq!(out.reply, vec![(G.to_string(), Ok(()))]);
    assert_eq!(
        out.records,
        vec![GroupRecord::GroupTombstone { group_id: G.into() }]
    );
    assert!(c.group(G).is_none());
    assert_eq!(c.describe_group(G).state, GroupState::Dead);
}

#[test]
fn groups_created_by_failed_calls_are_forgotten() {
    let mut c = coordinator();
    // Both calls create the group before they fail.
    let mut join = join_req(1, "");
    join.protocol_type = String::new();
    let out = c.join_group(join, 0);
    assert_eq!(
        out.reply,
        Reply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    assert!(out.records.is_empty());
    let mut commit = commit_req("", -1, &[(tp("t", 0), 1)]);
    commit.partitions[0].metadata = "x".repeat(c.config().offset_metadata_max_bytes + 1);
    let out = c.offset_commit(commit, 0);
    assert!(out.reply.iter().all(|(_, r)| r.is_err()));
    assert!(out.records.is_empty());
    assert!(c.group(G).is_none());
    assert!(c.list_groups(&[]).is_empty());
}
