//! What a client may not write with Produce, checked on the leader before
//! anything is appended (or answered as a duplicate).
//!
//! Kafka refuses, for `AppendOrigin.CLIENT`:
//! - control batches (COMMIT/ABORT markers): `LogValidator.validateBatch`
//!   throws `InvalidRecordException` (INVALID_RECORD) — only the
//!   transaction coordinator writes markers, through WriteTxnMarkers;
//! - transactional batches are appended (they open the producer's
//!   transaction on the partition; the log refuses an older epoch and a
//!   plain batch while one is open). A request carrying them without a
//!   `transactional_id` is refused whole by the gateway with
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as `KafkaApis.handleProduceRequest`.
//! - on a topic whose `cleanup.policy` contains `compact`, records without a
//!   key: `LogValidator.validateKey` fails the batch with INVALID_RECORD and
//!   names each keyless record's index in the batch (the Produce response's
//!   `record_errors`, v8+). Only compacted topics pay for this check: it is
//!   the one that looks at records, not just batch headers, so it decodes
//!   (and decompresses) each batch with the decoder the log uses for
//!   timestamps, `kafka_protocol`'s `RecordBatchDecoder`, over slices of the
//!   request's bytes (an uncompressed batch is not copied);
//! - on a CreateTime topic, records whose timestamp is more than
//!   `message.timestamp.before.max.ms` behind or `message.timestamp.after.max.ms`
//!   ahead of the broker's clock: INVALID_TIMESTAMP with each such record's
//!   index (KIP-937). Records are decoded for this only when the batch header
//!   shows a `maxTimestamp` past the upper bound or a lower bound is set.
//!
//! Followers never come here: `Partition::append_from_leader` stores what
//! the leader wrote, control batches included; nor do the coordinators'
//! own writes (`AppendOrigin::Coordinator`) or markers (WriteTxnMarkers).

use bytes::Bytes;
use fjord_log::{BatchHeader, CleanupPolicy, LogConfig, MAGIC_V2, TimestampType};
use fjord_types::TopicPartition;

use crate::error::{PartitionError, RecordError, RecordErrorKind};

/// Refuse the request's batches if any is a control batch.
/// Only v2 headers are judged; any other magic is left to the log's
/// validation (UNSUPPORTED_FOR_MESSAGE_FORMAT), as are framing and CRC.
pub(crate) fn validate_client_batches(headers: &[BatchHeader]) -> Result<(), PartitionError> {
    for header in headers.iter().filter(|h| h.magic == MAGIC_V2) {
        if header.is_control() {
            return Err(PartitionError::ControlBatchFromClient {
                producer_id: header.producer_id,
            });
        }
    }
    Ok(())
}

/// The record-level checks a topic's configs ask for (Kafka's
/// `LogValidator.validateRecord`): keys on compacted topics, and CreateTime
/// timestamps within `message.timestamp.before.max.ms` /
/// `message.timestamp.after.max.ms` of the broker's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordChecks {
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub(crate) require_keys: bool,
    /// CreateTime topics: the accepted timestamp range; `None` on
    /// LogAppendTime topics (the leader stamps the batch).
    pub(crate) timestamps: Option<TimestampBounds>,
}

/// `[earliest, latest]`: the timestamps a CreateTime record may carry now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimestampBounds {
    pub(crate) earliest: i64,
    pub(crate) latest: i64,
}

impl RecordChecks {
    /// The checks `config` asks for at `now_ms`.
    pub(crate) fn for_config(config: &LogConfig, now_ms: i64) -> RecordChecks {
        let timestamps =
            (config.message_timestamp_type == TimestampType::CreateTime).then(|| TimestampBounds {
                earliest: now_ms.saturating_sub(config.message_timestamp_before_max_ms),
                latest: now_ms.saturating_add(config.message_timestamp_after_max_ms),
            });
        RecordChecks {
            require_keys: config.cleanup_policy != CleanupPolicy::Delete,
            timestamps,
        }
    }

    /// Whether `header`'s records must be decoded: always for keys, and for
    /// timestamps only when the lower bound is set (the header does not carry
    /// the smallest timestamp) or the batch's `maxTimestamp` is past the
    /// upper one. With Kafka's defaults (no lower bound, one hour ahead) a
    /// well-formed batch is judged from its header alone; a header that
    /// understates its records' timestamps is not caught (Kafka, which
    /// iterates every record anyway, would).
    fn must_decode(&self, header: &BatchHeader) -> bool {
        self.require_keys
            || self
                .timestamps
                .is_some_and(|b| b.earliest > i64::MIN || header.max_timestamp > b.latest)
    }
}

/// Refuse a request whose records break `checks`. `headers` are `records`'
/// batches in order, as `validate_client_batches` got them. As in Kafka, the
/// first batch with a bad record fails the request, naming each bad record's
/// index within that batch (clients send one batch per partition); a record
/// without a key is reported for its key before its timestamp is looked at.
///
/// The records are walked in place by `fjord_log::visit_records` (decompressed
/// with its bound, never decoded into owned records; an uncompressed batch is
/// not copied). Batches that are not v2, fail their CRC or do not parse
/// (malformed records, unknown codec, past the decompression bound) are left
/// to the log's validation, which answers for them as on any topic.
pub(crate) fn validate_records(
    tp: &TopicPartition,
    records: &Bytes,
    headers: &[BatchHeader],
    checks: RecordChecks,
) -> Result<(), PartitionError> {
    let mut position = 0;
    for header in headers {
        let start = position;
        position += header.size();
        if header.magic != MAGIC_V2 || position > records.len() || !checks.must_decode(header) {
            continue;
        }
        let batch = &records[start..position];
        // Walked in place (decompressed with a bound, never decoded into
        // owned records): memory stays at the decompressed size whatever
        // the record count.
        let mut errors = Vec::new();
        let mut batch_index = 0;
        let walked = fjord_log::visit_records(batch, header, |record| {
            let kind = if checks.require_keys && record.key.is_none() {
                Some(RecordErrorKind::MissingKey)
            } else {
                checks.timestamps.and_then(|bounds| {
                    let t = record.timestamp;
                    // -1 is "no timestamp", never judged (Kafka's NO_TIMESTAMP).
                    (t != -1 && !(bounds.earliest..=bounds.latest).contains(&t)).then_some(
                        RecordErrorKind::TimestampOutOfRange {
                            timestamp: t,
                            offset: record.offset,
                            earliest: bounds.earliest,
                            latest: bounds.latest,
                        },
                    )
                })
            };
            if let Some(kind) = kind {
                errors.push(RecordError { batch_index, kind });
            }
            batch_index += 1;
        });
        // A wrong CRC or records that do not parse are the log's to refuse
        // (CORRUPT_MESSAGE; Kafka checks the CRC before it looks at records).
        if walked.is_err() {
            continue;
        }
        if !errors.is_empty() {
            return Err(PartitionError::RecordsRejected {
                tp: tp.clone(),
                errors,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTIONAL: i16 = 1 << 4;
    const CONTROL: i16 = 1 << 5;

    fn header(magic: i8, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: -1,
            magic,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 0,
            records_count: 1,
        }
    }

    /// Each case: the request's batches' (magic, attributes) → what is answered.
    #[test]
    fn refuses_control_batches_from_clients() {
        let control = |e: &PartitionError| {
            matches!(e, PartitionError::ControlBatchFromClient { producer_id: 7 })
        };
        type Check = fn(&PartitionError) -> bool;
        /// (name, each batch's (magic, attributes), expected refusal).
        type Case = (&'static str, Vec<(i8, i16)>, Option<Check>);
        let cases: Vec<Case> = vec![
            ("plain batch", vec![(2, 0)], None),
            ("compressed, log-append-time", vec![(2, 0b1010)], None),
            (
                "commit/abort marker",
                vec![(2, CONTROL | TRANSACTIONAL)],
                Some(control),
            ),
            ("control bit alone", vec![(2, CONTROL)], Some(control)),
            ("transactional batch", vec![(2, TRANSACTIONAL)], None),
            (
                "marker after a plain batch",
                vec![(2, 0), (2, CONTROL)],
                Some(control),
            ),
            (
                "transactional after plain",
                vec![(2, 0), (2, TRANSACTIONAL | 1)],
                None,
            ),
            // Old formats: the log answers UNSUPPORTED_FOR_MESSAGE_FORMAT.
            ("magic 1 is not judged here", vec![(1, CONTROL)], None),
            ("no batches", vec![], None),
        ];
        for (name, batches, expected) in cases {
            let headers: Vec<_> = batches.iter().map(|&(m, a)| header(m, a)).collect();
            match (validate_client_batches(&headers), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(check)) => assert!(check(&e), "{name}: wrong error {e:?}"),
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    use fjord_log::testing::{TIMESTAMP, encode, record};
    use kafka_protocol::records::Compression;

    use super::*;

    /// One batch whose records have (`Some`) or lack (`None`) a key.
    fn batch(keys: &[Option<&'static str>], compression: Compression) -> Bytes {
        let records: Vec<_> = (0..)
            .zip(keys)
            .map(|(i, key)| {
                record(
                    i,
                    TIMESTAMP,
                    key.map(|k| Bytes::from_static(k.as_bytes())),
                    Bytes::from_static(b"v"),
                )
            })
            .collect();
        encode(&records, compression)
    }

    fn headers(records: &Bytes) -> Vec<BatchHeader> {
        let mut rest: &[u8] = records;
        let mut headers = Vec::new();
        while let Some(h) = BatchHeader::parse(rest) {
            rest = &rest[h.size()..];
            headers.push(h);
        }
        headers
    }

    const KEYS: RecordChecks = RecordChecks {
        require_keys: true,
        timestamps: None,
    };

    fn check_with(records: &Bytes, checks: RecordChecks) -> Result<(), PartitionError> {
        validate_records(
            &TopicPartition::new("t", 0),
            records,
            &headers(records),
            checks,
        )
    }

    fn check(records: &Bytes) -> Result<(), PartitionError> {
        check_with(records, KEYS)
    }

    fn refusals(result: Result<(), PartitionError>) -> Vec<RecordError> {
        match result {
            Err(PartitionError::RecordsRejected { tp, errors }) => {
                assert_eq!(tp, TopicPartition::new("t", 0));
                errors
            }
            other => panic!("expected RecordsRejected, got {other:?}"),
        }
    }

    fn refused_at(result: Result<(), PartitionError>) -> Vec<i32> {
        refusals(result)
            .into_iter()
            .map(|e| {
                assert_eq!(e.kind, RecordErrorKind::MissingKey);
                e.batch_index
            })
            .collect()
    }

    /// Records at these timestamps, all keyed.
    fn timed(timestamps: &[i64]) -> Bytes {
        let records: Vec<_> = (0..)
            .zip(timestamps)
            .map(|(i, &t)| {
                record(
                    i,
                    t,
                    Some(Bytes::from_static(b"k")),
                    Bytes::from_static(b"v"),
                )
            })
            .collect();
        encode(&records, Compression::Lz4)
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused_with_their_indexes() {
        let now = TIMESTAMP;
        let config = LogConfig {
            message_timestamp_before_max_ms: 1_000,
            message_timestamp_after_max_ms: 500,
            ..LogConfig::default()
        };
        let checks = RecordChecks::for_config(&config, now);
        assert!(!checks.require_keys);
        let records = timed(&[now, now - 1_001, now + 500, now + 501, -1, now - 1_000]);
        let errors = refusals(check_with(&records, checks));
        let indexes: Vec<i32> = errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![1, 3]);
        assert!(errors.iter().all(RecordError::is_timestamp));
        assert_eq!(
            errors[0].message(&TopicPartition::new("t", 0)),
            format!(
                "Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]",
                now - 1_001,
                now - 1_000,
                now + 500
            )
        );
        check_with(&timed(&[now - 1_000, now + 500]), checks).expect("on the bounds");
    }

    /// Kafka 4's defaults: no lower bound, one hour ahead.
    #[test]
    fn defaults_refuse_only_the_future() {
        let now = TIMESTAMP;
        let checks = RecordChecks::for_config(&LogConfig::default(), now);
        check_with(&timed(&[0, now, now + 3_600_000]), checks).expect("accepted");
        let errors = refusals(check_with(&timed(&[now, now + 3_600_001]), checks));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].batch_index, 1);
    }

    /// LogAppendTime topics are stamped by the leader: no timestamp check.
    #[test]
    fn log_append_time_topics_take_any_timestamp() {
        let config = LogConfig {
            message_timestamp_type: fjord_log::TimestampType::LogAppendTime,
            message_timestamp_before_max_ms: 0,
            ..LogConfig::default()
        };
        let checks = RecordChecks::for_config(&config, TIMESTAMP);
        check_with(&timed(&[0, i64::MAX]), checks).expect("accepted");
    }

    /// A record with no key on a compacted topic is reported for its key only.
    #[test]
    fn key_errors_come_before_timestamp_errors() {
        let now = TIMESTAMP;
        let config = LogConfig {
            cleanup_policy: fjord_log::CleanupPolicy::Compact,
            ..LogConfig::default()
        };
        let records = encode(
            &[
                record(0, now + 7_200_000, None, Bytes::from_static(b"v")),
                record(
                    1,
                    now + 7_200_000,
                    Some(Bytes::from_static(b"k")),
                    Bytes::from_static(b"v"),
                ),
            ],
            Compression::None,
        );
        let errors = refusals(check_with(&records, RecordChecks::for_config(&config, now)));
        assert_eq!(errors[0].kind, RecordErrorKind::MissingKey);
        assert!(errors[1].is_timestamp());
    }

    #[test]
    fn keyed_batches_are_accepted() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let records = batch(&[Some("a"), Some("b"), Some("")], compression);
            check(&records).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        }
    }

    #[test]
    fn keyless_records_are_refused_with_their_indexes() {
        let one = batch(&[Some("a"), None, Some("c")], Compression::None);
        assert_eq!(refused_at(check(&one)), vec![1]);
        let all = batch(&[None, None], Compression::None);
        assert_eq!(refused_at(check(&all)), vec![0, 1]);
    }

    #[test]
    fn compressed_batches_are_decompressed() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records = batch(&[Some("a"), Some("b"), None], compression);
            assert_eq!(refused_at(check(&records)), vec![2], "{compression:?}");
        }
    }

    /// Indexes are within the first batch that has keyless records.
    #[test]
    fn second_batch_is_judged_too() {
        let mut both = bytes::BytesMut::new();
        both.extend_from_slice(&batch(&[Some("a")], Compression::None));
        both.extend_from_slice(&batch(&[Some("b"), None], Compression::Lz4));
        assert_eq!(refused_at(check(&both.freeze())), vec![1]);
    }

    /// A batch that does not decode is the log's to refuse.
    #[test]
    fn undecodable_batches_are_left_to_the_log() {
        let mut records = batch(&[None], Compression::None).to_vec();
        let last = records.len() - 1;
        records[last] ^= 0xff; // breaks the CRC
        check(&Bytes::from(records)).expect("left to the log");
    }

    /// Partition::append runs the check only when the topic compacts; a
    /// refused request leaves the log as it was.
    #[test]
    fn only_compacted_topics_refuse_keyless_records() {
        use crate::partition::{Assignment, Partition};
        use crate::types::Acks;
        use fjord_log::{CleanupPolicy, Log, LogConfig};
        use fjord_types::TopicId;

        let keyless = batch(&[Some("a"), None], Compression::Snappy);
        let keyed = batch(&[Some("a"), Some("b")], Compression::None);
        for (policy, refuses) in [
            (CleanupPolicy::Delete, false),
            (CleanupPolicy::Compact, true),
            (CleanupPolicy::CompactDelete, true),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                cleanup_policy: policy,
                ..LogConfig::default()
            };
            let log = Log::open(dir.path(), config).expect("open");
            let assignment = Assignment {
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                replicas: vec![1],
                isr: vec![1],
            };
            let tp = TopicPartition::new("t", 0);
            let partition =
                Partition::new(tp, TopicId(uuid::Uuid::nil()), 1, log, assignment, 1, None);
            let result = partition.append(&keyless, Acks::All, TIMESTAMP);
            if refuses {
                assert_eq!(refused_at(result.map(|_| ())), vec![1], "{policy}");
                assert_eq!(partition.log_end_offset(), 0, "{policy}: nothing appended");
            } else {
                result.unwrap_or_else(|e| panic!("{policy}: {e}"));
            }
            let before = partition.log_end_offset();
            partition
                .append(&keyed, Acks::All, TIMESTAMP)
                .unwrap_or_else(|e| panic!("{policy}: keyed refused: {e}"));
            assert_eq!(partition.log_end_offset(), before + 2, "{policy}");
        }
    }
}
