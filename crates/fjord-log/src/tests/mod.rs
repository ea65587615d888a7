//! Tests of `Log` as a whole: append/read, segments, retention, timestamps,
//! truncation, the epoch cache; recovery and property tests in submodules.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::Compression;

use crate::batch::test_util::batch;
use crate::batch::{self, BatchHeader, Origin};
use crate::{Log, LogConfig, LogError, TimestampType};

/// A batch as the log should have stored it.
#[derive(Clone, Debug)]
struct Stored {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
}

fn stored(original: &[u8], base: i64, epoch: i32) -> Vec<u8> {
    let mut b = original.to_vec();
    b[..8].copy_from_slice(&base.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    b
}

fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// Append `n` batches of `count` records each (timestamps from `ts0`, +10 per batch).
fn fill(log: &mut Log, model: &mut Vec<Stored>, n: usize, count: usize, ts0: i64, epoch: i32) {
    for i in 0..n {
        let b = batch(count, ts0 + 10 * i as i64, 20, Compression::None);
        let info = log.append_as_leader(&b, epoch, 0).expect("append");
        assert_eq!(info.last_offset - info.first_offset + 1, count as i64);
        model.push(Stored {
            base: info.first_offset,
            last: info.last_offset,
            bytes: stored(&b, info.first_offset, epoch),
        });
    }
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = batch::validate(&bytes[pos..], pos, None, Origin::Replica)
            .expect("served batch is valid");
        pos += h.size();
        out.push(h);
    }
    out
}

/// Check a read against the model: a run of whole stored batches starting at
/// the one containing `start`, within the limits, maximal within one segment.
fn check_read(
    log: &Log,
    model: &[Stored],
    start: i64,
    max_bytes: usize,
    max_offset: i64,
    min_one: bool,
) {
    let got = log
        .read(start, max_bytes, max_offset, min_one)
        .expect("read");
    let Some(idx) = model.iter().position(|s| s.last >= start) else {
        assert!(got.records.is_empty());
        return;
    };
    let mut expected = Vec::new();
    let mut k = 0;
    let seg_bases = log.segment_base_offsets();
    let segment_of = |o: i64| seg_bases.partition_point(|&b| b <= o);
    for (j, s) in model[idx..].iter().enumerate() {
        let within = expected.len() + s.bytes.len() <= max_bytes || (j == 0 && min_one);
        if s.last >= max_offset || !within || segment_of(s.base) != segment_of(model[idx].base) {
            break;
        }
        expected.extend_from_slice(&s.bytes);
        k += 1;
    }
    assert_eq!(
        headers(&got.records).len(),
        k,
        "start {start} max_bytes {max_bytes} max_offset {max_offset}"
    );
    assert_eq!(&got.records[..], &expected[..]);
    assert_eq!(got.log_end_offset, log.log_end_offset());
    assert_eq!(got.log_start_offset, log.log_start_offset());
}

fn check_all_offsets(log: &Log, model: &[Stored]) {
    for s in model.iter().filter(|s| s.last >= log.log_start_offset()) {
        for o in s.base.max(log.log_start_offset())..=s.last {
            let got = log.read(o, 1, i64::MAX, true).expect("read");
            assert_eq!(&got.records[..], &s.bytes[..], "offset {o}");
        }
    }
}

fn active_segment_path(log: &Log) -> PathBuf {
    let base = *log.segment_base_offsets().last().expect("segment");
    log.dir().join(format!("{base:020}.log"))
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).expect("open");
    f.write_all(bytes).expect("write");
}

mod file_cache;
mod flush_plan;
mod full_disk;
mod fuzz_batches;
mod producer_state;
mod props;
mod read_plan;
mod recovery;
mod transactions;

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

#[test]
fn append_and_read_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(
        log.read(0, 1000, i64::MAX, true)
            .expect("read")
            .records
            .is_empty()
    );
    let mut model = Vec::new();
    fill(&mut log, &mut model, 10, 3, 1000, 7);
    assert_eq!(log.log_end_offset(), 30);
    check_all_offsets(&log, &model);
    // Several batches in one request get consecutive offsets.
    let mut two = batch(2, 5000, 5, Compression::None).to_vec();
    two.extend_from_slice(&batch(4, 6000, 5, Compression::Gzip));
    let info = log
        .append_as_leader(&Bytes::from(two), 7, 0)
        .expect("append");
    assert_eq!(
        (
            info.first_offset,
            info.last_offset,
            info.num_batches,
            info.num_records
        ),
        (30, 35, 2, 6)
    );
    assert_eq!(
        (
            info.max_timestamp,
            info.offset_of_max_timestamp,
            info.log_append_time
        ),
        (6003, 35, -1)
    );
    // Limits.
    let all = log.read(0, usize::MAX, i64::MAX, false).expect("read");
    assert_eq!(headers(&all.records).len(), 12);
    assert!(
        log.read(36, 100, i64::MAX, true)
            .expect("read")
            .records
            .is_empty()
    );
    check_read(&log, &model, 4, 10, i64::MAX, false);
    check_read(&log, &model, 4, 10, i64::MAX, true);
    check_read(&log, &model, 4, 1000, 9, true);
    check_read(&log, &model, 4, 1000, 6, true);
    assert!(matches!(
        log.read(37, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange {
            requested: 37,
            log_start: 0,
            log_end: 36
        })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.size_bytes(), all.records.len() as u64);
}

#[test]
fn index_lookup_across_many_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 120, 2, 0, 1);
    assert!(log.num_segments() > 10, "{} segments", log.num_segments());
    check_all_offsets(&log, &model);
    for start in [0, 1, 50, 121, 239] {
        check_read(&log, &model, start, 700, i64::MAX, false);
    }
    let (leo, size, max_ts) = (log.log_end_offset(), log.size_bytes(), log.max_timestamp());
    log.close().expect("close");

    let mut log = Log::open(dir.path(), config.clone()).expect("reopen");
    assert_eq!(
        (log.log_end_offset(), log.size_bytes(), log.max_timestamp()),
        (leo, size, max_ts)
    );
    assert_eq!(log.recovery_point(), leo);
    check_all_offsets(&log, &model);
    fill(&mut log, &mut model, 5, 2, 5000, 2);
    check_all_offsets(&log, &model);
    // Crash without close: unflushed tail is rescanned.
    drop(log);
    let log = Log::open(dir.path(), config).expect("reopen after drop");
    check_all_offsets(&log, &model);
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 240)]);
}

#[test]
fn retention_by_size_deletes_whole_oldest_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 60, 2, 0, 0);
    let before = log.num_segments();
    assert_eq!(log.apply_retention(0, i64::MAX).expect("noop"), 0);
    config.retention_bytes = 3000;
    log.set_config(config);
    let deleted = log.apply_retention(0, i64::MAX).expect("retention");
    assert!(deleted > 0);
    assert_eq!(log.num_segments(), before - deleted);
    assert!(log.size_bytes() <= 3000 + 1024);
    let first = log.segment_base_offsets()[0];
    assert_eq!(log.log_start_offset(), first);
    assert!(matches!(
        log.read(first - 1, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    check_all_offsets(&log, &model);
    assert_eq!(log.apply_retention(0, i64::MAX).expect("stable"), 0);
}

#[test]
fn retention_by_time_rolls_and_deletes_an_expired_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 30, 2, 10_000, 0); // timestamps 10_000 .. 10_291
    let n = log.num_segments();
    assert_eq!(
        log.apply_retention(10_500, i64::MAX).expect("nothing old"),
        0
    );
    // Segments whose largest timestamp is older than 1s at 11_150 go.
    let deleted = log.apply_retention(11_150, i64::MAX).expect("some");
    assert!(deleted > 0 && deleted < n, "{deleted} of {n}");
    check_all_offsets(&log, &model);
    let leo = log.log_end_offset();
    assert_eq!(
        log.apply_retention(1_000_000, i64::MAX).expect("all"),
        n - deleted
    );
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.num_segments()
        ),
        (leo, leo, 1)
    );
    assert!(
        log.read(leo, 100, i64::MAX, true)
            .expect("read")
            .records
            .is_empty()
    );
    assert_eq!(log.max_timestamp(), None);
    drop(log);
    let mut log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (leo, leo));
    let info = log
        .append_as_leader(&batch(1, 5, 1, Compression::None), 0, 0)
        .expect("append");
    assert_eq!(info.first_offset, leo);
}

#[test]
fn retention_ms_minus_one_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: -1,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 30, 2, 0, 0); // timestamps from 1970
    let n = log.num_segments();
    assert!(n > 3);
    assert_eq!(
        log.apply_retention(i64::MAX, i64::MAX).expect("retention"),
        0
    );
    assert_eq!((log.num_segments(), log.log_start_offset()), (n, 0));
    check_all_offsets(&log, &model);
}

#[test]
fn retention_never_deletes_past_the_high_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    fill(&mut log, &mut Vec::new(), 30, 2, 0, 0);
    let bases = log.segment_base_offsets();
    // Only segments whose every offset is below the HW may go: with the HW
    // inside the third segment, the first two.
    let hw = bases[2] + 1;
    assert_eq!(log.apply_retention(1_000_000, hw).expect("retention"), 2);
    assert_eq!(log.log_start_offset(), bases[2]);
    // With the HW at the log end, everything, the active segment rolled.
    let leo = log.log_end_offset();
    assert_eq!(
        log.apply_retention(1_000_000, leo).expect("retention"),
        bases.len() - 2
    );
    assert_eq!((log.log_start_offset(), log.num_segments()), (leo, 1));
}

#[test]
fn retention_bytes_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    fill(&mut log, &mut Vec::new(), 60, 2, 0, 0);
    // -1 (and any negative value) is no limit.
    config.retention_bytes = -1;
    log.set_config(config.clone());
    assert_eq!(log.apply_retention(0, i64::MAX).expect("retention"), 0);
    // Kafka's rule: the oldest segment goes while the rest still hold at
    // least retention.bytes; what stays is over the limit by less than the
    // oldest remaining segment.
    config.retention_bytes = 2500;
    log.set_config(config.clone());
    assert!(log.apply_retention(0, i64::MAX).expect("retention") > 0);
    let first = log.segment_base_offsets()[0];
    let sizes: u64 = log.size_bytes();
    assert!(sizes >= 2500, "{sizes}");
    assert_eq!(log.log_start_offset(), first);
    // 0 deletes every segment, the active one too (rolled first).
    config.retention_bytes = 0;
    log.set_config(config);
    log.apply_retention(0, i64::MAX).expect("retention");
    let leo = log.log_end_offset();
    assert_eq!((log.log_start_offset(), log.size_bytes()), (leo, 0));
}

#[test]
fn compact_only_topics_are_not_retention_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1,
        retention_bytes: 1,
        cleanup_policy: crate::CleanupPolicy::Compact,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    fill(&mut log, &mut Vec::new(), 30, 2, 0, 0);
    assert_eq!(
        log.apply_retention(i64::MAX, i64::MAX).expect("retention"),
        0
    );
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), small_config(1024)).expect("open");
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), None);
    assert_eq!(log.max_timestamp(), None);
    let mut model = Vec::new();
    // Batch i (3 records) has timestamps 1000+10i .. 1000+10i+2; offsets 3i..3i+2.
    fill(&mut log, &mut model, 40, 3, 1000, 0);
    // A compressed batch with an out-of-order (smaller) timestamp.
    let gz = batch(3, 500, 10, Compression::Gzip);
    log.append_as_leader(&gz, 0, 0).expect("append gz"); // offsets 120..122
    fill(&mut log, &mut model, 1, 3, 9000, 0); // offsets 123..125
    assert!(log.num_segments() > 3);
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1001).expect("ts"), Some((1, 1001)));
    assert_eq!(log.offset_for_timestamp(1003).expect("ts"), Some((3, 1010)));
    assert_eq!(
        log.offset_for_timestamp(1205).expect("ts"),
        Some((63, 1210))
    );
    assert_eq!(
        log.offset_for_timestamp(1392).expect("ts"),
        Some((119, 1392))
    );
    assert_eq!(
        log.offset_for_timestamp(1393).expect("ts"),
        Some((123, 9000))
    );
    assert_eq!(
        log.offset_for_timestamp(9002).expect("ts"),
        Some((125, 9002))
    );
    assert_eq!(log.offset_for_timestamp(9003).expect("ts"), None);
    assert_eq!(log.max_timestamp(), Some((9002, 125)));
    // Below the log start nothing is returned.
    log.advance_log_start_offset(4).expect("advance");
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((4, 1011)));
}

#[test]
fn log_append_time_stamps_batches_and_keeps_crc_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let info = log
        .append_as_leader(&batch(5, 100, 10, Compression::None), 3, 777_000)
        .expect("append");
    assert_eq!(
        (info.log_append_time, info.max_timestamp),
        (777_000, 777_000)
    );
    let read = log.read(0, 10_000, i64::MAX, true).expect("read");
    let hs = headers(&read.records);
    assert_eq!(hs.len(), 1);
    assert!(hs[0].is_log_append_time());
    assert_eq!(
        (hs[0].max_timestamp, hs[0].partition_leader_epoch),
        (777_000, 3)
    );
    assert_eq!(
        log.offset_for_timestamp(500_000).expect("ts"),
        Some((0, 777_000))
    );
}

#[test]
fn truncate_to_removes_the_tail_and_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 20, 2, 0, 1);
    fill(&mut log, &mut model, 20, 2, 0, 2);
    fill(&mut log, &mut model, 20, 2, 0, 3);
    log.flush().expect("flush");
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 40), (3, 80)]);
    log.truncate_to(150).expect("noop");
    assert_eq!(log.log_end_offset(), 120);
    log.truncate_to(50).expect("truncate");
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(log.recovery_point(), 50);
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 40)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 50)));
    model.retain(|s| s.last < 50);
    check_all_offsets(&log, &model);
    // A straddling batch goes whole: [50,51] cut at 51 leaves a gap at 50.
    fill(&mut log, &mut model, 1, 2, 0, 4);
    log.truncate_to(51).expect("truncate");
    assert_eq!(log.log_end_offset(), 51);
    model.pop();
    fill(&mut log, &mut model, 3, 2, 0, 4);
    assert_eq!(model[model.len() - 3].base, 51);
    drop(log);
    let mut log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(log.log_end_offset(), 57);
    check_all_offsets(&log, &model);
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 40), (4, 50)]);
    // Below the log start: restart empty there.
    log.advance_log_start_offset(30).expect("advance");
    log.truncate_to(10).expect("truncate fully");
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.num_segments()
        ),
        (10, 10, 1)
    );
    assert_eq!(log.latest_epoch(), None);
}

#[test]
fn leader_epoch_cache_is_persisted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 2, 5, 0, 1);
    fill(&mut log, &mut model, 2, 5, 0, 3);
    fill(&mut log, &mut model, 1, 5, 0, 5);
    assert_eq!(log.latest_epoch(), Some(5));
    let check = |log: &Log| {
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 25)));
        assert_eq!(log.end_offset_for_epoch(4), Some((3, 20)));
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
        assert_eq!(log.end_offset_for_epoch(6), None);
    };
    check(&log);
    drop(log);
    let text = fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).expect("file");
    assert_eq!(text, "0\n3\n1 0\n3 10\n5 20\n");
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    check(&log);
}

#[test]
fn a_new_leader_epoch_starts_at_the_log_end_before_any_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 2, 5, 0, 1);
    log.assign_leader_epoch(4).expect("assign");
    // Older or equal epochs change nothing.
    log.assign_leader_epoch(4).expect("assign");
    log.assign_leader_epoch(2).expect("assign");
    assert_eq!(log.leader_epochs(), &[(1, 0), (4, 10)]);
    // Epoch 1 ends where epoch 4 started, although epoch 4 has no batch yet.
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 10)));
    // As in Kafka, an epoch without batches is dropped when the log is
    // reopened (entries at or past the log end); a leader assigns it again.
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.leader_epochs(), &[(1, 0)]);
}

#[test]
fn bad_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        max_message_bytes: 500,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let good = batch(2, 0, 10, Compression::None).to_vec();
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let mut bad_crc = good.clone();
    bad_crc[70] ^= 1;
    let mut zero_records = good.clone();
    zero_records[57..61].copy_from_slice(&0i32.to_be_bytes());
    let mut claims_append_time = good.clone();
    claims_append_time[22] |= 0x08;
    let too_large = batch(10, 0, 100, Compression::None).to_vec();
    type Expect = fn(&LogError) -> bool;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (bad_magic, |e| {
            matches!(e, LogError::UnsupportedMagic { magic: 1 })
        }),
        (bad_crc, |e| matches!(e, LogError::CorruptRecord { .. })),
        (good[..good.len() - 3].to_vec(), |e| {
            matches!(e, LogError::CorruptRecord { .. })
        }),
        (zero_records, |e| {
            matches!(
                e,
                LogError::CorruptRecord { .. } | LogError::InvalidRecord { .. }
            )
        }),
        (claims_append_time, |e| {
            matches!(
                e,
                LogError::CorruptRecord { .. } | LogError::InvalidTimestamp { .. }
            )
        }),
        (too_large, |e| {
            matches!(e, LogError::RecordTooLarge { max: 500, .. })
        }),
        (Vec::new(), |e| matches!(e, LogError::InvalidRecord { .. })),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        // Put a good batch first: the whole request must be rejected.
        let mut request = good.clone();
        request.extend_from_slice(&bytes);
        let request = if bytes.is_empty() {
            Bytes::new()
        } else {
            Bytes::from(request)
        };
        let err = log
            .append_as_leader(&request, 0, 0)
            .expect_err("must be rejected");
        assert!(expected(&err), "case {i}: {err:?}");
        assert_eq!(log.log_end_offset(), 0, "case {i}");
        assert_eq!(log.size_bytes(), 0, "case {i}");
    }
    // A set larger than a segment.
    log.set_config(LogConfig {
        segment_bytes: 50,
        ..LogConfig::default()
    });
    let err = log
        .append_as_leader(&Bytes::from(good), 0, 0)
        .expect_err("too large");
    assert!(matches!(err, LogError::RecordSetTooLarge { .. }));
}

#[test]
fn follower_append_copies_the_leaders_bytes() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = Log::open(leader_dir.path(), small_config(2048)).expect("open");
    let mut follower = Log::open(follower_dir.path(), small_config(2048)).expect("open");
    let mut model = Vec::new();
    fill(&mut leader, &mut model, 10, 3, 0, 1);
    fill(&mut leader, &mut model, 10, 3, 0, 2);
    while follower.log_end_offset() < leader.log_end_offset() {
        let fetched = leader
            .read(follower.log_end_offset(), 700, i64::MAX, true)
            .expect("read");
        // A fetch cut mid-batch: the partial tail is ignored.
        let mut with_partial = fetched.records.to_vec();
        with_partial.extend_from_slice(&model[0].bytes[..40]);
        let info = follower
            .append_as_follower(&Bytes::from(with_partial))
            .expect("append");
        assert!(info.num_batches > 0);
    }
    check_all_offsets(&follower, &model);
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    // Offsets at or below the log end are refused.
    let again = leader
        .read(0, 100_000, i64::MAX, true)
        .expect("read")
        .records;
    assert!(matches!(
        follower.append_as_follower(&again),
        Err(LogError::NonMonotonicOffset { .. })
    ));
    assert_eq!(
        follower
            .append_as_follower(&Bytes::new())
            .expect("empty")
            .num_batches,
        0
    );
}

#[test]
fn advance_log_start_offset_is_persisted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 40, 2, 0, 0);
    let n = log.num_segments();
    assert!(matches!(
        log.advance_log_start_offset(81),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.advance_log_start_offset(41).expect("advance");
    assert_eq!(log.log_start_offset(), 41);
    assert!(log.num_segments() < n);
    assert!(log.segment_base_offsets()[0] <= 41);
    assert!(matches!(
        log.read(40, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The batch containing 41 starts at 40 and is served whole.
    assert_eq!(
        headers(&log.read(41, 1, i64::MAX, true).expect("read").records)[0].base_offset,
        40
    );
    log.advance_log_start_offset(3)
        .expect("lowering is a no-op");
    drop(log);
    let log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(log.log_start_offset(), 41);
}

#[test]
fn flush_due_follows_flush_messages_and_flush_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    assert!(!log.flush_due(i64::MAX));
    log.append_as_leader(&batch(3, 0, 1, Compression::None), 0, 0)
        .expect("append");
    assert!(!log.flush_due(0));
    log.append_as_leader(&batch(3, 0, 1, Compression::None), 0, 0)
        .expect("append");
    assert!(log.flush_due(0));
    log.flush().expect("flush");
    assert!(!log.flush_due(0));
    assert_eq!(log.recovery_point(), 6);
    log.set_config(LogConfig {
        flush_ms: 1000,
        ..config
    });
    log.append_as_leader(&batch(1, 0, 1, Compression::None), 0, 0)
        .expect("append");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!(!log.flush_due(now - 10_000));
    assert!(log.flush_due(now + 10_000));
}

#[test]
fn segment_ms_rolls_by_the_records_timestamps_as_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let at = |ts| batch(1, ts, 1, Compression::None);
    // The segment's clock starts at its first batch's timestamp (10_000);
    // batches up to 1000 ms later stay in it, whatever the wall clock says.
    log.append_as_leader(&at(10_000), 0, 50_000)
        .expect("append");
    log.append_as_leader(&at(10_900), 0, 90_000)
        .expect("append");
    log.append_as_leader(&at(11_000), 0, 99_000)
        .expect("append");
    assert_eq!(log.num_segments(), 1);
    // A batch more than segment.ms after the first one rolls.
    log.append_as_leader(&at(11_001), 0, 99_001)
        .expect("append");
    assert_eq!(log.segment_base_offsets(), vec![0, 3]);
    // The new segment counts from 11_001.
    log.append_as_leader(&at(12_001), 0, 0).expect("append");
    assert_eq!(log.num_segments(), 2);
    log.append_as_leader(&at(12_002), 0, 0).expect("append");
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 5]);
}

#[test]
fn segment_ms_without_timestamps_follows_the_wall_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    // Timestamps of -1 (NO_TIMESTAMP): the roll falls back to append time.
    let b = batch(1, -1, 1, Compression::None);
    log.append_as_leader(&b, 0, 10_000).expect("append");
    log.append_as_leader(&b, 0, 10_900).expect("append");
    assert_eq!(log.num_segments(), 1);
    log.append_as_leader(&b, 0, 11_001).expect("append");
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn full_index_rolls_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 8 * 4,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 20, 1, 0, 0);
    assert!(log.num_segments() >= 4, "{}", log.num_segments());
    check_all_offsets(&log, &model);
}

#[test]
fn follower_offset_gaps_survive_reopen_reads_and_truncation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(3, 0, 20, Compression::None).len() as u64;
    let config = small_config(3 * one + one / 2);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    for base in [0i64, 3, 6, 1000, 1003, 1006] {
        let b = batch(3, base, 20, Compression::None);
        let bytes = stored(&b, base, 1);
        log.append_as_follower(&Bytes::from(bytes.clone()))
            .expect("append");
        model.push(Stored {
            base,
            last: base + 2,
            bytes,
        });
    }
    assert_eq!(log.log_end_offset(), 1009);
    log.close().expect("close");
    let mut log = Log::open(dir.path(), config).expect("reopen");
    // The first segment is trusted: its state comes from its index files.
    assert_eq!(log.segment_base_offsets(), vec![0, 1000]);
    check_all_offsets(&log, &model);
    // An offset inside the gap reads the next batch.
    let got = log.read(500, 1, i64::MAX, true).expect("read");
    assert_eq!(headers(&got.records)[0].base_offset, 1000);
    // Truncating into the gap: the log ends there, data ends before it.
    log.truncate_to(500).expect("truncate");
    assert_eq!(log.log_end_offset(), 500);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    model.truncate(3);
    check_all_offsets(&log, &model);
    let info = log
        .append_as_leader(&batch(1, 0, 1, Compression::None), 2, 0)
        .expect("append");
    assert_eq!(info.first_offset, 500);
}

#[test]
fn segment_max_timestamps_survive_index_rebuilds_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sparse entries: the largest timestamp is usually not at an interval.
    let config = LogConfig {
        index_interval_bytes: 300,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 40, 2, 1000, 0); // batch i: ts 1000+10i, +1
    let queries: Vec<i64> = (990..1400).collect();
    let expected: Vec<_> = queries
        .iter()
        .map(|&ts| log.offset_for_timestamp(ts).expect("ts"))
        .collect();
    assert_eq!(expected[1111 - 990], Some((23, 1111)));
    log.close().expect("close");
    for round in 0..3 {
        if round == 1 {
            for entry in fs::read_dir(dir.path()).expect("ls") {
                let path = entry.expect("entry").path();
                if path
                    .extension()
                    .is_some_and(|e| e == "timeindex" || e == "index")
                {
                    fs::remove_file(path).expect("rm");
                }
            }
        }
        let log = Log::open(dir.path(), config.clone()).expect("reopen");
        let got: Vec<_> = queries
            .iter()
            .map(|&ts| log.offset_for_timestamp(ts).expect("ts"))
            .collect();
        assert_eq!(got, expected, "round {round}");
        assert_eq!(log.max_timestamp(), Some((1391, 79)));
        // Time retention must not delete a segment holding a newer timestamp.
        drop(log);
    }
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: 100,
            ..config
        },
    )
    .expect("reopen");
    log.apply_retention(1200, i64::MAX).expect("retention");
    check_all_offsets(&log, &model);
    // Batch i holds offsets 2i, 2i+1 with max timestamp 1000+10i+1; a
    // segment goes when its largest timestamp is below 1200-100.
    let max_ts_of_batch_ending_at = |next: i64| 1000 + 10 * (next / 2 - 1) + 1;
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(max_ts_of_batch_ending_at(start) < 1100);
    let first_segment_end = log.segment_base_offsets()[1];
    assert!(max_ts_of_batch_ending_at(first_segment_end) >= 1100);
    assert_eq!(
        log.offset_for_timestamp(0).expect("ts").map(|(o, _)| o),
        Some(start)
    );
}
