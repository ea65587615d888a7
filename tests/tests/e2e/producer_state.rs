//! Producer state kept with the log: a follower that becomes leader knows every
//! idempotent producer's sequence (so a retry after a leader's SIGKILL is answered
//! as the duplicate it is, even when the producer last wrote several segments
//! ago), and a restarted node loads producer state from its snapshot instead of
//! rescanning its segments.

use std::time::{Duration, Instant};

use fjord_e2e::{
    ClusterOptions, FjordCluster, KafkaConn, assign_from, bounded, consume_n, consumer,
    expect_no_more, topic_name,
};
use rdkafka::Message;
use rdkafka::Offset;
use tokio::task::block_in_place;

use super::idempotence::{batch, filler, init_producer_id, produce_request};

const LIMIT: Duration = Duration::from_secs(150);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const FAILOVER: Duration = Duration::from_secs(20);
const REJOIN: Duration = Duration::from_secs(30);
/// Segments this small roll after every filler batch: a producer's batches
/// soon lie outside the last two segments, which is all that a rebuild on
/// becoming leader (the behaviour before followers kept producer state) scans.
const SEGMENT_BYTES: &str = "1024";
const FILLER_BYTES: usize = 700;
/// Sequences the failover test writes.
const SEQUENCES: i32 = 40;

/// Errors a producer retries (the leader moved or is still catching up).
const RETRIABLE: [i16; 7] = [
    3,  // UNKNOWN_TOPIC_OR_PARTITION
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    7,  // REQUEST_TIMED_OUT
    19, // NOT_ENOUGH_REPLICAS
    20, // NOT_ENOUGH_REPLICAS_AFTER_APPEND
    56, // KAFKA_STORAGE_ERROR
];

/// Produce `records` (acks=all) to partition 0's current leader, retrying as a
/// client does (same batch, same sequence) until it is acknowledged; its base offset.
fn produce_with_retries(cluster: &mut FjordCluster, topic: &str, records: &bytes::Bytes) -> i64 {
    let deadline = Instant::now() + FAILOVER * 2;
    let mut last = String::new();
    while Instant::now() < deadline {
        let live = cluster.live_ids();
        let leader = live
            .iter()
            .find_map(|&id| cluster.partition_from(id, topic, 0))
            .map(|s| s.leader)
            .filter(|l| live.contains(l));
        if let Some(leader) = leader {
            let addr = cluster.node(leader).bootstrap();
            match KafkaConn::connect(&addr, IO_TIMEOUT)
                .and_then(|mut conn| conn.request(9, &produce_request(topic, records.clone())))
            {
                Ok(response) => {
                    let p = &response.responses[0].partition_responses[0];
                    if p.error_code == 0 {
                        return p.base_offset;
                    }
                    assert!(
                        RETRIABLE.contains(&p.error_code),
                        "produce answered error {} from node {leader}",
                        p.error_code
                    );
                    last = format!("error {} from node {leader}", p.error_code);
                }
                Err(e) => last = format!("node {leader}: {e:#}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no acknowledgement within {:?}; last: {last}", FAILOVER * 2)
}

/// Every record of partition 0 as (offset, value), read from the beginning.
fn read_all(bootstrap: &str, topic: &str, n: usize) -> Vec<(i64, String)> {
    let c = consumer(bootstrap);
    assign_from(&c, topic, &[0], Offset::Beginning);
    let msgs = consume_n(&c, n, Duration::from_secs(30)).expect("read back");
    expect_no_more(&c, Duration::from_millis(500)).expect("nothing more");
    msgs.iter()
        .map(|m| {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            (m.offset(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_answers_retries_after_the_leader_is_killed_with_no_duplicate_or_gap() {
    bounded(LIMIT, async {
        // Phase 1: three nodes, one partition with RF=3, min.insync.replicas=2 and tiny segments.
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        let topic = topic_name("pstate-failover");
        cluster
            .create_topic(
                &topic,
                1,
                3,
                &[
                    ("min.insync.replicas", "2"),
                    ("segment.bytes", SEGMENT_BYTES),
                ],
            )
            .await;
        let init = block_in_place(|| {
            let mut conn =
                KafkaConn::connect(&cluster.node(1).bootstrap(), IO_TIMEOUT).expect("connect");
            init_producer_id(&mut conn)
        });
        assert_eq!(init.error_code, 0);
        let (pid, epoch) = (init.producer_id.0, init.producer_epoch);

        block_in_place(|| {
            // Phase 2: the producer writes sequences 0..6, then other writers fill
            // four segments: its batches are now outside the last two segments.
            let mut offsets = Vec::new();
            for seq in 0..6 {
                offsets.push(produce_with_retries(
                    &mut cluster,
                    &topic,
                    &batch(pid, epoch, seq, 1),
                ));
            }
            assert_eq!(offsets, (0..6).collect::<Vec<i64>>());
            for _ in 0..4 {
                produce_with_retries(&mut cluster, &topic, &filler(FILLER_BYTES));
            }

            // Phase 3: SIGKILL the leader. The producer never saw its last ack and
            // retries on the new leader, a former follower: the same offset, written once.
            let before = cluster.partition_from(1, &topic, 0).expect("partition");
            cluster.kill9(before.leader);
            cluster.wait_for_partition(&topic, 0, FAILOVER, "a new leader", |s| {
                s.leader >= 0 && s.leader != before.leader && s.leader_epoch > before.leader_epoch
            });
            let retried = produce_with_retries(&mut cluster, &topic, &batch(pid, epoch, 5, 1));
            assert_eq!(retried, 5, "the retry is answered as the duplicate it is");
            cluster.restart(before.leader);
            cluster
                .wait_for_partition(&topic, 0, REJOIN, "the full ISR back", |s| s.isr.len() == 3);

            // Phase 4: the producer keeps writing (retrying every unacknowledged
            // batch) while another thread SIGKILLs the current leader mid-stream.
            let leader = cluster
                .partition_from(1, &topic, 0)
                .expect("partition")
                .leader;
            let leader_pid = cluster.node(leader).pid().expect("leader runs");
            let (go, kill_now) = std::sync::mpsc::channel::<()>();
            let killer = std::thread::spawn(move || {
                if kill_now.recv().is_ok() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &leader_pid.to_string()])
                        .status();
                }
            });
            for seq in 6..SEQUENCES {
                if seq == 20 {
                    go.send(()).expect("killer thread");
                }
                produce_with_retries(&mut cluster, &topic, &batch(pid, epoch, seq, 1));
            }
            killer.join().expect("killer thread");
            assert!(
                !cluster.live_ids().contains(&leader),
                "the leader was killed"
            );
            cluster.kill9(leader); // reap it: the harness fails on nodes that died by themselves

            // Phase 5: the log holds every sequence once, in order, at dense offsets.
            let total = SEQUENCES as usize + 4;
            let records = read_all(&cluster.bootstrap(), &topic, total);
            let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
            assert_eq!(offsets, (0..total as i64).collect::<Vec<i64>>(), "no gap");
            let seqs: Vec<String> = records
                .iter()
                .filter(|(_, v)| v.starts_with("seq "))
                .map(|(_, v)| v.clone())
                .collect();
            let expected: Vec<String> = (0..SEQUENCES).map(|s| format!("seq {s}")).collect();
            assert_eq!(seqs, expected, "each sequence once, in order");
        });
    })
    .await;
}

/// The "loaded producer state" line of start number `start` for the partition
/// directory of `topic`-0: (snapshot_offset field, batches_replayed).
fn load_line(log: &str, start: usize, topic: &str) -> (String, u64) {
    let marker = format!("=== fjord-e2e: start #{start} ");
    let from = log
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the node log"));
    let line = log[from..]
        .lines()
        .find(|l| l.contains("loaded producer state") && l.contains(&format!("{topic}-0 ")))
        .unwrap_or_else(|| panic!("no producer state load of {topic}-0 after {marker:?}"));
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_string()
    };
    let replayed = field("batches_replayed").parse().expect("a count");
    (field("snapshot_offset"), replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_loads_producer_state_from_its_snapshot() {
    bounded(LIMIT, async {
        // Phase 1: one node, tiny segments; a producer writes around other writers.
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(1)));
        let topic = topic_name("pstate-restart");
        cluster
            .create_topic(&topic, 1, 1, &[("segment.bytes", SEGMENT_BYTES)])
            .await;
        block_in_place(|| {
            let mut conn =
                KafkaConn::connect(&cluster.node(1).bootstrap(), IO_TIMEOUT).expect("connect");
            let init = init_producer_id(&mut conn);
            let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
            let send = |cluster: &mut FjordCluster, seq: i32| {
                produce_with_retries(cluster, &topic, &batch(pid, epoch, seq, 1))
            };
            for seq in 0..3 {
                send(&mut cluster, seq);
            }
            for _ in 0..3 {
                produce_with_retries(&mut cluster, &topic, &filler(FILLER_BYTES));
            }
            let last = send(&mut cluster, 3);
            assert_eq!(last, 6);

            // Phase 2: a graceful restart snapshots at the log end on close; the
            // load replays nothing, and a retry is still a duplicate.
            cluster.restart(1);
            let log = std::fs::read_to_string(cluster.node(1).log_path()).expect("node log");
            assert_eq!(load_line(&log, 2, &topic), ("Some(7)".to_string(), 0));
            assert_eq!(send(&mut cluster, 3), last, "a retry after the restart");

            // Phase 3: after a SIGKILL only the batches since the last roll's
            // snapshot are replayed; retries are still recognised.
            assert_eq!(send(&mut cluster, 4), 7);
            produce_with_retries(&mut cluster, &topic, &filler(FILLER_BYTES));
            let last = send(&mut cluster, 5);
            cluster.kill9(1);
            cluster.restart(1);
            let log = std::fs::read_to_string(cluster.node(1).log_path()).expect("node log");
            let (snapshot, replayed) = load_line(&log, 3, &topic);
            assert!(
                snapshot.starts_with("Some("),
                "loaded from a roll's snapshot: {snapshot}"
            );
            assert!(
                (1..=3).contains(&replayed),
                "only the tail: {replayed} batches"
            );
            assert_eq!(send(&mut cluster, 5), last, "a retry after the crash");
        });
    })
    .await;
}
