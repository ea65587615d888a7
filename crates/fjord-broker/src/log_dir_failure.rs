//! The one fault handler for log I/O failures (Kafka's `LogDirFailureChannel`
//! and `LogManager.handleLogDirFailure`).
//!
//! Fjord has exactly one log directory per node, so Kafka's rule for "all log
//! dirs failed" applies: on the first I/O failure of an append, flush,
//! truncation, leader-epoch assignment, read, retention, high watermark
//! checkpoint or metadata apply, the directory is offline for good. From then
//! on every produce, fetch and offset lookup on a partition of it answers
//! KAFKA_STORAGE_ERROR without touching the log, the follower fetchers stop,
//! and the node is told to stop (exit code 1): its controlled shutdown moves
//! the leaderships to the other in-sync replicas, which is how the controller
//! learns. Never "log and keep leading".
//!
//! One exception: a full disk. A write that fails only because the
//! filesystem is out of space (ENOSPC/EDQUOT, see
//! [`fjord_log::LogError::is_out_of_space`]) during an append, flush,
//! retention, DeleteRecords or high watermark checkpoint leaves the log whole
//! (a partial append is cut back), so the directory stays online: that
//! operation answers KAFKA_STORAGE_ERROR (retriable for clients), followers
//! back off and retry, and the first write that succeeds again (after
//! retention, DeleteRecords or an operator freed space) ends the episode,
//! with no restart. A partition log that cannot be created or opened for
//! lack of space (a new topic, `__consumer_offsets` on first use, a
//! restart on a full disk) is left unhosted and retried every second
//! ([`crate::metadata_applier::open_pending`]); closing on a full disk
//! only skips the clean-shutdown marker (the next start recovers the
//! tail). Kafka stops the broker instead; users expect a full disk to heal
//! when space comes back. A new leader that cannot write its leader epoch
//! does not lead until it can (retried the same way). An fsync failing
//! with ENOSPC, and ENOSPC while truncating or deleting partitions, stay
//! fatal: those may have lost acknowledged data or left state half-written.
//!
//! The hot path only loads an `AtomicBool`; the record of the first failure
//! and the stop signal are touched only when something fails.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use fjord_types::TopicPartition;
use tokio_util::sync::CancellationToken;

use crate::error::PartitionError;

/// The log operation that failed (named in the one ERROR line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOperation {
    Append,
    Flush,
    Read,
    Truncate,
    AssignLeaderEpoch,
    Retention,
    /// Creating or opening a partition's log for committed metadata.
    OpenLog,
    /// DeleteRecords on the leader, or a follower adopting the leader's
    /// log start offset.
    AdvanceLogStart,
    HwCheckpoint,
    /// Opening, creating, scanning or deleting partition logs while
    /// applying committed metadata.
    MetadataApply,
    Close,
}

impl LogOperation {
    /// Whether running out of space in this operation leaves the log whole,
    /// so that the directory may stay online (see the module docs).
    pub fn survives_full_disk(self) -> bool {
        matches!(
            self,
            LogOperation::Append
                | LogOperation::Flush
                | LogOperation::Retention
                | LogOperation::OpenLog
                | LogOperation::AdvanceLogStart
                | LogOperation::HwCheckpoint
                | LogOperation::Close
                // The cache is left as it was and the partition does not
                // lead until the epoch is written (retried).
                | LogOperation::AssignLeaderEpoch
        )
    }
}

impl fmt::Display for LogOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogOperation::Append => "append",
            LogOperation::Flush => "flush",
            LogOperation::Read => "read",
            LogOperation::Truncate => "truncation",
            LogOperation::AssignLeaderEpoch => "leader-epoch assignment",
            LogOperation::Retention => "retention",
            LogOperation::OpenLog => "partition log open",
            LogOperation::AdvanceLogStart => "log start offset advance",
            LogOperation::HwCheckpoint => "high watermark checkpoint",
            LogOperation::MetadataApply => "metadata apply",
            LogOperation::Close => "close",
        })
    }
}

/// The failure that took the log directory offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub operation: LogOperation,
    pub tp: Option<TopicPartition>,
    /// The error with its causes, as text.
    pub error: String,
}

/// Cheap to clone: every clone shares the same state.
#[derive(Clone)]
pub struct LogDirFailure {
    inner: Arc<Inner>,
}

struct Inner {
    log_dir: PathBuf,
    offline: AtomicBool,
    /// A write failed for lack of space and none has succeeded since.
    full: AtomicBool,
    first: OnceLock<Failure>,
    /// Cancelled on the first failure: the node stops on it.
    halt: CancellationToken,
}

impl LogDirFailure {
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        LogDirFailure {
            inner: Arc::new(Inner {
                log_dir: log_dir.into(),
                offline: AtomicBool::new(false),
                full: AtomicBool::new(false),
                first: OnceLock::new(),
                halt: CancellationToken::new(),
            }),
        }
    }

    pub fn log_dir(&self) -> &Path {
        &self.inner.log_dir
    }

    /// Whether the log directory failed. One atomic load.
    #[inline]
    pub fn is_offline(&self) -> bool {
        self.inner.offline.load(Ordering::Acquire)
    }

    /// `Err(LogDirOffline)` once the directory failed: what every partition
    /// operation answers instead of touching the log.
    #[inline]
    pub fn check(&self) -> Result<(), PartitionError> {
        if self.is_offline() {
            Err(PartitionError::LogDirOffline)
        } else {
            Ok(())
        }
    }

    /// Report an I/O failure of `operation` (on `tp`, if one partition).
    /// The first report takes the directory offline, logs one ERROR and
    /// signals the node to stop; later ones are only logged at debug.
    /// Returns whether this was the first.
    pub fn fail(
        &self,
        operation: LogOperation,
        tp: Option<&TopicPartition>,
        err: &(dyn std::error::Error + 'static),
    ) -> bool {
        let failure = Failure {
            operation,
            tp: tp.cloned(),
            error: error_chain(err),
        };
        let first = self.inner.first.set(failure).is_ok();
        self.inner.offline.store(true, Ordering::Release);
        if first {
            let tp = tp.map_or_else(|| "-".to_string(), ToString::to_string);
            tracing::error!(
                log_dir = %self.inner.log_dir.display(),
                operation = %operation,
                %tp,
                error = %error_chain(err),
                "log directory failed: its partitions answer KAFKA_STORAGE_ERROR and this node stops, \
                 because all of its log dirs have failed"
            );
            self.inner.halt.cancel();
        } else {
            tracing::debug!(%operation, ?tp, %err, "log I/O failure after the log directory went offline");
        }
        first
    }

    /// Report a log error of `operation`: out of space in an operation that
    /// survives it only marks the directory full (see the module docs);
    /// anything else takes it offline ([`fail`](Self::fail)). Returns
    /// whether the directory went offline.
    pub fn report(
        &self,
        operation: LogOperation,
        tp: Option<&TopicPartition>,
        err: &fjord_log::LogError,
    ) -> bool {
        if operation.survives_full_disk() && err.is_out_of_space() {
            self.note_full(operation, tp, err);
            false
        } else {
            self.fail(operation, tp, err)
        }
    }

    /// [`report`](Self::report) for a plain I/O error (the high watermark
    /// checkpoint, written outside the log).
    pub fn report_io(
        &self,
        operation: LogOperation,
        tp: Option<&TopicPartition>,
        err: &std::io::Error,
    ) -> bool {
        if operation.survives_full_disk() && fjord_log::io_is_out_of_space(err) {
            self.note_full(operation, tp, err);
            false
        } else {
            self.fail(operation, tp, err)
        }
    }

    fn note_full(
        &self,
        operation: LogOperation,
        tp: Option<&TopicPartition>,
        err: &(dyn std::error::Error + 'static),
    ) {
        let tp = tp.map_or_else(|| "-".to_string(), ToString::to_string);
        if !self.inner.full.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                log_dir = %self.inner.log_dir.display(),
                %operation,
                %tp,
                error = %error_chain(err),
                "log directory is full: writes answer KAFKA_STORAGE_ERROR until space is freed \
                 (retention, DeleteRecords or an operator); the node stays up"
            );
        } else {
            tracing::debug!(%operation, %tp, error = %error_chain(err), "log directory still full");
        }
    }

    /// A log write succeeded: ends a full-disk episode. One atomic load
    /// while the disk is not full.
    #[inline]
    pub fn on_write_succeeded(&self) {
        if self.inner.full.load(Ordering::Acquire) && self.inner.full.swap(false, Ordering::AcqRel)
        {
            tracing::info!(log_dir = %self.inner.log_dir.display(), "log directory accepts writes again");
        }
    }

    /// Whether the last log write failed for lack of space.
    pub fn is_full(&self) -> bool {
        self.inner.full.load(Ordering::Acquire)
    }

    /// The failure that took the directory offline, if any.
    pub fn first_failure(&self) -> Option<&Failure> {
        self.inner.first.get()
    }

    /// Cancelled once the directory failed: the node's run loop selects on it.
    pub fn halted(&self) -> CancellationToken {
        self.inner.halt.clone()
    }

    /// Route `result`'s storage error (if any) to [`report`](Self::report):
    /// for the partition paths, which see errors as [`PartitionError`].
    pub(crate) fn on_storage_error<T>(
        &self,
        operation: LogOperation,
        tp: &TopicPartition,
        result: Result<T, PartitionError>,
    ) -> Result<T, PartitionError> {
        if let Err(PartitionError::KafkaStorage(err)) = &result {
            self.report(operation, Some(tp), err);
        }
        result
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_log::IsolationLevel;

    fn io(msg: &str) -> std::io::Error {
        std::io::Error::other(msg.to_string())
    }

    #[test]
    fn first_failure_wins_and_stops_the_node() {
        let failure = LogDirFailure::new("/data");
        let (clone, halted) = (failure.clone(), failure.halted());
        assert!(!failure.is_offline());
        assert!(failure.check().is_ok());
        assert!(!halted.is_cancelled());

        let tp = TopicPartition::new("orders", 3);
        assert!(clone.fail(
            LogOperation::Append,
            Some(&tp),
            &io("No space left on device")
        ));
        assert!(!failure.fail(LogOperation::Flush, None, &io("later")));

        assert!(failure.is_offline() && halted.is_cancelled());
        assert!(matches!(
            failure.check(),
            Err(PartitionError::LogDirOffline)
        ));
        assert_eq!(
            failure.first_failure(),
            Some(&Failure {
                operation: LogOperation::Append,
                tp: Some(tp),
                error: "No space left on device".to_string(),
            })
        );
    }

    #[test]
    fn only_storage_errors_take_the_dir_offline() {
        let failure = LogDirFailure::new("/data");
        let tp = TopicPartition::new("t", 0);
        let refused: Result<(), _> = Err(PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 });
        assert!(
            failure
                .on_storage_error(LogOperation::Append, &tp, refused)
                .is_err()
        );
        assert!(!failure.is_offline());
        let io_failed: Result<(), _> = Err(PartitionError::KafkaStorage(fjord_log::LogError::Io {
            context: "appending to",
            path: "/data/t-0/0.log".into(),
            source: io("Input/output error"),
        }));
        assert!(
            failure
                .on_storage_error(LogOperation::Append, &tp, io_failed)
                .is_err()
        );
        assert!(failure.is_offline());
        let first = failure.first_failure().expect("recorded");
        assert_eq!(first.operation, LogOperation::Append);
        assert!(
            first.error.ends_with("Input/output error"),
            "{}",
            first.error
        );
    }

    fn log_io(context: &'static str, source: std::io::Error) -> fjord_log::LogError {
        fjord_log::LogError::Io {
            context,
            path: "/data/t-0/00000000000000000000.log".into(),
            source,
        }
    }

    #[test]
    fn a_full_disk_keeps_the_dir_online_other_io_errors_do_not() {
        use std::io::{Error, ErrorKind};
        let tp = TopicPartition::new("t", 0);
        let enospc = || Error::from(ErrorKind::StorageFull);
        // Out of space on a write: refused, the directory stays online.
        for op in [
            LogOperation::Append,
            LogOperation::Flush,
            LogOperation::Retention,
            LogOperation::AdvanceLogStart,
            LogOperation::HwCheckpoint,
            LogOperation::OpenLog,
            LogOperation::Close,
            LogOperation::AssignLeaderEpoch,
        ] {
            let failure = LogDirFailure::new("/data");
            assert!(!failure.report(op, Some(&tp), &log_io("appending to", enospc())));
            assert!(!failure.is_offline() && failure.is_full(), "{op}");
            assert!(!failure.halted().is_cancelled());
            failure.on_write_succeeded();
            assert!(!failure.is_full());
        }
        let cases = [
            // fsync failing with ENOSPC may have lost acknowledged pages.
            (LogOperation::Flush, log_io("syncing", enospc())),
            // Half-written state: stays fatal.
            (LogOperation::Truncate, log_io("writing", enospc())),
            (
                LogOperation::MetadataApply,
                log_io("creating segment", enospc()),
            ),
            (LogOperation::Close, log_io("syncing", enospc())),
            // Any other I/O error, as before.
            (
                LogOperation::Append,
                log_io("appending to", io("Input/output error")),
            ),
        ];
        for (op, err) in cases {
            let failure = LogDirFailure::new("/data");
            assert!(failure.report(op, Some(&tp), &err), "{op}: {err}");
            assert!(failure.is_offline() && failure.halted().is_cancelled());
        }
        let failure = LogDirFailure::new("/data");
        assert!(!failure.report_io(LogOperation::HwCheckpoint, None, &enospc()));
        assert!(failure.report_io(LogOperation::HwCheckpoint, None, &io("EIO")));
    }

    /// A partition of a failed directory answers KAFKA_STORAGE_ERROR to
    /// produce, fetch and offset lookups, stops fetching as follower and
    /// leaves its log as it was.
    #[test]
    fn partitions_of_a_failed_dir_answer_storage_errors() {
        use crate::partition::{Assignment, Partition};
        use crate::types::{Acks, OffsetSpec};
        use fjord_log::testing::{TIMESTAMP, batch};
        use fjord_log::{Log, LogConfig};

        let dir = tempfile::tempdir().expect("tempdir");
        let failure = LogDirFailure::new(dir.path());
        let log = Log::open(&dir.path().join("t-0"), LogConfig::default()).expect("open");
        let assignment = Assignment {
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
        };
        let tp = TopicPartition::new("t", 0);
        let partition = Partition::open(
            tp.clone(),
            fjord_types::TopicId(uuid::Uuid::nil()),
            1,
            log,
            assignment,
            1,
            None,
            failure.clone(),
        );
        partition
            .append(&batch(3), Acks::Leader, TIMESTAMP)
            .expect("append before the failure");
        assert!(
            partition
                .read(0, 1 << 20, true, -1, IsolationLevel::ReadUncommitted)
                .is_ok()
        );

        failure.fail(LogOperation::Flush, Some(&tp), &io("Input/output error"));

        let storage_error = |r: Result<(), PartitionError>| {
            assert!(matches!(r, Err(PartitionError::LogDirOffline)), "{r:?}");
        };
        storage_error(
            partition
                .append(&batch(1), Acks::Leader, TIMESTAMP)
                .map(|_| ()),
        );
        storage_error(
            partition
                .read(0, 1 << 20, true, -1, IsolationLevel::ReadUncommitted)
                .map(|_| ()),
        );
        storage_error(
            partition
                .list_offset(OffsetSpec::Latest, -1, IsolationLevel::ReadUncommitted)
                .map(|_| ()),
        );
        storage_error(partition.end_offset_for_epoch(-1, 0).map(|_| ()));
        assert_eq!(
            partition.log_end_offset(),
            3,
            "nothing written after the failure"
        );
        assert!(partition.follower_position().is_none());
        assert!(partition.hw_checkpoint_due().is_none());
    }
}
