//! Transactional offset commits: pending offsets, markers, require_stable,
//! KIP-447 fencing, retention and deletion, and replay of a log with
//! transactional batches and markers.

use bytes::{Bytes, BytesMut};
use fjord_types::TopicPartition;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::test_support::*;
use super::*;
use crate::txn::TransactionResult::{Abort, Commit};

const P1: i64 = 1000;
const P2: i64 = 2000;

fn txn_req(
    producer_id: i64,
    member_id: &str,
    generation_id: i32,
    offsets: &[(TopicPartition, i64)],
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest {
        group_id: G.into(),
        producer_id,
        producer_epoch: 3,
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        partitions: commit_req(member_id, generation_id, offsets).partitions,
    }
}

/// A standalone transactional commit (no generation), as v0–v2 send.
fn txn_commit(
    c: &mut GroupCoordinator,
    producer_id: i64,
    offsets: &[(TopicPartition, i64)],
    now: i64,
) -> Vec<GroupRecord> {
    let out = c.txn_offset_commit(txn_req(producer_id, "", -1, offsets), now);
    assert!(out.reply.iter().all(|(_, r)| r.is_ok()), "{:?}", out.reply);
    out.records
}

fn plain_commit(
    c: &mut GroupCoordinator,
    offsets: &[(TopicPartition, i64)],
    now: i64,
) -> Vec<GroupRecord> {
    let out = c.offset_commit(commit_req("", -1, offsets), now);
    assert!(out.reply.iter().all(|(_, r)| r.is_ok()), "{:?}", out.reply);
    out.records
}

fn marker(producer_id: i64, result: crate::txn::TransactionResult) -> GroupRecord {
    GroupRecord::EndTxnMarker {
        producer_id,
        producer_epoch: 3,
        result,
        coordinator_epoch: 7,
    }
}

/// Applies a marker live and returns its record for the log.
fn end_txn(
    c: &mut GroupCoordinator,
    producer_id: i64,
    result: crate::txn::TransactionResult,
) -> GroupRecord {
    c.complete_txn(producer_id, result);
    marker(producer_id, result)
}

type Fetched = Vec<(TopicPartition, Result<Option<i64>, GroupError>)>;

fn fetch(c: &GroupCoordinator, partitions: Option<Vec<TopicPartition>>, stable: bool) -> Fetched {
    c.offset_fetch(&OffsetFetchRequest {
        group_id: G.into(),
        partitions,
        require_stable: stable,
    })
    .expect("fetch")
    .into_iter()
    .map(|(tp, r)| (tp, r.map(|o| o.map(|o| o.offset))))
    .collect()
}

fn committed(c: &GroupCoordinator, tp: &TopicPartition) -> Option<i64> {
    c.group(G)?.offsets().get(tp).map(|o| o.offset)
}

#[test]
fn pending_offsets_are_invisible_until_the_commit_marker() {
    let mut c = coordinator();
    let (t0, t1) = (tp("t", 0), tp("t", 1));
    // Phase: a plain commit, then a transactional one over it.
    let _ = plain_commit(&mut c, &[(t0.clone(), 5)], 0);
    let records = txn_commit(&mut c, P1, &[(t0.clone(), 10), (t1.clone(), 20)], 10);
    assert!(matches!(
        records.as_slice(),
        [
            GroupRecord::TxnOffset {
                producer_id: P1,
                producer_epoch: 3,
                ..
            },
            GroupRecord::TxnOffset {
                producer_id: P1,
                ..
            }
        ]
    ));
    assert_eq!(
        fetch(&c, Some(vec![t0.clone(), t1.clone()]), false),
        vec![(t0.clone(), Ok(Some(5))), (t1.clone(), Ok(None))]
    );
    let group = c.group(G).expect("group");
    assert_eq!(
        group.pending_txn_offset(P1, &t0).map(|o| o.offset),
        Some(10)
    );
    // Phase: another producer's marker changes nothing.
    c.complete_txn(P2, Commit);
    assert_eq!(committed(&c, &t0), Some(5));
    // Phase: the producer's COMMIT marker makes them committed.
    c.complete_txn(P1, Commit);
    assert_eq!(
        fetch(&c, None, true),
        vec![(t0.clone(), Ok(Some(10))), (t1.clone(), Ok(Some(20)))]
    );
    assert!(!c.group(G).expect("group").has_pending_txn_offsets(&t0));
}

#[test]
fn abort_marker_drops_pending_offsets() {
    let mut c = coordinator();
    let t0 = tp("t", 0);
    let _ = plain_commit(&mut c, &[(t0.clone(), 5)], 0);
    let _ = txn_commit(&mut c, P1, &[(t0.clone(), 10)], 10);
    c.complete_txn(P1, Abort);
    assert_eq!(fetch(&c, None, true), vec![(t0.clone(), Ok(Some(5)))]);
    assert!(
        c.group(G)
            .expect("group")
            .pending_txn_offset(P1, &t0)
            .is_none()
    );
    // A later COMMIT marker of the same producer finds nothing to commit.
    c.complete_txn(P1, Commit);
    assert_eq!(committed(&c, &t0), Some(5));
}

#[test]
fn require_stable_answers_unstable_offset_commit_while_pending() {
    let mut c = coordinator();
    let (t0, t1, t2) = (tp("t", 0), tp("t", 1), tp("t", 2));
    let _ = plain_commit(&mut c, &[(t0.clone(), 1), (t1.clone(), 2)], 0);
    let _ = txn_commit(&mut c, P1, &[(t1.clone(), 3), (t2.clone(), 4)], 10);
    let unstable = Err(GroupError::UnstableOffsetCommit);
    // Asked partitions: each pending one answers UNSTABLE_OFFSET_COMMIT.
    let asked = Some(vec![t0.clone(), t1.clone(), t2.clone()]);
    assert_eq!(
        fetch(&c, asked.clone(), true),
        vec![
            (t0.clone(), Ok(Some(1))),
            (t1.clone(), unstable.clone()),
            (t2.clone(), unstable.clone()),
        ]
    );
    // All partitions: the committed ones, as Kafka lists them.
    assert_eq!(
        fetch(&c, None, true),
        vec![(t0.clone(), Ok(Some(1))), (t1.clone(), unstable)]
    );
    // Without require_stable: the committed (stable) offsets.
    assert_eq!(
        fetch(&c, asked.clone(), false),
        vec![
            (t0.clone(), Ok(Some(1))),
            (t1.clone(), Ok(Some(2))),
            (t2.clone(), Ok(None)),
        ]
    );
    // Another group is not affected.
    let other = c
        .offset_fetch(&OffsetFetchRequest {
            group_id: "other".into(),
            partitions: Some(vec![t1.clone()]),
            require_stable: true,
        })
        .expect("fetch");
    assert_eq!(other, vec![(t1.clone(), Ok(None))]);
    // Stable once the transaction ended.
    c.complete_txn(P1, Commit);
    assert_eq!(
        fetch(&c, asked, true),
        vec![(t0, Ok(Some(1))), (t1, Ok(Some(3))), (t2, Ok(Some(4))),]
    );
}

#[test]
fn the_newest_write_wins_when_transactions_settle() {
    let t0 = tp("t", 0);
    // (steps, committed offset of t0 at the end)
    enum Step {
        Plain(i64),
        Txn(i64, i64),
        End(i64, crate::txn::TransactionResult),
        Tombstone,
    }
    use Step::*;
    let cases: Vec<(Vec<Step>, Option<i64>)> = vec![
        // Kafka: a plain commit written after the pending one is kept.
        (vec![Txn(P1, 10), Plain(11), End(P1, Commit)], Some(11)),
        (vec![Plain(11), Txn(P1, 10), End(P1, Commit)], Some(10)),
        // A producer's second commit of a partition replaces its first.
        (vec![Txn(P1, 10), Txn(P1, 12), End(P1, Commit)], Some(12)),
        // Two producers: the later write wins whichever settles first.
        (
            vec![Txn(P1, 10), Txn(P2, 20), End(P2, Commit), End(P1, Commit)],
            Some(20),
        ),
        (
            vec![Txn(P2, 20), Txn(P1, 10), End(P2, Commit), End(P1, Commit)],
            Some(10),
        ),
        (
            vec![
                Txn(P1, 10),
                Txn(P2, 20),
                Plain(5),
                End(P1, Commit),
                End(P2, Commit),
            ],
            Some(5),
        ),
        (
            vec![
                Txn(P1, 10),
                Plain(5),
                Txn(P2, 20),
                End(P1, Commit),
                End(P2, Commit),
            ],
            Some(20),
        ),
        (
            vec![Txn(P1, 10), Txn(P2, 20), End(P2, Abort), End(P1, Commit)],
            Some(10),
        ),
        // A tombstone drops pending offsets too (Kafka's OffsetDelete).
        (
            vec![Plain(1), Txn(P1, 10), Tombstone, End(P1, Commit)],
            None,
        ),
    ];
    for (steps, expected) in cases {
        let mut live = coordinator();
        let mut log = Vec::new();
        for step in &steps {
            match *step {
                Plain(o) => log.extend(plain_commit(&mut live, &[(t0.clone(), o)], 0)),
                Txn(p, o) => log.extend(txn_commit(&mut live, p, &[(t0.clone(), o)], 0)),
                End(p, r) => log.push(end_txn(&mut live, p, r)),
                Tombstone => {
                    let out = live.offset_delete(G, vec![t0.clone()], 0);
                    assert_eq!(out.records.len(), 1);
                    log.extend(out.records);
                }
            }
        }
        let mut replayed = coordinator();
        for record in log {
            replayed.replay(record);
        }
        for c in [&live, &replayed] {
            assert_eq!(committed(c, &t0), expected);
            assert!(!c.group(G).expect("group").has_pending_txn_offsets(&t0));
        }
    }
}

#[test]
fn txn_offset_commit_fencing_table() {
    let mut c = coordinator();
    let member = stable_single(&mut c, 0);
    // A static member joins (the group rebalances; the generation stays).
    let _ = c.join_group(static_join_req(50, "", "i1"), 10);
    assert!(c.group(G).and_then(|g| g.static_member_id("i1")).is_some());
    let generation = c.group(G).expect("group").generation_id();
    let t0 = tp("t", 0);
    let unknown = |m: &str| GroupError::UnknownMemberId {
        member_id: m.into(),
    };
    let mut fenced = txn_req(P1, "i1-old", generation, &[(t0.clone(), 1)]);
    fenced.group_instance_id = Some("i1".into());
    let mut too_large = txn_req(P1, &member, generation, &[(t0.clone(), 1)]);
    too_large.partitions[0].metadata = "x".repeat(5000);
    let mut no_group = txn_req(P1, "m", 2, &[(t0.clone(), 1)]);
    no_group.group_id = "nope".into();
    let mut empty_id = txn_req(P1, "", -1, &[(t0.clone(), 1)]);
    empty_id.group_id = String::new();
    let cases: Vec<(TxnOffsetCommitRequest, Result<(), GroupError>)> = vec![
        (txn_req(P1, &member, generation, &[(t0.clone(), 1)]), Ok(())),
        (
            txn_req(P1, "nobody", generation, &[(t0.clone(), 1)]),
            Err(unknown("nobody")),
        ),
        (
            txn_req(P1, &member, generation + 7, &[(t0.clone(), 1)]),
            Err(GroupError::IllegalGeneration {
                generation_id: generation + 7,
                current: generation,
            }),
        ),
        (
            fenced,
            Err(GroupError::FencedInstanceId {
                group_instance_id: "i1".into(),
                member_id: "i1-old".into(),
            }),
        ),
        // Unlike OffsetCommit: no generation is accepted by a group with members.
        (txn_req(P1, "", -1, &[(t0.clone(), 1)]), Ok(())),
        (
            too_large,
            Err(GroupError::OffsetMetadataTooLarge {
                size: 5000,
                max: 4096,
            }),
        ),
        (
            no_group,
            Err(GroupError::IllegalGeneration {
                generation_id: 2,
                current: -1,
            }),
        ),
        (empty_id, Err(GroupError::InvalidGroupId)),
    ];
    for (req, expected) in cases {
        let out = c.txn_offset_commit(req.clone(), 100);
        assert_eq!(out.reply, vec![(t0.clone(), expected.clone())], "{req:?}");
        assert_eq!(out.records.len(), usize::from(expected.is_ok()), "{req:?}");
    }
    assert!(
        c.group("nope").is_none(),
        "a refused commit creates no group"
    );
}

#[test]
fn txn_offset_commit_is_accepted_while_completing_rebalance() {
    let mut c = coordinator();
    let (ids, _) = stable_group(&mut c, 2, 0);
    let _ = c.join_group(join_req(90, &ids[0]), 200);
    let out = c.join_group(join_req(91, &ids[1]), 200);
    let joined = join_answer(&out.delayed, 91).expect("join");
    assert_eq!(
        c.group(G).map(|g| g.state()),
        Some(GroupState::CompletingRebalance)
    );
    let req = txn_req(P1, &ids[1], joined.generation_id, &[(tp("t", 0), 4)]);
    let out = c.txn_offset_commit(req, 300);
    assert_eq!(out.reply, vec![(tp("t", 0), Ok(()))]);
    // OffsetCommit is refused there.
    let plain = commit_req(&ids[1], joined.generation_id, &[(tp("t", 0), 4)]);
    let out = c.offset_commit(plain, 300);
    assert_eq!(
        out.reply,
        vec![(tp("t", 0), Err(GroupError::RebalanceInProgress))]
    );
}

#[test]
fn offset_expiry_waits_for_pending_offsets() {
    let mut c = coordinator();
    let t0 = tp("t", 0);
    let retention = c.config().offsets_retention_ms;
    // A standalone group: offsets expire from their commit time.
    let _ = plain_commit(&mut c, &[(t0.clone(), 5)], 0);
    let _ = txn_commit(&mut c, P1, &[(t0.clone(), 10)], 1);
    // Phase: past retention, the offset stays while its partition is pending,
    // and no deadline is due (the timer does not spin).
    let out = c.on_tick(retention + 1);
    assert!(out.records.is_empty(), "{:?}", out.records);
    assert_eq!(committed(&c, &t0), Some(5));
    assert!(c.next_deadline().is_none_or(|d| d > retention + 1));
    // Phase: the abort settles it; the offset expires, then the group goes.
    c.complete_txn(P1, Abort);
    assert_eq!(c.next_deadline(), Some(retention));
    let out = c.on_tick(retention + 2);
    assert_eq!(
        out.records,
        vec![
            GroupRecord::OffsetTombstone {
                group_id: G.into(),
                tp: t0.clone()
            },
            GroupRecord::GroupTombstone { group_id: G.into() },
        ]
    );
}

#[test]
fn a_group_with_only_pending_offsets_is_kept_and_deleted_whole() {
    let mut c = coordinator();
    let interval = c.config().offsets_retention_check_interval_ms;
    let (t0, t1) = (tp("t", 0), tp("t", 1));
    let _ = plain_commit(&mut c, &[(t0.clone(), 5)], 0);
    let _ = txn_commit(&mut c, P1, &[(t0.clone(), 6), (t1.clone(), 7)], 0);
    // The cleanup keeps a group whose offsets are pending.
    let out = c.offset_delete(G, vec![t0.clone()], 10);
    assert_eq!(out.records.len(), 1);
    assert!(c.on_tick(10 + interval).records.is_empty());
    assert!(c.group(G).is_some());
    // DeleteGroups tombstones the pending-only partition too.
    let out = c.delete_groups(vec![G.into()]);
    assert_eq!(out.reply, vec![(G.to_string(), Ok(()))]);
    assert_eq!(
        out.records,
        vec![
            GroupRecord::OffsetTombstone {
                group_id: G.into(),
                tp: t1
            },
            GroupRecord::GroupTombstone { group_id: G.into() },
        ]
    );
    // The producer's marker arrives later: nothing is resurrected.
    c.complete_txn(P1, Commit);
    assert!(c.group(G).is_none());
}

/// A record as a batch of these flags and producer holds it.
fn batch_record(
    transactional: bool,
    control: bool,
    producer_id: i64,
    producer_epoch: i16,
    key: Bytes,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional,
        control,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: if producer_id < 0 { -1 } else { 0 },
        timestamp: 0,
        key: Some(key),
        value,
        headers: Default::default(),
    }
}

/// The batches a writer would append for `records`: one per record,
/// transactional for a `TxnOffset`, a control batch for a marker.
fn log_of(records: &[GroupRecord]) -> Bytes {
    let mut buf = BytesMut::new();
    for record in records {
        let (key, value) = codec::encode(record);
        let (transactional, control, producer_id, producer_epoch) = match record {
            GroupRecord::TxnOffset {
                producer_id,
                producer_epoch,
                ..
            } => (true, false, *producer_id, *producer_epoch),
            GroupRecord::EndTxnMarker {
                producer_id,
                producer_epoch,
                ..
            } => (true, true, *producer_id, *producer_epoch),
            _ => (false, false, -1, -1),
        };
        let batch = batch_record(
            transactional,
            control,
            producer_id,
            producer_epoch,
            key,
            value,
        );
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &[batch], &options).expect("encode");
    }
    buf.freeze()
}

/// What the loader does with a partition's batches.
fn load(log: Bytes) -> GroupCoordinator {
    let mut loaded = coordinator();
    let visited = crate::runtime::visit_batches(log, &mut |record| {
        if let Some(group_record) = codec::decode_batch_record(record).expect("decode") {
            loaded.replay(group_record);
        }
    });
    assert!(visited.is_some(), "batches decode");
    loaded.complete_load(0);
    loaded
}

#[test]
fn replay_of_transactional_batches_and_markers_equals_live_state() {
    // Phase 1: a coordinator with plain and transactional commits, settled
    // and open, keeps its records in log order.
    let mut c = coordinator();
    let mut log: Vec<GroupRecord> = Vec::new();
    let (t0, t1, t2) = (tp("t", 0), tp("t", 1), tp("t", 2));
    log.extend(plain_commit(&mut c, &[(t0.clone(), 1), (t1.clone(), 1)], 0));
    log.extend(txn_commit(
        &mut c,
        P1,
        &[(t0.clone(), 10), (t1.clone(), 11)],
        1,
    ));
    log.extend(txn_commit(
        &mut c,
        P2,
        &[(t1.clone(), 21), (t2.clone(), 22)],
        2,
    ));
    log.extend(plain_commit(&mut c, &[(t1.clone(), 3)], 3));
    log.push(end_txn(&mut c, P1, Commit));
    log.extend(txn_commit(&mut c, P1, &[(t2.clone(), 30)], 4));
    log.push(end_txn(&mut c, P2, Abort));
    let mut other = txn_req(P2, "", -1, &[(t0.clone(), 40)]);
    other.group_id = "other".into();
    log.extend(c.txn_offset_commit(other, 5).records);

    // Phase 2: the records as batches, read back the way the loader reads.
    let loaded = load(log_of(&log));

    // Phase 3: same answers, stable or not, same pending offsets.
    for group_id in [G, "other"] {
        for require_stable in [false, true] {
            for partitions in [None, Some(vec![t0.clone(), t1.clone(), t2.clone()])] {
                let req = OffsetFetchRequest {
                    group_id: group_id.into(),
                    partitions,
                    require_stable,
                };
                assert_eq!(loaded.offset_fetch(&req), c.offset_fetch(&req), "{req:?}");
            }
        }
        for producer in [P1, P2] {
            for t in [&t0, &t1, &t2] {
                let pending = |c: &GroupCoordinator| {
                    c.group(group_id)
                        .and_then(|g| g.pending_txn_offset(producer, t).cloned())
                };
                assert_eq!(pending(&loaded), pending(&c), "{group_id} {producer} {t}");
            }
        }
    }
    assert_eq!(
        fetch(&c, None, false),
        vec![(t0.clone(), Ok(Some(10))), (t1.clone(), Ok(Some(3)))]
    );
    assert_eq!(
        fetch(&c, Some(vec![t2.clone()]), true),
        vec![(t2, Err(GroupError::UnstableOffsetCommit))]
    );
    assert_eq!(loaded.list_groups(&[]), c.list_groups(&[]));
}

#[test]
fn control_records_other_than_markers_are_skipped() {
    // A LEADER_CHANGE (type 2) control record.
    let leader_change = Bytes::from_static(&[0, 0, 0, 2]);
    let mut record = batch_record(
        false,
        true,
        -1,
        -1,
        leader_change,
        Some(Bytes::from_static(&[0, 0])),
    );
    assert_eq!(codec::decode_batch_record(&record), Ok(None));
    // A COMMIT marker round-trips through encode.
    let (key, value) = codec::encode(&marker(P1, Commit));
    record.key = Some(key);
    record.value = value;
    record.producer_id = P1;
    record.producer_epoch = 3;
    assert_eq!(
        codec::decode_batch_record(&record),
        Ok(Some(marker(P1, Commit)))
    );
    // A truncated marker is an error, not a panic.
    record.value = Some(Bytes::from_static(&[0, 0, 1]));
    assert!(codec::decode_batch_record(&record).is_err());
}
