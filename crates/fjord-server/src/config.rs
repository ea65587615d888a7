//! Node configuration: a TOML file (or `fjord dev`'s embedded defaults),
//! then `FJORD_*` environment overrides, validated into [`Config`].
//!
//! Server settings use snake_case keys; topic defaults use Kafka's topic
//! config names under `[topic_defaults]`, e.g. `"retention.ms" = "3600000"`.
//!
//! A node has one gRPC address (`rpc_addr`) for everything between nodes:
//! the controller quorum's Raft traffic, brokers' heartbeats and forwarded
//! metadata writes, and replica fetches. `[controller] voters` lists the
//! voters' advertised rpc addresses (Kafka's `controller.quorum.voters`);
//! a node with the controller role must be one of them, a broker-only node
//! must not be (it follows the quorum as a Raft learner).
//!
//! Kafka clients reach a broker on one or more named listeners
//! (`listeners` / `advertised_listeners`, Kafka's names; `kafka_addr` /
//! `advertised_kafka_addr` are the shorthand for one listener named
//! PLAINTEXT): see `config/listeners.rs`.

mod listeners;
mod sasl;
mod ssl;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_broker::authorizer::AuthorizerConfig;
use fjord_broker::config::LogCleanerConfig;
use fjord_broker::{AdvertisedListener, BrokerConfig, REPLICATION_LISTENER, ReplicationConfig};
use fjord_controller::ControllerConfig;
use fjord_coordinator::GroupServiceConfig;
use fjord_coordinator::group::GroupConfig;
use fjord_coordinator::runtime::TransactionServiceConfig;
use fjord_coordinator::txn::TxnConfig;
use fjord_gateway::GatewayConfig;
use fjord_log::{FileCache, LogConfig};
use fjord_types::BrokerId;
use serde::{Deserialize, Serialize};

pub use listeners::DEFAULT_KAFKA_ADDR;
pub use sasl::SaslSection;
pub use ssl::{RpcSslSection, RpcTls, SslSection};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{key}: {value:?} is not a valid {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("controller voter {entry:?} is not ID@HOST:PORT")]
    Voter { entry: String },
    #[error("controller voter {voter} is listed twice")]
    DuplicateVoter { voter: BrokerId },
    #[error("topic_defaults")]
    TopicDefaults(#[source] fjord_log::ConfigError),
    /// A name that is no Kafka topic config, or a value its validator refuses.
    #[error("topic_defaults")]
    TopicDefault(#[source] fjord_config::ConfigError),
    #[error(
        "listener_security_protocol_map: {entry:?} is not NAME:PROTOCOL (PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
    )]
    SecurityProtocolMapEntry { entry: String },
    #[error("listener_security_protocol_map: listener {name} is mapped twice")]
    DuplicateSecurityProtocolMapping { name: String },
    #[error("listener {name} is not in listener_security_protocol_map")]
    UnmappedListener { name: String },
    #[error(
        "sasl.enabled_mechanisms has PLAIN and a listener uses SASL, but [sasl] plain_users_file is not set"
    )]
    SaslPlainWithoutUsers,
    #[error("listener {name} uses SSL but [ssl] keystore_location is not set")]
    SslWithoutKeystore { name: String },
    #[error("ssl.client_auth is {client_auth} but [ssl] truststore_location is not set")]
    SslNoTruststore { client_auth: String },
    #[error("ssl.principal_mapping_rules")]
    SslPrincipalMappingRules(#[source] fjord_gateway::tls::MappingRulesError),
    #[error("[rpc_ssl] needs both keystore_location and truststore_location (or neither)")]
    RpcSslIncomplete,
    #[error("roles is empty: a node is a \"broker\", a \"controller\" or both")]
    NoRoles,
    #[error("node {node_id} is a controller but not in controller.voters")]
    NotAVoter { node_id: BrokerId },
    #[error(
        "node {node_id} is broker-only but listed in controller.voters (add the \"controller\" role, or remove it from the voters)"
    )]
    BrokerInVoters { node_id: BrokerId },
    #[error("node {node_id} is broker-only and controller.voters is empty: it needs a quorum")]
    NoVoters { node_id: BrokerId },
    #[error(
        "controller.broker_heartbeat_interval_ms ({heartbeat_ms}) must be below broker_session_timeout_ms ({session_ms})"
    )]
    HeartbeatNotBelowSession { heartbeat_ms: u64, session_ms: u64 },
    #[error(
        "{shorthand} and {list} are both set: {shorthand} is the shorthand for one PLAINTEXT listener; use one form"
    )]
    ConflictingListenerForms {
        shorthand: &'static str,
        list: &'static str,
    },
    #[error("{key}: {entry:?} is not NAME://HOST:PORT (NAME of letters, digits, _ and -)")]
    ListenerEntry { key: &'static str, entry: String },
    #[error("{key}: listener name {name} is used twice")]
    DuplicateListenerName { key: &'static str, name: String },
    #[error("listeners: port {port} is used by two listeners")]
    DuplicateListenerPort { port: u16 },
    #[error(
        "listeners: the name {name} is reserved for the node's rpc address (rpc_addr / advertised_rpc_addr)"
    )]
    ReservedListenerName { name: String },
    #[error("listeners: cannot resolve the host of {entry:?}")]
    ListenerHost {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("advertised_listeners: {name} is not one of the listeners ({listeners})")]
    UnknownAdvertisedListener { name: String, listeners: String },
    #[error(
        "{key}: listener {name} advertises the wildcard address {host}; clients need a host name or IP address they can connect to"
    )]
    WildcardAdvertised {
        key: &'static str,
        name: String,
        host: String,
    },
    #[error(
        "listener {name} binds {listen}, a wildcard address clients cannot connect to: give it an advertised address (advertised_listeners, or advertised_kafka_addr for the PLAINTEXT shorthand)"
    )]
    UnadvertisedWildcard { name: String, listen: SocketAddr },
}

/// A node's role (`process.roles` in Kafka).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Broker,
    Controller,
}

/// The TOML file, as written. Every field has a default, so `fjord dev`
/// runs from an empty file. `Serialize` lets `fjord dev --nodes N` write
/// the files of its child nodes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub node_id: BrokerId,
    pub roles: Vec<Role>,
    pub data_dir: PathBuf,
    /// Shorthand for `listeners = ["PLAINTEXT://<kafka_addr>"]`; when
    /// neither is set, the node listens on [`DEFAULT_KAFKA_ADDR`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_addr: Option<String>,
    /// Shorthand for `advertised_listeners = ["PLAINTEXT://<addr>"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_kafka_addr: Option<String>,
    /// Kafka's `listeners`: where clients connect, `NAME://HOST:PORT` each
    /// (HOST an IP address, 0.0.0.0 for every interface, or a name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<String>,
    /// Kafka's `advertised.listeners`: what a client connected to listener
    /// NAME is told, `NAME://HOST:PORT` each; a listener left out
    /// advertises its bind address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advertised_listeners: Vec<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL` per
    /// listener. Unset: a listener named like a protocol uses it, any other
    /// name is PLAINTEXT. Set: every listener must be in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_security_protocol_map: Vec<String>,
    /// Where the node-to-node gRPC server binds (Raft, heartbeats,
    /// replication). `controller_addr` is its older name.
    #[serde(alias = "controller_addr")]
    pub rpc_addr: String,
    /// What other nodes are told to connect to (defaults to `rpc_addr`); a
    /// voter's entry in `controller.voters` should be this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_rpc_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Where the HTTP server for probes and metrics binds (`/healthz`,
    /// `/readyz`, `/metrics`, `/shutdown`); `""` or `"off"` disables it.
    pub http_addr: String,
    pub controller: ControllerSection,
    pub broker: BrokerSection,
    /// Kafka's `ssl.*`, for the SSL listeners.
    #[serde(skip_serializing_if = "is_default")]
    pub ssl: SslSection,
    /// Mutual TLS between nodes (gRPC); off by default.
    #[serde(skip_serializing_if = "is_default")]
    pub rpc_ssl: RpcSslSection,
    /// Kafka's `sasl.*` (and the re-authentication and failure delay
    /// settings), for the SASL listeners.
    #[serde(skip_serializing_if = "is_default")]
    pub sasl: SaslSection,
    /// Kafka topic config names → values, the defaults for every topic.
    pub topic_defaults: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerSection {
    /// `ID@HOST:PORT` per voter, like Kafka's `controller.quorum.voters`;
    /// HOST:PORT is the voter's advertised rpc address.
    pub voters: Vec<String>,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    pub snapshot_every_logs: u64,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this
    /// long is fenced and loses its leaderships.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// Fjord-specific: fence a broker before its session expires when a peer
    /// reports it unreachable and the controller's own probe finds its port
    /// refusing connections (or several peers report it, the probe gets no
    /// answer and its heartbeats stopped). See docs/architecture.md.
    pub broker_fast_fencing_enable: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSection {
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub log_retention_check_interval_ms: u64,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub group_initial_rebalance_delay_ms: i32,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with
    /// the leader for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer that has not
    /// written to a partition for this long is forgotten there.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`: `__transaction_state`
    /// is created with exactly this many replicas, never fewer.
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`: the topic's `min.insync.replicas`,
    /// capped at its replication factor (so `fjord dev` on fewer nodes
    /// than Kafka's 3 can still write it).
    pub transaction_state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub transaction_state_log_segment_bytes: u64,
    /// `offsets.topic.segment.bytes`: `__consumer_offsets`' `segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    /// `log.cleaner.enable`: compact `cleanup.policy=compact` logs.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.dedupe.buffer.size`: the cleaner's offset map memory.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.io.buffer.size`: the cleaner's write buffer.
    pub log_cleaner_io_buffer_size: usize,
    /// `log.cleaner.backoff.ms`: the cleaner's pause when no log is due.
    pub log_cleaner_backoff_ms: u64,
    /// Check ACLs (Kafka: `authorizer.class.name` set to the
    /// `StandardAuthorizer`). Off: every client may do everything.
    pub authorizer_enable: bool,
    /// `super.users`: principals allowed everything, `;`-separated
    /// (`User:admin;User:ops`).
    pub super_users: String,
    /// `allow.everyone.if.no.acl.found`: allow a resource without any ACL.
    pub allow_everyone_if_no_acl_found: bool,
    /// `quota.window.num`: samples a client quota's rate is measured over.
    pub quota_window_num: u32,
    /// `quota.window.size.seconds`: the length of one sample.
    pub quota_window_size_seconds: u32,
    /// Fjord-specific (Kafka keeps every segment file open): the most
    /// segment files the node keeps open at once, across all its logs;
    /// segments open on first use and the least recently used close.
    /// Absent: half the process's soft open-file limit (`ulimit -n`) at
    /// start, at least 64.
    pub log_open_files_max: Option<usize>,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            node_id: 1,
            roles: vec![Role::Controller, Role::Broker],
            data_dir: PathBuf::from("fjord-data"),
            kafka_addr: None,
            advertised_kafka_addr: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: Vec::new(),
            rpc_addr: "127.0.0.1:19092".into(),
            advertised_rpc_addr: None,
            rack: None,
            http_addr: DEFAULT_HTTP_ADDR.into(),
            controller: ControllerSection::default(),
            broker: BrokerSection::default(),
            ssl: SslSection::default(),
            rpc_ssl: RpcSslSection::default(),
            sasl: SaslSection::default(),
            topic_defaults: BTreeMap::new(),
        }
    }
}

impl Default for ControllerSection {
    fn default() -> Self {
        ControllerSection {
            voters: Vec::new(),
            // Kafka's controller.quorum.election.timeout.ms is 1000 ms. openraft's leader
            // lease is the maximum, and voters refuse votes until it expires: a dead
            // controller leader is replaced within ~1-1.5 s with 500-1000 ms, ~2-4 s with
            // 1000-2000 ms, which kept a SIGKILLed controller leader's partitions
            // unavailable past the 2 s failover target (docs/config.md).
            election_timeout_ms: (500, 1000),
            heartbeat_interval_ms: 100,
            snapshot_every_logs: 1000,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            broker_fast_fencing_enable: true,
        }
    }
}

impl Default for BrokerSection {
    fn default() -> Self {
        BrokerSection {
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            log_retention_check_interval_ms: 300_000,
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            group_initial_rebalance_delay_ms: 3000,
            replica_lag_time_max_ms: 30_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            transaction_state_log_segment_bytes: 100 * 1024 * 1024,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            log_cleaner_enable: true,
            authorizer_enable: false,
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_cleaner_io_buffer_size: 512 * 1024,
            log_cleaner_backoff_ms: 15_000,
            log_open_files_max: None,
        }
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: BrokerId,
    /// Runs a controller quorum voter (else a Raft learner that only
    /// follows the metadata).
    pub is_controller: bool,
    /// Runs a broker and the Kafka listeners.
    pub is_broker: bool,
    pub data_dir: PathBuf,
    /// Where the node-to-node gRPC server binds.
    pub rpc_listen: SocketAddr,
    /// This node's rpc address as other nodes reach it (`HOST:PORT`).
    pub advertised_rpc_addr: String,
    pub controller: ControllerConfig,
    pub broker: BrokerConfig,
    /// Replication between brokers; its listener is the advertised rpc
    /// address (registered as [`REPLICATION_LISTENER`]).
    pub replication: ReplicationConfig,
    pub gateway: GatewayConfig,
    /// Where the HTTP server (probes, metrics) binds; `None`: disabled.
    pub http_listen: Option<SocketAddr>,
    /// Mutual TLS for the node-to-node gRPC; `None`: plaintext.
    pub rpc_tls: Option<RpcTls>,
}

/// The HTTP port's default: clear of Kafka's 9092 and the rpc default 19092
/// (the port Redpanda serves its admin API and metrics on).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9644";

/// `http_addr`: a socket address, or `""` / `"off"` for no HTTP server.
fn parse_http_addr(key: &'static str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match value.trim() {
        "" | "off" => Ok(None),
        addr => parse_socket_addr(key, addr).map(Some),
    }
}

/// Failure-detection timings of a cluster, validated together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClusterTimings {
    /// `broker.session.timeout.ms`.
    broker_session_timeout: Duration,
    /// `broker.heartbeat.interval.ms`.
    broker_heartbeat_interval: Duration,
    /// `replica.lag.time.max.ms`.
    replica_lag_time_max: Duration,
}

/// Reads one `FJORD_*` override and parses it.
fn env_parse<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    env(key)
        .map(|v| {
            v.trim().parse().map_err(|_| ConfigError::Invalid {
                key,
                value: v.clone(),
                expected,
            })
        })
        .transpose()
}

/// Splits a comma-separated env list, dropping empty items.
fn env_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// After binding the rpc listener: an advertised rpc address with port 0
    /// (`fjord dev`, tests) becomes the port actually bound, wherever this
    /// node advertises it (its voter entry, the controller's own address, the
    /// replication listener).
    pub fn resolve_rpc_port(&mut self, bound: SocketAddr) {
        let Some((host, 0)) = split_host_port(&self.advertised_rpc_addr) else {
            return;
        };
        let resolved = if host.contains(':') {
            format!("[{host}]:{}", bound.port())
        } else {
            format!("{host}:{}", bound.port())
        };
        if let Some(own) = self.controller.voters.get_mut(&self.node_id)
            && *own == self.advertised_rpc_addr
        {
            own.clone_from(&resolved);
        }
        if self.controller.rpc_addr.as_deref() == Some(self.advertised_rpc_addr.as_str()) {
            self.controller.rpc_addr = Some(resolved.clone());
        }
        if let Some(listener) = self.replication.replication_listener.as_mut() {
            listener.port = bound.port();
        }
        self.advertised_rpc_addr = resolved;
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file's TOML text (what `fjord dev --nodes N` writes).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Apply `FJORD_*` environment overrides of the common settings:
    /// `FJORD_NODE_ID`, `FJORD_ROLES` (comma-separated), `FJORD_DATA_DIR`,
    /// `FJORD_LISTENERS` and `FJORD_ADVERTISED_LISTENERS` (comma-separated
    /// `NAME://HOST:PORT`), or their shorthands `FJORD_KAFKA_ADDR` and
    /// `FJORD_ADVERTISED_KAFKA_ADDR` (each replaces the file's setting in
    /// either form), `FJORD_RPC_ADDR`
    /// (older name `FJORD_CONTROLLER_ADDR`), `FJORD_ADVERTISED_RPC_ADDR`,
    /// `FJORD_RACK`, `FJORD_VOTERS` (comma-separated `ID@HOST:PORT`),
    /// `FJORD_LISTENER_SECURITY_PROTOCOL_MAP` (comma-separated `NAME:PROTOCOL`),
    /// `FJORD_BROKER_SESSION_TIMEOUT_MS`, `FJORD_BROKER_HEARTBEAT_INTERVAL_MS`,
    /// `FJORD_REPLICA_LAG_TIME_MAX_MS`, `FJORD_HTTP_ADDR`, and the `[sasl]`
    /// overrides (`FJORD_SASL_ENABLED_MECHANISMS`, `FJORD_SASL_PLAIN_USERS_FILE`,
    /// `FJORD_CONNECTIONS_MAX_REAUTH_MS`,
    /// `FJORD_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS`).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env_parse(&env, "FJORD_NODE_ID", "node id")? {
            self.node_id = v;
        }
        if let Some(v) = env("FJORD_ROLES") {
            self.roles = env_list(&v)
                .iter()
                .map(|role| match role.as_str() {
                    "broker" => Ok(Role::Broker),
                    "controller" => Ok(Role::Controller),
                    _ => Err(ConfigError::Invalid {
                        key: "FJORD_ROLES",
                        value: v.clone(),
                        expected: "comma-separated list of broker, controller",
                    }),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("FJORD_DATA_DIR") {
            self.data_dir = v.into();
        }
        listeners::apply_env(self, &env)?;
        if let Some(v) = env("FJORD_LISTENER_SECURITY_PROTOCOL_MAP") {
            self.listener_security_protocol_map = env_list(&v);
        }
        if let Some(v) = env("FJORD_RPC_ADDR").or_else(|| env("FJORD_CONTROLLER_ADDR")) {
            self.rpc_addr = v;
        }
        if let Some(v) = env("FJORD_ADVERTISED_RPC_ADDR") {
            self.advertised_rpc_addr = Some(v);
        }
        if let Some(v) = env("FJORD_RACK") {
            self.rack = Some(v);
        }
        if let Some(v) = env("FJORD_VOTERS") {
            self.controller.voters = env_list(&v);
        }
        if let Some(v) = env_parse(&env, "FJORD_BROKER_SESSION_TIMEOUT_MS", "milliseconds")? {
            self.controller.broker_session_timeout_ms = v;
        }
        if let Some(v) = env_parse(&env, "FJORD_BROKER_HEARTBEAT_INTERVAL_MS", "milliseconds")? {
            self.controller.broker_heartbeat_interval_ms = v;
        }
        if let Some(v) = env_parse(&env, "FJORD_BROKER_FAST_FENCING_ENABLE", "true or false")? {
            self.controller.broker_fast_fencing_enable = v;
        }
        if let Some(v) = env_parse(&env, "FJORD_REPLICA_LAG_TIME_MAX_MS", "milliseconds")? {
            self.broker.replica_lag_time_max_ms = v;
        }
        if let Some(v) = env("FJORD_HTTP_ADDR") {
            self.http_addr = v;
        }
        self.sasl.apply_env(&env)?;
        Ok(())
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.node_id < 0 {
            return Err(ConfigError::Invalid {
                key: "node_id",
                value: self.node_id.to_string(),
                expected: "node id (>= 0)",
            });
        }
        if self.roles.is_empty() {
            return Err(ConfigError::NoRoles);
        }
        let is_controller = self.roles.contains(&Role::Controller);
        let is_broker = self.roles.contains(&Role::Broker);
        let client_listeners = listeners::client_listeners(&self)?;
        let tls = self.ssl.tls_config()?;
        if tls.is_none()
            && let Some(ssl) = client_listeners
                .bind
                .iter()
                .find(|l| l.security_protocol.uses_tls())
        {
            return Err(ConfigError::SslWithoutKeystore {
                name: ssl.name.clone(),
            });
        }
        let any_sasl_listener = client_listeners
            .bind
            .iter()
            .any(|l| l.security_protocol.uses_sasl());
        let sasl = self.sasl.sasl_config(any_sasl_listener)?;
        let rpc_tls = self.rpc_ssl.rpc_tls()?;
        let rpc_listen = parse_socket_addr("rpc_addr", &self.rpc_addr)?;
        let advertised_rpc_addr = self
            .advertised_rpc_addr
            .clone()
            .unwrap_or_else(|| self.rpc_addr.clone());
        let (rpc_host, rpc_port) =
            advertised_host_port("advertised_rpc_addr", &advertised_rpc_addr)?;
        let voters = self.voters(is_controller, &advertised_rpc_addr)?;
        let http_listen = parse_http_addr("http_addr", &self.http_addr)?;
        let timings = self.timings()?;

        let b = &self.broker;
        if b.producer_id_expiration_ms < 1 {
            return Err(ConfigError::Invalid {
                key: "broker.producer_id_expiration_ms",
                value: b.producer_id_expiration_ms.to_string(),
                expected: "milliseconds (>= 1)",
            });
        }
        for (name, value) in &self.topic_defaults {
            fjord_config::topic_config(name)
                .ok_or_else(|| fjord_config::ConfigError::UnknownTopicConfig { name: name.clone() })
                .and_then(|def| def.validate(value))
                .map_err(ConfigError::TopicDefault)?;
        }
        let log_defaults = LogConfig {
            // A broker config in Kafka; each log applies it.
            producer_id_expiration_ms: b.producer_id_expiration_ms,
            open_files: FileCache::new(
                b.log_open_files_max
                    .unwrap_or_else(default_open_files_max)
                    .max(MIN_OPEN_FILES),
            ),
            ..LogConfig::default()
        }
        .with_overrides(&self.topic_defaults)
        .map_err(ConfigError::TopicDefaults)?;
        let broker = BrokerConfig {
            node_id: self.node_id,
            log_dir: self.data_dir.join("logs"),
            advertised_listeners: client_listeners.advertised,
            rack: self.rack.clone(),
            auto_create_topics_enable: b.auto_create_topics_enable,
            num_partitions: b.num_partitions.max(1),
            default_replication_factor: b.default_replication_factor.max(1),
            min_insync_replicas: b.min_insync_replicas.max(1),
            log_defaults,
            topic_defaults: self.topic_defaults.clone(),
            retention_check_interval: Duration::from_millis(
                b.log_retention_check_interval_ms.max(1),
            ),
            log_cleaner: LogCleanerConfig {
                enable: b.log_cleaner_enable,
                // Kafka's minimum: room for a few keys at least.
                dedupe_buffer_size: b.log_cleaner_dedupe_buffer_size.max(1024 * 1024),
                io_buffer_size: b.log_cleaner_io_buffer_size.max(4096),
                backoff: Duration::from_millis(b.log_cleaner_backoff_ms.max(1)),
            },
            flush_check_interval: Duration::from_millis(1000),
            producer_id_expiration_check_interval: Duration::from_millis(
                b.producer_id_expiration_check_interval_ms.max(1),
            ),
            groups: GroupServiceConfig {
                offsets_topic_num_partitions: b.offsets_topic_num_partitions.max(1),
                offsets_topic_replication_factor: b.offsets_topic_replication_factor.max(1),
                // segment.bytes' lower bound (LogConfig).
                offsets_topic_segment_bytes: b.offsets_topic_segment_bytes.max(14),
                group: GroupConfig {
                    initial_rebalance_delay_ms: b.group_initial_rebalance_delay_ms.max(0),
                    ..GroupConfig::default()
                },
                ..GroupServiceConfig::default()
            },
            transactions: {
                let rf = b.transaction_state_log_replication_factor.max(1);
                TransactionServiceConfig {
                    num_partitions: b.transaction_state_log_num_partitions.max(1),
                    replication_factor: rf,
                    min_isr: b.transaction_state_log_min_isr.clamp(1, i32::from(rf)),
                    segment_bytes: b.transaction_state_log_segment_bytes.max(1),
                    // AddOffsetsToTxn must name the `__consumer_offsets`
                    // partition the group coordinator uses, or the group's
                    // markers go to a partition that does not exist.
                    txn: TxnConfig {
                        offsets_topic_partitions: b.offsets_topic_num_partitions.max(1),
                        ..TxnConfig::default()
                    },
                    ..TransactionServiceConfig::default()
                }
            },
            authorizer: AuthorizerConfig {
                enable: b.authorizer_enable,
                super_users: AuthorizerConfig::parse_super_users(&b.super_users),
                allow_everyone_if_no_acl_found: b.allow_everyone_if_no_acl_found,
            },
            // Kafka's validators: at least 1 of each.
            quotas: fjord_broker::quota::QuotaConfig {
                window_num: b.quota_window_num.max(1),
                window_size: Duration::from_secs(u64::from(b.quota_window_size_seconds.max(1))),
            },
        };
        let controller = ControllerConfig {
            node_id: self.node_id,
            data_dir: self.data_dir.join("controller"),
            voters,
            election_timeout_ms: self.controller.election_timeout_ms,
            heartbeat_interval_ms: self.controller.heartbeat_interval_ms,
            snapshot_every_logs: self.controller.snapshot_every_logs,
            rpc_addr: Some(advertised_rpc_addr.clone()),
            write_timeout_ms: fjord_controller::DEFAULT_WRITE_TIMEOUT_MS,
            startup_timeout_ms: fjord_controller::DEFAULT_STARTUP_TIMEOUT_MS,
            broker_session_timeout_ms: millis(timings.broker_session_timeout),
            broker_heartbeat_interval_ms: millis(timings.broker_heartbeat_interval),
            broker_fast_fencing_enable: self.controller.broker_fast_fencing_enable,
            // Read from [rpc_ssl]'s files when the node starts.
            peer_tls: fjord_rpc::PeerTls::plaintext(),
        };
        let replication = ReplicationConfig {
            replication_listener: Some(AdvertisedListener {
                name: REPLICATION_LISTENER.into(),
                host: rpc_host,
                port: rpc_port,
            }),
            replica_lag_time_max: timings.replica_lag_time_max,
            broker_heartbeat_interval: timings.broker_heartbeat_interval,
            ..ReplicationConfig::default()
        };
        let gateway = GatewayConfig {
            listeners: client_listeners.bind,
            max_frame_bytes: b.socket_request_max_bytes,
            max_connections: b.max_connections,
            tls,
            sasl,
        };
        Ok(Config {
            node_id: self.node_id,
            is_controller,
            is_broker,
            data_dir: self.data_dir,
            rpc_listen,
            advertised_rpc_addr,
            controller,
            broker,
            replication,
            gateway,
            http_listen,
            rpc_tls,
        })
    }

    /// `controller.voters` as a map, checked against this node's roles. A
    /// controller with no voters listed is a quorum of itself.
    fn voters(
        &self,
        is_controller: bool,
        advertised_rpc_addr: &str,
    ) -> Result<BTreeMap<BrokerId, String>, ConfigError> {
        let mut voters = BTreeMap::new();
        for entry in &self.controller.voters {
            let (id, addr) = entry
                .split_once('@')
                .and_then(|(id, addr)| {
                    let id = id.trim().parse::<BrokerId>().ok().filter(|id| *id >= 0)?;
                    split_host_port(addr.trim())?;
                    Some((id, addr.trim().to_string()))
                })
                .ok_or_else(|| ConfigError::Voter {
                    entry: entry.clone(),
                })?;
            if voters.insert(id, addr).is_some() {
                return Err(ConfigError::DuplicateVoter { voter: id });
            }
        }
        let node_id = self.node_id;
        match (is_controller, voters.contains_key(&node_id)) {
            (true, false) if voters.is_empty() => {
                voters.insert(node_id, advertised_rpc_addr.to_owned());
            }
            (true, false) => return Err(ConfigError::NotAVoter { node_id }),
            (false, true) => return Err(ConfigError::BrokerInVoters { node_id }),
            (false, false) if voters.is_empty() => return Err(ConfigError::NoVoters { node_id }),
            _ => {}
        }
        Ok(voters)
    }

    fn timings(&self) -> Result<ClusterTimings, ConfigError> {
        let c = &self.controller;
        let positive = |key: &'static str, ms: u64| {
            if ms == 0 {
                Err(ConfigError::Invalid {
                    key,
                    value: ms.to_string(),
                    expected: "duration in milliseconds (> 0)",
                })
            } else {
                Ok(Duration::from_millis(ms))
            }
        };
        let session = positive(
            "controller.broker_session_timeout_ms",
            c.broker_session_timeout_ms,
        )?;
        let heartbeat = positive(
            "controller.broker_heartbeat_interval_ms",
            c.broker_heartbeat_interval_ms,
        )?;
        if heartbeat >= session {
            return Err(ConfigError::HeartbeatNotBelowSession {
                heartbeat_ms: c.broker_heartbeat_interval_ms,
                session_ms: c.broker_session_timeout_ms,
            });
        }
        Ok(ClusterTimings {
            broker_session_timeout: session,
            broker_heartbeat_interval: heartbeat,
            replica_lag_time_max: positive(
                "broker.replica_lag_time_max_ms",
                self.broker.replica_lag_time_max_ms,
            )?,
        })
    }
}

/// Below this a node thrashes on its own internal topics' segments.
const MIN_OPEN_FILES: usize = 64;

/// Half the soft `RLIMIT_NOFILE`: the other half is for sockets, RocksDB
/// and handles held by reads in flight.
fn default_open_files_max() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 2).unwrap_or(usize::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_socket_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key,
        value: value.to_owned(),
        expected: "HOST:PORT socket address",
    })
}

/// An address other processes connect to: `HOST:PORT`, not a wildcard.
fn advertised_host_port(key: &'static str, value: &str) -> Result<(String, u16), ConfigError> {
    match split_host_port(value) {
        Some((host, _)) if host == "0.0.0.0" || host == "::" => Err(ConfigError::Invalid {
            key,
            value: value.to_owned(),
            expected: "address other hosts can connect to (set the advertised address when binding 0.0.0.0)",
        }),
        Some(hp) => Ok(hp),
        None => Err(ConfigError::Invalid {
            key,
            value: value.to_owned(),
            expected: "HOST:PORT",
        }),
    }
}

fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_a_single_node_dev_config() {
        let file: FileConfig = toml::from_str("").unwrap();
        let config = file.validate().unwrap();
        assert!(config.is_controller);
        assert!(config.is_broker);
        assert_eq!(config.controller.voters.len(), 1);
        assert_eq!(config.controller.voters[&1], "127.0.0.1:19092");
        assert_eq!(config.broker.advertised_listeners[0].port, 9092);
        assert_eq!(config.broker.log_dir, PathBuf::from("fjord-data/logs"));
        assert_eq!(config.controller.broker_session_timeout_ms, 9000);
        assert_eq!(config.controller.broker_heartbeat_interval_ms, 2000);
        assert_eq!(
            config.replication.replica_lag_time_max,
            Duration::from_secs(30)
        );
        assert_eq!(
            config.controller.rpc_addr.as_deref(),
            Some("127.0.0.1:19092")
        );
        let listener = config.replication.replication_listener.unwrap();
        assert_eq!(
            (
                listener.name.as_str(),
                listener.host.as_str(),
                listener.port
            ),
            (REPLICATION_LISTENER, "127.0.0.1", 19092)
        );
    }

    #[test]
    fn file_env_and_topic_defaults() {
        let text = r#"
            node_id = 2
            kafka_addr = "0.0.0.0:9192"
            advertised_kafka_addr = "fjord-2:9192"
            rpc_addr = "0.0.0.0:9193"
            advertised_rpc_addr = "b:9093"
            [controller]
            voters = ["1@a:9093", "2@b:9093", "3@c:9093"]
            broker_session_timeout_ms = 3000
            [broker]
            replica_lag_time_max_ms = 2500
            producer_id_expiration_ms = 3600000
            [topic_defaults]
            "retention.ms" = "60000"
        "#;
        let mut file: FileConfig = toml::from_str(text).unwrap();
        file.apply_env(|k| match k {
            "FJORD_DATA_DIR" => Some("/data".to_string()),
            "FJORD_BROKER_HEARTBEAT_INTERVAL_MS" => Some("500".to_string()),
            _ => None,
        })
        .unwrap();
        let config = file.validate().unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!(config.controller.voters.len(), 3);
        assert_eq!(config.broker.advertised_listeners[0].host, "fjord-2");
        assert_eq!(config.broker.log_defaults.retention_ms, 60000);
        assert_eq!(
            config.broker.log_defaults.producer_id_expiration_ms,
            3_600_000
        );
        assert_eq!(
            config.broker.producer_id_expiration_check_interval,
            Duration::from_millis(600_000)
        );
        assert_eq!(config.data_dir, PathBuf::from("/data"));
        assert_eq!(config.rpc_listen, "0.0.0.0:9193".parse().unwrap());
        assert_eq!(config.advertised_rpc_addr, "b:9093");
        assert_eq!(config.controller.broker_session_timeout_ms, 3000);
        assert_eq!(config.controller.broker_heartbeat_interval_ms, 500);
        assert_eq!(
            config.replication.broker_heartbeat_interval,
            Duration::from_millis(500)
        );
        assert_eq!(
            config.replication.replica_lag_time_max,
            Duration::from_millis(2500)
        );
        assert_eq!(config.controller.rpc_addr.as_deref(), Some("b:9093"));
    }

    #[test]
    fn listeners_reach_the_broker_and_gateway_configs() {
        let mut file: FileConfig = toml::from_str(
            r#"
            listeners = ["INTERNAL://0.0.0.0:9092", "EXTERNAL://0.0.0.0:9094"]
            advertised_listeners = ["INTERNAL://fjord-1:9092", "EXTERNAL://localhost:29091"]
            "#,
        )
        .unwrap();
        file.apply_env(|k| (k == "FJORD_NODE_ID").then(|| "1".into()))
            .unwrap();
        let config = file.validate().unwrap();
        let bind: Vec<(&str, u16)> = config
            .gateway
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l.listen.port()))
            .collect();
        assert_eq!(bind, vec![("INTERNAL", 9092), ("EXTERNAL", 9094)]);
        assert_eq!(
            config.broker.advertised_listeners,
            vec![
                AdvertisedListener {
                    name: "INTERNAL".into(),
                    host: "fjord-1".into(),
                    port: 9092
                },
                AdvertisedListener {
                    name: "EXTERNAL".into(),
                    host: "localhost".into(),
                    port: 29091
                },
            ]
        );
        // The replication listener is registered apart, from the rpc address.
        assert_eq!(
            config
                .replication
                .replication_listener
                .map(|l| (l.name, l.port)),
            Some((REPLICATION_LISTENER.to_string(), 19092))
        );
    }

    #[test]
    fn an_ephemeral_rpc_port_is_resolved_everywhere_it_is_advertised() {
        let file: FileConfig = toml::from_str("rpc_addr = \"127.0.0.1:0\"").unwrap();
        let mut config = file.validate().unwrap();
        config.resolve_rpc_port("127.0.0.1:4567".parse().unwrap());
        assert_eq!(config.advertised_rpc_addr, "127.0.0.1:4567");
        assert_eq!(config.controller.voters[&1], "127.0.0.1:4567");
        assert_eq!(
            config.controller.rpc_addr.as_deref(),
            Some("127.0.0.1:4567")
        );
        assert_eq!(
            config
                .replication
                .replication_listener
                .as_ref()
                .map(|l| l.port),
            Some(4567)
        );
        // A fixed port stays as configured.
        let mut config = FileConfig::default().validate().unwrap();
        config.resolve_rpc_port("127.0.0.1:4567".parse().unwrap());
        assert_eq!(config.advertised_rpc_addr, "127.0.0.1:19092");
    }

    #[test]
    fn http_addr_defaults_can_be_overridden_and_turned_off() {
        let config = FileConfig::default().validate().unwrap();
        assert_eq!(config.http_listen, Some("127.0.0.1:9644".parse().unwrap()));
        for off in ["", "off"] {
            let file: FileConfig = toml::from_str(&format!("http_addr = {off:?}")).unwrap();
            assert_eq!(file.validate().unwrap().http_listen, None);
        }
        let mut file = FileConfig::default();
        file.apply_env(|k| (k == "FJORD_HTTP_ADDR").then(|| "0.0.0.0:8080".into()))
            .unwrap();
        assert_eq!(
            file.validate().unwrap().http_listen,
            Some("0.0.0.0:8080".parse().unwrap())
        );
        let file: FileConfig = toml::from_str("http_addr = \"nope\"").unwrap();
        assert!(matches!(
            file.validate(),
            Err(ConfigError::Invalid {
                key: "http_addr",
                ..
            })
        ));
    }

    #[test]
    fn controller_addr_is_the_old_name_of_rpc_addr() {
        let file: FileConfig = toml::from_str("controller_addr = \"127.0.0.1:7000\"").unwrap();
        assert_eq!(file.validate().unwrap().rpc_listen.port(), 7000);
        let mut file = FileConfig::default();
        file.apply_env(|k| (k == "FJORD_CONTROLLER_ADDR").then(|| "127.0.0.1:7001".into()))
            .unwrap();
        assert_eq!(file.rpc_addr, "127.0.0.1:7001");
    }

    #[test]
    fn roles_and_voters_agree() {
        let voters = r#"[controller]
            voters = ["1@h:1", "2@h:2", "3@h:3"]"#;
        let with = |head: &str| toml::from_str::<FileConfig>(&format!("{head}\n{voters}")).unwrap();
        // Combined and controller-only nodes are voters.
        let c = with("node_id = 2").validate().unwrap();
        assert!(c.is_controller && c.is_broker);
        let c = with("node_id = 3\nroles = [\"controller\"]")
            .validate()
            .unwrap();
        assert!(c.is_controller && !c.is_broker);
        // A broker-only node follows the quorum as a learner.
        let c = with("node_id = 4\nroles = [\"broker\"]")
            .validate()
            .unwrap();
        assert!(!c.is_controller && c.is_broker);
        assert!(!c.controller.voters.contains_key(&4));

        assert!(matches!(
            with("node_id = 4").validate(),
            Err(ConfigError::NotAVoter { node_id: 4 })
        ));
        assert!(matches!(
            with("node_id = 1\nroles = [\"broker\"]").validate(),
            Err(ConfigError::BrokerInVoters { node_id: 1 })
        ));
        assert!(matches!(
            toml::from_str::<FileConfig>("roles = [\"broker\"]")
                .unwrap()
                .validate(),
            Err(ConfigError::NoVoters { node_id: 1 })
        ));
        assert!(matches!(
            toml::from_str::<FileConfig>("roles = []")
                .unwrap()
                .validate(),
            Err(ConfigError::NoRoles)
        ));
        let mut file = with("node_id = 4");
        file.apply_env(|k| (k == "FJORD_ROLES").then(|| "broker".into()))
            .unwrap();
        assert!(file.validate().is_ok());
    }

    #[test]
    fn sasl_listeners_take_the_sasl_section() {
        use fjord_gateway::SaslMechanism;
        let m = |name: &str| SaslMechanism::from_name(name).expect("mechanism");
        let parse = |text: &str| toml::from_str::<FileConfig>(text).expect("toml").validate();
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("users.toml");
        std::fs::write(&users, "alice = \"alice-secret\"\nbob = \"b\"\n").expect("write");
        let config = parse(&format!(
            r#"
            listeners = ["SASL_PLAINTEXT://127.0.0.1:9092"]
            [sasl]
            enabled_mechanisms = ["PLAIN", "SCRAM-SHA-512"]
            plain_users_file = {users:?}
            connections_max_reauth_ms = 2000
            connection_failed_authentication_delay_ms = 0
            "#
        ))
        .expect("valid");
        let sasl = config.gateway.sasl;
        assert_eq!(
            sasl.enabled_mechanisms,
            [SaslMechanism::Plain, m("SCRAM-SHA-512")]
        );
        assert_eq!(sasl.plain_users.len(), 2);
        assert_eq!(sasl.connections_max_reauth, Some(Duration::from_secs(2)));
        assert_eq!(sasl.failed_authentication_delay, Duration::ZERO);
        // Defaults: SCRAM only, sessions unbounded, Kafka's 100 ms delay.
        let sasl = parse(
            r#"listeners = ["SASL_SSL://127.0.0.1:9093"]
            [ssl]
            keystore_location = "k""#,
        )
        .expect("valid")
        .gateway
        .sasl;
        assert_eq!(
            sasl.enabled_mechanisms,
            [m("SCRAM-SHA-256"), m("SCRAM-SHA-512")]
        );
        assert_eq!(sasl.connections_max_reauth, None);
        assert_eq!(sasl.failed_authentication_delay, Duration::from_millis(100));
        // PLAIN on a SASL listener needs its users; unknown mechanisms are refused.
        let err = |text: &str| parse(text).expect_err(text);
        assert!(matches!(
            err(
                "listeners = [\"SASL_PLAINTEXT://127.0.0.1:1\"]\n[sasl]\nenabled_mechanisms = [\"PLAIN\"]"
            ),
            ConfigError::SaslPlainWithoutUsers
        ));
        assert!(matches!(
            err("[sasl]\nenabled_mechanisms = [\"GSSAPI\"]"),
            ConfigError::Invalid {
                key: "sasl.enabled_mechanisms",
                ..
            }
        ));
        assert!(matches!(
            err("[sasl]\nplain_users_file = \"/nonexistent/users.toml\""),
            ConfigError::Read { .. }
        ));
        // Environment overrides.
        let mut file = FileConfig::default();
        file.apply_env(|k| match k {
            "FJORD_SASL_ENABLED_MECHANISMS" => Some("SCRAM-SHA-256, PLAIN".into()),
            "FJORD_CONNECTIONS_MAX_REAUTH_MS" => Some("500".into()),
            "FJORD_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS" => Some("7".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(file.sasl.enabled_mechanisms, ["SCRAM-SHA-256", "PLAIN"]);
        assert_eq!(file.sasl.connections_max_reauth_ms, 500);
        assert_eq!(file.sasl.connection_failed_authentication_delay_ms, 7);
    }

    #[test]
    fn ssl_listeners_take_the_ssl_section() {
        let parse = |text: &str| toml::from_str::<FileConfig>(text).expect("toml").validate();
        let config = parse(
            r#"
            listeners = ["PLAINTEXT://127.0.0.1:9092", "SSL://127.0.0.1:9093"]
            [ssl]
            keystore_location = "/certs/node.pem"
            key_location = "/certs/node.key"
            truststore_location = "/certs/ca.pem"
            client_auth = "required"
            enabled_protocols = ["TLSv1.3"]
            principal_mapping_rules = "RULE:^CN=(.*?),OU=clients.*$/$1/,DEFAULT"
            reload_interval_ms = 1000
            [rpc_ssl]
            keystore_location = "/certs/node.pem"
            key_location = "/certs/node.key"
            truststore_location = "/certs/ca.pem"
            "#,
        )
        .expect("valid");
        let tls = config.gateway.tls.expect("tls");
        assert_eq!(tls.client_auth, fjord_gateway::tls::ClientAuth::Required);
        assert_eq!(
            tls.enabled_protocols,
            [fjord_gateway::tls::TlsVersion::Tls13]
        );
        assert_eq!(
            tls.principal_mapper
                .name("CN=alice,OU=clients,O=Fjord")
                .as_deref(),
            Ok("alice")
        );
        assert_eq!(tls.reload_interval, Duration::from_secs(1));
        assert_eq!(
            config.rpc_tls.expect("rpc tls").key_location,
            PathBuf::from("/certs/node.key")
        );
        // Defaults: no TLS anywhere.
        let config = parse("").expect("valid");
        assert!(config.gateway.tls.is_none() && config.rpc_tls.is_none());

        let err = |text: &str| parse(text).expect_err(text);
        assert!(matches!(
            err(r#"listeners = ["SSL://127.0.0.1:9093"]"#),
            ConfigError::SslWithoutKeystore { name } if name == "SSL"
        ));
        assert!(matches!(
            err("[ssl]\nkeystore_location = \"k\"\nclient_auth = \"required\""),
            ConfigError::SslNoTruststore { .. }
        ));
        assert!(matches!(
            err("[ssl]\nclient_auth = \"maybe\""),
            ConfigError::Invalid {
                key: "ssl.client_auth",
                ..
            }
        ));
        assert!(matches!(
            err("[ssl]\nenabled_protocols = [\"TLSv1.1\"]"),
            ConfigError::Invalid {
                key: "ssl.enabled_protocols",
                ..
            }
        ));
        assert!(matches!(
            err("[ssl]\nkeystore_type = \"JKS\""),
            ConfigError::Invalid {
                key: "ssl.keystore_type",
                ..
            }
        ));
        assert!(matches!(
            err("[ssl]\nprincipal_mapping_rules = \"RULE:x\""),
            ConfigError::SslPrincipalMappingRules(_)
        ));
        assert!(matches!(
            err("[rpc_ssl]\nkeystore_location = \"k\""),
            ConfigError::RpcSslIncomplete
        ));
    }

    #[test]
    fn bad_values_are_named() {
        let file: FileConfig = toml::from_str("kafka_addr = \"nope\"").unwrap();
        assert!(matches!(
            file.validate(),
            Err(ConfigError::Invalid {
                key: "kafka_addr",
                ..
            })
        ));
        let file: FileConfig = toml::from_str("rpc_addr = \"0.0.0.0:9000\"").unwrap();
        assert!(matches!(
            file.validate(),
            Err(ConfigError::Invalid {
                key: "advertised_rpc_addr",
                ..
            })
        ));
        for voters in ["[\"x\"]", "[\"1@nohostport\"]", "[\"-1@h:1\"]"] {
            let file: FileConfig =
                toml::from_str(&format!("[controller]\nvoters = {voters}")).unwrap();
            assert!(
                matches!(file.validate(), Err(ConfigError::Voter { .. })),
                "{voters}"
            );
        }
        let file: FileConfig =
            toml::from_str("[controller]\nvoters = [\"1@h:1\", \"1@h:2\"]").unwrap();
        assert!(matches!(
            file.validate(),
            Err(ConfigError::DuplicateVoter { voter: 1 })
        ));
        let file: FileConfig =
            toml::from_str("[controller]\nbroker_heartbeat_interval_ms = 9000").unwrap();
        assert!(matches!(
            file.validate(),
            Err(ConfigError::HeartbeatNotBelowSession { .. })
        ));
        let file: FileConfig = toml::from_str("[broker]\nreplica_lag_time_max_ms = 0").unwrap();
        assert!(matches!(file.validate(), Err(ConfigError::Invalid { .. })));
        let mut file = FileConfig::default();
        assert!(matches!(
            file.apply_env(|k| (k == "FJORD_ROLES").then(|| "broker,leader".into())),
            Err(ConfigError::Invalid {
                key: "FJORD_ROLES",
                ..
            })
        ));
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
    }

    #[test]
    fn written_files_read_back_the_same() {
        let mut file = FileConfig {
            node_id: 3,
            advertised_kafka_addr: Some("h:1".into()),
            listeners: vec!["A://127.0.0.1:1".into(), "B://127.0.0.1:2".into()],
            ..FileConfig::default()
        };
        file.controller.voters = vec!["3@127.0.0.1:19092".into()];
        file.topic_defaults
            .insert("retention.ms".into(), "1000".into());
        let text = file.to_toml().unwrap();
        let back = FileConfig::parse(&text, Path::new("generated")).unwrap();
        assert_eq!(format!("{back:?}"), format!("{file:?}"));
    }

    /// The three files in deploy/local/ are what the README tells users to
    /// run: they must parse, validate and describe one 3-voter cluster.
    #[test]
    fn deploy_local_files_form_one_cluster() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local");
        let (mut kafka_ports, mut http_ports) = (Vec::new(), Vec::new());
        for id in 1..=3 {
            let path = dir.join(format!("node{id}.toml"));
            let config = FileConfig::load(&path)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            assert_eq!(config.node_id, id);
            assert!(config.is_controller && config.is_broker);
            assert_eq!(config.controller.voters.len(), 3);
            assert_eq!(
                config.controller.voters.get(&id),
                Some(&config.advertised_rpc_addr),
                "node {id}'s voter entry is its own rpc address"
            );
            assert_eq!(config.broker.default_replication_factor, 3);
            assert_eq!(
                config.data_dir,
                PathBuf::from(format!("fjord-data/node-{id}"))
            );
            kafka_ports.push(config.gateway.listeners[0].listen.port());
            http_ports.push(config.http_listen.map(|a| a.port()));
        }
        assert_eq!(kafka_ports, vec![9092, 9093, 9094]);
        assert_eq!(http_ports, vec![Some(9644), Some(9645), Some(9646)]);
    }

    /// A node's environment for `FileConfig::apply_env`, from pairs.
    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key: &str| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_string())
        }
    }

    /// (name, host, port) of every advertised listener, sorted.
    fn advertised(config: &Config) -> Vec<(String, String, u16)> {
        let mut names: Vec<_> = config
            .broker
            .advertised_listeners
            .iter()
            .map(|l| (l.name.clone(), l.host.clone(), l.port))
            .collect();
        names.sort();
        names
    }

    /// The fjord.toml of a ConfigMap: the indented block under `fjord.toml: |`.
    fn config_map_toml(path: &Path) -> String {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip_while(|l| l.trim() != "fjord.toml: |")
            .skip(1)
            .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The config files deploy/ ships for containers (deploy/README.md)
    /// validate with the environment each node gets there: the image's
    /// single-node default, a compose node, a Kubernetes pod (node id 0).
    #[test]
    fn deploy_container_files_validate() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");

        let image = FileConfig::load(&deploy.join("docker/fjord.toml"))
            .and_then(FileConfig::validate)
            .unwrap_or_else(|e| panic!("docker/fjord.toml: {e:?}"));
        assert!(image.is_controller && image.is_broker);
        assert_eq!(image.data_dir, PathBuf::from("/var/lib/fjord"));
        assert_eq!(image.http_listen, Some("0.0.0.0:9644".parse().unwrap()));
        assert_eq!(
            advertised(&image),
            vec![("PLAINTEXT".into(), "localhost".into(), 9092)]
        );

        let mut compose = FileConfig::load(&deploy.join("compose/fjord.toml")).unwrap();
        compose
            .apply_env(env(&[
                ("FJORD_NODE_ID", "2"),
                (
                    "FJORD_VOTERS",
                    "1@fjord-1:19092,2@fjord-2:19092,3@fjord-3:19092",
                ),
                (
                    "FJORD_ADVERTISED_LISTENERS",
                    "INTERNAL://fjord-2:9092,EXTERNAL://localhost:29092",
                ),
                ("FJORD_ADVERTISED_RPC_ADDR", "fjord-2:19092"),
            ]))
            .unwrap();
        let compose = compose
            .validate()
            .unwrap_or_else(|e| panic!("compose/fjord.toml: {e:?}"));
        assert_eq!(compose.node_id, 2);
        assert_eq!(compose.controller.voters.len(), 3);
        assert_eq!(compose.broker.default_replication_factor, 3);
        let mut names = advertised(&compose);
        names.sort();
        assert_eq!(
            names,
            vec![
                ("EXTERNAL".into(), "localhost".into(), 29092),
                ("INTERNAL".into(), "fjord-2".into(), 9092),
            ]
        );

        // The ConfigMap's fjord.toml: the indented block under `fjord.toml: |`.
        let toml_text = config_map_toml(&deploy.join("k8s/configmap.yaml"));
        let mut pod = FileConfig::parse(&toml_text, Path::new("k8s/configmap.yaml")).unwrap();
        pod.apply_env(env(&[
            ("FJORD_NODE_ID", "0"),
            (
                "FJORD_VOTERS",
                "0@fjord-0.fjord-headless.ns.svc:19092,1@fjord-1.fjord-headless.ns.svc:19092,2@fjord-2.fjord-headless.ns.svc:19092",
            ),
            (
                "FJORD_ADVERTISED_LISTENERS",
                "PLAINTEXT://fjord-0.fjord-headless.ns.svc:9092",
            ),
            ("FJORD_ADVERTISED_RPC_ADDR", "fjord-0.fjord-headless.ns.svc:19092"),
        ]))
        .unwrap();
        let pod = pod
            .validate()
            .unwrap_or_else(|e| panic!("k8s/configmap.yaml: {e:?}"));
        assert_eq!(pod.node_id, 0);
        assert_eq!(
            pod.controller.voters.get(&0),
            Some(&pod.advertised_rpc_addr)
        );
        assert_eq!(pod.broker.min_insync_replicas, 2);
    }

    /// The SASL_SSL variants (deploy/compose/docker-compose.sasl-ssl.yml and the kustomize
    /// overlay deploy/k8s-sasl-ssl) validate with the per-node environment they get; the
    /// certificates are only named here (they load at start).
    #[test]
    fn deploy_sasl_ssl_files_validate() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");

        let mut compose = FileConfig::load(&deploy.join("compose/fjord-sasl-ssl.toml")).unwrap();
        compose
            .apply_env(env(&[
                ("FJORD_NODE_ID", "3"),
                (
                    "FJORD_VOTERS",
                    "1@fjord-1:19092,2@fjord-2:19092,3@fjord-3:19092",
                ),
                (
                    "FJORD_ADVERTISED_LISTENERS",
                    "INTERNAL://fjord-3:9092,EXTERNAL://localhost:29193",
                ),
                ("FJORD_ADVERTISED_RPC_ADDR", "fjord-3:19092"),
            ]))
            .unwrap();
        let compose = compose
            .validate()
            .unwrap_or_else(|e| panic!("compose/fjord-sasl-ssl.toml: {e:?}"));
        assert_eq!(
            advertised(&compose),
            vec![
                ("EXTERNAL".into(), "localhost".into(), 29193),
                ("INTERNAL".into(), "fjord-3".into(), 9092),
                // Not in FJORD_ADVERTISED_LISTENERS: advertises its loopback bind address.
                ("LOCAL".into(), "127.0.0.1".into(), 9095),
            ]
        );

        let toml_text = config_map_toml(&deploy.join("k8s-sasl-ssl/configmap.yaml"));
        let mut pod =
            FileConfig::parse(&toml_text, Path::new("k8s-sasl-ssl/configmap.yaml")).unwrap();
        pod.apply_env(env(&[
            ("FJORD_NODE_ID", "1"),
            (
                "FJORD_VOTERS",
                "0@fjord-0.fjord-headless.ns.svc:19092,1@fjord-1.fjord-headless.ns.svc:19092,2@fjord-2.fjord-headless.ns.svc:19092",
            ),
            (
                "FJORD_ADVERTISED_LISTENERS",
                "SASL_SSL://fjord-1.fjord-headless.ns.svc:9092",
            ),
            ("FJORD_ADVERTISED_RPC_ADDR", "fjord-1.fjord-headless.ns.svc:19092"),
        ]))
        .unwrap();
        let pod = pod
            .validate()
            .unwrap_or_else(|e| panic!("k8s-sasl-ssl/configmap.yaml: {e:?}"));
        assert_eq!(
            advertised(&pod),
            vec![
                ("LOCAL".into(), "127.0.0.1".into(), 9095),
                (
                    "SASL_SSL".into(),
                    "fjord-1.fjord-headless.ns.svc".into(),
                    9092
                ),
            ]
        );
    }
}
