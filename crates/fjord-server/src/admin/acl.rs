//! `fjord acl ...`: add, remove and list ACLs, like `kafka-acls.sh --add` /
//! `--remove` / `--list`, through CreateAcls, DeleteAcls and DescribeAcls.
//!
//! `add` creates one binding per (principal, host, operation): the
//! `--allow-principal`s as ALLOW, the `--deny-principal`s as DENY, on one
//! resource (`--topic`, `--group`, `--cluster`, `--transactional-id`).
//! `remove` deletes what the same flags select (no principal or operation:
//! every one); `list` shows what a filter selects, grouped by resource.

use anyhow::{Context, Result, anyhow, bail};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::Cluster;
use super::error::KafkaError;
use super::table::render_table;

/// Kafka's codes (`ResourceType`, `PatternType`, `AclOperation`,
/// `AclPermissionType`).
const ANY: i8 = 1;
const PATTERN_MATCH: i8 = 2;
const PATTERN_LITERAL: i8 = 3;
const PATTERN_PREFIXED: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;
const CLUSTER_NAME: &str = "kafka-cluster";

const RESOURCE_TYPES: [(i8, &str); 4] = [
    (2, "TOPIC"),
    (3, "GROUP"),
    (4, "CLUSTER"),
    (5, "TRANSACTIONAL_ID"),
];

const OPERATIONS: [(i8, &str); 13] = [
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
    (13, "CREATE_TOKENS"),
    (14, "DESCRIBE_TOKENS"),
];

/// Kafka's `--operation` value (`Read`, `DescribeConfigs`, `describe-configs`,
/// `DESCRIBE_CONFIGS` all work) to its code.
fn operation_code(name: &str) -> Result<i8> {
    let wanted: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    OPERATIONS
        .iter()
        .find(|(_, n)| n.replace('_', "") == wanted)
        .map(|(code, _)| *code)
        .ok_or_else(|| anyhow!("unknown operation {name:?}"))
}

fn name_of(table: &[(i8, &'static str)], code: i8) -> String {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("UNKNOWN({code})"), |(_, n)| (*n).to_owned())
}

fn pattern_name(code: i8) -> String {
    match code {
        PATTERN_LITERAL => "LITERAL".into(),
        PATTERN_PREFIXED => "PREFIXED".into(),
        other => format!("UNKNOWN({other})"),
    }
}

/// `--resource-pattern-type`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternArg {
    Literal,
    Prefixed,
    /// Filters only: literal or prefixed, names compared exactly.
    Any,
    /// Filters only: every binding that applies to the name (literal,
    /// `*` and prefixes).
    Match,
}

impl PatternArg {
    fn code(self) -> i8 {
        match self {
            PatternArg::Literal => PATTERN_LITERAL,
            PatternArg::Prefixed => PATTERN_PREFIXED,
            PatternArg::Any => ANY,
            PatternArg::Match => PATTERN_MATCH,
        }
    }
}

/// The resource an ACL command is about: at most one.
#[derive(clap::Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub struct Resource {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// The cluster (Kafka's resource `kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    #[arg(long = "transactional-id")]
    transactional_id: Option<String>,
}

impl Resource {
    /// (resource type, name); `None` when no resource was given.
    fn get(&self) -> Option<(i8, String)> {
        match (
            &self.topic,
            &self.group,
            self.cluster,
            &self.transactional_id,
        ) {
            (Some(t), ..) => Some((2, t.clone())),
            (None, Some(g), ..) => Some((3, g.clone())),
            (None, None, true, _) => Some((4, CLUSTER_NAME.to_owned())),
            (None, None, false, Some(id)) => Some((5, id.clone())),
            (None, None, false, None) => None,
        }
    }
}

/// Who and what: the flags `add` and `remove` share.
#[derive(clap::Args, Debug, Clone)]
pub struct Entries {
    #[command(flatten)]
    resource: Resource,
    /// `Type:name` (`User:alice`, `User:*` for every user) to allow.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// `Type:name` to deny; a DENY wins over any ALLOW.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// The client address the ACL applies to (default `*`, every host).
    #[arg(long = "host", default_value = "*")]
    host: String,
    /// Kafka's operation names: Read, Write, Create, Delete, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs,
    /// IdempotentWrite, All.
    #[arg(long = "operation", value_name = "OPERATION")]
    operations: Vec<String>,
    #[arg(long = "resource-pattern-type", value_enum, default_value = "literal")]
    pattern: PatternArg,
}

impl Entries {
    /// (principal, permission) pairs in flag order.
    fn principals(&self) -> Vec<(&str, i8)> {
        let allow = self.allow_principals.iter().map(|p| (p.as_str(), ALLOW));
        let deny = self.deny_principals.iter().map(|p| (p.as_str(), DENY));
        allow.chain(deny).collect()
    }
}

/// ACL administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AclCommand {
    /// Add ACLs: one per principal and operation on the resource.
    Add {
        #[command(flatten)]
        entries: Entries,
    },
    /// Remove the ACLs the flags select (no principal or operation: any).
    Remove {
        #[command(flatten)]
        entries: Entries,
    },
    /// List ACLs, of one resource or (without one) every ACL.
    List {
        #[command(flatten)]
        resource: Resource,
        /// Only the ACLs of this principal.
        #[arg(long)]
        principal: Option<String>,
        /// `match`: also the wildcard and prefixed ACLs that apply to the
        /// named resource.
        #[arg(long = "resource-pattern-type", value_enum, default_value = "any")]
        pattern: PatternArg,
    },
}

/// Runs one ACL command, printing its result to stdout.
pub async fn run_acl(connect: &ConnectArgs, cmd: AclCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    match cmd {
        AclCommand::Add { entries } => add(&mut cluster, &entries).await,
        AclCommand::Remove { entries } => remove(&mut cluster, &entries).await,
        AclCommand::List {
            resource,
            principal,
            pattern,
        } => {
            let (resource_type, name) = resource.get().map_or((ANY, None), |(t, n)| (t, Some(n)));
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(resource_type)
                .with_resource_name_filter(name.map(StrBytes::from_string))
                .with_pattern_type_filter(pattern.code())
                .with_principal_filter(principal.map(StrBytes::from_string))
                .with_host_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY);
            let op = "describe acls";
            let client = cluster.any_broker().await?;
            let response = client.send(&request).await.context(op)?;
            KafkaError::check_with_message(
                response.error_code,
                response.error_message.as_ref(),
                op,
            )?;
            print!("{}", format_acls(&response.resources));
            Ok(())
        }
    }
}

async fn add(cluster: &mut Cluster, entries: &Entries) -> Result<()> {
    let Some((resource_type, name)) = entries.resource.get() else {
        bail!("name the resource: --topic, --group, --cluster or --transactional-id");
    };
    if !matches!(entries.pattern, PatternArg::Literal | PatternArg::Prefixed) {
        bail!("an ACL's --resource-pattern-type is literal or prefixed");
    }
    let principals = entries.principals();
    if principals.is_empty() || entries.operations.is_empty() {
        bail!("add needs --allow-principal or --deny-principal, and --operation");
    }
    let mut creations = Vec::new();
    for (principal, permission) in &principals {
        for operation in &entries.operations {
            creations.push(
                AclCreation::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_resource_pattern_type(entries.pattern.code())
                    .with_principal(StrBytes::from_string((*principal).to_owned()))
                    .with_host(StrBytes::from_string(entries.host.clone()))
                    .with_operation(operation_code(operation)?)
                    .with_permission_type(*permission),
            );
        }
    }
    let count = creations.len();
    let op = format!(
        "create acls on {} {name}",
        name_of(&RESOURCE_TYPES, resource_type)
    );
    let client = cluster.any_broker().await?;
    let response = client
        .send(&CreateAclsRequest::default().with_creations(creations))
        .await
        .with_context(|| op.clone())?;
    for result in &response.results {
        KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
    }
    println!(
        "Added {count} ACL(s) on {} {name}.",
        name_of(&RESOURCE_TYPES, resource_type)
    );
    Ok(())
}

async fn remove(cluster: &mut Cluster, entries: &Entries) -> Result<()> {
    let Some((resource_type, name)) = entries.resource.get() else {
        bail!("name the resource: --topic, --group, --cluster or --transactional-id");
    };
    let principals: Vec<(Option<&str>, i8)> = match entries.principals() {
        none if none.is_empty() => vec![(None, ANY)],
        some => some.into_iter().map(|(p, perm)| (Some(p), perm)).collect(),
    };
    let operations: Vec<i8> = if entries.operations.is_empty() {
        vec![ANY]
    } else {
        entries
            .operations
            .iter()
            .map(|o| operation_code(o))
            .collect::<Result<_>>()?
    };
    let host = (entries.host != "*" || !entries.principals().is_empty())
        .then(|| StrBytes::from_string(entries.host.clone()));
    let mut filters = Vec::new();
    for (principal, permission) in &principals {
        for operation in &operations {
            filters.push(
                DeleteAclsFilter::default()
                    .with_resource_type_filter(resource_type)
                    .with_resource_name_filter(Some(StrBytes::from_string(name.clone())))
                    .with_pattern_type_filter(entries.pattern.code())
                    .with_principal_filter(principal.map(|p| StrBytes::from_string(p.to_owned())))
                    .with_host_filter(host.clone())
                    .with_operation(*operation)
                    .with_permission_type(*permission),
            );
        }
    }
    let op = format!(
        "delete acls on {} {name}",
        name_of(&RESOURCE_TYPES, resource_type)
    );
    let client = cluster.any_broker().await?;
    let response = client
        .send(&DeleteAclsRequest::default().with_filters(filters))
        .await
        .with_context(|| op.clone())?;
    let mut removed = 0;
    for result in &response.filter_results {
        KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), &op)?;
        removed += result.matching_acls.len();
    }
    println!(
        "Removed {removed} ACL(s) from {} {name}.",
        name_of(&RESOURCE_TYPES, resource_type)
    );
    Ok(())
}

/// One row per ACL, sorted as the broker answered (by resource).
fn format_acls(resources: &[DescribeAclsResource]) -> String {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(move |a| {
                vec![
                    name_of(&RESOURCE_TYPES, r.resource_type),
                    r.resource_name.to_string(),
                    pattern_name(r.pattern_type),
                    a.principal.to_string(),
                    a.host.to_string(),
                    name_of(&OPERATIONS, a.operation),
                    if a.permission_type == ALLOW {
                        "ALLOW"
                    } else {
                        "DENY"
                    }
                    .to_owned(),
                ]
            })
        })
        .collect();
    render_table(
        &[
            "RESOURCE-TYPE",
            "NAME",
            "PATTERN",
            "PRINCIPAL",
            "HOST",
            "OPERATION",
            "PERMISSION",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::parse_for_tests::{assert_consistent, parse};

    #[test]
    fn operations_by_kafkas_names() {
        assert_eq!(operation_code("Read").unwrap(), 3);
        assert_eq!(operation_code("DescribeConfigs").unwrap(), 10);
        assert_eq!(operation_code("describe-configs").unwrap(), 10);
        assert_eq!(operation_code("IDEMPOTENT_WRITE").unwrap(), 12);
        assert_eq!(operation_code("all").unwrap(), 2);
        assert!(operation_code("fly").is_err());
    }

    #[test]
    fn commands_parse() {
        assert_consistent::<AclCommand>();
        let cmd = parse::<AclCommand>(&[
            "add",
            "--allow-principal",
            "User:alice",
            "--deny-principal",
            "User:bob",
            "--operation",
            "Read",
            "--operation",
            "Write",
            "--topic",
            "orders",
            "--resource-pattern-type",
            "prefixed",
        ])
        .unwrap();
        let AclCommand::Add { entries } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(entries.resource.get(), Some((2, "orders".to_owned())));
        assert_eq!(
            entries.principals(),
            vec![("User:alice", ALLOW), ("User:bob", DENY)]
        );
        assert_eq!(entries.pattern, PatternArg::Prefixed);
        assert_eq!(entries.host, "*");
        let cmd = parse::<AclCommand>(&["list", "--cluster"]).unwrap();
        let AclCommand::List { resource, .. } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(resource.get(), Some((4, CLUSTER_NAME.to_owned())));
        assert!(parse::<AclCommand>(&["list", "--topic", "a", "--group", "g"]).is_err());
    }
}
