//! Producer state kept with the log: updated by leader and follower appends,
//! snapshotted at rolls and close, loaded from the latest snapshot plus the
//! tail, reloaded on truncation, expired. The reference in every comparison
//! is a rebuild from the whole log.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::control::parse_end_txn_marker;
use crate::producer_state::snapshot;
use crate::testing::{TIMESTAMP, idempotent_batch, marker_batch, transactional_batch};
use crate::{
    AbortedTxn, DuplicateBatch, ProducerStateEntry, ProducerStateManager, RETAINED_SNAPSHOTS,
    SequenceError,
};

/// Small segments, producers never expire (test timestamps are old).
fn config() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..small_config(400)
    }
}

/// Producer `pid`'s next batch of `count` records, tracking its sequence.
fn send(log: &mut Log, seqs: &mut HashMap<i64, i32>, pid: i64, count: i32) -> (i64, i64) {
    let seq = seqs.entry(pid).or_insert(0);
    let b = idempotent_batch(pid, 0, *seq, count, TIMESTAMP);
    *seq += count;
    let info = log.append_as_leader(&b, 0, 0).expect("append");
    (info.first_offset, info.last_offset)
}

/// A log of `batches` one-record batches from producers 1 to 4 in turn,
/// over several small segments.
fn written(batches: i64) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let mut seqs = HashMap::new();
    for i in 0..batches {
        send(&mut log, &mut seqs, 1 + i % 4, 1);
    }
    (dir, log)
}

/// What a replay of every batch in the log gives: the producers, the open
/// transactions (first offset -> producer) and the aborted transactions.
struct Rebuilt {
    producers: HashMap<i64, ProducerStateEntry>,
    ongoing: std::collections::BTreeMap<i64, i64>,
    aborted: Vec<AbortedTxn>,
}

fn rebuild(log: &Log) -> Rebuilt {
    let mut state = ProducerStateManager::empty(log.dir());
    let mut aborted = Vec::new();
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    while offset < end {
        let read = log.read(offset, 1 << 20, end, true).expect("read");
        if read.records.is_empty() {
            break;
        }
        let mut pos = 0;
        for h in headers(&read.records) {
            let marker = parse_end_txn_marker(&read.records[pos..pos + h.size()]);
            pos += h.size();
            if let Some(txn) = state.update(&h, marker.as_ref())
                && txn.aborted
            {
                aborted.push(state.aborted_txn(&txn));
            }
            offset = h.next_offset();
        }
    }
    Rebuilt {
        producers: state.producers().clone(),
        ongoing: state.ongoing_transactions().clone(),
        aborted,
    }
}

/// The producers a replay of every batch in the log gives.
fn rebuilt(log: &Log) -> HashMap<i64, ProducerStateEntry> {
    rebuild(log).producers
}

#[test]
fn follower_appends_update_producer_state() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = Log::open(leader_dir.path(), config()).expect("open");
    let mut follower = Log::open(follower_dir.path(), config()).expect("open");
    let mut seqs = HashMap::new();
    let mut last = HashMap::new();
    for i in 0..20 {
        let pid = 1 + i % 3;
        last.insert(pid, send(&mut leader, &mut seqs, pid, 2));
    }
    // The follower copies the leader's batches as a fetcher would.
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let read = leader.read(offset, 1000, i64::MAX, true).expect("read");
        follower
            .append_as_follower(&read.records)
            .expect("follower append");
        offset = follower.log_end_offset();
    }
    assert_eq!(
        follower.producer_state().producers(),
        leader.producer_state().producers()
    );
    assert_eq!(follower.producer_state().map_end_offset(), offset);
    // The follower, were it leader now, answers a retry of the last batch.
    let retry = idempotent_batch(3, 0, seqs[&3] - 2, 2, TIMESTAMP);
    let h = BatchHeader::parse(&retry).expect("header");
    assert_eq!(
        follower.check_producer_batches(&[h]),
        Ok(Some(DuplicateBatch {
            first_offset: last[&3].0,
            last_offset: last[&3].1
        }))
    );
}

#[test]
fn clean_close_snapshots_and_open_replays_nothing() {
    let (dir, log) = written(30);
    assert!(log.num_segments() > 3, "rolled");
    let before = log.producer_state().producers().clone();
    let leo = log.log_end_offset();
    // A snapshot at every roll, at the new segment's base.
    let bases = log.segment_base_offsets();
    assert_eq!(log.producer_state().snapshot_offsets(), bases[1..].to_vec());
    log.close().expect("close");

    let log = Log::open(dir.path(), config()).expect("reopen");
    let load = log.producer_state().last_load();
    assert_eq!(load.snapshot_offset, Some(leo));
    assert_eq!(load.batches_replayed, 0);
    assert_eq!(log.producer_state().producers(), &before);
    assert_eq!(log.producer_state().producers(), &rebuilt(&log));
}

#[test]
fn after_a_crash_only_the_tail_after_the_last_roll_is_replayed() {
    let (dir, log) = written(30);
    let before = log.producer_state().producers().clone();
    let active_base = *log.segment_base_offsets().last().expect("segment");
    let tail = log.log_end_offset() - active_base;
    drop(log); // no close: as after SIGKILL

    let log = Log::open(dir.path(), config()).expect("reopen");
    let load = log.producer_state().last_load();
    assert_eq!(load.snapshot_offset, Some(active_base));
    assert_eq!(load.batches_replayed, tail as u64, "one record per batch");
    assert_eq!(log.producer_state().producers(), &before);
}

#[test]
fn a_corrupt_snapshot_is_skipped_for_an_older_one() {
    let (dir, log) = written(30);
    let before = log.producer_state().producers().clone();
    let leo = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().expect("segment");
    log.close().expect("close");
    let path = snapshot::path(dir.path(), leo);
    let mut bytes = fs::read(&path).expect("read snapshot");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).expect("corrupt snapshot");

    let log = Log::open(dir.path(), config()).expect("reopen");
    let load = log.producer_state().last_load();
    assert_eq!(load.corrupt_snapshots, 1);
    assert_eq!(load.snapshot_offset, Some(active_base));
    assert!(load.batches_replayed > 0);
    assert!(!path.exists(), "the corrupt snapshot is deleted");
    assert_eq!(log.producer_state().producers(), &before);
}

#[test]
fn without_snapshots_the_state_is_rebuilt_from_the_last_two_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let mut seqs = HashMap::new();
    // Producer 1 writes only in the first segment; 2 and 3 write throughout.
    send(&mut log, &mut seqs, 1, 1);
    for i in 0..30 {
        send(&mut log, &mut seqs, 2 + i % 2, 1);
    }
    let bases = log.segment_base_offsets();
    drop(log);
    // A data directory from before snapshots.
    for offset in snapshot::list(dir.path()).expect("list") {
        snapshot::delete(dir.path(), offset).expect("delete");
    }
    let log = Log::open(dir.path(), config()).expect("reopen");
    let load = log.producer_state().last_load();
    assert_eq!(load.snapshot_offset, None);
    assert_eq!(load.replayed_from, bases[bases.len() - 2]);
    let producers = log.producer_state().producers();
    assert!(
        !producers.contains_key(&1),
        "older than the last two segments"
    );
    let full = rebuilt(&log);
    for pid in [2, 3] {
        assert_eq!(producers[&pid].batches.back(), full[&pid].batches.back());
    }
}

#[test]
fn truncation_drops_later_snapshots_and_equals_a_rebuild() {
    let (dir, mut log) = written(30);
    let bases = log.segment_base_offsets();
    let to = bases[2] + 1;
    log.truncate_to(to).expect("truncate");
    assert_eq!(
        log.producer_state().snapshot_offsets(),
        bases[1..=2].to_vec()
    );
    assert_eq!(
        log.producer_state().last_load().snapshot_offset,
        Some(bases[2])
    );
    assert_eq!(log.producer_state().producers(), &rebuilt(&log));
    assert_eq!(log.producer_state().map_end_offset(), to);
    // Restarting empty elsewhere forgets everything.
    log.truncate_fully_and_start_at(1000).expect("restart");
    assert!(log.producer_state().producers().is_empty());
    assert!(snapshot::list(dir.path()).expect("list").is_empty());
}

#[test]
fn retention_deletes_snapshots_with_their_segments_and_few_are_kept() {
    let (dir, mut log) = written(120);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > RETAINED_SNAPSHOTS + 1);
    let kept = bases[bases.len() - RETAINED_SNAPSHOTS..].to_vec();
    assert_eq!(log.producer_state().snapshot_offsets(), kept);
    assert_eq!(snapshot::list(dir.path()).expect("list"), kept);
    // DeleteRecords past the oldest kept snapshot deletes it with its segment.
    log.advance_log_start_offset(kept[1]).expect("advance");
    assert_eq!(log.producer_state().snapshot_offsets(), kept[1..].to_vec());
    assert_eq!(
        snapshot::list(dir.path()).expect("list"),
        kept[1..].to_vec()
    );
}

#[test]
fn expired_producers_are_removed_and_not_snapshotted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        producer_id_expiration_ms: 1_000,
        ..small_config(1 << 20)
    };
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let old = idempotent_batch(1, 0, 0, 1, 1_000);
    let recent = idempotent_batch(2, 0, 0, 1, 5_000);
    log.append_as_leader(&old, 0, 0).expect("append");
    log.append_as_leader(&recent, 0, 0).expect("append");
    assert_eq!(log.remove_expired_producers(5_500), 1);
    assert_eq!(
        log.producer_state()
            .producers()
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![2]
    );
    // Wall-clock now is far past both: the close snapshot leaves both out,
    // and the reopened state is empty (nothing after the snapshot to replay).
    log.append_as_leader(&idempotent_batch(1, 0, 1, 1, 1_000), 0, 0)
        .expect("append");
    log.close().expect("close");
    let log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(log.producer_state().last_load().batches_replayed, 0);
    assert!(log.producer_state().producers().is_empty());
}

#[test]
fn a_snapshot_that_cannot_be_written_fails_the_roll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let mut seqs = HashMap::new();
    send(&mut log, &mut seqs, 1, 1);
    // The next roll's snapshot temp file cannot be created: a directory is there.
    for offset in 0..100 {
        fs::create_dir(dir.path().join(format!("{offset:020}.snapshot.tmp"))).expect("mkdir");
    }
    let mut result = Ok(());
    while log.num_segments() == 1 && result.is_ok() {
        result = log
            .append_as_leader(&idempotent_batch(1, 0, 1, 1, TIMESTAMP), 0, 0)
            .map(|_| ());
    }
    assert!(matches!(result, Err(LogError::Io { .. })), "{result:?}");
}

/// One step of the seeded model test.
#[derive(Clone, Debug)]
enum Op {
    Send {
        pid: i64,
        count: i32,
    },
    /// Cut at a fraction of the log.
    Truncate(f64),
    Reopen {
        clean: bool,
    },
    /// A retry of a producer's last batch must be a duplicate.
    Retry {
        pid: i64,
    },
    /// A transactional batch (opens the producer's transaction).
    TxnSend {
        pid: i64,
        count: i32,
    },
    /// A marker ending the producer's transaction, checked as the leader
    /// checks it (refused when fenced).
    Marker {
        pid: i64,
        commit: bool,
        coordinator_epoch: i32,
    },
}

/// The model's view of a producer: its next sequence and its last batch in
/// the log as (first sequence, records, first offset).
type Sent = (i32, Option<(i32, i32, i64)>);

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1i64..6, 1i32..4).prop_map(|(pid, count)| Op::Send { pid, count }),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        2 => (1i64..6).prop_map(|pid| Op::Retry { pid }),
        4 => (1i64..6, 1i32..4).prop_map(|(pid, count)| Op::TxnSend { pid, count }),
        3 => (1i64..6, any::<bool>(), 0i32..3).prop_map(|(pid, commit, coordinator_epoch)| {
            Op::Marker { pid, commit, coordinator_epoch }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random appends (plain and transactional), markers, truncations,
    /// crashes and clean reopens: the state, the open transactions and the
    /// aborted-transaction index are always what a replay of the whole log
    /// gives, and the leader's checks refuse exactly what Kafka's do.
    #[test]
    fn prop_state_always_equals_a_rebuild_from_the_whole_log(
        ops in prop::collection::vec(arb_op(), 1..80),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Some(Log::open(dir.path(), config()).expect("open"));
        let mut producers: HashMap<i64, Sent> = HashMap::new();
        for op in ops {
            let l = log.as_mut().expect("open log");
            match op {
                Op::Send { pid, count } | Op::TxnSend { pid, count } => {
                    let transactional = matches!(op, Op::TxnSend { .. });
                    let (seq, last) = producers.entry(pid).or_insert((0, None));
                    let b = if transactional {
                        transactional_batch(pid, 0, *seq, count, TIMESTAMP)
                    } else {
                        idempotent_batch(pid, 0, *seq, count, TIMESTAMP)
                    };
                    let h = BatchHeader::parse(&b).expect("header");
                    let open = l.producer_state().producers().get(&pid)
                        .and_then(|e| e.current_txn_first_offset);
                    match l.check_producer_batches(&[h]) {
                        Err(SequenceError::InvalidTxnState { producer_id, .. }) => {
                            prop_assert!(!transactional && open.is_some() && producer_id == pid);
                            continue;
                        }
                        other => {
                            prop_assert_eq!(other, Ok(None));
                            prop_assert!(transactional || open.is_none());
                        }
                    }
                    let info = l.append_as_leader(&b, 0, 0).expect("append");
                    *last = Some((*seq, count, info.first_offset));
                    *seq += count;
                    let now_open = l.producer_state().producers()[&pid].current_txn_first_offset;
                    prop_assert_eq!(now_open, if transactional { open.or(Some(info.first_offset)) } else { None });
                }
                Op::Marker { pid, commit, coordinator_epoch } => {
                    let m = marker_batch(pid, 0, commit, coordinator_epoch);
                    let marker = parse_end_txn_marker(&m).expect("marker");
                    let last_seen = l.producer_state().producers().get(&pid)
                        .and_then(|e| e.coordinator_epoch);
                    match l.check_txn_marker(pid, 0, &marker) {
                        Err(SequenceError::TransactionCoordinatorFenced { current, got }) => {
                            prop_assert_eq!((Some(current), got), (last_seen, coordinator_epoch));
                            prop_assert!(current > got);
                            continue;
                        }
                        other => prop_assert_eq!(other, Ok(())),
                    }
                    let aborted_before = l.aborted_transactions().len();
                    let open = l.producer_state().producers().get(&pid)
                        .and_then(|e| e.current_txn_first_offset);
                    let info = l.append_as_leader(&m, 0, 0).expect("append marker");
                    let e = &l.producer_state().producers()[&pid];
                    prop_assert_eq!(e.current_txn_first_offset, None);
                    prop_assert_eq!(e.coordinator_epoch, Some(coordinator_epoch));
                    let aborted = l.aborted_transactions();
                    if let (Some(first), false) = (open, commit) {
                        prop_assert_eq!(aborted.len(), aborted_before + 1);
                        let last = aborted[aborted.len() - 1];
                        prop_assert_eq!((last.producer_id, last.first_offset, last.last_offset),
                            (pid, first, info.first_offset));
                    } else {
                        prop_assert_eq!(aborted.len(), aborted_before);
                    }
                }
                Op::Truncate(at) => {
                    // At a batch boundary, as replica truncation always is.
                    let mut to = (at * l.log_end_offset() as f64) as i64;
                    if let Some(h) = headers(&l.read(to, 1, i64::MAX, true).expect("read").records).first() {
                        to = h.base_offset;
                    }
                    l.truncate_to(to).expect("truncate");
                    prop_assert!(l.producer_state().snapshot_offsets().iter().all(|&s| s <= to));
                    // The model follows the log: sequences restart after what is left.
                    producers.clear();
                    for (pid, e) in rebuilt(l) {
                        let b = e.batches.back().copied();
                        producers.insert(pid, (b.map_or(0, |b| b.last_seq + 1),
                            b.map(|b| (b.first_seq, b.offset_delta + 1, b.first_offset))));
                    }
                }
                Op::Reopen { clean } => {
                    let l = log.take().expect("open log");
                    if clean { l.close().expect("close") } else { drop(l) }
                    log = Some(Log::open(dir.path(), config()).expect("reopen"));
                }
                Op::Retry { pid } => {
                    if let Some(&(_, Some((seq, count, first)))) = producers.get(&pid) {
                        let b = idempotent_batch(pid, 0, seq, count, TIMESTAMP);
                        let h = BatchHeader::parse(&b).expect("header");
                        prop_assert_eq!(
                            l.check_producer_batches(&[h]),
                            Ok(Some(DuplicateBatch {
                                first_offset: first,
                                last_offset: first + i64::from(count) - 1,
                            }))
                        );
                    }
                }
            }
            let l = log.as_ref().expect("open log");
            let r = rebuild(l);
            prop_assert_eq!(l.producer_state().producers(), &r.producers);
            prop_assert_eq!(l.producer_state().ongoing_transactions(), &r.ongoing);
            prop_assert_eq!(l.aborted_transactions(), r.aborted);
            // Markers are all below the high watermark here (hw = log end).
            let mut l = log.take().expect("open log");
            let leo = l.log_end_offset();
            l.on_high_watermark_updated(leo);
            prop_assert_eq!(l.producer_state().first_unstable_offset(), r.ongoing.keys().next().copied());
            prop_assert_eq!(l.last_stable_offset(leo), r.ongoing.keys().next().copied().unwrap_or(leo));
            log = Some(l);
        }
    }
}
