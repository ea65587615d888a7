//! The HTTP port of real `fjord` processes: probes, Prometheus metrics fed by real clients,
//! consumer-group lag, `GET /shutdown`, the `fjord health` probe command and JSON logs.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fjord_e2e::http::{sample, sum};
use fjord_e2e::{
    FjordCluster, FjordNode, bounded, cli_ok, client_config, commit_offsets, consume_n, fjord_bin,
    free_port, http, reserve_port, wait_for, wait_for_topic,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(120);

/// `/metrics` of `node` (panics unless it answers 200).
fn scrape(node: &FjordNode) -> String {
    let (status, body) = node.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn wait_ready(node: &FjordNode) {
    let mut last = String::new();
    wait_for(
        Duration::from_secs(30),
        "GET /readyz answering 200",
        || match node.http_get("/readyz") {
            Ok((200, _)) => Some(()),
            Ok((status, body)) => {
                last = format!("{status} {body}");
                None
            }
            Err(e) => {
                last = format!("{e:#}");
                None
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}; last answer: {last}"));
}

/// `fjord ARGS` with a deadline; the exit code.
fn fjord_exit_code(args: &[&str]) -> i32 {
    let out = fjord_e2e::run_cli("127.0.0.1:1", args, None, Duration::from_secs(20));
    out.status.code().expect("exit code")
}

#[test]
fn probes_request_metrics_bytes_and_consumer_group_lag() {
    let node = FjordNode::start();
    let b = node.bootstrap();

    // Phase 1: liveness and readiness answer; `fjord health` agrees, and fails on a closed port.
    let (status, body) = node.http_get("/healthz").expect("GET /healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    wait_ready(&node);
    let url = format!("http://{}", node.http_addr());
    assert_eq!(fjord_exit_code(&["health", "--ready", "--url", &url]), 0);
    assert_eq!(fjord_exit_code(&["health", "--url", &url]), 0);
    let closed = format!("http://127.0.0.1:{}", free_port());
    assert_eq!(fjord_exit_code(&["health", "--ready", "--url", &closed]), 1);
    let (status, _) = node.http_get("/nope").expect("GET /nope");
    assert_eq!(status, 404);

    // Phase 2: produce and consume with real clients; the counters move.
    let before = scrape(&node);
    let topic = "obs-lag";
    let args = ["topic", "create", topic, "--partitions", "2"];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, topic, 2);
    let input: String = (0..10).map(|i| format!("p0-{i}\n")).collect();
    let args = ["produce", topic, "--partition", "0"];
    cli_ok(&args, &node.cli(&args, Some(&input)));
    let input: String = (0..6).map(|i| format!("p1-{i}\n")).collect();
    let args = ["produce", topic, "--partition", "1"];
    cli_ok(&args, &node.cli(&args, Some(&input)));

    let group = "obs-lag-g1";
    let consumer: BaseConsumer = client_config(&b)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create group consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let got = consume_n(&consumer, 16, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got.len(), 16);
    let after = scrape(&node);
    let count = |text: &str, api: &str| {
        sample(text, "fjord_requests_total", &[("api", api)]).unwrap_or(0.0)
    };
    for api in ["Produce", "Fetch", "Metadata", "CreateTopics"] {
        assert!(
            count(&after, api) > count(&before, api),
            "{api}: requests_total did not grow\n{after}"
        );
        let histogram_count = sample(
            &after,
            "fjord_request_duration_seconds_count",
            &[("api", api)],
        );
        assert_eq!(histogram_count, Some(count(&after, api)), "{api}");
    }
    let bytes = |text: &str, name: &str| sample(text, name, &[]).expect(name);
    // 16 records of 5-6 bytes, in batches with headers: at least the values went in and out.
    let payload = 16.0 * 5.0;
    assert!(
        bytes(&after, "fjord_bytes_in_total") - bytes(&before, "fjord_bytes_in_total") >= payload
    );
    assert!(
        bytes(&after, "fjord_bytes_out_total") - bytes(&before, "fjord_bytes_out_total") >= payload
    );
    assert!(sample(&after, "fjord_partitions_led", &[]).expect("partitions_led") >= 2.0);
    assert_eq!(
        sample(&after, "fjord_under_replicated_partitions", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&after, "fjord_offline_partitions", &[]), Some(0.0));
    assert_eq!(sample(&after, "fjord_controller_is_leader", &[]), Some(1.0));
    assert!(sample(&after, "fjord_controller_raft_term", &[]).expect("term") >= 1.0);
    assert!(
        sample(&after, "fjord_controller_metadata_applied_offset", &[]).expect("applied") > 0.0
    );
    assert!(sample(&after, "fjord_process_resident_memory_bytes", &[]).expect("rss") > 0.0);
    assert!(sample(&after, "fjord_process_open_fds", &[]).expect("fds") > 0.0);

    // Phase 3: committed offsets behind the end show as lag: p0 at 4 of 10, p1 at its end.
    commit_offsets(&consumer, topic, &[(0, 4), (1, 6)]);
    let lag = |text: &str, partition: &str| {
        sample(
            text,
            "fjord_consumergroup_lag",
            &[("group", group), ("topic", topic), ("partition", partition)],
        )
    };
    let text = scrape(&node);
    assert_eq!(lag(&text, "0"), Some(6.0), "{text}");
    assert_eq!(lag(&text, "1"), Some(0.0), "{text}");

    // Phase 4: an open transaction holds the last stable offset of p1 back by its 3 records
    // (offsets 6..=8 below the high watermark 9); its commit releases them.
    let lso_lag = |text: &str| {
        sample(
            text,
            "fjord_partition_last_stable_offset_lag",
            &[("topic", topic), ("partition", "1")],
        )
    };
    assert_eq!(lso_lag(&text), Some(0.0), "{text}");
    let producer: BaseProducer = client_config(&b)
        .set("transactional.id", "obs-lag-txn")
        .create()
        .expect("create transactional producer");
    producer
        .init_transactions(LIMIT)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin");
    for i in 0..3 {
        producer
            .send(
                BaseRecord::<(), str>::to(topic)
                    .partition(1)
                    .payload(&format!("txn-{i}")),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(LIMIT).expect("flush");
    let text = scrape(&node);
    assert_eq!(lso_lag(&text), Some(3.0), "{text}");
    let txns = |text: &str, state: &str| sample(text, "fjord_transactions", &[("state", state)]);
    assert_eq!(txns(&text, "Ongoing"), Some(1.0), "{text}");
    producer.commit_transaction(LIMIT).expect("commit");
    // The commit marker is written after EndTxn is answered.
    wait_for(Duration::from_secs(10), "the LSO lag back at 0", || {
        let text = scrape(&node);
        let done = lso_lag(&text) == Some(0.0)
            && txns(&text, "Ongoing") == Some(0.0)
            && txns(&text, "CompleteCommit") == Some(1.0);
        done.then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", scrape(&node)));
}

/// A node run with `--log-format json` (through the env) writes only JSON lines, and
/// `GET /shutdown` stops it gracefully: the answer comes after the controlled shutdown and the
/// process exits 0.
#[test]
fn json_logs_and_shutdown_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("node.log");
    let log = File::create(&log_path).expect("create log");
    let (http_port, kafka_port) = (reserve_port(), reserve_port());
    let http_addr = format!("127.0.0.1:{}", http_port.port());
    let mut child = Command::new(fjord_bin())
        .args(["dev", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--kafka-addr", &format!("127.0.0.1:{}", kafka_port.port())])
        .args(["--http-addr", &http_addr])
        .env("FJORD_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn fjord dev");
    let ready = wait_for(Duration::from_secs(30), "GET /readyz answering 200", || {
        matches!(
            http::get(&http_addr, "/readyz", Duration::from_secs(5)),
            Ok((200, _))
        )
        .then_some(())
    });
    if let Err(e) = ready {
        let _ = child.kill();
        panic!(
            "{e:#}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    let (status, body) =
        http::get(&http_addr, "/shutdown", Duration::from_secs(30)).expect("GET /shutdown");
    assert_eq!(
        (status, body.as_str()),
        (200, "controlled shutdown finished\n")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fjord did not exit after GET /shutdown");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");

    let text = std::fs::read_to_string(&log_path).expect("read log");
    let mut lines = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
        lines += 1;
    }
    assert!(text.contains("fjord node ready"), "{text}");
    assert!(lines >= 3, "{text}");
}

/// `name` summed over the scrapes of nodes `ids`.
fn sum_over(cluster: &FjordCluster, ids: &[i32], name: &str) -> f64 {
    ids.iter()
        .map(|&id| sum(&scrape(cluster.node(id)), name))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_partitions_led_under_replicated_and_isr_expands() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = "obs-urp";
        cluster.create_topic(topic, 6, 3, &[]).await;
        let all = [1, 2, 3];

        // Phase 1: every partition is led by exactly one node, none under-replicated, one
        // active controller.
        block_in_place(|| {
            wait_for(
                Duration::from_secs(20),
                "partitions_led summing to 6",
                || {
                    let led = sum_over(&cluster, &all, "fjord_partitions_led");
                    let urp = sum_over(&cluster, &all, "fjord_under_replicated_partitions");
                    let leaders = sum_over(&cluster, &all, "fjord_controller_is_leader");
                    (led == 6.0 && urp == 0.0 && leaders == 1.0).then_some(())
                },
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        });

        // Phase 2: node 3 stops; the survivors lead partitions whose ISR lacks it.
        block_in_place(|| {
            cluster.stop(3);
            let survivors = [1, 2];
            wait_for(
                Duration::from_secs(30),
                "under-replicated partitions on nodes 1 and 2",
                || {
                    let urp = sum_over(&cluster, &survivors, "fjord_under_replicated_partitions");
                    let led = sum_over(&cluster, &survivors, "fjord_partitions_led");
                    let offline = sum_over(&cluster, &survivors, "fjord_offline_partitions");
                    (urp > 0.0 && led == 6.0 && offline == 0.0).then_some(())
                },
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        });

        // Phase 3: node 3 comes back; the leaders take it into their ISRs again (counted as
        // ISR expansions) and nothing is under-replicated any more.
        block_in_place(|| {
            cluster.restart(3);
            wait_for(Duration::from_secs(60), "ISRs expanded back", || {
                let urp = sum_over(&cluster, &all, "fjord_under_replicated_partitions");
                let expands = sum_over(&cluster, &all, "fjord_isr_expands_total");
                (urp == 0.0 && expands > 0.0).then_some(())
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
        });
    })
    .await;
}
