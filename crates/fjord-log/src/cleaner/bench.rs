//! Benchmark (ignored by default; prints figures, asserts no timing):
//! 1. cleaner throughput: one pass over a log of 1,000,000 records of
//!    100-byte values over 10,000 keys (batches of 100 records, 4 MiB
//!    segments), uncompressed and lz4: MB/s read and rewritten, and the
//!    offset map's memory;
//! 2. produce throughput on that compacted log with the cleaner idle, then
//!    with a cleaner thread cleaning in a loop, same run: appends go through
//!    a `Mutex<Log>` as the broker's, the cleaner takes it only to plan and
//!    swap (the broker's lock protocol). Each phase appends to a fresh log
//!    for 5 s or 600 MB.
//!
//! Run: `cargo test -p fjord-log --release cleaner_bench -- --ignored --nocapture`
//! (writes about 150 MB per log under `$FJORD_BENCH_DIR`, default the temp
//! dir). Figures are with the page cache warm from the writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record};

use crate::testing::{TIMESTAMP, encode, record};
use crate::{CleanupPolicy, DirtyRatio, Log, LogConfig};

const KEYS: usize = 10_000;
const RECORDS: usize = 1_000_000;
const PER_BATCH: usize = 100;
const VALUE_BYTES: usize = 100;
const MAP_MEMORY: usize = 128 << 20;
const MB: f64 = 1e6;
/// Cap of each produce phase (disk space on shared machines).
const MAX_PRODUCE_BYTES: u64 = 600_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 20,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: DirtyRatio::new(0.0).expect("ratio"),
        ..LogConfig::default()
    }
}

/// The KEYS / PER_BATCH batches covering every key once.
fn batches(compression: Compression) -> Vec<Bytes> {
    (0..KEYS / PER_BATCH)
        .map(|b| {
            let records: Vec<Record> = (0..PER_BATCH)
                .map(|i| {
                    let n = b * PER_BATCH + i;
                    record(
                        i as i64,
                        TIMESTAMP,
                        Some(Bytes::from(format!("key-{n:05}"))),
                        Bytes::from(value(n)),
                    )
                })
                .collect();
            encode(&records, compression)
        })
        .collect()
}

/// VALUE_BYTES of xorshift noise seeded by `n` (so codecs have work to do).
fn value(n: usize) -> Vec<u8> {
    let mut x = n as u64 * 0x9e37_79b9_7f4a_7c15 + 1;
    (0..VALUE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 64) as u8 + b'0'
        })
        .collect()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("FJORD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("tempdir"),
        None => tempfile::tempdir().expect("tempdir"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn clean_once(log: &mut Log) -> Option<crate::CleanerStats> {
    let lso = log.log_end_offset();
    let plan = log.plan_cleaning(lso, now_ms()).expect("plan")?;
    let cleaned = plan.clean(MAP_MEMORY, 1 << 20, now_ms()).expect("clean");
    let stats = cleaned.stats;
    log.swap_cleaned(cleaned).expect("swap");
    Some(stats)
}

fn pass_throughput(compression: Compression) {
    let dir = bench_dir();
    let mut log = Log::open(dir.path(), config()).expect("open");
    let set = batches(compression);
    for i in 0..RECORDS / PER_BATCH {
        log.append_as_leader(&set[i % set.len()], 0, TIMESTAMP)
            .expect("append");
    }
    log.flush().expect("flush");
    let before = log.size_bytes();
    let started = Instant::now();
    let stats = clean_once(&mut log).expect("a pass");
    let took = started.elapsed();
    println!(
        "cleaner pass ({compression:?}): {} segments, {:.1} MB -> {:.1} MB on disk; read {:.1} MB \
         (+{:.1} MB for the map), wrote {:.1} MB, {} records removed in {took:?}: {:.0} MB/s \
         cleaned; offset map {} keys in {:.2} MiB ({} bytes/key)",
        log.num_segments(),
        before as f64 / MB,
        log.size_bytes() as f64 / MB,
        stats.bytes_read as f64 / MB,
        stats.map_bytes_read as f64 / MB,
        stats.bytes_written as f64 / MB,
        stats.records_removed,
        stats.bytes_read as f64 / MB / took.as_secs_f64(),
        stats.map_keys,
        stats.map_memory_bytes as f64 / (1 << 20) as f64,
        stats.map_memory_bytes / stats.map_keys.max(1),
    );
}

/// What the cleaner thread of a produce phase did.
#[derive(Default)]
struct CleanerRun {
    passes: u64,
    cleaned_bytes: u64,
    /// Time the cleaner held the log's lock (plan + swap), total and longest.
    locked: Duration,
    longest_lock: Duration,
    /// The longest plan and swap.
    longest_plan: Duration,
    longest_swap: Duration,
}

impl CleanerRun {
    fn held(&mut self, since: Instant) -> Duration {
        let d = since.elapsed();
        self.locked += d;
        self.longest_lock = self.longest_lock.max(d);
        d
    }
}

/// A cleaner looping on `log` until `stop`, holding the lock only to plan
/// and to swap (the broker's protocol).
fn cleaner_loop(log: &Mutex<Log>, stop: &AtomicBool) -> CleanerRun {
    let mut run = CleanerRun::default();
    while !stop.load(Ordering::Relaxed) {
        let plan = {
            let log = log.lock().expect("lock");
            let since = Instant::now();
            let lso = log.log_end_offset();
            let plan = log.plan_cleaning(lso, now_ms()).expect("plan");
            let d = run.held(since);
            run.longest_plan = run.longest_plan.max(d);
            plan
        };
        let Some(plan) = plan else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let cleaned = plan.clean(MAP_MEMORY, 1 << 20, now_ms()).expect("clean");
        let bytes = cleaned.stats.bytes_read;
        {
            let mut log = log.lock().expect("lock");
            let since = Instant::now();
            log.swap_cleaned(cleaned).expect("swap");
            let d = run.held(since);
            run.longest_swap = run.longest_swap.max(d);
        }
        run.passes += 1;
        run.cleaned_bytes += bytes;
    }
    run
}

/// Append for `run` (or `MAX_PRODUCE_BYTES`), return MB/s appended; with
/// `cleaner`, a thread cleans the log in a loop meanwhile.
fn produce_throughput(
    log: &Arc<Mutex<Log>>,
    set: &[Bytes],
    run: Duration,
    cleaner: bool,
) -> (f64, CleanerRun) {
    let stop = Arc::new(AtomicBool::new(false));
    let cleaner_thread = cleaner.then(|| {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || cleaner_loop(&log, &stop))
    });
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut i = 0;
    while started.elapsed() < run && bytes < MAX_PRODUCE_BYTES {
        let b = &set[i % set.len()];
        log.lock()
            .expect("lock")
            .append_as_leader(b, 0, TIMESTAMP)
            .expect("append");
        bytes += b.len() as u64;
        i += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let run = cleaner_thread
        .map(|t| t.join().expect("cleaner thread"))
        .unwrap_or_default();
    (bytes as f64 / MB / secs, run)
}

#[test]
#[ignore = "benchmark: run by hand in release"]
fn cleaner_bench() {
    pass_throughput(Compression::None);
    pass_throughput(Compression::Lz4);

    // Each phase on a fresh log, so that the cleaner's work is what the
    // phase itself appends.
    let set = batches(Compression::None);
    let run = Duration::from_secs(5);
    let fresh = |dir: &tempfile::TempDir| {
        Arc::new(Mutex::new(Log::open(dir.path(), config()).expect("open")))
    };
    let (idle_dir, busy_dir) = (bench_dir(), bench_dir());
    let (idle, _) = produce_throughput(&fresh(&idle_dir), &set, run, false);
    drop(idle_dir);
    let (busy, c) = produce_throughput(&fresh(&busy_dir), &set, run, true);
    println!(
        "produce on a compacted log: {idle:.0} MB/s with the cleaner idle, {busy:.0} MB/s while \
         it cleans ({} passes, {:.0} MB cleaned; lock held {:?} in all, {:?} at most, longest \
         plan {:?}, longest swap {:?}): ratio {:.2}",
        c.passes,
        c.cleaned_bytes as f64 / MB,
        c.locked,
        c.longest_lock,
        c.longest_plan,
        c.longest_swap,
        busy / idle
    );
}
