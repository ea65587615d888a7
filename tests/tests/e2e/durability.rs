//! Restarts: graceful stop and SIGKILL in the middle of an acks=all produce loop.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_e2e::{
    FjordNode, assign_from, bounded, client_config, consume_n, consumer, create_topic,
    expect_no_more, producer, topic_name, wait_for, wait_for_topic,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset};

const LIMIT: Duration = Duration::from_secs(150);

async fn produce_values(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<i64> {
    let mut futs = Vec::new();
    for v in values {
        let rec = FutureRecord::to(topic)
            .payload(v)
            .key(v)
            .partition(partition);
        futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    let mut offsets = Vec::new();
    for f in futs {
        let d = f
            .await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        offsets.push(d.offset);
    }
    offsets
}

fn read_partition(c: &BaseConsumer, topic: &str, partition: i32, n: usize) -> Vec<String> {
    assign_from(c, topic, &[partition], Offset::Beginning);
    let msgs = consume_n(c, n, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{topic}/{partition}: {e:#}"));
    expect_no_more(c, Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("{topic}/{partition}: {e:#}"));
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            assert_eq!(
                m.offset(),
                i as i64,
                "{topic}/{partition}: offsets are dense from 0"
            );
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_topics_offsets_records() {
    bounded(LIMIT, async {
        // Phase 1: two topics with records.
        let mut node = FjordNode::start();
        let a = topic_name("restart-a");
        let b = topic_name("restart-b");
        create_topic(&node.bootstrap(), &a, 3).await;
        create_topic(&node.bootstrap(), &b, 1).await;
        let p = producer(&node.bootstrap(), "all", "none");
        let mut written: HashMap<(String, i32), Vec<String>> = HashMap::new();
        for (t, parts) in [(&a, 3), (&b, 1)] {
            for part in 0..parts {
                let vals: Vec<String> = (0..(20 + 10 * part))
                    .map(|i| format!("{t}/{part}/{i}"))
                    .collect();
                let offs = produce_values(&p, t, part, &vals).await;
                assert_eq!(offs, (0..vals.len() as i64).collect::<Vec<_>>());
                written.insert((t.clone(), part), vals);
            }
        }
        drop(p);

        // Phase 2: SIGTERM, graceful exit, start again on the same data dir.
        let status = node.stop();
        assert!(
            status.success(),
            "fjord exited with {status} after SIGTERM (expected a clean exit 0)"
        );
        node.restart();

        // Phase 3: topics, watermarks and every record are there.
        wait_for_topic(&node.bootstrap(), &a, 3);
        wait_for_topic(&node.bootstrap(), &b, 1);
        let c = consumer(&node.bootstrap());
        for ((t, part), vals) in &written {
            let (lo, hi) = c
                .fetch_watermarks(t, *part, Duration::from_secs(10))
                .expect("watermarks");
            assert_eq!(
                (lo, hi),
                (0, vals.len() as i64),
                "watermarks of {t}/{part} after restart"
            );
            let got = read_partition(&c, t, *part, vals.len());
            assert_eq!(&got, vals, "records of {t}/{part} after restart");
        }

        // Phase 4: appends continue at the old end offset.
        let p = producer(&node.bootstrap(), "all", "none");
        let offs = produce_values(&p, &b, 0, &["after-restart".to_string()]).await;
        assert_eq!(
            offs,
            vec![written[&(b.clone(), 0)].len() as i64],
            "next offset after restart"
        );
    })
    .await;
}

/// One acknowledged record: where the broker said it put it.
#[derive(Clone, Debug)]
struct Acked {
    partition: i32,
    offset: i64,
    value: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_acks_all_produce_keeps_every_acked_record() {
    bounded(LIMIT, async {
        // Phase 1: a node and a 2-partition topic.
        let mut node = FjordNode::start();
        let topic = topic_name("sigkill");
        create_topic(&node.bootstrap(), &topic, 2).await;

        // Phase 2: a produce loop with acks=all and up to 64 records in flight, recording
        // every acknowledgement. Deliveries that fail (node gone) are just not acked.
        let p: FutureProducer = {
            let mut cfg: ClientConfig = client_config(&node.bootstrap());
            cfg.set("acks", "all")
                .set("linger.ms", "2")
                .set("enable.idempotence", "false")
                .set("message.timeout.ms", "20000")
                .set("request.timeout.ms", "5000")
                .set("retries", "1000000")
                .set("retry.backoff.ms", "100");
            cfg.create().expect("producer")
        };
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let n_acked = Arc::new(AtomicUsize::new(0));
        let n_failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let loop_task = {
            let (p, topic, acked, n_acked, n_failed, stop) = (
                p.clone(),
                topic.clone(),
                acked.clone(),
                n_acked.clone(),
                n_failed.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut inflight = VecDeque::new();
                let mut i: u64 = 0;
                loop {
                    let stopping = stop.load(Ordering::SeqCst);
                    if !stopping && inflight.len() < 64 {
                        let value = format!("rec-{i}");
                        let rec = FutureRecord::to(&topic)
                            .payload(&value)
                            .key(&value)
                            .partition((i % 2) as i32);
                        match p.send_result(rec) {
                            Ok(f) => inflight.push_back((value, f)),
                            Err((e, _)) => panic!("enqueue failed: {e}"),
                        }
                        i += 1;
                        continue;
                    }
                    let Some((value, f)) = inflight.pop_front() else {
                        break;
                    };
                    match f.await.expect("delivery future") {
                        Ok(d) => {
                            acked.lock().unwrap().push(Acked {
                                partition: d.partition,
                                offset: d.offset,
                                value,
                            });
                            n_acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            n_failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                i
            })
        };

        // Phase 3: SIGKILL once enough records are acknowledged, while the loop runs.
        tokio::task::block_in_place(|| {
            wait_for(Duration::from_secs(60), "3000 acknowledged records", || {
                (n_acked.load(Ordering::SeqCst) >= 3000).then_some(())
            })
        })
        .expect("producer made progress");
        node.kill9();
        let acked_at_kill = n_acked.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);

        // Phase 4: restart on the same dir; in-flight records may be retried and acked now.
        tokio::task::block_in_place(|| node.restart());
        let sent = loop_task.await.expect("produce loop");
        let acked = acked.lock().unwrap().clone();
        eprintln!(
            "sent {sent}, acked {} ({acked_at_kill} before SIGKILL), failed {}",
            acked.len(),
            n_failed.load(Ordering::SeqCst)
        );

        // Phase 5: every acknowledged record is at its acknowledged offset, and each partition
        // reads cleanly from its start to its high watermark.
        let c = consumer(&node.bootstrap());
        let mut want: HashMap<(i32, i64), String> = HashMap::new();
        for a in &acked {
            if let Some(prev) = want.insert((a.partition, a.offset), a.value.clone()) {
                panic!(
                    "offset {}/{} acknowledged for both {prev} and {}",
                    a.partition, a.offset, a.value
                );
            }
        }
        let mut ends = Vec::new();
        for part in 0..2 {
            let (lo, hi) = tokio::task::block_in_place(|| {
                c.fetch_watermarks(&topic, part, Duration::from_secs(10))
            })
            .expect("watermarks");
            assert_eq!(lo, 0);
            let max_acked = want
                .keys()
                .filter(|(p, _)| *p == part)
                .map(|(_, o)| *o)
                .max()
                .unwrap_or(-1);
            assert!(
                hi > max_acked,
                "partition {part}: high watermark {hi} is below acknowledged offset {max_acked}"
            );
            let log = tokio::task::block_in_place(|| read_partition(&c, &topic, part, hi as usize));
            let mut missing = Vec::new();
            for ((p, off), v) in want.iter().filter(|((p, _), _)| *p == part) {
                let got = log.get(*off as usize);
                if got != Some(v) {
                    missing.push(format!("{p}/{off}: want {v}, got {got:?}"));
                }
            }
            ends.push(hi);
            missing.sort();
            assert!(
                missing.is_empty(),
                "{} acknowledged records lost or changed, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }

        // Phase 6: the restarted node keeps appending at each partition's end.
        let p = producer(&node.bootstrap(), "all", "none");
        for (part, hi) in ends.into_iter().enumerate() {
            let offs =
                produce_values(&p, &topic, part as i32, &["after-restart".to_string()]).await;
            assert_eq!(
                offs,
                vec![hi],
                "partition {part}: first offset after restart"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_active_clients_exits_cleanly_and_keeps_acked_records() {
    bounded(LIMIT, async {
        let mut node = FjordNode::start();
        let topic = topic_name("sigterm");
        const N: usize = 20_000;
        create_topic(&node.bootstrap(), &topic, 1).await;

        // Phase 1: a consumer long-polling at the end of the (empty) partition, a connected
        // producer, then records enqueued right before the signal so some are in flight.
        let c = consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0], Offset::Beginning);
        tokio::task::block_in_place(|| expect_no_more(&c, Duration::from_millis(500)))
            .expect("empty partition");
        let p: FutureProducer = {
            let mut cfg: ClientConfig = client_config(&node.bootstrap());
            cfg.set("acks", "all")
                .set("linger.ms", "2")
                .set("message.timeout.ms", "5000");
            cfg.create().expect("producer")
        };
        p.send(
            FutureRecord::<(), _>::to(&topic)
                .payload("warm-up")
                .partition(0),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("warm-up produce: {e}"));
        let mut futs = vec![];
        for i in 0..N {
            let v = format!("t{i}");
            futs.push((
                v.clone(),
                p.send_result(FutureRecord::<(), _>::to(&topic).payload(&v).partition(0))
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            ));
        }

        // Phase 2: SIGTERM while both are connected: a clean exit within the stop timeout.
        let status = tokio::task::block_in_place(|| node.stop());
        assert!(
            status.success(),
            "fjord exited with {status} after SIGTERM with active clients"
        );
        let mut acked = Vec::new();
        for (v, f) in futs {
            if let Ok(Ok(d)) = f.await {
                acked.push((d.offset, v));
            }
        }

        // Phase 3: after a restart every acknowledged record is at its offset.
        tokio::task::block_in_place(|| node.restart());
        let c = consumer(&node.bootstrap());
        let (_, hi) =
            tokio::task::block_in_place(|| c.fetch_watermarks(&topic, 0, Duration::from_secs(10)))
                .expect("watermarks");
        let log = tokio::task::block_in_place(|| read_partition(&c, &topic, 0, hi as usize));
        for (off, v) in &acked {
            assert_eq!(
                log.get(*off as usize),
                Some(v),
                "acknowledged record at offset {off}"
            );
        }
        eprintln!(
            "{} of {N} acknowledged before/around SIGTERM, log end {hi}",
            acked.len()
        );
    })
    .await;
}

/// `flush.messages=1` through a real client: every acks=1 produce is answered
/// (after the flusher's fsync, group commit) and the recovery point, which
/// only a completed flush moves, reaches the log end without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_one_acks_after_the_flusher_fsyncs() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("flush-one");
        let admin: AdminClient<DefaultClientContext> = client_config(&node.bootstrap())
            .create()
            .expect("admin client");
        let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("flush.messages", "1");
        for r in admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .expect("CreateTopics")
        {
            r.unwrap_or_else(|(t, e)| panic!("CreateTopics {t}: {e}"));
        }
        wait_for_topic(&node.bootstrap(), &topic, 1);

        // Many records in flight at once: each batch's ack waits for an fsync.
        let p = producer(&node.bootstrap(), "1", "none");
        let values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
        let offsets = produce_values(&p, &topic, 0, &values).await;
        assert_eq!(offsets, (0..200).collect::<Vec<i64>>());

        let checkpoint = node
            .data_dir()
            .join("logs")
            .join(format!("{topic}-0"))
            .join("recovery-point-checkpoint");
        wait_for(Duration::from_secs(10), "the recovery point at 200", || {
            let text = std::fs::read_to_string(&checkpoint).ok()?;
            (text.lines().nth(1)?.trim().parse::<i64>().ok()? == 200).then_some(())
        })
        .expect("recovery point");
        let c = consumer(&node.bootstrap());
        assert_eq!(read_partition(&c, &topic, 0, 200), values);
    })
    .await;
}
