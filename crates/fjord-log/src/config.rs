//! Topic-level log configs, named and defaulted as in Kafka.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;
use crate::file_cache::FileCache;

/// `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// The leader stamps each batch with its append time (`maxTimestamp`).
    LogAppendTime,
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

/// `compression.type`: the codec batches are stored with. `Producer` keeps
/// each batch as the client sent it; any other value recompresses batches
/// whose codec differs on the leader's append (`crate::recompress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CompressionType {
    #[default]
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    const NAMES: [(&'static str, CompressionType); 6] = [
        ("producer", CompressionType::Producer),
        ("uncompressed", CompressionType::Uncompressed),
        ("gzip", CompressionType::Gzip),
        ("snappy", CompressionType::Snappy),
        ("lz4", CompressionType::Lz4),
        ("zstd", CompressionType::Zstd),
    ];

    /// The v2 attributes codec id (bits 0-2), `None` for `producer`.
    pub fn codec(self) -> Option<i16> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(0),
            CompressionType::Gzip => Some(1),
            CompressionType::Snappy => Some(2),
            CompressionType::Lz4 => Some(3),
            CompressionType::Zstd => Some(4),
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::NAMES
            .iter()
            .find(|(_, c)| c == self)
            .map_or("producer", |(n, _)| n);
        f.write_str(name)
    }
}

/// `cleanup.policy`. With `compact` the broker's cleaner compacts the log
/// (see the `cleaner` module); retention (time and size) only runs when the
/// policy includes `delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    /// `compact,delete` (either order).
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether time/size retention deletes segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the cleaner compacts the log.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

/// `min.cleanable.dirty.ratio`: a fraction in [0, 1] (never NaN, hence `Eq`).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct DirtyRatio(f64);

impl Eq for DirtyRatio {}

impl DirtyRatio {
    /// `None` outside [0, 1] (NaN included).
    pub fn new(ratio: f64) -> Option<DirtyRatio> {
        (0.0..=1.0).contains(&ratio).then_some(DirtyRatio(ratio))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for DirtyRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The log's share of a topic's configs. Field docs name the Kafka config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this. Default 1 GiB.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is this old. Default 7 days.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose largest timestamp is older. -1 = unlimited. Default 7 days.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is bigger. -1 = unlimited (default).
    pub retention_bytes: i64,
    /// `flush.messages`: flush after this many unflushed records. Default never.
    pub flush_messages: i64,
    /// `flush.ms`: flush when the last flush is this old. Default never.
    pub flush_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two offset-index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: maximum index file size; the segment rolls when full. Default 10 MiB.
    pub segment_index_bytes: u32,
    /// `max.message.bytes`: largest accepted batch. Default 1048588.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`. Default CreateTime.
    pub message_timestamp_type: TimestampType,
    /// `cleanup.policy`. Default delete.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone (and, in Kafka, a
    /// transaction marker) stays after its segment was first cleaned. Default 1 day.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when dirty bytes / cleanable bytes
    /// reach this. Default 0.5.
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// `min.compaction.lag.ms`: records younger than this are not compacted. Default 0.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this forces a
    /// clean whatever the dirty ratio. Default `i64::MAX`.
    pub max_compaction_lag_ms: i64,
    /// `producer.id.expiration.ms`: a producer that has not written for this
    /// long is forgotten (removed by the broker's periodic check, left out of
    /// producer state snapshots). Default 1 day. A broker config in Kafka, not
    /// a topic config: the broker copies it into every log's config, and it is
    /// neither parsed by [`LogConfig::with_overrides`] nor listed by
    /// [`LogConfig::entries`].
    pub producer_id_expiration_ms: i64,
    /// `compression.type`. Default producer.
    pub compression_type: CompressionType,
    /// `compression.gzip.level`: -1 (the codec's default) or 1-9. Default -1.
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`: 1-17. Default 9.
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`: -131072 to 22. Default 3.
    pub compression_zstd_level: i32,
    /// `message.timestamp.before.max.ms`: a CreateTime record may be at most
    /// this much older than the broker's clock. Default unlimited.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: a CreateTime record may be at most
    /// this much ahead of the broker's clock. Default 1 hour (Kafka 4.x).
    pub message_timestamp_after_max_ms: i64,
    /// The node's bound on open segment files, shared by every log the
    /// broker opens with configs derived from its defaults (not a Kafka
    /// config: the broker's `log_open_files_max`). Default: no bound.
    pub open_files: FileCache,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: DirtyRatio(0.5),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            producer_id_expiration_ms: 86_400_000,
            compression_type: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            open_files: FileCache::unbounded(),
        }
    }
}

pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const FLUSH_MESSAGES: &str = "flush.messages";
pub const FLUSH_MS: &str = "flush.ms";
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub const SEGMENT_INDEX_BYTES: &str = "segment.index.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const COMPRESSION_GZIP_LEVEL: &str = "compression.gzip.level";
pub const COMPRESSION_LZ4_LEVEL: &str = "compression.lz4.level";
pub const COMPRESSION_ZSTD_LEVEL: &str = "compression.zstd.level";
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";

const KNOWN: [&str; 21] = [
    SEGMENT_BYTES,
    SEGMENT_MS,
    RETENTION_MS,
    RETENTION_BYTES,
    FLUSH_MESSAGES,
    FLUSH_MS,
    INDEX_INTERVAL_BYTES,
    SEGMENT_INDEX_BYTES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_TYPE,
    CLEANUP_POLICY,
    DELETE_RETENTION_MS,
    MIN_CLEANABLE_DIRTY_RATIO,
    MIN_COMPACTION_LAG_MS,
    MAX_COMPACTION_LAG_MS,
    COMPRESSION_TYPE,
    COMPRESSION_GZIP_LEVEL,
    COMPRESSION_LZ4_LEVEL,
    COMPRESSION_ZSTD_LEVEL,
    MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
    MESSAGE_TIMESTAMP_AFTER_MAX_MS,
];

fn parse_int<T: FromStr + PartialOrd + Copy>(
    name: &'static str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::InvalidValue {
            name,
            value: value.to_owned(),
            reason: "not an integer in range",
        })?;
    if v < min || v > max {
        return Err(ConfigError::InvalidValue {
            name,
            value: value.to_owned(),
            reason: "out of the allowed range",
        });
    }
    Ok(v)
}

impl LogConfig {
    /// Overlay topic-level configs (Kafka names, string values) on these defaults.
    ///
    /// Names this crate does not own (e.g. `min.insync.replicas`) are ignored, so
    /// the broker can pass a topic's whole config map; the broker rejects names
    /// nobody knows. Ranges follow Kafka's validators, except that `segment.bytes`
    /// is capped at `i32::MAX` (segment positions are u32 in the index, as in Kafka).
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        let mut c = self.clone();
        for (name, value) in overrides {
            match name.as_str() {
                SEGMENT_BYTES => {
                    c.segment_bytes = parse_int(SEGMENT_BYTES, value, 14, i32::MAX as u64)?
                }
                SEGMENT_MS => c.segment_ms = parse_int(SEGMENT_MS, value, 1, i64::MAX)?,
                RETENTION_MS => c.retention_ms = parse_int(RETENTION_MS, value, -1, i64::MAX)?,
                RETENTION_BYTES => {
                    c.retention_bytes = parse_int(RETENTION_BYTES, value, i64::MIN, i64::MAX)?
                }
                FLUSH_MESSAGES => c.flush_messages = parse_int(FLUSH_MESSAGES, value, 1, i64::MAX)?,
                FLUSH_MS => c.flush_ms = parse_int(FLUSH_MS, value, 0, i64::MAX)?,
                INDEX_INTERVAL_BYTES => {
                    c.index_interval_bytes =
                        parse_int(INDEX_INTERVAL_BYTES, value, 0, i32::MAX as u32)?
                }
                SEGMENT_INDEX_BYTES => {
                    c.segment_index_bytes =
                        parse_int(SEGMENT_INDEX_BYTES, value, 4, i32::MAX as u32)?
                }
                MAX_MESSAGE_BYTES => {
                    c.max_message_bytes = parse_int(MAX_MESSAGE_BYTES, value, 0, i32::MAX as u32)?
                }
                MESSAGE_TIMESTAMP_TYPE => {
                    c.message_timestamp_type = match value.trim() {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => {
                            return Err(ConfigError::InvalidValue {
                                name: MESSAGE_TIMESTAMP_TYPE,
                                value: value.clone(),
                                reason: "expected CreateTime or LogAppendTime",
                            });
                        }
                    }
                }
                CLEANUP_POLICY => c.cleanup_policy = parse_cleanup_policy(value)?,
                DELETE_RETENTION_MS => {
                    c.delete_retention_ms = parse_int(DELETE_RETENTION_MS, value, 0, i64::MAX)?
                }
                MIN_CLEANABLE_DIRTY_RATIO => {
                    c.min_cleanable_dirty_ratio = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(DirtyRatio::new)
                        .ok_or_else(|| ConfigError::InvalidValue {
                            name: MIN_CLEANABLE_DIRTY_RATIO,
                            value: value.clone(),
                            reason: "expected a number in [0, 1]",
                        })?
                }
                MIN_COMPACTION_LAG_MS => {
                    c.min_compaction_lag_ms = parse_int(MIN_COMPACTION_LAG_MS, value, 0, i64::MAX)?
                }
                MAX_COMPACTION_LAG_MS => {
                    c.max_compaction_lag_ms = parse_int(MAX_COMPACTION_LAG_MS, value, 1, i64::MAX)?
                }
                COMPRESSION_TYPE => c.compression_type = parse_compression_type(value)?,
                COMPRESSION_GZIP_LEVEL => {
                    c.compression_gzip_level = parse_int(COMPRESSION_GZIP_LEVEL, value, -1, 9)?;
                    if c.compression_gzip_level == 0 {
                        return Err(ConfigError::InvalidValue {
                            name: COMPRESSION_GZIP_LEVEL,
                            value: value.clone(),
                            reason: "expected -1 or 1 to 9",
                        });
                    }
                }
                COMPRESSION_LZ4_LEVEL => {
                    c.compression_lz4_level = parse_int(COMPRESSION_LZ4_LEVEL, value, 1, 17)?
                }
                COMPRESSION_ZSTD_LEVEL => {
                    c.compression_zstd_level =
                        parse_int(COMPRESSION_ZSTD_LEVEL, value, -131_072, 22)?
                }
                MESSAGE_TIMESTAMP_BEFORE_MAX_MS => {
                    c.message_timestamp_before_max_ms =
                        parse_int(MESSAGE_TIMESTAMP_BEFORE_MAX_MS, value, 0, i64::MAX)?
                }
                MESSAGE_TIMESTAMP_AFTER_MAX_MS => {
                    c.message_timestamp_after_max_ms =
                        parse_int(MESSAGE_TIMESTAMP_AFTER_MAX_MS, value, 0, i64::MAX)?
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Every topic config this crate knows: (Kafka name, value as string). For DescribeConfigs.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            (SEGMENT_BYTES, self.segment_bytes.to_string()),
            (SEGMENT_MS, self.segment_ms.to_string()),
            (RETENTION_MS, self.retention_ms.to_string()),
            (RETENTION_BYTES, self.retention_bytes.to_string()),
            (FLUSH_MESSAGES, self.flush_messages.to_string()),
            (FLUSH_MS, self.flush_ms.to_string()),
            (INDEX_INTERVAL_BYTES, self.index_interval_bytes.to_string()),
            (SEGMENT_INDEX_BYTES, self.segment_index_bytes.to_string()),
            (MAX_MESSAGE_BYTES, self.max_message_bytes.to_string()),
            (
                MESSAGE_TIMESTAMP_TYPE,
                self.message_timestamp_type.to_string(),
            ),
            (CLEANUP_POLICY, self.cleanup_policy.to_string()),
            (DELETE_RETENTION_MS, self.delete_retention_ms.to_string()),
            (
                MIN_CLEANABLE_DIRTY_RATIO,
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                MIN_COMPACTION_LAG_MS,
                self.min_compaction_lag_ms.to_string(),
            ),
            (
                MAX_COMPACTION_LAG_MS,
                self.max_compaction_lag_ms.to_string(),
            ),
            (COMPRESSION_TYPE, self.compression_type.to_string()),
            (
                COMPRESSION_GZIP_LEVEL,
                self.compression_gzip_level.to_string(),
            ),
            (
                COMPRESSION_LZ4_LEVEL,
                self.compression_lz4_level.to_string(),
            ),
            (
                COMPRESSION_ZSTD_LEVEL,
                self.compression_zstd_level.to_string(),
            ),
            (
                MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
                self.message_timestamp_before_max_ms.to_string(),
            ),
            (
                MESSAGE_TIMESTAMP_AFTER_MAX_MS,
                self.message_timestamp_after_max_ms.to_string(),
            ),
        ]
    }

    /// Whether `name` is a topic config owned by the log (the broker adds its own).
    pub fn is_known(name: &str) -> bool {
        KNOWN.contains(&name)
    }

    /// Maximum entries of an offset index (8 bytes each).
    pub(crate) fn max_offset_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }

    /// Maximum entries of a time index (12 bytes each).
    pub(crate) fn max_time_index_entries(&self) -> usize {
        (self.segment_index_bytes / 12).max(1) as usize
    }
}

fn parse_compression_type(value: &str) -> Result<CompressionType, ConfigError> {
    let wanted = value.trim().to_ascii_lowercase();
    CompressionType::NAMES
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|&(_, c)| c)
        .ok_or_else(|| ConfigError::InvalidValue {
            name: COMPRESSION_TYPE,
            value: value.to_owned(),
            reason: "expected one of uncompressed, zstd, lz4, snappy, gzip, producer",
        })
}

fn parse_cleanup_policy(value: &str) -> Result<CleanupPolicy, ConfigError> {
    let (mut delete, mut compact) = (false, false);
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(ConfigError::InvalidValue {
                    name: CLEANUP_POLICY,
                    value: value.to_owned(),
                    reason: "expected a list of delete, compact",
                });
            }
        }
    }
    match (delete, compact) {
        (true, false) => Ok(CleanupPolicy::Delete),
        (false, true) => Ok(CleanupPolicy::Compact),
        (true, true) => Ok(CleanupPolicy::CompactDelete),
        (false, false) => Err(ConfigError::InvalidValue {
            name: CLEANUP_POLICY,
            value: value.to_owned(),
            reason: "empty policy",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.min_cleanable_dirty_ratio.get(), 0.5);
        assert_eq!(c.min_compaction_lag_ms, 0);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
        assert_eq!(c.entries().len(), KNOWN.len());
        for (name, _) in c.entries() {
            assert!(LogConfig::is_known(name));
        }
        assert!(!LogConfig::is_known("min.insync.replicas"));
    }

    #[test]
    fn overrides_apply_and_round_trip_through_entries() {
        let c = LogConfig::default()
            .with_overrides(&map(&[
                ("segment.bytes", "1048576"),
                ("retention.ms", "-1"),
                ("message.timestamp.type", "LogAppendTime"),
                ("cleanup.policy", "delete,compact"),
                ("delete.retention.ms", "1000"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "5"),
                ("max.compaction.lag.ms", "60000"),
                ("min.insync.replicas", "2"),
                ("compression.type", "LZ4"),
                ("compression.zstd.level", "-5"),
                ("message.timestamp.after.max.ms", "60000"),
            ]))
            .expect("valid");
        assert_eq!(c.segment_bytes, 1_048_576);
        assert_eq!(c.retention_ms, -1);
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(c.delete_retention_ms, 1000);
        assert_eq!(c.min_cleanable_dirty_ratio.get(), 0.01);
        assert_eq!(c.min_compaction_lag_ms, 5);
        assert_eq!(c.max_compaction_lag_ms, 60_000);
        assert_eq!(c.compression_type, CompressionType::Lz4);
        assert_eq!(c.compression_zstd_level, -5);
        assert_eq!(c.message_timestamp_after_max_ms, 60_000);
        let again: BTreeMap<String, String> = c
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(LogConfig::default().with_overrides(&again), Ok(c));
    }

    #[test]
    fn bad_values_are_rejected() {
        for (k, v) in [
            ("segment.bytes", "10"),
            ("segment.bytes", "abc"),
            ("retention.ms", "-2"),
            ("flush.messages", "0"),
            ("message.timestamp.type", "Now"),
            ("cleanup.policy", "shred"),
            ("delete.retention.ms", "-1"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("compression.type", "brotli"),
            ("compression.gzip.level", "0"),
            ("compression.lz4.level", "18"),
            ("message.timestamp.before.max.ms", "-1"),
        ] {
            assert!(
                LogConfig::default()
                    .with_overrides(&map(&[(k, v)]))
                    .is_err(),
                "{k}={v}"
            );
        }
    }
}
