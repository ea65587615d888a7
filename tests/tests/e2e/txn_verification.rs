//! KIP-890 part 1 with real requests: a producer's transactional batch
//! opens a transaction on a partition only once the transaction
//! coordinator confirms the partition is in the producer's ongoing
//! transaction. A batch sent before AddPartitionsToTxn, and a late batch
//! arriving after its transaction committed (the "hanging transaction" of
//! KIP-890), are refused with INVALID_TXN_STATE; nothing of them is
//! appended and the last stable offset is not held back.

use std::time::{Duration, Instant};

use fjord_e2e::{FjordNode, KafkaConn, bounded, create_topic, topic_name};
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProduceResponse, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::idempotence::produce_request;
use crate::produce_validation::{Kind, batch, log_end_offset};
use crate::transactions_admin::{
    add_partition, init_transactional, last_stable_offset, transaction_coordinator,
};

const LIMIT: Duration = Duration::from_secs(90);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const INVALID_TXN_STATE: i16 = 48;
fn tid(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Produce v9 of `records` to partition 0 as transactional id `id`.
fn produce_txn(conn: &mut KafkaConn, topic: &str, id: &str, records: bytes::Bytes) -> i16 {
    let request = produce_request(topic, records).with_transactional_id(Some(tid(id)));
    let response: ProduceResponse = conn.request(9, &request).expect("produce");
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_batches_open_a_transaction_only_when_verified() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("txn-verify");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        let id = format!("{topic}-producer");

        assert_eq!(
            transaction_coordinator(&mut conn, &id),
            1,
            "this node coordinates"
        );
        let (pid, epoch) = init_transactional(&mut conn, &id);

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
        add_partition(&mut conn, &id, pid, epoch, &topic);
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
