//! Micro-benchmarks of the log's hot path: `Log::append_as_leader` and
//! `Log::read` (run by `bench/micro`, never by the test command).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fjord_log::{Log, LogConfig, testing};

/// A batch of `count` records of `value_len` bytes each.
fn batch(count: usize, value_len: usize) -> Bytes {
    testing::batch_of_values((0..count).map(|_| Bytes::from(vec![b'x'; value_len])))
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append_as_leader");
    for (count, value_len) in [(1, 100), (100, 100), (16, 1024)] {
        let records = batch(count, value_len);
        group.throughput(Throughput::Bytes(records.len() as u64));
        group.bench_function(format!("{count}x{value_len}B"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    // Keep the disk use bounded: start over (untimed) past 64 MiB.
                    if log.size_bytes() > 64 << 20 {
                        log.truncate_to(log.log_start_offset()).expect("truncate");
                    }
                    let start = Instant::now();
                    black_box(
                        log.append_as_leader(&records, 0, 1_700_000_000_000)
                            .expect("append"),
                    );
                    spent += start.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_read");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let records = batch(100, 100);
    for _ in 0..2_000 {
        log.append_as_leader(&records, 0, 1_700_000_000_000)
            .expect("append");
    }
    let leo = log.log_end_offset();
    for max_bytes in [16 * 1024, 1024 * 1024] {
        group.throughput(Throughput::Bytes(max_bytes as u64));
        // Tail reads (the consumer keeping up) and reads from the middle.
        for (name, from) in [("tail", leo - 200), ("middle", leo / 2)] {
            group.bench_function(format!("{name}_{}KiB", max_bytes / 1024), |b| {
                b.iter_batched(
                    || from,
                    |from| black_box(log.read(from, max_bytes, leo, true).expect("read")),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
