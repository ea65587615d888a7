//! Hostile record batches (issue 17, item 7), run by the test command for a
//! bounded time (`fjord-fuzz`): what a producer's bytes meet in the log —
//! batch validation for a client and for a replica, the record decoder the
//! log uses (offset-for-timestamp, recompression to the topic's codec) and
//! the cleaner's own record walk and rebuild.
//!
//! Most mutations break the CRC and stop at validation, which a real
//! attacker does not: each input is also tried with its CRC recomputed, so
//! the record walk behind validation sees the damage too.

use bytes::Bytes;
use fjord_fuzz::Fuzz;
use kafka_protocol::records::Compression;

use crate::batch::test_util::batch;
use crate::batch::{ATTRIBUTES_AT, BatchHeader, LOG_OVERHEAD, Origin, split_batches};
use crate::cleaner::records::{parse_records, rebuild_batch, records_body};
use crate::config::{CompressionType, LogConfig};
use crate::recompress;

const CRC_AT: usize = 17;

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        seeds.push(batch(1, 1_000, 3, compression).to_vec());
        seeds.push(batch(4, 1_000, 40, compression).to_vec());
    }
    // Two batches back to back, as a produce request may carry.
    let mut two = batch(2, 5, 1, Compression::None).to_vec();
    two.extend_from_slice(&batch(2, 7, 1, Compression::Lz4));
    seeds.push(two);
    seeds
}

/// `input` with the first batch's CRC32C made right for its (damaged) bytes.
fn with_crc_fixed(input: &[u8]) -> Option<Vec<u8>> {
    let header = BatchHeader::parse(input)?;
    let end = header.size().min(input.len());
    if end <= ATTRIBUTES_AT || header.batch_length < 0 {
        return None;
    }
    let mut fixed = input.to_vec();
    let crc = crc32c::crc32c(&fixed[ATTRIBUTES_AT..end]);
    fixed[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Some(fixed)
}

fn everything_the_log_does_with(input: &[u8]) {
    for origin in [Origin::Client, Origin::Replica] {
        let Ok(batches) = split_batches(input, Some(1 << 20), origin) else {
            continue;
        };
        for (position, header) in batches {
            let bytes = &input[position..position + header.size()];
            let _ = crate::decode_batch(&mut Bytes::copy_from_slice(bytes));
            if let Ok(body) = records_body(bytes, &header)
                && let Ok(records) = parse_records(&body, &header)
            {
                let kept: Vec<_> = records.into_iter().step_by(2).collect();
                let _ = rebuild_batch(bytes, &header, &kept);
            }
        }
    }
    let config = LogConfig {
        compression_type: CompressionType::Zstd,
        ..LogConfig::default()
    };
    let _ = recompress(&Bytes::copy_from_slice(input), &config);
}

#[test]
fn crc_fix_up_makes_a_damaged_batch_validate() {
    let mut damaged = batch(3, 1_000, 10, Compression::None).to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert!(split_batches(&damaged, None, Origin::Client).is_err());
    let fixed = with_crc_fixed(&damaged).expect("a header");
    assert!(split_batches(&fixed, None, Origin::Client).is_ok());
    assert!(fixed.len() > LOG_OVERHEAD);
}

#[test]
fn fuzz_record_batches() {
    let report = Fuzz::from_env("record batches")
        .max_alloc_bytes(512 << 20)
        .run(&seeds(), |input| {
            everything_the_log_does_with(input);
            if let Some(fixed) = with_crc_fixed(input) {
                everything_the_log_does_with(&fixed);
            }
        });
    assert!(report.cases > 0);
}
