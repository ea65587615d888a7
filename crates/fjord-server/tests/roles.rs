//! Node roles in process: a controller-only node (a quorum of itself, no Kafka listener) and
//! a broker-only node that follows it as a Raft learner over gRPC, registers, and is unfenced.

use std::time::{Duration, Instant};

use fjord_server::config::FileConfig;
use fjord_server::health_check::{self, Target};
use fjord_server::node;

/// `GET /readyz` on `node`'s HTTP port: `Ok(body)` when ready.
async fn readyz(node: &node::RunningNode) -> Result<String, health_check::HealthError> {
    let addr = node.http_addr().expect("http port on").to_string();
    let target = Target::for_http_addr(&addr, "/readyz")?;
    health_check::get(&target, Duration::from_secs(5)).await
}

fn file(dir: &std::path::Path, node_id: i32, roles: &str, voters: &str) -> FileConfig {
    let text = format!(
        r#"
        node_id = {node_id}
        roles = {roles}
        data_dir = {data:?}
        kafka_addr = "127.0.0.1:0"
        rpc_addr = "127.0.0.1:0"
        http_addr = "127.0.0.1:0"
        [controller]
        voters = {voters}
        election_timeout_ms = [300, 600]
        heartbeat_interval_ms = 100
        broker_session_timeout_ms = 2000
        broker_heartbeat_interval_ms = 200
        "#,
        data = dir.join(format!("node-{node_id}")).display().to_string(),
    );
    FileConfig::parse(&text, std::path::Path::new("test")).expect("config parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_only_and_broker_only_nodes_form_a_cluster() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,openraft=warn"))
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let run = async {
        // Phase 1: a controller-only node serves the quorum but no Kafka clients.
        let controller = file(dir.path(), 1, r#"["controller"]"#, "[]")
            .validate()
            .expect("controller config");
        let controller = node::start(controller)
            .await
            .expect("controller node starts");
        assert!(controller.kafka_addr().is_none());
        assert!(controller.broker().is_none());
        // Ready as a controller: it leads its quorum of one and applied the log.
        assert_eq!(
            readyz(&controller).await.expect("controller ready"),
            "ready"
        );

        // Phase 2: a broker-only node joins it as a learner (over gRPC) and registers.
        let voters = format!(r#"["1@{}"]"#, controller.rpc_addr);
        let broker = file(dir.path(), 2, r#"["broker"]"#, &voters)
            .validate()
            .expect("broker config");
        let broker = node::start(broker).await.expect("broker-only node starts");
        assert!(broker.kafka_addr().is_some());
        let b = broker.broker().expect("broker").clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let image = b.metadata();
            if image.brokers.get(&2).is_some_and(|r| !r.fenced) {
                assert!(
                    !image.brokers.contains_key(&1),
                    "the controller-only node is no broker"
                );
                // Registered, caught up, unfenced and serving Kafka: ready.
                assert_eq!(readyz(&broker).await.expect("broker ready"), "ready");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker 2 never unfenced: {:?}",
                image.brokers
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Phase 3: both stop gracefully, broker first.
        broker.stop().await.expect("broker-only node stops");
        controller.stop().await.expect("controller node stops");
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("test bound");
}
