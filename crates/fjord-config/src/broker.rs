//! The broker configs Fjord has. Each topic config's broker synonym
//! (`log.retention.ms` for `retention.ms`) is a broker config too: it is
//! derived from the topic entry (same type, default, validator), so the two
//! cannot drift apart.
//!
//! Update modes follow Kafka's, with one departure: `auto.create.topics.enable`,
//! `num.partitions` and `default.replication.factor` are read-only in Kafka
//! and cluster-wide here (cheap to apply, and handy).

use crate::def::{ConfigDef, ConfigType, UpdateMode, Validator};
use crate::topic::TOPIC_CONFIGS;

const fn broker(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    validator: Validator,
    update_mode: UpdateMode,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        validator,
        doc,
        synonym: None,
        update_mode,
        sensitive: false,
        applied: true,
    }
}

/// A Kafka broker config Fjord accepts and stores but does not act on
/// (thread pools, throttles, SASL): tools that set them keep working.
const fn stored(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    validator: Validator,
    update_mode: UpdateMode,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        applied: false,
        ..broker(name, config_type, default, validator, update_mode, doc)
    }
}

const fn positive() -> Validator {
    Validator::Range {
        min: 1,
        max: i32::MAX as i64,
    }
}

use ConfigType::Double;
use ConfigType::{Boolean, Int, List, Long, Short, String as Str};
use UpdateMode::{ClusterWide, PerBroker, ReadOnly};

const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

/// Broker configs that are not a topic config's synonym, sorted by name.
/// `min.insync.replicas` and `unclean.leader.election.enable` are both a
/// topic config and (same name) its synonym, so they come from the topic table.
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    broker(
        "advertised.listeners",
        List,
        "",
        Validator::Any,
        ReadOnly,
        "The listeners (NAME://host:port) clients are told to connect to.",
    ),
    broker(
        "auto.create.topics.enable",
        Boolean,
        "true",
        Validator::Any,
        ClusterWide,
        "Create a topic on first use by Metadata or Produce (dynamic in Fjord, read-only in Kafka).",
    ),
    stored(
        "background.threads",
        Int,
        "10",
        positive(),
        ClusterWide,
        "Threads for background work (stored, not applied: Fjord sizes its tokio runtime itself).",
    ),
    broker(
        "broker.id",
        Int,
        "-1",
        Validator::Any,
        ReadOnly,
        "The broker's id; the same as node.id.",
    ),
    broker(
        "broker.rack",
        Str,
        "",
        Validator::Any,
        ReadOnly,
        "The broker's rack, for rack-aware replica placement.",
    ),
    broker(
        "default.replication.factor",
        Short,
        "1",
        Validator::Range {
            min: 1,
            max: i16::MAX as i64,
        },
        ClusterWide,
        "Replication factor of auto-created topics and of CreateTopics without one (dynamic in Fjord, read-only in Kafka).",
    ),
    stored(
        "follower.replication.throttled.rate",
        Long,
        LONG_MAX,
        Validator::Range {
            min: 0,
            max: i64::MAX,
        },
        PerBroker,
        "Bytes per second for throttled follower replication (stored, not applied).",
    ),
    stored(
        "leader.replication.throttled.rate",
        Long,
        LONG_MAX,
        Validator::Range {
            min: 0,
            max: i64::MAX,
        },
        PerBroker,
        "Bytes per second for throttled leader replication (stored, not applied).",
    ),
    broker(
        "log.cleaner.backoff.ms",
        Long,
        "15000",
        Validator::Range {
            min: 0,
            max: i64::MAX,
        },
        ClusterWide,
        "How long the log cleaner sleeps when no log needs cleaning (read before each pass; 0 counts as 1).",
    ),
    broker(
        "log.cleaner.dedupe.buffer.size",
        Long,
        "134217728",
        Validator::Any,
        ClusterWide,
        "Memory for the log cleaner's key deduplication, across its threads (read before each pass; at least 1 MiB).",
    ),
    broker(
        "log.cleaner.enable",
        Boolean,
        "true",
        Validator::Any,
        ReadOnly,
        "Run the log cleaner, compacting logs with cleanup.policy=compact.",
    ),
    broker(
        "log.cleaner.io.buffer.size",
        Int,
        "524288",
        Validator::Range {
            min: 0,
            max: i32::MAX as i64,
        },
        ClusterWide,
        "Write buffer of a cleaned segment (read before each pass; at least 4 KiB).",
    ),
    stored(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        "1.7976931348623157E308",
        Validator::Any,
        ClusterWide,
        "I/O throttle of the log cleaner (read plus write; stored, not applied: Fjord's cleaner is not throttled).",
    ),
    stored(
        "log.cleaner.threads",
        Int,
        "1",
        Validator::Range {
            min: 0,
            max: i32::MAX as i64,
        },
        ClusterWide,
        "Threads cleaning compacted logs (stored, not applied: Fjord's cleaner has one thread).",
    ),
    broker(
        "log.dirs",
        List,
        "",
        Validator::Any,
        ReadOnly,
        "Where the partition logs live.",
    ),
    broker(
        "log.retention.check.interval.ms",
        Long,
        "300000",
        Validator::Range {
            min: 1,
            max: i64::MAX,
        },
        ReadOnly,
        "How often logs are checked for segments to delete by retention.",
    ),
    stored(
        "max.connections",
        Int,
        INT_MAX,
        Validator::Range {
            min: 0,
            max: i32::MAX as i64,
        },
        ClusterWide,
        "Most client connections a broker accepts (stored, not applied: Fjord's limit is its static max_connections).",
    ),
    stored(
        "max.connections.per.ip",
        Int,
        INT_MAX,
        Validator::Range {
            min: 0,
            max: i32::MAX as i64,
        },
        ClusterWide,
        "Most connections from one IP address (stored, not applied).",
    ),
    broker(
        "node.id",
        Int,
        "-1",
        Validator::Any,
        ReadOnly,
        "The node's id, naming it as broker and controller voter.",
    ),
    stored(
        "num.io.threads",
        Int,
        "8",
        positive(),
        ClusterWide,
        "Request handler threads (stored, not applied: Fjord sizes its tokio runtime itself).",
    ),
    stored(
        "num.network.threads",
        Int,
        "3",
        positive(),
        ClusterWide,
        "Network threads (stored, not applied).",
    ),
    broker(
        "num.partitions",
        Int,
        "1",
        positive(),
        ClusterWide,
        "Partitions of auto-created topics and of CreateTopics without a count (dynamic in Fjord, read-only in Kafka).",
    ),
    stored(
        "num.replica.fetchers",
        Int,
        "1",
        positive(),
        ClusterWide,
        "Fetcher threads per source broker (stored, not applied).",
    ),
    broker(
        "offsets.topic.num.partitions",
        Int,
        "50",
        positive(),
        ReadOnly,
        "Partitions of __consumer_offsets (fixed once it exists).",
    ),
    broker(
        "offsets.topic.replication.factor",
        Short,
        "3",
        Validator::Range {
            min: 1,
            max: i16::MAX as i64,
        },
        ReadOnly,
        "Replication factor of __consumer_offsets.",
    ),
    broker(
        "producer.id.expiration.check.interval.ms",
        Int,
        "600000",
        positive(),
        ReadOnly,
        "How often idle producer ids are looked for.",
    ),
    broker(
        "producer.id.expiration.ms",
        Int,
        "86400000",
        positive(),
        ReadOnly,
        "A producer id idle this long is forgotten (cluster-wide in Kafka, read-only in Fjord).",
    ),
    stored(
        "sasl.kerberos.min.time.before.relogin",
        Long,
        "60000",
        Validator::Any,
        PerBroker,
        "Kerberos login thread sleep between refresh attempts (stored, not applied: Fjord has no SASL).",
    ),
    broker(
        "transaction.state.log.min.isr",
        Int,
        "2",
        positive(),
        ReadOnly,
        "min.insync.replicas of __transaction_state.",
    ),
    broker(
        "transaction.state.log.num.partitions",
        Int,
        "50",
        positive(),
        ReadOnly,
        "Partitions of __transaction_state.",
    ),
    broker(
        "transaction.state.log.replication.factor",
        Short,
        "3",
        Validator::Range {
            min: 1,
            max: i16::MAX as i64,
        },
        ReadOnly,
        "Replication factor of __transaction_state.",
    ),
    broker(
        "transaction.state.log.segment.bytes",
        Int,
        "104857600",
        positive(),
        ReadOnly,
        "segment.bytes of __transaction_state.",
    ),
];

/// The broker config called `name`: one of [`BROKER_CONFIGS`], or a topic
/// config's synonym (its `synonym` then names the topic config).
pub fn broker_config(name: &str) -> Option<ConfigDef> {
    BROKER_CONFIGS
        .iter()
        .find(|c| c.name == name)
        .copied()
        .or_else(|| {
            TOPIC_CONFIGS
                .iter()
                .find(|t| t.synonym == Some(name))
                .map(|t| ConfigDef {
                    name: t.synonym.unwrap_or(t.name),
                    synonym: Some(t.name),
                    update_mode: UpdateMode::ClusterWide,
                    ..*t
                })
        })
}

/// Every broker config, sorted by name.
pub fn all_broker_configs() -> Vec<ConfigDef> {
    let mut all: Vec<ConfigDef> = BROKER_CONFIGS.to_vec();
    all.extend(
        TOPIC_CONFIGS
            .iter()
            .filter_map(|t| t.synonym)
            .filter_map(broker_config),
    );
    all.sort_by_key(|c| c.name);
    all
}

/// The topic config a broker config is the synonym of (`retention.ms` for
/// `log.retention.ms`).
pub fn topic_config_of(broker_name: &str) -> Option<&'static str> {
    TOPIC_CONFIGS
        .iter()
        .find(|t| t.synonym == Some(broker_name))
        .map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_defaults_valid_and_synonyms_resolve() {
        let all = all_broker_configs();
        for pair in all.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} twice or unsorted",
                pair[0].name
            );
        }
        for c in &all {
            assert_eq!(c.validate(c.default), Ok(()), "{}", c.name);
        }
        let retention = broker_config("log.retention.ms").expect("synonym");
        assert_eq!(retention.synonym, Some("retention.ms"));
        assert_eq!(retention.default, "604800000");
        assert_eq!(retention.update_mode, UpdateMode::ClusterWide);
        assert_eq!(
            topic_config_of("log.cleanup.policy"),
            Some("cleanup.policy")
        );
        assert_eq!(
            topic_config_of("min.insync.replicas"),
            Some("min.insync.replicas")
        );
        assert_eq!(
            broker_config("node.id").unwrap().update_mode,
            UpdateMode::ReadOnly
        );
        assert!(broker_config("retention.ms").is_none());
    }
}
