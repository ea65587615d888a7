//! Retention edge cases on a real node (retention checked every 200 ms), each against a topic
//! whose records are a day old: `retention.ms=-1` keeps everything, a finite `retention.ms`
//! deletes the old segments, `retention.bytes` deletes the oldest segments until the rest fits
//! (Kafka's rule: what stays exceeds the limit by less than its oldest segment), and
//! `segment.ms` rolls the active segment by the records' timestamps.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjord_e2e::{ClusterOptions, FjordCluster, bounded, consumer, producer, topic_name, wait_for};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(90);
const SETTLE: Duration = Duration::from_secs(20);
const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The partition's segment files as (base offset, size), oldest first.
fn segments(data_dir: &Path, topic: &str) -> Vec<(i64, u64)> {
    let dir = data_dir.join("logs").join(format!("{topic}-0"));
    let mut out: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let base = name.strip_suffix(".log")?.parse().ok()?;
                    Some((base, e.metadata().ok()?.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn produce(bootstrap: &str, topic: &str, n: usize, timestamp: i64) {
    let prod = producer(bootstrap, "all", "none");
    let payload = "y".repeat(100);
    for _ in 0..n {
        prod.send(
            FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload(&payload)
                .timestamp(timestamp),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_edge_cases_behave_as_kafka() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| {
            FjordCluster::start_with(ClusterOptions {
                log_retention_check_interval_ms: 200,
                ..ClusterOptions::fast(1)
            })
        });
        let b = cluster.bootstrap();
        let data_dir = cluster.node(1).data_dir();
        let keep = topic_name("ret-keep");
        let timed = topic_name("ret-timed");
        let sized = topic_name("ret-sized");
        let rolled = topic_name("ret-rolled");
        let small = ("segment.bytes", "1024");
        cluster
            .create_topic(&keep, 1, 1, &[small, ("retention.ms", "-1")])
            .await;
        cluster
            .create_topic(&timed, 1, 1, &[small, ("retention.ms", "60000")])
            .await;
        cluster
            .create_topic(&sized, 1, 1, &[small, ("retention.bytes", "3000")])
            .await;
        cluster
            .create_topic(&rolled, 1, 1, &[("segment.ms", "500")])
            .await;

        // Phase 1: day-old records everywhere but the segment.ms topic.
        let old = now_ms() - DAY_MS;
        for t in [&keep, &timed, &sized] {
            produce(&b, t, 60, old).await;
        }
        let c = consumer(&b);
        let low = |t: &str| {
            c.fetch_watermarks(t, 0, Duration::from_secs(5))
                .expect("watermarks")
        };

        // Phase 2: retention.ms deletes the old segments of `timed` (all but the active
        // segment, which it rolls and deletes too: everything is old and committed).
        block_in_place(|| {
            wait_for(SETTLE, "retention.ms to delete every old segment", || {
                (low(&timed) == (60, 60)).then_some(())
            })
        })
        .expect("retention.ms");
        // By then retention has run on `keep` too: nothing deleted.
        assert_eq!(block_in_place(|| low(&keep)), (0, 60));
        assert!(segments(&data_dir, &keep).len() > 3);

        // Phase 3: retention.bytes keeps the newest segments that fit: what stays is at least
        // the limit and would fall below it without its oldest segment, and the log starts
        // there. (Waited for: a retention pass may have run while records were still coming.)
        let segs = block_in_place(|| {
            wait_for(SETTLE, "retention.bytes to keep exactly what fits", || {
                let segs = segments(&data_dir, &sized);
                let total: u64 = segs.iter().map(|s| s.1).sum();
                let first = segs.first()?;
                (first.0 > 0 && total >= 3000 && total - first.1 < 3000 && low(&sized).0 == first.0)
                    .then_some(segs)
            })
        })
        .expect("retention.bytes");
        assert_eq!(low(&sized).1, 60, "{segs:?}");

        // Phase 4: segment.ms rolls when a record is more than 500 ms newer than the
        // segment's first one.
        let t0 = now_ms();
        produce(&b, &rolled, 1, t0).await;
        produce(&b, &rolled, 1, t0 + 400).await;
        assert_eq!(segments(&data_dir, &rolled).len(), 1);
        produce(&b, &rolled, 1, t0 + 501).await;
        assert_eq!(
            segments(&data_dir, &rolled)
                .iter()
                .map(|s| s.0)
                .collect::<Vec<_>>(),
            vec![0, 2]
        );
    })
    .await;
}
