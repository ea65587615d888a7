//! `Log::plan_read` + `ReadPlan::execute`: the read done outside the
//! caller's lock sees exactly the batches that were whole when planned,
//! whatever appends, retention or truncation do in between.

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::{Stored, fill, headers, small_config};
use crate::batch::test_util::batch;
use crate::{Log, LogConfig};

fn concat(model: &[Stored]) -> Vec<u8> {
    model.iter().flat_map(|s| s.bytes.iter().copied()).collect()
}

#[test]
fn a_planned_read_ignores_appends_after_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 3, 2, 1_000, 0);
    let leo = log.log_end_offset();

    let plan = log.plan_read(0, 1 << 20, i64::MAX, true).expect("plan");
    // Appends land after the planned bytes (the partition lock is free).
    fill(&mut log, &mut model, 3, 2, 2_000, 0);
    let read = plan.execute().expect("read").expect("not truncated");

    assert_eq!(read.records, Bytes::from(concat(&model[..3])));
    assert_eq!(read.next_offset, leo);
    assert_eq!(read.log_end_offset, leo);
    assert_eq!(headers(&read.records).len(), 3);
}

#[test]
fn a_planned_read_stops_at_max_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 4, 2, 1_000, 0);
    // The high watermark after the second batch.
    let hw = model[1].last + 1;

    let read = log
        .plan_read(0, 1 << 20, hw, true)
        .expect("plan")
        .execute()
        .expect("read")
        .expect("not truncated");

    assert_eq!(read.records, Bytes::from(concat(&model[..2])));
    assert_eq!(read.next_offset, hw);
}

#[test]
fn a_planned_read_cut_by_a_truncation_is_refused_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 4, 2, 1_000, 0);

    let plan = log
        .plan_read(model[2].base, 1 << 20, i64::MAX, true)
        .expect("plan");
    // A follower truncating its log, then appending other batches at the
    // same positions: the plan's bytes changed under it.
    log.truncate_to(model[2].base).expect("truncate");
    let other = batch(5, 9_000, 20, Compression::None);
    log.append_as_leader(&other, 1, 0).expect("append");

    assert!(plan.execute().expect("read").is_none());
    // A read planned after the truncation sees the new batch.
    let read = log
        .read(model[2].base, 1 << 20, i64::MAX, true)
        .expect("read");
    assert_eq!(headers(&read.records).len(), 1);
    assert_eq!(headers(&read.records)[0].records_count, 5);
}

#[test]
fn a_planned_read_of_a_deleted_segment_still_reads_its_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_bytes: 1,
        ..small_config(1024)
    };
    let mut log = Log::open(dir.path(), config).expect("open");
    let mut model = Vec::new();
    fill(&mut log, &mut model, 40, 2, 1_000, 0);
    assert!(log.num_segments() > 2);

    let plan = log.plan_read(0, 1 << 20, i64::MAX, true).expect("plan");
    let deleted = log
        .apply_retention(0, log.log_end_offset())
        .expect("retention");
    assert!(deleted > 0);
    assert!(log.log_start_offset() > 0);
    // The open handle reads the unlinked file: the batches as planned.
    let read = plan.execute().expect("read").expect("not truncated");
    let first_segment: Vec<Stored> = model
        .iter()
        .filter(|s| s.last < read.next_offset)
        .cloned()
        .collect();
    assert!(!first_segment.is_empty());
    assert_eq!(read.records, Bytes::from(concat(&first_segment)));
}
