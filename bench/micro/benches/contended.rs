//! One partition's log behind one lock, as the broker holds it: the cost of
//! a small append (a producer's) while another thread reads 1 MiB from the
//! middle of the log (a consumer catching up) in a loop, with the read done
//! wholly under the lock (`Log::read`, the old fetch path) or planned under
//! it and read after it is released (`Log::plan_read` + `ReadPlan::execute`,
//! the fetch path now). Both variants run in one process: compare ratios.
//! Also `spawn_blocking_round_trip`: what taking appends off the async
//! worker would cost.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fjord_log::{Log, LogConfig, testing};

const READ_BYTES: usize = 1 << 20;

fn batch(count: usize, value_len: usize) -> Bytes {
    testing::batch_of_values((0..count).map(|_| Bytes::from(vec![b'x'; value_len])))
}

fn append_while_reading(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_while_reading_1MiB");
    for read_outside_lock in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(Mutex::new(
            Log::open(dir.path(), LogConfig::default()).expect("open"),
        ));
        {
            let mut log = log.lock().expect("lock");
            let records = batch(100, 100);
            for _ in 0..2_000 {
                log.append_as_leader(&records, 0, 1_700_000_000_000)
                    .expect("append");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let reader = {
            let (log, stop, reads) = (log.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let read = if read_outside_lock {
                        let plan = {
                            let log = log.lock().expect("lock");
                            log.plan_read(1_000, READ_BYTES, i64::MAX, true)
                                .expect("plan")
                        };
                        plan.execute().expect("read").expect("not truncated")
                    } else {
                        let log = log.lock().expect("lock");
                        log.read(1_000, READ_BYTES, i64::MAX, true).expect("read")
                    };
                    black_box(read);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let records = batch(1, 100);
        let name = if read_outside_lock {
            "read_outside_lock"
        } else {
            "read_under_lock"
        };
        let started = Instant::now();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut log = log.lock().expect("lock");
                    black_box(
                        log.append_as_leader(&records, 0, 1_700_000_000_000)
                            .expect("append"),
                    );
                    drop(log);
                    spent += start.elapsed();
                }
                spent
            })
        });
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        reader.join().expect("reader");
        println!(
            "{name}: reader did {:.0} reads/s of 1 MiB meanwhile",
            reads.load(Ordering::Relaxed) as f64 / elapsed
        );
    }
    group.finish();
}

/// What moving a small append off the async worker would add: a round trip
/// from a runtime worker to a blocking thread and back (`spawn_blocking`,
/// awaiting its result), with no work in it. Compare with
/// `log_append_as_leader/1x100B`.
fn spawn_blocking_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    c.bench_function("spawn_blocking_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let one = tokio::task::spawn_blocking(|| black_box(1u8)).await;
                    black_box(one.expect("join"));
                }
                start.elapsed()
            }))
            .expect("task")
        })
    });
}

criterion_group!(benches, append_while_reading, spawn_blocking_round_trip);
criterion_main!(benches);
