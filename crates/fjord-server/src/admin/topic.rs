//! `fjord topic ...`: create, list, describe, delete and grow topics, like
//! `kafka-topics.sh`.

use std::fmt::Write as _;

use anyhow::{Context, Result, anyhow, bail};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::{Cluster, TopicLayout};
use super::delete_records;
use super::error::KafkaError;
use super::table::render_table;

/// Topic administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition; -1 (the default) takes the cluster's
        /// `default.replication.factor`, like `kafka-topics.sh`.
        #[arg(long = "replication-factor", default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config override as `key=value`; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topic names, one per line.
    List,
    /// Show a topic's id, partitions (leader, replicas, ISR) and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Grow a topic to `--count` partitions in total.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        count: i32,
    },
    /// Delete the records below an offset (move the log start offset), like
    /// `kafka-delete-records.sh`: one partition by flags, or many from
    /// Kafka's JSON offsets file.
    DeleteRecords {
        /// Topic name (with `--partition` and `--offset`).
        #[arg(long, required_unless_present = "offset_json_file", requires_all = ["partition", "offset"])]
        topic: Option<String>,
        #[arg(long)]
        partition: Option<i32>,
        /// Delete every record below this offset; -1: below the high
        /// watermark (everything committed).
        #[arg(long, allow_negative_numbers = true)]
        offset: Option<i64>,
        /// Kafka's offsets file:
        /// `{"partitions":[{"topic":"t","partition":0,"offset":5}],"version":1}`.
        #[arg(long = "offset-json-file", conflicts_with_all = ["topic", "partition", "offset"])]
        offset_json_file: Option<std::path::PathBuf>,
    },
}

/// Runs one topic command against the cluster, printing its result to
/// stdout.
pub async fn run_topic(connect: &ConnectArgs, cmd: TopicCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    let server_timeout_ms = server_timeout_ms(connect);
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = parse_configs(&configs)?;
            create(
                &mut cluster,
                &name,
                partitions,
                replication_factor,
                configs,
                server_timeout_ms,
            )
            .await?;
            println!("Created topic {name}.");
        }
        TopicCommand::List => {
            for name in list(&mut cluster).await? {
                println!("{name}");
            }
        }
        TopicCommand::Describe { name } => {
            let layout = cluster
                .topic(&name, &format!("describe topic {name}"))
                .await?;
            let configs = describe_configs(&mut cluster, &name).await;
            print!("{}", format_description(&layout, &configs));
        }
        TopicCommand::Delete { name } => {
            delete(&mut cluster, &name, server_timeout_ms).await?;
            println!("Deleted topic {name}.");
        }
        TopicCommand::AddPartitions { name, count } => {
            add_partitions(&mut cluster, &name, count, server_timeout_ms).await?;
            println!("Topic {name} now has {count} partitions.");
        }
        TopicCommand::DeleteRecords {
            topic,
            partition,
            offset,
            offset_json_file,
        } => {
            let targets = match (offset_json_file, topic, partition, offset) {
                (Some(path), ..) => delete_records::read_offsets_file(&path)?,
                (None, Some(topic), Some(partition), Some(offset)) => {
                    vec![delete_records::DeletionTarget {
                        topic,
                        partition,
                        offset,
                    }]
                }
                _ => bail!("give --topic, --partition and --offset, or --offset-json-file"),
            };
            let outcomes =
                delete_records::delete_records(&mut cluster, targets, server_timeout_ms).await?;
            print!("{}", delete_records::format_outcomes(&outcomes));
            let failed = outcomes.iter().filter(|(_, r)| r.is_err()).count();
            if failed > 0 {
                bail!("records of {failed} partition(s) could not be deleted");
            }
        }
    }
    Ok(())
}

/// The `timeout_ms` we give the broker for admin operations: shorter than
/// our own request timeout, so that its answer (possibly
/// `REQUEST_TIMED_OUT`) arrives before we give up on the connection.
fn server_timeout_ms(connect: &ConnectArgs) -> i32 {
    i32::try_from(connect.request_timeout_ms.saturating_mul(3) / 4).unwrap_or(i32::MAX)
}

/// `key=value` pairs from `--config`.
fn parse_configs(configs: &[String]) -> Result<Vec<(String, String)>> {
    configs
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => bail!("invalid --config {c:?}: expected key=value"),
        })
        .collect()
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

async fn create(
    cluster: &mut Cluster,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: Vec<(String, String)>,
    server_timeout_ms: i32,
) -> Result<()> {
    let op = format!("create topic {name}");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k))
                                .with_value(Some(StrBytes::from_string(v)))
                        })
                        .collect(),
                ),
        ])
        .with_timeout_ms(server_timeout_ms);
    let response = cluster
        .any_broker()
        .await?
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| anyhow!("{op}: topic missing from the response"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    Ok(())
}

async fn list(cluster: &mut Cluster) -> Result<Vec<String>> {
    let response = cluster.metadata(None).await.context("list topics")?;
    KafkaError::check(response.error_code, "list topics")?;
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    Ok(names)
}

async fn delete(cluster: &mut Cluster, name: &str, server_timeout_ms: i32) -> Result<()> {
    let op = format!("delete topic {name}");
    let client = cluster.any_broker().await?;
    let version = client.version::<DeleteTopicsRequest>()?;
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(server_timeout_ms);
    // v6 names topics by name-or-id; older versions by name only.
    if version >= 6 {
        request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
    } else {
        request.topic_names = vec![topic_name(name)];
    }
    let response = client
        .send_version(&request, version)
        .await
        .with_context(|| op.clone())?;
    let result = response
        .responses
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .ok_or_else(|| anyhow!("{op}: topic missing from the response"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    Ok(())
}

async fn add_partitions(
    cluster: &mut Cluster,
    name: &str,
    count: i32,
    server_timeout_ms: i32,
) -> Result<()> {
    let op = format!("add partitions to {name}");
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                // Null: let the controller place the new replicas.
                .with_assignments(None),
        ])
        .with_timeout_ms(server_timeout_ms);
    let response = cluster
        .any_broker()
        .await?
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let result = response
        .results
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| anyhow!("{op}: topic missing from the response"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    Ok(())
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq)]
struct ConfigEntry {
    name: String,
    /// `None` for null values and for sensitive ones the broker hides.
    value: Option<String>,
    is_sensitive: bool,
    source: i8,
}

async fn describe_configs(cluster: &mut Cluster, name: &str) -> Result<Vec<ConfigEntry>> {
    let configs =
        super::configs::describe(cluster, &super::configs::Target::topic(name), false).await?;
    Ok(configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            is_sensitive: c.is_sensitive,
            source: c.config_source,
        })
        .collect())
}

/// Kafka's `ConfigSource` names (DescribeConfigs v1+).
pub(super) fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn join_ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// The `topic describe` output: a summary, a partition table and a config
/// table (or why configs are unavailable).
fn format_description(layout: &TopicLayout, configs: &Result<Vec<ConfigEntry>>) -> String {
    let mut out = String::new();
    let topic_id = if layout.topic_id.is_nil() {
        "-".to_owned()
    } else {
        layout.topic_id.to_string()
    };
    let replication_factor = layout
        .partitions
        .values()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "Topic:             {}", layout.name);
    let _ = writeln!(out, "TopicId:           {topic_id}");
    let _ = writeln!(out, "PartitionCount:    {}", layout.partitions.len());
    let _ = writeln!(out, "ReplicationFactor: {replication_factor}");
    if layout.is_internal {
        let _ = writeln!(out, "Internal:          true");
    }
    out.push('\n');

    let with_errors = layout.partitions.values().any(|p| p.error_code != 0);
    let mut header = vec![
        "PARTITION",
        "LEADER",
        "LEADER-EPOCH",
        "REPLICAS",
        "ISR",
        "OFFLINE",
    ];
    if with_errors {
        header.push("ERROR");
    }
    let rows = layout
        .partitions
        .iter()
        .map(|(index, p)| {
            let mut row = vec![
                index.to_string(),
                if p.leader < 0 {
                    "none".to_owned()
                } else {
                    p.leader.to_string()
                },
                p.leader_epoch.to_string(),
                join_ids(&p.replicas),
                join_ids(&p.isr),
                join_ids(&p.offline_replicas),
            ];
            if with_errors {
                row.push(super::error::error_name(p.error_code));
            }
            row
        })
        .collect::<Vec<_>>();
    out.push_str(&render_table(&header, &rows));
    out.push('\n');

    match configs {
        Ok(configs) if configs.is_empty() => out.push_str("Configs: none\n"),
        Ok(configs) => {
            let rows = configs
                .iter()
                .map(|c| {
                    let value = match (&c.value, c.is_sensitive) {
                        (_, true) => "<sensitive>".to_owned(),
                        (Some(v), false) => v.clone(),
                        (None, false) => "<null>".to_owned(),
                    };
                    vec![
                        c.name.clone(),
                        value,
                        config_source_name(c.source).to_owned(),
                    ]
                })
                .collect::<Vec<_>>();
            out.push_str(&render_table(&["CONFIG", "VALUE", "SOURCE"], &rows));
        }
        Err(e) => {
            let _ = writeln!(out, "Configs: unavailable: {e:#}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::super::cluster::PartitionLayout;
    use super::*;

    #[test]
    fn configs_parse_as_key_value() {
        let parsed = parse_configs(&[
            "cleanup.policy=compact".to_owned(),
            "x=a=b".to_owned(),
            "empty=".to_owned(),
        ])
        .expect("valid");
        assert_eq!(
            parsed,
            vec![
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("x".to_owned(), "a=b".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        let err = parse_configs(&["novalue".to_owned()]).expect_err("invalid");
        assert!(err.to_string().contains("key=value"), "{err}");
        assert!(parse_configs(&["=v".to_owned()]).is_err());
    }

    #[test]
    fn server_timeout_is_below_the_request_timeout() {
        let connect = ConnectArgs {
            bootstrap: String::new(),
            request_timeout_ms: 30_000,
            command_config: None,
        };
        assert_eq!(server_timeout_ms(&connect), 22_500);
        let huge = ConnectArgs {
            bootstrap: String::new(),
            request_timeout_ms: u64::MAX,
            command_config: None,
        };
        assert_eq!(server_timeout_ms(&huge), i32::MAX);
    }

    #[test]
    fn tables_align_without_trailing_blanks() {
        let table = render_table(
            &["A", "LONG-HEADER", "C"],
            &[
                vec!["1".into(), "x".into(), "".into()],
                vec!["22".into(), "y".into(), "z".into()],
            ],
        );
        assert_eq!(table, "A   LONG-HEADER  C\n1   x\n22  y            z\n");
    }

    #[test]
    fn description_lists_partitions_and_configs() {
        let partition = |leader| PartitionLayout {
            error_code: if leader < 0 { 5 } else { 0 },
            leader,
            leader_epoch: 3,
            replicas: vec![1, 2],
            isr: vec![1],
            offline_replicas: vec![],
        };
        let layout = TopicLayout {
            name: "t1".into(),
            topic_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            is_internal: false,
            partitions: BTreeMap::from([(0, partition(1)), (1, partition(-1))]),
        };
        let configs = Ok(vec![
            ConfigEntry {
                name: "cleanup.policy".into(),
                value: Some("delete".into()),
                is_sensitive: false,
                source: 5,
            },
            ConfigEntry {
                name: "secret".into(),
                value: None,
                is_sensitive: true,
                source: 1,
            },
        ]);
        let text = format_description(&layout, &configs);
        let expected = "\
Topic:             t1
TopicId:           01234567-89ab-cdef-0123-456789abcdef
PartitionCount:    2
ReplicationFactor: 2

PARTITION  LEADER  LEADER-EPOCH  REPLICAS  ISR  OFFLINE  ERROR
0          1       3             1,2       1    -        NONE
1          none    3             1,2       1    -        LEADER_NOT_AVAILABLE

CONFIG          VALUE        SOURCE
cleanup.policy  delete       DEFAULT_CONFIG
secret          <sensitive>  DYNAMIC_TOPIC_CONFIG
";
        assert_eq!(text, expected);

        let unavailable = format_description(&layout, &Err(anyhow!("boom")));
        assert!(
            unavailable.ends_with("Configs: unavailable: boom\n"),
            "{unavailable}"
        );
    }
}
