//! DeleteRecords (API 21) on a 3-node cluster, RF=3: the leader's answer is the low watermark
//! (the smallest log start over the ISR, so every replica has moved), Kafka's errors for the
//! wrong broker, an unknown partition and an offset past the high watermark; consumers see the
//! new log start (ListOffsets EARLIEST, a fetch below it resets); followers keep the new log
//! start on disk, also across a restart; and `fjord topic delete-records` does the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_e2e::{
    FjordCluster, KafkaConn, assign_from, bounded, cli_ok, consume_n, consumer, producer,
    topic_name, wait_for,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(30);
const RECORDS: i64 = 100;

fn log_start_checkpoint(data_dir: &Path, topic: &str) -> Option<i64> {
    let path: PathBuf = data_dir
        .join("logs")
        .join(format!("{topic}-0"))
        .join("log-start-offset-checkpoint");
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// DeleteRecords v2 of `(topic, partition, offset)` sent to node `via`: (error code, low watermark).
fn delete_records(
    cluster: &FjordCluster,
    via: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let mut conn = KafkaConn::connect(&cluster.node(via).bootstrap(), Duration::from_secs(10))
        .expect("connect");
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ]);
    let resp: DeleteRecordsResponse = conn.request(2, &req).expect("DeleteRecords");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_every_replicas_log_start() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("delrec");
        // Small segments, so that deleting records deletes segment files.
        cluster
            .create_topic(&topic, 1, 3, &[("segment.bytes", "1024")])
            .await;
        let start = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "3 replicas in sync", |p| {
                p.leader >= 0 && p.isr.len() == 3
            })
        });
        let leader = start.leader;
        let followers: Vec<i32> = start
            .replicas
            .iter()
            .copied()
            .filter(|&r| r != leader)
            .collect();

        // Phase 1: 100 records, acknowledged by all replicas.
        let prod = producer(&cluster.bootstrap(), "all", "none");
        for i in 0..RECORDS {
            let payload = format!("record-{i:03}-{}", "x".repeat(40));
            prod.send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
        }

        // Phase 2: Kafka's errors.
        block_in_place(|| {
            assert_eq!(
                delete_records(&cluster, leader, &topic, 0, RECORDS + 1).0,
                1,
                "past the HW"
            );
            assert_eq!(
                delete_records(&cluster, followers[0], &topic, 0, 10).0,
                6,
                "not leader"
            );
            assert_eq!(
                delete_records(&cluster, leader, &topic, 7, 10).0,
                3,
                "unknown partition"
            );
        });

        // Phase 3: delete below 40; the answer is the ISR's low watermark.
        let (code, low_watermark) =
            block_in_place(|| delete_records(&cluster, leader, &topic, 0, 40));
        assert_eq!((code, low_watermark), (0, 40));
        for id in cluster.ids() {
            assert_eq!(
                log_start_checkpoint(&cluster.node(id).data_dir(), &topic),
                Some(40),
                "node {id}'s log start offset"
            );
        }

        // Phase 4: consumers see it: EARLIEST is 40, and a fetch below it resets there.
        let c = consumer(&cluster.bootstrap());
        let (low, high) = block_in_place(|| {
            c.fetch_watermarks(&topic, 0, Duration::from_secs(10))
                .expect("watermarks")
        });
        assert_eq!((low, high), (40, RECORDS));
        assign_from(&c, &topic, &[0], Offset::Offset(10));
        let first = block_in_place(|| consume_n(&c, 1, Duration::from_secs(20))).expect("consume");
        assert_eq!(first[0].offset(), 40);

        // Phase 5: the CLI, by flags, then with Kafka's offsets file and -1 (the high
        // watermark).
        let args = [
            "topic",
            "delete-records",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--offset",
            "60",
        ];
        let out = block_in_place(|| cli_ok(&args, &cluster.node(followers[0]).cli(&args, None)));
        assert!(
            out.contains(&format!("partition: {topic}-0\tlow_watermark: 60")),
            "{out}"
        );
        let file = tempfile::NamedTempFile::new().expect("offsets file");
        std::fs::write(
            file.path(),
            format!(
                r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":-1}}],"version":1}}"#
            ),
        )
        .expect("write the offsets file");
        let path = file.path().to_string_lossy().to_string();
        let args = ["topic", "delete-records", "--offset-json-file", &path];
        let out = block_in_place(|| cli_ok(&args, &cluster.node(followers[0]).cli(&args, None)));
        assert!(
            out.contains(&format!("partition: {topic}-0\tlow_watermark: {RECORDS}")),
            "{out}"
        );

        // Phase 6: a restarted follower keeps the log start it adopted, and so does a new
        // leader elected after the old one stops.
        let restarted = followers[0];
        block_in_place(|| cluster.stop(restarted));
        block_in_place(|| cluster.restart(restarted));
        block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "3 replicas in sync again", |p| {
                p.isr.len() == 3
            })
        });
        assert_eq!(
            log_start_checkpoint(&cluster.node(restarted).data_dir(), &topic),
            Some(RECORDS)
        );
        block_in_place(|| cluster.stop(leader));
        block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "a new leader", |p| {
                p.leader >= 0 && p.leader != leader
            })
        });
        let c = consumer(&cluster.bootstrap());
        let low = block_in_place(|| {
            wait_for(SETTLE, "the new leader's watermarks", || {
                c.fetch_watermarks(&topic, 0, Duration::from_secs(5)).ok()
            })
        })
        .expect("watermarks");
        assert_eq!(low, (RECORDS, RECORDS));
    })
    .await;
}
