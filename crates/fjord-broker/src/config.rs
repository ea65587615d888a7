//! The broker's settings, validated by the server crate before they get here.

use std::path::PathBuf;
use std::time::Duration;

use fjord_log::LogConfig;
use fjord_types::BrokerId;

/// A listener as advertised to clients in Metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisedListener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: BrokerId,
    /// `log.dirs` (one directory): partition logs live in `<log_dir>/<topic>-<partition>`.
    pub log_dir: PathBuf,
    /// What clients are told to connect to.
    pub advertised_listener: AdvertisedListener,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas` broker default.
    pub min_insync_replicas: i32,
    /// Broker-level defaults for topic configs (`log.retention.ms` and friends).
    pub log_defaults: LogConfig,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// How often the flusher looks at `flush.ms` / `flush.messages`.
    pub flush_check_interval: Duration,
    /// The group coordinator and `__consumer_offsets`.
    pub groups: crate::group_service::GroupServiceConfig,
}

impl BrokerConfig {
    /// A single-node broker with Kafka's defaults, as `fjord dev` runs it.
    pub fn new(node_id: BrokerId, log_dir: PathBuf, host: String, port: u16) -> Self {
        BrokerConfig {
            node_id,
            log_dir,
            advertised_listener: AdvertisedListener {
                name: "PLAINTEXT".to_string(),
                host,
                port,
            },
            rack: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            log_defaults: LogConfig::default(),
            retention_check_interval: Duration::from_millis(300_000),
            flush_check_interval: Duration::from_millis(1_000),
            groups: Default::default(),
        }
    }
}
