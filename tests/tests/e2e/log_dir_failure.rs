//! A log directory that fails for real: a node whose log dir is a 2 MiB tmpfs is filled with
//! acks=1 produce until the disk is full (ENOSPC). The node must answer KAFKA_STORAGE_ERROR (or
//! close), then exit with status 1, like Kafka's "Shutdown broker because all log dirs in … have
//! failed"; and every record acknowledged before must still be in the log once the node restarts
//! on a bigger copy of its data.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fjord_e2e::{
    assign_from, bounded, client_config, consumer, create_topic, fjord_bin, probe_metadata,
    reserve_port, tail, topic_name, wait_for,
};
use rdkafka::Offset;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const LIMIT: Duration = Duration::from_secs(60);
const PAYLOAD_BYTES: usize = 16 * 1024;
/// 4.7 MiB of records for a 2 MiB log dir.
const RECORDS: usize = 300;

/// A size-limited tmpfs mounted on a directory (unmounted on drop). The tests run as root; a
/// failed mount fails the test with the reason.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs -o size={size} tmpfs {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

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

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not exit within {timeout:?} after its log dir filled up\n{}",
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_dir_stops_the_node_and_keeps_acknowledged_records() {
    bounded(LIMIT, async {
        // Phase 1: a node whose log dir (DATA/logs) is a 2 MiB tmpfs.
        let root = tempfile::Builder::new()
            .prefix("fjord-e2e-logdir-")
            .tempdir()
            .expect("temp dir");
        let data = root.path().join("small");
        let tmpfs = Tmpfs::mount(&data.join("logs"), "2m");
        let (kafka, http) = (reserve_port(), reserve_port());
        let log = fjord_e2e_log(root.path());
        let mut node = Node::start(&data, kafka.port(), http.port(), &log);
        let topic = topic_name("logdir-full");
        create_topic(&node.bootstrap, &topic, 1).await;

        // Phase 2: fill it with acks=1 produce (no retries: each answer is what the node said).
        let producer: FutureProducer = client_config(&node.bootstrap)
            .set("acks", "1")
            .set("linger.ms", "5")
            .set("enable.idempotence", "false")
            .set("retries", "0")
            .set("message.timeout.ms", "10000")
            .set("request.timeout.ms", "5000")
            .create()
            .expect("create producer");
        let mut deliveries = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let key = format!("k{i}");
            let value = payload(i);
            let record = FutureRecord::to(&topic)
                .partition(0)
                .key(&key)
                .payload(&value);
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
        }
        let mut acked: BTreeMap<i64, usize> = BTreeMap::new();
        let mut errors: Vec<KafkaError> = Vec::new();
        for (i, delivery) in deliveries.into_iter().enumerate() {
            match delivery.await.expect("delivery future") {
                Ok(d) => {
                    acked.insert(d.offset, i);
                }
                Err((e, _)) => errors.push(e),
            }
        }
        assert!(
            !acked.is_empty(),
            "nothing was acknowledged before the disk filled up; errors: {errors:?}"
        );
        assert!(
            !errors.is_empty(),
            "{RECORDS} records of {PAYLOAD_BYTES} bytes all fit in a 2 MiB log dir?"
        );
        assert!(
            errors.iter().any(|e| e.rdkafka_error_code() == Some(RDKafkaErrorCode::KafkaStorageError)),
            "no produce was answered KAFKA_STORAGE_ERROR; errors: {errors:?}\n{}",
            tail(&log, 40)
        );

        // Phase 3: the node stops on its own, with exit code 1, saying why.
        let status = tokio::task::block_in_place(|| node.wait_exit(Duration::from_secs(25)));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(status.code(), Some(1), "exit status {status}\n{}", tail(&log, 40));
        assert!(
            text.contains("log directory failed"),
            "no log directory failure in the node log\n{}",
            tail(&log, 40)
        );
        assert!(!text.contains("panicked"), "the node panicked\n{}", tail(&log, 60));
        drop(node);

        // Phase 4: restart on a bigger copy of the data: every acknowledged record is there.
        let big = root.path().join("big");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&data)
            .arg(&big)
            .status()
            .expect("run cp");
        assert!(copied.success(), "cp -a {} {}", data.display(), big.display());
        drop(tmpfs);
        let node = Node::start(&big, kafka.port(), http.port(), &log);
        let c = consumer(&node.bootstrap);
        assign_from(&c, &topic, &[0], Offset::Beginning);
        let last = *acked.keys().next_back().expect("acked");
        let mut stored: BTreeMap<i64, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while stored.keys().next_back().is_none_or(|&o| o < last) {
            assert!(
                Instant::now() < deadline,
                "after the restart the log ends at {:?}, below the last acknowledged offset {last}",
                stored.keys().next_back()
            );
            if let Some(Ok(m)) = tokio::task::block_in_place(|| c.poll(Duration::from_millis(200))) {
                let key = m.key().unwrap_or_default().to_vec();
                let value = m.payload().unwrap_or_default().to_vec();
                stored.insert(m.offset(), (key, value));
            }
        }
        for (offset, i) in &acked {
            let (key, value) = stored
                .get(offset)
                .unwrap_or_else(|| panic!("acknowledged record {i} at offset {offset} is gone"));
            assert_eq!(key, format!("k{i}").as_bytes(), "key at offset {offset}");
            assert!(*value == payload(*i), "value of record {i} at offset {offset} differs");
        }
        eprintln!(
            "acknowledged {} of {RECORDS} records before the disk filled up; all {} found after the restart",
            acked.len(),
            acked.len()
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
