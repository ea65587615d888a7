//! Partition reassignment (KIP-455) on a 3-node cluster of real processes: a partition on one
//! broker moves to the two others through AlterPartitionReassignments, every acknowledged record
//! survives the move, the new leader serves reads and writes, and the old broker deletes its copy;
//! a move that cannot finish (its target broker stopped) is listed until cancelled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_e2e::{
    FjordCluster, KafkaConn, assign_from, bounded, client_config, consume_n, consumer, producer,
    topic_name, wait_for,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(60);
const RECORDS: usize = 200;

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join("logs").join(format!("{topic}-{partition}"))
}

fn wire_topic(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// AlterPartitionReassignments v1 for `(partition, target)` of `topic`; returns
/// the per-partition error codes in request order.
fn alter(
    conn: &mut KafkaConn,
    topic: &str,
    partitions: &[(i32, Option<Vec<i32>>)],
    allow_rf_change: bool,
) -> Vec<(i32, i16)> {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(wire_topic(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, target)| {
                            ReassignablePartition::default()
                                .with_partition_index(*p)
                                .with_replicas(
                                    target
                                        .as_ref()
                                        .map(|t| t.iter().copied().map(BrokerId).collect()),
                                )
                        })
                        .collect(),
                ),
        ]);
    let resp: AlterPartitionReassignmentsResponse =
        conn.request(1, &req).expect("AlterPartitionReassignments");
    assert_eq!(resp.error_code, 0, "top-level error: {resp:?}");
    let mut codes: Vec<(i32, i16)> = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    codes.sort_unstable();
    codes
}

/// (partition, replicas, adding, removing) of a reassignment in progress.
type Ongoing = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// ListPartitionReassignments v0: the reassignments in progress for `topic`.
fn list(conn: &mut KafkaConn, topic: &str) -> Vec<Ongoing> {
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(wire_topic(topic))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let resp: ListPartitionReassignmentsResponse =
        conn.request(0, &req).expect("ListPartitionReassignments");
    assert_eq!(resp.error_code, 0, "{resp:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect()
}

async fn produce(p: &FutureProducer, topic: &str, partition: i32, values: &[String]) {
    let mut futures = Vec::new();
    for value in values {
        let rec: FutureRecord<'_, (), String> =
            FutureRecord::to(topic).payload(value).partition(partition);
        futures.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    for f in futures {
        f.await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("acks=all produce to partition {partition}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassign_a_partition_to_two_other_brokers() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("reassign");

        // Two partitions, RF 1, both on broker 1.
        let admin: AdminClient<DefaultClientContext> = client_config(&cluster.bootstrap())
            .create()
            .expect("admin client");
        let assignment: &[&[i32]] = &[&[1], &[1]];
        let new_topic = NewTopic::new(&topic, 2, TopicReplication::Variable(assignment));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for r in admin
            .create_topics([&new_topic], &opts)
            .await
            .expect("CreateTopics")
        {
            r.unwrap_or_else(|(t, e)| panic!("CreateTopics {t}: {e}"));
        }
        block_in_place(|| cluster.wait_for_healthy_topic(&topic, 2, Duration::from_secs(20)));
        let node1_dir = cluster.node(1).data_dir();
        assert!(partition_dir(&node1_dir, &topic, 0).is_dir());

        // acks=all records on both partitions, all acknowledged by broker 1.
        let p = producer(&cluster.bootstrap(), "all", "none");
        let before: Vec<String> = (0..RECORDS).map(|i| format!("before-{i}")).collect();
        produce(&p, &topic, 0, &before).await;
        produce(&p, &topic, 1, &before).await;

        // Through broker 3 (any broker forwards to the controller).
        let mut conn = KafkaConn::connect(&cluster.node(3).bootstrap(), Duration::from_secs(5))
            .expect("connect");
        conn.set_read_timeout(Duration::from_secs(30))
            .expect("read timeout");
        // Refusals, each with Kafka's code, and nothing changes.
        assert_eq!(
            alter(
                &mut conn,
                &topic,
                &[(0, Some(vec![2, 2])), (1, None), (7, Some(vec![2]))],
                true
            ),
            vec![(0, 39), (1, 85), (7, 3)],
            "INVALID_REPLICA_ASSIGNMENT, NO_REASSIGNMENT_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            alter(&mut conn, &topic, &[(0, Some(vec![2, 3]))], false),
            vec![(0, 38)],
            "RF change refused without allowReplicationFactorChange"
        );
        assert!(list(&mut conn, &topic).is_empty());

        // Move partition 0 from broker 1 to brokers 2 and 3.
        assert_eq!(
            alter(&mut conn, &topic, &[(0, Some(vec![2, 3]))], true),
            vec![(0, 0)]
        );
        // Either still in progress (target ∪ original, adding 2 and 3, removing 1) or already done.
        let listed = list(&mut conn, &topic);
        assert!(
            listed.is_empty() || listed == vec![(0, vec![2, 3, 1], vec![2, 3], vec![1])],
            "{listed:?}"
        );
        block_in_place(|| {
            wait_for(
                Duration::from_secs(30),
                "the reassignment to finish",
                || list(&mut conn, &topic).is_empty().then_some(()),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        });
        let moved = block_in_place(|| {
            cluster.wait_for_partition(
                &topic,
                0,
                Duration::from_secs(20),
                "replicas = ISR = [2, 3]",
                |s| s.replicas == vec![2, 3] && s.isr == vec![2, 3] && s.leader != 1,
            )
        });
        assert_eq!(moved.leader, 2, "first target replica in sync leads");
        let untouched = cluster.partition_from(1, &topic, 1).expect("partition 1");
        assert_eq!((untouched.replicas, untouched.leader), (vec![1], 1));

        // The new leader takes acks=all writes (in sync with broker 3) ...
        let after: Vec<String> = (0..RECORDS).map(|i| format!("after-{i}")).collect();
        produce(&p, &topic, 0, &after).await;

        // ... and serves every record, old and new, in order, from broker 2's copy.
        let c = consumer(&cluster.node(2).bootstrap());
        assign_from(&c, &topic, &[0], Offset::Beginning);
        let msgs = block_in_place(|| consume_n(&c, 2 * RECORDS, Duration::from_secs(20)))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let got: Vec<String> = msgs
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            .collect();
        let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
        assert_eq!(got, expected);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "offsets stay dense across the move");
        }

        // Broker 1 deleted its copy of partition 0 and kept partition 1.
        block_in_place(|| {
            wait_for(
                Duration::from_secs(10),
                "broker 1 to delete its partition 0 directory",
                || (!partition_dir(&node1_dir, &topic, 0).exists()).then_some(()),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        });
        assert!(partition_dir(&node1_dir, &topic, 1).is_dir());
        for id in [2, 3] {
            assert!(
                partition_dir(&cluster.node(id).data_dir(), &topic, 0).is_dir(),
                "broker {id} hosts partition 0"
            );
        }

        // Cancel: with a broker stopped, a move of partition 1 to it cannot finish; it is
        // listed in progress until cancelled, and cancelling restores broker 1 alone. The
        // stopped broker is not the controller leader (that would be a controller failover
        // test instead).
        let controller = block_in_place(|| cluster.wait_for_controller(Duration::from_secs(10)));
        let stopped = if controller == 3 { 2 } else { 3 };
        block_in_place(|| cluster.sigstop(stopped));
        let mut conn = KafkaConn::connect(&cluster.node(1).bootstrap(), Duration::from_secs(5))
            .expect("connect");
        conn.set_read_timeout(Duration::from_secs(30))
            .expect("read timeout");
        let epoch_before = cluster
            .partition_from(1, &topic, 1)
            .expect("partition 1")
            .leader_epoch;
        assert_eq!(
            alter(&mut conn, &topic, &[(1, Some(vec![stopped]))], true),
            vec![(1, 0)]
        );
        let in_progress = vec![(1, vec![stopped, 1], vec![stopped], vec![1])];
        assert_eq!(list(&mut conn, &topic), in_progress);
        let more: Vec<String> = (0..10).map(|i| format!("during-{i}")).collect();
        produce(&p, &topic, 1, &more).await;
        assert_eq!(
            list(&mut conn, &topic),
            in_progress,
            "a stopped target replica cannot complete the move"
        );
        assert_eq!(alter(&mut conn, &topic, &[(1, None)], true), vec![(1, 0)]);
        assert!(list(&mut conn, &topic).is_empty());
        let restored = cluster.partition_from(1, &topic, 1).expect("partition 1");
        assert_eq!(
            (
                restored.replicas,
                restored.isr,
                restored.leader,
                restored.leader_epoch
            ),
            (vec![1], vec![1], 1, epoch_before),
            "back to the original replica, same leader and leader epoch"
        );
        assert_eq!(
            alter(&mut conn, &topic, &[(1, None)], true),
            vec![(1, 85)],
            "nothing left to cancel"
        );
        block_in_place(|| cluster.sigcont(stopped));
        let stopped_dir = cluster.node(stopped).data_dir();
        block_in_place(|| {
            wait_for(
                Duration::from_secs(15),
                "the resumed broker to have no copy of partition 1",
                || (!partition_dir(&stopped_dir, &topic, 1).exists()).then_some(()),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        });
        let c = consumer(&cluster.node(1).bootstrap());
        assign_from(&c, &topic, &[1], Offset::Beginning);
        let msgs = block_in_place(|| consume_n(&c, RECORDS + more.len(), Duration::from_secs(20)))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(msgs.len(), RECORDS + more.len());
    })
    .await;
}
