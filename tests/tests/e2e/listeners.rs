//! Several Kafka listeners per node (Kafka's `listeners` / `advertised_listeners`): nodes
//! with an INTERNAL listener advertised as `127.0.0.1:P1` and an EXTERNAL one advertised as
//! `localhost:P2`. A client is told the addresses of the listener it connected to, in
//! Metadata, DescribeCluster and FindCoordinator, and rdkafka clients produce and consume
//! through either.

use std::time::Duration;

use fjord_e2e::{
    ClusterOptions, FjordCluster, KafkaConn, assign_from, bounded, consume_n, consumer,
    create_topic, producer, topic_name, wait_for,
};
use kafka_protocol::messages::{
    DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// (node id, host, port) of every broker a Metadata response lists, by node id.
fn metadata_brokers(md: &MetadataResponse) -> Vec<(i32, String, i32)> {
    let mut brokers: Vec<(i32, String, i32)> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect();
    brokers.sort();
    brokers
}

/// Metadata (all topics) asked on `addr`.
fn metadata_on(addr: &str) -> MetadataResponse {
    let mut conn = KafkaConn::connect(addr, IO_TIMEOUT).expect("connect");
    let v = conn.best_version::<MetadataRequest>().expect("versions");
    conn.request(v, &MetadataRequest::default().with_topics(None))
        .expect("Metadata")
}

/// DescribeCluster's brokers as a client connected to `addr` sees them.
fn described_brokers(addr: &str) -> Vec<(i32, String, i32)> {
    let mut conn = KafkaConn::connect(addr, IO_TIMEOUT).expect("connect");
    let v = conn
        .best_version::<DescribeClusterRequest>()
        .expect("versions");
    let resp = conn
        .request(v, &DescribeClusterRequest::default().with_endpoint_type(1))
        .expect("DescribeCluster");
    assert_eq!(resp.error_code, 0, "DescribeCluster error");
    let mut brokers: Vec<(i32, String, i32)> = resp
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
        .collect();
    brokers.sort();
    brokers
}

/// The coordinator of `group` as a client connected to `addr` is told to reach it
/// (FindCoordinator v3; waits while `__consumer_offsets` is being created).
fn coordinator_on(addr: &str, group: &str) -> (i32, String, i32) {
    wait_for(
        Duration::from_secs(30),
        &format!("a coordinator for {group} on {addr}"),
        || {
            let mut conn = KafkaConn::connect(addr, IO_TIMEOUT).ok()?;
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_string()))
                .with_key_type(0);
            let resp = conn.request(3, &req).ok()?;
            (resp.error_code == 0).then(|| (resp.node_id.0, resp.host.to_string(), resp.port))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Produces `n` records (`{tag}-{i}`) through `bootstrap`, round robin over `partitions`.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, tag: &str, n: usize) {
    let p = producer(bootstrap, "all", "none");
    for i in 0..n {
        let value = format!("{tag}-{i}");
        let partition = i32::try_from(i).expect("small") % partitions;
        p.send(
            FutureRecord::<(), _>::to(topic)
                .payload(&value)
                .partition(partition),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce {value} through {bootstrap}: {e}"));
    }
}

/// Reads every partition of `topic` from the start through `bootstrap`: the values.
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> Vec<String> {
    let c = consumer(bootstrap);
    let all: Vec<i32> = (0..partitions).collect();
    assign_from(&c, topic, &all, Offset::Beginning);
    let mut values: Vec<String> = consume_n(&c, n, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("consume through {bootstrap}: {e:#}"))
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    values
}

fn expected(tags: &[&str], n: usize) -> Vec<String> {
    let mut values: Vec<String> = tags
        .iter()
        .flat_map(|tag| (0..n).map(move |i| format!("{tag}-{i}")))
        .collect();
    values.sort();
    values
}

fn with_external_listener(nodes: usize) -> ClusterOptions {
    ClusterOptions {
        external_listener: true,
        ..ClusterOptions::fast(nodes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_answers_with_its_own_advertised_address() {
    bounded(LIMIT, async {
        // Phase 1: one node with INTERNAL (127.0.0.1:P1) and EXTERNAL (localhost:P2).
        let cluster = block_in_place(|| FjordCluster::start_with(with_external_listener(1)));
        let internal = cluster.node(1).bootstrap();
        let external = cluster.external_bootstrap(1);
        let port = |addr: &str| -> i32 {
            addr.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .expect("port")
        };
        let (p1, p2) = (port(&internal), port(&external));
        assert_ne!(p1, p2);

        // Phase 2: Metadata, DescribeCluster and FindCoordinator name the broker by the
        // listener the request came in on.
        block_in_place(|| {
            assert_eq!(
                metadata_brokers(&metadata_on(&internal)),
                vec![(1, "127.0.0.1".to_string(), p1)]
            );
            assert_eq!(
                metadata_brokers(&metadata_on(&external)),
                vec![(1, "localhost".to_string(), p2)]
            );
            assert_eq!(
                described_brokers(&internal),
                vec![(1, "127.0.0.1".to_string(), p1)]
            );
            assert_eq!(
                described_brokers(&external),
                vec![(1, "localhost".to_string(), p2)]
            );
            let group = topic_name("listeners-group");
            assert_eq!(
                coordinator_on(&internal, &group),
                (1, "127.0.0.1".to_string(), p1)
            );
            assert_eq!(
                coordinator_on(&external, &group),
                (1, "localhost".to_string(), p2)
            );
        });

        // Phase 3: rdkafka clients bootstrap on either listener and then use the advertised
        // address they were given: produce through each, read everything back through each.
        let topic = topic_name("listeners");
        const N: usize = 20;
        create_topic(&external, &topic, 1).await;
        produce(&internal, &topic, 1, "internal", N).await;
        produce(&external, &topic, 1, "external", N).await;
        let want = expected(&["internal", "external"], N);
        block_in_place(|| {
            assert_eq!(consume_all(&internal, &topic, 1, 2 * N), want);
            assert_eq!(consume_all(&external, &topic, 1, 2 * N), want);
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_advertises_every_broker_on_the_listener_asked() {
    bounded(LIMIT, async {
        // Phase 1: three nodes, each with INTERNAL and EXTERNAL listeners.
        let mut cluster = block_in_place(|| FjordCluster::start_with(with_external_listener(3)));
        let port = |addr: &str| -> i32 {
            addr.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .expect("port")
        };
        let internal: Vec<(i32, String, i32)> = cluster
            .ids()
            .into_iter()
            .map(|id| {
                (
                    id,
                    "127.0.0.1".to_string(),
                    port(&cluster.node(id).bootstrap()),
                )
            })
            .collect();
        let external: Vec<(i32, String, i32)> = cluster
            .ids()
            .into_iter()
            .map(|id| {
                (
                    id,
                    "localhost".to_string(),
                    port(&cluster.external_bootstrap(id)),
                )
            })
            .collect();

        // Phase 2: every node lists every broker with the endpoint of the listener asked.
        block_in_place(|| {
            for id in cluster.ids() {
                let md = metadata_on(&cluster.node(id).bootstrap());
                assert_eq!(metadata_brokers(&md), internal, "node {id}, INTERNAL");
                let md = metadata_on(&cluster.external_bootstrap(id));
                assert_eq!(metadata_brokers(&md), external, "node {id}, EXTERNAL");
            }
        });

        // Phase 3: partitions led by all three nodes; a client that only knows the EXTERNAL
        // addresses produces and consumes through every leader.
        let topic = topic_name("listeners-cluster");
        const PARTITIONS: i32 = 3;
        const N: usize = 30;
        cluster.create_topic(&topic, PARTITIONS, 3, &[]).await;
        let external_bootstrap = cluster
            .ids()
            .into_iter()
            .map(|id| cluster.external_bootstrap(id))
            .collect::<Vec<_>>()
            .join(",");
        produce(&external_bootstrap, &topic, PARTITIONS, "external", N).await;
        produce(&cluster.bootstrap(), &topic, PARTITIONS, "internal", N).await;
        let want = expected(&["external", "internal"], N);
        block_in_place(|| {
            assert_eq!(
                consume_all(&external_bootstrap, &topic, PARTITIONS, 2 * N),
                want
            );
        });
    })
    .await;
}
