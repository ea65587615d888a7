//! The administrative transaction APIs against a live node, with raw
//! kafka-protocol requests and the `fjord txn` CLI: DescribeProducers shows
//! an idempotent producer and a transaction left open on a partition (its
//! producer wrote a transactional batch and went away), `fjord txn
//! find-hanging` does not report it while its coordinator has it open, and
//! WriteTxnMarkers(ABORT), as Admin `abortTransaction` / `fjord txn abort`
//! send it to the leader, ends it and releases the partition's last stable
//! offset; ListTransactions and
//! DescribeTransactions answer on a node that coordinates nothing, and list
//! and describe a transactional producer through Empty, Ongoing (with its
//! partition) and, after a hand-written ABORT marker and the producer's own
//! abort, CompleteAbort; on three nodes, each broker lists the ids it
//! coordinates, `fjord txn list` merges them, and followers describe
//! producers too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::BytesMut;
use fjord_e2e::{
    ClusterOptions, FjordCluster, FjordNode, KafkaConn, bounded, cli_ok, create_topic, topic_name,
    wait_for,
};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::PartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, DescribeProducersRequest, DescribeTransactionsRequest,
    EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ListTransactionsRequest,
    ProduceRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::task::block_in_place;

use super::idempotence::{batch, init_producer_id, produce};
use crate::produce_validation::latest_offset;

const LIMIT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

fn wire(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A transactional batch of `count` records of producer `pid`, sequences from 0.
fn txn_batch(pid: i64, epoch: i16, count: i32) -> bytes::Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: i,
            timestamp: now,
            key: None,
            value: Some(format!("txn {i}").into()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.freeze()
}

/// Produce a transactional batch to partition 0 (acks=all), as a
/// transactional producer does; the base offset.
fn produce_transactional(
    conn: &mut KafkaConn,
    topic: &str,
    txn_id: &str,
    records: bytes::Bytes,
) -> i64 {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(wire(txn_id))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(wire(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = conn.request(9, &request).expect("produce");
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "transactional produce");
    p.base_offset
}

/// DescribeProducers v0 for `partitions` of `topic`, by partition.
fn describe_producers(
    conn: &mut KafkaConn,
    topic: &str,
    partitions: &[i32],
) -> Vec<PartitionResponse> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(TopicName(wire(topic)))
            .with_partition_indexes(partitions.to_vec()),
    ]);
    let response = conn.request(0, &request).expect("DescribeProducers");
    assert_eq!(response.topics.len(), 1);
    response
        .topics
        .into_iter()
        .next()
        .expect("topic")
        .partitions
}

/// ListOffsets LATEST of partition 0 at READ_COMMITTED: the last stable offset.
pub(crate) fn last_stable_offset(conn: &mut KafkaConn, topic: &str) -> i64 {
    latest_offset(conn, topic, 1)
}

/// WriteTxnMarkers v1, ABORT, one marker per (producer epoch, coordinator
/// epoch, partitions).
fn abort_markers(
    conn: &mut KafkaConn,
    pid: i64,
    markers: &[(i16, i32, &str, &[i32])],
) -> WriteTxnMarkersResponse {
    let request = WriteTxnMarkersRequest::default().with_markers(
        markers
            .iter()
            .map(|&(epoch, coordinator_epoch, topic, partitions)| {
                WritableTxnMarker::default()
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_transaction_result(false)
                    .with_coordinator_epoch(coordinator_epoch)
                    .with_topics(vec![
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(wire(topic)))
                            .with_partition_indexes(partitions.to_vec()),
                    ])
            })
            .collect(),
    );
    conn.request(1, &request).expect("WriteTxnMarkers")
}

/// The codes of a WriteTxnMarkers response, in request order.
fn marker_codes(response: &WriteTxnMarkersResponse) -> Vec<i16> {
    response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_is_described_and_aborted_by_hand() {
    bounded(LIMIT, async {
        // Phase 1: one node, one partition.
        let node = FjordNode::start();
        let topic = topic_name("txn-admin-open");
        create_topic(&node.bootstrap(), &topic, 1).await;
        block_in_place(|| {
            let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
            let node_id = conn.metadata().expect("metadata").brokers[0].node_id.0;

            // Phase 2: an idempotent producer writes 3 records.
            let idem = init_producer_id(&mut conn);
            assert_eq!(idem.error_code, 0);
            let idem_pid = idem.producer_id.0;
            assert_eq!(produce(&mut conn, &topic, batch(idem_pid, 0, 0, 3)), (0, 0));

            // Phase 3: a transactional producer writes a batch and never
            // ends its transaction.
            let txn_id = format!("{topic}-abandoned");
            let (txn_pid, txn_epoch) = init_transactional(&mut conn, &txn_id);
            assert_eq!(txn_epoch, 0);
            add_partition(&mut conn, &txn_id, txn_pid, txn_epoch, &topic);
            let start = produce_transactional(&mut conn, &topic, &txn_id, txn_batch(txn_pid, 0, 2));
            assert_eq!(start, 3);
            assert_eq!(
                last_stable_offset(&mut conn, &topic),
                start,
                "the open transaction holds the LSO"
            );

            // Phase 4: DescribeProducers shows both, and per-partition errors.
            let partitions = describe_producers(&mut conn, &topic, &[0, 7]);
            assert_eq!(partitions[0].error_code, 0);
            let mut producers: Vec<_> = partitions[0]
                .active_producers
                .iter()
                .map(|p| {
                    (
                        p.producer_id.0,
                        p.producer_epoch,
                        p.last_sequence,
                        p.coordinator_epoch,
                        p.current_txn_start_offset,
                    )
                })
                .collect();
            producers.sort();
            assert_eq!(
                producers,
                vec![(idem_pid, 0, 2, -1, -1), (txn_pid, 0, 1, -1, start)]
            );
            assert!(
                partitions[0]
                    .active_producers
                    .iter()
                    .all(|p| p.last_timestamp > 0)
            );
            assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
            let unknown = describe_producers(&mut conn, "no-such-topic", &[0]);
            assert_eq!(unknown[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

            // Phase 5: `fjord txn find-hanging`, with a maximum timeout of
            // 0 min, counts the open transaction, but its
            // coordinator has it Ongoing on this partition: not hanging.
            // (With KIP-890 verification no batch can open a transaction
            // its coordinator does not know, so a really hanging one cannot
            // be made through the protocol; `txn::still_open` is unit-tested.)
            let find_hanging = [
                "txn",
                "find-hanging",
                "--broker-id",
                &node_id.to_string(),
                "--max-transaction-timeout",
                "0",
            ];
            let out = cli_ok(&find_hanging, &node.cli(&find_hanging, None));
            assert!(
                out.contains("No hanging transactions") && out.contains("(1 open"),
                "{out}"
            );

            // Phase 6: refused markers: an older producer epoch; an
            // unknown partition; written together in one request.
            let refused = abort_markers(
                &mut conn,
                txn_pid,
                &[(-1, 0, topic.as_str(), &[0]), (0, 0, topic.as_str(), &[9])],
            );
            assert_eq!(
                marker_codes(&refused),
                vec![INVALID_PRODUCER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION]
            );
            assert_eq!(last_stable_offset(&mut conn, &topic), start);

            // Phase 7: `fjord txn abort` ends it: the LSO moves past the marker.
            let args = [
                "txn",
                "abort",
                "--topic",
                &topic,
                "--partition",
                "0",
                "--producer-id",
                &txn_pid.to_string(),
                "--producer-epoch",
                "0",
                "--coordinator-epoch",
                "3",
            ];
            cli_ok(&args, &node.cli(&args, None));
            // 3 records, 2 transactional, 1 marker.
            assert_eq!(last_stable_offset(&mut conn, &topic), 6);
            let after = describe_producers(&mut conn, &topic, &[0]);
            let p = after[0]
                .active_producers
                .iter()
                .find(|p| p.producer_id.0 == txn_pid)
                .expect("producer still known");
            assert_eq!((p.coordinator_epoch, p.current_txn_start_offset), (3, -1));

            // Phase 8: a marker from an older coordinator epoch is fenced.
            let fenced = abort_markers(&mut conn, txn_pid, &[(0, 2, topic.as_str(), &[0])]);
            assert_eq!(marker_codes(&fenced), vec![TRANSACTION_COORDINATOR_FENCED]);
            let out = cli_ok(&find_hanging, &node.cli(&find_hanging, None));
            assert!(
                out.contains("No hanging transactions") && out.contains("(0 open"),
                "{out}"
            );
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_transactions_on_a_node_that_coordinates_none() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        block_in_place(|| {
            let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
            // Phase 1: the four apis are advertised at the versions served.
            let versions = conn.api_versions().expect("ApiVersions");
            for (key, range) in [
                (ApiKey::WriteTxnMarkers, (1, 1)),
                (ApiKey::DescribeProducers, (0, 0)),
                (ApiKey::DescribeTransactions, (0, 0)),
                (ApiKey::ListTransactions, (0, 1)),
            ] {
                assert_eq!(versions.get(&(key as i16)), Some(&range), "{key:?}");
            }

            // Phase 2: ListTransactions (v0 and v1) lists nothing; unknown
            // state names come back.
            for version in 0..=1 {
                let request = ListTransactionsRequest::default()
                    .with_state_filters(vec![wire("Ongoing"), wire("Bogus")])
                    .with_duration_filter(if version >= 1 { 1000 } else { -1 });
                let response = conn.request(version, &request).expect("ListTransactions");
                assert_eq!(response.error_code, 0, "v{version}");
                assert!(response.transaction_states.is_empty(), "v{version}");
                let unknown: Vec<&str> = response
                    .unknown_state_filters
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                assert_eq!(unknown, vec!["Bogus"], "v{version}");
            }

            // Phase 3: DescribeTransactions of an id: not coordinated here
            // (no `__transaction_state` partition is led here).
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(wire("nobody"))]);
            let response = conn.request(0, &request).expect("DescribeTransactions");
            assert_eq!(response.transaction_states.len(), 1);
            let state = &response.transaction_states[0];
            assert_eq!(state.transactional_id.0.as_str(), "nobody");
            assert_eq!(state.error_code, NOT_COORDINATOR);

            // Phase 4: the CLI's list says so.
            let args = ["txn", "list"];
            let out = cli_ok(&args, &node.cli(&args, None));
            assert!(out.contains("No transactions."), "{out}");
        });
    })
    .await;
}

/// InitProducerId v4 for `txn_id`, retried (as a client, which looks the
/// coordinator up again) while the coordinator is being created or loads;
/// (producer id, epoch).
pub(crate) fn init_transactional(conn: &mut KafkaConn, txn_id: &str) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(wire(txn_id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    wait_for(
        Duration::from_secs(30),
        "InitProducerId with a transactional id",
        || {
            let response = conn.request(4, &request).expect("InitProducerId");
            match response.error_code {
                0 => Some((response.producer_id.0, response.producer_epoch)),
                // `__transaction_state` is created by this call and its
                // partitions are led and loaded moments later.
                NOT_COORDINATOR
                | COORDINATOR_LOAD_IN_PROGRESS
                | COORDINATOR_NOT_AVAILABLE
                | CONCURRENT_TRANSACTIONS => None,
                code => panic!("InitProducerId answered {code}"),
            }
        },
    )
    .expect("a producer id")
}

/// AddPartitionsToTxn v3: partition 0 of `topic` joins the transaction.
pub(crate) fn add_partition(conn: &mut KafkaConn, txn_id: &str, pid: i64, epoch: i16, topic: &str) {
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(wire(txn_id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(wire(topic)))
                .with_partitions(vec![0]),
        ]);
    let added = conn.request(3, &add).expect("AddPartitionsToTxn");
    let codes: Vec<i16> = added
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect();
    assert_eq!(codes, vec![0], "AddPartitionsToTxn");
}

/// ListTransactions v1 at the node: (id, producer id, state), sorted.
fn list_transactions(
    conn: &mut KafkaConn,
    states: &[&str],
    pids: &[i64],
) -> Vec<(String, i64, String)> {
    let request = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|s| wire(s)).collect())
        .with_producer_id_filters(pids.iter().copied().map(ProducerId).collect());
    let response = conn.request(1, &request).expect("ListTransactions");
    assert_eq!(response.error_code, 0);
    let mut listed: Vec<_> = response
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
            )
        })
        .collect();
    listed.sort();
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_producer_is_listed_described_and_its_partition_aborted() {
    bounded(LIMIT, async {
        // Phase 1: one node, one partition; a transactional producer.
        let node = FjordNode::start();
        let topic = topic_name("txn-admin-described");
        create_topic(&node.bootstrap(), &topic, 1).await;
        block_in_place(|| {
            let mut conn = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
            let txn_id = "admin-described";
            let (pid, epoch) = init_transactional(&mut conn, txn_id);

            // Phase 2: Empty: listed and described.
            assert_eq!(
                list_transactions(&mut conn, &[], &[]),
                vec![(txn_id.to_string(), pid, "Empty".to_string())]
            );
            let describe = |conn: &mut KafkaConn| {
                let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
                    TransactionalId(wire(txn_id)),
                    TransactionalId(wire("unknown-id")),
                ]);
                conn.request(0, &request).expect("DescribeTransactions")
            };
            let described = describe(&mut conn);
            let t = &described.transaction_states[0];
            assert_eq!((t.error_code, t.transaction_state.as_str()), (0, "Empty"));
            assert_eq!(
                (t.producer_id.0, t.producer_epoch, t.transaction_timeout_ms),
                (pid, epoch, 60_000)
            );
            assert!(t.topics.is_empty());
            // Not known: TRANSACTIONAL_ID_NOT_FOUND when its partition is
            // led here (one node leads every partition), else NOT_COORDINATOR.
            let unknown = &described.transaction_states[1];
            assert_eq!(unknown.transactional_id.0.as_str(), "unknown-id");
            assert_eq!(unknown.error_code, TRANSACTIONAL_ID_NOT_FOUND);

            // Phase 3: the producer adds the partition and writes to it: Ongoing.
            add_partition(&mut conn, txn_id, pid, epoch, &topic);
            let start = produce_transactional(&mut conn, &topic, txn_id, txn_batch(pid, epoch, 2));
            assert_eq!(start, 0);

            assert_eq!(
                list_transactions(&mut conn, &["Ongoing", "NoSuchState"], &[pid]),
                vec![(txn_id.to_string(), pid, "Ongoing".to_string())]
            );
            assert!(list_transactions(&mut conn, &["Empty"], &[]).is_empty());
            assert!(list_transactions(&mut conn, &[], &[pid + 1]).is_empty());
            let described = describe(&mut conn);
            let t = &described.transaction_states[0];
            assert_eq!(t.transaction_state.as_str(), "Ongoing");
            assert!(t.transaction_start_time_ms > 0);
            let topics: Vec<(&str, &[i32])> = t
                .topics
                .iter()
                .map(|d| (d.topic.0.as_str(), &d.partitions[..]))
                .collect();
            assert_eq!(topics, vec![(topic.as_str(), &[0][..])]);

            // Phase 4: the CLI shows the same.
            let args = ["txn", "list"];
            let out = cli_ok(&args, &node.cli(&args, None));
            let row: Vec<&str> = out
                .lines()
                .find(|l| l.starts_with(txn_id))
                .unwrap_or_else(|| panic!("{out}"))
                .split_whitespace()
                .collect();
            assert_eq!(row[2..], [pid.to_string().as_str(), "Ongoing"], "{out}");
            let args = ["txn", "describe", txn_id];
            let out = cli_ok(&args, &node.cli(&args, None));
            assert!(
                out.contains("Ongoing") && out.contains(&format!("{topic}-0")),
                "{out}"
            );
            let args = ["txn", "describe", "unknown-id"];
            let failed = node.cli(&args, None);
            assert!(!failed.status.success());
            let stderr = String::from_utf8_lossy(&failed.stderr);
            assert!(stderr.contains("TRANSACTIONAL_ID_NOT_FOUND"), "{stderr}");

            // Phase 5: DescribeProducers shows the open transaction; an
            // ABORT marker written by hand (Admin `abortTransaction`) ends
            // it on the partition and releases the LSO.
            let producers = describe_producers(&mut conn, &topic, &[0]);
            let p = producers[0]
                .active_producers
                .iter()
                .find(|p| p.producer_id.0 == pid)
                .expect("the transactional producer");
            assert_eq!(p.current_txn_start_offset, 0);
            assert_eq!(last_stable_offset(&mut conn, &topic), 0);
            let aborted = abort_markers(&mut conn, pid, &[(epoch, 0, topic.as_str(), &[0])]);
            assert_eq!(marker_codes(&aborted), vec![0]);
            assert_eq!(last_stable_offset(&mut conn, &topic), 3);

            // Phase 6: the producer aborts too; the coordinator's own
            // markers (coordinator epoch not below 0) are accepted and the
            // transaction completes.
            let end = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(wire(txn_id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(false);
            assert_eq!(conn.request(3, &end).expect("EndTxn").error_code, 0);
            wait_for(Duration::from_secs(20), "CompleteAbort", || {
                let listed = list_transactions(&mut conn, &["CompleteAbort"], &[]);
                (listed.len() == 1).then_some(())
            })
            .expect("the transaction completes");
        });
    })
    .await;
}

/// FindCoordinator(TRANSACTION) v3 for `txn_id` through `conn`, retried
/// while `__transaction_state` is created and its leaders elected.
pub(crate) fn transaction_coordinator(conn: &mut KafkaConn, txn_id: &str) -> i32 {
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(wire(txn_id));
    wait_for(Duration::from_secs(30), "a transaction coordinator", || {
        let response = conn.request(3, &request).expect("FindCoordinator");
        (response.error_code == 0).then_some(response.node_id.0)
    })
    .expect("coordinator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_broker_lists_the_ids_it_coordinates_and_followers_describe_producers() {
    bounded(LIMIT, async {
        // Phase 1: three nodes; a topic with every node a replica.
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        let topic = topic_name("txn-admin-cluster");
        cluster.create_topic(&topic, 1, 3, &[]).await;
        block_in_place(|| {
            // Phase 2: transactional ids until two coordinators have some.
            let mut bootstrap =
                KafkaConn::connect(&cluster.node(1).bootstrap(), IO_TIMEOUT).expect("connect");
            let mut coordinators: BTreeMap<String, i32> = BTreeMap::new();
            for i in 0.. {
                let txn_id = format!("{topic}-id-{i}");
                let coordinator = transaction_coordinator(&mut bootstrap, &txn_id);
                let mut conn =
                    KafkaConn::connect(&cluster.node(coordinator).bootstrap(), IO_TIMEOUT)
                        .expect("connect to the coordinator");
                init_transactional(&mut conn, &txn_id);
                coordinators.insert(txn_id, coordinator);
                let distinct: BTreeSet<i32> = coordinators.values().copied().collect();
                if coordinators.len() >= 6 && distinct.len() >= 2 {
                    break;
                }
            }

            // Phase 3: each broker lists exactly the ids it coordinates.
            for id in cluster.ids() {
                let mut conn =
                    KafkaConn::connect(&cluster.node(id).bootstrap(), IO_TIMEOUT).expect("connect");
                let listed: BTreeSet<String> = list_transactions(&mut conn, &[], &[])
                    .into_iter()
                    .map(|(txn_id, _, state)| {
                        assert_eq!(state, "Empty");
                        txn_id
                    })
                    .collect();
                let expected: BTreeSet<String> = coordinators
                    .iter()
                    .filter(|&(_, &c)| c == id)
                    .map(|(txn_id, _)| txn_id.clone())
                    .collect();
                assert_eq!(listed, expected, "node {id}");
            }

            // Phase 4: `fjord txn list` merges them, with their coordinators.
            let args = ["txn", "list"];
            let out = cli_ok(&args, &cluster.node(1).cli(&args, None));
            let rows: BTreeMap<String, i32> = out
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    Some((cells.first()?.to_string(), cells.get(1)?.parse().ok()?))
                })
                .collect();
            assert_eq!(rows, coordinators, "{out}");

            // Phase 5: an idempotent produce; every replica, leader or
            // follower, describes the producer once it has the batch.
            let leader = cluster
                .partition_from(1, &topic, 0)
                .expect("partition")
                .leader;
            let mut conn =
                KafkaConn::connect(&cluster.node(leader).bootstrap(), IO_TIMEOUT).expect("connect");
            let idem = init_producer_id(&mut conn);
            assert_eq!(
                produce(&mut conn, &topic, batch(idem.producer_id.0, 0, 0, 2)),
                (0, 0)
            );
            for id in cluster.ids() {
                let mut conn =
                    KafkaConn::connect(&cluster.node(id).bootstrap(), IO_TIMEOUT).expect("connect");
                wait_for(
                    Duration::from_secs(20),
                    "the producer on every replica",
                    || {
                        let partition = describe_producers(&mut conn, &topic, &[0]).remove(0);
                        assert_eq!(partition.error_code, 0, "node {id}");
                        partition
                            .active_producers
                            .iter()
                            .find(|p| p.producer_id.0 == idem.producer_id.0)
                            .map(|p| assert_eq!(p.last_sequence, 1, "node {id}"))
                    },
                )
                .expect("replicated producer state");
            }
        });
    })
    .await;
}
