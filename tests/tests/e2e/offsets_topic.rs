//! `__consumer_offsets` is created with `offsets_topic_replication_factor` replicas, never
//! fewer: as Kafka, while fewer brokers than the factor are alive, FindCoordinator answers
//! COORDINATOR_NOT_AVAILABLE (retriable) and nothing is created.

use std::time::Duration;

use fjord_e2e::{FjordCluster, KafkaConn, bounded, probe_metadata, wait_for};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const OFFSETS: &str = "__consumer_offsets";
/// `offsets_topic_num_partitions` in the harness's node config.
const OFFSETS_PARTITIONS: i32 = 4;

/// FindCoordinator(group) at node `id`: the error code and the coordinator's node id.
fn find_coordinator(cluster: &FjordCluster, id: i32, group: &str) -> anyhow::Result<(i16, i32)> {
    let mut conn = KafkaConn::connect(&cluster.node(id).bootstrap(), Duration::from_secs(5))?;
    let v = conn.best_version::<FindCoordinatorRequest>()?;
    let key = StrBytes::from_string(group.to_string());
    if v >= 4 {
        let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![key]);
        let resp = conn.request(v, &req)?;
        let c = resp
            .coordinators
            .first()
            .ok_or_else(|| anyhow::anyhow!("no coordinator entry"))?;
        Ok((c.error_code, c.node_id.0))
    } else {
        let resp = conn.request(v, &FindCoordinatorRequest::default().with_key(key))?;
        Ok((resp.error_code, resp.node_id.0))
    }
}

/// Brokers node `id`'s Metadata lists (the unfenced ones).
fn listed_brokers(cluster: &FjordCluster, id: i32) -> Option<usize> {
    probe_metadata(&cluster.node(id).bootstrap())
        .ok()
        .map(|md| md.brokers.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_waits_for_its_replication_factor() {
    bounded(Duration::from_secs(60), async {
        block_in_place(|| {
            let mut cluster = FjordCluster::start(3);
            assert_eq!(cluster.options().replication_factor, 3);

            // Phase 1: node 3 stops before any group exists and is fenced.
            cluster.stop(3);
            wait_for(Duration::from_secs(15), "node 3 to be fenced", || {
                [1, 2]
                    .iter()
                    .all(|&id| listed_brokers(&cluster, id) == Some(2))
                    .then_some(())
            })
            .unwrap_or_else(|e| panic!("{e:#}"));

            // Phase 2: two live brokers, factor 3: COORDINATOR_NOT_AVAILABLE from both, for
            // a while, and no `__consumer_offsets` (in particular none with RF 2).
            for round in 0..4 {
                for id in [1, 2] {
                    let (code, _) = find_coordinator(&cluster, id, &format!("g-{round}"))
                        .unwrap_or_else(|e| panic!("FindCoordinator at node {id}: {e:#}"));
                    assert_eq!(code, COORDINATOR_NOT_AVAILABLE, "node {id}, round {round}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            for id in [1, 2] {
                assert!(
                    cluster.topic_from(id, OFFSETS).is_none(),
                    "{OFFSETS} created with two live brokers (node {id})"
                );
            }

            // Phase 3: node 3 returns; FindCoordinator succeeds and the topic has RF 3.
            cluster.restart(3);
            let coordinator = wait_for(
                Duration::from_secs(20),
                "FindCoordinator to succeed",
                || match find_coordinator(&cluster, 1, "g-0") {
                    Ok((0, node)) => Some(node),
                    _ => None,
                },
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
            assert!((1..=3).contains(&coordinator), "coordinator {coordinator}");
            let partitions = wait_for(
                Duration::from_secs(15),
                "every partition of __consumer_offsets to have a leader",
                || {
                    cluster
                        .topic_from(1, OFFSETS)
                        .filter(|t| t.len() == OFFSETS_PARTITIONS as usize)
                        .filter(|t| t.values().all(|p| p.leader >= 0))
                },
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
            for (p, state) in &partitions {
                let mut replicas = state.replicas.clone();
                replicas.sort_unstable();
                assert_eq!(replicas, vec![1, 2, 3], "{OFFSETS}-{p}");
            }
        })
    })
    .await;
}
