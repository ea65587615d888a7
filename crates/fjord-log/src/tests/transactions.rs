//! Transactions in the log: the aborted-transaction index written, read,
//! truncated, recovered and deleted with its segment; open transactions
//! across snapshots; the last stable offset and read_committed reads.

use super::*;
use crate::testing::{TIMESTAMP, batch as plain, marker_batch, transactional_batch};
use crate::{AbortedTxn, IsolationLevel};

fn config() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..small_config(600)
    }
}

/// Appends as the leader would (checks first); returns the first offset.
fn txn(log: &mut Log, pid: i64, seq: i32, count: i32) -> i64 {
    let b = transactional_batch(pid, 0, seq, count, TIMESTAMP);
    let h = BatchHeader::parse(&b).expect("header");
    assert_eq!(log.check_producer_batches(&[h]), Ok(None));
    log.append_as_leader(&b, 0, 0).expect("append").first_offset
}

fn end(log: &mut Log, pid: i64, commit: bool) -> i64 {
    let m = marker_batch(pid, 0, commit, 0);
    log.append_as_leader(&m, 0, 0).expect("marker").first_offset
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

#[test]
fn read_committed_stops_at_the_lso_and_returns_the_overlapping_aborts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let a = txn(&mut log, 1, 0, 2); // 0..=1
    let b = txn(&mut log, 2, 0, 1); // 2
    let abort_a = end(&mut log, 1, false); // 3
    log.append_as_leader(&plain(1), 0, 0).expect("plain"); // 4
    assert_eq!((a, b, abort_a), (0, 2, 3));
    assert_eq!(log.aborted_transactions(), vec![aborted(1, 0, 3, 2)]);

    // Producer 2's transaction is open: the LSO is its first offset.
    let hw = log.log_end_offset();
    log.on_high_watermark_updated(hw);
    assert_eq!(log.last_stable_offset(hw), 2);
    let (read, txns) = log
        .read_isolated(0, 1 << 20, hw, true, IsolationLevel::ReadCommitted)
        .expect("read");
    assert_eq!(headers(&read.records).len(), 1);
    assert_eq!(read.next_offset, 2);
    assert_eq!(txns, Some(vec![aborted(1, 0, 3, 2)]));
    let (read, txns) = log
        .read_isolated(0, 1 << 20, hw, true, IsolationLevel::ReadUncommitted)
        .expect("read");
    assert_eq!(read.next_offset, 5);
    assert_eq!(txns, None);

    // Producer 2 commits: once the marker is below the HW, all is stable.
    let commit_b = end(&mut log, 2, true);
    assert_eq!(log.last_stable_offset(commit_b), 2);
    log.on_high_watermark_updated(commit_b + 1);
    assert_eq!(log.last_stable_offset(commit_b + 1), commit_b + 1);
    let (read, txns) = log
        .read_isolated(
            4,
            1 << 20,
            commit_b + 1,
            true,
            IsolationLevel::ReadCommitted,
        )
        .expect("read");
    assert_eq!(read.next_offset, commit_b + 1);
    assert_eq!(txns, Some(vec![]));
    // Nothing readable: no aborts either.
    let (read, txns) = log
        .read_isolated(5, 1 << 20, 5, true, IsolationLevel::ReadCommitted)
        .expect("read");
    assert!(read.records.is_empty());
    assert_eq!(txns, Some(vec![]));
}

#[test]
fn aborts_are_collected_across_segments_and_deleted_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let mut expected = Vec::new();
    for pid in 1..=12 {
        let first = txn(&mut log, pid, 0, 3);
        let last = end(&mut log, pid, pid % 2 == 0);
        if pid % 2 == 1 {
            expected.push(aborted(pid, first, last, last + 1));
        }
    }
    assert!(log.num_segments() > 2, "{}", log.num_segments());
    assert_eq!(log.aborted_transactions(), expected);
    let leo = log.log_end_offset();
    assert_eq!(log.collect_aborted_transactions(0, leo), expected);
    // A range inside one transaction finds only it; the search stops early.
    let third = expected[2];
    assert_eq!(
        log.collect_aborted_transactions(third.first_offset + 1, third.first_offset + 2),
        vec![third]
    );
    let txnindex: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".txnindex"))
        .collect();
    let bytes: u64 = txnindex
        .iter()
        .map(|e| e.metadata().expect("metadata").len())
        .sum();
    assert_eq!(bytes, 34 * expected.len() as u64);

    // Retention removes the first segment and its index file.
    let second = log.segment_base_offsets()[1];
    log.advance_log_start_offset(second)
        .expect("delete records");
    let kept: Vec<_> = expected
        .iter()
        .copied()
        .filter(|t| t.last_offset >= second)
        .collect();
    assert_eq!(log.aborted_transactions(), kept);
    assert!(!TxnIndexFile(0).path(dir.path()).exists());
}

struct TxnIndexFile(i64);
impl TxnIndexFile {
    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{:020}.txnindex", self.0))
    }
}

#[test]
fn truncation_drops_aborts_past_the_cut_and_reopens_the_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let first = txn(&mut log, 1, 0, 1);
    let abort = end(&mut log, 1, false);
    assert_eq!(log.aborted_transactions().len(), 1);
    log.truncate_to(abort).expect("truncate");
    assert!(log.aborted_transactions().is_empty());
    assert_eq!(log.producer_state().first_unstable_offset(), Some(first));
    assert_eq!(
        log.producer_state().producers()[&1].current_txn_first_offset,
        Some(first)
    );
    // Aborted again after the truncation: one entry, at the new marker.
    let abort = end(&mut log, 1, false);
    assert_eq!(
        log.aborted_transactions(),
        vec![aborted(1, first, abort, abort + 1)]
    );
}

#[test]
fn open_transactions_survive_clean_and_unclean_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), config()).expect("open");
        let first = txn(&mut log, 1, 0, 1);
        // Enough other data to roll several segments (snapshots at each).
        for i in 0..30 {
            log.append_as_leader(&plain(2), 0, 0).expect("plain");
            if i == 3 {
                let m = marker_batch(9, 0, false, 7);
                log.append_as_leader(&m, 0, 0).expect("marker of 9");
            }
        }
        assert!(log.num_segments() > 2);
        if clean {
            log.close().expect("close");
        } else {
            drop(log);
        }
        let log = Log::open(dir.path(), config()).expect("reopen");
        assert!(log.producer_state().last_load().snapshot_offset.is_some());
        let e = &log.producer_state().producers()[&1];
        assert_eq!(e.current_txn_first_offset, Some(first), "clean={clean}");
        assert_eq!(
            log.producer_state().producers()[&9].coordinator_epoch,
            Some(7)
        );
        assert_eq!(log.last_stable_offset(log.log_end_offset()), first);
    }
}

#[test]
fn recovery_rebuilds_a_lost_index_of_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let first = txn(&mut log, 1, 0, 1);
    let abort = end(&mut log, 1, false);
    let active = *log.segment_base_offsets().last().expect("segment");
    drop(log); // a crash: no clean-shutdown marker
    // The index write was lost; a stale entry past the data is there instead.
    let path = TxnIndexFile(active).path(dir.path());
    fs::remove_file(&path).expect("remove");
    let mut stale = vec![0u8; 34];
    stale[2..10].copy_from_slice(&5i64.to_be_bytes());
    stale[18..26].copy_from_slice(&1_000i64.to_be_bytes());
    fs::write(&path, &stale).expect("stale entry");
    let log = Log::open(dir.path(), config()).expect("reopen");
    assert_eq!(
        log.aborted_transactions(),
        vec![aborted(1, first, abort, abort + 1)]
    );
    assert_eq!(fs::read(&path).expect("index").len(), 34);
}

#[test]
fn a_follower_copy_has_the_same_transactions_and_index() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = Log::open(leader_dir.path(), config()).expect("open");
    let mut follower = Log::open(follower_dir.path(), config()).expect("open");
    for pid in 1..=4 {
        txn(&mut leader, pid, 0, 2);
    }
    end(&mut leader, 2, false);
    end(&mut leader, 3, true);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let read = leader.read(offset, 1000, i64::MAX, true).expect("read");
        follower.append_as_follower(&read.records).expect("append");
        offset = follower.log_end_offset();
    }
    assert_eq!(
        follower.producer_state().producers(),
        leader.producer_state().producers()
    );
    assert_eq!(
        follower.producer_state().ongoing_transactions(),
        leader.producer_state().ongoing_transactions()
    );
    assert_eq!(
        follower.aborted_transactions(),
        leader.aborted_transactions()
    );
    assert_eq!(follower.aborted_transactions().len(), 1);
}

#[test]
fn an_abort_indexed_in_a_later_segment_is_found_for_a_read_of_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config()).expect("open");
    let first = txn(&mut log, 1, 0, 1);
    for _ in 0..20 {
        log.append_as_leader(&plain(3), 0, 0).expect("plain");
    }
    let abort = end(&mut log, 1, false);
    let marker_segment = *log.segment_base_offsets().last().expect("segment");
    assert!(
        marker_segment > first + 1,
        "the marker is in a later segment"
    );
    let hw = log.log_end_offset();
    log.on_high_watermark_updated(hw);
    // A small read covering only the transaction's first batch.
    let (read, txns) = log
        .read_isolated(first, 1, hw, true, IsolationLevel::ReadCommitted)
        .expect("read");
    assert_eq!(read.next_offset, first + 1);
    assert_eq!(txns, Some(vec![aborted(1, first, abort, abort + 1)]));
}
