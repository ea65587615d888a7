//! [`TxnRecord`]s as the key and value bytes of Kafka's
//! `__transaction_state` records, byte-compatible with Apache Kafka's
//! `TransactionLogKey` and `TransactionLogValue` schemas, so Kafka's tools
//! can read Fjord's topic and Fjord can load Kafka's.
//!
//! Layout (both start with a big-endian int16 version):
//! - Key v0: `TransactionalId: string` (int16 length + UTF-8).
//! - Value v0 (classic) and v1 (flexible: compact lengths, tagged fields):
//!   `ProducerId i64, ProducerEpoch i16, TransactionTimeoutMs i32,
//!   TransactionStatus i8, TransactionPartitions nullable [Topic string,
//!   PartitionIds [i32]], TransactionLastUpdateTimestampMs i64,
//!   TransactionStartTimestampMs i64`, then in v1 the tagged fields
//!   `PreviousProducerId i64` (tag 0, default -1), `NextProducerId i64`
//!   (tag 1, default -1), `ClientTransactionVersion i16` (tag 2, default
//!   0), each written only when not its default.
//! - A null value is a tombstone: the id expired.
//!
//! [`encode`] writes value v1, as Kafka does from `transaction.version` 1
//! on (Kafka 4's default); [`decode`] reads v0 and v1. Partitions are
//! written null in state Empty (as Kafka does) and sorted by topic and
//! partition otherwise; null reads as no partitions. Key versions above 0
//! decode to `Ok(None)` (a newer record type, skipped as Kafka's loader
//! does); negative key versions, unknown value versions, unknown states,
//! malformed or trailing bytes are errors. Decoding never panics.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use fjord_types::TopicPartition;

pub use crate::wire::CodecError;
use crate::wire::{Reader, Writer};

use super::{TransactionLogValue, TransactionState, TxnRecord};

/// `TransactionLogKey` version [`encode`] writes (the only one).
pub const TRANSACTION_LOG_KEY_VERSION: i16 = 0;
/// `TransactionLogValue` version [`encode`] writes (the flexible one).
pub const TRANSACTION_LOG_VALUE_VERSION: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// The key and value (`None`: tombstone) of `record`; fails with
/// [`CodecError::TooLong`] when a string does not fit its schema.
pub fn encode(record: &TxnRecord) -> Result<(Bytes, Option<Bytes>), CodecError> {
    encode_version(record, TRANSACTION_LOG_VALUE_VERSION)
}

/// [`encode`] with value version `version` (0 or 1; 0 drops the tagged
/// fields, as Kafka's `transaction.version` 0 does).
pub fn encode_version(
    record: &TxnRecord,
    version: i16,
) -> Result<(Bytes, Option<Bytes>), CodecError> {
    if !(0..=1).contains(&version) {
        return Err(CodecError::UnknownValueVersion {
            record: "TransactionLogValue",
            version,
        });
    }
    let mut key = Writer::default();
    key.i16(TRANSACTION_LOG_KEY_VERSION);
    key.string(
        record.transactional_id(),
        "TransactionLogKey transactionalId",
    );
    let value = match record {
        TxnRecord::Tombstone { .. } => None,
        TxnRecord::Metadata { value, .. } => Some(encode_value(value, version)),
    };
    if let Some(error) = key.error.or(value.as_ref().and_then(|v| v.error.clone())) {
        return Err(error);
    }
    Ok((key.buf.freeze(), value.map(|v| v.buf.freeze())))
}

fn encode_value(value: &TransactionLogValue, version: i16) -> Writer {
    let mut w = Writer::default();
    w.i16(version);
    w.flexible = version >= 1;
    w.i64(value.producer_id);
    w.i16(value.producer_epoch);
    w.i32(value.timeout_ms);
    w.i8(value.state.id());
    if value.state == TransactionState::Empty {
        w.nullable_array_len(None, "TransactionPartitions");
    } else {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &value.partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        w.array_len(by_topic.len(), "TransactionPartitions");
        for (topic, ids) in by_topic {
            w.string(topic, "TransactionPartitions topic");
            w.array_len(ids.len(), "TransactionPartitions partitionIds");
            for id in ids {
                w.i32(id);
            }
            w.tagged_fields(&[]);
        }
    }
    w.i64(value.last_update_timestamp_ms);
    w.i64(value.start_timestamp_ms);
    let previous = value.previous_producer_id.to_be_bytes();
    let next = value.next_producer_id.to_be_bytes();
    let tv = value.client_transaction_version.to_be_bytes();
    let mut tags: Vec<(u32, &[u8])> = Vec::new();
    if value.previous_producer_id != -1 {
        tags.push((TAG_PREVIOUS_PRODUCER_ID, &previous));
    }
    if value.next_producer_id != -1 {
        tags.push((TAG_NEXT_PRODUCER_ID, &next));
    }
    if value.client_transaction_version != 0 {
        tags.push((TAG_CLIENT_TRANSACTION_VERSION, &tv));
    }
    w.tagged_fields(&tags);
    w
}

/// The record of a `__transaction_state` key and value (`None`:
/// tombstone). `Ok(None)`: a key version this coordinator skips.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<TxnRecord>, CodecError> {
    let mut k = Reader::classic(key);
    let version = k.i16("TransactionLogKey version")?;
    if version < 0 {
        return Err(CodecError::UnknownKeyVersion { version });
    }
    if version > TRANSACTION_LOG_KEY_VERSION {
        return Ok(None);
    }
    let transactional_id = k.string("TransactionLogKey transactionalId")?;
    k.finish("TransactionLogKey")?;
    Ok(Some(match value {
        None => TxnRecord::Tombstone { transactional_id },
        Some(value) => TxnRecord::Metadata {
            transactional_id,
            value: decode_value(value)?,
        },
    }))
}

fn decode_value(value: &[u8]) -> Result<TransactionLogValue, CodecError> {
    let mut r = Reader::classic(value);
    let version = r.i16("TransactionLogValue version")?;
    if !(0..=1).contains(&version) {
        return Err(CodecError::UnknownValueVersion {
            record: "TransactionLogValue",
            version,
        });
    }
    r.flexible = version >= 1;
    let producer_id = r.i64("TransactionLogValue producerId")?;
    let producer_epoch = r.i16("TransactionLogValue producerEpoch")?;
    let timeout_ms = r.i32("TransactionLogValue transactionTimeoutMs")?;
    let [status] = r.array::<1>("TransactionLogValue transactionStatus")?;
    let status = status as i8;
    let state = TransactionState::from_id(status).ok_or(CodecError::InvalidValue {
        what: "TransactionLogValue transactionStatus",
        value: status.into(),
    })?;
    let mut partitions = BTreeSet::new();
    let topics = r.nullable_array_len("TransactionPartitions")?.unwrap_or(0);
    for _ in 0..topics {
        let topic = r.string("TransactionPartitions topic")?;
        for _ in 0..r.array_len("TransactionPartitions partitionIds")? {
            let id = r.i32("TransactionPartitions partitionId")?;
            partitions.insert(TopicPartition::new(topic.clone(), id));
        }
        r.tagged_fields("TransactionPartitions tagged fields")?;
    }
    let last_update_timestamp_ms = r.i64("TransactionLogValue lastUpdateTimestampMs")?;
    let start_timestamp_ms = r.i64("TransactionLogValue startTimestampMs")?;
    let mut previous_producer_id = -1;
    let mut next_producer_id = -1;
    let mut client_transaction_version = 0;
    r.tagged_fields_with("TransactionLogValue tagged fields", |tag, data| {
        let what = "TransactionLogValue tagged field";
        let invalid = || CodecError::InvalidLength {
            what,
            length: data.len() as i64,
        };
        match tag {
            TAG_PREVIOUS_PRODUCER_ID => {
                previous_producer_id = i64::from_be_bytes(data.try_into().map_err(|_| invalid())?)
            }
            TAG_NEXT_PRODUCER_ID => {
                next_producer_id = i64::from_be_bytes(data.try_into().map_err(|_| invalid())?)
            }
            TAG_CLIENT_TRANSACTION_VERSION => {
                client_transaction_version =
                    i16::from_be_bytes(data.try_into().map_err(|_| invalid())?)
            }
            _ => {}
        }
        Ok(())
    })?;
    r.finish("TransactionLogValue")?;
    Ok(TransactionLogValue {
        producer_id,
        previous_producer_id,
        next_producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms,
        start_timestamp_ms,
        client_transaction_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn ongoing() -> TxnRecord {
        TxnRecord::Metadata {
            transactional_id: "tx".into(),
            value: TransactionLogValue {
                producer_id: 1000,
                previous_producer_id: -1,
                next_producer_id: -1,
                producer_epoch: 5,
                timeout_ms: 60_000,
                state: TransactionState::Ongoing,
                partitions: [tp("t", 2), tp("t", 0)].into(),
                last_update_timestamp_ms: 2000,
                start_timestamp_ms: 1500,
                client_transaction_version: 0,
            },
        }
    }

    fn empty_with_tags() -> TxnRecord {
        TxnRecord::Metadata {
            transactional_id: "tx".into(),
            value: TransactionLogValue {
                producer_id: 7,
                previous_producer_id: 3,
                next_producer_id: -1,
                producer_epoch: 0,
                timeout_ms: 1,
                state: TransactionState::Empty,
                partitions: BTreeSet::new(),
                last_update_timestamp_ms: 9,
                start_timestamp_ms: -1,
                client_transaction_version: 2,
            },
        }
    }

    fn round_trip(record: &TxnRecord) {
        let (key, value) = encode(record).unwrap();
        assert_eq!(
            decode(&key, value.as_deref()).unwrap().as_ref(),
            Some(record)
        );
    }

    #[test]
    fn round_trips_every_state_and_tombstones() {
        for state in TransactionState::ALL {
            let TxnRecord::Metadata {
                transactional_id,
                mut value,
            } = ongoing()
            else {
                unreachable!()
            };
            value.state = state;
            if state == TransactionState::Empty {
                value.partitions.clear();
            }
            value.next_producer_id = 42;
            value.client_transaction_version = 1;
            value.partitions.insert(tp("ü-topic", 7));
            if state == TransactionState::Empty {
                value.partitions.clear();
            }
            round_trip(&TxnRecord::Metadata {
                transactional_id,
                value,
            });
        }
        round_trip(&empty_with_tags());
        round_trip(&TxnRecord::Tombstone {
            transactional_id: "gone".into(),
        });
    }

    /// Derived by hand from TransactionLogKey/TransactionLogValue.json.
    #[test]
    fn golden_bytes() {
        let key: &[u8] = &[0, 0, 0, 2, b't', b'x'];
        #[rustfmt::skip]
        let v1: &[u8] = &[
            0, 1,                               // version 1 (flexible)
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // ProducerId 1000
            0, 5,                               // ProducerEpoch 5
            0, 0, 0xea, 0x60,                   // TransactionTimeoutMs 60000
            1,                                  // TransactionStatus Ongoing
            2,                                  // compact array: 1 topic
            2, b't',                            // compact string "t"
            3, 0, 0, 0, 0, 0, 0, 0, 2,          // compact [0, 2]
            0,                                  // topic's tagged fields
            0, 0, 0, 0, 0, 0, 0x07, 0xd0,       // LastUpdateTimestampMs 2000
            0, 0, 0, 0, 0, 0, 0x05, 0xdc,       // StartTimestampMs 1500
            0,                                  // no tagged fields
        ];
        #[rustfmt::skip]
        let v0: &[u8] = &[
            0, 0,
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,
            0, 5,
            0, 0, 0xea, 0x60,
            1,
            0, 0, 0, 1,                         // 1 topic
            0, 1, b't',                         // string "t"
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, // [0, 2]
            0, 0, 0, 0, 0, 0, 0x07, 0xd0,
            0, 0, 0, 0, 0, 0, 0x05, 0xdc,
        ];
        let (k, v) = encode(&ongoing()).unwrap();
        assert_eq!((&k[..], v.as_deref()), (key, Some(v1)));
        let (k, v) = encode_version(&ongoing(), 0).unwrap();
        assert_eq!((&k[..], v.as_deref()), (key, Some(v0)));
        assert_eq!(decode(key, Some(v0)).unwrap(), Some(ongoing()));
        assert_eq!(decode(key, Some(v1)).unwrap(), Some(ongoing()));

        #[rustfmt::skip]
        let tagged: &[u8] = &[
            0, 1,
            0, 0, 0, 0, 0, 0, 0, 7,             // ProducerId 7
            0, 0,                               // ProducerEpoch 0
            0, 0, 0, 1,                         // TransactionTimeoutMs 1
            0,                                  // Empty
            0,                                  // null partitions
            0, 0, 0, 0, 0, 0, 0, 9,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // start -1
            2,                                  // two tagged fields
            0, 8, 0, 0, 0, 0, 0, 0, 0, 3,       // tag 0 PreviousProducerId 3
            2, 2, 0, 2,                         // tag 2 ClientTransactionVersion 2
        ];
        let (_, v) = encode(&empty_with_tags()).unwrap();
        assert_eq!(v.as_deref(), Some(tagged));
        assert_eq!(
            decode(key, None).unwrap(),
            Some(TxnRecord::Tombstone {
                transactional_id: "tx".into()
            })
        );
    }

    #[test]
    fn unknown_tags_are_skipped_and_bad_known_tags_rejected() {
        let (key, v) = encode(&empty_with_tags()).unwrap();
        let mut v = v.unwrap().to_vec();
        // Replace "two tagged fields" by three with an unknown tag 9 first.
        let at = v.len() - 15;
        assert_eq!(v[at], 2);
        v[at] = 3;
        v.splice(at + 1..at + 1, [9, 1, 0xaa]);
        assert_eq!(decode(&key, Some(&v)).unwrap(), Some(empty_with_tags()));
        // ClientTransactionVersion with 1 byte of data.
        let n = v.len();
        v[n - 3] = 1;
        v.truncate(n - 1);
        assert!(matches!(
            decode(&key, Some(&v)),
            Err(CodecError::InvalidLength { .. })
        ));
    }

    #[test]
    fn errors_are_typed() {
        let (key, value) = encode(&ongoing()).unwrap();
        let value = value.unwrap();
        for n in 0..value.len() {
            assert!(decode(&key, Some(&value[..n])).is_err(), "value cut at {n}");
        }
        for n in 0..key.len() {
            assert!(decode(&key[..n], None).is_err(), "key cut at {n}");
        }
        let mut bad_state = value.to_vec();
        bad_state[16] = 8;
        assert_eq!(
            decode(&key, Some(&bad_state)),
            Err(CodecError::InvalidValue {
                what: "TransactionLogValue transactionStatus",
                value: 8
            })
        );
        let mut v2 = value.to_vec();
        v2[1] = 2;
        assert!(matches!(
            decode(&key, Some(&v2)),
            Err(CodecError::UnknownValueVersion { version: 2, .. })
        ));
        let mut trailing = value.to_vec();
        trailing.push(0);
        assert!(matches!(
            decode(&key, Some(&trailing)),
            Err(CodecError::TrailingBytes { .. })
        ));
        assert_eq!(decode(&[0, 1, 0, 0], Some(&value)), Ok(None));
        assert_eq!(
            decode(&[0xff, 0xff], None),
            Err(CodecError::UnknownKeyVersion { version: -1 })
        );
        let long = TxnRecord::Tombstone {
            transactional_id: "x".repeat(40_000),
        };
        assert!(matches!(encode(&long), Err(CodecError::TooLong { .. })));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(
            key in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            value in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..96)),
        ) {
            let _ = decode(&key, value.as_deref());
        }

        #[test]
        fn mutated_golden_bytes_never_panic(at in 0usize..64, byte in proptest::num::u8::ANY) {
            let (key, value) = encode(&ongoing()).unwrap();
            let mut value = value.unwrap().to_vec();
            let at = at % value.len();
            value[at] = byte;
            let _ = decode(&key, Some(&value));
        }
    }
}
