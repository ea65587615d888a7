//! Idempotent producers: InitProducerId hands out ids, a retried batch is
//! answered with its original offset instead of being written twice, gaps
//! and fenced epochs are refused; and librdkafka with enable.idempotence=true
//! delivers every record exactly once.

use std::time::Duration;

use bytes::BytesMut;
use fjord_e2e::{
    FjordNode, KafkaConn, assign_from, bounded, client_config, consume_n, create_topic,
    expect_no_more, topic_name,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::Offset;
use rdkafka::producer::{FutureProducer, FutureRecord};

const LIMIT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// One record of producer `pid` (-1: none) at `epoch` with sequence `seq`,
/// stamped now: an old timestamp would let retention (7 days) delete the
/// segment when the node restarts.
fn record(pid: i64, epoch: i16, offset: i32, seq: i32, value: bytes::Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: i64::from(offset),
        sequence: seq,
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64,
        key: None,
        value: Some(value),
        headers: Default::default(),
    }
}

/// One batch of `count` records from producer `pid` at `epoch`, sequences from `first_seq`.
pub(crate) fn batch(pid: i64, epoch: i16, first_seq: i32, count: i32) -> bytes::Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let seq = first_seq + i;
            record(pid, epoch, i, seq, format!("seq {seq}").into())
        })
        .collect();
    encode(&records)
}

/// A batch of one `len`-byte record from no idempotent producer (producer id
/// -1): filler that makes small segments roll.
pub(crate) fn filler(len: usize) -> bytes::Bytes {
    encode(&[record(-1, -1, 0, -1, vec![b'f'; len].into())])
}

fn encode(records: &[Record]) -> bytes::Bytes {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).expect("encode batch");
    buf.freeze()
}

/// InitProducerId v4 without a transactional id (an idempotent producer's first call).
pub(crate) fn init_producer_id(conn: &mut KafkaConn) -> InitProducerIdResponse {
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    conn.request(4, &init).expect("InitProducerId")
}

/// Produce one batch to partition 0 with acks=all; (error code, base offset).
pub(crate) fn produce(conn: &mut KafkaConn, topic: &str, records: bytes::Bytes) -> (i16, i64) {
    let response = produce_at(conn, topic, records, 9);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

/// Produce `batch` to partition 0 with acks=all at Produce `version`
/// (record_errors and error_message from v8).
pub(crate) fn produce_at(
    conn: &mut KafkaConn,
    topic: &str,
    batch: bytes::Bytes,
    version: i16,
) -> ProduceResponse {
    conn.request(version, &produce_request(topic, batch))
        .expect("produce")
}

/// Produce `batch` to partition 0 with acks=all.
pub(crate) fn produce_request(topic: &str, batch: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_written_once_and_gaps_refused() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("idem-raw");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");

        // Two producers get different ids.
        let first = init_producer_id(&mut conn);
        let second = init_producer_id(&mut conn);
        assert_eq!((first.error_code, second.error_code), (0, 0));
        assert_ne!(first.producer_id, second.producer_id);
        let (pid, epoch) = (first.producer_id.0, first.producer_epoch);

        // A batch, then its retry: the same offset, written once.
        assert_eq!(produce(&mut conn, &topic, batch(pid, epoch, 0, 3)), (0, 0));
        assert_eq!(produce(&mut conn, &topic, batch(pid, epoch, 0, 3)), (0, 0));
        assert_eq!(produce(&mut conn, &topic, batch(pid, epoch, 3, 2)), (0, 3));
        // A gap in sequence numbers is refused.
        let (code, _) = produce(&mut conn, &topic, batch(pid, epoch, 9, 1));
        assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER);
        // A newer epoch fences the older one.
        assert_eq!(
            produce(&mut conn, &topic, batch(pid, epoch + 1, 0, 1)),
            (0, 5)
        );
        let (code, _) = produce(&mut conn, &topic, batch(pid, epoch, 5, 1));
        assert_eq!(code, INVALID_PRODUCER_EPOCH);
        // The other producer is independent.
        assert_eq!(
            produce(&mut conn, &topic, batch(second.producer_id.0, 0, 0, 1)),
            (0, 6)
        );

        // After a restart the producer state is rebuilt from the log: a retry is still a duplicate.
        drop(conn);
        let mut node = node;
        node.restart();
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("reconnect");
        assert_eq!(
            produce(&mut conn, &topic, batch(pid, epoch + 1, 0, 1)),
            (0, 5)
        );
        assert_eq!(
            produce(&mut conn, &topic, batch(pid, epoch + 1, 1, 1)),
            (0, 7)
        );

        // Exactly 8 records are in the log.
        let c = fjord_e2e::consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0], Offset::Beginning);
        let msgs = consume_n(&c, 8, Duration::from_secs(20)).expect("read back");
        assert_eq!(msgs.len(), 8);
        expect_no_more(&c, Duration::from_millis(500)).expect("nothing more");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_delivers_each_record_once() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("idem-rdkafka");
        create_topic(&node.bootstrap(), &topic, 3).await;
        let producer: FutureProducer = client_config(&node.bootstrap())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("create idempotent producer");
        const N: usize = 2000;
        let mut deliveries = Vec::with_capacity(N);
        for i in 0..N {
            let value = format!("idempotent {i}");
            let record = FutureRecord::<(), _>::to(&topic)
                .payload(&value)
                .partition((i % 3) as i32);
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
        }
        for d in deliveries {
            d.await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        }
        let c = fjord_e2e::consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0, 1, 2], Offset::Beginning);
        let msgs = consume_n(&c, N, Duration::from_secs(30)).expect("read back");
        let mut values: Vec<String> = msgs
            .iter()
            .map(|m| {
                String::from_utf8_lossy(rdkafka::Message::payload(m).unwrap_or_default())
                    .into_owned()
            })
            .collect();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), N, "every record exactly once");
        expect_no_more(&c, Duration::from_millis(500)).expect("no duplicates");
    })
    .await;
}
