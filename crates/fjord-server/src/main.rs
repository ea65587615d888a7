//! The `fjord` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fjord_server::admin::{
    self, AclCommand, ClusterCommand, ConfigCommand, ConnectArgs, ConsumeArgs, GroupCommand,
    ProduceArgs, QuotaCommand, TopicCommand, TxnCommand, UserCommand,
};
use fjord_server::config::FileConfig;
use fjord_server::dev_cluster::{self, DevClusterSpec};
use fjord_server::health_check::{self, Target};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "fjord",
    version,
    about = "A Kafka-compatible, replicated event streaming cluster"
)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line: timestamp, level, target, fields) for log shippers.
    #[arg(long, global = true, env = "FJORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local node (or with --nodes N, a local N-node cluster) with
    /// embedded defaults: nothing to configure.
    Dev {
        /// Where logs and metadata live (node i of a cluster: DATA_DIR/node-i).
        #[arg(long, env = "FJORD_DATA_DIR", default_value = "./fjord-data")]
        data_dir: PathBuf,
        /// The Kafka listener (HOST:PORT); node i of a cluster uses PORT + i - 1.
        #[arg(long, env = "FJORD_KAFKA_ADDR", default_value = "127.0.0.1:9092")]
        kafka_addr: SocketAddr,
        /// Nodes to start, each a controller voter and broker in its own process.
        #[arg(long, env = "FJORD_NODES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        nodes: u16,
        /// Node-to-node gRPC listener of node 1 (node i uses PORT + i - 1).
        /// Default: the Kafka port + 10000 for a cluster, any free port for one node.
        #[arg(long, env = "FJORD_RPC_ADDR")]
        rpc_addr: Option<SocketAddr>,
        /// HTTP port of node 1 (/healthz, /readyz, /metrics, /shutdown; node i
        /// uses PORT + i - 1). Default: the Kafka port + 20000 for a cluster,
        /// any free port for one node (logged at start).
        #[arg(long, env = "FJORD_HTTP_ADDR")]
        http_addr: Option<SocketAddr>,
    },
    /// Run a cluster member from a TOML config file (FJORD_* env overrides it).
    Server {
        /// The TOML file, else $FJORD_CONFIG. Optional: without either (or
        /// with FJORD_CONFIG empty) the node starts from the built-in
        /// defaults and FJORD_* env alone.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Create, list, describe, delete topics and add partitions.
    Topic {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Describe and change topic and broker configs (kafka-configs.sh).
    Config {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Produce stdin lines as records.
    Produce {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: ConsumeArgs,
    },
    /// List, describe and delete consumer groups; reset their offsets.
    Group {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Add, remove and list ACLs (kafka-acls.sh).
    Acl {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Add, remove and list SCRAM users (kafka-configs.sh --entity-type users).
    User {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Set, remove and list client quotas (kafka-configs.sh on users and clients).
    Quota {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// List and describe transactions; find and abort hanging ones.
    Txn {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TxnCommand,
    },
    /// Probe a node's HTTP port: exit 0 when GET /healthz (or /readyz with
    /// --ready) answers 200, else 1. For container HEALTHCHECKs.
    Health {
        /// What to GET, `http://HOST:PORT[/PATH]`. Default: the `http_addr`
        /// of --config, else $FJORD_HTTP_ADDR, else 127.0.0.1:9644 (a
        /// wildcard address is probed on loopback).
        #[arg(long)]
        url: Option<String>,
        /// Probe readiness (/readyz) instead of liveness (/healthz).
        #[arg(long)]
        ready: bool,
        /// A node config file to take `http_addr` from (FJORD_* env applied);
        /// default $FJORD_CONFIG, as for `fjord server`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Cluster-wide views: `fjord cluster status`.
    Cluster {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // A node started by `fjord dev --nodes N` dies with its supervisor.
    dev_cluster::follow_supervisor(|key| std::env::var(key).ok());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("fjord: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, cli.log_format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fjord: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info,openraft=warn`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

async fn run(command: Command, log_format: LogFormat) -> anyhow::Result<()> {
    match command {
        Command::Dev {
            data_dir,
            kafka_addr,
            nodes,
            rpc_addr,
            http_addr,
        } => {
            let rpc_addr =
                rpc_addr.unwrap_or_else(|| dev_cluster::default_rpc_addr(nodes, kafka_addr));
            let http_addr =
                http_addr.unwrap_or_else(|| dev_cluster::default_http_addr(nodes, kafka_addr));
            if nodes == 1 {
                let mut file = FileConfig {
                    data_dir,
                    kafka_addr: Some(kafka_addr.to_string()),
                    rpc_addr: rpc_addr.to_string(),
                    http_addr: http_addr.to_string(),
                    ..FileConfig::default()
                };
                // min(3, nodes) as `fjord dev --nodes N`: Kafka's default of 3 would
                // leave one node without a group (or transaction) coordinator.
                file.broker.offsets_topic_replication_factor = 1;
                file.broker.transaction_state_log_replication_factor = 1;
                return serve(file).await;
            }
            let spec = DevClusterSpec {
                nodes,
                data_dir,
                kafka_addr,
                rpc_addr,
                http_addr,
                node_args: match log_format {
                    LogFormat::Text => Vec::new(),
                    LogFormat::Json => vec!["--log-format".into(), "json".into()],
                },
            };
            let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
            let (on_first, on_second) = (shutdown.clone(), force.clone());
            tokio::spawn(async move {
                wait_for_signal().await;
                on_first.cancel();
                wait_for_signal().await;
                eprintln!("fjord dev: second signal, killing the nodes");
                on_second.cancel();
            });
            dev_cluster::run(spec, shutdown, force)
                .await
                .context("fjord dev --nodes")
        }
        Command::Server { config } => {
            let mut file = match config_file(config) {
                Some(path) => FileConfig::load(&path)?,
                None => FileConfig::default(),
            };
            file.apply_env(|key| std::env::var(key).ok())?;
            serve(file).await
        }
        Command::Topic { connect, command } => admin::run_topic(&connect, command).await,
        Command::Config { connect, command } => admin::run_config(&connect, command).await,
        Command::Produce { connect, args } => admin::run_produce(&connect, args).await,
        Command::Consume { connect, args } => admin::run_consume(&connect, args).await,
        Command::Group { connect, command } => admin::run_group(&connect, command).await,
        Command::Txn { connect, command } => admin::run_txn(&connect, command).await,
        Command::Acl { connect, command } => admin::run_acl(&connect, command).await,
        Command::User { connect, command } => admin::run_user(&connect, command).await,
        Command::Quota { connect, command } => admin::run_quota(&connect, command).await,
        Command::Cluster { connect, command } => admin::run_cluster(&connect, command).await,
        Command::Health {
            url,
            ready,
            config,
            timeout_ms,
        } => {
            let config = config_file(config);
            health(url, ready, config, Duration::from_millis(timeout_ms)).await
        }
    }
}

/// The node config file: `--config`, else $FJORD_CONFIG (what the container
/// image sets), so that `fjord health` in the image's HEALTHCHECK probes the
/// `http_addr` the server was started with. Read by hand rather than by
/// clap's `env`: an empty FJORD_CONFIG (the way to unset the image's default
/// with `docker run -e`) means no file, where clap would call it a missing
/// value.
fn config_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os("FJORD_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// `fjord health`: one GET; the error (exit 1) says what failed.
async fn health(
    url: Option<String>,
    ready: bool,
    config: Option<PathBuf>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let path = if ready { "/readyz" } else { "/healthz" };
    let target = match (url, config) {
        (Some(url), _) => Target::parse(&url, path)?,
        (None, Some(config)) => {
            let mut file = FileConfig::load(&config)?;
            file.apply_env(|key| std::env::var(key).ok())?;
            let addr = file.http_addr.trim();
            anyhow::ensure!(
                !addr.is_empty() && addr != "off",
                "{}: http_addr is off; nothing to probe",
                config.display()
            );
            Target::for_http_addr(addr, path)?
        }
        (None, None) => {
            let addr = std::env::var("FJORD_HTTP_ADDR")
                .unwrap_or_else(|_| fjord_server::config::DEFAULT_HTTP_ADDR.to_string());
            Target::for_http_addr(addr.trim(), path)?
        }
    };
    let body = health_check::get(&target, timeout).await?;
    println!("{body}");
    Ok(())
}

async fn serve(file: FileConfig) -> anyhow::Result<()> {
    let config = file.validate()?;
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    fjord_server::node::run(config, shutdown).await?;
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
