//! Node configuration: a TOML file (or `fjord dev`'s embedded defaults),
//! then `FJORD_*` environment overrides, validated into [`Config`].
//!
//! Server settings use snake_case keys; topic defaults use Kafka's topic
//! config names under `[topic_defaults]`, e.g. `"retention.ms" = "3600000"`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_broker::group::GroupConfig;
use fjord_broker::group_service::GroupServiceConfig;
use fjord_broker::{AdvertisedListener, BrokerConfig};
use fjord_controller::ControllerConfig;
use fjord_gateway::GatewayConfig;
use fjord_log::LogConfig;
use fjord_types::BrokerId;
use serde::Deserialize;

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
    #[error("topic_defaults")]
    TopicDefaults(#[source] fjord_log::ConfigError),
    #[error("roles must include \"broker\" (controller-only nodes come with the cluster work)")]
    NoBrokerRole,
    #[error("node {node_id} is a controller but not in controller.voters")]
    NotAVoter { node_id: BrokerId },
}

/// A node's role (`process.roles` in Kafka).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Broker,
    Controller,
}

/// The TOML file, as written. Every field has a default, so `fjord dev`
/// runs from an empty file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub node_id: BrokerId,
    pub roles: Vec<Role>,
    pub data_dir: PathBuf,
    /// Where the Kafka listener binds.
    pub kafka_addr: String,
    /// What clients are told to connect to (defaults to `kafka_addr`).
    pub advertised_kafka_addr: Option<String>,
    /// Where the controller's Raft RPC listens (used once clusters span nodes).
    pub controller_addr: String,
    pub rack: Option<String>,
    pub controller: ControllerSection,
    pub broker: BrokerSection,
    /// Kafka topic config names → values, the defaults for every topic.
    pub topic_defaults: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerSection {
    /// `ID@HOST:PORT` per voter, like Kafka's `controller.quorum.voters`.
    pub voters: Vec<String>,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    pub snapshot_every_logs: u64,
}

#[derive(Debug, Deserialize)]
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
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            node_id: 1,
            roles: vec![Role::Controller, Role::Broker],
            data_dir: PathBuf::from("fjord-data"),
            kafka_addr: "127.0.0.1:9092".into(),
            advertised_kafka_addr: None,
            controller_addr: "127.0.0.1:9093".into(),
            rack: None,
            controller: ControllerSection::default(),
            broker: BrokerSection::default(),
            topic_defaults: BTreeMap::new(),
        }
    }
}

impl Default for ControllerSection {
    fn default() -> Self {
        ControllerSection {
            voters: Vec::new(),
            election_timeout_ms: (1000, 2000),
            heartbeat_interval_ms: 200,
            snapshot_every_logs: 1000,
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
        }
    }
}

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: BrokerId,
    pub is_controller: bool,
    pub data_dir: PathBuf,
    pub controller: ControllerConfig,
    pub broker: BrokerConfig,
    pub gateway: GatewayConfig,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Apply `FJORD_*` environment overrides of the common settings
    /// (`FJORD_NODE_ID`, `FJORD_DATA_DIR`, `FJORD_KAFKA_ADDR`,
    /// `FJORD_ADVERTISED_KAFKA_ADDR`, `FJORD_CONTROLLER_ADDR`, `FJORD_VOTERS`
    /// comma-separated).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("FJORD_NODE_ID") {
            self.node_id = v.parse().map_err(|_| ConfigError::Invalid {
                key: "FJORD_NODE_ID",
                value: v.clone(),
                expected: "node id",
            })?;
        }
        if let Some(v) = env("FJORD_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("FJORD_KAFKA_ADDR") {
            self.kafka_addr = v;
        }
        if let Some(v) = env("FJORD_ADVERTISED_KAFKA_ADDR") {
            self.advertised_kafka_addr = Some(v);
        }
        if let Some(v) = env("FJORD_CONTROLLER_ADDR") {
            self.controller_addr = v;
        }
        if let Some(v) = env("FJORD_VOTERS") {
            self.controller.voters = v.split(',').map(|s| s.trim().to_string()).collect();
        }
        Ok(())
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        if !self.roles.contains(&Role::Broker) {
            return Err(ConfigError::NoBrokerRole);
        }
        let is_controller = self.roles.contains(&Role::Controller);
        let listen: SocketAddr = self.kafka_addr.parse().map_err(|_| ConfigError::Invalid {
            key: "kafka_addr",
            value: self.kafka_addr.clone(),
            expected: "HOST:PORT socket address",
        })?;
        let advertised = self
            .advertised_kafka_addr
            .clone()
            .unwrap_or_else(|| self.kafka_addr.clone());
        let (host, port) = split_host_port(&advertised).ok_or(ConfigError::Invalid {
            key: "advertised_kafka_addr",
            value: advertised.clone(),
            expected: "HOST:PORT",
        })?;
        let mut voters = BTreeMap::new();
        for entry in &self.controller.voters {
            let (id, addr) = entry
                .split_once('@')
                .and_then(|(id, addr)| Some((id.parse::<BrokerId>().ok()?, addr.to_string())))
                .ok_or_else(|| ConfigError::Voter {
                    entry: entry.clone(),
                })?;
            voters.insert(id, addr);
        }
        if voters.is_empty() && is_controller {
            // A lone node is its own quorum.
            voters.insert(self.node_id, self.controller_addr.clone());
        }
        if is_controller && !voters.contains_key(&self.node_id) {
            return Err(ConfigError::NotAVoter {
                node_id: self.node_id,
            });
        }
        let log_defaults = LogConfig::default()
            .with_overrides(&self.topic_defaults)
            .map_err(ConfigError::TopicDefaults)?;
        let b = &self.broker;
        let broker = BrokerConfig {
            node_id: self.node_id,
            log_dir: self.data_dir.join("logs"),
            advertised_listener: AdvertisedListener {
                name: "PLAINTEXT".into(),
                host,
                port,
            },
            rack: self.rack.clone(),
            auto_create_topics_enable: b.auto_create_topics_enable,
            num_partitions: b.num_partitions.max(1),
            default_replication_factor: b.default_replication_factor.max(1),
            min_insync_replicas: b.min_insync_replicas.max(1),
            log_defaults,
            retention_check_interval: Duration::from_millis(
                b.log_retention_check_interval_ms.max(1),
            ),
            flush_check_interval: Duration::from_millis(1000),
            groups: GroupServiceConfig {
                offsets_topic_num_partitions: b.offsets_topic_num_partitions.max(1),
                offsets_topic_replication_factor: b.offsets_topic_replication_factor.max(1),
                group: GroupConfig {
                    initial_rebalance_delay_ms: b.group_initial_rebalance_delay_ms.max(0),
                    ..GroupConfig::default()
                },
                ..GroupServiceConfig::default()
            },
        };
        let controller = ControllerConfig {
            node_id: self.node_id,
            data_dir: self.data_dir.join("controller"),
            voters,
            election_timeout_ms: self.controller.election_timeout_ms,
            heartbeat_interval_ms: self.controller.heartbeat_interval_ms,
            snapshot_every_logs: self.controller.snapshot_every_logs,
            rpc_addr: Some(self.controller_addr.clone()),
            write_timeout_ms: fjord_controller::DEFAULT_WRITE_TIMEOUT_MS,
            startup_timeout_ms: fjord_controller::DEFAULT_STARTUP_TIMEOUT_MS,
            broker_session_timeout_ms: fjord_controller::DEFAULT_BROKER_SESSION_TIMEOUT_MS,
            broker_heartbeat_interval_ms: fjord_controller::DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS,
        };
        let gateway = GatewayConfig {
            listen,
            max_frame_bytes: b.socket_request_max_bytes,
            max_connections: b.max_connections,
        };
        Ok(Config {
            node_id: self.node_id,
            is_controller,
            data_dir: self.data_dir,
            controller,
            broker,
            gateway,
        })
    }
}

fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
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
        assert_eq!(config.controller.voters.len(), 1);
        assert_eq!(config.broker.advertised_listener.port, 9092);
        assert_eq!(config.broker.log_dir, PathBuf::from("fjord-data/logs"));
    }

    #[test]
    fn file_env_and_topic_defaults() {
        let text = r#"
            node_id = 2
            kafka_addr = "0.0.0.0:9192"
            advertised_kafka_addr = "fjord-2:9192"
            [controller]
            voters = ["1@a:9093", "2@b:9093", "3@c:9093"]
            [topic_defaults]
            "retention.ms" = "60000"
        "#;
        let mut file: FileConfig = toml::from_str(text).unwrap();
        file.apply_env(|k| (k == "FJORD_DATA_DIR").then(|| "/data".to_string()))
            .unwrap();
        let config = file.validate().unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!(config.controller.voters.len(), 3);
        assert_eq!(config.broker.advertised_listener.host, "fjord-2");
        assert_eq!(config.broker.log_defaults.retention_ms, 60000);
        assert_eq!(config.data_dir, PathBuf::from("/data"));
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
        let file: FileConfig = toml::from_str("[controller]\nvoters = [\"x\"]").unwrap();
        assert!(matches!(file.validate(), Err(ConfigError::Voter { .. })));
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
    }
}
