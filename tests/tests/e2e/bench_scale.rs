//! Many-partition benchmark (ignored by default; `bench/scale` runs it under `ulimit -n 1024`
//! with a release binary and keeps the output). It prints figures and asserts only that the
//! cluster worked, never timings.
//!
//! `bench_scale_partitions`: `SCALE_NODES` nodes (default 1), `SCALE_PARTITIONS` partitions
//! (default 30,000) over `SCALE_TOPICS` topics (default 30) with replication factor
//! `SCALE_RF` (default 1). Creates them (CreateTopics, `SCALE_TOPICS_PER_REQUEST` topics a
//! request), produces one record to each partition (acks=all) and reads every one back, then
//! stops each node with SIGTERM and starts it again, and reads them all back once more.
//! Prints the time of each step, each node's RSS before and after, its RSS per idle partition
//! replica, its open descriptors (`/proc/PID/fd`: total, sockets, files under its log
//! directory) and its open-file limit.

use std::time::{Duration, Instant};

use fjord_e2e::procfs;
use fjord_e2e::{ClusterOptions, FjordCluster, bounded, client_config, consume_n};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(3600);
/// Steps of tens of thousands of partitions: what the harness' 30 s deadlines become.
const STEP: Duration = Duration::from_secs(900);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Shape {
    nodes: usize,
    topics: Vec<(String, i32)>,
    rf: i32,
}

impl Shape {
    fn partitions(&self) -> usize {
        self.topics.iter().map(|(_, n)| *n as usize).sum()
    }
}

fn report(cluster: &FjordCluster, what: &str) -> Vec<u64> {
    let mut rss = Vec::new();
    for id in cluster.ids() {
        let node = cluster.node(id);
        let Some(pid) = node.pid() else { continue };
        let fds = procfs::fds(pid, &node.data_dir().join("logs")).expect("/proc/PID/fd");
        let kib = procfs::rss_kib(pid).unwrap_or(0);
        rss.push(kib);
        println!(
            "BENCH scale {what}: node {id} RSS {:.1} MiB, fds {} (sockets {}, segment files {}), open-file limit {:?}",
            kib as f64 / 1024.0,
            fds.total,
            fds.sockets,
            fds.segments,
            procfs::open_file_limit(pid)
        );
    }
    rss
}

async fn create(cluster: &mut FjordCluster, shape: &Shape, per_request: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = client_config(&cluster.bootstrap())
        .set("socket.timeout.ms", "300000")
        .create()
        .expect("admin client");
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(280)))
        .request_timeout(Some(Duration::from_secs(290)));
    for chunk in shape.topics.chunks(per_request.max(1)) {
        let new: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(shape.rf)))
            .collect();
        for r in admin
            .create_topics(&new, &opts)
            .await
            .expect("CreateTopics")
        {
            if let Err((t, e)) = r {
                panic!("CreateTopics {t}: {e}");
            }
        }
    }
}

fn wait_healthy(cluster: &mut FjordCluster, shape: &Shape) {
    for (t, n) in &shape.topics {
        cluster.wait_for_healthy_topic(t, *n, STEP);
    }
}

async fn produce_each(bootstrap: &str, shape: &Shape) {
    let p: FutureProducer = client_config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.messages", "2000000")
        .set("message.timeout.ms", "600000")
        .set("request.timeout.ms", "120000")
        .set("socket.timeout.ms", "120000")
        .create()
        .expect("producer");
    let mut acks = Vec::with_capacity(shape.partitions());
    for (t, n) in &shape.topics {
        for part in 0..*n {
            let value = format!("{t}/{part}");
            let rec = FutureRecord::<(), _>::to(t).partition(part).payload(&value);
            acks.push(p.send_result(rec).map_err(|(e, _)| e).expect("queued"));
        }
    }
    for ack in acks {
        ack.await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("produce acknowledged");
    }
}

/// Reads every partition from the beginning; returns the time to the first record too.
fn fetch_each(bootstrap: &str, shape: &Shape) -> Duration {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", "bench-scale-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("socket.timeout.ms", "120000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (t, n) in &shape.topics {
        for part in 0..*n {
            tpl.add_partition_offset(t, part, Offset::Beginning)
                .expect("add partition");
        }
    }
    let start = Instant::now();
    c.assign(&tpl).expect("assign");
    let first = consume_n(&c, 1, STEP).expect("a first record");
    let to_first = start.elapsed();
    let rest = consume_n(&c, shape.partitions() - 1, STEP).expect("every record read back");
    let mut seen: Vec<(String, i32)> = first
        .iter()
        .chain(&rest)
        .map(|m| {
            let v = String::from_utf8_lossy(m.payload().expect("value")).into_owned();
            assert_eq!(v, format!("{}/{}", m.topic(), m.partition()));
            (m.topic().to_owned(), m.partition())
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        shape.partitions(),
        "each partition's record once"
    );
    to_first
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: bench/scale"]
async fn bench_scale_partitions() {
    bounded(LIMIT, async {
        let partitions = env("SCALE_PARTITIONS", 30_000);
        let topics = env("SCALE_TOPICS", 30).max(1);
        let shape = Shape {
            nodes: env("SCALE_NODES", 1),
            rf: env("SCALE_RF", 1) as i32,
            topics: (0..topics)
                .map(|i| {
                    let n = partitions / topics + usize::from(i < partitions % topics);
                    (format!("scale-{i}"), n as i32)
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        };
        let replicas = shape.partitions() * shape.rf as usize;
        println!(
            "BENCH scale: {} partitions in {} topics, RF={}, {} node(s): {replicas} replicas",
            shape.partitions(),
            shape.topics.len(),
            shape.rf,
            shape.nodes
        );
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::defaults(shape.nodes)));
        let before = report(&cluster, "idle, no topics");

        let start = Instant::now();
        create(&mut cluster, &shape, env("SCALE_TOPICS_PER_REQUEST", 10)).await;
        let answered = start.elapsed();
        block_in_place(|| wait_healthy(&mut cluster, &shape));
        println!(
            "BENCH scale create: CreateTopics answered after {answered:.1?}, every partition led and in sync after {:.1?}",
            start.elapsed()
        );
        let created = report(&cluster, "after create (idle partitions)");
        for (b, a) in before.iter().zip(&created) {
            let per = (a.saturating_sub(*b) * 1024) as f64 / (replicas as f64 / shape.nodes as f64);
            println!("BENCH scale memory per idle partition replica: {per:.0} bytes");
        }

        let bootstrap = cluster.bootstrap();
        let start = Instant::now();
        produce_each(&bootstrap, &shape).await;
        println!("BENCH scale produce: one record to each partition (acks=all) in {:.1?}", start.elapsed());
        let start = Instant::now();
        let to_first = block_in_place(|| fetch_each(&bootstrap, &shape));
        println!(
            "BENCH scale fetch: every record read back in {:.1?} (first after {to_first:.1?})",
            start.elapsed()
        );
        report(&cluster, "after produce and fetch");

        for id in cluster.ids() {
            let node = cluster.node_mut(id);
            let start = Instant::now();
            let status = node.stop_within(STEP);
            println!("BENCH scale restart: node {id} stopped (SIGTERM) in {:.1?}: {status}", start.elapsed());
        }
        let start = Instant::now();
        for id in cluster.ids() {
            cluster.node_mut(id).spawn().expect("spawn");
        }
        for id in cluster.ids() {
            let node = cluster.node_mut(id);
            let until = Instant::now() + STEP;
            while !matches!(node.http_get("/readyz"), Ok((200, _))) {
                assert!(Instant::now() < until, "node {id} not ready");
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("BENCH scale restart: node {id} /readyz 200 after {:.1?}", start.elapsed());
            node.wait_ready_within(STEP).expect("ready");
        }
        block_in_place(|| wait_healthy(&mut cluster, &shape));
        println!("BENCH scale restart: every partition led and in sync after {:.1?}", start.elapsed());
        let fetch_start = Instant::now();
        let to_first = block_in_place(|| fetch_each(&bootstrap, &shape));
        println!(
            "BENCH scale restart: first record fetched {:.1?} after start, all {} in {:.1?} more",
            fetch_start.duration_since(start) + to_first,
            shape.partitions(),
            fetch_start.elapsed()
        );
        report(&cluster, "after restart and fetch");
    })
    .await;
}
