//! A full log directory, for real: a node whose log dir is a 4 MiB tmpfs of the test's own is
//! filled (a filler file, then acks=1 produce) until writes fail with ENOSPC. The node must
//! answer KAFKA_STORAGE_ERROR and stay up (no exit, no panic), keep every record acknowledged
//! before readable, and accept writes again without a restart once space is freed — by deleting
//! the filler file, and then by DeleteRecords — with a log that recovery finds whole after a
//! restart (a failed partial append was cut back). Kafka stops the broker on a full disk; users
//! expect it to heal. Other I/O errors still stop the node (unit tests in
//! `fjord-broker`'s `log_dir_failure`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fjord_e2e::{
    assign_from, bounded, cli_ok, client_config, consumer, fjord_bin, probe_metadata, reserve_port,
    run_cli, tail, topic_name, wait_for,
};
use fjord_log::testing::Tmpfs;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const LIMIT: Duration = Duration::from_secs(60);
const PAYLOAD_BYTES: usize = 16 * 1024;
/// 9.4 MiB of records for an 8 MiB log dir with 3 MiB of filler files: more than fits.
const RECORDS: usize = 600;

/// `fjord dev` on `data_dir`, killed on drop.
struct Node {
    child: Child,
    bootstrap: String,
    log: PathBuf,
}

impl Node {
    fn start(data_dir: &Path, kafka: u16, http: u16, log: &Path) -> Self {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open node log");
        let bootstrap = format!("127.0.0.1:{kafka}");
        let child = Command::new(fjord_bin())
            .arg("dev")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--kafka-addr")
            .arg(&bootstrap)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn fjord");
        let node = Node {
            child,
            bootstrap,
            log: log.to_path_buf(),
        };
        wait_for(
            Duration::from_secs(20),
            "the node to serve Metadata",
            || {
                probe_metadata(&node.bootstrap)
                    .ok()
                    .filter(|md| !md.brokers.is_empty())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&node.log, 40)));
        node
    }

    /// SIGTERM, then wait for a clean exit (status 0).
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop within 20 s of SIGTERM\n{}",
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "the node stopped with {status}\n{}",
            tail(&self.log, 40)
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("{i:08}|").into_bytes().repeat(PAYLOAD_BYTES / 9)
}

/// acks=1, no retries: each answer is what the node said.
fn strict_producer(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        // Batches well below the topic's 256 KiB segments.
        .set("batch.size", "65536")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .set("request.timeout.ms", "5000")
        .create()
        .expect("create producer")
}

/// Records `from..from + n`, sent at once; returns (offset → record index) of the acknowledged
/// ones and the errors of the others.
async fn produce_batch(
    producer: &FutureProducer,
    topic: &str,
    from: usize,
    n: usize,
) -> (BTreeMap<i64, usize>, Vec<KafkaError>) {
    let mut deliveries = Vec::with_capacity(n);
    for i in from..from + n {
        let key = format!("k{i}");
        let value = payload(i);
        let record = FutureRecord::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        deliveries.push((
            i,
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        ));
    }
    let mut acked = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, delivery) in deliveries {
        match delivery.await.expect("delivery future") {
            Ok(d) => {
                acked.insert(d.offset, i);
            }
            Err((e, _)) => errors.push(e),
        }
    }
    (acked, errors)
}

/// Produce until the disk is full: at least one record refused, every refusal
/// KAFKA_STORAGE_ERROR. Returns the acknowledged records.
async fn fill(
    producer: &FutureProducer,
    topic: &str,
    from: usize,
    log: &Path,
) -> BTreeMap<i64, usize> {
    let (acked, errors) = produce_batch(producer, topic, from, RECORDS).await;
    assert!(
        !errors.is_empty(),
        "{RECORDS} records of {PAYLOAD_BYTES} bytes all fit in the log dir?"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.rdkafka_error_code() == Some(RDKafkaErrorCode::KafkaStorageError)),
        "a produce to the full disk was answered other than KAFKA_STORAGE_ERROR: {:?}\n{}",
        &errors[..errors.len().min(3)],
        tail(log, 40)
    );
    acked
}

/// Produce single records until one is acknowledged (the disk has room again).
async fn produce_until_accepted(
    producer: &FutureProducer,
    topic: &str,
    from: usize,
    log: &Path,
) -> (i64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = from;
    loop {
        let (acked, errors) = produce_batch(producer, topic, i, 1).await;
        if let Some((&offset, &index)) = acked.iter().next() {
            return (offset, index);
        }
        assert!(
            Instant::now() < deadline,
            "writes still refused 20 s after space was freed: {errors:?}\n{}",
            tail(log, 40)
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record in `acked` is in the partition with its key and value; returns the log end seen.
fn check_readable(bootstrap: &str, topic: &str, acked: &BTreeMap<i64, usize>, from: Offset) {
    let c = consumer(bootstrap);
    assign_from(&c, topic, &[0], from);
    let last = *acked.keys().next_back().expect("acked");
    let mut stored: BTreeMap<i64, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored.keys().next_back().is_none_or(|&o| o < last) {
        assert!(
            Instant::now() < deadline,
            "the log ends at {:?}, below the last acknowledged offset {last}",
            stored.keys().next_back()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let key = m.key().unwrap_or_default().to_vec();
            let value = m.payload().unwrap_or_default().to_vec();
            stored.insert(m.offset(), (key, value));
        }
    }
    for (offset, i) in acked {
        let (key, value) = stored
            .get(offset)
            .unwrap_or_else(|| panic!("acknowledged record {i} at offset {offset} is gone"));
        assert_eq!(key, format!("k{i}").as_bytes(), "key at offset {offset}");
        assert!(
            *value == payload(*i),
            "value of record {i} at offset {offset} differs"
        );
    }
}

fn assert_up(node: &mut Node, what: &str) {
    if let Some(status) = node.child.try_wait().expect("try_wait") {
        panic!("the node exited ({status}) {what}\n{}", tail(&node.log, 60));
    }
    probe_metadata(&node.bootstrap).unwrap_or_else(|e| {
        panic!(
            "the node does not answer Metadata {what}: {e:#}\n{}",
            tail(&node.log, 60)
        )
    });
}

/// DeleteRecords of everything below the high watermark (-1), through the CLI.
fn delete_all_records(node: &Node, topic: &str) -> String {
    let args = [
        "topic",
        "delete-records",
        "--topic",
        topic,
        "--partition",
        "0",
        "--offset",
        "-1",
    ];
    let out = run_cli(&node.bootstrap, &args, None, Duration::from_secs(30));
    cli_ok(&args, &out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_dir_refuses_writes_until_space_is_freed() {
    bounded(LIMIT, async {
        // Phase 1: a node whose log dir (DATA/logs) is an 8 MiB tmpfs, 1 MiB of it a filler file
        // and 2 MiB a reserve file (deleted after the restart in phase 5).
        let root = tempfile::Builder::new()
            .prefix("fjord-e2e-logdir-")
            .tempdir()
            .expect("temp dir");
        let data = root.path().join("small");
        let logs = data.join("logs");
        let _tmpfs = Tmpfs::mount(&logs, "8m");
        let filler = logs.join("filler");
        std::fs::write(&filler, vec![0u8; 1 << 20]).expect("write the filler file");
        let reserve = logs.join("reserve");
        std::fs::write(&reserve, vec![0u8; 2 << 20]).expect("write the reserve file");
        let (kafka, http) = (reserve_port(), reserve_port());
        let log = fjord_e2e_log(root.path());
        let mut node = Node::start(&data, kafka.port(), http.port(), &log);
        let topic = topic_name("logdir-full");
        // 256 KiB segments: DeleteRecords can then free whole segments.
        let args = [
            "topic",
            "create",
            &topic,
            "--config",
            "segment.bytes=262144",
        ];
        cli_ok(
            &args,
            &run_cli(&node.bootstrap, &args, None, Duration::from_secs(30)),
        );
        let producer = strict_producer(&node.bootstrap);

        // Phase 2: fill the disk. Refusals are KAFKA_STORAGE_ERROR; the node stays up, warns
        // once, never says the log dir failed, and serves what it acknowledged.
        let mut acked = fill(&producer, &topic, 0, &log).await;
        assert!(
            !acked.is_empty(),
            "nothing acknowledged before the disk filled up"
        );
        let first_fill = acked.len();
        tokio::task::block_in_place(|| {
            check_readable(&node.bootstrap, &topic, &acked, Offset::Beginning);
            assert_up(&mut node, "after its disk filled up");
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("log directory is full"),
            "no full-disk warning\n{}",
            tail(&log, 40)
        );
        assert!(
            !text.contains("log directory failed"),
            "the log dir was taken offline\n{}",
            tail(&log, 40)
        );

        // Phase 3: deleting the filler file makes room; writes are accepted again, no restart.
        std::fs::remove_file(&filler).expect("remove the filler file");
        let (offset, i) = produce_until_accepted(&producer, &topic, 10_000, &log).await;
        acked.insert(offset, i);
        let more = fill(&producer, &topic, 20_000, &log).await;
        assert!(
            !more.is_empty(),
            "nothing acknowledged after the filler file was deleted"
        );
        acked.extend(more);
        tokio::task::block_in_place(|| {
            check_readable(&node.bootstrap, &topic, &acked, Offset::Beginning);
            assert_up(&mut node, "after its disk filled up again");
        });

        // Phase 4: full again; DeleteRecords below the high watermark frees the old segments.
        let out = tokio::task::block_in_place(|| delete_all_records(&node, &topic));
        let hw = acked.keys().next_back().expect("acked") + 1;
        assert!(out.contains(&format!("low_watermark: {hw}")), "{out}");
        let (offset, i) = produce_until_accepted(&producer, &topic, 30_000, &log).await;
        assert_eq!(offset, hw, "the first record after DeleteRecords");
        let mut after: BTreeMap<i64, usize> = BTreeMap::from([(offset, i)]);
        after.extend(fill(&producer, &topic, 40_000, &log).await);
        tokio::task::block_in_place(|| {
            check_readable(&node.bootstrap, &topic, &after, Offset::Offset(hw));
            assert_up(&mut node, "after DeleteRecords and a third fill");
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("log directory accepts writes again"),
            "\n{}",
            tail(&log, 40)
        );
        assert!(
            !text.contains("panicked"),
            "the node panicked\n{}",
            tail(&log, 60)
        );

        // Phase 5: a clean stop and a restart on the same, still full, disk: the node comes up
        // (no crash loop) though the partition cannot lead until it can write its new leader
        // epoch; deleting the reserve file lets it lead again without another restart, with
        // exactly the acknowledged records (failed appends were cut back, recovery cut nothing).
        drop(producer);
        tokio::task::block_in_place(|| node.stop());
        let mut node = Node::start(&data, kafka.port(), http.port(), &log);
        tokio::task::block_in_place(|| assert_up(&mut node, "after a restart on a full disk"));
        std::fs::remove_file(&reserve).expect("remove the reserve file");
        tokio::task::block_in_place(|| {
            check_readable(&node.bootstrap, &topic, &after, Offset::Offset(hw));
            let c = consumer(&node.bootstrap);
            let (low, high) = c
                .fetch_watermarks(&topic, 0, Duration::from_secs(10))
                .expect("watermarks");
            let last = *after.keys().next_back().expect("acked");
            assert_eq!((low, high), (hw, last + 1), "the log after the restart");
            assert_up(&mut node, "after the restart");
        });
        eprintln!(
            "acknowledged {first_fill} records before the disk first filled up, {} in all; \
             writes resumed after deleting the filler file and after DeleteRecords",
            acked.len() + after.len() - 1
        );
    })
    .await;
}

/// A 3-node cluster, RF=3, where one follower's log dir is a 4 MiB tmpfs that fills up: the
/// leader keeps accepting writes, the full follower stays up and drops out of the ISR, and once a
/// filler file is deleted it catches up and rejoins, with every acknowledged record on the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_follower_leaves_the_isr_and_rejoins_once_space_is_freed() {
    use fjord_e2e::FjordCluster;
    bounded(Duration::from_secs(120), async {
        let settle = Duration::from_secs(30);
        let mut cluster = tokio::task::block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("full-follower");
        cluster
            .create_topic(&topic, 1, 3, &[("segment.bytes", "262144")])
            .await;
        let start = tokio::task::block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, settle, "3 replicas in sync", |p| {
                p.leader >= 0 && p.isr.len() == 3
            })
        });
        let follower = *start
            .replicas
            .iter()
            .find(|&&r| r != start.leader)
            .expect("rf 3");

        // Phase 1: the follower's log dir moves onto a 4 MiB tmpfs (stopped, copied, restarted),
        // 3 MiB of it a filler file.
        let logs = cluster.node(follower).data_dir().join("logs");
        let aside = cluster.node(follower).data_dir().join("logs-aside");
        tokio::task::block_in_place(|| cluster.stop(follower));
        std::fs::rename(&logs, &aside).expect("move the log dir aside");
        let _tmpfs = Tmpfs::mount(&logs, "4m");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", aside.display()))
            .arg(&logs)
            .status()
            .expect("run cp");
        assert!(copied.success(), "cp -a into the tmpfs");
        let filler = logs.join("filler");
        std::fs::write(&filler, vec![0u8; 3 << 20]).expect("write the filler file");
        tokio::task::block_in_place(|| cluster.restart(follower));
        tokio::task::block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, settle, "the follower back in sync", |p| {
                p.isr.len() == 3
            })
        });

        // Phase 2: 2.3 MiB of acks=1 records: the leader takes them all; the follower's
        // disk fills, it stays up and leaves the ISR.
        let producer = strict_producer(&cluster.bootstrap());
        let (acked, errors) = produce_batch(&producer, &topic, 0, 150).await;
        assert!(
            errors.is_empty(),
            "the leader refused records: {:?}",
            &errors[..errors.len().min(3)]
        );
        tokio::task::block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, settle, "the full follower out of the ISR", |p| {
                !p.isr.contains(&follower)
            })
        });
        let node_log = cluster.node(follower).log();
        assert!(
            node_log.contains("log directory is full"),
            "no full-disk warning on the follower"
        );
        assert!(
            !node_log.contains("log directory failed"),
            "the follower's log dir went offline"
        );
        assert!(
            cluster.node_mut(follower).is_running(),
            "the full follower exited"
        );

        // Phase 3: room again: it catches up and rejoins, no restart.
        std::fs::remove_file(&filler).expect("remove the filler file");
        tokio::task::block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, settle, "the follower back in the ISR", |p| {
                p.isr.contains(&follower)
            })
        });
        tokio::task::block_in_place(|| {
            check_readable(&cluster.bootstrap(), &topic, &acked, Offset::Beginning);
        });
        assert!(
            cluster
                .node(follower)
                .log()
                .contains("log directory accepts writes again")
        );
    })
    .await;
}

/// Where the node's output goes (kept beside the other e2e logs when FJORD_E2E_LOG_DIR is set).
fn fjord_e2e_log(root: &Path) -> PathBuf {
    match std::env::var_os("FJORD_E2E_LOG_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            dir.join(format!("log_dir_failure-{}.log", std::process::id()))
        }
        None => root.join("node.log"),
    }
}
