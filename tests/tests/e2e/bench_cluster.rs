//! Cluster benchmarks (ignored by default; `bench/failover` runs them and keeps the output).
//! They print figures and assert only that the cluster worked, never timings.
//!
//! - `bench_failover_*`: time from SIGKILL of a leader to the first acknowledged acks=all
//!   produce (sent after the kill) on each partition it led; with the e2e tests' timeouts
//!   (session 2.5 s), tuned for failover (session 1.2 s, heartbeat 0.3 s) and Kafka's
//!   defaults (session 9 s): a SIGKILLed broker is detected by its missing heartbeats.
//!   `bench_failover_default_timeouts_{partition_leader,controller_leader}` kill a leader
//!   that is not / is the controller leader, with early fencing (Fjord's default) and with
//!   the session timeout only (`broker_fast_fencing_enable = false`);
//!   `bench_failover_controller_leader_long_election` the controller leader with a Raft
//!   election timeout of 1000-2000 ms (Fjord's default before).
//! - `bench_throughput_three_nodes_vs_one`: acks=all produce throughput of a 3-node RF=3
//!   cluster versus a single node, 100-byte records, 8 partitions.
//! - `bench_create_partitions`: CreateTopics of 1,000 partitions (RF=3) and 10,000 (RF=1:
//!   with RF=3 every node would hold 10,000 open logs, past this host's file limit).
//! - `bench_coordinator_heartbeats`: heartbeat latency of groups whose `__consumer_offsets`
//!   partition is healthy while another partition of the same coordinator has a SIGSTOPped
//!   follower (issue 13's measure; run by hand, `FJORD_BIN` picks the binary).
//! - `bench_rolling_restart_default_timeouts`: graceful restart of each of 3 nodes in turn
//!   (Kafka's default timings) under acks=all idempotent load: the longest produce stall per
//!   restart (issue 13's measure; run by hand); asserts every ack is read back exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjord_e2e::produce_loop::{ProduceLoop, fault_test_producer, read_partition_seqs};
use fjord_e2e::{
    ClusterOptions, FjordCluster, FjordNode, bounded, client_config, topic_name, wait_for,
};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, Producer, ProducerContext, ThreadedProducer,
};
use tokio::task::block_in_place;

use crate::coordinator_shards::{Member, groups_on, offsets_cluster, rf2_min_isr2, simple_commit};

const LIMIT: Duration = Duration::from_secs(600);

fn bench_secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Which node a failover round kills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The leader of partition 0, whatever else it is.
    LeaderOfP0,
    /// A partition leader that is not the controller leader.
    NotController,
    /// The controller leader (a Raft election comes first).
    Controller,
}

/// SIGKILLs a partition leader `rounds` times and prints, per partition it led, the
/// time until an acks=all produce sent after the kill was acknowledged.
async fn failover(label: &str, options: ClusterOptions, rounds: usize) {
    failover_of(label, options, rounds, Victim::LeaderOfP0).await;
}

async fn failover_of(label: &str, options: ClusterOptions, rounds: usize, pick: Victim) {
    let partitions = 6;
    let mut cluster = block_in_place(|| FjordCluster::start_with(options.clone()));
    let topic = topic_name("bench-failover");
    cluster
        .create_topic(&topic, partitions, 3, &[("min.insync.replicas", "2")])
        .await;
    let plo = ProduceLoop::start(
        fault_test_producer(&cluster.bootstrap()),
        &topic,
        (0..partitions).collect(),
        64,
        Duration::from_millis(1),
    );
    plo.wait_for_more_acks(
        300,
        Duration::from_secs(30),
        "records before the first kill",
    );
    let mut worst = Vec::new();
    for round in 1..=rounds {
        let controller = block_in_place(|| cluster.wait_for_controller(Duration::from_secs(30)));
        let layout = cluster
            .topic_from(controller, &topic)
            .expect("topic layout");
        let victim = match pick {
            Victim::LeaderOfP0 => layout[&0].leader,
            Victim::Controller => controller,
            Victim::NotController => layout
                .values()
                .map(|p| p.leader)
                .find(|&l| l != controller)
                .expect("a partition led by a node that is not the controller"),
        };
        let led: Vec<i32> = layout
            .iter()
            .filter(|(_, p)| p.leader == victim)
            .map(|(&i, _)| i)
            .collect();
        let killed_at = Instant::now();
        cluster.kill9(victim);
        let mut times = Vec::new();
        for &p in &led {
            let acked = block_in_place(|| {
                wait_for(
                    Duration::from_secs(120),
                    "an acks=all produce after the kill",
                    || plo.first_ack_sent_after(p, killed_at),
                )
            })
            .unwrap_or_else(|e| panic!("partition {p}: {e:#}"));
            times.push((p, acked - killed_at));
        }
        let max = times.iter().map(|(_, d)| *d).max().unwrap_or_default();
        worst.push(max);
        println!(
            "BENCH failover [{label}] round {round}: SIGKILL node {victim} (controller {controller}; led partitions {led:?}) -> first acks=all produce per partition: {}; max {max:?}",
            times
                .iter()
                .map(|(p, d)| format!("p{p} {d:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        block_in_place(|| cluster.restart(victim));
        block_in_place(|| {
            cluster.wait_for_healthy_topic(&topic, partitions, Duration::from_secs(120))
        });
    }
    let summary = plo.finish().await;
    worst.sort();
    println!(
        "BENCH failover [{label}] session {} ms, heartbeat {} ms, election {:?} ms, fast fencing {}: worst per round {:?}; {} records acknowledged, {} failed",
        options.broker_session_timeout_ms,
        options.broker_heartbeat_interval_ms,
        options.election_timeout_ms,
        if options.broker_fast_fencing_enable {
            "on"
        } else {
            "off"
        },
        worst,
        summary.acked.len(),
        summary.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_test_timeouts() {
    bounded(LIMIT, failover("test timeouts", ClusterOptions::fast(3), 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_tuned_for_failover() {
    let options = ClusterOptions {
        broker_session_timeout_ms: 1200,
        broker_heartbeat_interval_ms: 300,
        election_timeout_ms: (300, 600),
        raft_heartbeat_interval_ms: 75,
        ..ClusterOptions::fast(3)
    };
    bounded(LIMIT, failover("tuned: session 1.2 s", options, 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_default_timeouts() {
    bounded(
        LIMIT,
        failover("Kafka defaults", ClusterOptions::defaults(3), 2),
    )
    .await;
}

/// Kafka's defaults, the victim never the controller leader: early fencing (Fjord's
/// default) against the session timeout alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_default_timeouts_partition_leader() {
    bounded(LIMIT, async {
        let on = ClusterOptions::defaults(3);
        failover_of(
            "Kafka defaults, not the controller",
            on.clone(),
            3,
            Victim::NotController,
        )
        .await;
        let off = ClusterOptions {
            broker_fast_fencing_enable: false,
            ..on
        };
        failover_of(
            "Kafka defaults, not the controller, session timeout only",
            off,
            2,
            Victim::NotController,
        )
        .await;
    })
    .await;
}

/// Kafka's defaults, the victim is the controller leader (a Raft election first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_default_timeouts_controller_leader() {
    bounded(LIMIT, async {
        let on = ClusterOptions::defaults(3);
        failover_of(
            "Kafka defaults, the controller leader",
            on.clone(),
            3,
            Victim::Controller,
        )
        .await;
        let off = ClusterOptions {
            broker_fast_fencing_enable: false,
            ..on
        };
        failover_of(
            "Kafka defaults, the controller leader, session timeout only",
            off,
            2,
            Victim::Controller,
        )
        .await;
    })
    .await;
}

/// The controller leader as the victim with the longer Raft election timeout Fjord had
/// before (1000-2000 ms, Raft heartbeat 200 ms) and otherwise Kafka's defaults: what the
/// election costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_failover_controller_leader_long_election() {
    let options = ClusterOptions {
        election_timeout_ms: (1000, 2000),
        raft_heartbeat_interval_ms: 200,
        ..ClusterOptions::defaults(3)
    };
    bounded(
        LIMIT,
        failover_of(
            "Kafka defaults but Raft election 1000-2000 ms, the controller leader",
            options,
            3,
            Victim::Controller,
        ),
    )
    .await;
}

/// Counts delivery reports.
struct Counter {
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Produces 100-byte records with acks=all as fast as the cluster acknowledges them for
/// `secs`; returns acknowledged records per second.
fn throughput(bootstrap: &str, topic: &str, partitions: i32, secs: u64) -> (f64, u64) {
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Counter> = client_config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "262144")
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.messages", "200000")
        .create_with_context(Counter {
            acked: acked.clone(),
            failed: failed.clone(),
        })
        .expect("producer");
    let payload = [b'x'; 100];
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut i: u64 = 0;
    while Instant::now() < end {
        let partition = (i % partitions as u64) as i32;
        let rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic)
            .payload(&payload[..])
            .partition(partition);
        match producer.send(rec) {
            Ok(()) => i += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("enqueue: {e}"),
        }
    }
    // Count only what was acknowledged within the window.
    let in_window = acked.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let _ = producer.flush(Duration::from_secs(30));
    assert_eq!(failed.load(Ordering::Relaxed), 0, "deliveries failed");
    (in_window as f64 / elapsed, in_window)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_throughput_three_nodes_vs_one() {
    bounded(LIMIT, async {
        let secs = bench_secs();
        let partitions = 8;
        let single = FjordNode::start();
        let topic = topic_name("bench-tput-1");
        fjord_e2e::create_topic(&single.bootstrap(), &topic, partitions).await;
        let (one, n1) = block_in_place(|| throughput(&single.bootstrap(), &topic, partitions, secs));
        drop(single);

        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("bench-tput-3");
        cluster
            .create_topic(&topic, partitions, 3, &[("min.insync.replicas", "2")])
            .await;
        let (three, n3) = block_in_place(|| throughput(&cluster.bootstrap(), &topic, partitions, secs));
        println!(
            "BENCH throughput acks=all, 100 B records, {partitions} partitions, {secs} s: single node RF=1 {one:.0} msg/s ({:.2} MB/s, {n1} records); 3 nodes RF=3 min.insync.replicas=2 {three:.0} msg/s ({:.2} MB/s, {n3} records); ratio {:.2}",
            one * 100.0 / 1e6,
            three * 100.0 / 1e6,
            three / one.max(1.0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/failover"]
async fn bench_create_partitions() {
    bounded(LIMIT, async {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let admin: AdminClient<DefaultClientContext> = client_config(&cluster.bootstrap())
            .set("socket.timeout.ms", "300000")
            .create()
            .expect("admin client");
        for (partitions, rf) in [(1_000, 3), (10_000, 1)] {
            let topic = topic_name(&format!("bench-create-{partitions}"));
            let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(rf));
            let opts = AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(280)))
                .request_timeout(Some(Duration::from_secs(290)));
            let start = Instant::now();
            let res = admin.create_topics([&new], &opts).await.expect("CreateTopics");
            for r in res {
                if let Err((t, e)) = r {
                    panic!("CreateTopics {t}: {e}");
                }
            }
            let created = start.elapsed();
            block_in_place(|| {
                cluster.wait_for_healthy_topic(&topic, partitions, Duration::from_secs(300))
            });
            let led = start.elapsed();
            println!(
                "BENCH create {partitions} partitions RF={rf} on 3 nodes: CreateTopics answered after {created:?}; every node shows every partition led and in sync after {led:?}"
            );
        }
    })
    .await;
}

/// Heartbeats of `members` (one thread each, one Heartbeat a second) for `secs`: every
/// latency, and how many answers were errors (an expired or rebalancing member).
fn heartbeat_for(members: &mut [Member], secs: u64) -> (Vec<Duration>, usize) {
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|scope| {
        let threads: Vec<_> = members
            .iter_mut()
            .map(|m| {
                scope.spawn(move || {
                    let (mut latencies, mut errors) = (Vec::new(), 0);
                    let end = Instant::now() + Duration::from_secs(secs);
                    while Instant::now() < end {
                        let tick = Instant::now();
                        match m.heartbeat() {
                            Ok((0, took)) => latencies.push(took),
                            Ok((_, took)) => {
                                latencies.push(took);
                                errors += 1;
                            }
                            Err(_) => {
                                latencies.push(tick.elapsed());
                                errors += 1;
                            }
                        }
                        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
                    }
                    (latencies, errors)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("heartbeat thread"))
            .collect()
    });
    let errors = results.iter().map(|(_, e)| e).sum();
    let mut all: Vec<Duration> = results.into_iter().flat_map(|(l, _)| l).collect();
    all.sort_unstable();
    (all, errors)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Heartbeat latency of groups unrelated to a stalled `__consumer_offsets` partition (issue
/// 13's measure): 3 nodes with Kafka's default timeouts, `__consumer_offsets` RF 2 and
/// min.insync.replicas 2; N groups on partition B heartbeat once a second each, 20 s healthy,
/// then 20 s with the other replica of partition A SIGSTOPped while group G1 (on A, same
/// coordinator) commits in a loop. Point `FJORD_BIN` at an older binary for "before".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand (prints figures)"]
async fn bench_coordinator_heartbeats() {
    let groups: usize = std::env::var("BENCH_GROUPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let secs = 20;
    bounded(LIMIT, async {
        let (mut cluster, layout) =
            block_in_place(|| offsets_cluster(rf2_min_isr2(ClusterOptions::defaults(3))));
        let topic = topic_name("bench-hb");
        cluster.create_topic(&topic, 1, 2, &[]).await;
        block_in_place(|| {
            let addr = cluster.node(layout.leader).bootstrap();
            let mut members: Vec<Member> = groups_on("bench-hb", layout.healthy_partition, groups)
                .iter()
                .map(|g| Member::join(&addr, g).unwrap_or_else(|e| panic!("{e:#}")))
                .collect();
            // A heartbeat stuck behind a 30 s append (one coordinator lock) is measured.
            for m in &members {
                m.set_read_timeout(Duration::from_secs(60));
            }
            let g1 = groups_on("bench-stalled", layout.stalled_partition, 1).remove(0);
            assert_eq!(simple_commit(&addr, &g1, &topic, 0).expect("commit"), 0);

            let healthy = heartbeat_for(&mut members, secs);

            cluster.sigstop(layout.stalled_follower);
            let stop = Arc::new(AtomicU64::new(0));
            let committer = {
                let (stop, addr, g1, topic) =
                    (stop.clone(), addr.clone(), g1.clone(), topic.clone());
                std::thread::spawn(move || {
                    let mut answers = Vec::new();
                    while stop.load(Ordering::Relaxed) == 0 {
                        let start = Instant::now();
                        let code = simple_commit(&addr, &g1, &topic, 1).unwrap_or(-1);
                        answers.push((code, start.elapsed()));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    answers
                })
            };
            let stalled = heartbeat_for(&mut members, secs);
            stop.store(1, Ordering::Relaxed);
            cluster.sigcont(layout.stalled_follower);
            let answers = committer.join().expect("committer");

            println!(
                "coordinator heartbeats, {groups} groups x 1/s, {layout:?}, binary {}",
                fjord_e2e::fjord_bin().display()
            );
            for (label, (lat, errors)) in [("healthy", &healthy), ("follower stopped", &stalled)] {
                println!(
                    "  {label:>16}: {} heartbeats, p50 {:?} p99 {:?} max {:?}, {errors} errors",
                    lat.len(),
                    percentile(lat, 0.5),
                    percentile(lat, 0.99),
                    lat.last().copied().unwrap_or_default()
                );
            }
            let slow: Vec<_> = answers
                .iter()
                .filter(|(_, took)| *took > Duration::from_millis(100))
                .collect();
            let ok = answers.iter().filter(|(code, _)| *code == 0).count();
            println!(
                "  G1 commits while stopped: {} ({ok} succeeded); those over 100 ms (code, time): {slow:?}",
                answers.len()
            );
        });
    })
    .await;
}

/// One graceful restart: when it began and ended, and how long each step took.
struct RestartWindow {
    node: i32,
    start: Instant,
    end: Instant,
    stop: Duration,
    ready: Duration,
    healthy: Duration,
    failed: usize,
}

/// The longest time without an acknowledgement in `[start, end]` (the window's edges count
/// as acknowledgements, so a stall running past either edge is cut there).
fn longest_ack_gap(acks: &[Instant], start: Instant, end: Instant) -> Duration {
    let mut prev = start;
    let mut worst = Duration::ZERO;
    for &t in acks.iter().filter(|&&t| t >= start && t <= end) {
        worst = worst.max(t - prev);
        prev = t;
    }
    worst.max(end - prev)
}

/// Restarts every node of a 3-node cluster with Kafka's default timings in turn (SIGTERM,
/// wait for exit, start, wait until the topic is fully in sync) under a continuous acks=all
/// idempotent producer; prints per restart the longest time without an acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand (prints figures)"]
async fn bench_rolling_restart_default_timeouts() {
    bounded(LIMIT, async {
        let partitions = 6;
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::defaults(3)));
        let topic = topic_name("bench-rolling");
        cluster
            .create_topic(&topic, partitions, 3, &[("min.insync.replicas", "2")])
            .await;
        let producer: FutureProducer = client_config(&cluster.bootstrap())
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "30000")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500")
            .create()
            .expect("producer");
        let plo = ProduceLoop::start(
            producer,
            &topic,
            (0..partitions).collect(),
            64,
            Duration::from_millis(2),
        );
        plo.wait_for_more_acks(
            500,
            Duration::from_secs(60),
            "records before the first restart",
        );
        let mut windows = Vec::new();
        for id in cluster.ids() {
            let failed_before = plo.failed_count();
            let start = Instant::now();
            let status = block_in_place(|| cluster.stop(id));
            let stop = start.elapsed();
            assert!(status.success(), "node {id} exited with {status} on SIGTERM");
            let t = Instant::now();
            block_in_place(|| cluster.restart(id));
            let ready = t.elapsed();
            let t = Instant::now();
            block_in_place(|| {
                cluster.wait_for_healthy_topic(&topic, partitions, Duration::from_secs(120))
            });
            let healthy = t.elapsed();
            // A little steady load between restarts, as an operator's health check would see.
            plo.wait_for_more_acks(200, Duration::from_secs(60), "records after the restart");
            windows.push(RestartWindow {
                node: id,
                start,
                end: Instant::now(),
                stop,
                ready,
                healthy,
                failed: plo.failed_count() - failed_before,
            });
        }
        let summary = plo.finish().await;
        let mut acks: Vec<Instant> = summary.acked.iter().map(|a| a.acked_at).collect();
        acks.sort();
        let mut worst = Duration::ZERO;
        for w in &windows {
            let gap = longest_ack_gap(&acks, w.start, w.end);
            worst = worst.max(gap);
            println!(
                "BENCH rolling restart [Kafka defaults] node {}: SIGTERM stop {:?}, start to ready {:?}, ready to topic fully in sync {:?}; longest gap between acks=all acknowledgements {gap:?}; {} delivery errors",
                w.node, w.stop, w.ready, w.healthy, w.failed
            );
        }

        // Every acknowledged record is in the log exactly once, at its acknowledged offset.
        let bootstrap = cluster.bootstrap();
        let mut records = 0;
        for p in 0..partitions {
            let log = block_in_place(|| {
                read_partition_seqs(&bootstrap, &topic, p, Duration::from_secs(60))
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
            records += log.len();
            let mut count: HashMap<u64, usize> = HashMap::new();
            for (_, seq) in &log {
                *count.entry(*seq).or_default() += 1;
            }
            for a in summary.acked.iter().filter(|a| a.partition == p) {
                assert_eq!(
                    count.get(&a.seq).copied().unwrap_or(0),
                    1,
                    "partition {p}: seq-{} (acknowledged at offset {}) is not in the log exactly once",
                    a.seq,
                    a.offset
                );
                let at = usize::try_from(a.offset).ok().and_then(|i| log.get(i));
                assert_eq!(
                    at.map(|(_, s)| *s),
                    Some(a.seq),
                    "partition {p}: seq-{} not at its acknowledged offset {}",
                    a.seq,
                    a.offset
                );
            }
        }
        println!(
            "BENCH rolling restart [Kafka defaults] totals: {} sent, {} acknowledged (each read back exactly once), {} delivery errors, {records} records in the log; worst stall {worst:?}",
            summary.sent,
            summary.acked.len(),
            summary.failed
        );
    })
    .await;
}
