//! `fjord group ...`: list, describe, delete consumer groups and reset their
//! committed offsets, like `kafka-consumer-groups.sh` and `rpk group`.
//!
//! Group requests other than ListGroups go to the group's coordinator,
//! found with FindCoordinator through any broker; ListGroups goes to every
//! broker (each lists the groups it coordinates). Retriable coordinator
//! errors (`COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`,
//! `NOT_COORDINATOR`) make the command look the coordinator up again, for a
//! bounded time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::{Cluster, TopicLayout};
use super::coordinator::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, Coordinator, CoordinatorKey,
    NOT_COORDINATOR, with_coordinator,
};
use super::error::{KafkaError, error_name};
use super::group_describe::{
    GroupDescription, MemberInfo, PlannedReset, clamp_offset, decode_assignment,
    format_description, format_plan, partition_rows,
};
use super::table::render_table;

/// Error codes the group commands react to.
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const ILLEGAL_GENERATION: i16 = 22;
/// ListOffsets timestamps with special meaning.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

/// Consumer group administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum GroupCommand {
    /// List groups: id, state and protocol type.
    List,
    /// Show a group's state, members, and per partition the committed
    /// offset, log end offset and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group (it must have no active members).
    Delete {
        /// Group id.
        group: String,
    },
    /// Plan (and with --execute, commit) new offsets for a group's
    /// partitions of a topic. The group must be inactive (Empty).
    ResetOffsets(ResetOffsetsArgs),
}

/// `fjord group reset-offsets`.
#[derive(clap::Args, Debug, Clone)]
pub struct ResetOffsetsArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets to reset.
    #[arg(long)]
    pub topic: String,
    /// Only this partition (default: all partitions of the topic).
    #[arg(long)]
    pub partition: Option<i32>,
    #[command(flatten)]
    pub target: ResetTarget,
    /// Commit the new offsets; without it only the plan is printed.
    #[arg(long)]
    pub execute: bool,
}

/// Where to move the offsets; exactly one.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The earliest offset still in the log.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (clamped into the partition's earliest..latest range).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// The first offset whose timestamp is at or after this time
    /// (milliseconds since the epoch); the log end if there is none.
    #[arg(long, value_name = "MS_EPOCH")]
    pub to_datetime: Option<i64>,
}

/// The reset target as one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Datetime(i64),
}

impl ResetTarget {
    fn target(&self) -> Result<Target> {
        match (
            self.to_earliest,
            self.to_latest,
            self.to_offset,
            self.to_datetime,
        ) {
            (true, false, None, None) => Ok(Target::Earliest),
            (false, true, None, None) => Ok(Target::Latest),
            (false, false, Some(n), None) => Ok(Target::Offset(n)),
            (false, false, None, Some(ms)) => Ok(Target::Datetime(ms)),
            _ => {
                bail!("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
            }
        }
    }
}

/// Runs one group command, printing its result to stdout.
pub async fn run_group(connect: &ConnectArgs, cmd: GroupCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    let timeout = connect.request_timeout();
    match cmd {
        GroupCommand::List => {
            let groups = list(&mut cluster).await?;
            if groups.is_empty() {
                println!("No groups.");
            } else {
                let rows: Vec<Vec<String>> = groups
                    .into_iter()
                    .map(|g| vec![g.group_id, dash(g.state), dash(g.protocol_type)])
                    .collect();
                print!(
                    "{}",
                    render_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows)
                );
            }
        }
        GroupCommand::Describe { group } => {
            let description = describe(&mut cluster, &group, timeout).await?;
            if description.state == "Dead" && description.rows.is_empty() {
                bail!("describe group {group}: group does not exist");
            }
            print!("{}", format_description(&description));
        }
        GroupCommand::Delete { group } => {
            delete(&mut cluster, &group, timeout).await?;
            println!("Deleted group {group}.");
        }
        GroupCommand::ResetOffsets(args) => reset_offsets(&mut cluster, &args, timeout).await?,
    }
    Ok(())
}

fn dash(s: String) -> String {
    if s.is_empty() { "-".to_owned() } else { s }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedGroup {
    group_id: String,
    state: String,
    protocol_type: String,
}

/// ListGroups at every broker in the metadata, merged and sorted.
async fn list(cluster: &mut Cluster) -> Result<Vec<ListedGroup>> {
    let answers = cluster
        .ask_every_broker("list groups", &ListGroupsRequest::default())
        .await?;
    let mut groups = BTreeMap::new();
    for (broker, response) in answers {
        KafkaError::check(
            response.error_code,
            format!("list groups at broker {broker}"),
        )?;
        for g in response.groups {
            let id = g.group_id.0.to_string();
            groups.insert(
                id.clone(),
                ListedGroup {
                    group_id: id,
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                },
            );
        }
    }
    Ok(groups.into_values().collect())
}

/// What DescribeGroups says about one group.
struct DescribedGroup {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberInfo>,
}

async fn describe_group(coordinator: &mut Coordinator, group: &str) -> Result<DescribedGroup> {
    let op = format!("describe group {group}");
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = coordinator
        .client
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let g = response
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .ok_or_else(|| anyhow!("{op}: group missing from the response"))?;
    KafkaError::check_with_message(g.error_code, g.error_message.as_ref(), &op)?;
    let is_consumer = g.protocol_type.as_str() == "consumer" || g.protocol_type.is_empty();
    let members = g
        .members
        .into_iter()
        .map(|m| MemberInfo {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if is_consumer {
                decode_assignment(&m.member_assignment).map_err(|e| format!("{e:#}"))
            } else {
                Err(format!("protocol type {} is not consumer", g.protocol_type))
            },
        })
        .collect();
    Ok(DescribedGroup {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
    })
}

/// OffsetFetch: the group's committed offsets (>= 0 only), for `topic`'s
/// `partitions` or, with `None`, for everything it committed.
async fn fetch_offsets(
    coordinator: &mut Coordinator,
    group: &str,
    only: Option<(&str, &[i32])>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let op = format!("fetch committed offsets of group {group}");
    let client = &mut coordinator.client;
    let version = client.version::<OffsetFetchRequest>()?;
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        request.groups = vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(only.map(|(topic, partitions)| {
                    vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(partitions.to_vec()),
                    ]
                })),
        ];
    } else {
        ensure!(
            version >= 2 || only.is_some(),
            "{op}: the broker's OffsetFetch v{version} cannot fetch all topics"
        );
        request.group_id = group_id(group);
        request.topics = only.map(|(topic, partitions)| {
            vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec()),
            ]
        });
    }
    let response = client
        .send_version(&request, version)
        .await
        .with_context(|| op.clone())?;
    let mut offsets = BTreeMap::new();
    let mut record = |topic: &str, partition: i32, offset: i64, code: i16| -> Result<()> {
        KafkaError::check(code, format_args!("{op}: partition {topic}-{partition}"))?;
        if offset >= 0 {
            offsets.insert((topic.to_owned(), partition), offset);
        }
        Ok(())
    };
    if version >= 8 {
        let g = response
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| anyhow!("{op}: group missing from the response"))?;
        KafkaError::check(g.error_code, &op)?;
        for t in &g.topics {
            for p in &t.partitions {
                record(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
    } else {
        KafkaError::check(response.error_code, &op)?;
        for t in &response.topics {
            for p in &t.partitions {
                record(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
    }
    Ok(offsets)
}

/// ListOffsets at `timestamp` for `partitions` of a topic, one request per
/// leader. An offset of -1 (no record at or after a timestamp) is kept.
async fn list_offsets(
    cluster: &mut Cluster,
    layout: &TopicLayout,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>> {
    let what = match timestamp {
        EARLIEST_TIMESTAMP => "earliest offsets".to_owned(),
        LATEST_TIMESTAMP => "log end offsets".to_owned(),
        ms => format!("offsets at timestamp {ms}"),
    };
    let op = format!("list {what} of topic {}", layout.name);
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        let leader = layout
            .partitions
            .get(p)
            .map(|l| l.leader)
            .filter(|l| *l >= 0)
            .ok_or_else(|| {
                anyhow::Error::new(KafkaError {
                    op: format!("{op}: partition {p}"),
                    code: 5, // LEADER_NOT_AVAILABLE
                    message: None,
                })
            })?;
        by_leader.entry(leader).or_default().push(*p);
    }
    let mut offsets = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(&layout.name))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    ),
            ]);
        let response = match cluster.broker(leader).await {
            Ok(client) => client.send(&request).await,
            Err(e) => Err(e),
        };
        let response = response
            .inspect_err(|_| cluster.forget_broker(leader))
            .with_context(|| op.clone())?;
        for p in response.topics.iter().flat_map(|t| &t.partitions) {
            KafkaError::check(
                p.error_code,
                format_args!("{op}: partition {}", p.partition_index),
            )?;
            offsets.insert(p.partition_index, p.offset);
        }
    }
    for p in partitions {
        ensure!(
            offsets.contains_key(p),
            "{op}: partition {p} missing from the response"
        );
    }
    Ok(offsets)
}

/// DescribeGroups, OffsetFetch and log end offsets of every partition
/// shown.
async fn describe(
    cluster: &mut Cluster,
    group: &str,
    timeout: Duration,
) -> Result<GroupDescription> {
    let (described, committed, coordinator) = with_coordinator(
        cluster,
        CoordinatorKey::Group(group),
        timeout,
        async |c: &mut Coordinator| {
            let described = describe_group(c, group).await?;
            let committed = fetch_offsets(c, group, None).await?;
            Ok((described, committed, c.describe()))
        },
    )
    .await?;

    // Topics to look up: assigned or committed.
    let mut topics: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, p) in committed.keys() {
        topics.entry(topic.clone()).or_default().insert(*p);
    }
    for m in &described.members {
        if let Ok(a) = &m.assignment {
            for (topic, ps) in &a.partitions {
                topics.entry(topic.clone()).or_default().extend(ps);
            }
        }
    }
    let mut log_end = BTreeMap::new();
    let mut notes = Vec::new();
    for (topic, partitions) in topics {
        let result = async {
            let layout = cluster
                .topic(&topic, &format!("describe topic {topic}"))
                .await?;
            let existing: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| layout.partitions.contains_key(p))
                .collect();
            list_offsets(cluster, &layout, &existing, LATEST_TIMESTAMP).await
        }
        .await;
        match result {
            Ok(offsets) => {
                for (p, offset) in offsets {
                    log_end.insert((topic.clone(), p), offset);
                }
            }
            Err(e) => notes.push(format!("log end offsets of {topic} unavailable: {e:#}")),
        }
    }

    let rows = partition_rows(&described.members, &committed, &log_end);
    Ok(GroupDescription {
        group: group.to_owned(),
        state: described.state,
        protocol_type: described.protocol_type,
        protocol: described.protocol,
        coordinator,
        members: described.members,
        rows,
        notes,
    })
}

async fn delete(cluster: &mut Cluster, group: &str, timeout: Duration) -> Result<()> {
    let op = format!("delete group {group}");
    let code = with_coordinator(
        cluster,
        CoordinatorKey::Group(group),
        timeout,
        async |c: &mut Coordinator| {
            let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
            let response = c.client.send(&request).await.with_context(|| op.clone())?;
            let result = response
                .results
                .into_iter()
                .find(|r| r.group_id.0.as_str() == group)
                .ok_or_else(|| anyhow!("{op}: group missing from the response"))?;
            // Coordinator errors are retried by with_coordinator.
            match result.error_code {
                COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                    Err(KafkaError::check(result.error_code, &op)
                        .expect_err("non-zero code")
                        .into())
                }
                code => Ok(code),
            }
        },
    )
    .await?;
    let hint = match code {
        0 => return Ok(()),
        NON_EMPTY_GROUP => {
            "the group still has active members; stop its consumers (or wait for their \
             session timeout) and try again"
        }
        GROUP_ID_NOT_FOUND => "no such group",
        _ => "",
    };
    let err = KafkaError::check(code, &op).expect_err("non-zero code");
    if hint.is_empty() {
        Err(err.into())
    } else {
        // "delete group g1: NON_EMPTY_GROUP: the group still has ...".
        Err(anyhow!("{err}: {hint}"))
    }
}

/// The new offset of every partition in the plan.
fn plan_offsets(
    target: Target,
    partitions: &[i32],
    earliest: &BTreeMap<i32, i64>,
    latest: &BTreeMap<i32, i64>,
    by_time: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>> {
    partitions
        .iter()
        .map(|p| {
            let get = |m: &BTreeMap<i32, i64>, what: &str| {
                m.get(p)
                    .copied()
                    .ok_or_else(|| anyhow!("no {what} offset for partition {p}"))
            };
            let offset = match target {
                Target::Earliest => get(earliest, "earliest")?,
                Target::Latest => get(latest, "latest")?,
                Target::Offset(n) => {
                    clamp_offset(n, get(earliest, "earliest")?, get(latest, "latest")?)
                }
                Target::Datetime(_) => match get(by_time, "timestamp")? {
                    // No record at or after the time: the end of the log.
                    o if o < 0 => get(latest, "latest")?,
                    o => o,
                },
            };
            Ok((*p, offset))
        })
        .collect()
}

async fn reset_offsets(
    cluster: &mut Cluster,
    args: &ResetOffsetsArgs,
    timeout: Duration,
) -> Result<()> {
    let target = args.target.target()?;
    let group = args.group.as_str();
    let op = format!("reset offsets of group {group} on topic {}", args.topic);
    let layout = cluster.topic(&args.topic, &op).await?;
    let partitions = layout.select_partitions(args.partition, &op)?;
    let (state, current) = with_coordinator(
        cluster,
        CoordinatorKey::Group(group),
        timeout,
        async |c: &mut Coordinator| {
            let described = describe_group(c, group).await?;
            let current = fetch_offsets(c, group, Some((&args.topic, &partitions))).await?;
            Ok((described.state, current))
        },
    )
    .await?;

    let needs_bounds = matches!(target, Target::Offset(_) | Target::Earliest);
    let earliest = if needs_bounds {
        list_offsets(cluster, &layout, &partitions, EARLIEST_TIMESTAMP).await?
    } else {
        BTreeMap::new()
    };
    let latest = list_offsets(cluster, &layout, &partitions, LATEST_TIMESTAMP).await?;
    let by_time = match target {
        Target::Datetime(ms) => list_offsets(cluster, &layout, &partitions, ms).await?,
        _ => BTreeMap::new(),
    };
    let new_offsets = plan_offsets(target, &partitions, &earliest, &latest, &by_time)?;
    let plan: Vec<PlannedReset> = new_offsets
        .iter()
        .map(|(p, new_offset)| PlannedReset {
            partition: *p,
            current: current.get(&(args.topic.clone(), *p)).copied(),
            new_offset: *new_offset,
        })
        .collect();
    print!("{}", format_plan(group, &args.topic, &plan));

    let inactive = matches!(state.as_str(), "Empty" | "Dead" | "");
    if !args.execute {
        if !inactive {
            eprintln!(
                "Warning: group {group} is {state}; offsets can only be reset while it has no \
                 active members."
            );
        }
        println!("\nDry run: nothing committed. Add --execute to commit these offsets.");
        return Ok(());
    }

    let errors = with_coordinator(
        cluster,
        CoordinatorKey::Group(group),
        timeout,
        async |c: &mut Coordinator| commit(c, group, &args.topic, &new_offsets).await,
    )
    .await
    .with_context(|| op.clone())?;
    if errors.is_empty() {
        println!("\nCommitted new offsets for {} partition(s).", plan.len());
        return Ok(());
    }
    let details: Vec<String> = errors
        .iter()
        .map(|(p, code)| format!("{}-{p}: {}", args.topic, error_name(*code)))
        .collect();
    let first = errors.values().next().copied().unwrap_or(0);
    let hint = match first {
        UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION | REBALANCE_IN_PROGRESS => format!(
            " (the group is {state}: offsets can only be reset while it has no active members; \
             stop its consumers first)"
        ),
        _ => String::new(),
    };
    bail!("{op}: commit refused: {}{hint}", details.join(", "))
}

/// OffsetCommit as an admin (generation -1, no member id): returns the
/// partitions the coordinator refused, with their error codes.
async fn commit(
    coordinator: &mut Coordinator,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i16>> {
    let op = format!("commit offsets of group {group}");
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_group_instance_id(None)
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*offset)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                ),
        ]);
    let response = coordinator
        .client
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let mut errors = BTreeMap::new();
    let mut answered = BTreeSet::new();
    for t in response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
    {
        for p in &t.partitions {
            answered.insert(p.partition_index);
            match p.error_code {
                0 => {}
                // Let with_coordinator look the coordinator up again.
                code @ (COORDINATOR_LOAD_IN_PROGRESS
                | COORDINATOR_NOT_AVAILABLE
                | NOT_COORDINATOR) => {
                    return Err(KafkaError::check(code, &op).expect_err("non-zero").into());
                }
                code => {
                    errors.insert(p.partition_index, code);
                }
            }
        }
    }
    for p in offsets.keys() {
        ensure!(
            answered.contains(p),
            "{op}: partition {topic}-{p} missing from the response"
        );
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::parse_for_tests;

    fn parse(args: &[&str]) -> Result<GroupCommand, clap::Error> {
        parse_for_tests::parse(args)
    }

    fn reset(args: &[&str]) -> ResetOffsetsArgs {
        match parse(args) {
            Ok(GroupCommand::ResetOffsets(r)) => r,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn clap_definitions_are_consistent() {
        parse_for_tests::assert_consistent::<GroupCommand>();
    }

    #[test]
    fn list_describe_delete_parse() {
        assert!(matches!(parse(&["list"]), Ok(GroupCommand::List)));
        match parse(&["describe", "g1", "-b", "h:1"]) {
            Ok(GroupCommand::Describe { group }) => assert_eq!(group, "g1"),
            other => panic!("{other:?}"),
        }
        match parse(&["delete", "g1"]) {
            Ok(GroupCommand::Delete { group }) => assert_eq!(group, "g1"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["describe"]).is_err());
    }

    #[test]
    fn reset_offsets_parses_each_target() {
        let r = reset(&["reset-offsets", "g", "--topic", "t", "--to-earliest"]);
        assert_eq!((r.group.as_str(), r.topic.as_str()), ("g", "t"));
        assert_eq!(r.partition, None);
        assert!(!r.execute);
        assert_eq!(r.target.target().expect("target"), Target::Earliest);

        let r = reset(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--partition",
            "2",
            "--to-latest",
            "--execute",
        ]);
        assert_eq!(r.partition, Some(2));
        assert!(r.execute);
        assert_eq!(r.target.target().expect("target"), Target::Latest);

        let r = reset(&["reset-offsets", "g", "--topic", "t", "--to-offset", "42"]);
        assert_eq!(r.target.target().expect("target"), Target::Offset(42));
        // Negative offsets parse (and are clamped to the log start later).
        let r = reset(&["reset-offsets", "g", "--topic", "t", "--to-offset", "-5"]);
        assert_eq!(r.target.target().expect("target"), Target::Offset(-5));

        let r = reset(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-datetime",
            "1700000000000",
        ]);
        assert_eq!(
            r.target.target().expect("target"),
            Target::Datetime(1_700_000_000_000)
        );
    }

    #[test]
    fn reset_offsets_needs_exactly_one_target_and_a_topic() {
        assert!(parse(&["reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(
            parse(&[
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-offset",
                "1",
                "--to-datetime",
                "2"
            ])
            .is_err()
        );
        assert!(parse(&["reset-offsets", "g", "--to-earliest"]).is_err());
    }

    #[test]
    fn plans_follow_the_target() {
        let parts = [0, 1];
        let earliest = BTreeMap::from([(0, 2), (1, 0)]);
        let latest = BTreeMap::from([(0, 10), (1, 5)]);
        let by_time = BTreeMap::from([(0, 7), (1, -1)]);
        let plan = |t| plan_offsets(t, &parts, &earliest, &latest, &by_time).expect("plan");
        assert_eq!(plan(Target::Earliest), BTreeMap::from([(0, 2), (1, 0)]));
        assert_eq!(plan(Target::Latest), BTreeMap::from([(0, 10), (1, 5)]));
        assert_eq!(plan(Target::Offset(4)), BTreeMap::from([(0, 4), (1, 4)]));
        assert_eq!(plan(Target::Offset(0)), BTreeMap::from([(0, 2), (1, 0)]));
        assert_eq!(plan(Target::Offset(99)), BTreeMap::from([(0, 10), (1, 5)]));
        // No record at or after the time in partition 1: its log end.
        assert_eq!(plan(Target::Datetime(1)), BTreeMap::from([(0, 7), (1, 5)]));
        assert!(plan_offsets(Target::Latest, &[3], &earliest, &latest, &by_time).is_err());
    }
}
