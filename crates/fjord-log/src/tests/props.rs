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
