//! Hostile input against a live node (issue 17, item 7): for `FJORD_FUZZ_SECS`, four
//! connections send mutations of a well-formed request of every api and version the node
//! lists in ApiVersions, so decodable-but-absurd requests reach the handlers (counts of 2^31,
//! negative sizes, unknown ids, truncated record batches). The node must keep serving: no
//! panic in its log, the process alive, a fresh connection answered.
//!
//! Left out: the apis that create or delete topics, partitions, records or replicas, change
//! configs or move leaders (a mutation that asks for 2^31 partitions is a request Kafka
//! would also try to honour, not hostile input); topic auto-creation is off for the same
//! reason.

use std::time::{Duration, Instant};

use fjord_e2e::{ClusterOptions, FjordCluster};
use fjord_e2e::{KafkaConn, probe_metadata};
use fjord_fuzz::kafka::request_seeds;
use fjord_fuzz::{Rng, mutate};
use kafka_protocol::messages::ApiKey;

/// Apis whose legitimate effect is heavy or destructive at any scale.
const LEFT_OUT: [ApiKey; 11] = [
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ElectLeaders,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AlterReplicaLogDirs,
    ApiKey::AlterClientQuotas,
    ApiKey::AlterUserScramCredentials,
];

const CONNECTIONS: u64 = 4;

#[test]
fn mutated_requests_of_every_api_never_take_the_node_down() {
    let secs: f64 = std::env::var("FJORD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let seed: u64 = std::env::var("FJORD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let mut options = ClusterOptions::fast(1);
    options
        .extra_broker_config
        .push("auto_create_topics_enable = false".into());
    let mut cluster = FjordCluster::start_with(options);
    let bootstrap = cluster.bootstrap();
    let mut conn = KafkaConn::connect(&bootstrap, Duration::from_secs(10)).expect("connect");
    let apis: Vec<(ApiKey, i16, i16)> = conn
        .api_versions()
        .expect("ApiVersions")
        .into_iter()
        .filter_map(|(key, (min, max))| Some((ApiKey::try_from(key).ok()?, min, max)))
        .filter(|(api, _, _)| !LEFT_OUT.contains(api))
        .collect();
    let seeds = request_seeds(apis);
    assert!(seeds.len() > 100, "{} seeds", seeds.len());
    eprintln!(
        "hostile input: seed {seed} (FJORD_FUZZ_SEED to repeat), {secs} s, {} seeds, {CONNECTIONS} connections",
        seeds.len()
    );

    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let sent: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|worker| {
                let (seeds, bootstrap) = (&seeds, &bootstrap);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let mut sent = 0u64;
                    let mut conn = None;
                    while Instant::now() < deadline {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => conn.insert(
                                KafkaConn::connect(bootstrap, Duration::from_secs(10))
                                    .expect("the node accepts connections"),
                            ),
                        };
                        let mut input = seeds[rng.below(seeds.len())].clone();
                        for _ in 0..1 + rng.below(3) {
                            mutate(&mut rng, &mut input, seeds);
                        }
                        sent += 1;
                        // An answer keeps the connection; a close, or a request the node may
                        // legitimately sit on (a Fetch with a mutated max wait), starts a new one.
                        let _ = c.set_read_timeout(Duration::from_millis(500));
                        let answered =
                            c.send_frame(&input).is_ok() && matches!(c.read_frame(), Ok(Some(_)));
                        if !answered {
                            conn = None;
                        }
                    }
                    sent
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });

    let node = cluster.node_mut(1);
    let log = node.log();
    assert!(
        !log.contains("panicked"),
        "a request made the node panic (seed {seed}):\n{}",
        fjord_e2e::tail(node.log_path(), 60)
    );
    assert!(
        node.is_running(),
        "the node died (seed {seed}):\n{}",
        fjord_e2e::tail(node.log_path(), 60)
    );
    let md = probe_metadata(&bootstrap).expect("a fresh connection is answered");
    assert_eq!(md.brokers.len(), 1);
    eprintln!("hostile input: {sent} mutated requests, node alive, no panic");
}
