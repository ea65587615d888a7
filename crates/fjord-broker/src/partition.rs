//! One partition replica hosted by this broker: its log, its leadership
//! state and the high watermark that produce and fetch wait on.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use fjord_log::{BatchHeader, Log, LogConfig};
use fjord_types::{BrokerId, LeaderEpoch, Offset, TopicId, TopicPartition};
use tokio::sync::watch;

use crate::error::PartitionError;
use crate::leader_state::LeaderState;
use crate::producer_state::{ProducerStateTable, SequenceCheck, SequenceError};
use crate::types::{Acks, FetchPartitionData, ListedOffset, OffsetSpec, ProduceInfo};

/// Leadership as the committed metadata assigns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

/// Mutable state under one per-partition lock: there is no lock shared
/// between partitions on the produce or fetch path.
struct Inner {
    /// `None` once the partition was deleted; an `Arc<Partition>` held by an
    /// in-flight request then answers UNKNOWN_TOPIC_OR_PARTITION.
    log: Option<Log>,
    assignment: Assignment,
    /// Present while this broker leads the partition.
    leader: Option<LeaderState>,
    min_insync_replicas: usize,
    /// Idempotent producers' recent batches, to drop retried duplicates.
    producers: ProducerStateTable,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    node_id: BrokerId,
    inner: Mutex<Inner>,
    /// The high watermark, published so that fetch long-polls and acks=all
    /// producers wake when it moves.
    hw: watch::Sender<Offset>,
}

/// Where an append landed, before any wait for replication.
pub struct Appended {
    pub info: ProduceInfo,
    pub last_offset: Offset,
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic_id: TopicId,
        node_id: BrokerId,
        log: Log,
        assignment: Assignment,
        min_insync_replicas: usize,
    ) -> Self {
        // With no replicas to hear from, what was on disk at start is all we know:
        // the recovered log end is the high watermark of a sole replica.
        let hw = log.log_end_offset();
        let producers = load_producer_state(&log);
        let mut inner = Inner {
            log: Some(log),
            assignment: assignment.clone(),
            leader: None,
            min_insync_replicas,
            producers,
        };
        let (hw_tx, _) = watch::channel(hw);
        inner.leader = Self::leader_state(node_id, &assignment, hw);
        Partition {
            tp,
            topic_id,
            node_id,
            inner: Mutex::new(inner),
            hw: hw_tx,
        }
    }

    fn leader_state(node_id: BrokerId, a: &Assignment, hw: Offset) -> Option<LeaderState> {
        (a.leader == node_id).then(|| LeaderState::new(node_id, a.isr.clone(), hw))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock poisons it; the state is still
        // consistent (every mutation is a single assignment), so carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Apply a newer committed assignment (leader, epoch, ISR) and log config.
    pub fn update(&self, assignment: Assignment, config: LogConfig, min_insync_replicas: usize) {
        let mut inner = self.lock();
        inner.min_insync_replicas = min_insync_replicas;
        if let Some(log) = inner.log.as_mut() {
            log.set_config(config);
        }
        if inner.assignment != assignment {
            let hw = *self.hw.borrow();
            inner.leader = Self::leader_state(self.node_id, &assignment, hw);
            inner.assignment = assignment;
        }
        if let Some(leo) = inner.log.as_ref().map(Log::log_end_offset) {
            self.advance_hw(&mut inner, leo);
        }
    }

    pub fn subscribe_hw(&self) -> watch::Receiver<Offset> {
        self.hw.subscribe()
    }

    pub fn high_watermark(&self) -> Offset {
        *self.hw.borrow()
    }

    fn check_leader(&self, inner: &Inner) -> Result<(), PartitionError> {
        if inner.log.is_none() {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        if inner.leader.is_none() {
            let leader = inner.assignment.leader;
            return Err(PartitionError::NotLeaderOrFollower {
                leader: (leader >= 0).then_some(leader),
            });
        }
        Ok(())
    }

    fn advance_hw(&self, inner: &mut Inner, leader_leo: Offset) {
        let min_isr = inner.min_insync_replicas;
        if let Some(state) = inner.leader.as_mut()
            && let Some(hw) = state.maybe_advance_hw(leader_leo, min_isr)
        {
            self.hw.send_replace(hw);
        }
    }

    /// Append a produce request's batches as leader. Waiting for acks=all is the caller's.
    pub fn append(
        &self,
        records: &Bytes,
        acks: Acks,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let mut inner = self.lock();
        self.check_leader(&inner)?;
        let min_isr = inner.min_insync_replicas;
        if acks == Acks::All {
            let isr = inner.assignment.isr.len();
            if isr < min_isr {
                return Err(PartitionError::NotEnoughReplicas { isr, min_isr });
            }
        }
        let headers = batch_headers(records);
        if let Some(duplicate) = check_sequences(&inner.producers, &headers)? {
            // A retry of a batch already written: answer with where it landed.
            let log_start_offset = inner.log.as_ref().map_or(0, Log::log_start_offset);
            return Ok(Appended {
                info: ProduceInfo {
                    base_offset: duplicate.first_offset,
                    log_append_time_ms: -1,
                    log_start_offset,
                },
                last_offset: duplicate.last_offset,
            });
        }
        let epoch = inner.assignment.leader_epoch;
        let inner = &mut *inner;
        let Some(log) = inner.log.as_mut() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let appended = log
            .append_as_leader(records, epoch, now_ms)
            .map_err(PartitionError::from_log)?;
        let mut next_offset = appended.first_offset;
        for mut header in headers {
            header.base_offset = next_offset;
            next_offset = header.next_offset();
            inner.producers.record(&header);
        }
        if log.flush_due(now_ms) {
            log.flush().map_err(PartitionError::KafkaStorage)?;
        }
        let leo = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        self.advance_hw(inner, leo);
        Ok(Appended {
            info: ProduceInfo {
                base_offset: appended.first_offset,
                log_append_time_ms: appended.log_append_time,
                log_start_offset,
            },
            last_offset: appended.last_offset,
        })
    }

    /// Read stored batches for a consumer, never past the high watermark.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<FetchPartitionData, PartitionError> {
        let inner = self.lock();
        self.check_leader(&inner)?;
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let hw = *self.hw.borrow();
        let read = log
            .read(fetch_offset, max_bytes, hw, min_one_batch)
            .map_err(PartitionError::from_log)?;
        Ok(FetchPartitionData {
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: read.log_start_offset,
            records: read.records,
        })
    }

    pub fn list_offset(&self, spec: OffsetSpec) -> Result<ListedOffset, PartitionError> {
        let inner = self.lock();
        self.check_leader(&inner)?;
        let Some(log) = inner.log.as_ref() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let leader_epoch = inner.assignment.leader_epoch;
        let hw = *self.hw.borrow();
        let found = |offset, timestamp| ListedOffset {
            offset,
            timestamp,
            leader_epoch,
        };
        let not_found = ListedOffset {
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        };
        Ok(match spec {
            OffsetSpec::Earliest => found(log.log_start_offset(), -1),
            OffsetSpec::Latest => found(hw, -1),
            OffsetSpec::MaxTimestamp => match log.max_timestamp() {
                Some((timestamp, offset)) if offset < hw => found(offset, timestamp),
                _ => not_found,
            },
            OffsetSpec::Timestamp(ts) => match log
                .offset_for_timestamp(ts)
                .map_err(PartitionError::from_log)?
            {
                Some((offset, timestamp)) if offset < hw => found(offset, timestamp),
                _ => not_found,
            },
        })
    }

    /// Flush if `flush.ms` / `flush.messages` say so.
    pub fn maybe_flush(&self, now_ms: i64) -> Result<(), fjord_log::LogError> {
        let mut inner = self.lock();
        match inner.log.as_mut() {
            Some(log) if log.flush_due(now_ms) => log.flush(),
            _ => Ok(()),
        }
    }

    /// Delete segments past retention.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, fjord_log::LogError> {
        let mut inner = self.lock();
        match inner.log.as_mut() {
            Some(log) => log.apply_retention(now_ms),
            None => Ok(0),
        }
    }

    /// Take the log out, for closing (shutdown) or deleting (topic deleted).
    /// Requests still holding this partition then see UNKNOWN_TOPIC_OR_PARTITION.
    pub fn take_log(&self) -> Option<Log> {
        self.lock().log.take()
    }
}

/// A retried batch found in the producer state.
struct Duplicate {
    first_offset: Offset,
    last_offset: Offset,
}

/// The headers of a produce request's batches (per batch, never per record).
/// Malformed framing is left for the log's validation to report.
fn batch_headers(records: &Bytes) -> Vec<BatchHeader> {
    let mut headers = Vec::with_capacity(1);
    let mut rest: &[u8] = records;
    while let Some(header) = BatchHeader::parse(rest) {
        if header.size() > rest.len() || header.size() < fjord_log::HEADER_LEN {
            break;
        }
        headers.push(header);
        rest = &rest[header.size()..];
    }
    headers
}

/// Check idempotent producers' sequence numbers. A request whose first
/// batch is a retry is answered from the original (clients send one batch
/// per partition per request); later batches must follow their predecessor.
fn check_sequences(
    producers: &ProducerStateTable,
    headers: &[BatchHeader],
) -> Result<Option<Duplicate>, PartitionError> {
    let sequence_error = |e: SequenceError| match e {
        SequenceError::InvalidProducerEpoch { .. } => PartitionError::InvalidProducerEpoch(e),
        SequenceError::OutOfOrderSequence { .. } => PartitionError::OutOfOrderSequenceNumber(e),
    };
    let Some(first) = headers.first() else {
        return Ok(None);
    };
    if let SequenceCheck::Duplicate { first_offset } =
        producers.check(first).map_err(sequence_error)?
    {
        return Ok(Some(Duplicate {
            first_offset,
            last_offset: first_offset + i64::from(first.last_offset_delta),
        }));
    }
    for pair in headers.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let follows = next.producer_id == -1
            || (next.producer_id == prev.producer_id
                && next.producer_epoch == prev.producer_epoch
                && next.base_sequence
                    == prev
                        .base_sequence
                        .wrapping_add(prev.last_offset_delta)
                        .wrapping_add(1));
        if !follows {
            return Err(sequence_error(SequenceError::OutOfOrderSequence {
                last: prev.base_sequence.wrapping_add(prev.last_offset_delta),
                got: next.base_sequence,
            }));
        }
    }
    Ok(None)
}

/// Rebuild producer state from the newest two segments: producers whose last
/// write is older than that are unknown after a restart, and an unknown
/// producer's next batch is accepted (as Kafka 3 does when producer state
/// expired). Kafka snapshots producer state instead; Fjord does not yet.
fn load_producer_state(log: &Log) -> ProducerStateTable {
    let mut table = ProducerStateTable::default();
    let bases = log.segment_base_offsets();
    let start = bases
        .len()
        .checked_sub(2)
        .map_or(log.log_start_offset(), |i| bases[i])
        .max(log.log_start_offset());
    let (mut offset, end) = (start, log.log_end_offset());
    while offset < end {
        match log.read(offset, 1 << 20, end, true) {
            Ok(read) if !read.records.is_empty() => {
                let mut last = offset;
                let mut rest: &[u8] = &read.records;
                while let Some(header) = BatchHeader::parse(rest) {
                    if header.size() > rest.len() {
                        break;
                    }
                    table.record(&header);
                    last = header.next_offset();
                    rest = &rest[header.size()..];
                }
                if last <= offset {
                    break;
                }
                offset = last;
            }
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(dir = %log.dir().display(), %err, "cannot rebuild producer state");
                break;
            }
        }
    }
    table
}
