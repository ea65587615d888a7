//! ElectLeaders (preferred) on a 3-node cluster: after the preferred leader
//! stopped and came back in sync, an election hands leadership back to it,
//! and the node that answered already shows the new leader.

use std::time::Duration;

use fjord_e2e::{FjordCluster, KafkaConn, bounded, topic_name};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(90);
const SETTLE: Duration = Duration::from_secs(30);
const PREFERRED: i8 = 0;

/// ElectLeaders v2 (preferred) for `partitions` of `topic` on node `via`;
/// per-partition error codes.
pub(crate) fn elect(
    cluster: &FjordCluster,
    via: i32,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i16)> {
    let mut conn = KafkaConn::connect(&cluster.node(via).bootstrap(), Duration::from_secs(10))
        .expect("connect");
    let req = ElectLeadersRequest::default()
        .with_election_type(PREFERRED)
        .with_timeout_ms(30_000)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions.to_vec()),
        ]));
    let resp: ElectLeadersResponse = conn.request(2, &req).expect("ElectLeaders");
    assert_eq!(resp.error_code, 0, "{resp:?}");
    resp.replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter())
        .map(|p| (p.partition_id, p.error_code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_election_returns_leadership_to_the_first_replica() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("elect");
        cluster.create_topic(&topic, 1, 3, &[]).await;
        let start = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "led by its first replica", |p| {
                p.leader >= 0 && p.replicas.first() == Some(&p.leader)
            })
        });
        let preferred = start.leader;
        let other = *start
            .replicas
            .iter()
            .find(|&&r| r != preferred)
            .expect("rf 3");
        // Already the preferred leader: ELECTION_NOT_NEEDED; no such partition: 3.
        assert_eq!(
            block_in_place(|| elect(&cluster, other, &topic, &[0, 7])),
            vec![(0, 84), (7, 3)]
        );

        // The preferred leader stops (controlled shutdown moves leadership) and comes back.
        block_in_place(|| cluster.stop(preferred));
        block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "led by another replica", |p| {
                p.leader >= 0 && p.leader != preferred
            })
        });
        block_in_place(|| cluster.restart(preferred));
        let moved = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, SETTLE, "all replicas back in sync", |p| {
                p.isr.len() == 3
            })
        });
        assert_ne!(moved.leader, preferred);

        // Ask a node that is not the controller leader: the write is forwarded, and the
        // answer still comes only once that node shows the new leader.
        let controller = block_in_place(|| cluster.wait_for_controller(SETTLE));
        let via = *cluster
            .ids()
            .iter()
            .find(|&&id| id != controller)
            .expect("a non-controller node");
        assert_eq!(
            block_in_place(|| elect(&cluster, via, &topic, &[0])),
            vec![(0, 0)]
        );
        let now = cluster.partition_from(via, &topic, 0).expect("partition");
        assert_eq!(
            now.leader, preferred,
            "node {via} right after the election: {now:?}"
        );
        assert!(now.leader_epoch > moved.leader_epoch);
    })
    .await;
}
