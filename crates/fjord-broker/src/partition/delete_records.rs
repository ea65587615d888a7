//! DeleteRecords on one partition (Kafka's `Partition.deleteRecordsOnLeader`
//! and `lowWatermarkIfLeader`): the leader moves its log start offset, and
//! the request completes once every in-sync follower has moved its own (they
//! adopt the leader's from each replica fetch and report theirs in the next).

use fjord_types::Offset;
use tokio::sync::watch;

use super::{Inner, Partition};
use crate::error::PartitionError;
use crate::log_dir_failure::LogOperation;

/// DeleteRecords' sentinel for "up to the high watermark".
pub const HIGH_WATERMARK: Offset = -1;

/// What the leader did for a DeleteRecords request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsDeleted {
    /// The new log start offset asked for (the high watermark for -1): the
    /// low watermark must reach it before the request completes.
    pub requested_offset: Offset,
    /// The low watermark right after the leader moved its log start.
    pub low_watermark: Offset,
    /// The leadership term it happened in (see [`super::Appended::term`]).
    pub term: u64,
}

impl Partition {
    /// DeleteRecords as leader: raise the log start offset to `offset` (-1:
    /// the high watermark), deleting the segments wholly below it. Past the
    /// high watermark is OFFSET_OUT_OF_RANGE (records not yet committed
    /// cannot be deleted), as is any other negative offset; a topic whose
    /// `cleanup.policy` lacks `delete` refuses with POLICY_VIOLATION. Below
    /// the current log start it is a no-op that still reports the low
    /// watermark, as in Kafka.
    pub fn delete_records_on_leader(
        &self,
        offset: Offset,
    ) -> Result<RecordsDeleted, PartitionError> {
        let mut inner = self.lock();
        self.check_leader(&inner)?;
        let hw = *self.hw.borrow();
        let term = inner.terms;
        let inner = &mut *inner;
        let Some(log) = inner.log.as_mut() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        if !log.config().cleanup_policy.deletes() {
            return Err(PartitionError::PolicyViolation {
                tp: self.tp.clone(),
            });
        }
        let requested_offset = if offset == HIGH_WATERMARK { hw } else { offset };
        if requested_offset < 0 || requested_offset > hw {
            return Err(PartitionError::OffsetOutOfRange {
                requested: offset,
                log_start: log.log_start_offset(),
                log_end: hw,
            });
        }
        let before = log.log_start_offset();
        self.failure.on_storage_error(
            LogOperation::AdvanceLogStart,
            &self.tp,
            log.advance_log_start_offset(requested_offset)
                .map_err(PartitionError::from_log),
        )?;
        if log.log_start_offset() != before {
            tracing::info!(tp = %self.tp, from = before, to = log.log_start_offset(), "log start offset advanced by DeleteRecords");
        }
        self.publish_low_watermark(inner);
        Ok(RecordsDeleted {
            requested_offset,
            low_watermark: *self.low_watermark.borrow(),
            term,
        })
    }

    /// Publish the low watermark while leading (-1 otherwise).
    pub(super) fn publish_low_watermark(&self, inner: &Inner) {
        let lw = match (inner.leader.as_ref(), inner.log.as_ref()) {
            (Some(state), Some(log)) => state.low_watermark(log.log_start_offset()),
            _ => -1,
        };
        self.low_watermark.send_if_modified(|current| {
            let changed = *current != lw;
            *current = lw;
            changed
        });
    }

    /// DeleteRecords' low watermark, published (see
    /// [`crate::leader_state::LeaderState::low_watermark`]).
    pub fn subscribe_low_watermark(&self) -> watch::Receiver<Offset> {
        self.low_watermark.subscribe()
    }

    /// This replica's log start offset (`None` without a log).
    pub fn log_start_offset(&self) -> Option<Offset> {
        self.lock()
            .log
            .as_ref()
            .map(fjord_log::Log::log_start_offset)
    }
}
