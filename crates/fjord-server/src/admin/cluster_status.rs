//! `fjord cluster status`: the nodes, the active controller, and the
//! partitions that are under-replicated (ISR smaller than the replica set)
//! or offline (no leader) — what an operator checks after a node failure.
//!
//! Read through the Kafka protocol only: DescribeCluster for the nodes
//! (with fenced brokers when the broker speaks v2) and the controller,
//! Metadata for the partitions. Brokers without DescribeCluster are
//! described from Metadata.

use anyhow::{Context, Result};
use kafka_protocol::messages::{DescribeClusterRequest, MetadataResponse};

use super::ConnectArgs;
use super::cluster::Cluster;
use super::error::KafkaError;
use super::table::render_table;

/// DescribeCluster's `endpoint_type` for broker endpoints (v1+).
const ENDPOINT_BROKERS: i8 = 1;

/// Cluster-wide views.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Nodes, controller leader, under-replicated and offline partitions.
    Status,
}

/// One node as DescribeCluster (or Metadata) lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeRow {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) rack: Option<String>,
    /// `None` when the broker cannot say (DescribeCluster < v2).
    pub(crate) fenced: Option<bool>,
}

/// A partition that needs attention.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
}

impl PartitionRow {
    fn is_offline(&self) -> bool {
        self.leader < 0
    }

    fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// What the status shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    pub(crate) cluster_id: String,
    /// -1 when unknown.
    pub(crate) controller_id: i32,
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) topics: usize,
    pub(crate) partitions: usize,
    /// Offline or under-replicated partitions, in topic/partition order.
    pub(crate) problems: Vec<PartitionRow>,
}

pub async fn run_cluster(connect: &ConnectArgs, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Status => {
            let mut cluster = Cluster::connect(connect).await?;
            let status = status(&mut cluster).await?;
            print!("{}", format_status(&status));
            Ok(())
        }
    }
}

async fn status(cluster: &mut Cluster) -> Result<Status> {
    let metadata = cluster.metadata(None).await.context("cluster status")?;
    KafkaError::check(metadata.error_code, "cluster status")?;
    let described = describe_cluster(cluster).await?;
    let (cluster_id, controller_id, nodes) = match described {
        Some(d) => d,
        None => (
            metadata
                .cluster_id
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            metadata.controller_id.0,
            metadata_nodes(&metadata),
        ),
    };
    Ok(Status {
        cluster_id,
        controller_id,
        nodes,
        topics: metadata.topics.len(),
        partitions: metadata.topics.iter().map(|t| t.partitions.len()).sum(),
        problems: problems(&metadata),
    })
}

type Described = (String, i32, Vec<NodeRow>);

/// DescribeCluster, or `None` if the broker does not offer it.
async fn describe_cluster(cluster: &mut Cluster) -> Result<Option<Described>> {
    let client = cluster.any_broker().await?;
    let Ok(version) = client.version::<DescribeClusterRequest>() else {
        return Ok(None);
    };
    let request = DescribeClusterRequest::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_include_fenced_brokers(version >= 2);
    let response = client
        .send_version(&request, version)
        .await
        .context("describe cluster")?;
    KafkaError::check_with_message(
        response.error_code,
        response.error_message.as_ref(),
        "describe cluster",
    )?;
    let mut nodes: Vec<NodeRow> = response
        .brokers
        .iter()
        .map(|b| NodeRow {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: (version >= 2).then_some(b.is_fenced),
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    Ok(Some((
        response.cluster_id.to_string(),
        response.controller_id.0,
        nodes,
    )))
}

fn metadata_nodes(metadata: &MetadataResponse) -> Vec<NodeRow> {
    let mut nodes: Vec<NodeRow> = metadata
        .brokers
        .iter()
        .map(|b| NodeRow {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: None,
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// Offline and under-replicated partitions of every topic.
fn problems(metadata: &MetadataResponse) -> Vec<PartitionRow> {
    let mut rows: Vec<PartitionRow> = metadata
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            t.partitions.iter().map(move |p| PartitionRow {
                topic: topic.clone(),
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
        })
        .filter(|p| p.is_offline() || p.is_under_replicated())
        .collect();
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    rows
}

fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `1 node`, `3 nodes`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(crate) fn format_status(status: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!("Cluster id: {}\n", status.cluster_id));
    let controller = if status.controller_id < 0 {
        "none".to_owned()
    } else {
        status.controller_id.to_string()
    };
    out.push_str(&format!("Controller: {controller}\n\n"));
    let node_rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            let state = match n.fenced {
                Some(true) => "fenced",
                Some(false) => "active",
                None => "-",
            };
            let role = if n.id == status.controller_id {
                "controller leader"
            } else {
                ""
            };
            vec![
                n.id.to_string(),
                format!("{}:{}", n.host, n.port),
                n.rack.clone().unwrap_or_else(|| "-".into()),
                state.to_owned(),
                role.to_owned(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &["NODE", "HOST:PORT", "RACK", "STATE", ""],
        &node_rows,
    ));
    let offline = status.problems.iter().filter(|p| p.is_offline()).count();
    let under = status
        .problems
        .iter()
        .filter(|p| !p.is_offline() && p.is_under_replicated())
        .count();
    if !status.problems.is_empty() {
        let rows: Vec<Vec<String>> = status
            .problems
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    if p.is_offline() {
                        "none".into()
                    } else {
                        p.leader.to_string()
                    },
                    ids(&p.replicas),
                    ids(&p.isr),
                    if p.is_offline() {
                        "offline".into()
                    } else {
                        "under-replicated".into()
                    },
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&render_table(
            &["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "PROBLEM"],
            &rows,
        ));
    }
    let fenced = status
        .nodes
        .iter()
        .filter(|n| n.fenced == Some(true))
        .count();
    out.push_str(&format!(
        "\n{} ({fenced} fenced), controller {controller}, {}, {}: {under} under-replicated, {offline} offline\n",
        count(status.nodes.len(), "node"),
        count(status.topics, "topic"),
        count(status.partitions, "partition"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn partition(
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(replicas.iter().copied().map(BrokerId).collect())
            .with_isr_nodes(isr.iter().copied().map(BrokerId).collect())
    }

    #[test]
    fn problems_are_offline_or_short_isr_in_order() {
        let metadata = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("b"))))
                .with_partitions(vec![
                    partition(1, -1, &[1, 2, 3], &[3]),
                    partition(0, 2, &[1, 2, 3], &[1, 2, 3]),
                ]),
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("a"))))
                .with_partitions(vec![partition(0, 1, &[1, 2, 3], &[1, 2])]),
        ]);
        let rows = problems(&metadata);
        assert_eq!(
            rows.iter()
                .map(|r| (r.topic.as_str(), r.partition, r.is_offline()))
                .collect::<Vec<_>>(),
            vec![("a", 0, false), ("b", 1, true)]
        );
    }

    #[test]
    fn status_text_names_nodes_controller_and_problems() {
        let status = Status {
            cluster_id: "c1".into(),
            controller_id: 2,
            nodes: vec![
                NodeRow {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: None,
                    fenced: Some(true),
                },
                NodeRow {
                    id: 2,
                    host: "127.0.0.1".into(),
                    port: 9093,
                    rack: Some("r1".into()),
                    fenced: Some(false),
                },
            ],
            topics: 2,
            partitions: 3,
            problems: vec![
                PartitionRow {
                    topic: "a".into(),
                    partition: 0,
                    leader: 2,
                    replicas: vec![1, 2],
                    isr: vec![2],
                },
                PartitionRow {
                    topic: "b".into(),
                    partition: 1,
                    leader: -1,
                    replicas: vec![1],
                    isr: vec![1],
                },
            ],
        };
        let text = format_status(&status);
        assert_eq!(
            text,
            "Cluster id: c1\n\
             Controller: 2\n\
             \n\
             NODE  HOST:PORT       RACK  STATE\n\
             1     127.0.0.1:9092  -     fenced\n\
             2     127.0.0.1:9093  r1    active  controller leader\n\
             \n\
             TOPIC  PARTITION  LEADER  REPLICAS  ISR  PROBLEM\n\
             a      0          2       1,2       2    under-replicated\n\
             b      1          none    1         1    offline\n\
             \n\
             2 nodes (1 fenced), controller 2, 2 topics, 3 partitions: 1 under-replicated, 1 offline\n"
        );
    }
}
