//! The errors of the log layer. The gateway maps them to Kafka error codes.

use std::path::PathBuf;

/// An error from a partition log.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// A read or truncation asked for an offset outside `[log_start, log_end]`
    /// (Kafka `OFFSET_OUT_OF_RANGE`).
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A batch whose lengths or CRC32C do not check out (Kafka `CORRUPT_MESSAGE`).
    #[error("corrupt record batch at byte {position} of the input: {reason}")]
    CorruptRecord {
        /// Byte position of the batch inside the appended buffer.
        position: usize,
        reason: &'static str,
    },
    /// A batch that is not magic v2 (Kafka `UNSUPPORTED_FOR_MESSAGE_FORMAT`).
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic { magic: i8 },
    /// One batch exceeds `max.message.bytes` (Kafka `MESSAGE_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: u32 },
    /// The batches of one append do not fit in a segment (Kafka `RECORD_LIST_TOO_LARGE`).
    #[error("record set of {size} bytes exceeds segment.bytes {segment_bytes}")]
    RecordSetTooLarge { size: u64, segment_bytes: u64 },
    /// A batch that is well formed but not acceptable (Kafka `INVALID_RECORD`).
    #[error("invalid record batch: {reason}")]
    InvalidRecord { reason: &'static str },
    /// A batch whose timestamps are not acceptable (Kafka `INVALID_TIMESTAMP`).
    #[error("invalid timestamp: {reason}")]
    InvalidTimestamp { reason: &'static str },
    /// Follower append whose offsets are not after the log end / not increasing.
    #[error("non-monotonic offset {got}: expected at least {expected_at_least}")]
    NonMonotonicOffset { expected_at_least: i64, got: i64 },
    /// A batch's offsets do not fit in a segment's relative u32 offsets, or overflow i64.
    #[error("offset overflow at offset {offset}")]
    OffsetOverflow { offset: i64 },
    /// A segment below the recovery point (flushed, trusted) does not parse.
    /// Nothing is dropped automatically: a human must look.
    #[error("segment {path} is corrupt below the recovery point at byte {position}")]
    CorruptSegment { path: PathBuf, position: u64 },
    /// A checkpoint file that cannot be parsed.
    #[error("checkpoint {path} is malformed: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: &'static str },
    /// A producer state snapshot that does not decode (bad CRC, lengths or
    /// version). Never fatal: the loader skips it and uses an older snapshot
    /// or the log.
    #[error("producer state snapshot {path} is corrupt: {reason}")]
    CorruptProducerSnapshot { path: PathBuf, reason: &'static str },
    /// Decoding the records of one batch failed (cold paths only).
    #[error("cannot decode the records of the batch at offset {base_offset}")]
    RecordDecode {
        base_offset: i64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An I/O error on a log file: fatal for the log directory, unless it
    /// only says the filesystem is full ([`LogError::is_out_of_space`]).
    #[error("I/O error while {context} {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether an I/O error says the filesystem is out of space (ENOSPC) or the
/// writer's quota is used up (EDQUOT).
pub fn io_is_out_of_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl LogError {
    /// A write, create or rename that failed only because the filesystem
    /// is full. Such a failure leaves the log whole and usable: a failed
    /// segment append is cut back to the last whole batch, index files stay
    /// marked dirty and are rewritten later, and checkpoints are written to
    /// a temporary file and renamed, so the old one stays (a log start
    /// offset moved before its checkpoint failed is still bounded after a
    /// restart by the first segment left); the operation can be retried
    /// once space is freed. An fsync
    /// failing with ENOSPC is not one: the kernel may already have dropped
    /// dirty pages of acknowledged data, so it stays fatal.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            LogError::Io {
                context, source, ..
            } => !context.starts_with("syncing") && io_is_out_of_space(source),
            _ => false,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io {
            context,
            path,
            source,
        }
    }
}

/// An invalid topic config value.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value {value:?} for topic config {name}: {reason}")]
    InvalidValue {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}
