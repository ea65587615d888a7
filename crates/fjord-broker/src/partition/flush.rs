//! `flush.messages` / `flush.ms`: group commit by the broker's flusher.
//!
//! An append that makes a flush due (Kafka flushes inside that append)
//! queues the partition on the [`FlushQueue`] and answers with a
//! [`FlushWait`]; the produce then waits (asynchronously, without the
//! partition lock) until the published [`Flushed`] covers its offset. The
//! flusher, on a blocking thread, runs [`Partition::flush`]: the partition
//! lock only to plan (file handles, the offset covered) and to complete (the
//! recovery point), the fsyncs between, without it. One fsync covers every
//! append before its plan, so concurrent produces share it. Appends that
//! did not make a flush due never wait.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use fjord_types::{Offset, TopicPartition};
use tokio::sync::Notify;

use super::Partition;
use crate::log_dir_failure::LogOperation;

/// Partitions whose flush came due, for the broker's flusher task.
#[derive(Debug, Default)]
pub struct FlushQueue {
    due: Mutex<Vec<TopicPartition>>,
    wake: Notify,
}

impl FlushQueue {
    pub(super) fn push(&self, tp: TopicPartition) {
        self.due.lock().unwrap_or_else(|p| p.into_inner()).push(tp);
        // Stores a permit when the flusher is busy: no wake-up is lost.
        self.wake.notify_one();
    }

    /// The partitions queued since the last call.
    pub fn take(&self) -> Vec<TopicPartition> {
        std::mem::take(&mut *self.due.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Resolves when a partition was queued (cancellation safe).
    pub async fn wanted(&self) {
        self.wake.notified().await;
    }
}

/// What the flusher has made durable, published for waiting produces.
/// `truncations` is the log's truncation count the flush was planned at:
/// offsets are only comparable within one count (a truncation may cut and
/// rewrite them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flushed {
    pub truncations: u64,
    /// Offsets below are fsynced.
    pub durable: Offset,
    /// Offsets below are covered by a flush whose fsync failed (-1: none).
    pub failed_below: Offset,
}

/// An append that made a flush due: its answer waits until a flush at the
/// same truncation count covers `offset` (the log end after the append).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushWait {
    pub truncations: u64,
    pub offset: Offset,
}

/// How a [`FlushWait`] ended, as [`Flushed::outcome`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    Pending,
    Durable,
    Failed,
    /// The log was truncated since the append: it may be gone.
    Truncated,
}

impl Flushed {
    pub fn outcome(&self, wait: FlushWait) -> FlushOutcome {
        if self.truncations > wait.truncations {
            FlushOutcome::Truncated
        } else if self.truncations < wait.truncations {
            // No flush completed since the truncation before the append.
            FlushOutcome::Pending
        } else if self.durable >= wait.offset {
            FlushOutcome::Durable
        } else if self.failed_below >= wait.offset {
            FlushOutcome::Failed
        } else {
            FlushOutcome::Pending
        }
    }
}

impl Partition {
    /// An append under the lock made `log`'s flush due: queue the partition
    /// for the flusher (once until it starts flushing) and return what the
    /// append's answer waits for. Without a flusher (a partition outside a
    /// replica manager, in tests) flush inline: nothing to wait for.
    pub(super) fn flush_due(
        &self,
        log: &mut fjord_log::Log,
    ) -> Result<Option<FlushWait>, crate::error::PartitionError> {
        let Some(queue) = self.flusher.get() else {
            self.failure.on_storage_error(
                LogOperation::Flush,
                &self.tp,
                log.flush()
                    .map_err(crate::error::PartitionError::KafkaStorage),
            )?;
            self.publish_flushed(log);
            return Ok(None);
        };
        if !self.flush_queued.swap(true, Ordering::AcqRel) {
            queue.push(self.tp.clone());
        }
        Ok(Some(FlushWait {
            truncations: log.truncations(),
            offset: log.log_end_offset(),
        }))
    }

    /// Hand flushes due after appends to `queue` (once; later calls are
    /// ignored).
    pub fn set_flusher(&self, queue: std::sync::Arc<FlushQueue>) {
        let _ = self.flusher.set(queue);
    }

    pub fn subscribe_flushed(&self) -> tokio::sync::watch::Receiver<Flushed> {
        self.flushed.subscribe()
    }

    /// Under the lock: publish the log's recovery point as durable.
    fn publish_flushed(&self, log: &fjord_log::Log) {
        let (truncations, durable) = (log.truncations(), log.recovery_point());
        self.flushed.send_if_modified(|f| {
            let changed = (f.truncations, f.durable) != (truncations, durable);
            f.truncations = truncations;
            f.durable = durable;
            changed
        });
    }

    /// Flush now (blocking: the flusher runs it on a blocking thread). The
    /// partition lock is held to plan and to complete, not for the fsyncs:
    /// appends and reads go on meanwhile. Flushes of one partition run one
    /// at a time (a later plan skips files an earlier one is still syncing,
    /// so it must not complete first). A failure goes to the log
    /// directory's fault handler and fails the produces waiting for it.
    pub fn flush(&self) {
        if self.failure.is_offline() {
            return;
        }
        let _one_at_a_time = self.flush_serial.lock().unwrap_or_else(|p| p.into_inner());
        // From here an append that makes a flush due queues the next one.
        self.flush_queued.store(false, Ordering::Release);
        let plan = {
            let mut inner = self.lock();
            let Some(log) = inner.log.as_mut() else {
                return;
            };
            match log.plan_flush() {
                Ok(plan) => plan,
                Err(err) => {
                    drop(inner);
                    self.failure
                        .report(LogOperation::Flush, Some(&self.tp), &err);
                    return;
                }
            }
        };
        let (truncations, covers) = (plan.truncations(), plan.covers());
        let synced = plan.sync();
        let mut inner = self.lock();
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        let write = match synced {
            Ok(synced) => {
                let write = log.complete_flush(synced);
                self.publish_flushed(log);
                write
            }
            Err(err) => {
                log.flush_failed();
                self.flushed.send_modify(|f| {
                    if f.truncations == truncations {
                        f.failed_below = f.failed_below.max(covers);
                    }
                });
                drop(inner);
                self.failure
                    .report(LogOperation::Flush, Some(&self.tp), &err);
                return;
            }
        };
        drop(inner);
        if let Some(write) = write
            && let Err(err) = write.write()
        {
            self.failure
                .report(LogOperation::Flush, Some(&self.tp), &err);
        }
    }

    /// The flush chore: flush if `flush.ms` / `flush.messages` say so.
    pub fn maybe_flush(&self, now_ms: i64) {
        let due = self
            .lock()
            .log
            .as_ref()
            .is_some_and(|log| log.flush_due(now_ms));
        if due {
            self.flush();
        }
    }
}
