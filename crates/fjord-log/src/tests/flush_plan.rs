//! The flush split around the caller's lock (`plan_flush`, `FlushPlan::sync`,
//! `complete_flush`, `RecoveryPointWrite::write`): the recovery point moves
//! to what the plan covered, never past bytes a truncation cut meanwhile.

use super::{Stored, fill, small_config};
use crate::checkpoint::{RECOVERY_POINT, read_offset};
use crate::{Log, LogConfig};

#[test]
fn a_split_flush_covers_what_was_there_when_planned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        flush_messages: 1,
        ..small_config(4096)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let mut model: Vec<Stored> = Vec::new();
    fill(&mut log, &mut model, 3, 2, 1_000, 0);
    let planned_at = log.log_end_offset();

    let plan = log.plan_flush().expect("plan");
    assert_eq!(plan.covers(), planned_at);
    // Appends (and rolls) while the fsyncs run without the lock.
    fill(&mut log, &mut model, 40, 2, 2_000, 0);
    let synced = plan.sync().expect("sync");
    let write = log.complete_flush(synced).expect("recovery point moved");
    assert_eq!(log.recovery_point(), planned_at);
    write.write().expect("checkpoint");
    assert_eq!(
        read_offset(dir.path(), RECOVERY_POINT).expect("read"),
        Some(planned_at)
    );
    // The later appends count towards the next flush.
    assert!(log.flush_due(0));
}

#[test]
fn a_truncation_during_the_fsyncs_keeps_the_recovery_point_it_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model: Vec<Stored> = Vec::new();
    fill(&mut log, &mut model, 4, 2, 1_000, 0);
    log.flush().expect("flush");
    fill(&mut log, &mut model, 4, 2, 2_000, 0);

    let plan = log.plan_flush().expect("plan");
    assert_eq!(plan.covers(), 16);
    // A follower cut its log and appended other batches at those offsets.
    log.truncate_to(4).expect("truncate");
    fill(&mut log, &mut model, 2, 2, 3_000, 1);
    let synced = plan.sync().expect("sync");
    assert!(log.complete_flush(synced).is_none());
    assert_eq!(log.recovery_point(), 4);
    assert_eq!(
        read_offset(dir.path(), RECOVERY_POINT).expect("read"),
        Some(4)
    );
}

#[test]
fn a_checkpoint_write_planned_before_a_truncation_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model: Vec<Stored> = Vec::new();
    fill(&mut log, &mut model, 4, 2, 1_000, 0);

    let plan = log.plan_flush().expect("plan");
    let write = log
        .complete_flush(plan.sync().expect("sync"))
        .expect("moved");
    // The truncation (under the lock) comes before the write (outside it).
    log.truncate_to(2).expect("truncate");
    write.write().expect("write");
    assert_eq!(
        read_offset(dir.path(), RECOVERY_POINT).expect("read"),
        Some(2)
    );
}
