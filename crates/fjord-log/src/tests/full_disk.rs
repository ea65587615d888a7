//! A log on a filesystem that fills up: a 1 MiB tmpfs of the test's own
//! (the tests run as root; a failed mount fails the test with the reason).
//! A failed append is refused with an out-of-space error and cut back, so
//! the log holds only whole batches; a retry after space is freed succeeds;
//! a reopen without a clean close (recovery) finds exactly what was
//! appended.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::testing::{Tmpfs, batch_of_values};
use crate::{Log, LogConfig};

/// Bytes of the `.log` files in `dir`.
fn segment_file_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list the log dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

/// Every offset below the log end reads back as one of our batches.
fn assert_readable(log: &Log, value: &Bytes) {
    let leo = log.log_end_offset();
    let mut offset = 0;
    while offset < leo {
        let read = log.read(offset, 1 << 20, leo, true).expect("read");
        assert!(!read.records.is_empty(), "nothing at offset {offset}");
        let mut buf = read.records.clone();
        while !buf.is_empty() {
            let set = RecordBatchDecoder::decode(&mut buf).expect("decode a stored batch");
            assert!(
                set.records.iter().all(|r| r.value.as_ref() == Some(value)),
                "a foreign value at {offset}"
            );
        }
        offset = read.next_offset;
    }
}

#[test]
fn a_full_disk_refuses_appends_without_breaking_the_log() {
    let root = tempfile::tempdir().expect("tempdir");
    let mnt = root.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "1m");
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 256 << 10]).expect("write the filler file");
    let dir = mnt.join("t-0");
    let config = LogConfig {
        segment_bytes: 256 << 10,
        ..LogConfig::default()
    };
    let mut log = Log::open(&dir, config.clone()).expect("open");
    let value = Bytes::from(vec![b'x'; 7000]);
    let batch = batch_of_values([value.clone()]);

    // Phase 1: append until the disk is full.
    let err = loop {
        match log.append_as_leader(&batch, 0, 1_000) {
            Ok(_) => assert!(log.log_end_offset() < 1000, "the disk never filled up"),
            Err(err) => break err,
        }
    };
    assert!(err.is_out_of_space(), "{err}");
    let leo = log.log_end_offset();
    assert!(leo > 10, "only {leo} batches fit");
    // Cut back: the files hold exactly the whole batches the log counts.
    assert_eq!(segment_file_bytes(&dir), log.size_bytes());
    assert_readable(&log, &value);
    // A retry while full fails the same way and changes nothing.
    let again = log
        .append_as_leader(&batch, 0, 1_000)
        .expect_err("still full");
    assert!(again.is_out_of_space(), "{again}");
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(segment_file_bytes(&dir), log.size_bytes());

    // Phase 2: free space; the next append succeeds at the next offset.
    std::fs::remove_file(&filler).expect("remove the filler file");
    let info = log
        .append_as_leader(&batch, 0, 1_000)
        .expect("append after space was freed");
    assert_eq!(info.first_offset, leo);
    assert_readable(&log, &value);

    // Phase 3: reopen without a clean close: recovery finds every batch and
    // nothing else.
    drop(log);
    let log = Log::open(&dir, config).expect("reopen");
    assert_eq!(log.log_end_offset(), leo + 1);
    assert_eq!(segment_file_bytes(&dir), log.size_bytes());
    assert_readable(&log, &value);
}
