//! Every topic config of Kafka 4.x's `TopicConfig`, by name.
//!
//! Kafka 4.0 removed `message.format.version`,
//! `message.downconversion.enable` and `message.timestamp.difference.max.ms`
//! (KIP-724, KIP-937); they are unknown here too.

use crate::def::{ConfigDef, ConfigType, UpdateMode, Validator};

const LONG_MAX: &str = "9223372036854775807";

const fn at_least(min: i64) -> Validator {
    Validator::Range { min, max: i64::MAX }
}

const fn int_at_least(min: i64) -> Validator {
    Validator::Range {
        min,
        max: i32::MAX as i64,
    }
}

/// A topic config row; `applied` says whether Fjord acts on it.
const fn topic(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    validator: Validator,
    synonym: Option<&'static str>,
    applied: bool,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        validator,
        doc,
        synonym,
        update_mode: UpdateMode::ClusterWide,
        sensitive: false,
        applied,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

/// Sorted by name (DescribeConfigs lists them in this order).
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    topic(
        "cleanup.policy",
        List,
        "delete",
        Validator::ListOf(&["compact", "delete"]),
        Some("log.cleanup.policy"),
        true,
        "delete: old segments are removed by retention time or size; compact: the log keeps the latest record per key.",
    ),
    topic(
        "compression.gzip.level",
        Int,
        "-1",
        Validator::Range { min: -1, max: 9 },
        Some("compression.gzip.level"),
        true,
        "The gzip level used when compression.type is gzip.",
    ),
    topic(
        "compression.lz4.level",
        Int,
        "9",
        Validator::Range { min: 1, max: 17 },
        Some("compression.lz4.level"),
        true,
        "The lz4 level used when compression.type is lz4.",
    ),
    topic(
        "compression.type",
        Str,
        "producer",
        Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Some("compression.type"),
        true,
        "The compression of stored batches: a codec, uncompressed, or producer to keep what the producer sent.",
    ),
    topic(
        "compression.zstd.level",
        Int,
        "3",
        Validator::Range {
            min: -131_072,
            max: 22,
        },
        Some("compression.zstd.level"),
        true,
        "The zstd level used when compression.type is zstd.",
    ),
    topic(
        "delete.retention.ms",
        Long,
        "86400000",
        at_least(0),
        Some("log.cleaner.delete.retention.ms"),
        true,
        "How long tombstones of a compacted topic stay readable after compaction reached them.",
    ),
    topic(
        "file.delete.delay.ms",
        Long,
        "60000",
        at_least(0),
        Some("log.segment.delete.delay.ms"),
        false,
        "How long a deleted segment's files wait before they are removed from disk.",
    ),
    topic(
        "flush.messages",
        Long,
        LONG_MAX,
        at_least(1),
        Some("log.flush.interval.messages"),
        true,
        "Force an fsync after this many records; by default the OS flushes and replication gives durability.",
    ),
    topic(
        "flush.ms",
        Long,
        LONG_MAX,
        at_least(0),
        Some("log.flush.interval.ms"),
        true,
        "Force an fsync when the last one is this old (ms).",
    ),
    topic(
        "follower.replication.throttled.replicas",
        List,
        "",
        Validator::ThrottledReplicas,
        None,
        false,
        "Replicas (partition:broker, or *) whose follower fetches are throttled.",
    ),
    topic(
        "index.interval.bytes",
        Int,
        "4096",
        int_at_least(0),
        Some("log.index.interval.bytes"),
        true,
        "Bytes of batches between two offset index entries.",
    ),
    topic(
        "leader.replication.throttled.replicas",
        List,
        "",
        Validator::ThrottledReplicas,
        None,
        false,
        "Replicas (partition:broker, or *) whose leader-side replication is throttled.",
    ),
    topic(
        "local.retention.bytes",
        Long,
        "-2",
        at_least(-2),
        Some("log.local.retention.bytes"),
        false,
        "Tiered storage: local bytes kept per partition; -2 means retention.bytes.",
    ),
    topic(
        "local.retention.ms",
        Long,
        "-2",
        at_least(-2),
        Some("log.local.retention.ms"),
        false,
        "Tiered storage: how long segments stay local; -2 means retention.ms.",
    ),
    topic(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        at_least(1),
        Some("log.cleaner.max.compaction.lag.ms"),
        true,
        "The longest a record stays uncompacted in a compacted topic.",
    ),
    topic(
        "max.message.bytes",
        Int,
        "1048588",
        int_at_least(0),
        Some("message.max.bytes"),
        true,
        "The largest record batch the topic accepts.",
    ),
    topic(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        at_least(0),
        Some("log.message.timestamp.after.max.ms"),
        true,
        "With CreateTime: how far (ms) a batch timestamp may lie ahead of the broker's clock.",
    ),
    topic(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        at_least(0),
        Some("log.message.timestamp.before.max.ms"),
        true,
        "With CreateTime: how far (ms) a batch timestamp may lie behind the broker's clock.",
    ),
    topic(
        "message.timestamp.type",
        Str,
        "CreateTime",
        Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"),
        true,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
    ),
    topic(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Validator::DoubleRange { min: 0.0, max: 1.0 },
        Some("log.cleaner.min.cleanable.ratio"),
        true,
        "Compact a log when its uncompacted share is at least this ratio.",
    ),
    topic(
        "min.compaction.lag.ms",
        Long,
        "0",
        at_least(0),
        Some("log.cleaner.min.compaction.lag.ms"),
        true,
        "The shortest a record stays uncompacted in a compacted topic.",
    ),
    topic(
        "min.insync.replicas",
        Int,
        "1",
        int_at_least(1),
        Some("min.insync.replicas"),
        true,
        "With acks=all, a write fails with NOT_ENOUGH_REPLICAS unless at least this many replicas are in sync.",
    ),
    topic(
        "preallocate",
        Boolean,
        "false",
        Validator::Any,
        Some("log.preallocate"),
        false,
        "Preallocate a new segment's file on disk.",
    ),
    topic(
        "remote.log.copy.disable",
        Boolean,
        "false",
        Validator::Any,
        None,
        false,
        "Tiered storage: stop copying segments to remote storage.",
    ),
    topic(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        Validator::Any,
        None,
        false,
        "Tiered storage: delete remote data when remote storage is disabled for the topic.",
    ),
    topic(
        "remote.storage.enable",
        Boolean,
        "false",
        Validator::Any,
        None,
        false,
        "Tiered storage: keep old segments in remote storage (not supported by Fjord).",
    ),
    topic(
        "retention.bytes",
        Long,
        "-1",
        Validator::Any,
        Some("log.retention.bytes"),
        true,
        "With the delete policy: remove the oldest segments while a partition is larger than this; -1 means no limit.",
    ),
    topic(
        "retention.ms",
        Long,
        "604800000",
        at_least(-1),
        Some("log.retention.ms"),
        true,
        "With the delete policy: remove segments whose newest record is older than this (ms); -1 means no limit.",
    ),
    topic(
        "segment.bytes",
        Int,
        "1073741824",
        int_at_least(14),
        Some("log.segment.bytes"),
        true,
        "Roll to a new segment when the active one would grow past this size.",
    ),
    topic(
        "segment.index.bytes",
        Int,
        "10485760",
        int_at_least(4),
        Some("log.index.size.max.bytes"),
        true,
        "The largest offset index of a segment; a full index rolls the segment.",
    ),
    topic(
        "segment.jitter.ms",
        Long,
        "0",
        at_least(0),
        Some("log.roll.jitter.ms"),
        false,
        "The largest random amount subtracted from segment.ms, to spread segment rolls.",
    ),
    topic(
        "segment.ms",
        Long,
        "604800000",
        at_least(1),
        Some("log.roll.ms"),
        true,
        "Roll to a new segment when the active one's first record is this old (ms).",
    ),
    topic(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Validator::Any,
        Some("unclean.leader.election.enable"),
        true,
        "Let an out-of-sync replica become leader when no in-sync one is left, losing acknowledged records.",
    ),
];

/// The topic config called `name`.
pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_defaults_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for c in TOPIC_CONFIGS {
            assert_eq!(c.validate(c.default), Ok(()), "{}", c.name);
        }
        assert!(topic_config("message.format.version").is_none());
        assert!(topic_config("retention.ms").is_some());
    }
}
