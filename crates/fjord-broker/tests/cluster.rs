//! Three in-process nodes, each a controller voter and a broker sharing one
//! tonic server (ControllerService + ReplicaService) on 127.0.0.1, as a node
//! wires them: followers fetch from the leader over gRPC, acks=all commits
//! across the ISR, and after the leader's controlled shutdown a follower
//! takes over with every acknowledged record. A transaction coordinator
//! marks a partition another node leads over the same gRPC server.

mod txn_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_broker::replication::replica_service;
use fjord_broker::{
    Acks, AdvertisedListener, Broker, BrokerConfig, FetchParams, FetchPartition, NewTopic,
    ProducePartition, ReplicationConfig,
};
use fjord_controller::{Controller, ControllerConfig};
use fjord_coordinator::runtime::TransactionServiceConfig;
use fjord_log::testing::batch;
use fjord_types::{BrokerId, TopicPartition};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

const CONVERGE: Duration = Duration::from_secs(15);

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Node {
    id: BrokerId,
    addr: SocketAddr,
    dir: Arc<tempfile::TempDir>,
    controller: Controller,
    broker: Arc<Broker>,
    stop: CancellationToken,
}

/// A node's controller, serving on `listener` with the ReplicaService
/// waiting for the broker; `ready` and the broker come after.
struct Opened {
    id: BrokerId,
    addr: SocketAddr,
    dir: Arc<tempfile::TempDir>,
    controller: Controller,
    broker_tx: watch::Sender<Option<Arc<Broker>>>,
    stop: CancellationToken,
}

async fn open_node(
    id: BrokerId,
    dir: Arc<tempfile::TempDir>,
    listener: TcpListener,
    voters: &BTreeMap<BrokerId, String>,
) -> Opened {
    let addr = listener.local_addr().expect("addr");
    let config = ControllerConfig {
        voters: voters.clone(),
        rpc_addr: Some(addr.to_string()),
        election_timeout_ms: (300, 600),
        heartbeat_interval_ms: 50,
        startup_timeout_ms: 20_000,
        write_timeout_ms: 10_000,
        ..ControllerConfig::single_voter(id, dir.path().join("controller"), addr.to_string())
    };
    let controller = Controller::open(config).await.expect("open");
    let (broker_tx, broker_rx) = watch::channel(None::<Arc<Broker>>);
    let stop = CancellationToken::new();
    let router = tonic::transport::Server::builder()
        .add_service(controller.rpc_service())
        .add_service(replica_service(broker_rx));
    tokio::spawn(
        router.serve_with_incoming_shutdown(
            TcpIncoming::from(listener),
            stop.clone().cancelled_owned(),
        ),
    );
    Opened {
        id,
        addr,
        dir,
        controller,
        broker_tx,
        stop,
    }
}

async fn start_broker(o: Opened) -> Node {
    let mut config = BrokerConfig::new(o.id, o.dir.path().join("logs"), "127.0.0.1".into(), 9092);
    // One `__transaction_state` partition on one node: the coordinator is
    // one known node, and the data partitions can be led by another.
    config.transactions = TransactionServiceConfig {
        num_partitions: 1,
        replication_factor: 1,
        min_isr: 1,
        ..TransactionServiceConfig::default()
    };
    let replication = ReplicationConfig {
        replication_listener: Some(AdvertisedListener {
            name: "REPLICATION".into(),
            host: "127.0.0.1".into(),
            port: o.addr.port(),
        }),
        ..ReplicationConfig::default()
    };
    let broker = Broker::start_with_replication(config, replication, o.controller.clone())
        .await
        .expect("broker");
    o.broker_tx.send_replace(Some(broker.clone()));
    Node {
        id: o.id,
        addr: o.addr,
        dir: o.dir,
        controller: o.controller,
        broker,
        stop: o.stop,
    }
}

async fn start_cluster(n: BrokerId) -> (Vec<Node>, BTreeMap<BrokerId, String>) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let voters: BTreeMap<BrokerId, String> = listeners
        .iter()
        .zip(1..)
        .map(|(l, id)| (id, l.local_addr().expect("addr").to_string()))
        .collect();
    let mut opened = Vec::new();
    for (listener, id) in listeners.into_iter().zip(1..) {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        opened.push(open_node(id, dir, listener, &voters).await);
    }
    let readies: Vec<_> = opened
        .iter()
        .map(|o| {
            let c = o.controller.clone();
            tokio::spawn(async move { c.ready().await })
        })
        .collect();
    for r in readies {
        r.await.expect("join").expect("ready");
    }
    let mut nodes = Vec::new();
    for o in opened {
        nodes.push(start_broker(o).await);
    }
    (nodes, voters)
}

/// Shut every node down: broker, controller, gRPC server.
async fn stop_all(nodes: Vec<Node>) {
    for node in nodes {
        node.broker.shutdown().await;
        node.controller
            .shutdown()
            .await
            .expect("controller shutdown");
        node.stop.cancel();
    }
}

fn leader_of(node: &Node, topic: &str) -> (BrokerId, Vec<BrokerId>) {
    let image = node.broker.metadata();
    let p = &image.topic_by_name(topic).expect("topic").partitions[0];
    (p.leader, p.isr.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_survive_the_leaders_controlled_shutdown() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (mut nodes, voters) = start_cluster(3).await;
        eprintln!("cluster test: started");
        let created = nodes[0]
            .broker
            .admin()
            .create_topics(
                vec![NewTopic {
                    name: "c".into(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: vec![vec![1, 2, 3]],
                    configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
                }],
                false,
            )
            .await;
        assert!(created[0].1.is_ok(), "{:?}", created[0].1);
        eprintln!("cluster test: created");
        let tp = TopicPartition::new("c", 0);
        eventually("every broker opened the partition", || {
            nodes.iter().all(|n| n.broker.local_replica(&tp).is_some())
        })
        .await;
        let (leader, _) = leader_of(&nodes[0], "c");
        eprintln!("cluster test: opened");
        let l = nodes
            .iter()
            .position(|n| n.id == leader)
            .expect("leader node");
        eventually("the leader applied its leadership", || {
            nodes[l]
                .broker
                .local_replica(&tp)
                .is_some_and(|p| p.is_leader())
        })
        .await;

        // acks=all completes once the followers fetched it.
        eprintln!("cluster test: leader applied");
        for _ in 0..4 {
            let results = nodes[l]
                .broker
                .replicas()
                .produce(
                    vec![ProducePartition {
                        tp: tp.clone(),
                        records: batch(5),
                        verification: None,
                    }],
                    Acks::All,
                    Duration::from_secs(10),
                )
                .await;
            assert!(results[0].1.is_ok(), "{:?}", results[0].1);
        }
        eventually("followers caught up and learned the high watermark", || {
            nodes.iter().all(|n| {
                n.broker
                    .local_replica(&tp)
                    .is_some_and(|p| p.log_end_offset() == 20 && p.high_watermark() == 20)
            })
        })
        .await;

        // The leader stops (controlled shutdown first); another replica leads.
        eprintln!("cluster test: caught up");
        let old = nodes.remove(l);
        old.broker.shutdown().await;
        eprintln!("cluster test: old broker shut down");
        old.controller
            .shutdown()
            .await
            .expect("controller shutdown");
        old.stop.cancel();
        let mut new_leader = -1;
        eventually("a new leader from the ISR", || {
            let (leader, isr) = leader_of(&nodes[0], "c");
            new_leader = leader;
            leader >= 0 && leader != old.id && !isr.contains(&old.id)
        })
        .await;
        let n = nodes.iter().position(|n| n.id == new_leader).expect("node");
        eprintln!("cluster test: new leader");
        eventually("the new leader applied its leadership", || {
            nodes[n]
                .broker
                .local_replica(&tp)
                .is_some_and(|p| p.is_leader())
        })
        .await;
        let results = nodes[n]
            .broker
            .replicas()
            .produce(
                vec![ProducePartition {
                    tp: tp.clone(),
                    records: batch(5),
                    verification: None,
                }],
                Acks::All,
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(results[0].1.as_ref().expect("produce").base_offset, 20);
        eprintln!("cluster test: produced to the new leader");
        // Every acknowledged record is readable from the new leader.
        let fetched = nodes[n]
            .broker
            .replicas()
            .fetch(FetchParams {
                partitions: vec![FetchPartition {
                    tp: tp.clone(),
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                    current_leader_epoch: -1,
                }],
                max_wait: Duration::ZERO,
                min_bytes: 0,
                max_bytes: 1 << 20,
                isolation: fjord_log::IsolationLevel::ReadUncommitted,
            })
            .await;
        let data = fetched[0].1.as_ref().expect("fetch");
        assert_eq!(data.high_watermark, 25);
        let mut rest: &[u8] = &data.records;
        let mut next = 0;
        while let Some(h) = fjord_log::BatchHeader::parse(rest) {
            assert_eq!(h.base_offset, next);
            next = h.next_offset();
            rest = &rest[h.size()..];
        }
        assert!(next >= 20, "read up to {next}");
        eprintln!("cluster test: read back");

        // The old leader restarts: it follows, catches up and rejoins the ISR.
        let listener = TcpListener::bind(old.addr).await.expect("rebind");
        let opened = open_node(old.id, old.dir.clone(), listener, &voters).await;
        opened.controller.ready().await.expect("ready");
        let back = start_broker(opened).await;
        eventually("the restarted replica caught up", || {
            back.broker
                .local_replica(&tp)
                .is_some_and(|p| !p.is_leader() && p.log_end_offset() == 25)
        })
        .await;
        eventually("the restarted replica is back in the ISR", || {
            leader_of(&nodes[0], "c").1.contains(&back.id)
        })
        .await;
        eprintln!("cluster test: old leader rejoined");
        nodes.push(back);

        stop_all(nodes).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_marks_a_partition_another_node_leads() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (nodes, _) = start_cluster(2).await;
        let coordinator_id = txn_support::retried("FindCoordinator", || {
            nodes[0].broker.txns().find_coordinator(txn_support::ID)
        })
        .await;
        let coordinator = nodes
            .iter()
            .find(|n| n.id == coordinator_id)
            .expect("coordinator node");
        let other = nodes
            .iter()
            .find(|n| n.id != coordinator_id)
            .expect("another node");

        // `orders-0` lives on the other node only.
        let created = coordinator
            .broker
            .admin()
            .create_topics(
                vec![NewTopic {
                    name: "orders".into(),
                    num_partitions: 1,
                    replication_factor: -1,
                    assignments: vec![vec![other.id]],
                    configs: Default::default(),
                }],
                false,
            )
            .await;
        assert!(created.iter().all(|(_, r)| r.is_ok()), "{created:?}");
        let tp = TopicPartition::new("orders", 0);
        eventually("orders-0 led by the other node", || {
            other
                .broker
                .local_replica(&tp)
                .is_some_and(|p| p.is_leader())
                && leader_of(coordinator, "orders").0 == other.id
        })
        .await;

        let pid = txn_support::commit_one(&coordinator.broker, &tp).await;
        assert_eq!(
            txn_support::markers(&other.broker, &tp),
            vec![(pid.producer_id, txn_support::COMMIT_KEY.to_vec())]
        );

        stop_all(nodes).await;
    })
    .await
    .expect("test timed out");
}
