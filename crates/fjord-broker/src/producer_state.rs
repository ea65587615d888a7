//! Idempotent-producer bookkeeping for one partition (Kafka's
//! ProducerStateManager, in memory): per producer id, its epoch and the
//! last few batches it wrote, so that a retried batch is answered with its
//! original offset instead of being written twice, and a gap in sequence
//! numbers is refused. Plain data and rules, no I/O.

use std::collections::{HashMap, VecDeque};

use fjord_log::BatchHeader;
use fjord_types::Offset;

/// Kafka keeps the last five batches per producer: a producer has at most
/// five requests in flight per partition when idempotent.
const CACHED_BATCHES: usize = 5;

/// Kafka's "no producer id" (a batch from a non-idempotent producer).
const NO_PRODUCER_ID: i64 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMetadata {
    first_seq: i32,
    last_seq: i32,
    first_offset: Offset,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

/// What to do with an incoming batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data, in sequence (or not from an idempotent producer): append it.
    Append,
    /// A retry of a batch already in the log at `first_offset`: answer with that.
    Duplicate { first_offset: Offset },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer epoch {got} is older than the current {current}")]
    InvalidProducerEpoch { current: i16, got: i16 },
    #[error("sequence {got} does not follow {last}")]
    OutOfOrderSequence { last: i32, got: i32 },
}

/// The producers seen on one partition.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_seq(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX, as Kafka's do.
    let next = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    (next % (i64::from(i32::MAX) + 1)) as i32
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStateTable {
    /// Decide about a batch from the client, before it is appended.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if header.producer_id == NO_PRODUCER_ID {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state expired): accept, as Kafka 3 does.
            return Ok(SequenceCheck::Append);
        };
        let (epoch, first_seq) = (header.producer_epoch, header.base_sequence);
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                current: entry.epoch,
                got: epoch,
            });
        }
        if epoch > entry.epoch {
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
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
            });
        }
        match entry.batches.back() {
            Some(prev) if !in_sequence(prev.last_seq, first_seq) => {
                Err(SequenceError::OutOfOrderSequence {
                    last: prev.last_seq,
                    got: first_seq,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Remember a batch that is now in the log; `header.base_offset` is its
    /// assigned first offset.
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id == NO_PRODUCER_ID {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            first_offset: header.base_offset,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(
        pid: i64,
        epoch: i16,
        first_seq: i32,
        records: i32,
        base_offset: Offset,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records_count: records,
        }
    }

    #[test]
    fn sequence_rules() {
        let mut table = ProducerStateTable::default();
        // Not idempotent: always appended, never remembered.
        assert_eq!(
            table.check(&batch(-1, -1, -1, 3, 0)),
            Ok(SequenceCheck::Append)
        );
        table.record(&batch(-1, -1, -1, 3, 0));
        assert!(table.producers.is_empty());

        // First batch of producer 7, then the next in sequence.
        assert_eq!(
            table.check(&batch(7, 0, 0, 3, 0)),
            Ok(SequenceCheck::Append)
        );
        table.record(&batch(7, 0, 0, 3, 10));
        assert_eq!(
            table.check(&batch(7, 0, 3, 2, 0)),
            Ok(SequenceCheck::Append)
        );
        table.record(&batch(7, 0, 3, 2, 13));

        // A retry of either cached batch is a duplicate at its original offset.
        assert_eq!(
            table.check(&batch(7, 0, 0, 3, 0)),
            Ok(SequenceCheck::Duplicate { first_offset: 10 })
        );
        assert_eq!(
            table.check(&batch(7, 0, 3, 2, 0)),
            Ok(SequenceCheck::Duplicate { first_offset: 13 })
        );

        // A gap is refused.
        assert_eq!(
            table.check(&batch(7, 0, 9, 1, 0)),
            Err(SequenceError::OutOfOrderSequence { last: 4, got: 9 })
        );
        // An older epoch is fenced; a newer one must restart at 0.
        table.record(&batch(7, 2, 0, 1, 20));
        assert_eq!(
            table.check(&batch(7, 1, 5, 1, 0)),
            Err(SequenceError::InvalidProducerEpoch { current: 2, got: 1 })
        );
        assert_eq!(
            table.check(&batch(7, 3, 5, 1, 0)),
            Err(SequenceError::OutOfOrderSequence { last: -1, got: 5 })
        );
        assert_eq!(
            table.check(&batch(7, 3, 0, 1, 0)),
            Ok(SequenceCheck::Append)
        );
        // Unknown producers are accepted at any sequence.
        assert_eq!(
            table.check(&batch(8, 0, 42, 1, 0)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut table = ProducerStateTable::default();
        for i in 0..6 {
            table.record(&batch(1, 0, i, 1, i64::from(i)));
        }
        assert_eq!(
            table.check(&batch(1, 0, 0, 1, 0)),
            Err(SequenceError::OutOfOrderSequence { last: 5, got: 0 })
        );
        assert_eq!(
            table.check(&batch(1, 0, 1, 1, 0)),
            Ok(SequenceCheck::Duplicate { first_offset: 1 })
        );

        let mut table = ProducerStateTable::default();
        table.record(&batch(1, 0, i32::MAX - 1, 2, 0));
        assert_eq!(
            table.check(&batch(1, 0, 0, 1, 0)),
            Ok(SequenceCheck::Append)
        );
    }
}
