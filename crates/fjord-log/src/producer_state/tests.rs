//! The sequence rules (moved from the broker with their tests) and expiry.
//! Snapshots, loads and truncation with a real log: `crate::tests::producer_state`.

use std::path::Path;

use super::*;
use crate::control::EndTxnMarker;

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
    s.update(&header(-1, -1, -1, 3, 0), None);
    assert!(s.producers().is_empty());

    // First batch of producer 7, then the next in sequence.
    assert_eq!(check(&s, header(7, 0, 0, 3, 0)), Ok(None));
    s.update(&header(7, 0, 0, 3, 10), None);
    assert_eq!(check(&s, header(7, 0, 3, 2, 0)), Ok(None));
    s.update(&header(7, 0, 3, 2, 13), None);

    // A retry of either cached batch is a duplicate at its original offset.
    assert_eq!(check(&s, header(7, 0, 0, 3, 0)), Ok(Some(10)));
    assert_eq!(check(&s, header(7, 0, 3, 2, 0)), Ok(Some(13)));

    // A gap is refused.
    assert_eq!(
        check(&s, header(7, 0, 9, 1, 0)),
        Err(SequenceError::OutOfOrderSequence { last: 4, got: 9 })
    );
    // An older epoch is fenced; a newer one must restart at 0.
    s.update(&header(7, 2, 0, 1, 20), None);
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
        s.update(&header(1, 0, i, 1, i64::from(i)), None);
    }
    assert_eq!(
        check(&s, header(1, 0, 0, 1, 0)),
        Err(SequenceError::OutOfOrderSequence { last: 5, got: 0 })
    );
    assert_eq!(check(&s, header(1, 0, 1, 1, 0)), Ok(Some(1)));

    let mut s = state();
    s.update(&header(1, 0, i32::MAX - 1, 2, 0), None);
    assert_eq!(check(&s, header(1, 0, 0, 1, 0)), Ok(None));
}

#[test]
fn a_request_is_a_retry_by_its_first_batch_and_later_batches_must_follow() {
    let mut s = state();
    s.update(&header(1, 0, 0, 3, 100), None);
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
    s.update(&old, None);
    s.update(&recent, None);
    assert_eq!(s.first_unstable_offset(), None);
    assert_eq!(s.remove_expired(4_500, 4_000), 0);
    assert_eq!(s.remove_expired(6_000, 4_000), 1);
    assert_eq!(s.producers().keys().copied().collect::<Vec<_>>(), vec![2]);
    // The clock is the latest batch's timestamp.
    assert_eq!(s.producers()[&2].last_timestamp, 5_000);
}

fn txn_header(pid: i64, epoch: i16, first_seq: i32, records: i32, base_offset: i64) -> BatchHeader {
    BatchHeader {
        attributes: 0x10,
        ..header(pid, epoch, first_seq, records, base_offset)
    }
}

fn marker_header(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
    BatchHeader {
        attributes: 0x30,
        base_sequence: -1,
        ..header(pid, epoch, -1, 1, offset)
    }
}

fn marker(commit: bool, coordinator_epoch: i32) -> EndTxnMarker {
    EndTxnMarker {
        result: if commit {
            crate::control::TxnResult::Commit
        } else {
            crate::control::TxnResult::Abort
        },
        coordinator_epoch,
    }
}

#[test]
fn a_transaction_opens_at_its_first_batch_and_a_marker_completes_it() {
    let mut s = state();
    assert_eq!(s.update(&txn_header(1, 0, 0, 2, 10), None), None);
    assert_eq!(s.update(&txn_header(1, 0, 2, 1, 12), None), None);
    assert_eq!(s.producers()[&1].current_txn_first_offset, Some(10));
    assert_eq!(s.update(&txn_header(2, 0, 0, 1, 13), None), None);
    assert_eq!(s.first_unstable_offset(), Some(10));

    // A non-transactional batch of producer 1 is refused, producer 3's is not.
    assert_eq!(
        check(&s, header(1, 0, 3, 1, 0)),
        Err(SequenceError::InvalidTxnState {
            producer_id: 1,
            producer_epoch: 0
        })
    );
    assert_eq!(
        s.check_batches(&[txn_header(1, 0, 3, 1, 0), header(1, 0, 4, 1, 0)]),
        Err(SequenceError::InvalidTxnState {
            producer_id: 1,
            producer_epoch: 0
        })
    );
    assert_eq!(check(&s, txn_header(1, 0, 3, 1, 0)), Ok(None));
    assert_eq!(check(&s, header(3, 0, 0, 1, 0)), Ok(None));
    // A transaction opened by the request's own first batch counts too.
    assert_eq!(
        s.check_batches(&[txn_header(3, 0, 0, 1, 0), header(3, 0, 1, 1, 0)]),
        Err(SequenceError::InvalidTxnState {
            producer_id: 3,
            producer_epoch: 0
        })
    );
    assert_eq!(
        s.check_batches(&[header(3, 0, 0, 1, 0), txn_header(3, 0, 1, 1, 0)]),
        Ok(None)
    );

    // Producer 1 aborts: its transaction completes, producer 2's holds the LSO.
    let done = s.update(&marker_header(1, 0, 14), Some(&marker(false, 5)));
    let txn = CompletedTxn {
        producer_id: 1,
        first_offset: 10,
        last_offset: 14,
        aborted: true,
    };
    assert_eq!(done, Some(txn));
    assert_eq!(
        s.aborted_txn(&txn),
        AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 14,
            last_stable_offset: 13,
        }
    );
    let e = &s.producers()[&1];
    assert_eq!(
        (e.current_txn_first_offset, e.coordinator_epoch),
        (None, Some(5))
    );
    // Until the marker is below the high watermark, it is still unstable.
    assert_eq!(s.first_unstable_offset(), Some(10));
    s.on_high_watermark_updated(14);
    assert_eq!(s.first_unstable_offset(), Some(10));
    s.on_high_watermark_updated(15);
    assert_eq!(s.first_unstable_offset(), Some(13));
    assert_eq!(check(&s, header(1, 0, 3, 1, 0)), Ok(None));

    // Producer 2 commits; a marker without a transaction completes nothing.
    let done = s.update(&marker_header(2, 0, 15), Some(&marker(true, 5)));
    assert!(done.is_some_and(|t| !t.aborted && t.first_offset == 13));
    assert_eq!(
        s.update(&marker_header(2, 0, 16), Some(&marker(true, 5))),
        None
    );
    s.on_high_watermark_updated(17);
    assert_eq!(s.first_unstable_offset(), None);
    // Other control batches (no marker) move only the clock and epoch.
    assert_eq!(s.update(&marker_header(2, 1, 17), None), None);
    assert_eq!(s.producers()[&2].epoch, 1);
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epoch() {
    let mut s = state();
    // Unknown producer: accepted.
    assert_eq!(s.check_marker(1, 0, &marker(true, 0)), Ok(()));
    s.update(&txn_header(1, 2, 0, 1, 0), None);
    s.update(&marker_header(1, 2, 1), Some(&marker(false, 4)));
    assert_eq!(
        s.check_marker(1, 2, &marker(true, 3)),
        Err(SequenceError::TransactionCoordinatorFenced { current: 4, got: 3 })
    );
    assert_eq!(s.check_marker(1, 2, &marker(true, 4)), Ok(()));
    assert_eq!(s.check_marker(1, 3, &marker(true, 9)), Ok(()));
    assert_eq!(
        s.check_marker(1, 1, &marker(true, 9)),
        Err(SequenceError::InvalidProducerEpoch { current: 2, got: 1 })
    );
}

#[test]
fn an_open_transaction_keeps_its_producer_from_expiring() {
    let mut s = state();
    let mut h = txn_header(1, 0, 0, 1, 0);
    h.max_timestamp = 1_000;
    s.update(&h, None);
    assert_eq!(s.remove_expired(1_000_000, 10), 0);
    s.update(&marker_header(1, 0, 1), Some(&marker(true, 0)));
    assert_eq!(s.remove_expired(1_000_000, 10), 1);
}

#[test]
fn opening_a_transaction_needs_a_guard_a_marker_or_the_start_spends_it() {
    let mut s = state();
    let first = txn_header(7, 0, 0, 2, 0);
    assert!(s.needs_verification(&first));
    assert!(!s.needs_verification(&header(7, 0, 0, 2, 0)), "plain batch");
    // No verification, or another one's guard: refused.
    assert!(matches!(
        s.check_verified(&[first], None),
        Err(SequenceError::InvalidTxnState { producer_id: 7, .. })
    ));
    let guard = s.start_verification(7);
    assert_eq!(
        s.start_verification(7),
        guard,
        "concurrent requests share it"
    );
    let other = s.start_verification(8);
    assert_ne!(other, guard);
    assert!(s.check_verified(&[first], Some(other)).is_err());
    assert_eq!(s.check_verified(&[first], Some(guard)), Ok(()));

    // The verified batch opens the transaction: later batches need nothing.
    s.update(&first, None);
    let next = txn_header(7, 0, 2, 1, 2);
    assert!(!s.needs_verification(&next));
    assert_eq!(s.check_verified(&[next], None), Ok(()));
    s.update(&next, None);

    // The marker ends it; an answer obtained before the marker is stale.
    let late = s.start_verification(8);
    let stale = Some(late);
    s.update(&marker_header(8, 0, 3), Some(&marker(false, 0)));
    let late_batch = txn_header(8, 0, 0, 1, 4);
    assert!(
        s.check_verified(&[late_batch], stale).is_err(),
        "marker spent the guard"
    );
    s.update(&marker_header(7, 0, 4), Some(&marker(true, 0)));
    let again = txn_header(7, 0, 3, 1, 5);
    assert!(
        s.needs_verification(&again),
        "a new transaction verifies again"
    );
}

#[test]
fn active_producers_list_sequence_coordinator_epoch_and_open_transaction() {
    let mut s = state();
    assert!(s.active_producers().is_empty());
    let mut idempotent = header(9, 2, 0, 3, 0);
    idempotent.max_timestamp = 7_000;
    s.update(&idempotent, None);
    let mut txn = txn_header(4, 1, 0, 2, 3);
    txn.max_timestamp = 8_000;
    s.update(&txn, None);
    // Producer 5 committed: its marker leaves no cached batch at a new epoch.
    s.update(&txn_header(5, 0, 0, 1, 5), None);
    s.update(&marker_header(5, 1, 6), Some(&marker(true, 3)));
    // Not idempotent: not a producer.
    s.update(&header(-1, -1, -1, 1, 7), None);

    let active = s.active_producers();
    let row =
        |producer_id, producer_epoch, last_sequence, last_timestamp, coordinator_epoch, start| {
            ActiveProducer {
                producer_id,
                producer_epoch,
                last_sequence,
                last_timestamp,
                coordinator_epoch,
                current_txn_start_offset: start,
            }
        };
    assert_eq!(
        active,
        vec![
            row(4, 1, 1, 8_000, -1, 3),
            row(5, 1, -1, 0, 3, -1),
            row(9, 2, 2, 7_000, -1, -1),
        ]
    );
}
