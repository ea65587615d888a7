//! `fjord group ...` (list, describe, delete, reset-offsets) against a live node, with an
//! rdkafka consumer group making the commits.

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_e2e::{
    FjordNode, cli_ok, client_config, commit_offsets, consume_n, wait_for, wait_for_topic,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

/// A consumer in `group` subscribed to `topic`, committing only explicitly.
fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("client.id", "e2e-group-client")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create group consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// One row of the describe partition table, by column name.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    current: String,
    log_end: String,
    lag: String,
    consumer_id: String,
    client_id: String,
}

/// `(state, rows by partition of topic)` from `group describe` output.
fn parse_describe(out: &str, topic: &str) -> (String, BTreeMap<i32, Row>) {
    let state = out
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| panic!("no State line in:\n{out}"));
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"TOPIC") && cols.get(1) == Some(&"PARTITION") {
            assert_eq!(
                cols,
                [
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID"
                ],
                "describe header:\n{out}"
            );
            in_table = true;
            continue;
        }
        if !in_table || cols.len() != 8 || cols[0] != topic {
            continue;
        }
        rows.insert(
            cols[1].parse::<i32>().expect("partition column"),
            Row {
                current: cols[2].to_owned(),
                log_end: cols[3].to_owned(),
                lag: cols[4].to_owned(),
                consumer_id: cols[5].to_owned(),
                client_id: cols[7].to_owned(),
            },
        );
    }
    (state, rows)
}

fn describe(node: &FjordNode, group: &str, topic: &str) -> (String, BTreeMap<i32, Row>, String) {
    let args = ["group", "describe", group];
    let out = cli_ok(&args, &node.cli(&args, None));
    let (state, rows) = parse_describe(&out, topic);
    (state, rows, out)
}

/// (current, log end, lag) per partition.
fn offsets(rows: &BTreeMap<i32, Row>) -> Vec<(i32, &str, &str, &str)> {
    rows.iter()
        .map(|(p, r)| (*p, r.current.as_str(), r.log_end.as_str(), r.lag.as_str()))
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn produce(node: &FjordNode, topic: &str, partition: i32, n: usize) {
    let input: String = (0..n).map(|i| format!("p{partition}-{i}\n")).collect();
    let p = partition.to_string();
    let args = ["produce", topic, "--partition", &p];
    cli_ok(&args, &node.cli(&args, Some(&input)));
}

#[test]
fn group_describe_lag_and_reset_offsets() {
    let node = FjordNode::start();
    let b = node.bootstrap();
    let topic = "grp-cli";
    let group = "grp-cli-g1";

    let args = ["topic", "create", topic, "--partitions", "2"];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, topic, 2);
    produce(&node, topic, 0, 10);
    produce(&node, topic, 1, 6);

    // Phase 1: an active member reads everything and commits p0=4, p1=6.
    let consumer = group_consumer(&b, group, topic);
    let got = consume_n(&consumer, 16, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got.len(), 16);
    commit_offsets(&consumer, topic, &[(0, 4), (1, 6)]);

    let (state, rows, out) = describe(&node, group, topic);
    assert_eq!(state, "Stable", "{out}");
    assert_eq!(
        offsets(&rows),
        vec![(0, "4", "10", "6"), (1, "6", "6", "0")],
        "{out}"
    );
    for row in rows.values() {
        assert_ne!(
            row.consumer_id, "-",
            "assigned partitions show their member:\n{out}"
        );
        assert_eq!(row.client_id, "e2e-group-client", "{out}");
    }
    assert!(out.contains("TotalLag:     6"), "{out}");

    // `group list` shows it.
    let args = ["group", "list"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [group, "Stable", "consumer"]),
        "group list:\n{out}"
    );

    // While it has a member: delete is refused with NON_EMPTY_GROUP, and so is an executed
    // reset (the dry run still prints the plan).
    let out = node.cli(&["group", "delete", group], None);
    assert!(!out.status.success(), "delete of an active group succeeded");
    assert!(stderr(&out).contains("NON_EMPTY_GROUP"), "{}", stderr(&out));
    let args = [
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--to-earliest",
        "--execute",
    ];
    let out = node.cli(&args, None);
    assert!(
        !out.status.success(),
        "executed reset of an active group succeeded"
    );
    assert!(stderr(&out).contains("commit refused"), "{}", stderr(&out));
    let (_, rows, out) = describe(&node, group, topic);
    assert_eq!(
        rows[&0].current, "4",
        "a refused reset changed nothing:\n{out}"
    );

    // Phase 2: the member leaves; committed partitions stay, with '-' for the member.
    drop(consumer);
    let (rows, out) = wait_for(Duration::from_secs(30), "group to become Empty", || {
        let (state, rows, out) = describe(&node, group, topic);
        (state == "Empty").then_some((rows, out))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        offsets(&rows),
        vec![(0, "4", "10", "6"), (1, "6", "6", "0")],
        "{out}"
    );
    assert!(rows.values().all(|r| r.consumer_id == "-"), "{out}");

    // Phase 3: a dry run prints the plan and commits nothing.
    let args = [
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--to-earliest",
    ];
    let out = cli_ok(&args, &node.cli(&args, None));
    let plan: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 5 && c[0] == group)
        .collect();
    assert_eq!(
        plan,
        vec![
            vec![group, topic, "0", "4", "0"],
            vec![group, topic, "1", "6", "0"]
        ],
        "{out}"
    );
    assert!(out.contains("Dry run"), "{out}");
    let (_, rows, out) = describe(&node, group, topic);
    assert_eq!(rows[&0].current, "4", "dry run committed:\n{out}");

    // Phase 4: executed resets.
    let args = [
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--to-earliest",
        "--execute",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let (_, rows, out) = describe(&node, group, topic);
    assert_eq!(
        offsets(&rows),
        vec![(0, "0", "10", "10"), (1, "0", "6", "6")],
        "{out}"
    );

    let args = [
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--partition",
        "0",
        "--to-offset",
        "7",
        "--execute",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let args = [
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--partition",
        "1",
        "--to-latest",
        "--execute",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let (_, rows, out) = describe(&node, group, topic);
    assert_eq!(
        offsets(&rows),
        vec![(0, "7", "10", "3"), (1, "6", "6", "0")],
        "{out}"
    );

    // Phase 5: a new member of the group resumes at the reset offsets: p0 from 7, nothing
    // from p1.
    let consumer = group_consumer(&b, group, topic);
    let got = consume_n(&consumer, 3, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Vec<(i32, i64)> = got.iter().map(|m| (m.partition(), m.offset())).collect();
    assert_eq!(seen, vec![(0, 7), (0, 8), (0, 9)]);
    drop(consumer);
    wait_for(
        Duration::from_secs(30),
        "group to become Empty again",
        || {
            let (state, _, _) = describe(&node, group, topic);
            (state == "Empty").then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    // Phase 6: delete; the group is gone from list and describe.
    let args = ["group", "delete", group];
    cli_ok(&args, &node.cli(&args, None));
    let args = ["group", "list"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().next() == Some(group)),
        "deleted group still listed:\n{out}"
    );
    let out = node.cli(&["group", "describe", group], None);
    assert!(
        !out.status.success(),
        "describe of a deleted group succeeded"
    );
}
