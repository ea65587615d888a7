//! The cleaner against real logs: what a pass keeps, the lock protocol,
//! crash safety of the swap, restarts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use super::pass::{cleaned_path, swap_path};
use super::{CleanerStats, SwapOutcome};
use crate::batch::{self, Origin};
use crate::segment::{self, LOG_SUFFIX};
use crate::testing::{TIMESTAMP, encode, marker_batch, record};
use crate::txn_index::TXN_INDEX_SUFFIX;
use crate::{CleanupPolicy, DirtyRatio, Log, LogConfig};

const MAP_MEMORY: usize = 1 << 20;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: DirtyRatio::new(0.0).expect("ratio"),
        ..LogConfig::default()
    }
}

/// A record with `key` and `value` (None: a tombstone) at `delta`.
fn kv(delta: i64, key: &str, value: Option<&str>) -> Record {
    Record {
        value: value.map(|v| Bytes::from(v.to_owned())),
        ..record(
            delta,
            TIMESTAMP + delta,
            Some(Bytes::from(key.to_owned())),
            Bytes::new(),
        )
    }
}

fn kv_batch(kvs: &[(&str, Option<&str>)], compression: Compression) -> Bytes {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| kv(i as i64, k, *v))
        .collect();
    encode(&records, compression)
}

/// A batch of producer `pid` (transactional or only idempotent).
fn producer_batch(pid: i64, first_seq: i32, txn: bool, kvs: &[(&str, Option<&str>)]) -> Bytes {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            producer_id: pid,
            producer_epoch: 0,
            sequence: first_seq + i as i32,
            transactional: txn,
            ..kv(i as i64, k, *v)
        })
        .collect();
    encode(&records, Compression::None)
}

/// (offset, key, value) of every data record in the log, from its start;
/// every served batch must validate as stored data.
type Contents = Vec<(i64, Option<String>, Option<String>)>;

fn contents(log: &Log) -> Contents {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let info = log
            .read(at, 1 << 20, log.log_end_offset(), true)
            .expect("read");
        if info.records.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < info.records.len() {
            let h = batch::validate(&info.records[pos..], pos, None, Origin::Replica)
                .expect("stored batch is valid");
            pos += h.size();
        }
        let mut bytes = info.records.clone();
        for set in RecordBatchDecoder::decode_all(&mut bytes).expect("decode") {
            for r in set.records.iter().filter(|r| !r.control) {
                let s =
                    |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                out.push((r.offset, s(&r.key), s(&r.value)));
            }
        }
        at = info.next_offset;
    }
    out
}

/// Each key's last (offset, value).
fn last_values(c: &Contents) -> BTreeMap<Option<String>, (i64, Option<String>)> {
    c.iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// Append `rounds` rounds of one batch per key group: keys `k0..k{keys}`,
/// values `v{round}`; returns what was appended.
fn fill(log: &mut Log, rounds: usize, keys: usize, per_batch: usize) -> Contents {
    let mut appended = Vec::new();
    for round in 0..rounds {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(per_batch) {
            let names: Vec<String> = chunk.iter().map(|k| format!("k{k}")).collect();
            let value = format!("v{round}");
            let kvs: Vec<(&str, Option<&str>)> = names
                .iter()
                .map(|n| (n.as_str(), Some(value.as_str())))
                .collect();
            let info = log
                .append_as_leader(&kv_batch(&kvs, Compression::None), 0, TIMESTAMP)
                .expect("append");
            for (i, n) in names.iter().enumerate() {
                appended.push((
                    info.first_offset + i as i64,
                    Some(n.clone()),
                    Some(value.clone()),
                ));
            }
        }
    }
    appended
}

fn clean(log: &mut Log, now_ms: i64) -> Option<CleanerStats> {
    let lso = log.log_end_offset();
    log.clean_now(lso, MAP_MEMORY, now_ms).expect("clean")
}

/// `after` is a subsequence of `before` (same offsets, same records) with
/// the same last value per key.
fn assert_compacted_from(before: &Contents, after: &Contents) {
    let by_offset: BTreeMap<i64, _> = before.iter().map(|r| (r.0, r)).collect();
    for r in after {
        assert_eq!(by_offset.get(&r.0), Some(&r), "record at {} changed", r.0);
    }
    assert!(
        after.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase"
    );
    assert_eq!(last_values(before), last_values(after));
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn a_pass_keeps_the_last_value_per_key_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(2048)).expect("open");
    let appended = fill(&mut log, 20, 50, 5);
    assert!(log.num_segments() > 5);
    let before = contents(&log);
    assert_eq!(before, appended);
    let size_before = log.size_bytes();
    let stats = clean(&mut log, now()).expect("a pass was due");
    let after = contents(&log);
    assert_compacted_from(&before, &after);
    let active_base = *log.segment_base_offsets().last().expect("segments");
    let below: Vec<_> = after.iter().filter(|r| r.0 < active_base).collect();
    let keys: std::collections::BTreeSet<_> = below.iter().map(|r| &r.1).collect();
    assert_eq!(
        keys.len(),
        below.len(),
        "one record per key below the active segment"
    );
    assert_eq!(log.cleaner_checkpoint(), Some(active_base));
    assert!(
        log.size_bytes() < size_before / 5,
        "{} -> {}",
        size_before,
        log.size_bytes()
    );
    assert!(stats.records_removed > 0 && stats.bytes_written < stats.bytes_read);
    // Nothing dirty is left: no second pass.
    assert!(clean(&mut log, now()).is_none());
    assert!(log.read(0, 100, log.log_end_offset(), true).is_ok());
}

#[test]
fn cleaned_segments_read_back_after_restart_and_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(2048)).expect("open");
    fill(&mut log, 10, 40, 4);
    clean(&mut log, now()).expect("pass");
    let after = contents(&log);
    let (leo, checkpoint) = (log.log_end_offset(), log.cleaner_checkpoint());
    log.close().expect("close");
    let log = Log::open(dir.path(), config(2048)).expect("reopen");
    assert_eq!(contents(&log), after);
    assert_eq!(
        (log.log_end_offset(), log.cleaner_checkpoint()),
        (leo, checkpoint)
    );
    // A crash (no close) makes open re-validate the tail; indexes rebuilt.
    drop(log);
    for entry in fs::read_dir(dir.path()).expect("ls") {
        let path = entry.expect("entry").path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            fs::remove_file(path).expect("rm index");
        }
    }
    let mut log = Log::open(dir.path(), config(2048)).expect("reopen after crash");
    assert_eq!(contents(&log), after);
    // A cleaned log still takes appends and cleans again.
    let more = fill(&mut log, 3, 40, 4);
    clean(&mut log, now()).expect("second pass");
    let mut all = after.clone();
    all.extend(more);
    assert_compacted_from(&all, &contents(&log));
}

#[test]
fn followers_and_recovery_accept_cleaned_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(2048)).expect("open");
    fill(&mut log, 10, 20, 5);
    clean(&mut log, now()).expect("pass");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut follower = Log::open(follower_dir.path(), config(2048)).expect("open follower");
    let mut at = 0;
    while at < log.log_end_offset() {
        let info = log
            .read(at, 4096, log.log_end_offset(), true)
            .expect("read");
        follower
            .append_as_follower(&info.records)
            .expect("follower append");
        at = info.next_offset;
    }
    assert_eq!(contents(&follower), contents(&log));
    assert_eq!(follower.log_end_offset(), log.log_end_offset());
}

/// `n` batches of 5 records all keyed "filler" (they compact to one).
fn filler(log: &mut Log, n: usize) {
    let kvs = [("filler", Some("f")); 5];
    for _ in 0..n {
        log.append_as_leader(&kv_batch(&kvs, Compression::None), 0, 0)
            .expect("append");
    }
}

#[test]
fn tombstones_go_delete_retention_ms_after_their_first_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        delete_retention_ms: 1000,
        ..config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    fill(&mut log, 3, 10, 5);
    let t = log
        .append_as_leader(
            &kv_batch(&[("k3", None), ("k4", None)], Compression::None),
            0,
            0,
        )
        .expect("tombstones");
    fill(&mut log, 1, 4, 2); // k0..k3 again: k3's tombstone is superseded
    filler(&mut log, 20);
    let k4 = (t.first_offset + 1, Some("k4".to_owned()), None);
    let t0 = 1_000_000_000_000;
    clean(&mut log, t0).expect("first pass");
    let c = contents(&log);
    assert!(c.contains(&k4), "kept on its first clean");
    assert!(
        !c.iter().any(|r| r.0 == t.first_offset),
        "superseded tombstone gone"
    );
    // More dirty data, but the tombstone was first cleaned < 1 s ago.
    filler(&mut log, 20);
    clean(&mut log, t0 + 999).expect("second pass");
    assert!(contents(&log).contains(&k4));
    filler(&mut log, 20);
    let stats = clean(&mut log, t0 + 1000).expect("third pass");
    assert_eq!(stats.tombstones_removed, 1);
    assert!(!contents(&log).iter().any(|r| r.1.as_deref() == Some("k4")));
    // The clean times survive a restart.
    log.close().expect("close");
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert!(log.cleaner_checkpoint.first_cleaned_at(t.first_offset) == Some(t0));
}

#[test]
fn aborted_transactions_go_committed_ones_compact_and_markers_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    fill(&mut log, 1, 4, 4); // k0..k3 = v0
    let aborted = log
        .append_as_leader(
            &producer_batch(9, 0, true, &[("k0", Some("aborted"))]),
            0,
            0,
        )
        .expect("txn data");
    log.append_as_leader(&marker_batch(9, 0, false, 1), 0, 0)
        .expect("abort");
    let committed = log
        .append_as_leader(
            &producer_batch(
                9,
                1,
                true,
                &[("k1", Some("committed")), ("k2", Some("old"))],
            ),
            0,
            0,
        )
        .expect("txn data");
    log.append_as_leader(&marker_batch(9, 0, true, 1), 0, 0)
        .expect("commit");
    fill(&mut log, 1, 4, 4); // k0..k3 = v0 again, after the transactions
    log.append_as_leader(&kv_batch(&[("k1", Some("last"))], Compression::None), 0, 0)
        .expect("append");
    // Producer 9's last batch (the committed one) is kept whole, so use
    // another producer's batch to check that committed data compacts.
    let other = log
        .append_as_leader(
            &producer_batch(10, 0, true, &[("t5", Some("a")), ("t5", Some("b"))]),
            0,
            0,
        )
        .expect("txn");
    log.append_as_leader(&producer_batch(10, 2, true, &[("t6", Some("c"))]), 0, 0)
        .expect("txn");
    log.append_as_leader(&marker_batch(10, 0, true, 1), 0, 0)
        .expect("commit");
    // Roll, and let the high watermark pass the markers.
    fill(&mut log, 6, 20, 10);
    log.on_high_watermark_updated(log.log_end_offset());
    let before = contents(&log);
    let stats = clean(&mut log, now()).expect("pass");
    assert!(stats.aborted_batches_removed >= 1);
    let after = contents(&log);
    assert!(
        !after.iter().any(|r| r.0 == aborted.first_offset),
        "aborted data removed"
    );
    assert!(
        after.iter().any(|r| r.0 == committed.first_offset),
        "producer 9's last batch kept whole"
    );
    assert!(after.iter().any(|r| r.0 == committed.first_offset + 1));
    assert!(
        !after.iter().any(|r| r.0 == other.first_offset),
        "committed record compacted"
    );
    assert!(after.iter().any(|r| r.0 == other.first_offset + 1));
    // The markers are still there (control batches), and the aborted index too.
    let mut markers = 0;
    let mut at = 0;
    while at < log.log_end_offset() {
        let info = log
            .read(at, 1 << 20, log.log_end_offset(), true)
            .expect("read");
        let mut pos = 0;
        while let Some(h) = crate::BatchHeader::parse(&info.records[pos..]) {
            markers += usize::from(h.is_control());
            pos += h.size();
        }
        at = info.next_offset;
    }
    assert_eq!(markers, 3);
    assert_eq!(log.aborted_transactions().len(), 1);
    // Every non-aborted record's key keeps its last value.
    let without_aborted: Contents = before
        .into_iter()
        .filter(|r| r.0 != aborted.first_offset)
        .collect();
    assert_compacted_from(&without_aborted, &after);
}

#[test]
fn a_producers_last_batch_is_kept_and_its_state_rebuilds_without_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    let last = log
        .append_as_leader(
            &producer_batch(7, 0, false, &[("x", Some("1")), ("y", Some("1"))]),
            0,
            0,
        )
        .expect("idempotent batch");
    fill(&mut log, 10, 10, 5);
    log.append_as_leader(
        &kv_batch(&[("x", Some("2")), ("y", Some("2"))], Compression::None),
        0,
        0,
    )
    .expect("append");
    fill(&mut log, 2, 10, 5);
    clean(&mut log, now()).expect("pass");
    let c = contents(&log);
    assert!(c.contains(&(last.first_offset, Some("x".into()), Some("1".into()))));
    assert!(c.contains(&(last.first_offset + 1, Some("y".into()), Some("1".into()))));
    let seq = log.active_producers()[0].last_sequence;
    log.close().expect("close");
    for entry in fs::read_dir(dir.path()).expect("ls") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            fs::remove_file(path).expect("rm snapshot");
        }
    }
    // Without snapshots, a rebuild from the log start (what a truncation
    // below every snapshot does) finds the producer's last batch.
    let mut log = Log::open(dir.path(), config(1024)).expect("reopen");
    assert_eq!(contents(&log), c);
    let leo = log.log_end_offset();
    log.truncate_to(leo - 1)
        .expect("truncate below every snapshot");
    let p = log.active_producers();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].producer_id, p[0].last_sequence), (7, seq));
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), config(1024)).expect("open");
        let first = log
            .append_as_leader(
                &kv_batch(
                    &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))],
                    codec,
                ),
                0,
                0,
            )
            .expect("append");
        log.append_as_leader(&kv_batch(&[("b", Some("2"))], codec), 0, 0)
            .expect("append");
        fill(&mut log, 5, 10, 10);
        clean(&mut log, now()).expect("pass");
        let info = log
            .read(0, 1 << 20, log.log_end_offset(), true)
            .expect("read");
        let h = batch::validate(&info.records, 0, None, Origin::Replica).expect("valid");
        assert_eq!(h.base_offset, first.first_offset);
        assert_eq!(h.last_offset_delta, 2, "{codec:?}");
        assert_eq!(h.records_count, 2);
        assert_eq!(h.compression(), codec as i16, "{codec:?}");
        let c = contents(&log);
        assert_eq!(c[0], (0, Some("a".into()), Some("1".into())));
        assert_eq!(c[1], (2, Some("c".into()), Some("1".into())));
        assert_eq!(c[2], (3, Some("b".into()), Some("2".into())));
    }
}

#[test]
fn the_last_stable_offset_bounds_the_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    fill(&mut log, 3, 10, 5);
    let open = log
        .append_as_leader(&producer_batch(3, 0, true, &[("k0", Some("txn"))]), 0, 0)
        .expect("open txn");
    fill(&mut log, 5, 10, 5);
    let lso = log.last_stable_offset(log.log_end_offset());
    assert_eq!(lso, open.first_offset);
    log.clean_now(lso, MAP_MEMORY, now())
        .expect("clean")
        .expect("pass");
    assert!(
        log.cleaner_checkpoint()
            .is_some_and(|c| c <= open.first_offset)
    );
    let c = contents(&log);
    // Everything from the open transaction on is untouched.
    assert_eq!(
        c.iter().filter(|r| r.0 >= open.first_offset).count() as i64,
        log.log_end_offset() - open.first_offset
    );
}

#[test]
fn a_full_map_cleans_up_to_the_last_offset_that_fit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    let appended = fill(&mut log, 4, 30, 5);
    fill(&mut log, 1, 1, 1);
    let tiny = super::offset_map::ENTRY_BYTES * 20; // 18 keys
    let lso = log.log_end_offset();
    let stats = log
        .clean_now(lso, tiny, now())
        .expect("clean")
        .expect("pass");
    assert_eq!(stats.map_keys, 18);
    let checkpoint = log.cleaner_checkpoint().expect("checkpoint");
    assert_eq!(
        checkpoint, 18,
        "stopped at the first record that did not fit"
    );
    for _ in 0..20 {
        if log.clean_now(lso, tiny, now()).expect("clean").is_none() {
            break;
        }
    }
    assert!(log.cleaner_checkpoint() > Some(checkpoint));
    assert_compacted_from(&contents_with(&appended, &log), &contents(&log));
}

/// `appended` plus what the log has past it.
fn contents_with(appended: &Contents, log: &Log) -> Contents {
    let last = appended.last().map_or(-1, |r| r.0);
    let mut all = appended.clone();
    all.extend(contents(log).into_iter().filter(|r| r.0 > last));
    all
}

#[test]
fn appends_during_a_pass_survive_its_swap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    let mut all = fill(&mut log, 5, 20, 5);
    // Step 1 under the lock; then the lock is released (here: the plan owns
    // its own handles and borrows nothing), appends go on and roll.
    let plan = log
        .plan_cleaning(log.log_end_offset(), now())
        .expect("plan")
        .expect("due");
    all.extend(fill(&mut log, 3, 20, 5));
    let cleaned = plan.clean(MAP_MEMORY, 4096, now()).expect("pass");
    all.extend(fill(&mut log, 1, 20, 5));
    assert!(matches!(
        log.swap_cleaned(cleaned).expect("swap"),
        SwapOutcome::Swapped { .. }
    ));
    assert_compacted_from(&all, &contents(&log));
    // And the next pass takes the rest.
    clean(&mut log, now()).expect("second pass");
    assert_compacted_from(&all, &contents(&log));
}

#[test]
fn a_truncation_or_deletion_during_a_pass_discards_it() {
    for case in ["truncate", "delete records"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), config(1024)).expect("open");
        fill(&mut log, 5, 20, 5);
        let plan = log
            .plan_cleaning(log.log_end_offset(), now())
            .expect("plan")
            .expect("due");
        let cleaned = plan.clean(MAP_MEMORY, 4096, now()).expect("pass");
        let bases = log.segment_base_offsets();
        match case {
            "truncate" => log.truncate_to(bases[2] + 1).expect("truncate"),
            _ => log
                .advance_log_start_offset(bases[1])
                .expect("delete records"),
        }
        let before = contents(&log);
        assert_eq!(
            log.swap_cleaned(cleaned).expect("swap"),
            SwapOutcome::Discarded,
            "{case}"
        );
        assert_eq!(contents(&log), before);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{case}: {leftovers:?}");
    }
}

fn segment_file(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(segment::file_name(base, LOG_SUFFIX))
}

#[test]
fn an_uncommitted_pass_is_rolled_back_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1024)).expect("open");
    fill(&mut log, 5, 20, 5);
    let before = contents(&log);
    let plan = log
        .plan_cleaning(log.log_end_offset(), now())
        .expect("plan")
        .expect("due");
    let cleaned = plan.clean(MAP_MEMORY, 4096, now()).expect("pass");
    let base = cleaned.groups[0].base_offset();
    // Crash after the txn index's rename, before the log's (the commit point).
    fs::rename(
        cleaned_path(dir.path(), base, TXN_INDEX_SUFFIX),
        swap_path(dir.path(), base, TXN_INDEX_SUFFIX),
    )
    .expect("rename");
    drop(log);
    let log = Log::open(dir.path(), config(1024)).expect("reopen");
    assert_eq!(contents(&log), before);
    let names: Vec<String> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
        "{names:?}"
    );
}

#[test]
fn a_committed_swap_is_completed_on_open() {
    // Crash points after the commit: nothing deleted yet; some replaced
    // segments deleted; the txn index renamed too.
    for crash_after in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), config(1024)).expect("open");
        fill(&mut log, 8, 20, 5);
        // Cleaned groups up to 4 KiB: several small segments merge.
        log.set_config(config(4096));
        let before = contents(&log);
        let plan = log
            .plan_cleaning(log.log_end_offset(), now())
            .expect("plan")
            .expect("due");
        let cleaned = plan.clean(MAP_MEMORY, 4096, now()).expect("pass");
        let group = &cleaned.groups[0];
        assert!(group.sources.len() > 1, "a group merges segments");
        let base = group.base_offset();
        let sources: Vec<i64> = group.sources.iter().map(|s| s.0).collect();
        for suffix in [TXN_INDEX_SUFFIX, LOG_SUFFIX] {
            fs::rename(
                cleaned_path(dir.path(), base, suffix),
                swap_path(dir.path(), base, suffix),
            )
            .expect("commit");
        }
        if crash_after >= 1 {
            for &s in &sources[1..] {
                fs::remove_file(segment_file(dir.path(), s)).expect("rm source");
            }
        }
        if crash_after >= 2 {
            fs::remove_file(segment_file(dir.path(), base)).expect("rm source");
            fs::rename(
                swap_path(dir.path(), base, TXN_INDEX_SUFFIX),
                dir.path().join(segment::file_name(base, TXN_INDEX_SUFFIX)),
            )
            .expect("rename");
        }
        drop(log);
        let log = Log::open(dir.path(), config(4096)).expect("reopen");
        let after = contents(&log);
        assert_compacted_from(&before, &after);
        assert!(
            after.len() < before.len(),
            "crash point {crash_after}: the swap took effect"
        );
        assert!(!segment_file(dir.path(), sources[1]).exists());
        assert!(!swap_path(dir.path(), base, LOG_SUFFIX).exists());
    }
}

#[test]
fn compact_delete_logs_still_apply_retention_after_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::CompactDelete,
        retention_ms: 1000,
        ..config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    fill(&mut log, 10, 20, 5);
    filler(&mut log, 10);
    clean(&mut log, now()).expect("pass");
    let sealed = log.num_segments() - 1;
    assert!(sealed > 0);
    // Every batch carries TIMESTAMP (2023): all expired, emptied segments too.
    let hw = log.log_end_offset();
    let deleted = log.apply_retention(now(), hw).expect("retention");
    assert!(deleted >= sealed, "{deleted} of {sealed}");
    assert_eq!(log.num_segments(), 1);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
}
