//! [`FjordCluster`]: N real `fjord server --config` processes on free loopback ports forming
//! one cluster (every node a controller voter and a broker), with per-node faults and waits
//! on what clients can see (Metadata, DescribeCluster).
//!
//! Timeouts are tuned short by default ([`ClusterOptions::fast`]) so that failure detection
//! takes a few seconds, not Kafka's defaults.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitStatus;
use std::time::Duration;

use kafka_protocol::messages::{DescribeClusterRequest, MetadataResponse};

use crate::{FjordNode, KafkaConn, PortLease, probe_metadata, reserve_port, wait_for};

/// Cluster settings written to every node's config file.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Controller voters, each also a broker (combined mode): node ids 1..=nodes.
    pub nodes: usize,
    /// Broker-only nodes after the voters (ids nodes+1..): Raft learners.
    pub broker_only: usize,
    /// `[controller] broker_session_timeout_ms`.
    pub broker_session_timeout_ms: u64,
    /// `[controller] broker_heartbeat_interval_ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `[controller] election_timeout_ms` (Raft).
    pub election_timeout_ms: (u64, u64),
    /// `[controller] heartbeat_interval_ms` (Raft).
    pub raft_heartbeat_interval_ms: u64,
    /// `[broker] replica_lag_time_max_ms`.
    pub replica_lag_time_max_ms: u64,
    /// `[broker] default_replication_factor`, `offsets_topic_replication_factor`
    /// and `transaction_state_log_replication_factor`.
    pub replication_factor: i16,
    /// `[broker] min_insync_replicas` (the broker default; topics can override it).
    pub min_insync_replicas: i32,
    /// Two Kafka listeners per node instead of the `kafka_addr` shorthand: INTERNAL on the
    /// node's usual port (advertised as `127.0.0.1:PORT`, what [`FjordNode::bootstrap`] and
    /// every wait use) and EXTERNAL on a second port advertised as `localhost:PORT2`
    /// ([`FjordCluster::external_bootstrap`]).
    pub external_listener: bool,
    /// `[broker] log_retention_check_interval_ms` (Kafka's default: 5 minutes).
    pub log_retention_check_interval_ms: u64,
    /// More `[broker]` lines, as TOML (`"log_cleaner_backoff_ms = 200"`).
    pub extra_broker_config: Vec<String>,
    /// `[controller] broker_fast_fencing_enable` (Fjord's default: on).
    pub broker_fast_fencing_enable: bool,
}

impl ClusterOptions {
    /// Test timings: a dead broker is fenced within ~2.5 s, a stuck follower leaves the ISR
    /// after 3 s, a dead controller leader is replaced within ~1 s.
    pub fn fast(nodes: usize) -> Self {
        ClusterOptions {
            nodes,
            broker_only: 0,
            broker_session_timeout_ms: 2500,
            broker_heartbeat_interval_ms: 500,
            election_timeout_ms: (500, 1000),
            raft_heartbeat_interval_ms: 100,
            replica_lag_time_max_ms: 3000,
            replication_factor: i16::try_from(nodes.min(3)).unwrap_or(3),
            min_insync_replicas: 1,
            external_listener: false,
            log_retention_check_interval_ms: 300_000,
            extra_broker_config: Vec::new(),
            broker_fast_fencing_enable: true,
        }
    }

    /// Kafka's default timings (session 9 s, heartbeat 2 s, replica lag 30 s) and Fjord's
    /// default Raft timings (election 500-1000 ms, heartbeat 100 ms, the same as `fast`).
    pub fn defaults(nodes: usize) -> Self {
        ClusterOptions {
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            replica_lag_time_max_ms: 30_000,
            ..ClusterOptions::fast(nodes)
        }
    }
}

/// One partition as a node's Metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// -1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Why a cluster did not start.
enum StartError {
    /// A node could not bind one of its ports.
    PortTaken(String),
    NotReady(String),
}

/// N `fjord server` processes forming one cluster. Node ids are 1..=N.
pub struct FjordCluster {
    nodes: Vec<FjordNode>,
    options: ClusterOptions,
    /// Each node's EXTERNAL listener port (empty without [`ClusterOptions::external_listener`]).
    external_ports: Vec<u16>,
}

fn toml_string(s: &str) -> String {
    format!("{s:?}")
}

impl FjordCluster {
    /// Starts a cluster of `nodes` with [`ClusterOptions::fast`] and waits until it is ready.
    pub fn start(nodes: usize) -> Self {
        Self::start_with(ClusterOptions::fast(nodes))
    }

    /// Starts a cluster and waits until every node's Metadata lists every broker. Ports are
    /// leased ([`crate::ports`]); a process outside the lease protocol could still hold one, so
    /// a cluster whose node could not bind is started again on other ports (up to three times).
    pub fn start_with(options: ClusterOptions) -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start_with(options.clone()) {
                Ok(cluster) => return cluster,
                Err(StartError::PortTaken(what)) if attempt < 3 => {
                    eprintln!("cluster start attempt {attempt}: {what}; retrying on fresh ports");
                    attempt += 1;
                }
                Err(StartError::PortTaken(what) | StartError::NotReady(what)) => panic!("{what}"),
            }
        }
    }

    fn try_start_with(options: ClusterOptions) -> Result<Self, StartError> {
        let n = options.nodes + options.broker_only;
        // Per node: Kafka, gRPC, HTTP and (optionally) EXTERNAL ports, leased for its lifetime.
        let mut leases: Vec<Vec<PortLease>> = (0..n)
            .map(|_| {
                let count = if options.external_listener { 4 } else { 3 };
                (0..count).map(|_| reserve_port()).collect()
            })
            .collect();
        let kafka_ports: Vec<u16> = leases.iter().map(|l| l[0].port()).collect();
        let rpc_ports: Vec<u16> = leases.iter().map(|l| l[1].port()).collect();
        let http_ports: Vec<u16> = leases.iter().map(|l| l[2].port()).collect();
        let external_ports: Vec<u16> = leases
            .iter()
            .filter_map(|l| l.get(3).map(PortLease::port))
            .collect();
        let voters: Vec<String> = rpc_ports[..options.nodes]
            .iter()
            .enumerate()
            .map(|(i, port)| toml_string(&format!("{}@127.0.0.1:{port}", i + 1)))
            .collect();
        let voters = voters.join(", ");
        let nodes = (0..n)
            .map(|i| {
                let (kafka, rpc, http, o) = (kafka_ports[i], rpc_ports[i], http_ports[i], &options);
                let ports = std::mem::take(&mut leases[i]);
                FjordNode::server(&format!("node{}", i + 1), kafka, http, ports, n, |data_dir| {
                    let mut t = String::new();
                    let _ = writeln!(t, "node_id = {}", i + 1);
                    let roles = if i < o.nodes {
                        "[\"controller\", \"broker\"]"
                    } else {
                        "[\"broker\"]"
                    };
                    let _ = writeln!(t, "roles = {roles}");
                    let _ = writeln!(
                        t,
                        "data_dir = {}",
                        toml_string(&data_dir.display().to_string())
                    );
                    match external_ports.get(i) {
                        Some(external) => {
                            let _ = writeln!(
                                t,
                                "listeners = [\"INTERNAL://127.0.0.1:{kafka}\", \"EXTERNAL://127.0.0.1:{external}\"]"
                            );
                            let _ = writeln!(
                                t,
                                "advertised_listeners = [\"EXTERNAL://localhost:{external}\"]"
                            );
                        }
                        None => {
                            let _ = writeln!(t, "kafka_addr = \"127.0.0.1:{kafka}\"");
                        }
                    }
                    let _ = writeln!(t, "rpc_addr = \"127.0.0.1:{rpc}\"");
                    let _ = writeln!(t, "http_addr = \"127.0.0.1:{http}\"");
                    let _ = writeln!(t, "[controller]");
                    let _ = writeln!(t, "voters = [{voters}]");
                    let (emin, emax) = o.election_timeout_ms;
                    let _ = writeln!(t, "election_timeout_ms = [{emin}, {emax}]");
                    let _ = writeln!(
                        t,
                        "heartbeat_interval_ms = {}",
                        o.raft_heartbeat_interval_ms
                    );
                    let _ = writeln!(
                        t,
                        "broker_session_timeout_ms = {}",
                        o.broker_session_timeout_ms
                    );
                    let _ = writeln!(
                        t,
                        "broker_heartbeat_interval_ms = {}",
                        o.broker_heartbeat_interval_ms
                    );
                    // Written only when off, so that binaries from before the knob (a
                    // before/after benchmark) still accept the file.
                    if !o.broker_fast_fencing_enable {
                        let _ = writeln!(t, "broker_fast_fencing_enable = false");
                    }
                    let _ = writeln!(t, "[broker]");
                    let _ = writeln!(t, "replica_lag_time_max_ms = {}", o.replica_lag_time_max_ms);
                    let _ = writeln!(t, "default_replication_factor = {}", o.replication_factor);
                    let _ = writeln!(
                        t,
                        "offsets_topic_replication_factor = {}",
                        o.replication_factor
                    );
                    let _ = writeln!(
                        t,
                        "transaction_state_log_replication_factor = {}",
                        o.replication_factor
                    );
                    let _ = writeln!(t, "offsets_topic_num_partitions = 4");
                    let _ = writeln!(t, "group_initial_rebalance_delay_ms = 0");
                    let _ = writeln!(t, "min_insync_replicas = {}", o.min_insync_replicas);
                    let _ = writeln!(
                        t,
                        "log_retention_check_interval_ms = {}",
                        o.log_retention_check_interval_ms
                    );
                    for line in &o.extra_broker_config {
                        let _ = writeln!(t, "{line}");
                    }
                    t
                })
            })
            .collect();
        let mut cluster = FjordCluster {
            nodes,
            options,
            external_ports,
        };
        for node in &mut cluster.nodes {
            node.spawn()
                .unwrap_or_else(|e| panic!("spawning fjord: {e:#}"));
        }
        for id in cluster.ids() {
            if let Err(e) = cluster.node_mut(id).wait_ready() {
                let log = cluster.node(id).log_path().to_path_buf();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let what = format!(
                    "cluster node {id} did not become ready: {e:#}\n--- {} (last 80 lines) ---\n{}",
                    log.display(),
                    crate::tail(&log, 80)
                );
                // Nodes are killed (and their logs checked) when `cluster` drops.
                for node in &mut cluster.nodes {
                    node.kill9();
                }
                return Err(if text.contains("cannot listen on") {
                    StartError::PortTaken(what)
                } else {
                    StartError::NotReady(what)
                });
            }
        }
        Ok(cluster)
    }

    /// Node ids, 1..=N.
    pub fn ids(&self) -> Vec<i32> {
        (1..=i32::try_from(self.nodes.len()).unwrap_or(i32::MAX)).collect()
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    fn index(&self, id: i32) -> usize {
        let i = usize::try_from(id - 1).unwrap_or(usize::MAX);
        assert!(
            i < self.nodes.len(),
            "no node {id} in a {}-node cluster",
            self.nodes.len()
        );
        i
    }

    pub fn node(&self, id: i32) -> &FjordNode {
        &self.nodes[self.index(id)]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut FjordNode {
        let i = self.index(id);
        &mut self.nodes[i]
    }

    /// Every node's Kafka address, comma separated (`bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(FjordNode::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s EXTERNAL listener as clients outside are told to reach it
    /// (`localhost:PORT2`); panics without [`ClusterOptions::external_listener`].
    pub fn external_bootstrap(&self, id: i32) -> String {
        let port = self
            .external_ports
            .get(self.index(id))
            .unwrap_or_else(|| panic!("the cluster has no EXTERNAL listener"));
        format!("localhost:{port}")
    }

    /// Ids of the nodes running and not SIGSTOPped.
    pub fn live_ids(&mut self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|&id| {
                let node = self.node_mut(id);
                node.is_running() && !node.is_stopped()
            })
            .collect()
    }

    fn wait_node_ready(&mut self, id: i32) {
        let node = self.node_mut(id);
        if let Err(e) = node.wait_ready() {
            let log = node.log_path().to_path_buf();
            panic!(
                "cluster node {id} did not become ready: {e:#}\n--- {} (last 80 lines) ---\n{}",
                log.display(),
                crate::tail(&log, 80)
            );
        }
    }

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: i32) {
        self.node_mut(id).kill9();
    }

    /// SIGTERM node `id` and wait for it to exit.
    pub fn stop(&mut self, id: i32) -> ExitStatus {
        self.node_mut(id).stop()
    }

    pub fn sigstop(&mut self, id: i32) {
        self.node_mut(id).sigstop();
    }

    pub fn sigcont(&mut self, id: i32) {
        self.node_mut(id).sigcont();
    }

    /// Starts node `id` again on its data dir and ports (stopping it first if it runs) and
    /// waits until it answers Metadata listing every broker.
    pub fn restart(&mut self, id: i32) {
        let node = self.node_mut(id);
        if node.is_running() {
            node.stop();
        }
        node.spawn()
            .unwrap_or_else(|e| panic!("spawning fjord: {e:#}"));
        self.wait_node_ready(id);
    }

    /// Node `id`'s Metadata for all topics.
    pub fn metadata_from(&self, id: i32) -> anyhow::Result<MetadataResponse> {
        probe_metadata(&self.node(id).bootstrap())
    }

    /// The active controller as node `id`'s DescribeCluster names it.
    pub fn controller_id_from(&self, id: i32) -> anyhow::Result<i32> {
        let mut conn = KafkaConn::connect(&self.node(id).bootstrap(), Duration::from_secs(2))?;
        let v = conn.best_version::<DescribeClusterRequest>()?;
        let resp = conn.request(v, &DescribeClusterRequest::default().with_endpoint_type(1))?;
        anyhow::ensure!(
            resp.error_code == 0,
            "DescribeCluster error {}",
            resp.error_code
        );
        Ok(resp.controller_id.0)
    }

    /// Waits until the live nodes agree on one controller among them and returns it.
    pub fn wait_for_controller(&mut self, timeout: Duration) -> i32 {
        let live = self.live_ids();
        wait_for(
            timeout,
            "the live nodes to agree on a live controller",
            || {
                let ids: Vec<i32> = live
                    .iter()
                    .map(|&id| self.controller_id_from(id).ok())
                    .collect::<Option<_>>()?;
                let first = *ids.first()?;
                (ids.iter().all(|&c| c == first) && live.contains(&first)).then_some(first)
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A partition as node `id`'s Metadata shows it (`None`: unknown there).
    pub fn partition_from(&self, id: i32, topic: &str, partition: i32) -> Option<PartitionState> {
        let md = self.metadata_from(id).ok()?;
        partition_state(&md, topic, partition)
    }

    /// Every partition of `topic` as node `id` shows it.
    pub fn topic_from(&self, id: i32, topic: &str) -> Option<BTreeMap<i32, PartitionState>> {
        let md = self.metadata_from(id).ok()?;
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))?;
        (t.error_code == 0).then(|| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, state_of(p)))
                .collect()
        })
    }

    /// Waits until every live node shows the same state for `topic`/`partition` and `accept`
    /// holds for it; returns that state.
    pub fn wait_for_partition(
        &mut self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let live = self.live_ids();
        wait_for(
            timeout,
            &format!("{topic}-{partition}: {what} (on every live node)"),
            || {
                let states: Vec<PartitionState> = live
                    .iter()
                    .map(|&id| self.partition_from(id, topic, partition))
                    .collect::<Option<_>>()?;
                let first = states.first()?.clone();
                (states.iter().all(|s| *s == first) && accept(&first)).then_some(first)
            },
        )
        .unwrap_or_else(|e| {
            let seen: Vec<String> = live
                .iter()
                .map(|&id| format!("node {id}: {:?}", self.partition_from(id, topic, partition)))
                .collect();
            panic!("{e:#}; last seen: {}", seen.join("; "))
        })
    }

    /// Creates a topic through the rdkafka admin client (CreateTopics to any node) and waits
    /// until every live node shows it healthy.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(&str, &str)],
    ) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = crate::client_config(&self.bootstrap())
            .create()
            .expect("create admin client");
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = admin
            .create_topics([&topic], &opts)
            .await
            .expect("CreateTopics request");
        for r in res {
            if let Err((t, e)) = r {
                panic!("CreateTopics {t}: {e}");
            }
        }
        tokio::task::block_in_place(|| {
            self.wait_for_healthy_topic(name, partitions, Duration::from_secs(30))
        });
    }

    /// Waits until `topic` has `partitions` partitions, each led by a live node with the full
    /// replica set in sync, as every live node sees it.
    pub fn wait_for_healthy_topic(&mut self, topic: &str, partitions: i32, timeout: Duration) {
        let live = self.live_ids();
        wait_for(
            timeout,
            &format!(
                "topic {topic}: {partitions} partitions led and fully in sync on every live node"
            ),
            || {
                let views: Vec<BTreeMap<i32, PartitionState>> = live
                    .iter()
                    .map(|&id| self.topic_from(id, topic))
                    .collect::<Option<_>>()?;
                let first = views.first()?;
                let ok = views.iter().all(|v| v == first)
                    && first.len() == usize::try_from(partitions).unwrap_or(0)
                    && first.values().all(|p| {
                        live.contains(&p.leader)
                            && p.isr.len() == p.replicas.len()
                            && !p.replicas.is_empty()
                    });
                ok.then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn state_of(
    p: &kafka_protocol::messages::metadata_response::MetadataResponsePartition,
) -> PartitionState {
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort_unstable();
    PartitionState {
        leader: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
        isr,
    }
}

/// `topic`/`partition` in a Metadata response.
pub fn partition_state(
    md: &MetadataResponse,
    topic: &str,
    partition: i32,
) -> Option<PartitionState> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))?;
    if t.error_code != 0 {
        return None;
    }
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .map(state_of)
}
