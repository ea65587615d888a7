//! `fjord dev --nodes N` with N > 1: a local cluster of N child processes
//! of this binary, each `fjord server --config <generated file>`.
//!
//! Node ids are 1..=N, every node is a combined controller + broker voter,
//! Kafka listeners take consecutive ports from `--kafka-addr`, gRPC
//! listeners consecutive ports from `--rpc-addr`, and node i keeps its data
//! (and its generated `fjord.toml` and `fjord.log`) in `<data-dir>/node-i`.
//! New topics default to `min(3, N)` replicas, as Kafka users expect on a
//! 3-node cluster.
//!
//! The supervisor is for trying failover by hand: when a child dies it says
//! so and keeps the others running; SIGINT/SIGTERM are forwarded to the
//! children (as SIGTERM, a graceful stop) and it waits for them; a second
//! signal kills them. Children run in their own process group (a Ctrl-C in
//! the terminal reaches only the supervisor, which decides) and get SIGTERM
//! from the kernel if the supervisor dies (`PR_SET_PDEATHSIG`, set up by
//! `main` when it sees [`SUPERVISOR_PID_ENV`]).
//!
//! This is a CLI command, so errors are `anyhow`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kafka_protocol::messages::MetadataRequest;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::admin::KafkaClient;
use crate::config::{FileConfig, Role};

/// Set in a child's environment to the supervisor's pid: the child asks the
/// kernel for SIGTERM when its parent dies (and exits at once if the parent
/// is already gone).
pub const SUPERVISOR_PID_ENV: &str = "FJORD_DEV_SUPERVISOR_PID";

/// How long the children get to stop after the forwarded SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its children and at readiness.
const POLL: Duration = Duration::from_millis(200);
/// After this long without the cluster being ready, say so (once).
const READY_WARNING_AFTER: Duration = Duration::from_secs(60);

/// What `fjord dev` was asked for.
#[derive(Clone, Debug)]
pub struct DevClusterSpec {
    pub nodes: u16,
    pub data_dir: PathBuf,
    /// Node 1's Kafka listener; node i listens on its port + i - 1.
    pub kafka_addr: SocketAddr,
    /// Node 1's gRPC listener; node i listens on its port + i - 1.
    pub rpc_addr: SocketAddr,
    /// Node 1's HTTP server (probes, metrics); node i listens on its port +
    /// i - 1. Port 0: every node picks a free port (and logs it).
    pub http_addr: SocketAddr,
    /// Global flags for every node's command line, before `server` (the
    /// supervisor's own `--log-format`: nodes get no `FJORD_*` env).
    pub node_args: Vec<String>,
}

/// One child node's generated settings.
#[derive(Clone, Debug)]
pub struct DevNode {
    pub node_id: i32,
    pub dir: PathBuf,
    pub kafka_addr: SocketAddr,
    pub file: FileConfig,
}

impl DevNode {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("fjord.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("fjord.log")
    }
}

/// The default HTTP address of node 1: the Kafka port + 20000 (9092 →
/// 29092), or an ephemeral port for a single node, like its rpc port (so
/// that several `fjord dev` nodes can run side by side; the node logs it).
pub fn default_http_addr(nodes: u16, kafka_addr: SocketAddr) -> SocketAddr {
    if nodes <= 1 {
        return SocketAddr::new(kafka_addr.ip(), 0);
    }
    let port = kafka_addr.port().checked_add(20_000).unwrap_or(0);
    SocketAddr::new(kafka_addr.ip(), port)
}

/// Node i's HTTP address: consecutive ports from node 1's, or port 0 for all.
fn http_addrs(spec: &DevClusterSpec) -> Result<Vec<SocketAddr>> {
    (0..spec.nodes)
        .map(|i| match spec.http_addr.port() {
            0 => Ok(spec.http_addr),
            _ => nth_port(spec.http_addr, i, "--http-addr"),
        })
        .collect()
}

/// `addr` with its port moved up by `offset`.
fn nth_port(addr: SocketAddr, offset: u16, what: &str) -> Result<SocketAddr> {
    let port = addr.port().checked_add(offset).with_context(|| {
        format!("{what} {addr}: port + {offset} is past 65535; pick a lower port")
    })?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// The default gRPC address of node 1: the Kafka port + 10000 (9092 →
/// 19092), or an ephemeral port for a single node (nobody connects to it).
pub fn default_rpc_addr(nodes: u16, kafka_addr: SocketAddr) -> SocketAddr {
    if nodes <= 1 {
        return SocketAddr::new(kafka_addr.ip(), 0);
    }
    let port = kafka_addr.port().checked_add(10_000).unwrap_or(0);
    SocketAddr::new(kafka_addr.ip(), port)
}

/// The config files of the N nodes (pure: no I/O).
pub fn plan(spec: &DevClusterSpec) -> Result<Vec<DevNode>> {
    ensure!(spec.nodes >= 1, "--nodes must be at least 1");
    ensure!(
        spec.kafka_addr.port() != 0 && spec.rpc_addr.port() != 0,
        "a dev cluster needs fixed ports: --kafka-addr and --rpc-addr must not use port 0"
    );
    ensure!(
        !spec.kafka_addr.ip().is_unspecified() && !spec.rpc_addr.ip().is_unspecified(),
        "a dev cluster advertises its listen addresses: use a concrete host such as 127.0.0.1, not {}",
        spec.kafka_addr.ip()
    );
    let kafka: Vec<SocketAddr> = (0..spec.nodes)
        .map(|i| nth_port(spec.kafka_addr, i, "--kafka-addr"))
        .collect::<Result<_>>()?;
    let rpc: Vec<SocketAddr> = (0..spec.nodes)
        .map(|i| nth_port(spec.rpc_addr, i, "--rpc-addr"))
        .collect::<Result<_>>()?;
    if let Some(clash) = rpc.iter().find(|a| kafka.contains(a)) {
        bail!("--rpc-addr ports overlap the Kafka ports at {clash}; pick another --rpc-addr");
    }
    let http = http_addrs(spec)?;
    if let Some(clash) = http.iter().find(|a| kafka.contains(a) || rpc.contains(a)) {
        bail!(
            "--http-addr ports overlap the Kafka or rpc ports at {clash}; pick another --http-addr"
        );
    }
    let voters: Vec<String> = rpc
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("{}@{addr}", i + 1))
        .collect();
    let replication_factor = i16::try_from(spec.nodes.min(3)).unwrap_or(3);
    Ok((0..usize::from(spec.nodes))
        .map(|i| {
            let node_id = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let dir = spec.data_dir.join(format!("node-{node_id}"));
            let mut file = FileConfig {
                node_id,
                roles: vec![Role::Controller, Role::Broker],
                data_dir: dir.clone(),
                kafka_addr: Some(kafka[i].to_string()),
                rpc_addr: rpc[i].to_string(),
                http_addr: http[i].to_string(),
                ..FileConfig::default()
            };
            file.controller.voters = voters.clone();
            file.broker.default_replication_factor = replication_factor;
            file.broker.offsets_topic_replication_factor = replication_factor;
            file.broker.transaction_state_log_replication_factor = replication_factor;
            DevNode {
                node_id,
                dir,
                kafka_addr: kafka[i],
                file,
            }
        })
        .collect())
}

/// A started child node.
struct Running {
    node: DevNode,
    child: Option<Child>,
}

/// Writes the config files, starts the children and supervises them until
/// `shutdown` fires (then stops them gracefully; `force` kills them).
pub async fn run(
    spec: DevClusterSpec,
    shutdown: CancellationToken,
    force: CancellationToken,
) -> Result<()> {
    let nodes = plan(&spec)?;
    let exe = std::env::current_exe().context("cannot find the fjord binary to start nodes")?;
    let mut running = Vec::with_capacity(nodes.len());
    for node in nodes {
        write_config(&node)?;
        let child = spawn(&exe, &node, &spec.node_args)?;
        eprintln!(
            "fjord dev: node {} (pid {}) Kafka {} rpc {} http {}, data {}, log {}",
            node.node_id,
            child.id().map_or_else(|| "?".into(), |p| p.to_string()),
            node.kafka_addr,
            node.file.rpc_addr,
            node.file.http_addr,
            node.dir.display(),
            node.log_path().display()
        );
        running.push(Running {
            node,
            child: Some(child),
        });
    }
    let bootstrap: Vec<String> = running
        .iter()
        .map(|r| r.node.kafka_addr.to_string())
        .collect();
    let bootstrap = bootstrap.join(",");

    let started = Instant::now();
    let mut ready = false;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        for r in &mut running {
            if let Some(status) = reap(r)? {
                eprintln!(
                    "fjord dev: node {} exited with {status}; the other nodes keep running (log: {})",
                    r.node.node_id,
                    r.node.log_path().display()
                );
            }
        }
        if running.iter().all(|r| r.child.is_none()) {
            bail!(
                "every node exited; see the logs under {}",
                spec.data_dir.display()
            );
        }
        if !ready {
            if cluster_ready(&running).await {
                ready = true;
                println!(
                    "fjord dev: {} nodes ready; bootstrap servers: {bootstrap}",
                    running.len()
                );
            } else if !warned && started.elapsed() > READY_WARNING_AFTER {
                warned = true;
                eprintln!(
                    "fjord dev: the cluster is not ready after {READY_WARNING_AFTER:?}; see the node logs"
                );
            }
        }
    }
    stop_all(&mut running, &force).await
}

fn write_config(node: &DevNode) -> Result<()> {
    std::fs::create_dir_all(&node.dir)
        .with_context(|| format!("cannot create {}", node.dir.display()))?;
    let text = node
        .file
        .to_toml()
        .with_context(|| format!("cannot write node {}'s config", node.node_id))?;
    let header = format!(
        "# Written by `fjord dev --nodes N` at every start; edits are overwritten.\n\
         # Run this node alone with: fjord server --config {}\n",
        node.config_path().display()
    );
    std::fs::write(node.config_path(), header + &text)
        .with_context(|| format!("cannot write {}", node.config_path().display()))
}

fn spawn(exe: &Path, node: &DevNode, node_args: &[String]) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.log_path())
        .with_context(|| format!("cannot open {}", node.log_path().display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(node_args)
        .arg("server")
        .arg("--config")
        .arg(node.config_path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // The generated file is the whole config: `fjord dev`'s own FJORD_*
        // settings (e.g. FJORD_KAFKA_ADDR) must not override every node alike.
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .process_group(0)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FJORD_") && key != SUPERVISOR_PID_ENV {
            cmd.env_remove(key);
        }
    }
    cmd.spawn()
        .with_context(|| format!("cannot start node {} ({})", node.node_id, exe.display()))
}

/// The exit status of a child that just exited (and forgets it).
fn reap(r: &mut Running) -> Result<Option<ExitStatus>> {
    let Some(child) = r.child.as_mut() else {
        return Ok(None);
    };
    match child.try_wait() {
        Ok(Some(status)) => {
            r.child = None;
            Ok(Some(status))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot check on node {}", r.node.node_id)),
    }
}

/// Every node answers Metadata listing every node as a broker.
async fn cluster_ready(running: &[Running]) -> bool {
    for r in running {
        let addr = r.node.kafka_addr.to_string();
        let Ok(mut client) = KafkaClient::connect(&addr, Duration::from_secs(1)).await else {
            return false;
        };
        let request = MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_allow_auto_topic_creation(false);
        match client.send(&request).await {
            Ok(md) if md.brokers.len() == running.len() => {}
            _ => return false,
        }
    }
    true
}

/// SIGTERM to every child, wait (bounded), SIGKILL whatever is left.
async fn stop_all(running: &mut [Running], force: &CancellationToken) -> Result<()> {
    let live = running.iter().filter(|r| r.child.is_some()).count();
    eprintln!("fjord dev: stopping {live} running node(s)");
    for r in running.iter() {
        if let Some(pid) = r.child.as_ref().and_then(Child::id) {
            signal(pid, rustix::process::Signal::TERM);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    loop {
        for r in running.iter_mut() {
            if let Some(status) = reap(r)?
                && !status.success()
            {
                eprintln!("fjord dev: node {} stopped with {status}", r.node.node_id);
            }
        }
        if running.iter().all(|r| r.child.is_none()) {
            return Ok(());
        }
        let killing = tokio::select! {
            _ = force.cancelled() => true,
            _ = tokio::time::sleep_until(deadline) => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        if killing {
            for r in running.iter_mut() {
                if let Some(mut child) = r.child.take() {
                    eprintln!("fjord dev: killing node {}", r.node.node_id);
                    let _ = child.kill().await;
                }
            }
            return Ok(());
        }
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid
        && let Err(err) = rustix::process::kill_process(pid, sig)
    {
        eprintln!("fjord dev: cannot signal pid {pid:?}: {err}");
    }
}

/// In a child started by the supervisor: ask for SIGTERM when the
/// supervisor dies, and exit if it already has.
pub fn follow_supervisor(env: impl Fn(&str) -> Option<String>) {
    let Some(pid) = env(SUPERVISOR_PID_ENV).and_then(|v| v.parse::<i32>().ok()) else {
        return;
    };
    if let Err(err) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
    {
        tracing::warn!(%err, "cannot ask for a signal when the dev supervisor dies");
    }
    let parent = rustix::process::getppid().map(rustix::process::Pid::as_raw_nonzero);
    if parent.map(|p| p.get()) != Some(pid) {
        eprintln!("fjord: the `fjord dev` supervisor (pid {pid}) is gone; exiting");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u16) -> DevClusterSpec {
        let kafka_addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        DevClusterSpec {
            nodes,
            data_dir: PathBuf::from("/tmp/dev"),
            kafka_addr,
            rpc_addr: default_rpc_addr(nodes, kafka_addr),
            http_addr: default_http_addr(nodes, kafka_addr),
            node_args: Vec::new(),
        }
    }

    #[test]
    fn three_nodes_get_consecutive_ports_and_rf_3() {
        let nodes = plan(&spec(3)).unwrap();
        let kafka: Vec<String> = nodes.iter().map(|n| n.kafka_addr.to_string()).collect();
        assert_eq!(
            kafka,
            ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"]
        );
        let voters = vec![
            "1@127.0.0.1:19092".to_string(),
            "2@127.0.0.1:19093".into(),
            "3@127.0.0.1:19094".into(),
        ];
        for (i, node) in nodes.iter().enumerate() {
            let id = i32::try_from(i + 1).unwrap();
            assert_eq!(node.node_id, id);
            assert_eq!(node.dir, PathBuf::from(format!("/tmp/dev/node-{id}")));
            assert_eq!(node.file.controller.voters, voters);
            assert_eq!(node.file.broker.default_replication_factor, 3);
            assert_eq!(node.file.broker.offsets_topic_replication_factor, 3);
            assert_eq!(node.file.broker.transaction_state_log_replication_factor, 3);
            // What the child reads back is a valid voter of this cluster.
            let text = node.file.to_toml().unwrap();
            let config = FileConfig::parse(&text, &node.config_path())
                .unwrap()
                .validate()
                .unwrap();
            assert!(config.is_controller && config.is_broker);
            assert_eq!(
                config.advertised_rpc_addr,
                format!("127.0.0.1:{}", 19092 + i)
            );
            assert_eq!(
                config.http_listen,
                Some(format!("127.0.0.1:{}", 29092 + i).parse().unwrap())
            );
        }
    }

    #[test]
    fn replication_factor_is_capped_by_the_node_count() {
        let nodes = plan(&spec(2)).unwrap();
        assert_eq!(nodes[1].file.broker.default_replication_factor, 2);
        let nodes = plan(&spec(5)).unwrap();
        assert_eq!(nodes[4].file.broker.default_replication_factor, 3);
        assert_eq!(nodes[4].kafka_addr.port(), 9096);
    }

    #[test]
    fn bad_port_plans_are_refused() {
        let mut s = spec(3);
        s.kafka_addr = "127.0.0.1:65534".parse().unwrap();
        assert!(plan(&s).is_err(), "ports past 65535");
        let mut s = spec(3);
        s.rpc_addr = "127.0.0.1:9093".parse().unwrap();
        assert!(plan(&s).is_err(), "rpc ports overlap Kafka ports");
        let mut s = spec(3);
        s.kafka_addr = "0.0.0.0:9092".parse().unwrap();
        assert!(plan(&s).is_err(), "wildcard cannot be advertised");
        let mut s = spec(3);
        s.http_addr = "127.0.0.1:19094".parse().unwrap();
        assert!(plan(&s).is_err(), "http ports overlap rpc ports");
        assert!(plan(&spec(0)).is_err());
        assert_eq!(default_rpc_addr(1, spec(1).kafka_addr).port(), 0);
        assert_eq!(default_http_addr(1, spec(1).kafka_addr).port(), 0);
        // Port 0: every node picks its own free port.
        let mut s = spec(3);
        s.http_addr = "127.0.0.1:0".parse().unwrap();
        assert!(
            plan(&s)
                .unwrap()
                .iter()
                .all(|n| n.file.http_addr == "127.0.0.1:0")
        );
    }
}
