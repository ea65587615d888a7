//! The admin CLI (`fjord topic ...`, `fjord produce`, `fjord consume`) against a live node.

use std::process::{Command, Stdio};
use std::time::Duration;

use fjord_e2e::{
    FjordNode, assign_from, cli_ok, consume_n, consumer, fjord_bin, probe_metadata, wait_for,
    wait_for_topic,
};
use rdkafka::Offset;
use rdkafka::message::Message;

fn topic_partitions(bootstrap: &str, name: &str) -> Option<usize> {
    let md = probe_metadata(bootstrap).ok()?;
    md.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(name) && t.error_code == 0)
        .map(|t| t.partitions.len())
}

fn lines(s: &str) -> Vec<&str> {
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn topic_create_list_describe_add_partitions_delete() {
    let node = FjordNode::start();
    let b = node.bootstrap();

    // Phase 1: create with a config, see it in Metadata and in `topic list`.
    let args = [
        "topic",
        "create",
        "cli-topic",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=600000",
    ];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, "cli-topic", 3);
    let args = ["topic", "list"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert!(
        lines(&out)
            .iter()
            .any(|l| l.split_whitespace().any(|w| w == "cli-topic")),
        "`topic list` shows cli-topic:\n{out}"
    );

    // The same with an explicit `-b` (given to `topic`, where the CLI takes connection flags).
    let out = Command::new(fjord_bin())
        .args(["topic", "-b", &b, "list"])
        .env_remove("FJORD_BOOTSTRAP")
        .stdin(Stdio::null())
        .output()
        .expect("run fjord topic -b ADDR list");
    let out = cli_ok(&["topic", "-b", &b, "list"], &out);
    assert!(
        out.contains("cli-topic"),
        "`topic -b ADDR list` shows cli-topic:\n{out}"
    );

    // Creating it again fails (TOPIC_ALREADY_EXISTS).
    let args = [
        "topic",
        "create",
        "cli-topic",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
    ];
    let out = node.cli(&args, None);
    assert!(
        !out.status.success(),
        "creating an existing topic should exit non-zero; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Phase 2: describe mentions the topic, its partitions and the config we set.
    let args = ["topic", "describe", "cli-topic"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert!(
        out.contains("cli-topic"),
        "`topic describe` mentions the topic:\n{out}"
    );
    assert!(
        out.contains("retention.ms") && out.contains("600000"),
        "`topic describe` shows retention.ms=600000:\n{out}"
    );

    // Phase 3: add partitions up to 5.
    let args = ["topic", "add-partitions", "cli-topic", "--count", "5"];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, "cli-topic", 5);

    // Phase 4: delete; it disappears from Metadata and from `topic list`.
    let args = ["topic", "delete", "cli-topic"];
    cli_ok(&args, &node.cli(&args, None));
    wait_for(
        Duration::from_secs(20),
        "cli-topic gone from Metadata",
        || topic_partitions(&b, "cli-topic").is_none().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let args = ["topic", "list"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert!(
        !lines(&out)
            .iter()
            .any(|l| l.split_whitespace().any(|w| w == "cli-topic")),
        "`topic list` after delete:\n{out}"
    );
}

#[test]
fn produce_consume_round_trip() {
    let node = FjordNode::start();
    let b = node.bootstrap();
    let args = [
        "topic",
        "create",
        "cli-rt",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    ];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, "cli-rt", 1);

    // Phase 1: one record per stdin line.
    let input: Vec<String> = (0..20).map(|i| format!("line {i} with spaces")).collect();
    let args = ["produce", "cli-rt"];
    cli_ok(&args, &node.cli(&args, Some(&(input.join("\n") + "\n"))));

    // Phase 2: consume from the beginning prints the values in order.
    let args = [
        "consume",
        "cli-rt",
        "--from-beginning",
        "--max-messages",
        "20",
    ];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(
        lines(&out),
        input.iter().map(String::as_str).collect::<Vec<_>>(),
        "consume --from-beginning"
    );

    // Phase 3: --offset/--partition start in the middle.
    let args = [
        "consume",
        "cli-rt",
        "--partition",
        "0",
        "--offset",
        "15",
        "--max-messages",
        "5",
    ];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(
        lines(&out),
        input[15..].iter().map(String::as_str).collect::<Vec<_>>(),
        "consume --offset 15"
    );

    // Phase 4: --key-separator splits key and value; a real client sees both.
    let args = ["produce", "cli-rt", "--key-separator", ":"];
    cli_ok(&args, &node.cli(&args, Some("k1:v1\nk2:v2\n")));
    let c = consumer(&b);
    assign_from(&c, "cli-rt", &[0], Offset::Offset(20));
    let msgs = consume_n(&c, 2, Duration::from_secs(20)).expect("consume keyed records");
    let kv: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or(b"<null>")).into_owned();
            (text(m.key()), text(m.payload()))
        })
        .collect();
    assert_eq!(
        kv,
        [("k1".into(), "v1".into()), ("k2".into(), "v2".into())],
        "keys and values split at ':'"
    );
    let args = [
        "consume",
        "cli-rt",
        "--offset",
        "20",
        "--partition",
        "0",
        "--max-messages",
        "2",
    ];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(lines(&out), vec!["v1", "v2"], "consume prints values only");
}

/// Finds the row of `name` in a `fjord config describe` table: its VALUE and SOURCE.
fn config_row(out: &str, name: &str) -> Option<(String, String)> {
    out.lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next() == Some(name)).then(|| {
            let value = cols.next().unwrap_or_default().to_owned();
            (value, cols.next().unwrap_or_default().to_owned())
        })
    })
}

#[test]
fn config_set_describe_delete_for_a_topic_and_the_broker_defaults() {
    let node = FjordNode::start();
    let b = node.bootstrap();
    let args = ["topic", "create", "cli-configs"];
    cli_ok(&args, &node.cli(&args, None));
    wait_for_topic(&b, "cli-configs", 1);

    // Phase 1: topic configs, a list value in brackets.
    let args = [
        "config",
        "set",
        "--topic",
        "cli-configs",
        "--add-config",
        "retention.ms=600000,cleanup.policy=[compact,delete]",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let args = ["config", "describe", "--topic", "cli-configs"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(
        config_row(&out, "retention.ms"),
        Some(("600000".into(), "DYNAMIC_TOPIC_CONFIG".into())),
        "{out}"
    );
    assert_eq!(
        config_row(&out, "cleanup.policy").map(|r| r.0),
        Some("compact,delete".into()),
        "{out}"
    );
    assert_eq!(
        config_row(&out, "segment.ms"),
        None,
        "only dynamic configs without --all"
    );

    // Phase 2: a cluster default shows up under the topic once the override is deleted.
    let args = [
        "config",
        "set",
        "--broker-defaults",
        "--add-config",
        "log.retention.ms=86400000",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let args = [
        "config",
        "delete",
        "--topic",
        "cli-configs",
        "--delete-config",
        "retention.ms",
    ];
    cli_ok(&args, &node.cli(&args, None));
    let args = ["config", "describe", "--topic", "cli-configs", "--all"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(
        config_row(&out, "retention.ms"),
        Some(("86400000".into(), "DYNAMIC_DEFAULT_BROKER_CONFIG".into())),
        "{out}"
    );
    let args = ["config", "describe", "--broker", "1", "--all"];
    let out = cli_ok(&args, &node.cli(&args, None));
    assert_eq!(
        config_row(&out, "log.retention.ms"),
        Some(("86400000".into(), "DYNAMIC_DEFAULT_BROKER_CONFIG".into())),
        "{out}"
    );

    // Phase 3: a read-only broker config is refused, naming Kafka's error.
    let args = [
        "config",
        "set",
        "--broker",
        "1",
        "--add-config",
        "node.id=7",
    ];
    let refused = node.cli(&args, None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("INVALID_REQUEST"), "{stderr}");
}
