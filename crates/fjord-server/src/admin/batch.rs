//! Record batches on the wire: encoding what `produce` sends and splitting
//! what `fetch` returns into complete batches.

use anyhow::{Context, Result, bail, ensure};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Bytes before a batch's body that every magic shares: base offset (i64)
/// and batch length (i32, counting what follows it).
const LOG_OVERHEAD: usize = 12;
/// Offset of the magic byte within a batch.
const MAGIC_OFFSET: usize = 16;
/// Offset of `lastOffsetDelta` (i32) within a v2 batch.
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// A v2 batch header is 61 bytes; its length field counts 61 - 12.
const V2_MIN_BATCH_LENGTH: usize = 61 - LOG_OVERHEAD;

/// One line from stdin, split into key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerRecord {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Bytes,
}

/// Encodes `records` as exactly one v2 record batch for one partition,
/// non-idempotent (producer id -1).
///
/// The encoder starts a new batch whenever `offset - sequence` changes
/// between records, so each record's sequence is `base_sequence +
/// offset_delta` with `base_sequence` = -1 (`NO_SEQUENCE`): the header
/// then says "no sequence", and all records stay in one batch.
pub(crate) fn encode_batch(
    records: &[ProducerRecord],
    timestamp_ms: i64,
    compression: Compression,
) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let offset_delta = i32::try_from(i).context("too many records for one batch")?;
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(offset_delta),
                sequence: NO_SEQUENCE.wrapping_add(offset_delta),
                timestamp: timestamp_ms,
                key: r.key.clone(),
                value: Some(r.value.clone()),
                headers: IndexMap::new(),
            })
        })
        .collect::<Result<_>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}

/// One complete batch from a fetch response.
#[derive(Debug, Clone)]
pub(crate) struct FetchedBatch {
    pub(crate) base_offset: i64,
    /// Offset of the batch's last record, also when compaction removed it:
    /// the next fetch starts after it.
    pub(crate) last_offset: i64,
    bytes: Bytes,
}

impl FetchedBatch {
    /// The batch's data records (control records such as transaction
    /// markers are dropped), decompressed.
    pub(crate) fn records(&self) -> Result<Vec<Record>> {
        let mut bytes = self.bytes.clone();
        let set = RecordBatchDecoder::decode(&mut bytes)
            .with_context(|| format!("decode record batch at offset {}", self.base_offset))?;
        Ok(set.records.into_iter().filter(|r| !r.control).collect())
    }
}

/// Splits a partition's fetched `records` into complete batches. A broker
/// may cut the last batch short at the fetch size limit; that tail is
/// dropped here and fetched again from its offset next time.
pub(crate) fn split_batches(mut records: Bytes) -> Result<Vec<FetchedBatch>> {
    let mut batches = Vec::new();
    while records.len() >= LOG_OVERHEAD {
        let base_offset = (&records[..8]).get_i64();
        let length = (&records[8..LOG_OVERHEAD]).get_i32();
        let Ok(length) = usize::try_from(length) else {
            bail!("corrupt record batch at offset {base_offset}: length {length}");
        };
        let total = LOG_OVERHEAD + length;
        if records.len() < total {
            break; // partial trailing batch
        }
        ensure!(
            total > MAGIC_OFFSET,
            "corrupt record batch at offset {base_offset}: length {length}"
        );
        let magic = records[MAGIC_OFFSET];
        ensure!(
            magic == 2,
            "record batch at offset {base_offset} uses message format v{magic}; only v2 is supported"
        );
        ensure!(
            length >= V2_MIN_BATCH_LENGTH,
            "corrupt record batch at offset {base_offset}: length {length}"
        );
        let last_offset_delta =
            (&records[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]).get_i32();
        let bytes = records.split_to(total);
        batches.push(FetchedBatch {
            base_offset,
            last_offset: base_offset + i64::from(last_offset_delta),
            bytes,
        });
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;

    fn record(key: Option<&'static str>, value: &'static str) -> ProducerRecord {
        ProducerRecord {
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Bytes::from_static(value.as_bytes()),
        }
    }

    #[test]
    fn many_records_encode_as_one_batch_without_sequence() {
        let records = vec![record(None, "a"), record(Some("k"), "b"), record(None, "c")];
        let encoded = encode_batch(&records, 1_700_000_000_000, Compression::None).expect("encode");
        let infos = RecordBatchDecoder::decode_batch_info(&mut encoded.clone()).expect("info");
        assert_eq!(infos.len(), 1, "one batch");
        assert_eq!(infos[0].record_count, 3);
        assert_eq!(infos[0].base_sequence, NO_SEQUENCE);
        assert_eq!(infos[0].producer_id, NO_PRODUCER_ID);
        assert_eq!(infos[0].min_offset, 0);

        let batches = split_batches(encoded).expect("split");
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].base_offset, batches[0].last_offset), (0, 2));
        let decoded = batches[0].records().expect("records");
        let values: Vec<_> = decoded.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                Some(Bytes::from_static(b"a")),
                Some(Bytes::from_static(b"b")),
                Some(Bytes::from_static(b"c"))
            ]
        );
        assert_eq!(decoded[1].key, Some(Bytes::from_static(b"k")));
        assert_eq!(decoded[2].timestamp, 1_700_000_000_000);
    }

    #[test]
    fn compressed_batches_round_trip() {
        let records: Vec<_> = (0..50).map(|_| record(None, "hello hello hello")).collect();
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let encoded = encode_batch(&records, 0, compression).expect("encode");
            let batches = split_batches(encoded).expect("split");
            assert_eq!(batches.len(), 1, "{compression:?}");
            assert_eq!(batches[0].records().expect("decode").len(), 50);
        }
    }

    /// Rebases an encoded batch to `base_offset`, as a broker does on append.
    fn at_offset(batch: &Bytes, base_offset: i64) -> Bytes {
        let mut out = BytesMut::from(&batch[..]);
        out[..8].copy_from_slice(&base_offset.to_be_bytes());
        out.freeze()
    }

    #[test]
    fn split_drops_a_partial_trailing_batch() {
        let one = encode_batch(
            &[record(None, "x"), record(None, "y")],
            0,
            Compression::None,
        )
        .expect("encode");
        let mut fetched = BytesMut::new();
        fetched.extend_from_slice(&at_offset(&one, 10));
        fetched.extend_from_slice(&at_offset(&one, 12));
        let second_len = one.len();
        fetched.extend_from_slice(&at_offset(&one, 14)[..second_len - 5]);
        let batches = split_batches(fetched.freeze()).expect("split");
        let ranges: Vec<_> = batches
            .iter()
            .map(|b| (b.base_offset, b.last_offset))
            .collect();
        assert_eq!(ranges, vec![(10, 11), (12, 13)]);
        // Offsets inside a decoded batch are absolute.
        let offsets: Vec<_> = batches[1]
            .records()
            .expect("records")
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![12, 13]);

        // Fewer bytes than a batch prefix: nothing complete yet.
        assert!(
            split_batches(Bytes::from_static(&[0; 7]))
                .expect("split")
                .is_empty()
        );
        assert!(split_batches(Bytes::new()).expect("split").is_empty());
    }

    #[test]
    fn split_rejects_legacy_and_corrupt_batches() {
        let one = encode_batch(&[record(None, "x")], 0, Compression::None).expect("encode");
        let mut legacy = BytesMut::from(&one[..]);
        legacy[MAGIC_OFFSET] = 1;
        let err = split_batches(legacy.freeze()).expect_err("legacy");
        assert!(err.to_string().contains("message format v1"), "{err}");

        let mut negative = BytesMut::from(&one[..]);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(negative.freeze()).is_err());

        let mut tiny = BytesMut::from(&one[..LOG_OVERHEAD + 5]);
        tiny[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert!(split_batches(tiny.freeze()).is_err());
    }
}
