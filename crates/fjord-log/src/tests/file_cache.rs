//! Many logs sharing one small `FileCache`: every operation that touches a
//! segment file (append, read, plan + execute, roll, retention, truncation,
//! flush, reopen) works on handles the cache may have closed in between,
//! and the cache never holds more than its bound.

use super::*;
use crate::FileCache;

const BOUND: usize = 3;

fn bounded(cache: &FileCache) -> LogConfig {
    LogConfig {
        open_files: cache.clone(),
        ..small_config(1024)
    }
}

fn assert_within(cache: &FileCache) {
    let stats = cache.stats();
    assert!(stats.open <= BOUND, "{stats:?}");
}

#[test]
fn logs_work_through_a_cache_smaller_than_their_segments() {
    let cache = FileCache::new(BOUND);
    let dirs: Vec<_> = (0..6)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut logs: Vec<Log> = dirs
        .iter()
        .map(|d| Log::open(d.path(), bounded(&cache)).expect("open"))
        .collect();
    let mut models = vec![Vec::new(); logs.len()];
    // Interleaved appends: each log rolls a few segments, every append
    // likely reopens its active segment.
    for round in 0..60 {
        for (log, model) in logs.iter_mut().zip(models.iter_mut()) {
            fill(log, model, 1, 2, 10 * round, 0);
            assert_within(&cache);
        }
    }
    assert!(logs[0].num_segments() > BOUND, "more segments than handles");
    for (log, model) in logs.iter().zip(&models) {
        check_all_offsets(log, model);
        assert_within(&cache);
    }
    // A plan made before its file is evicted still reads it.
    let plan = logs[0].plan_read(0, 1 << 20, i64::MAX, true).expect("plan");
    for log in &logs[1..] {
        log.read(0, 100, i64::MAX, true).expect("read");
    }
    let got = plan.execute().expect("execute").expect("not truncated");
    assert_eq!(
        &got.records[..models[0][0].bytes.len()],
        &models[0][0].bytes[..]
    );
    // Truncation, retention, flush and reopen.
    logs[1].truncate_to(11).expect("truncate");
    models[1].retain(|s| s.last < 11);
    let mut config = bounded(&cache);
    config.retention_bytes = 2048;
    logs[2].set_config(config);
    assert!(logs[2].apply_retention(0, i64::MAX).expect("retention") > 0);
    for log in &mut logs {
        log.flush().expect("flush");
        assert_within(&cache);
    }
    logs.remove(1).close().expect("close");
    let reopened = Log::open(dirs[1].path(), bounded(&cache)).expect("reopen");
    check_all_offsets(&reopened, &models[1]);
    check_all_offsets(&logs[1], &models[2]);
    assert_within(&cache);
    assert!(cache.stats().evictions > 0, "{:?}", cache.stats());
}
