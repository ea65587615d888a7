//! KIP-890 part 1 with real requests: a producer's transactional batch
//! opens a transaction on a partition only once the transaction
//! coordinator confirms the partition is in the producer's ongoing
//! transaction. A batch sent before AddPartitionsToTxn, and a late batch
//! arriving after its transaction committed (the "hanging transaction" of
//! KIP-890), are refused with INVALID_TXN_STATE; nothing of them is
//! appended and the last stable offset is not held back.

use std::time::{Duration, Instant};

use fjord_e2e::{FjordNode, KafkaConn, bounded, create_topic, topic_name};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::idempotence::produce_request;
use crate::produce_validation::{Kind, batch, log_end_offset};

const LIMIT: Duration = Duration::from_secs(90);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const INVALID_TXN_STATE: i16 = 48;
/// Errors the transaction coordinator answers while it gets ready (16:
/// `__transaction_state` was just created and its leaders are not known yet).
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];

fn tid(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Retry `call` while it answers a retriable coordinator error.
fn retrying<T>(what: &str, mut call: impl FnMut() -> (i16, T)) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, value) = call();
        if code == 0 {
            return value;
        }
        assert!(RETRIABLE.contains(&code), "{what}: error {code}");
        assert!(Instant::now() < deadline, "{what}: still {code} after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produce v9 of `records` to partition 0 as transactional id `id`.
fn produce_txn(conn: &mut KafkaConn, topic: &str, id: &str, records: bytes::Bytes) -> i16 {
    let request = produce_request(topic, records).with_transactional_id(Some(tid(id)));
    let response: ProduceResponse = conn.request(9, &request).expect("produce");
    response.responses[0].partition_responses[0].error_code
}

/// Partition 0's offset at READ_COMMITTED (the last stable offset).
fn last_stable_offset(conn: &mut KafkaConn, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(1)
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
    response.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_batches_open_a_transaction_only_when_verified() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("txn-verify");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        let id = format!("{topic}-producer");

        retrying("FindCoordinator", || {
            let request = FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![StrBytes::from_string(id.clone())]);
            let response: FindCoordinatorResponse =
                conn.request(4, &request).expect("find coordinator");
            (response.coordinators[0].error_code, ())
        });
        let (pid, epoch) = retrying("InitProducerId", || {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(Some(tid(&id)))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1);
            let response: InitProducerIdResponse = conn.request(4, &request).expect("init");
            (
                response.error_code,
                (response.producer_id.0, response.producer_epoch),
            )
        });

        // Before AddPartitionsToTxn the coordinator does not know the partition.
        let code = produce_txn(
            &mut conn,
            &topic,
            &id,
            batch(Kind::Transactional, pid, epoch, 0),
        );
        assert_eq!(code, INVALID_TXN_STATE, "unverified batch");
        assert_eq!(log_end_offset(&mut conn, &topic), 0, "nothing appended");

        // Added: the batch opens the transaction; the commit closes it.
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid(&id))
            .with_v3_and_below_producer_id(pid.into())
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![0]),
            ]);
        let added: AddPartitionsToTxnResponse = conn.request(3, &add).expect("add partitions");
        let code =
            added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        assert_eq!(code, 0, "AddPartitionsToTxn");
        let code = produce_txn(
            &mut conn,
            &topic,
            &id,
            batch(Kind::Transactional, pid, epoch, 0),
        );
        assert_eq!(code, 0, "verified batch");
        assert_eq!(
            last_stable_offset(&mut conn, &topic),
            0,
            "the open transaction holds the LSO"
        );
        let end = EndTxnRequest::default()
            .with_transactional_id(tid(&id))
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch)
            .with_committed(true);
        let ended: EndTxnResponse = conn.request(3, &end).expect("end txn");
        assert_eq!(ended.error_code, 0, "EndTxn");
        // The marker follows the answer: offsets 0 (data) and 1 (COMMIT).
        let deadline = Instant::now() + Duration::from_secs(10);
        while last_stable_offset(&mut conn, &topic) < 2 {
            assert!(Instant::now() < deadline, "the COMMIT marker never came");
            std::thread::sleep(Duration::from_millis(20));
        }

        // A late batch of the committed transaction (its next sequence, as a
        // lost first attempt retried late would carry): refused, so it cannot
        // open a transaction nobody will end.
        let code = produce_txn(
            &mut conn,
            &topic,
            &id,
            batch(Kind::Transactional, pid, epoch, 1),
        );
        assert_eq!(code, INVALID_TXN_STATE, "late batch after the commit");
        assert_eq!(log_end_offset(&mut conn, &topic), 2, "nothing appended");
        assert_eq!(
            last_stable_offset(&mut conn, &topic),
            2,
            "the LSO is not held back"
        );

        // Produce v11+ names the abortable error for what it is.
        let request = produce_request(&topic, batch(Kind::Transactional, pid, epoch, 1))
            .with_transactional_id(Some(tid(&id)));
        let response: ProduceResponse = conn.request(11, &request).expect("produce v11");
        assert_eq!(response.responses[0].partition_responses[0].error_code, 120);
    })
    .await;
}
