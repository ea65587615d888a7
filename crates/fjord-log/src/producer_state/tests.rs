//! The sequence rules (moved from the broker with their tests) and expiry.
//! Snapshots, loads and truncation with a real log: `crate::tests::producer_state`.

use std::path::Path;

use super::*;

pub(crate) fn header(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    records: i32,
    base_offset: i64,
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

fn state() -> ProducerStateManager {
    ProducerStateManager::empty(Path::new("unused"))
}

/// `Ok(None)`: append; `Ok(Some(first_offset))`: a duplicate.
fn check(s: &ProducerStateManager, h: BatchHeader) -> Result<Option<i64>, SequenceError> {
    s.check(&h).map(|c| match c {
        SequenceCheck::Append => None,
        SequenceCheck::Duplicate(b) => Some(b.first_offset),
    })
}

#[test]
fn sequence_rules() {
    let mut s = state();
    // Not idempotent: always appended, never remembered.
    assert_eq!(check(&s, header(-1, -1, -1, 3, 0)), Ok(None));
    s.update(&header(-1, -1, -1, 3, 0));
    assert!(s.producers().is_empty());

    // First batch of producer 7, then the next in sequence.
    assert_eq!(check(&s, header(7, 0, 0, 3, 0)), Ok(None));
    s.update(&header(7, 0, 0, 3, 10));
    assert_eq!(check(&s, header(7, 0, 3, 2, 0)), Ok(None));
    s.update(&header(7, 0, 3, 2, 13));

    // A retry of either cached batch is a duplicate at its original offset.
    assert_eq!(check(&s, header(7, 0, 0, 3, 0)), Ok(Some(10)));
    assert_eq!(check(&s, header(7, 0, 3, 2, 0)), Ok(Some(13)));

    // A gap is refused.
    assert_eq!(
        check(&s, header(7, 0, 9, 1, 0)),
        Err(SequenceError::OutOfOrderSequence { last: 4, got: 9 })
    );
    // An older epoch is fenced; a newer one must restart at 0.
    s.update(&header(7, 2, 0, 1, 20));
    assert_eq!(
        check(&s, header(7, 1, 5, 1, 0)),
        Err(SequenceError::InvalidProducerEpoch { current: 2, got: 1 })
    );
    assert_eq!(
        check(&s, header(7, 3, 5, 1, 0)),
        Err(SequenceError::OutOfOrderSequence { last: -1, got: 5 })
    );
    assert_eq!(check(&s, header(7, 3, 0, 1, 0)), Ok(None));
    // Unknown producers are accepted at any sequence.
    assert_eq!(check(&s, header(8, 0, 42, 1, 0)), Ok(None));
    assert_eq!(s.map_end_offset(), 21);
}

#[test]
fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
    let mut s = state();
    for i in 0..6 {
        s.update(&header(1, 0, i, 1, i64::from(i)));
    }
    assert_eq!(
        check(&s, header(1, 0, 0, 1, 0)),
        Err(SequenceError::OutOfOrderSequence { last: 5, got: 0 })
    );
    assert_eq!(check(&s, header(1, 0, 1, 1, 0)), Ok(Some(1)));

    let mut s = state();
    s.update(&header(1, 0, i32::MAX - 1, 2, 0));
    assert_eq!(check(&s, header(1, 0, 0, 1, 0)), Ok(None));
}

#[test]
fn a_request_is_a_retry_by_its_first_batch_and_later_batches_must_follow() {
    let mut s = state();
    s.update(&header(1, 0, 0, 3, 100));
    // The retried first batch answers for the request, with its last offset.
    assert_eq!(
        s.check_batches(&[header(1, 0, 0, 3, 0)]),
        Ok(Some(DuplicateBatch {
            first_offset: 100,
            last_offset: 102
        }))
    );
    // Two new batches in sequence, or followed by a non-idempotent one.
    let next = [header(1, 0, 3, 2, 0), header(1, 0, 5, 1, 0)];
    assert_eq!(s.check_batches(&next), Ok(None));
    assert_eq!(
        s.check_batches(&[header(1, 0, 3, 2, 0), header(-1, -1, -1, 1, 0)]),
        Ok(None)
    );
    // A gap between the request's own batches is refused.
    assert_eq!(
        s.check_batches(&[header(1, 0, 3, 2, 0), header(1, 0, 6, 1, 0)]),
        Err(SequenceError::OutOfOrderSequence { last: 4, got: 6 })
    );
    assert_eq!(s.check_batches(&[]), Ok(None));
}

#[test]
fn idle_producers_expire_and_no_transaction_means_no_unstable_offset() {
    let mut s = state();
    let mut old = header(1, 0, 0, 1, 0);
    old.max_timestamp = 1_000;
    let mut recent = header(2, 0, 0, 1, 1);
    recent.max_timestamp = 5_000;
    s.update(&old);
    s.update(&recent);
    assert_eq!(s.first_unstable_offset(), None);
    assert_eq!(s.remove_expired(4_500, 4_000), 0);
    assert_eq!(s.remove_expired(6_000, 4_000), 1);
    assert_eq!(s.producers().keys().copied().collect::<Vec<_>>(), vec![2]);
    // The clock is the latest batch's timestamp.
    assert_eq!(s.producers()[&2].last_timestamp, 5_000);
}
