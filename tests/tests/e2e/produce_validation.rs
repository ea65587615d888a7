//! What a client may not write: a forged COMMIT marker (a control batch) is
//! refused with INVALID_RECORD, a transactional batch without a
//! transactional id with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, nothing of
//! either is appended, and a normal batch afterwards lands right after the
//! last one (transactional batches with an id: `txn_verification.rs`).
//! On a compacted topic a record without a key is refused with
//! INVALID_RECORD and named in `record_errors`; records outside
//! `message.timestamp.before.max.ms` / `after.max.ms` with INVALID_TIMESTAMP,
//! named the same way. `compression.type` changes the codec batches are
//! stored with, and nothing else about them.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_e2e::{
    FjordNode, KafkaConn, bounded, client_config, create_topic, topic_name, wait_for_topic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::idempotence::{init_producer_id, produce, produce_at, produce_request};

const LIMIT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const INVALID_RECORD: i16 = 87;

/// What kind of batch to forge.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Normal,
    Transactional,
    /// A COMMIT marker, as the transaction coordinator would write it.
    CommitMarker,
}

/// One single-record batch of `kind` from producer `pid`/`epoch` at sequence `seq`.
pub(crate) fn batch(kind: Kind, pid: i64, epoch: i16, seq: i32) -> Bytes {
    let (key, value) = match kind {
        // Control record: key = version 0, type 1 (COMMIT); value = version 0,
        // coordinator epoch 0.
        Kind::CommitMarker => (
            Some(Bytes::from_static(&[0, 0, 0, 1])),
            Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        ),
        _ => (None, Some(Bytes::from_static(b"value"))),
    };
    let record = Record {
        transactional: !matches!(kind, Kind::Normal),
        control: matches!(kind, Kind::CommitMarker),
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: now_ms(),
        key,
        value,
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &[record], &options).expect("encode batch");
    buf.freeze()
}

/// Partition 0's log end offset (ListOffsets LATEST).
pub(crate) fn log_end_offset(conn: &mut KafkaConn, topic: &str) -> i64 {
    latest_offset(conn, topic, 0)
}

/// Partition 0's ListOffsets LATEST at `isolation_level` (1: READ_COMMITTED,
/// the last stable offset).
pub(crate) fn latest_offset(conn: &mut KafkaConn, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let response: ListOffsetsResponse = conn.request(7, &request).expect("list offsets");
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "ListOffsets error");
    partition.offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_transactional_batches_from_clients_are_refused() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("produce-validation");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        let init = init_producer_id(&mut conn);
        assert_eq!(init.error_code, 0);
        let (pid, epoch) = (init.producer_id.0, init.producer_epoch);

        // An idempotent batch goes in at offset 0.
        assert_eq!(
            produce(&mut conn, &topic, batch(Kind::Normal, pid, epoch, 0)),
            (0, 0)
        );
        assert_eq!(log_end_offset(&mut conn, &topic), 1);

        // A forged COMMIT marker, once with the next sequence and once as a
        // "retry" of the stored batch: refused, never answered as a duplicate.
        // (Sent with a transactional id: without one, the request is
        // refused whole first, as below.)
        for seq in [1, 0] {
            let request = produce_request(&topic, batch(Kind::CommitMarker, pid, epoch, seq))
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("forger"))));
            let response: ProduceResponse = conn.request(9, &request).expect("produce");
            let code = response.responses[0].partition_responses[0].error_code;
            assert_eq!(code, INVALID_RECORD, "COMMIT marker at sequence {seq}");
        }
        let (code, _) = produce(&mut conn, &topic, batch(Kind::CommitMarker, pid, epoch, 1));
        assert_eq!(
            code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "COMMIT marker without an id"
        );
        // A transactional batch in a request without a transactional id.
        let (code, _) = produce(&mut conn, &topic, batch(Kind::Transactional, pid, epoch, 1));
        assert_eq!(code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        // The same without an idempotent producer id.
        let (code, _) = produce(&mut conn, &topic, batch(Kind::Transactional, -1, -1, -1));
        assert_eq!(code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert_eq!(log_end_offset(&mut conn, &topic), 1, "nothing was appended");

        // The producer's next batch still follows its last stored one.
        assert_eq!(
            produce(&mut conn, &topic, batch(Kind::Normal, pid, epoch, 1)),
            (0, 1)
        );
        assert_eq!(log_end_offset(&mut conn, &topic), 2);
    })
    .await;
}

/// One batch of plain records, keyed or not, compressed with `compression`.
fn records(keys: &[Option<&'static str>], compression: Compression) -> Bytes {
    let records: Vec<_> = keys.iter().map(|&key| (key, 1_700_000_000_000)).collect();
    plain_batch(&records, compression)
}

/// One uncompressed batch of keyed records at these timestamps.
fn records_at(timestamps: &[i64]) -> Bytes {
    let records: Vec<_> = timestamps.iter().map(|&t| (Some("k"), t)).collect();
    plain_batch(&records, Compression::None)
}

/// One batch of plain records (no producer id), each `(key, timestamp)`.
fn plain_batch(records: &[(Option<&'static str>, i64)], compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..)
        .zip(records)
        .map(|(i, &(key, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // offset - sequence constant, or the encoder splits the batch.
            sequence: i as i32,
            timestamp,
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.freeze()
}

async fn create_topic_with_policy(bootstrap: &str, name: &str, policy: &str) {
    create_topic_with_configs(bootstrap, name, &[("cleanup.policy", policy)]).await;
}

async fn create_topic_with_configs(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let topic = configs.iter().fold(
        NewTopic::new(name, 1, TopicReplication::Fixed(1)),
        |topic, (key, value)| topic.set(key, value),
    );
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics([&topic], &opts)
        .await
        .expect("CreateTopics request")
    {
        if let Err((t, e)) = r {
            panic!("CreateTopics {t}: {e}");
        }
    }
    wait_for_topic(bootstrap, name, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_refuse_records_without_a_key() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        for policy in ["compact", "compact,delete", "delete"] {
            let topic = topic_name("keyless");
            create_topic_with_policy(&node.bootstrap(), &topic, policy).await;

            // Keyed records go in on every topic.
            let keyed = records(&[Some("a"), Some("b")], Compression::None);
            let (code, base) = produce(&mut conn, &topic, keyed);
            assert_eq!((code, base), (0, 0), "{policy}: keyed batch");

            // One keyless record among keyed ones, in a compressed batch.
            let mixed = records(&[Some("a"), None, Some("c")], Compression::Lz4);
            let response = produce_at(&mut conn, &topic, mixed, 9);
            let partition = &response.responses[0].partition_responses[0];
            if policy == "delete" {
                assert_eq!(partition.error_code, 0, "{policy}: keyless accepted");
                assert_eq!(log_end_offset(&mut conn, &topic), 5, "{policy}");
                continue;
            }
            assert_eq!(partition.error_code, INVALID_RECORD, "{policy}");
            let indexes: Vec<i32> = partition
                .record_errors
                .iter()
                .map(|e| e.batch_index)
                .collect();
            assert_eq!(indexes, vec![1], "{policy}: record_errors");
            let message = partition.record_errors[0]
                .batch_index_error_message
                .as_deref()
                .unwrap_or_default();
            assert!(
                message.contains("Compacted topic cannot accept message without key"),
                "{policy}: {message}"
            );
            assert!(partition.error_message.is_some(), "{policy}: error_message");
            assert_eq!(
                log_end_offset(&mut conn, &topic),
                2,
                "{policy}: nothing appended"
            );

            // Before v8 the code alone.
            let response = produce_at(&mut conn, &topic, records(&[None], Compression::None), 7);
            let code = response.responses[0].partition_responses[0].error_code;
            assert_eq!(code, INVALID_RECORD, "{policy}: v7, uncompressed");
            assert_eq!(log_end_offset(&mut conn, &topic), 2, "{policy}");
        }
    })
    .await;
}

const INVALID_TIMESTAMP: i16 = 32;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_out_of_range_are_refused_per_record() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");

        // Kafka 4's default: at most one hour ahead, any age.
        let topic = topic_name("timestamps-default");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let now = now_ms();
        let (code, _) = produce(&mut conn, &topic, records_at(&[1_000, now + 60_000]));
        assert_eq!(code, 0, "old and slightly ahead: accepted");
        let far = records_at(&[now, now + 7_200_000]);
        let partition =
            produce_at(&mut conn, &topic, far, 9).responses[0].partition_responses[0].clone();
        assert_eq!(partition.error_code, INVALID_TIMESTAMP);
        let indexes: Vec<i32> = partition
            .record_errors
            .iter()
            .map(|e| e.batch_index)
            .collect();
        assert_eq!(indexes, vec![1]);
        let message = partition.record_errors[0]
            .batch_index_error_message
            .as_deref()
            .unwrap_or_default();
        assert!(message.contains("is out of range"), "{message}");
        assert_eq!(log_end_offset(&mut conn, &topic), 2, "nothing appended");

        // Both bounds set on the topic.
        let topic = topic_name("timestamps-bounded");
        create_topic_with_configs(
            &node.bootstrap(),
            &topic,
            &[
                ("message.timestamp.before.max.ms", "60000"),
                ("message.timestamp.after.max.ms", "60000"),
            ],
        )
        .await;
        let now = now_ms();
        let batch = records_at(&[now, now - 3_600_000, now + 1_000, now + 3_600_000]);
        let partition =
            produce_at(&mut conn, &topic, batch, 9).responses[0].partition_responses[0].clone();
        assert_eq!(partition.error_code, INVALID_TIMESTAMP);
        let indexes: Vec<i32> = partition
            .record_errors
            .iter()
            .map(|e| e.batch_index)
            .collect();
        assert_eq!(indexes, vec![1, 3]);
        let (code, _) = produce(&mut conn, &topic, records_at(&[now, now + 1_000]));
        assert_eq!(code, 0);

        // LogAppendTime topics take any timestamp: the leader stamps the batch.
        let topic = topic_name("timestamps-append-time");
        create_topic_with_configs(
            &node.bootstrap(),
            &topic,
            &[
                ("message.timestamp.type", "LogAppendTime"),
                ("message.timestamp.after.max.ms", "0"),
            ],
        )
        .await;
        let (code, _) = produce(&mut conn, &topic, records_at(&[now + 7_200_000]));
        assert_eq!(code, 0);
    })
    .await;
}

/// Partition 0's batches from offset 0 (one Fetch, v12).
fn fetch_batches(conn: &mut KafkaConn, topic: &str) -> Bytes {
    use kafka_protocol::messages::FetchRequest;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = conn.request(12, &request).expect("fetch");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "Fetch error");
    partition.records.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_type_sets_the_stored_codec() {
    use kafka_protocol::records::RecordBatchDecoder;
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        for (config, sent, stored) in [
            ("zstd", Compression::Gzip, Compression::Zstd),
            ("lz4", Compression::None, Compression::Lz4),
            ("uncompressed", Compression::Snappy, Compression::None),
            ("producer", Compression::Gzip, Compression::Gzip),
        ] {
            let topic = topic_name("compression-type");
            create_topic_with_configs(&node.bootstrap(), &topic, &[("compression.type", config)])
                .await;
            let batch = records(&[Some("a"), Some("b"), Some("c")], sent);
            let original = RecordBatchDecoder::decode(&mut batch.clone()).expect("decode");
            let (code, base) = produce(&mut conn, &topic, batch);
            assert_eq!((code, base), (0, 0), "{config}");
            let mut fetched = fetch_batches(&mut conn, &topic);
            let attributes = i16::from_be_bytes([fetched[21], fetched[22]]);
            assert_eq!(attributes & 0x07, stored as i16, "{config}: stored codec");
            let set = RecordBatchDecoder::decode(&mut fetched).expect("decode fetched");
            assert_eq!(set.records.len(), 3, "{config}");
            for (got, sent) in set.records.iter().zip(&original.records) {
                assert_eq!(
                    (got.offset, &got.key, &got.value),
                    (sent.offset, &sent.key, &sent.value)
                );
                assert_eq!(got.timestamp, sent.timestamp, "{config}");
            }
        }
    })
    .await;
}
