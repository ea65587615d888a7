//! Recovery on open: torn tails, corrupt segments, index rebuilds.

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::*;

#[test]
fn missing_or_garbage_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 60, 2, 0, 0);
    let bases = log.segment_base_offsets();
    log.close().expect("close");
    fs::remove_file(dir.path().join(format!("{:020}.index", bases[0]))).expect("rm");
    fs::write(
        dir.path().join(format!("{:020}.index", bases[1])),
        b"garbage!garbage!",
    )
    .expect("write");
    fs::write(
        dir.path().join(format!("{:020}.timeindex", bases[2])),
        b"xyz",
    )
    .expect("write");
    let log = Log::open(dir.path(), config).expect("reopen");
    check_all_offsets(&log, &model);
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 0)));
    assert!(dir.path().join(format!("{:020}.index", bases[0])).exists());
}

/// Recovery keeps everything before a damaged last batch.
fn recovery_case(damage: impl Fn(&Path, usize)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(4096);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 30, 3, 0, 0);
    log.flush().expect("flush");
    fill(&mut log, &mut model, 2, 3, 1000, 0);
    let last_len = model.last().map_or(0, |s| s.bytes.len());
    let path = active_segment_path(&log);
    drop(log); // crash: no close
    damage(&path, last_len);

    let mut log = Log::open(dir.path(), config).expect("recover");
    model.pop();
    let leo = model.last().map_or(0, |s| s.last + 1);
    assert_eq!(log.log_end_offset(), leo);
    check_all_offsets(&log, &model);
    fill(&mut log, &mut model, 3, 2, 2000, 1);
    check_all_offsets(&log, &model);
    assert_eq!(log.log_end_offset(), leo + 6);
}

#[test]
fn recovery_drops_garbage_tail() {
    // The last batch is fine but followed by garbage: drop the garbage only...
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(4096);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 5, 3, 0, 0);
    let path = active_segment_path(&log);
    drop(log);
    append_raw(&path, &[0xAB; 100]);
    let log = Log::open(dir.path(), config).expect("recover");
    assert_eq!(log.log_end_offset(), 15);
    check_all_offsets(&log, &model);
    // ...and garbage over the end of the last batch loses only that batch.
    recovery_case(|path, _| {
        let mut bytes = fs::read(path).expect("read");
        let n = bytes.len();
        bytes[n - 10..].copy_from_slice(b"0123456789");
        fs::write(path, bytes).expect("write");
    });
}

#[test]
fn recovery_cuts_half_written_batch() {
    recovery_case(|path, last_len| {
        let f = OpenOptions::new().write(true).open(path).expect("open");
        let len = f.metadata().expect("meta").len();
        f.set_len(len - (last_len / 2) as u64).expect("cut");
    });
}

#[test]
fn recovery_drops_batch_with_flipped_byte() {
    recovery_case(|path, last_len| {
        let mut bytes = fs::read(path).expect("read");
        let at = bytes.len() - last_len / 3;
        bytes[at] ^= 0x40;
        fs::write(path, bytes).expect("write");
    });
}

#[test]
fn recovery_deletes_segments_after_a_corrupt_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1024);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 10, 2, 0, 0);
    log.flush().expect("flush");
    let flushed = log.num_segments();
    fill(&mut log, &mut model, 40, 2, 0, 0);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > flushed + 2);
    drop(log);
    // Corrupt the first batch of a segment after the recovery point.
    let victim = bases[flushed + 1];
    let path = dir.path().join(format!("{victim:020}.log"));
    let mut bytes = fs::read(&path).expect("read");
    bytes[70] ^= 1;
    fs::write(&path, bytes).expect("write");
    let log = Log::open(dir.path(), config).expect("recover");
    assert_eq!(log.log_end_offset(), victim);
    assert_eq!(
        *log.segment_base_offsets().last().expect("seg"),
        bases[flushed]
    );
    model.retain(|s| s.last < victim);
    check_all_offsets(&log, &model);
}

#[test]
fn leftover_files_are_cleaned_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 3, 1, 0, 0);
    log.close().expect("close");
    let leftovers = [
        "recovery-point-checkpoint.tmp",
        "00000000000000000500.index",
        "00000000000000000500.timeindex",
        "00000000000000000000.log.deleted",
    ];
    for name in leftovers {
        fs::write(dir.path().join(name), b"x").expect("write");
    }
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    for name in leftovers {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    check_all_offsets(&log, &model);
}

#[test]
fn clean_shutdown_trusts_the_active_segment_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(1 << 20);
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 20, 2, 0, 0);
    let path = active_segment_path(&log);
    log.close().expect("close");
    assert!(dir.path().join("clean-shutdown").exists());
    // A flipped bit inside a record is not looked for after a clean shutdown
    // (the segment is trusted like any flushed one)...
    let mut bytes = fs::read(&path).expect("read");
    let at = model[0].bytes.len() + 70;
    bytes[at] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let log = Log::open(dir.path(), config.clone()).expect("reopen");
    assert!(!dir.path().join("clean-shutdown").exists());
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.max_timestamp(), Some((191, 39)));
    // ...but the marker is used once: after a crash everything is validated.
    drop(log);
    let mut log = Log::open(dir.path(), config.clone()).expect("recover");
    assert_eq!(log.log_end_offset(), 2);
    model.truncate(1);
    check_all_offsets(&log, &model);
    // A segment that changed size since the marker is validated too.
    fill(&mut log, &mut model, 3, 2, 0, 0);
    log.close().expect("close");
    append_raw(&path, b"garbage after a clean shutdown");
    let log = Log::open(dir.path(), config).expect("recover");
    assert_eq!(log.log_end_offset(), 8);
    check_all_offsets(&log, &model);
}
