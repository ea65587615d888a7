//! Decompressing a batch's records with a bound on what comes out.
//!
//! The codecs kafka-protocol ships decompress into a buffer that grows with
//! whatever the input says: a few hundred bytes of zstd or gzip can expand
//! to gigabytes, and raw snappy's header alone makes it allocate the length
//! it claims (up to 4 GiB) before reading anything. The fuzzer found both
//! (`tests/fuzz_batches.rs`). Every place Fjord looks inside a producer's
//! batch (recompression to the topic's codec, produce-time record checks,
//! the cleaner, offset-for-timestamp) decodes through here instead, and a
//! batch whose records would pass [`MAX_DECOMPRESSED_BATCH_BYTES`] is
//! refused as corrupt. Kafka has no such bound (it streams records); a
//! departure written in docs/compatibility.md.

use std::io::Read;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// The most bytes one batch's records may decompress to. Decoded records
/// take up to ~25x their encoded size in memory (a 7-byte record becomes a
/// ~180-byte `Record`), so this bounds one decode near 400 MiB; producers'
/// batches are far smaller (Java's batch.size 16 KiB, librdkafka's 1 MB,
/// max.request.size 1 MiB, compressed).
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 16 << 20;

/// xerial snappy-java's stream header (Kafka's snappy framing).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// One batch decoded as kafka-protocol's `RecordBatchDecoder::decode` does,
/// with [`decompress`] as its codec.
pub fn decode_batch(buf: &mut Bytes) -> anyhow::Result<RecordSet> {
    RecordBatchDecoder::decode_with_custom_compression(
        buf,
        Some(|compressed: &mut Bytes, compression| decompress(compression, compressed)),
    )
}

/// `compressed` decompressed, or an error past [`MAX_DECOMPRESSED_BATCH_BYTES`].
pub fn decompress(compression: Compression, compressed: &mut Bytes) -> anyhow::Result<Bytes> {
    let input = compressed.split_to(compressed.remaining());
    match compression {
        Compression::None => Ok(input),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input.reader())),
        Compression::Lz4 => {
            read_bounded(lz4::Decoder::new(input.reader()).context("lz4 frame header")?)
        }
        Compression::Zstd => read_bounded(
            zstd::stream::read::Decoder::new(input.reader()).context("zstd frame header")?,
        ),
        Compression::Snappy => snappy(&input),
    }
}

fn read_bounded(reader: impl Read) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .context("decompressing records")?;
    if out.len() > MAX_DECOMPRESSED_BATCH_BYTES {
        bail!("records decompress past {MAX_DECOMPRESSED_BATCH_BYTES} bytes");
    }
    Ok(Bytes::from(out))
}

/// Kafka's snappy: xerial's framing (a header, then blocks each prefixed by
/// its compressed length) or, as Kafka's reader falls back to, one raw
/// snappy block. Each block's claimed length is checked before anything is
/// allocated for it.
fn snappy(input: &[u8]) -> anyhow::Result<Bytes> {
    if !input.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        snappy_block(input, &mut out)?;
        return Ok(Bytes::from(out));
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .context("truncated snappy header")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = rest.get(..4).context("truncated snappy block length")?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let block = rest.get(4..4 + len).context("truncated snappy block")?;
        snappy_block(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(Bytes::from(out))
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    let len = snap::raw::decompress_len(block).context("snappy block header")?;
    let start = out.len();
    if start + len > MAX_DECOMPRESSED_BATCH_BYTES {
        bail!("records decompress past {MAX_DECOMPRESSED_BATCH_BYTES} bytes");
    }
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .context("snappy block")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    use super::*;

    fn compressed_with(compression: Compression, plain: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let put = |t: &mut BytesMut| {
            t.extend_from_slice(plain);
            Ok(())
        };
        match compression {
            Compression::Gzip => Gzip::compress(&mut out, put),
            Compression::Snappy => Snappy::compress(&mut out, put),
            Compression::Lz4 => Lz4::compress(&mut out, put),
            Compression::Zstd => Zstd::compress(&mut out, put),
            Compression::None => put(&mut out),
        }
        .expect("compresses");
        out.freeze()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_what_kafka_protocol_compressed() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in CODECS {
            let mut c = compressed_with(codec, &plain);
            assert_eq!(
                decompress(codec, &mut c).expect("decompresses"),
                plain,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_bomb_is_refused_not_allocated() {
        let zeros = vec![0u8; MAX_DECOMPRESSED_BATCH_BYTES + 1];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut c = compressed_with(codec, &zeros);
            assert!(c.len() < zeros.len() / 10, "{codec:?} compresses zeros");
            let err = decompress(codec, &mut c).expect_err("past the bound");
            assert!(
                err.to_string().contains("decompress past"),
                "{codec:?}: {err:#}"
            );
        }
    }

    #[test]
    fn a_raw_snappy_header_claiming_gigabytes_allocates_nothing() {
        // varint 0xFFFFFFFF: "4 GiB follow", then nothing.
        let mut claim = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decompress(Compression::Snappy, &mut claim).is_err());
    }
}
