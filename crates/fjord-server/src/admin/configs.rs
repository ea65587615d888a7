//! `fjord config ...`: describe and change topic and broker configs, like
//! `kafka-configs.sh --describe` / `--alter --add-config` / `--delete-config`
//! for `--topic T`, `--broker N`, `--broker-defaults` (the cluster-wide
//! dynamic defaults) and `--group G`. Changes go through IncrementalAlterConfigs.

use anyhow::{Context, Result, anyhow, bail};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::Cluster;
use super::error::KafkaError;
use super::table::render_table;
use super::topic::config_source_name;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// DescribeConfigs sources of dynamic values (topic, per broker, cluster
/// default, group).
const DYNAMIC_SOURCES: [i8; 4] = [1, 2, 3, 8];

/// Which resource a config command is about: exactly one of the three.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// One broker's configs (its dynamic values and static ones).
    #[arg(long)]
    broker: Option<i32>,
    /// The cluster-wide dynamic broker defaults.
    #[arg(long = "broker-defaults")]
    broker_defaults: bool,
    /// A consumer group's configs (KIP-848 group configs; stored, not applied).
    #[arg(long)]
    group: Option<String>,
}

impl Target {
    /// A topic's configs (what `fjord topic describe` shows).
    pub(super) fn topic(name: &str) -> Self {
        Target {
            topic: Some(name.to_owned()),
            broker: None,
            broker_defaults: false,
            group: None,
        }
    }

    /// (resource type, resource name, the broker that must answer a describe).
    fn resource(&self) -> (i8, String, Option<i32>) {
        match (&self.topic, self.broker, &self.group) {
            (Some(t), _, _) => (RESOURCE_TOPIC, t.clone(), None),
            (None, Some(b), _) => (RESOURCE_BROKER, b.to_string(), Some(b)),
            (None, None, Some(g)) => (RESOURCE_GROUP, g.clone(), None),
            (None, None, None) => (RESOURCE_BROKER, String::new(), None),
        }
    }

    fn describe(&self) -> String {
        match (&self.topic, self.broker, &self.group) {
            (Some(t), _, _) => format!("topic {t}"),
            (None, Some(b), _) => format!("broker {b}"),
            (None, None, Some(g)) => format!("group {g}"),
            (None, None, None) => "the broker defaults".into(),
        }
    }
}

/// Config administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Show a resource's dynamic configs (`--all`: every config).
    Describe {
        #[command(flatten)]
        target: Target,
        /// Every config with its source, not only the dynamic ones.
        #[arg(long)]
        all: bool,
        /// Also show each config's synonyms in precedence order.
        #[arg(long)]
        synonyms: bool,
    },
    /// Set configs: `--add-config k=v,k2=v2` (a list value in brackets:
    /// `cleanup.policy=[compact,delete]`).
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(long = "add-config", value_name = "K=V,...", required = true)]
        add: Vec<String>,
    },
    /// Remove dynamic configs, so the next level's value applies again.
    Delete {
        #[command(flatten)]
        target: Target,
        #[arg(long = "delete-config", value_name = "K,...", required = true)]
        delete: Vec<String>,
    },
}

/// Runs one config command, printing its result to stdout.
pub async fn run_config(connect: &ConnectArgs, cmd: ConfigCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    match cmd {
        ConfigCommand::Describe {
            target,
            all,
            synonyms,
        } => {
            let configs = describe(&mut cluster, &target, synonyms).await?;
            print!("{}", format_configs(&configs, all, synonyms));
            Ok(())
        }
        ConfigCommand::Set { target, add } => {
            let mut ops = Vec::new();
            for arg in &add {
                for (k, v) in parse_add_config(arg)? {
                    ops.push((k, OP_SET, Some(v)));
                }
            }
            alter(&mut cluster, &target, ops).await?;
            println!("Completed updating config for {}.", target.describe());
            Ok(())
        }
        ConfigCommand::Delete { target, delete } => {
            let ops = delete
                .iter()
                .flat_map(|d| d.split(','))
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| (k.to_owned(), OP_DELETE, None))
                .collect();
            alter(&mut cluster, &target, ops).await?;
            println!("Completed updating config for {}.", target.describe());
            Ok(())
        }
    }
}

/// `k=v,k2=[a,b]` → pairs; brackets hold a list value with commas.
fn parse_add_config(arg: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let mut pieces = Vec::new();
    for (i, ch) in arg.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                pieces.push(&arg[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&arg[start..]);
    for piece in pieces.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = piece.split_once('=') else {
            bail!("invalid --add-config entry {piece:?}: expected key=value");
        };
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// DescribeConfigs of `target`, sorted by name.
pub(super) async fn describe(
    cluster: &mut Cluster,
    target: &Target,
    synonyms: bool,
) -> Result<Vec<DescribeConfigsResourceResult>> {
    let (resource_type, name, broker) = target.resource();
    let op = format!("describe configs of {}", target.describe());
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name))
                .with_configuration_keys(None),
        ]);
    // A broker describes its own configs (its static ones are its own).
    let client = match broker {
        Some(id) => {
            // Learn the brokers' addresses first.
            cluster.metadata(Some(&[][..])).await?;
            cluster.broker(id).await?
        }
        None => cluster.any_broker().await?,
    };
    let response = client.send(&request).await.with_context(|| op.clone())?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{op}: empty response"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    let mut configs = result.configs;
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(configs)
}

async fn alter(
    cluster: &mut Cluster,
    target: &Target,
    ops: Vec<(String, i8, Option<String>)>,
) -> Result<()> {
    let (resource_type, name, _) = target.resource();
    let op = format!("alter configs of {}", target.describe());
    let configs = ops
        .into_iter()
        .map(|(k, operation, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_config_operation(operation)
                .with_value(v.map(StrBytes::from_string))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name))
            .with_configs(configs),
    ]);
    let response = cluster
        .any_broker()
        .await?
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let result = response
        .responses
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{op}: empty response"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    Ok(())
}

/// The describe table: dynamic configs only unless `all`.
fn format_configs(configs: &[DescribeConfigsResourceResult], all: bool, synonyms: bool) -> String {
    let mut header = vec!["NAME", "VALUE", "SOURCE", "READ-ONLY"];
    if synonyms {
        header.push("SYNONYMS");
    }
    let value = |v: &Option<StrBytes>, sensitive: bool| {
        if sensitive {
            "(sensitive)".to_owned()
        } else {
            v.as_ref().map_or("null".to_owned(), |v| v.to_string())
        }
    };
    let rows: Vec<Vec<String>> = configs
        .iter()
        .filter(|c| all || DYNAMIC_SOURCES.contains(&c.config_source))
        .map(|c| {
            let mut row = vec![
                c.name.to_string(),
                value(&c.value, c.is_sensitive),
                config_source_name(c.config_source).to_owned(),
                c.read_only.to_string(),
            ];
            if synonyms {
                row.push(
                    c.synonyms
                        .iter()
                        .map(|s| {
                            format!(
                                "{}:{}={}",
                                config_source_name(s.source),
                                s.name.as_str(),
                                value(&s.value, c.is_sensitive)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return "(no dynamic configs; --all shows every config)\n".to_owned();
    }
    render_table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::parse_for_tests::parse;

    #[test]
    fn add_config_splits_on_commas_outside_brackets() {
        assert_eq!(
            parse_add_config("retention.ms=1000, cleanup.policy=[compact,delete]").unwrap(),
            vec![
                ("retention.ms".to_owned(), "1000".to_owned()),
                ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
            ]
        );
        assert!(parse_add_config("retention.ms").is_err());
    }

    #[test]
    fn exactly_one_target() {
        let cmd: ConfigCommand = parse(&["describe", "--topic", "t"]).unwrap();
        let ConfigCommand::Describe { target, .. } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(target.resource(), (RESOURCE_TOPIC, "t".into(), None));
        let cmd: ConfigCommand = parse(&[
            "set",
            "--broker-defaults",
            "--add-config",
            "log.retention.ms=1",
        ])
        .unwrap();
        let ConfigCommand::Set { target, .. } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(target.resource(), (RESOURCE_BROKER, String::new(), None));
        let cmd: ConfigCommand = parse(&["describe", "--group", "g"]).unwrap();
        let ConfigCommand::Describe { target, .. } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(target.resource(), (RESOURCE_GROUP, "g".into(), None));
        assert!(parse::<ConfigCommand>(&["describe"]).is_err());
        assert!(parse::<ConfigCommand>(&["describe", "--topic", "t", "--broker", "1"]).is_err());
        assert!(parse::<ConfigCommand>(&["delete", "--broker", "1"]).is_err());
    }
}
