//! `compression.type` on the leader: batches whose codec is not the topic's
//! are decoded and encoded again with the topic's codec and level (Kafka's
//! `LogValidator` does the same when the source and target codecs differ).
//!
//! Only the leader's client appends come here, before the partition lock:
//! this is CPU work on the request's own bytes. With the default
//! `compression.type=producer`, or when every batch already uses the
//! topic's codec, nothing is decoded or copied (the header walk is the only
//! cost). Control batches are left as written. Each re-encoded batch keeps
//! its records' offsets (so `lastOffsetDelta`), timestamps, keys, values and
//! headers, and its producer id, epoch, base sequence and transactional bit,
//! so sequence checks and transactions see the same batch; its CRC is new.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

use crate::batch::BatchHeader;
use crate::config::{CompressionType, LogConfig};
use crate::error::LogError;

/// The attributes bits that name a batch's codec.
const CODEC_MASK: i16 = 0x07;

/// `records` with every non-control batch in `config.compression_type`, or
/// `None` when they all are already (or the type is `producer`). Batches that
/// do not parse or decode are copied as they are, for the log's validation
/// to refuse with its usual error.
pub fn recompress(records: &Bytes, config: &LogConfig) -> Result<Option<Bytes>, LogError> {
    let Some(target) = config.compression_type.codec() else {
        return Ok(None);
    };
    let mut batches = Vec::new();
    let mut position = 0;
    while let Some(header) = BatchHeader::parse(&records[position..]) {
        let end = position + header.size();
        if end > records.len() {
            break;
        }
        batches.push((position..end, header));
        position = end;
    }
    let differs = |h: &BatchHeader| !h.is_control() && h.attributes & CODEC_MASK != target;
    if !batches.iter().any(|(_, h)| differs(h)) {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for (range, header) in batches {
        let original = records.slice(range);
        if differs(&header) {
            encode(&mut out, original.clone(), config).map_err(|source| {
                LogError::RecordDecode {
                    base_offset: header.base_offset,
                    source: source.into(),
                }
            })?;
        } else {
            out.extend_from_slice(&original);
        }
    }
    // Bytes after the last whole batch go along, for the log to refuse.
    out.extend_from_slice(&records[position..]);
    Ok(Some(out.freeze()))
}

/// Decode one batch and append it to `out` in the topic's codec.
fn encode(out: &mut BytesMut, mut batch: Bytes, config: &LogConfig) -> anyhow::Result<()> {
    let set = crate::decompress::decode_batch(&mut batch)?;
    let compression = match config.compression_type {
        CompressionType::Gzip => Compression::Gzip,
        CompressionType::Snappy => Compression::Snappy,
        CompressionType::Lz4 => Compression::Lz4,
        CompressionType::Zstd => Compression::Zstd,
        CompressionType::Uncompressed | CompressionType::Producer => Compression::None,
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let compressor = |plain: &mut BytesMut, out: &mut BytesMut, codec: Compression| {
        compress(plain, out, codec, config)
    };
    RecordBatchEncoder::encode_with_custom_compression(
        out,
        &set.records,
        &options,
        Some(compressor),
    )
}

/// Compress one batch's encoded records with the topic's level for `codec`.
/// Framing as Kafka's clients write it: gzip streams, LZ4 frames with
/// independent blocks, zstd frames, and snappy as kafka-protocol writes it.
fn compress(
    plain: &mut BytesMut,
    out: &mut BytesMut,
    codec: Compression,
    config: &LogConfig,
) -> anyhow::Result<()> {
    match codec {
        Compression::None => out.put_slice(plain),
        Compression::Gzip => {
            let level = match config.compression_gzip_level {
                -1 => flate2::Compression::default(),
                level => flate2::Compression::new(level.clamp(1, 9) as u32),
            };
            let mut encoder = flate2::write::GzEncoder::new(out.writer(), level);
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(config.compression_lz4_level.clamp(1, 17) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            encoder.write_all(plain)?;
            encoder.finish().1?;
        }
        Compression::Zstd => {
            zstd::stream::copy_encode(&plain[..], out.writer(), config.compression_zstd_level)?;
        }
        Compression::Snappy => {
            use kafka_protocol::compression::{Compressor, Snappy};
            <Snappy as Compressor<BytesMut>>::compress(out, |buf: &mut BytesMut| {
                buf.put_slice(plain);
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    use super::*;
    use crate::testing::{TIMESTAMP, encode as encode_records, record};

    fn batch(n: i64, compression: Compression) -> Bytes {
        let records: Vec<_> = (0..n)
            .map(|i| {
                record(
                    i,
                    TIMESTAMP + i,
                    Some(Bytes::from(format!("k{i}"))),
                    Bytes::from(format!("value-{i}").repeat(20)),
                )
            })
            .collect();
        encode_records(&records, compression)
    }

    fn config(compression_type: CompressionType) -> LogConfig {
        LogConfig {
            compression_type,
            ..LogConfig::default()
        }
    }

    fn codec_of(records: &Bytes) -> i16 {
        BatchHeader::parse(records).expect("header").attributes & CODEC_MASK
    }

    #[test]
    fn producer_and_matching_codecs_copy_nothing() {
        let gzip = batch(5, Compression::Gzip);
        assert_eq!(
            recompress(&gzip, &config(CompressionType::Producer)).unwrap(),
            None
        );
        assert_eq!(
            recompress(&gzip, &config(CompressionType::Gzip)).unwrap(),
            None
        );
        let plain = batch(5, Compression::None);
        assert_eq!(
            recompress(&plain, &config(CompressionType::Uncompressed)).unwrap(),
            None
        );
    }

    /// Every codec to every other: same records, offsets and timestamps.
    #[test]
    fn batches_change_codec_and_keep_their_records() {
        let codecs = [
            (Compression::None, CompressionType::Uncompressed),
            (Compression::Gzip, CompressionType::Gzip),
            (Compression::Snappy, CompressionType::Snappy),
            (Compression::Lz4, CompressionType::Lz4),
            (Compression::Zstd, CompressionType::Zstd),
        ];
        for (from, _) in codecs {
            let original = batch(7, from);
            let before = RecordBatchDecoder::decode(&mut original.clone()).unwrap();
            for (to, target) in codecs.iter().filter(|(c, _)| *c != from) {
                let out = recompress(&original, &config(*target))
                    .unwrap()
                    .unwrap_or_else(|| panic!("{from:?} -> {to:?} not recompressed"));
                assert_eq!(codec_of(&out), *to as i16, "{from:?} -> {to:?}");
                let header = BatchHeader::parse(&out).unwrap();
                assert_eq!(header.last_offset_delta, 6);
                assert_eq!(header.records_count, 7);
                let after = RecordBatchDecoder::decode(&mut out.clone()).unwrap();
                assert_eq!(after.records, before.records, "{from:?} -> {to:?}");
                crate::batch::validate(&out, 0, None, crate::batch::Origin::Client)
                    .expect("CRC and framing hold");
            }
        }
    }

    /// Levels change the bytes, not the records.
    #[test]
    fn levels_are_used() {
        let original = batch(50, Compression::None);
        let fast = LogConfig {
            compression_zstd_level: 1,
            ..config(CompressionType::Zstd)
        };
        let slow = LogConfig {
            compression_zstd_level: 19,
            ..config(CompressionType::Zstd)
        };
        let a = recompress(&original, &fast).unwrap().unwrap();
        let b = recompress(&original, &slow).unwrap().unwrap();
        let decode = |b: &Bytes| RecordBatchDecoder::decode(&mut b.clone()).unwrap().records;
        assert_eq!(decode(&a), decode(&b));
        for level in [-1, 1, 9] {
            let gzip = LogConfig {
                compression_gzip_level: level,
                ..config(CompressionType::Gzip)
            };
            let out = recompress(&original, &gzip).unwrap().unwrap();
            assert_eq!(decode(&out), decode(&original), "gzip level {level}");
        }
    }

    /// Two batches, one already right: only the other is rewritten, order kept.
    #[test]
    fn only_differing_batches_are_rewritten() {
        let mut two = BytesMut::new();
        let lz4 = batch(3, Compression::Lz4);
        two.extend_from_slice(&lz4);
        two.extend_from_slice(&batch(4, Compression::None));
        let out = recompress(&two.freeze(), &config(CompressionType::Lz4))
            .unwrap()
            .unwrap();
        assert_eq!(&out[..lz4.len()], &lz4[..]);
        let second = BatchHeader::parse(&out[lz4.len()..]).unwrap();
        assert_eq!(second.attributes & CODEC_MASK, Compression::Lz4 as i16);
        assert_eq!(second.records_count, 4);
    }
}
