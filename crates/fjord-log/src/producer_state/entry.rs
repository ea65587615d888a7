//! One producer's state on one partition (Kafka's `ProducerStateEntry` and
//! the rules of `ProducerAppendInfo`): its epoch, the last few batches it
//! wrote, when it last wrote, and its ongoing transaction. Plain data and
//! rules, no I/O.

use std::collections::VecDeque;

use crate::batch::BatchHeader;
use crate::control::{EndTxnMarker, TxnResult};

/// Kafka keeps the last five batches per producer: an idempotent producer has
/// at most five requests in flight per partition, so a retry is always one of
/// them.
pub const CACHED_BATCHES: usize = 5;

/// Kafka's "no producer id" (a batch from a non-idempotent producer).
pub(crate) const NO_PRODUCER_ID: i64 = -1;

/// A batch the producer wrote: enough to recognise its retry and answer it
/// with the offsets it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    /// `lastOffsetDelta`: the batch's last offset is `first_offset + offset_delta`.
    pub offset_delta: i32,
}

impl BatchMetadata {
    pub fn last_offset(&self) -> i64 {
        self.first_offset
            .saturating_add(i64::from(self.offset_delta))
    }
}

/// What the partition keeps per producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub epoch: i16,
    /// Oldest first, at most [`CACHED_BATCHES`]; empty after a marker that
    /// bumped the epoch.
    pub batches: VecDeque<BatchMetadata>,
    /// `maxTimestamp` of the producer's latest batch: `producer.id.expiration.ms`
    /// counts from here (as Kafka, the producer's clock with CreateTime).
    pub last_timestamp: i64,
    /// Epoch of the transaction coordinator that wrote this producer's last
    /// marker: a marker from an older coordinator is fenced.
    pub coordinator_epoch: Option<i32>,
    /// First offset of the producer's ongoing transaction (what bounds the
    /// first unstable offset): set by its first transactional batch, cleared
    /// by the marker that ends it.
    pub current_txn_first_offset: Option<i64>,
}

/// One producer as DescribeProducers shows it (Kafka's
/// `ProducerStateEntry` fields in `DescribeProducersResponse`): a
/// read-only copy, taken under the log's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last sequence of its newest cached batch, -1 when none is
    /// cached (no batch yet, or a marker bumped the epoch).
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The epoch of the coordinator that wrote its last marker, -1 if none.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

/// Why a client batch or a leader's marker is refused (Kafka's
/// `ProducerAppendInfo` errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer epoch {got} is older than the current {current}")]
    InvalidProducerEpoch { current: i16, got: i16 },
    #[error("sequence {got} does not follow {last}")]
    OutOfOrderSequence { last: i32, got: i32 },
    /// A non-transactional batch from a producer with an ongoing transaction
    /// (Kafka `INVALID_TXN_STATE`).
    #[error("non-transactional batch from producer {producer_id} during its transaction")]
    InvalidTxnState {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// A marker from a coordinator older than the last one seen for this
    /// producer (Kafka `TRANSACTION_COORDINATOR_FENCED`).
    #[error("coordinator epoch {got} is older than the last seen {current}")]
    TransactionCoordinatorFenced { current: i32, got: i32 },
}

/// A transaction ended by a marker (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// The transaction's first offset (its first transactional batch).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// What to do with an incoming batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data, in sequence (or not from an idempotent producer): append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMetadata),
}

/// The last sequence number of a batch. Sequences wrap at `i32::MAX`, as Kafka's do.
pub(crate) fn last_seq(header: &BatchHeader) -> i32 {
    let next = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    (next % (i64::from(i32::MAX) + 1)) as i32
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStateEntry {
    pub(crate) fn new(epoch: i16) -> Self {
        ProducerStateEntry {
            epoch,
            batches: VecDeque::with_capacity(CACHED_BATCHES),
            last_timestamp: -1,
            coordinator_epoch: None,
            current_txn_first_offset: None,
        }
    }

    /// Decide about a client batch of this producer, before it is appended:
    /// the sequence rules, then the transaction rule (a retry is answered
    /// before either, as in Kafka).
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let check = self.check_sequence(header)?;
        if check == SequenceCheck::Append {
            self.check_txn(header)?;
        }
        Ok(check)
    }

    /// A coordinator's batch of this producer (the group coordinator's
    /// transactional offsets, which carry no sequence): the epoch and the
    /// transaction rules, no sequence rule (Kafka checks sequences only for
    /// `AppendOrigin.CLIENT`).
    pub(crate) fn check_coordinator(&self, header: &BatchHeader) -> Result<(), SequenceError> {
        if header.producer_epoch < self.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                current: self.epoch,
                got: header.producer_epoch,
            });
        }
        self.check_txn(header)
    }

    /// The transaction rule alone: no non-transactional batch while this
    /// producer's transaction is open.
    pub(crate) fn check_txn(&self, header: &BatchHeader) -> Result<(), SequenceError> {
        if !header.is_transactional() && self.current_txn_first_offset.is_some() {
            return Err(SequenceError::InvalidTxnState {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
            });
        }
        Ok(())
    }

    /// Decide about a marker the leader is about to write for this producer
    /// (Kafka's `appendEndTxnMarker` checks): not from an older producer
    /// epoch, nor from an older coordinator.
    pub(crate) fn check_marker(
        &self,
        producer_epoch: i16,
        marker: &EndTxnMarker,
    ) -> Result<(), SequenceError> {
        if producer_epoch < self.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                current: self.epoch,
                got: producer_epoch,
            });
        }
        match self.coordinator_epoch {
            Some(current) if current > marker.coordinator_epoch => {
                Err(SequenceError::TransactionCoordinatorFenced {
                    current,
                    got: marker.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    fn check_sequence(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let (epoch, first_seq) = (header.producer_epoch, header.base_sequence);
        if epoch < self.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                current: self.epoch,
                got: epoch,
            });
        }
        if epoch > self.epoch {
            // A bumped epoch restarts the sequence at 0.
            return if first_seq == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrderSequence {
                    last: -1,
                    got: first_seq,
                })
            };
        }
        let last = last_seq(header);
        if let Some(dup) = self
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match self.batches.back() {
            Some(prev) if !in_sequence(prev.last_seq, first_seq) => {
                Err(SequenceError::OutOfOrderSequence {
                    last: prev.last_seq,
                    got: first_seq,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Remember a batch now in the log (`header.base_offset` is its offset in
    /// the log; `marker` is its transaction marker, for a control batch).
    /// A transactional data batch opens the producer's transaction if none
    /// is open. A control batch moves the epoch and the clock but carries no
    /// sequence; a marker ends the open transaction (Kafka's
    /// `appendEndTxnMarker`), returned as (first offset, aborted). Infallible: the batch is in the
    /// log already (leader checks run before, in [`Self::check`]); a follower
    /// or a replay applies what the leader wrote, as Kafka's replication
    /// origin does.
    pub(crate) fn update(
        &mut self,
        header: &BatchHeader,
        marker: Option<&EndTxnMarker>,
    ) -> Option<(i64, bool)> {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.batches.clear();
        }
        self.last_timestamp = header.max_timestamp;
        if header.is_control() {
            let marker = marker?;
            self.coordinator_epoch = Some(marker.coordinator_epoch);
            // Like Kafka, only a transaction with data here completes: a
            // marker alone moves neither the LSO nor the aborted index.
            let first = self.current_txn_first_offset.take()?;
            return Some((first, marker.result == TxnResult::Abort));
        }
        if header.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(header.base_offset);
        }
        if self.batches.len() == CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            first_offset: header.base_offset,
            offset_delta: header.last_offset_delta,
        });
        None
    }

    /// This entry as DescribeProducers shows it.
    pub fn active(&self, producer_id: i64) -> ActiveProducer {
        ActiveProducer {
            producer_id,
            producer_epoch: self.epoch,
            last_sequence: self.batches.back().map_or(-1, |b| b.last_seq),
            last_timestamp: self.last_timestamp,
            coordinator_epoch: self.coordinator_epoch.unwrap_or(-1),
            current_txn_start_offset: self.current_txn_first_offset.unwrap_or(-1),
        }
    }

    /// Kafka's `isProducerExpired`: no ongoing transaction and no write for
    /// `expiration_ms`.
    pub(crate) fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.current_txn_first_offset.is_none()
            && now_ms.saturating_sub(self.last_timestamp) >= expiration_ms
    }
}
