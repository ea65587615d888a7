//! The broker's settings, validated by the server crate before they get here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fjord_log::LogConfig;
use fjord_types::BrokerId;

pub use crate::log_cleaner::LogCleanerConfig;

/// A listener as advertised to clients in Metadata (one entry of Kafka's
/// `advertised.listeners`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// Kafka's listener name (`PLAINTEXT`, `INTERNAL`, `EXTERNAL`…): a client
    /// connected to the listener of this name is told this host and port.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// The name of the one client listener of a node configured with the
/// `kafka_addr` shorthand (and of [`BrokerConfig::new`]'s).
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: BrokerId,
    /// `log.dirs` (one directory): partition logs live in `<log_dir>/<topic>-<partition>`.
    pub log_dir: PathBuf,
    /// What clients are told to connect to, one entry per client listener
    /// name (Kafka's `advertised.listeners`), names unique and never
    /// [`REPLICATION_LISTENER`]. All are registered with the controller, and
    /// a client connected to listener N is told every broker's N endpoint.
    pub advertised_listeners: Vec<AdvertisedListener>,
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
    /// The static topic-config defaults as the node's config file gives
    /// them (topic config names), including those the log does not hold
    /// (`compression.type`...): what DescribeConfigs reports as
    /// STATIC_BROKER_CONFIG for their broker synonyms.
    pub topic_defaults: BTreeMap<String, String>,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `log.cleaner.*`: compaction of `cleanup.policy=compact` logs.
    pub log_cleaner: LogCleanerConfig,
    /// How often the flusher looks at `flush.ms` / `flush.messages`.
    pub flush_check_interval: Duration,
    /// `producer.id.expiration.check.interval.ms`: how often producers idle
    /// for `producer.id.expiration.ms` (in [`Self::log_defaults`], copied
    /// into every log's config) are forgotten.
    pub producer_id_expiration_check_interval: Duration,
    /// The group coordinator and `__consumer_offsets`.
    pub groups: fjord_coordinator::GroupServiceConfig,
    /// The transaction coordinator and `__transaction_state`
    /// (`transaction.state.log.*`; not exposed to clients yet).
    pub transactions: fjord_coordinator::runtime::TransactionServiceConfig,
    /// The ACL authorizer (off by default).
    pub authorizer: crate::authorizer::AuthorizerConfig,
    /// Client quota sampling (`quota.window.num`, `quota.window.size.seconds`).
    pub quotas: crate::quota::QuotaConfig,
}

impl BrokerConfig {
    /// A single-node broker with Kafka's defaults and one client listener
    /// named [`DEFAULT_LISTENER`] advertised as `host:port`, as `fjord dev`
    /// runs it.
    pub fn new(node_id: BrokerId, log_dir: PathBuf, host: String, port: u16) -> Self {
        BrokerConfig {
            node_id,
            log_dir,
            advertised_listeners: vec![AdvertisedListener {
                name: DEFAULT_LISTENER.to_string(),
                host,
                port,
            }],
            rack: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            log_defaults: LogConfig::default(),
            topic_defaults: BTreeMap::new(),
            retention_check_interval: Duration::from_millis(300_000),
            log_cleaner: LogCleanerConfig::default(),
            flush_check_interval: Duration::from_millis(1_000),
            producer_id_expiration_check_interval: Duration::from_millis(600_000),
            groups: Default::default(),
            transactions: Default::default(),
            authorizer: Default::default(),
            quotas: Default::default(),
        }
    }
}

/// Replication settings (Kafka's names and defaults). Kept apart from
/// [`BrokerConfig`] so that a single-node setup needs none of them.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// The node's gRPC address, registered as the listener named
    /// [`REPLICATION_LISTENER`]; followers fetch from it. `None`: this broker
    /// registers no replication endpoint and nobody can follow it.
    pub replication_listener: Option<AdvertisedListener>,
    /// `replica.lag.time.max.ms` (30000): a follower not caught up for this
    /// long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms` (500): the follower fetch long-poll.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.max.bytes` (1 MiB): per partition per fetch.
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes` (10 MiB): per fetch.
    pub replica_fetch_response_max_bytes: u32,
    /// `replica.fetch.backoff.ms` (1000): the longest back-off after a failed fetch.
    pub replica_fetch_backoff: Duration,
    /// `replica.high.watermark.checkpoint.interval.ms` (5000).
    pub hw_checkpoint_interval: Duration,
    /// `broker.heartbeat.interval.ms` (2000).
    pub broker_heartbeat_interval: Duration,
    /// How long shutdown waits for the controller to move leadership away
    /// (controlled shutdown) before closing the logs anyway.
    pub controlled_shutdown_timeout: Duration,
    /// How this broker dials its peers' gRPC (replica fetches, transaction
    /// markers): plaintext (default) or mutual TLS.
    pub peer_tls: fjord_rpc::PeerTls,
}

/// The listener name under which a broker registers its replication (gRPC) endpoint.
pub const REPLICATION_LISTENER: &str = "REPLICATION";

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            replication_listener: None,
            replica_lag_time_max: Duration::from_millis(30_000),
            replica_fetch_wait_max: Duration::from_millis(500),
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_backoff: Duration::from_millis(1_000),
            hw_checkpoint_interval: Duration::from_millis(5_000),
            broker_heartbeat_interval: Duration::from_millis(2_000),
            controlled_shutdown_timeout: Duration::from_secs(5),
            peer_tls: fjord_rpc::PeerTls::plaintext(),
        }
    }
}
