//! A real broker (single-voter controller, real logs, the ReplicaService over
//! gRPC on 127.0.0.1) and a test playing follower broker 2 with the raw
//! client: acks=all completes only once the follower reported, fetches
//! long-poll, epochs fence, a diverging follower is told where to truncate,
//! and the ISR shrinks and expands through the controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_broker::replication::replica_service;
use fjord_broker::{
    Acks, AdvertisedListener, Broker, BrokerConfig, NewTopic, ProducePartition, ReplicationConfig,
};
use fjord_controller::{Controller, ControllerConfig, Listener, MetadataCommand, MetadataResponse};
use fjord_log::testing::batch;
use fjord_rpc::replica_service_client::ReplicaServiceClient;
use fjord_rpc::{FetchPartition, ReplicaFetchRequest, ReplicaFetchResponse};
use fjord_types::TopicPartition;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

/// The offset after the last batch in `records`.
fn next_offset(records: &[u8]) -> Option<i64> {
    let mut rest = records;
    let mut next = None;
    while let Some(h) = fjord_log::BatchHeader::parse(rest) {
        if h.size() > rest.len() {
            break;
        }
        next = Some(h.next_offset());
        rest = &rest[h.size()..];
    }
    next
}

struct Follower {
    client: ReplicaServiceClient<Channel>,
    topic_id: Bytes,
    broker_epoch: i64,
}

impl Follower {
    async fn fetch(
        &mut self,
        leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        max_wait_ms: u32,
    ) -> ReplicaFetchResponse {
        self.client
            .fetch(ReplicaFetchRequest {
                replica_id: 2,
                broker_epoch: self.broker_epoch,
                max_wait_ms,
                min_bytes: 1,
                max_bytes: 1 << 20,
                partitions: vec![FetchPartition {
                    topic_id: self.topic_id.clone(),
                    partition: 0,
                    current_leader_epoch: leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    log_start_offset: 0,
                    max_bytes: 1 << 20,
                }],
            })
            .await
            .expect("fetch")
            .into_inner()
    }
}

async fn wait_isr(broker: &Broker, want: &[i32]) -> (i32, Vec<i32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let image = broker.metadata();
        let p = &image.topic_by_name("r").expect("topic").partitions[0];
        if p.isr == want {
            return (p.leader_epoch, p.isr.clone());
        }
        assert!(
            Instant::now() < deadline,
            "ISR stayed {:?}, wanted {want:?}",
            p.isr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_over_grpc_commits_records_and_moves_through_the_isr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let controller = Controller::start(ControllerConfig::single_voter(
        1,
        dir.path().join("controller"),
        "127.0.0.1:1".into(),
    ))
    .await
    .expect("controller");

    // The gRPC server starts before the broker exists, as in a node.
    let (broker_tx, broker_rx) = watch::channel(None::<Arc<Broker>>);
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = incoming.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        Server::builder()
            .add_service(replica_service(broker_rx))
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
    );
    let mut client = ReplicaServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let early = client.fetch(ReplicaFetchRequest::default()).await;
    assert_eq!(
        early.expect_err("no broker yet").code(),
        tonic::Code::Unavailable
    );

    // Broker 2 exists only as a registration: the test plays it.
    let registered = controller
        .write(MetadataCommand::RegisterBroker {
            broker_id: 2,
            incarnation_id: uuid::Uuid::new_v4(),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9,
            }],
            rack: None,
        })
        .await
        .expect("register 2");
    let MetadataResponse::BrokerRegistered { broker_epoch, .. } = registered else {
        panic!("{registered:?}");
    };
    let config = BrokerConfig::new(1, dir.path().join("logs"), "127.0.0.1".into(), 9092);
    let replication = ReplicationConfig {
        replication_listener: Some(AdvertisedListener {
            name: "REPLICATION".into(),
            host: "127.0.0.1".into(),
            port: addr.port(),
        }),
        replica_lag_time_max: Duration::from_millis(600),
        ..ReplicationConfig::default()
    };
    let broker = Broker::start_with_replication(config, replication, controller.clone())
        .await
        .expect("broker");
    broker_tx.send_replace(Some(broker.clone()));
    let created = broker
        .admin()
        .create_topics(
            vec![NewTopic {
                name: "r".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: vec![vec![1, 2]],
                configs: BTreeMap::new(),
            }],
            false,
        )
        .await;
    let topic_id = created[0].1.as_ref().expect("created").topic_id;
    let mut follower = Follower {
        client,
        topic_id: Bytes::copy_from_slice(topic_id.0.as_bytes()),
        broker_epoch,
    };
    let (epoch, _) = wait_isr(&broker, &[1, 2]).await;

    // acks=all waits for the follower.
    let produce = {
        let broker = broker.clone();
        tokio::spawn(async move {
            broker
                .replicas()
                .produce(
                    vec![ProducePartition {
                        tp: TopicPartition::new("r", 0),
                        records: batch(3),
                        verification: None,
                    }],
                    Acks::All,
                    Duration::from_secs(10),
                )
                .await
        })
    };
    let first = follower.fetch(epoch, 0, -1, 2_000).await;
    let p = &first.partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(
        next_offset(&p.records),
        Some(3),
        "the follower gets the records past the HW"
    );
    assert_eq!(p.high_watermark, 0);
    assert!(
        !produce.is_finished(),
        "not committed before the follower reported"
    );
    let second = follower.fetch(epoch, 3, epoch, 0).await;
    assert_eq!(second.partitions[0].high_watermark, 3);
    let results = tokio::time::timeout(Duration::from_secs(5), produce)
        .await
        .expect("acks=all answered")
        .expect("task");
    assert_eq!(results[0].1.as_ref().expect("committed").base_offset, 0);

    // Nothing new: the fetch long-polls for max_wait.
    let started = Instant::now();
    let idle = follower.fetch(epoch, 3, epoch, 300).await;
    assert!(idle.partitions[0].records.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    // Fencing and divergence.
    let unknown = follower.fetch(epoch + 1, 3, epoch, 0).await;
    assert_eq!(unknown.partitions[0].error_code, 75);
    let diverging = follower.fetch(epoch, 7, epoch, 0).await;
    let d = diverging.partitions[0].diverging_epoch.expect("diverging");
    assert_eq!((d.epoch, d.end_offset), (epoch, 3));
    follower.broker_epoch = broker_epoch - 1;
    assert_eq!(follower.fetch(epoch, 3, epoch, 0).await.error_code, 77);
    follower.broker_epoch = broker_epoch;

    // A follower at the log end stays in sync even when silent (Kafka's
    // rule); once the leader moves on without it, it leaves the ISR.
    tokio::time::sleep(Duration::from_millis(900)).await;
    wait_isr(&broker, &[1, 2]).await;
    let more = broker
        .replicas()
        .produce(
            vec![ProducePartition {
                tp: TopicPartition::new("r", 0),
                records: batch(2),
                verification: None,
            }],
            Acks::Leader,
            Duration::from_secs(5),
        )
        .await;
    assert!(more[0].1.is_ok());
    let (epoch, _) = wait_isr(&broker, &[1]).await;
    // Catching up to the log end brings it back.
    let caught_up = follower.fetch(epoch, 3, epoch, 0).await;
    assert_eq!(next_offset(&caught_up.partitions[0].records), Some(5));
    follower.fetch(epoch, 5, epoch, 0).await;
    wait_isr(&broker, &[1, 2]).await;

    broker.shutdown().await;
    stop.cancel();
    server.await.expect("join").expect("server");
    controller.shutdown().await.expect("controller shutdown");
}
