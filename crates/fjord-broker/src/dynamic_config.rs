//! A broker's configs by Kafka's broker config names, and the effective
//! [`BrokerConfig`] once the dynamic broker configs of the metadata image
//! (AlterConfigs / IncrementalAlterConfigs on a BROKER resource) are laid
//! over the static one: per-broker over cluster default over static, as
//! Kafka (`fjord_config::resolve` holds the rule).

use std::collections::BTreeMap;

use fjord_config::{ConfigLayers, dynamic_topic_defaults, dynamic_value};
use fjord_controller::DynamicBrokerConfigs;

use crate::config::BrokerConfig;
use crate::log_cleaner::LogCleanerConfig;

const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
const AUTO_CREATE_TOPICS_ENABLE: &str = "auto.create.topics.enable";
const NUM_PARTITIONS: &str = "num.partitions";
const DEFAULT_REPLICATION_FACTOR: &str = "default.replication.factor";
const LOG_CLEANER_BACKOFF_MS: &str = "log.cleaner.backoff.ms";
const LOG_CLEANER_DEDUPE_BUFFER_SIZE: &str = "log.cleaner.dedupe.buffer.size";
const LOG_CLEANER_IO_BUFFER_SIZE: &str = "log.cleaner.io.buffer.size";

/// The value of dynamic broker config `name` in `layers`, parsed; `None`
/// when unset, or (logged) when it does not parse: validated before it was
/// committed, so only if the rules tightened since.
fn parsed<T: std::str::FromStr>(layers: &ConfigLayers<'_>, name: &str) -> Option<T> {
    let value = dynamic_value(layers, name)?;
    let parsed = value.trim().parse().ok();
    if parsed.is_none() {
        tracing::error!(%name, %value, "invalid dynamic broker config; keeping the static value");
    }
    parsed
}

impl LogCleanerConfig {
    /// This (static) cleaner config with the dynamic `log.cleaner.*`
    /// configs of `layers` laid over it, clamped as the static ones are
    /// (`fjord-server`'s config): the cleaner reads it before each pass.
    pub fn with_dynamic(&self, layers: &ConfigLayers<'_>) -> LogCleanerConfig {
        let mut c = self.clone();
        if let Some(ms) = parsed::<u64>(layers, LOG_CLEANER_BACKOFF_MS) {
            c.backoff = std::time::Duration::from_millis(ms.max(1));
        }
        // Kafka validates no range here: a negative value takes the floor too.
        if let Some(bytes) = parsed::<i64>(layers, LOG_CLEANER_DEDUPE_BUFFER_SIZE) {
            c.dedupe_buffer_size = usize::try_from(bytes.max(0))
                .unwrap_or(usize::MAX)
                .max(1024 * 1024);
        }
        if let Some(bytes) = parsed::<u32>(layers, LOG_CLEANER_IO_BUFFER_SIZE) {
            c.io_buffer_size = (bytes as usize).max(4096);
        }
        c
    }
}

impl BrokerConfig {
    /// The static configs by Kafka's broker config names (topic defaults
    /// under their broker synonym: `retention.ms` as `log.retention.ms`).
    pub fn static_configs(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = [
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            ("log.dirs", self.log_dir.display().to_string()),
            (
                "advertised.listeners",
                self.advertised_listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                AUTO_CREATE_TOPICS_ENABLE,
                self.auto_create_topics_enable.to_string(),
            ),
            (NUM_PARTITIONS, self.num_partitions.to_string()),
            (
                DEFAULT_REPLICATION_FACTOR,
                self.default_replication_factor.to_string(),
            ),
            (
                "log.retention.check.interval.ms",
                self.retention_check_interval.as_millis().to_string(),
            ),
            (
                "producer.id.expiration.ms",
                self.log_defaults.producer_id_expiration_ms.to_string(),
            ),
            (
                "producer.id.expiration.check.interval.ms",
                self.producer_id_expiration_check_interval
                    .as_millis()
                    .to_string(),
            ),
            (
                "offsets.topic.num.partitions",
                self.groups.offsets_topic_num_partitions.to_string(),
            ),
            (
                "offsets.topic.replication.factor",
                self.groups.offsets_topic_replication_factor.to_string(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transactions.num_partitions.to_string(),
            ),
            (
                "transaction.state.log.replication.factor",
                self.transactions.replication_factor.to_string(),
            ),
            (
                "transaction.state.log.min.isr",
                self.transactions.min_isr.to_string(),
            ),
            (
                "transaction.state.log.segment.bytes",
                self.transactions.segment_bytes.to_string(),
            ),
            ("log.cleaner.enable", self.log_cleaner.enable.to_string()),
            (
                LOG_CLEANER_BACKOFF_MS,
                self.log_cleaner.backoff.as_millis().to_string(),
            ),
            (
                LOG_CLEANER_DEDUPE_BUFFER_SIZE,
                self.log_cleaner.dedupe_buffer_size.to_string(),
            ),
            (
                LOG_CLEANER_IO_BUFFER_SIZE,
                self.log_cleaner.io_buffer_size.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(rack) = &self.rack {
            out.insert("broker.rack".into(), rack.clone());
        }
        let topic_level = self
            .log_defaults
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain(self.topic_defaults.clone())
            .chain([(
                MIN_INSYNC_REPLICAS.to_owned(),
                self.min_insync_replicas.to_string(),
            )]);
        for (topic_name, value) in topic_level {
            if let Some(synonym) = fjord_config::topic_config(&topic_name).and_then(|d| d.synonym) {
                out.insert(synonym.to_owned(), value);
            }
        }
        out
    }

    /// The dynamic layers of this broker in `dynamic`.
    pub fn dynamic_layers<'a>(&self, dynamic: &'a DynamicBrokerConfigs) -> ConfigLayers<'a> {
        ConfigLayers {
            topic: None,
            per_broker: dynamic.broker(self.node_id),
            cluster_default: Some(&dynamic.cluster_default),
            static_configs: None,
        }
    }

    /// This config with the dynamic broker configs of `dynamic` applied:
    /// the log defaults (`log.retention.ms`...), `min.insync.replicas`,
    /// `auto.create.topics.enable`, `num.partitions`,
    /// `default.replication.factor` and the cleaner's tunables. A value that
    /// does not parse (validated before it was committed, so only if rules
    /// tightened since) is logged and skipped, keeping the static value.
    pub fn with_dynamic(&self, dynamic: &DynamicBrokerConfigs) -> BrokerConfig {
        let mut c = self.clone();
        if dynamic.is_empty() {
            return c;
        }
        let layers = self.dynamic_layers(dynamic);
        for (name, value) in dynamic_topic_defaults(&layers) {
            let single = BTreeMap::from([(name.clone(), value)]);
            match c.log_defaults.with_overrides(&single) {
                Ok(log) => c.log_defaults = log,
                Err(err) => {
                    tracing::error!(%name, %err, "invalid dynamic broker config; keeping the static value")
                }
            }
        }
        if let Some(v) = parsed::<i32>(&layers, MIN_INSYNC_REPLICAS) {
            c.min_insync_replicas = v.max(1);
        }
        if let Some(v) = parsed::<bool>(&layers, AUTO_CREATE_TOPICS_ENABLE) {
            c.auto_create_topics_enable = v;
        }
        if let Some(v) = parsed::<i32>(&layers, NUM_PARTITIONS) {
            c.num_partitions = v.max(1);
        }
        if let Some(v) = parsed::<i16>(&layers, DEFAULT_REPLICATION_FACTOR) {
            c.default_replication_factor = v.max(1);
        }
        c.log_cleaner = c.log_cleaner.with_dynamic(&layers);
        c
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynamic_configs_override_static_per_broker_first() {
        let mut config = BrokerConfig::new(2, "/tmp/x".into(), "h".into(), 9092);
        config.log_defaults.retention_ms = 5_000;
        let dynamic = DynamicBrokerConfigs {
            cluster_default: map(&[
                ("log.retention.ms", "1000"),
                ("log.segment.bytes", "2048"),
                ("num.partitions", "3"),
                ("min.insync.replicas", "2"),
            ]),
            brokers: [
                (2, map(&[("log.retention.ms", "2000")])),
                (3, map(&[("log.segment.bytes", "4096")])),
            ]
            .into(),
        };
        let effective = config.with_dynamic(&dynamic);
        assert_eq!(effective.log_defaults.retention_ms, 2000);
        assert_eq!(effective.log_defaults.segment_bytes, 2048);
        assert_eq!(effective.num_partitions, 3);
        assert_eq!(effective.min_insync_replicas, 2);
        assert!(effective.auto_create_topics_enable);
        // No dynamic configs: the static config as is.
        let unchanged = config.with_dynamic(&DynamicBrokerConfigs::default());
        assert_eq!(unchanged.log_defaults, config.log_defaults);
    }

    #[test]
    fn cleaner_configs_are_described_static_and_applied_dynamic() {
        let mut config = BrokerConfig::new(1, "/tmp/x".into(), "h".into(), 9092);
        config.log_cleaner.backoff = Duration::from_millis(200);
        config.log_cleaner.enable = false;
        let statics = config.static_configs();
        assert_eq!(statics["log.cleaner.backoff.ms"], "200");
        assert_eq!(statics["log.cleaner.enable"], "false");
        assert_eq!(statics["log.cleaner.dedupe.buffer.size"], "134217728");
        // Every one described static is in the registry and applied.
        for name in [
            "log.cleaner.enable",
            "log.cleaner.backoff.ms",
            "log.cleaner.dedupe.buffer.size",
            "log.cleaner.io.buffer.size",
        ] {
            assert!(fjord_config::broker_config(name).unwrap().applied, "{name}");
        }
        // The cluster default over static; this broker's own value over both;
        // values below the floors are clamped as the static ones are.
        let dynamic = DynamicBrokerConfigs {
            cluster_default: map(&[
                ("log.cleaner.backoff.ms", "0"),
                ("log.cleaner.dedupe.buffer.size", "4194304"),
                ("log.cleaner.io.buffer.size", "100"),
            ]),
            brokers: [(1, map(&[("log.cleaner.dedupe.buffer.size", "-1")]))].into(),
        };
        let cleaner = config
            .log_cleaner
            .with_dynamic(&config.dynamic_layers(&dynamic));
        assert_eq!(cleaner.backoff, Duration::from_millis(1));
        assert_eq!(cleaner.dedupe_buffer_size, 1024 * 1024);
        assert_eq!(cleaner.io_buffer_size, 4096);
        assert!(!cleaner.enable, "read-only: never dynamic");
        assert_eq!(config.with_dynamic(&dynamic).log_cleaner, cleaner);
        let other_broker = BrokerConfig::new(2, "/tmp/x".into(), "h".into(), 9092);
        let cleaner = other_broker
            .log_cleaner
            .with_dynamic(&other_broker.dynamic_layers(&dynamic));
        assert_eq!(cleaner.dedupe_buffer_size, 4 * 1024 * 1024);
    }

    #[test]
    fn static_configs_use_broker_names() {
        let mut config = BrokerConfig::new(7, "/data/logs".into(), "h".into(), 9092);
        config.log_defaults.retention_ms = 60_000;
        config.topic_defaults = map(&[("compression.type", "lz4")]);
        let statics = config.static_configs();
        assert_eq!(statics["node.id"], "7");
        assert_eq!(statics["log.dirs"], "/data/logs");
        assert_eq!(statics["log.retention.ms"], "60000");
        assert_eq!(statics["compression.type"], "lz4");
        assert_eq!(statics["log.cleanup.policy"], "delete");
        assert!(!statics.contains_key("retention.ms"));
    }
}
