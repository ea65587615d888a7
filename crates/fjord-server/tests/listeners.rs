//! Several Kafka listeners in process: each listener bound on port 0 is
//! registered with its own bound port, under its own name and advertised
//! host, next to the REPLICATION listener.

use std::time::{Duration, Instant};

use fjord_broker::Listener;
use fjord_server::config::FileConfig;
use fjord_server::node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_is_bound_and_registered_with_its_bound_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        r#"
        data_dir = {data:?}
        listeners = ["INTERNAL://127.0.0.1:0", "EXTERNAL://127.0.0.1:0"]
        advertised_listeners = ["EXTERNAL://localhost:0"]
        rpc_addr = "127.0.0.1:0"
        [controller]
        election_timeout_ms = [300, 600]
        heartbeat_interval_ms = 100
        "#,
        data = dir.path().display().to_string(),
    );
    let config = FileConfig::parse(&text, std::path::Path::new("test"))
        .expect("config parses")
        .validate()
        .expect("config is valid");
    let run = async {
        // Phase 1: both listeners are bound on distinct ports.
        let node = node::start(config).await.expect("node starts");
        let bound: Vec<(String, u16)> = node
            .kafka_listeners()
            .iter()
            .map(|l| (l.name.clone(), l.listen.port()))
            .collect();
        assert_eq!(bound.len(), 2, "{bound:?}");
        assert_eq!(
            (bound[0].0.as_str(), bound[1].0.as_str()),
            ("INTERNAL", "EXTERNAL")
        );
        assert!(bound.iter().all(|(_, port)| *port != 0));
        assert_ne!(bound[0].1, bound[1].1);
        assert_eq!(node.kafka_addr().map(|a| a.port()), Some(bound[0].1));

        // Phase 2: the registration carries both, each with its bound port
        // (INTERNAL advertises its bind address), then REPLICATION.
        let broker = node.broker().expect("broker").clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let registered = loop {
            if let Some(b) = broker.metadata().brokers.get(&1) {
                break b.listeners.clone();
            }
            assert!(Instant::now() < deadline, "broker 1 never registered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let listener = |name: &str, host: &str, port| Listener {
            name: name.into(),
            host: host.into(),
            port,
        };
        assert_eq!(
            registered,
            vec![
                listener("INTERNAL", "127.0.0.1", bound[0].1),
                listener("EXTERNAL", "localhost", bound[1].1),
                listener("REPLICATION", "127.0.0.1", node.rpc_addr.port()),
            ]
        );

        // Phase 3: a graceful stop closes both listeners.
        let addrs: Vec<_> = node.kafka_listeners().iter().map(|l| l.listen).collect();
        node.stop().await.expect("node stops");
        for addr in addrs {
            assert!(
                tokio::net::TcpStream::connect(addr).await.is_err(),
                "{addr} still accepts after stop"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("test bound");
}
