//! Benchmark (ignored by default; prints figures, asserts no timing): the
//! cost of loading producer state when a log opens, with and without
//! snapshots, for logs of 1 GiB and 10 GiB written by 1000 idempotent
//! producers in batches of 16 records of 1 KiB (default 1 GiB segments).
//!
//! Run: `cargo test -p fjord-log --release producer_state_load_bench -- --ignored --nocapture`
//! (writes up to 10 GiB under `$FJORD_BENCH_DIR`, default the temp dir, and
//! deletes it). Figures are with the page cache warm from the writes.

use std::time::Instant;

use bytes::Bytes;

use crate::testing::{TIMESTAMP, idempotent_batch};
use crate::{Log, LogConfig};

const PRODUCERS: i64 = 1000;
const RECORDS_PER_BATCH: i32 = 16;
const RECORD_BYTES: usize = 1024;
const GIB: u64 = 1 << 30;

/// A template batch from producer 0 with 16 records of 1 KiB; each append
/// patches the producer id and sequence and recomputes the CRC (encoding
/// 650,000 batches would dominate the run).
fn template() -> Vec<u8> {
    let records: Vec<_> = (0..RECORDS_PER_BATCH)
        .map(|i| kafka_protocol::records::Record {
            value: Some(Bytes::from(vec![b'x'; RECORD_BYTES])),
            ..crate::testing::record(i64::from(i), TIMESTAMP, None, Bytes::new())
        })
        .collect();
    let mut b =
        crate::testing::encode(&records, kafka_protocol::records::Compression::None).to_vec();
    // Take the producer fields from an idempotent batch's header.
    let idem = idempotent_batch(0, 0, 0, 1, TIMESTAMP);
    b[43..57].copy_from_slice(&idem[43..57]);
    b
}

fn patch(b: &mut [u8], pid: i64, seq: i32) {
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Default configs, except that producers never expire: the batches carry
/// an old fixed timestamp.
fn config() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path) -> (Log, std::time::Duration) {
    let started = Instant::now();
    let log = Log::open(dir, config()).expect("open");
    (log, started.elapsed())
}

fn report(case: &str, log: &Log, open: std::time::Duration) {
    let load = log.producer_state().last_load();
    println!(
        "  {case:<44} open {open:>10.1?}  producer state {:>10.1?}  snapshot {:?}, {} batches replayed, {} producers",
        load.duration,
        load.snapshot_offset,
        load.batches_replayed,
        log.producer_state().producers().len()
    );
}

fn run(size: u64) {
    let root = std::env::var_os("FJORD_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(root).expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let mut b = template();
    let (mut batches, started) = (0u64, Instant::now());
    while log.size_bytes() < size {
        let pid = batches as i64 % PRODUCERS;
        let seq = (batches as i64 / PRODUCERS) as i32 * RECORDS_PER_BATCH;
        patch(&mut b, pid, seq);
        log.append_as_leader(&Bytes::copy_from_slice(&b), 0, TIMESTAMP)
            .expect("append");
        batches += 1;
    }
    log.flush().expect("flush");
    println!(
        "{} GiB: {batches} batches of {RECORDS_PER_BATCH} x {RECORD_BYTES} B from {PRODUCERS} producers, {} segments (written in {:.1?})",
        size / GIB,
        log.num_segments(),
        started.elapsed()
    );
    let full = log.rebuild_producer_state_from_start().expect("rebuild");
    println!(
        "  {:<44} {:>16}  producer state {:>10.1?}  {} batches replayed",
        "full rebuild from the log start", "", full.duration, full.batches_replayed
    );

    log.close().expect("close");
    let (log, took) = open(dir.path());
    report("after a clean close (snapshot at log end)", &log, took);

    // As after a SIGKILL since the last roll: no close snapshot, no clean
    // shutdown marker (the active segment is validated too).
    let leo = log.log_end_offset();
    drop(log);
    super::snapshot::delete(dir.path(), leo).expect("delete the close snapshot");
    let (log, took) = open(dir.path());
    report("after a crash (last roll's snapshot + tail)", &log, took);

    log.close().expect("close");
    for offset in super::snapshot::list(dir.path()).expect("list") {
        super::snapshot::delete(dir.path(), offset).expect("delete");
    }
    let (log, took) = open(dir.path());
    report("without snapshots (last two segments)", &log, took);
    drop(log);
}

#[test]
#[ignore = "benchmark: writes up to 10 GiB, prints figures"]
fn producer_state_load_bench() {
    for size in [GIB, 10 * GIB] {
        run(size);
    }
}
