//! Log compaction with the real binary: a compacted topic keeps the last
//! value of every key at its original offset, tombstones go after
//! `delete.retention.ms`, a consumer reading while the cleaner runs sees
//! every key's last value, and `__consumer_offsets` stays bounded under many
//! commits (and reloads from its cleaned log after a restart).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use fjord_e2e::{
    ClusterOptions, FjordCluster, KafkaConn, assign_from, bounded, client_config, consumer,
    topic_name, wait_for, wait_for_topic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(600);
const KEYS: usize = 10_000;
const RECORDS: usize = 1_000_000;
/// The topic's `delete.retention.ms`.
const DELETE_RETENTION_MS: u64 = 3000;

/// One node whose cleaner looks for work every 200 ms, with 64 KiB
/// `__consumer_offsets` segments.
fn cleaner_cluster() -> FjordCluster {
    FjordCluster::start_with(ClusterOptions {
        extra_broker_config: vec![
            "log_cleaner_backoff_ms = 200".into(),
            "offsets_topic_segment_bytes = 65536".into(),
        ],
        ..ClusterOptions::fast(1)
    })
}

/// A one-partition compacted topic with small segments that roll every 2 s,
/// cleaned as soon as a segment is sealed.
async fn create_compacted(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let retention = DELETE_RETENTION_MS.to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "262144")
        .set("segment.ms", "2000")
        // Clean whenever a segment rolls: tombstones expire on time.
        .set("min.cleanable.dirty.ratio", "0")
        .set("delete.retention.ms", &retention);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics([&new], &opts)
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("CreateTopics {t}: {e}"));
    }
    wait_for_topic(bootstrap, topic, 1);
}

fn fast_producer(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("acks", "1")
        .set("compression.type", "lz4")
        .set("linger.ms", "10")
        .set("batch.num.messages", "2000")
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// (key, value; None: a tombstone) -> (offset, key, value), as acknowledged.
type Written = Vec<(i64, String, Option<String>)>;

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = (String, Option<String>)>,
) -> Written {
    let mut pending: Vec<(String, Option<String>, DeliveryFuture)> = Vec::new();
    let mut written = Vec::new();
    for (key, value) in records {
        loop {
            let mut record = FutureRecord::<str, str>::to(topic).key(&key);
            if let Some(v) = &value {
                record = record.payload(v);
            }
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push((key.clone(), value.clone(), f));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Drain the older half, then retry.
                    let rest = pending.split_off(pending.len() / 2);
                    for (k, v, f) in pending.drain(..) {
                        written.push(delivered(k, v, f).await);
                    }
                    pending = rest;
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    for (k, v, f) in pending {
        written.push(delivered(k, v, f).await);
    }
    written
}

async fn delivered(
    key: String,
    value: Option<String>,
    f: DeliveryFuture,
) -> (i64, String, Option<String>) {
    let d = f
        .await
        .expect("delivery future")
        .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
    (d.offset, key, value)
}

/// Each key's last (offset, value).
fn last_per_key(records: &Written) -> BTreeMap<String, (i64, Option<String>)> {
    let mut sorted: Vec<_> = records.iter().collect();
    sorted.sort_by_key(|r| r.0);
    sorted
        .into_iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// Keys 0..100, which phase 4 deletes.
fn is_deleted_key(key: &str) -> bool {
    key.starts_with("key-") && key < "key-00100"
}

/// Everything from offset 0 to the high watermark as it is now.
fn read_all(bootstrap: &str, topic: &str) -> Written {
    let c: BaseConsumer = consumer(bootstrap);
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assign_from(&c, topic, &[0], Offset::Beginning);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while out
        .last()
        .is_none_or(|r: &(i64, String, Option<String>)| r.0 + 1 < high)
    {
        assert!(
            Instant::now() < deadline,
            "read {} records below {high}",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                out.push((m.offset(), s(m.key()).unwrap_or_default(), s(m.payload())));
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

fn dir_size(dir: &Path, prefix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("ls logs").flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        for f in std::fs::read_dir(entry.path())
            .expect("ls partition")
            .flatten()
        {
            if f.file_name().to_string_lossy().ends_with(".log") {
                total += f.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// `__consumer_offsets`' segment files and sizes (for failure messages).
fn offsets_files(logs: &Path) -> String {
    let mut out = Vec::new();
    for d in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        if !d
            .file_name()
            .to_string_lossy()
            .starts_with("__consumer_offsets-")
        {
            continue;
        }
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let name = f.path().display().to_string();
            if name.ends_with(".log") {
                out.push(format!("{name} {}", f.metadata().map_or(0, |m| m.len())));
            }
        }
    }
    out.join("\n")
}

fn metric(cluster: &FjordCluster, name: &str) -> f64 {
    let (_, body) = cluster.node(1).http_get("/metrics").expect("metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_last_value_per_key_and_drops_tombstones() {
    bounded(LIMIT, async {
        let cluster = block_in_place(cleaner_cluster);
        let bootstrap = cluster.bootstrap();
        let topic = topic_name("compacted");
        create_compacted(&bootstrap, &topic).await;
        let producer = fast_producer(&bootstrap);

        // Phase 1: RECORDS records over KEYS keys.
        let started = Instant::now();
        let records = (0..RECORDS).map(|i| (format!("key-{:05}", i % KEYS), Some(format!("v{i}"))));
        let mut written = produce(&producer, &topic, records).await;
        eprintln!("produced {RECORDS} records in {:?}", started.elapsed());

        // Phase 2: a consumer reads from 0 while the cleaner works; it sees
        // every key's last value (the batches it reads may be cleaned or not).
        let expected = last_per_key(&written);
        let during = block_in_place(|| read_all(&bootstrap, &topic));
        let seen = last_per_key(&during);
        assert_eq!(seen.len(), KEYS);
        assert_eq!(
            seen, expected,
            "a consumer during cleaning sees every last value"
        );

        // Phase 3: roll the data into sealed segments (segment.ms = 2 s) with
        // a filler record, and wait until reading from 0 returns exactly one
        // record per key, at its last offset.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        written.extend(
            produce(
                &producer,
                &topic,
                [("filler".to_string(), Some("f".into()))],
            )
            .await,
        );
        let compacted = block_in_place(|| {
            wait_for(Duration::from_secs(120), "the topic compacted", || {
                let all = read_all(&bootstrap, &topic);
                let data: Written = all.into_iter().filter(|r| r.1 != "filler").collect();
                (data.len() == KEYS).then_some(data)
            })
            .unwrap_or_else(|e| panic!("{e:#}"))
        });
        for (offset, key, value) in &compacted {
            assert_eq!(expected.get(key), Some(&(*offset, value.clone())), "{key}");
        }
        assert!(metric(&cluster, "fjord_log_cleaner_passes_total") >= 1.0);
        assert!(metric(&cluster, "fjord_log_cleaner_bytes_cleaned_total") > 0.0);

        // Phase 4: tombstones for 100 keys vanish after delete.retention.ms
        // (fillers keep sealing segments so that passes go on).
        let tombstones = (0..100).map(|k| (format!("key-{k:05}"), None));
        written.extend(produce(&producer, &topic, tombstones).await);
        let tombstoned_at = Instant::now();
        let mut gone = false;
        while tombstoned_at.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(2100)).await;
            produce(
                &producer,
                &topic,
                [("filler".to_string(), Some("f".into()))],
            )
            .await;
            let all = block_in_place(|| read_all(&bootstrap, &topic));
            let deleted = all.iter().filter(|r| is_deleted_key(&r.1)).count();
            if deleted == 0 {
                assert!(
                    tombstoned_at.elapsed() >= Duration::from_millis(DELETE_RETENTION_MS),
                    "tombstones removed before delete.retention.ms"
                );
                gone = true;
                break;
            }
            // Until then each deleted key's last record is its tombstone.
            let last = last_per_key(&all);
            assert!((0..100).all(|k| last[&format!("key-{k:05}")].1.is_none()));
        }
        assert!(gone, "tombstones removed after delete.retention.ms");
        let all = block_in_place(|| read_all(&bootstrap, &topic));
        assert_eq!(
            all.iter().filter(|r| r.1.starts_with("key-")).count(),
            KEYS - 100
        );
    })
    .await;
}

/// An OffsetCommit of `offset` for `group` on partition 0 of `topic`,
/// outside any generation (a standalone consumer's commit).
fn commit_request(group: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

fn committed(conn: &mut KafkaConn, group: &str, topic: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![0]),
        ]));
    let resp = conn.request(7, &req).expect("OffsetFetch");
    assert_eq!(resp.error_code, 0);
    resp.topics[0].partitions[0].committed_offset
}

/// Commit offset `j` for group `group_of(j)`, for every `j` in `offsets`,
/// `PIPELINE` requests in flight on `conn`; after each round `each_round`.
fn commit_pipelined(
    conn: &mut KafkaConn,
    topic: &str,
    offsets: std::ops::Range<usize>,
    group_of: impl Fn(usize) -> String,
    mut each_round: impl FnMut(),
) {
    const PIPELINE: usize = 500;
    let mut i = offsets.start;
    while i < offsets.end {
        let n = PIPELINE.min(offsets.end - i);
        let mut sent = HashMap::new();
        for j in i..i + n {
            let req = commit_request(&group_of(j), topic, j as i64);
            let (id, buf) = conn.encode_request(8, &req).expect("encode");
            conn.send_frame(&buf).expect("send");
            sent.insert(id, j);
        }
        for _ in 0..n {
            let mut frame = conn.read_frame().expect("read").expect("a response");
            let version = ApiKey::OffsetCommit.response_header_version(8);
            let header = kafka_protocol::messages::ResponseHeader::decode(&mut frame, version)
                .expect("header");
            assert!(sent.remove(&header.correlation_id).is_some());
            let resp = OffsetCommitResponse::decode(&mut frame, 8).expect("response");
            assert_eq!(resp.topics[0].partitions[0].error_code, 0);
        }
        i += n;
        each_round();
    }
}

/// Group `g`'s committed offset on partition 0 of `topic`, once its
/// coordinator answers (-1: none).
fn committed_when_loaded(conn: &mut KafkaConn, group: &str, topic: &str) -> i64 {
    wait_for(Duration::from_secs(30), "the group loaded", || {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(vec![0]),
            ]));
        let resp = conn.request(7, &req).ok()?;
        (resp.error_code == 0).then(|| resp.topics[0].partitions[0].committed_offset)
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_stays_bounded_under_many_commits() {
    const GROUPS: usize = 100;
    const COMMITS: usize = 100_000;
    /// Groups g-0..g-9 are deleted after phase 1.
    const DELETED: usize = 10;
    const MORE: usize = 10_000;
    bounded(LIMIT, async {
        let mut cluster = block_in_place(cleaner_cluster);
        let bootstrap = cluster.bootstrap();
        let topic = topic_name("committed");
        fjord_e2e::create_topic(&bootstrap, &topic, 1).await;
        let logs = cluster.node(1).data_dir().join("logs");
        // Each group's last committed offset (-1: deleted).
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        block_in_place(|| {
            let mut conn = KafkaConn::connect(&bootstrap, Duration::from_secs(10)).expect("connect");
            // The first commit creates __consumer_offsets (retry until its coordinator is up).
            wait_for(Duration::from_secs(30), "a group coordinator", || {
                let resp = conn.request(8, &commit_request("g-0", &topic, 0)).ok()?;
                (resp.topics[0].partitions[0].error_code == 0).then_some(())
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
            // One commit's batch, to size what the commits append.
            let one_commit = dir_size(&logs, "__consumer_offsets-");

            // Phase 1: COMMITS commits round-robin over GROUPS groups; the
            // cleaner runs meanwhile.
            let started = Instant::now();
            let mut peak = 0;
            let group_of = |j: usize| format!("g-{}", j % GROUPS);
            commit_pipelined(&mut conn, &topic, 0..COMMITS, group_of, || {
                peak = peak.max(dir_size(&logs, "__consumer_offsets-"));
            });
            for j in 0..COMMITS {
                expected.insert(format!("g-{}", j % GROUPS), j as i64);
            }
            let appended = one_commit * COMMITS as u64;
            eprintln!(
                "{COMMITS} commits in {:?}: ~{appended} bytes appended, at most {peak} bytes on disk",
                started.elapsed()
            );

            // Phase 2: DeleteGroups for ten groups (tombstones), then more
            // commits for the others, so that segments roll and get cleaned.
            let names: Vec<GroupId> = (0..DELETED)
                .map(|g| GroupId(StrBytes::from_string(format!("g-{g}"))))
                .collect();
            let resp = conn
                .request(2, &DeleteGroupsRequest::default().with_groups_names(names))
                .expect("DeleteGroups");
            assert!(resp.results.iter().all(|r| r.error_code == 0), "{resp:?}");
            for g in 0..DELETED {
                expected.insert(format!("g-{g}"), -1);
            }
            let live = GROUPS - DELETED;
            let group_of = |j: usize| format!("g-{}", DELETED + j % live);
            commit_pipelined(&mut conn, &topic, COMMITS..COMMITS + MORE, group_of, || {});
            for j in COMMITS..COMMITS + MORE {
                expected.insert(format!("g-{}", DELETED + j % live), j as i64);
            }

            // Phase 3: the cleaner brings it down to about one segment per partition.
            let bounded_size = wait_for(Duration::from_secs(120), "__consumer_offsets compacted", || {
                let size = dir_size(&logs, "__consumer_offsets-");
                (size < 4 * 65536 + 65536).then_some(size)
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
            eprintln!("__consumer_offsets after cleaning: {bounded_size} bytes (peak {peak}, appended ~{appended})");
            assert!(appended > 20 * peak, "{appended} appended, {peak} at most on disk");
            for (group, &last) in &expected {
                assert_eq!(committed(&mut conn, group, &topic), last, "{group}");
            }
        });

        // Phase 4: the coordinator reloads every group from the cleaned log;
        // the deleted ones stay deleted.
        block_in_place(|| {
            cluster.restart(1);
            let mut conn = KafkaConn::connect(&cluster.bootstrap(), Duration::from_secs(10))
                .expect("connect");
            for (group, &last) in &expected {
                let got = committed_when_loaded(&mut conn, group, &topic);
                assert_eq!(got, last, "{group} after reload");
            }
        });
    })
    .await;
}

/// Offsets committed in transactions (TxnOffsetCommit, then the COMMIT or
/// ABORT marker in `__consumer_offsets`) compact and reload. Found by this
/// test: with `offsets_topic_num_partitions` other than 50 the transaction
/// coordinator sent the group's markers to a partition that did not exist,
/// so the offsets partition's last stable offset never moved and the
/// cleaner, which stops there, never cleaned it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offset_commits_reload_from_a_cleaned_offsets_log() {
    use rdkafka::TopicPartitionList;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    const TXNS: i64 = 200;
    const TIMEOUT: Duration = Duration::from_secs(30);
    bounded(LIMIT, async {
        let mut cluster = block_in_place(cleaner_cluster);
        let bootstrap = cluster.bootstrap();
        let topic = topic_name("txn-offsets");
        fjord_e2e::create_topic(&bootstrap, &topic, 1).await;
        let logs = cluster.node(1).data_dir().join("logs");
        let group = "txn-offsets-group";
        block_in_place(|| {
            let consumer: BaseConsumer = client_config(&bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            let metadata = consumer.group_metadata().expect("group metadata");
            let producer: BaseProducer = client_config(&bootstrap)
                .set("transactional.id", "txn-offsets-producer")
                .create()
                .expect("transactional producer");
            producer
                .init_transactions(TIMEOUT)
                .expect("init_transactions");

            // Phase 1: TXNS transactions, each a record and an offset commit
            // (TxnOffsetCommit + COMMIT marker in __consumer_offsets); the
            // last one aborted.
            for i in 0..TXNS {
                producer.begin_transaction().expect("begin");
                producer
                    .send(BaseRecord::<str, str>::to(&topic).key("k").payload("v"))
                    .map_err(|(e, _)| e)
                    .expect("send");
                let mut offsets = TopicPartitionList::new();
                offsets
                    .add_partition_offset(&topic, 0, Offset::Offset(i))
                    .expect("offset");
                // 2 KiB of commit metadata: 64 KiB segments roll every ~30.
                if let Some(mut p) = offsets.find_partition(&topic, 0) {
                    p.set_metadata("m".repeat(2048));
                }
                producer
                    .send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
                    .expect("send offsets");
                if i + 1 == TXNS {
                    // Deliver the record first (abort does not poll).
                    producer.flush(TIMEOUT).expect("flush");
                    producer.abort_transaction(TIMEOUT).expect("abort");
                } else {
                    producer.commit_transaction(TIMEOUT).expect("commit");
                }
            }

            // Phase 2: the group's __consumer_offsets partition gets cleaned.
            wait_for(
                Duration::from_secs(60),
                "a cleaned __consumer_offsets partition",
                || {
                    std::fs::read_dir(&logs)
                        .ok()?
                        .flatten()
                        .filter(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with("__consumer_offsets-")
                        })
                        .any(|e| e.path().join("cleaner-offset-checkpoint").exists())
                        .then_some(())
                },
            )
            .unwrap_or_else(|e| {
                let (_, metrics) = cluster.node(1).http_get("/metrics").expect("metrics");
                let lines: Vec<&str> = metrics
                    .lines()
                    .filter(|l| l.contains("stable_offset_lag") || l.contains("cleaner"))
                    .collect();
                panic!("{e:#}\n{}\n{}", offsets_files(&logs), lines.join("\n"))
            });
            let mut conn =
                KafkaConn::connect(&bootstrap, Duration::from_secs(10)).expect("connect");
            assert_eq!(committed(&mut conn, group, &topic), TXNS - 2);
        });

        // Phase 3: the coordinator reloads the cleaned log: the last committed
        // transaction's offset, not the aborted one's.
        block_in_place(|| {
            cluster.restart(1);
            let mut conn =
                KafkaConn::connect(&cluster.bootstrap(), Duration::from_secs(10)).expect("connect");
            assert_eq!(committed_when_loaded(&mut conn, group, &topic), TXNS - 2);
        });
    })
    .await;
}
