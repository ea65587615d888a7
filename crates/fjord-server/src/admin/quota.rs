//! `fjord quota ...`: set, remove and list client quotas, like
//! `kafka-configs.sh --entity-type users|clients --alter --add-config` /
//! `--delete-config` / `--describe`, through AlterClientQuotas and
//! DescribeClientQuotas.
//!
//! An entity is `--user NAME` or `--user-default`, `--client-id NAME` or
//! `--client-default`, or one of each (Kafka's (user, client-id) entity).
//! `set` takes `--config key=value` (repeatable, or comma-separated);
//! `remove` takes `--config key` (none: every key the entity has).

use anyhow::{Context, Result, bail};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::EntryData as DescribedEntry;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::Cluster;
use super::error::KafkaError;
use super::table::render_table;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct EntityArgs {
    /// The user (the principal's name, `ANONYMOUS` without authentication).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user (`<default>`): every user without a quota of its own.
    #[arg(long = "user-default")]
    user_default: bool,
    /// The client id.
    #[arg(long = "client-id", conflicts_with = "client_default")]
    client_id: Option<String>,
    /// The default client id (`<default>`).
    #[arg(long = "client-default")]
    client_default: bool,
}

impl EntityArgs {
    /// (entity type, name or `None` for the default) pairs.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.user_default {
            parts.push(("user", self.user.clone()));
        }
        if self.client_id.is_some() || self.client_default {
            parts.push(("client-id", self.client_id.clone()));
        }
        parts
    }

    fn wire(&self) -> Result<Vec<EntityData>> {
        let parts = self.parts();
        if parts.is_empty() {
            bail!("name the entity: --user/--user-default and/or --client-id/--client-default");
        }
        Ok(parts
            .into_iter()
            .map(|(t, n)| {
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str(t))
                    .with_entity_name(n.map(StrBytes::from_string))
            })
            .collect())
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum QuotaCommand {
    /// Set quota values (`--config producer_byte_rate=1048576`).
    Set {
        #[command(flatten)]
        entity: EntityArgs,
        /// key=value: producer_byte_rate, consumer_byte_rate,
        /// request_percentage, controller_mutation_rate.
        #[arg(long = "config", value_delimiter = ',', required = true)]
        configs: Vec<String>,
    },
    /// Remove quota values (`--config producer_byte_rate`; none: all).
    Remove {
        #[command(flatten)]
        entity: EntityArgs,
        #[arg(long = "config", value_delimiter = ',')]
        configs: Vec<String>,
    },
    /// List quotas: every entity, or those matching the entity flags.
    List {
        #[command(flatten)]
        entity: EntityArgs,
    },
}

pub async fn run_quota(connect: &ConnectArgs, cmd: QuotaCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    match cmd {
        QuotaCommand::Set { entity, configs } => {
            let ops = configs
                .iter()
                .map(|c| {
                    let Some((key, value)) = c.split_once('=') else {
                        bail!("--config wants key=value, got {c:?}");
                    };
                    let value: f64 = value
                        .trim()
                        .parse()
                        .with_context(|| format!("{key}: not a number: {value:?}"))?;
                    Ok(OpData::default()
                        .with_key(StrBytes::from_string(key.trim().to_owned()))
                        .with_value(value))
                })
                .collect::<Result<Vec<_>>>()?;
            alter(&mut cluster, &entity, ops).await?;
            println!("Set quotas on {}.", describe_entity(&entity.parts()));
            Ok(())
        }
        QuotaCommand::Remove { entity, configs } => {
            let keys = if configs.is_empty() {
                let entries = describe(&mut cluster, &entity, true).await?;
                entries
                    .iter()
                    .flat_map(|e| e.values.iter().map(|v| v.key.to_string()))
                    .collect()
            } else {
                configs
            };
            if keys.is_empty() {
                println!("No quotas on {}.", describe_entity(&entity.parts()));
                return Ok(());
            }
            let ops = keys
                .into_iter()
                .map(|k| {
                    OpData::default()
                        .with_key(StrBytes::from_string(k))
                        .with_remove(true)
                })
                .collect();
            alter(&mut cluster, &entity, ops).await?;
            println!("Removed quotas on {}.", describe_entity(&entity.parts()));
            Ok(())
        }
        QuotaCommand::List { entity } => {
            let entries = describe(&mut cluster, &entity, false).await?;
            print!("{}", format_quotas(&entries));
            Ok(())
        }
    }
}

async fn alter(cluster: &mut Cluster, entity: &EntityArgs, ops: Vec<OpData>) -> Result<()> {
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(entity.wire()?)
            .with_ops(ops),
    ]);
    let op = "alter client quotas";
    let client = cluster.any_broker().await?;
    let response = client.send(&request).await.context(op)?;
    for entry in &response.entries {
        KafkaError::check_with_message(entry.error_code, entry.error_message.as_ref(), op)?;
    }
    Ok(())
}

/// The entities the flags name (exactly, when `strict`); no flags: all.
async fn describe(
    cluster: &mut Cluster,
    entity: &EntityArgs,
    strict: bool,
) -> Result<Vec<DescribedEntry>> {
    let components = entity
        .parts()
        .into_iter()
        .map(|(t, n)| {
            ComponentData::default()
                .with_entity_type(StrBytes::from_static_str(t))
                .with_match_type(if n.is_some() {
                    MATCH_EXACT
                } else {
                    MATCH_DEFAULT
                })
                .with_match(n.map(StrBytes::from_string))
        })
        .collect();
    let request = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let op = "describe client quotas";
    let client = cluster.any_broker().await?;
    let response = client.send(&request).await.context(op)?;
    KafkaError::check_with_message(response.error_code, response.error_message.as_ref(), op)?;
    Ok(response.entries.unwrap_or_default())
}

fn describe_entity(parts: &[(&str, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_quotas(entries: &[DescribedEntry]) -> String {
    let mut rows = Vec::new();
    for entry in entries {
        let name = |t: &str| {
            entry
                .entity
                .iter()
                .find(|e| e.entity_type.as_str() == t)
                .map_or(String::new(), |e| {
                    e.entity_name
                        .as_ref()
                        .map_or("<default>".to_owned(), |n| n.to_string())
                })
        };
        for value in &entry.values {
            rows.push(vec![
                name("user"),
                name("client-id"),
                value.key.to_string(),
                value.value.to_string(),
            ]);
        }
    }
    render_table(&["USER", "CLIENT-ID", "QUOTA", "VALUE"], &rows)
}
