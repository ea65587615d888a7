//! Property tests: reads return whole batches; recovery keeps every whole batch.

use std::fs::OpenOptions;

use kafka_protocol::records::Compression;
use proptest::prelude::*;

use super::*;

fn arb_batches() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((1usize..6, 0usize..300), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn prop_reads_return_whole_batches(
        specs in arb_batches(),
        segment_bytes in 300u64..3000,
        reads in prop::collection::vec((0.0f64..1.0, 1usize..4000, 0.0f64..1.2, any::<bool>()), 1..30),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), small_config(segment_bytes)).expect("open");
        let mut model = Vec::new();
        for (i, &(count, len)) in specs.iter().enumerate() {
            let b = batch(count, i as i64 * 100, len, Compression::None);
            if b.len() as u64 > segment_bytes {
                continue;
            }
            let info = log.append_as_leader(&b, 0, 0).expect("append");
            model.push(Stored { base: info.first_offset, last: info.last_offset, bytes: stored(&b, info.first_offset, 0) });
        }
        let leo = log.log_end_offset();
        for &(at, max_bytes, max_at, min_one) in &reads {
            let start = (at * leo as f64) as i64;
            let max_offset = (max_at * leo as f64) as i64;
            check_read(&log, &model, start, max_bytes, max_offset, min_one);
        }
        drop(log);
        let log = Log::open(dir.path(), small_config(segment_bytes)).expect("reopen");
        prop_assert_eq!(log.log_end_offset(), leo);
        check_all_offsets(&log, &model);
    }

    #[test]
    fn prop_recovery_keeps_every_whole_batch_before_a_cut(
        specs in arb_batches(),
        cut_frac in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(1 << 20);
        let mut log = Log::open(dir.path(), config.clone()).expect("open");
        let mut model = Vec::new();
        for (i, &(count, len)) in specs.iter().enumerate() {
            let b = batch(count, i as i64, len, Compression::None);
            let info = log.append_as_leader(&b, 0, 0).expect("append");
            model.push(Stored { base: info.first_offset, last: info.last_offset, bytes: stored(&b, info.first_offset, 0) });
        }
        let path = active_segment_path(&log);
        drop(log);
        let total: usize = model.iter().map(|s| s.bytes.len()).sum();
        let cut = (cut_frac * total as f64) as usize;
        OpenOptions::new().write(true).open(&path).expect("open").set_len(cut as u64).expect("cut");
        let mut end = 0;
        let survivors: Vec<Stored> = model.iter().take_while(|s| { end += s.bytes.len(); end <= cut }).cloned().collect();
        let log = Log::open(dir.path(), config).expect("recover");
        prop_assert_eq!(log.log_end_offset(), survivors.last().map_or(0, |s| s.last + 1));
        check_all_offsets(&log, &survivors);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        count: usize,
        len: usize,
        new_epoch: bool,
    },
    /// Truncate to the boundary of the batch at this fraction of the log.
    Truncate(f64),
    AdvanceStart(f64),
    Reopen,
    CloseReopen,
    Flush,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..200, any::<bool>())
            .prop_map(|(count, len, new_epoch)| Op::Append { count, len, new_epoch }),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        1 => (0.0f64..1.0).prop_map(Op::AdvanceStart),
        1 => Just(Op::Reopen),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::Flush),
    ]
}

/// What the log should look like.
#[derive(Default)]
struct Model {
    batches: Vec<Stored>,
    log_start: i64,
    leo: i64,
    epoch: i32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random appends, truncations, DeleteRecords, flushes and restarts keep
    /// the log equal to a simple model.
    #[test]
    fn prop_log_matches_model(ops in prop::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(1200);
        let mut log = Log::open(dir.path(), config.clone()).expect("open");
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Append { count, len, new_epoch } => {
                    m.epoch += i32::from(new_epoch);
                    let b = batch(count, m.leo, len, Compression::None);
                    let info = log.append_as_leader(&b, m.epoch, 0).expect("append");
                    prop_assert_eq!(info.first_offset, m.leo);
                    m.batches.push(Stored {
                        base: info.first_offset,
                        last: info.last_offset,
                        bytes: stored(&b, info.first_offset, m.epoch),
                    });
                    m.leo = info.last_offset + 1;
                }
                Op::Truncate(frac) => {
                    let i = (frac * m.batches.len() as f64) as usize;
                    let offset = m.batches.get(i).map_or(m.leo, |s| s.base);
                    log.truncate_to(offset).expect("truncate");
                    if offset < m.leo {
                        if offset < m.log_start {
                            m.log_start = offset;
                        }
                        m.batches.retain(|s| s.base < offset);
                        m.leo = offset;
                    }
                }
                Op::AdvanceStart(frac) => {
                    let offset = m.log_start + (frac * (m.leo - m.log_start) as f64) as i64;
                    log.advance_log_start_offset(offset).expect("advance");
                    m.log_start = m.log_start.max(offset);
                }
                Op::Reopen => {
                    drop(log);
                    log = Log::open(dir.path(), config.clone()).expect("reopen");
                }
                Op::CloseReopen => {
                    log.close().expect("close");
                    log = Log::open(dir.path(), config.clone()).expect("reopen");
                }
                Op::Flush => {
                    log.flush().expect("flush");
                    prop_assert_eq!(log.recovery_point(), m.leo);
                }
            }
            prop_assert_eq!(log.log_end_offset(), m.leo);
            prop_assert_eq!(log.log_start_offset(), m.log_start);
            let readable: Vec<Stored> =
                m.batches.iter().filter(|s| s.last >= m.log_start).cloned().collect();
            check_all_offsets(&log, &readable);
            if m.leo > m.log_start {
                check_read(&log, &readable, m.log_start, 500, m.leo, false);
            }
            for &(epoch, start) in log.leader_epochs() {
                prop_assert!(start >= m.log_start && start < m.leo.max(m.log_start + 1));
                prop_assert!(epoch <= m.epoch);
            }
        }
    }
}
