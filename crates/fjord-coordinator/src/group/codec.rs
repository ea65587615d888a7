//! [`GroupRecord`]s as the key and value bytes of Kafka's
//! `__consumer_offsets` records, byte-compatible with Apache Kafka's
//! `OffsetCommitKey`, `OffsetCommitValue`, `GroupMetadataKey` and
//! `GroupMetadataValue` schemas, so Kafka's tooling can read them.
//!
//! Layout: key and value each start with a big-endian int16 version. The
//! key version doubles as the record type: 0 and 1 are an
//! `OffsetCommitKey {group, topic, partition}`, 2 a `GroupMetadataKey
//! {group}`. A null value is a tombstone (offset or group). Versions 0-3 of
//! the values use Kafka's classic encoding (string: int16 length + UTF-8,
//! nullable string: length -1 = null, bytes: int32 length, array: int32
//! count); version 4 is flexible (unsigned-varint lengths plus one, tagged
//! fields after each struct, skipped on decode).
//!
//! What [`encode`] writes is what Kafka writes: key version 1 for offsets,
//! 2 for group metadata, `OffsetCommitValue` v3 and `GroupMetadataValue` v3.
//! [`decode`] reads every value version Kafka defines (0-4).
//!
//! Mapping to our types (as Kafka's loader does):
//! - `leaderEpoch` -1 is `None`; versions before 3 have none.
//! - `currentStateTimestamp` -1 is `None`; versions before 2 have none.
//! - `protocolType` "" is `None` (a group known only from offsets).
//! - `OffsetCommitValue` v1's `expireTimestamp` is read and dropped
//!   (retention times of OffsetCommit v1 are not modelled).
//! - `GroupMetadataValue` v0 has no `rebalanceTimeout`: the session timeout
//!   stands in for it, and no `groupInstanceId` before v3.
//! - [`MemberMetadataValue::subscribed_topics`] is not in Kafka's schema: on
//!   decode it is the topics of the member's `ConsumerProtocolSubscription`
//!   when the protocol type is `consumer` and the subscription parses (as
//!   the gateway derives [`MemberProtocol::topics`](super::MemberProtocol)),
//!   `None` otherwise. So a record round-trips exactly when its
//!   `subscribed_topics` agrees with its subscription bytes.
//!
//! Transactions: a [`GroupRecord::TxnOffset`] encodes as an offset commit
//! (its batch, not its bytes, makes it transactional) and a
//! [`GroupRecord::EndTxnMarker`] as the key and value of a control record
//! (`version i16 = 0, type i16` ABORT 0 / COMMIT 1; `version i16 = 0,
//! coordinator_epoch i32`). [`decode_batch_record`] reads a record with its
//! batch's flags and producer, as the loader needs.
//!
//! Key versions 3 and up are record types of newer coordinators (KIP-848
//! consumer groups, share groups, ...): [`decode`] returns `Ok(None)` for
//! them, as Kafka's classic loader skips what it does not know. Negative key
//! versions, unknown value versions and malformed or trailing bytes are
//! errors. Decoding never panics and allocates no more than the input's size
//! suggests.

use std::collections::BTreeSet;

use bytes::Bytes;
use fjord_types::TopicPartition;
use kafka_protocol::records::Record;

use crate::txn::TransactionResult;
pub use crate::wire::CodecError;
use crate::wire::{Reader, Writer};

use super::{
    CONSUMER_PROTOCOL_TYPE, CommittedOffset, GroupMetadataValue, GroupRecord, MemberMetadataValue,
};

/// Key version (record type) [`encode`] writes for offsets and their
/// tombstones; Kafka reads 0 and 1 alike.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version (record type) of group metadata and group tombstones.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// `OffsetCommitValue` version [`encode`] writes.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// `GroupMetadataValue` version [`encode`] writes.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// Version of a control record's key and of an end transaction marker's
/// value (Kafka's `ControlRecordType` / `EndTransactionMarker`).
const CONTROL_RECORD_VERSION: i16 = 0;
/// Control record types of transaction markers.
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;

/// Highest value version [`decode`] reads (the first flexible one).
const MAX_VALUE_VERSION: i16 = 4;
/// Highest `ConsumerProtocolSubscription` version known; newer ones are
/// read as this one, as Kafka's `ConsumerProtocol` does.
const MAX_SUBSCRIPTION_VERSION: i16 = 3;

/// The key and value (`None`: tombstone) of `record`.
///
/// Never fails and never panics. Kafka's schemas cap strings at 32767 bytes
/// (int16 length); a longer string is cut at the last character boundary
/// that fits, which changes the record. Callers that cannot rule this out
/// (group ids, member ids, topics, metadata come from clients) should use
/// [`try_encode`], which reports [`CodecError::TooLong`] instead.
pub fn encode(record: &GroupRecord) -> (Bytes, Option<Bytes>) {
    let (key, value, _) = encode_inner(record);
    (key, value)
}

/// [`encode`], failing with [`CodecError::TooLong`] when a field does not
/// fit its schema's length prefix.
pub fn try_encode(record: &GroupRecord) -> Result<(Bytes, Option<Bytes>), CodecError> {
    match encode_inner(record) {
        (_, _, Some(error)) => Err(error),
        (key, value, None) => Ok((key, value)),
    }
}

/// The record of a `__consumer_offsets` key and value (`None`: tombstone).
///
/// `Ok(None)`: a record type this coordinator deliberately skips (key
/// versions 3 and up, written by newer coordinators).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<GroupRecord>, CodecError> {
    let mut k = Reader::classic(key);
    let version = k.i16("key version")?;
    match version {
        0 | 1 => {
            let group_id = k.string("OffsetCommitKey group")?;
            let topic = k.string("OffsetCommitKey topic")?;
            let partition = k.i32("OffsetCommitKey partition")?;
            k.finish("OffsetCommitKey")?;
            let tp = TopicPartition::new(topic, partition);
            Ok(Some(match value {
                None => GroupRecord::OffsetTombstone { group_id, tp },
                Some(value) => GroupRecord::Offset {
                    group_id,
                    tp,
                    committed: decode_offset_value(value)?,
                },
            }))
        }
        2 => {
            let group_id = k.string("GroupMetadataKey group")?;
            k.finish("GroupMetadataKey")?;
            Ok(Some(match value {
                None => GroupRecord::GroupTombstone { group_id },
                Some(value) => GroupRecord::Metadata(decode_group_value(group_id, value)?),
            }))
        }
        v if v >= 0 => Ok(None),
        v => Err(CodecError::UnknownKeyVersion { version: v }),
    }
}

/// The record of one record of a `__consumer_offsets` batch as the loader
/// reads it, batch flags included (Kafka's `CoordinatorLoaderImpl`):
/// - a control record is a [`GroupRecord::EndTxnMarker`] when its key is
///   an ABORT or COMMIT marker (`version i16 = 0, type i16`; value
///   `version i16, coordinator_epoch i32`); other control types are
///   skipped (`Ok(None)`);
/// - an offset commit in a transactional batch is a
///   [`GroupRecord::TxnOffset`] of the batch's producer; other records of
///   such a batch replay as plain ones (Kafka ignores the producer there);
/// - anything else is [`decode`] of its key and value (no key: skipped).
///
/// [`encode`] of a `TxnOffset` or an `EndTxnMarker` gives the key and value
/// back; the writer sets the batch's flags and producer.
pub fn decode_batch_record(record: &Record) -> Result<Option<GroupRecord>, CodecError> {
    let Some(key) = record.key.as_deref() else {
        return Ok(None);
    };
    if record.control {
        let mut k = Reader::classic(key);
        let _version = k.i16("ControlRecordKey version")?;
        let result = match k.i16("ControlRecordKey type")? {
            CONTROL_TYPE_ABORT => TransactionResult::Abort,
            CONTROL_TYPE_COMMIT => TransactionResult::Commit,
            _ => return Ok(None),
        };
        let mut v = Reader::classic(record.value.as_deref().unwrap_or_default());
        let _version = v.i16("EndTransactionMarker version")?;
        let coordinator_epoch = v.i32("EndTransactionMarker coordinator epoch")?;
        return Ok(Some(GroupRecord::EndTxnMarker {
            producer_id: record.producer_id,
            producer_epoch: record.producer_epoch,
            result,
            coordinator_epoch,
        }));
    }
    Ok(match decode(key, record.value.as_deref())? {
        Some(GroupRecord::Offset {
            group_id,
            tp,
            committed,
        }) if record.transactional => Some(GroupRecord::TxnOffset {
            producer_id: record.producer_id,
            producer_epoch: record.producer_epoch,
            group_id,
            tp,
            committed,
        }),
        other => other,
    })
}

fn encode_inner(record: &GroupRecord) -> (Bytes, Option<Bytes>, Option<CodecError>) {
    let mut key = Writer::default();
    let mut value = None;
    match record {
        GroupRecord::Offset {
            group_id,
            tp,
            committed,
        }
        | GroupRecord::TxnOffset {
            group_id,
            tp,
            committed,
            ..
        } => {
            offset_key(&mut key, group_id, tp);
            let mut v = Writer::default();
            v.i16(OFFSET_COMMIT_VALUE_VERSION);
            v.i64(committed.offset);
            v.i32(committed.leader_epoch.unwrap_or(-1));
            v.string(&committed.metadata, "OffsetCommitValue metadata");
            v.i64(committed.commit_timestamp_ms);
            value = Some(v);
        }
        GroupRecord::OffsetTombstone { group_id, tp } => offset_key(&mut key, group_id, tp),
        GroupRecord::Metadata(group) => {
            group_key(&mut key, &group.group_id);
            value = Some(group_value(group));
        }
        GroupRecord::GroupTombstone { group_id } => group_key(&mut key, group_id),
        GroupRecord::EndTxnMarker {
            result,
            coordinator_epoch,
            ..
        } => {
            key.i16(CONTROL_RECORD_VERSION);
            key.i16(match result {
                TransactionResult::Abort => CONTROL_TYPE_ABORT,
                TransactionResult::Commit => CONTROL_TYPE_COMMIT,
            });
            let mut v = Writer::default();
            v.i16(CONTROL_RECORD_VERSION);
            v.i32(*coordinator_epoch);
            value = Some(v);
        }
    }
    let mut error = key.error.take();
    let value = value.map(|mut v| {
        if error.is_none() {
            error = v.error.take();
        }
        v.buf.freeze()
    });
    (key.buf.freeze(), value, error)
}

fn offset_key(w: &mut Writer, group_id: &str, tp: &TopicPartition) {
    w.i16(OFFSET_COMMIT_KEY_VERSION);
    w.string(group_id, "OffsetCommitKey group");
    w.string(&tp.topic, "OffsetCommitKey topic");
    w.i32(tp.partition);
}

fn group_key(w: &mut Writer, group_id: &str) {
    w.i16(GROUP_METADATA_KEY_VERSION);
    w.string(group_id, "GroupMetadataKey group");
}

fn group_value(group: &GroupMetadataValue) -> Writer {
    let mut w = Writer::default();
    w.i16(GROUP_METADATA_VALUE_VERSION);
    w.string(
        group.protocol_type.as_deref().unwrap_or(""),
        "GroupMetadataValue protocolType",
    );
    w.i32(group.generation_id);
    w.nullable_string(
        group.protocol_name.as_deref(),
        "GroupMetadataValue protocol",
    );
    w.nullable_string(group.leader.as_deref(), "GroupMetadataValue leader");
    w.i64(group.current_state_timestamp_ms.unwrap_or(-1));
    w.array_len(group.members.len(), "GroupMetadataValue members");
    for m in &group.members {
        w.string(&m.member_id, "MemberMetadata memberId");
        w.nullable_string(
            m.group_instance_id.as_deref(),
            "MemberMetadata groupInstanceId",
        );
        w.string(&m.client_id, "MemberMetadata clientId");
        w.string(&m.client_host, "MemberMetadata clientHost");
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes(&m.subscription, "MemberMetadata subscription");
        w.bytes(&m.assignment, "MemberMetadata assignment");
    }
    w
}

fn decode_offset_value(value: &[u8]) -> Result<CommittedOffset, CodecError> {
    let mut r = Reader::classic(value);
    let version = r.i16("OffsetCommitValue version")?;
    if !(0..=MAX_VALUE_VERSION).contains(&version) {
        return Err(CodecError::UnknownValueVersion {
            record: "OffsetCommitValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let offset = r.i64("OffsetCommitValue offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("OffsetCommitValue leaderEpoch")?
    } else {
        -1
    };
    let metadata = r.string("OffsetCommitValue metadata")?;
    let commit_timestamp_ms = r.i64("OffsetCommitValue commitTimestamp")?;
    if version == 1 {
        r.i64("OffsetCommitValue expireTimestamp")?;
    }
    r.tagged_fields("OffsetCommitValue tagged fields")?;
    r.finish("OffsetCommitValue")?;
    Ok(CommittedOffset {
        offset,
        leader_epoch: (leader_epoch != -1).then_some(leader_epoch),
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(group_id: String, value: &[u8]) -> Result<GroupMetadataValue, CodecError> {
    let mut r = Reader::classic(value);
    let version = r.i16("GroupMetadataValue version")?;
    if !(0..=MAX_VALUE_VERSION).contains(&version) {
        return Err(CodecError::UnknownValueVersion {
            record: "GroupMetadataValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let protocol_type = r.string("GroupMetadataValue protocolType")?;
    let protocol_type = (!protocol_type.is_empty()).then_some(protocol_type);
    let is_consumer = protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
    let generation_id = r.i32("GroupMetadataValue generation")?;
    let protocol_name = r.nullable_string("GroupMetadataValue protocol")?;
    let leader = r.nullable_string("GroupMetadataValue leader")?;
    let current_state_timestamp_ms = if version >= 2 {
        r.i64("GroupMetadataValue currentStateTimestamp")?
    } else {
        -1
    };
    let count = r.array_len("GroupMetadataValue members")?;
    let mut members = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let member_id = r.string("MemberMetadata memberId")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("MemberMetadata groupInstanceId")?
        } else {
            None
        };
        let client_id = r.string("MemberMetadata clientId")?;
        let client_host = r.string("MemberMetadata clientHost")?;
        let rebalance_timeout_ms = if version >= 1 {
            Some(r.i32("MemberMetadata rebalanceTimeout")?)
        } else {
            None
        };
        let session_timeout_ms = r.i32("MemberMetadata sessionTimeout")?;
        let subscription = r.bytes("MemberMetadata subscription")?;
        let assignment = r.bytes("MemberMetadata assignment")?;
        r.tagged_fields("MemberMetadata tagged fields")?;
        let subscribed_topics = if is_consumer {
            subscription_topics(&subscription)
        } else {
            None
        };
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            subscribed_topics,
            assignment,
        });
    }
    r.tagged_fields("GroupMetadataValue tagged fields")?;
    r.finish("GroupMetadataValue")?;
    Ok(GroupMetadataValue {
        group_id,
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        current_state_timestamp_ms: (current_state_timestamp_ms != -1)
            .then_some(current_state_timestamp_ms),
        members,
    })
}

/// The topics of a `ConsumerProtocolSubscription` (v0-v3: topics, user
/// data, v1+ owned partitions, v2+ generation, v3+ rack; newer versions
/// read as v3, trailing bytes ignored, as Kafka's `ConsumerProtocol`
/// does). `None` when it does not parse.
pub fn subscription_topics(subscription: &[u8]) -> Option<BTreeSet<String>> {
    let mut r = Reader::classic(subscription);
    let version = r.i16("subscription version").ok()?;
    if version < 0 {
        return None;
    }
    let version = version.min(MAX_SUBSCRIPTION_VERSION);
    let mut topics = BTreeSet::new();
    for _ in 0..r.array_len("subscription topics").ok()? {
        topics.insert(r.string("subscription topic").ok()?);
    }
    r.nullable_bytes("subscription userData").ok()?;
    if version >= 1 {
        for _ in 0..r.array_len("subscription ownedPartitions").ok()? {
            r.string("owned partition topic").ok()?;
            for _ in 0..r.array_len("owned partitions").ok()? {
                r.i32("owned partition").ok()?;
            }
        }
    }
    if version >= 2 {
        r.i32("subscription generationId").ok()?;
    }
    if version >= 3 {
        r.nullable_string("subscription rackId").ok()?;
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn committed(offset: i64, epoch: Option<i32>, metadata: &str, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: epoch,
            metadata: metadata.to_string(),
            commit_timestamp_ms: ts,
        }
    }

    /// A `ConsumerProtocolSubscription` v0 of `topics`, null user data.
    fn subscription_v0(topics: &[&str]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(topics.len() as i32);
        for t in topics {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
        }
        b.put_i32(-1);
        b.freeze()
    }

    fn member(id: &str, instance: Option<&str>, topics: Option<&[&str]>) -> MemberMetadataValue {
        MemberMetadataValue {
            member_id: id.to_string(),
            group_instance_id: instance.map(str::to_string),
            client_id: format!("client-{id}"),
            client_host: "/10.0.0.1".to_string(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: topics.map(subscription_v0).unwrap_or_default(),
            subscribed_topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            assignment: Bytes::from_static(&[0, 1, 2, 3]),
        }
    }

    fn round_trip(record: GroupRecord) {
        let (key, value) = try_encode(&record).expect("encodable");
        assert_eq!(encode(&record), (key.clone(), value.clone()));
        let decoded = decode(&key, value.as_deref()).expect("decodes");
        assert_eq!(decoded, Some(record));
    }

    #[test]
    fn round_trips_offsets_and_tombstones() {
        let tp = TopicPartition::new("orders", 7);
        round_trip(GroupRecord::Offset {
            group_id: "g".into(),
            tp: tp.clone(),
            committed: committed(42, Some(3), "meta", 1_700_000_000_000),
        });
        round_trip(GroupRecord::Offset {
            group_id: "".into(),
            tp: TopicPartition::new("", -1),
            committed: committed(-1, None, "", -1),
        });
        round_trip(GroupRecord::Offset {
            group_id: "grüppe-日本".into(),
            tp: TopicPartition::new("тема-🚀", i32::MAX),
            committed: committed(i64::MAX, Some(i32::MAX), "métadonnées ✓", i64::MIN),
        });
        round_trip(GroupRecord::OffsetTombstone {
            group_id: "g".into(),
            tp,
        });
        round_trip(GroupRecord::GroupTombstone {
            group_id: "g-✓".into(),
        });
    }

    #[test]
    fn round_trips_group_metadata() {
        // Empty group: no protocol, no leader, no members.
        round_trip(GroupRecord::Metadata(GroupMetadataValue {
            group_id: "empty".into(),
            protocol_type: Some("consumer".into()),
            generation_id: 5,
            protocol_name: None,
            leader: None,
            current_state_timestamp_ms: Some(1_000),
            members: vec![],
        }));
        // Known only from offsets: no protocol type, no timestamp.
        round_trip(GroupRecord::Metadata(GroupMetadataValue {
            group_id: "bare".into(),
            protocol_type: None,
            generation_id: 0,
            protocol_name: None,
            leader: None,
            current_state_timestamp_ms: None,
            members: vec![],
        }));
        // Consumer group: topics derived from the subscriptions.
        round_trip(GroupRecord::Metadata(GroupMetadataValue {
            group_id: "groupe-ünïcode-🚀".into(),
            protocol_type: Some("consumer".into()),
            generation_id: 12,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: Some(1_700_000_000_000),
            members: vec![
                member("m1", None, Some(&["a", "b"])),
                member("m2", Some("instance-2"), Some(&["тема"])),
                member("m3", None, Some(&[])),
            ],
        }));
        // Another protocol type: opaque subscriptions, no topics.
        round_trip(GroupRecord::Metadata(GroupMetadataValue {
            group_id: "connect".into(),
            protocol_type: Some("connect".into()),
            generation_id: 1,
            protocol_name: Some("sessioned".into()),
            leader: Some("w1".into()),
            current_state_timestamp_ms: None,
            members: vec![MemberMetadataValue {
                subscription: Bytes::from_static(b"\xff\x00opaque"),
                ..member("w1", None, None)
            }],
        }));
    }

    #[test]
    fn consumer_subscription_that_does_not_parse_has_no_topics() {
        let record = GroupRecord::Metadata(GroupMetadataValue {
            group_id: "g".into(),
            protocol_type: Some("consumer".into()),
            generation_id: 1,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: None,
            members: vec![MemberMetadataValue {
                subscription: Bytes::from_static(&[0, 0, 0, 0, 0, 9]),
                ..member("m1", None, None)
            }],
        });
        round_trip(record);
    }

    #[test]
    fn subscription_versions() {
        // v1 with owned partitions, v2 generation, v3 rack, and a future v9
        // read as v3 with trailing bytes ignored.
        let mut b = BytesMut::new();
        b.put_i16(9);
        b.put_i32(2);
        for t in ["x", "y"] {
            b.put_i16(1);
            b.put_slice(t.as_bytes());
        }
        b.put_i32(2); // user data
        b.put_slice(&[7, 7]);
        b.put_i32(1); // owned partitions
        b.put_i16(1);
        b.put_slice(b"x");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(1);
        b.put_i32(4); // generation
        b.put_i16(-1); // rack
        b.put_slice(b"future");
        assert_eq!(
            subscription_topics(&b),
            Some(BTreeSet::from(["x".to_string(), "y".to_string()]))
        );
        assert_eq!(
            subscription_topics(&subscription_v0(&[])),
            Some(BTreeSet::new())
        );
        assert_eq!(subscription_topics(&[0xff, 0xff, 0, 0, 0, 0]), None);
        assert_eq!(subscription_topics(&[]), None);
        // v1 missing its owned partitions.
        let mut v1 = BytesMut::from(&subscription_v0(&["x"])[..]);
        v1[1] = 1;
        assert_eq!(subscription_topics(&v1), None);
    }

    const OFFSET_KEY: &[u8] = &[
        0, 1, // key version 1
        0, 1, b'g', // group "g"
        0, 2, b't', b'p', // topic "tp"
        0, 0, 0, 3, // partition 3
    ];
    const OFFSET_VALUE: &[u8] = &[
        0, 3, // value version 3
        0, 0, 0, 0, 0, 0, 0, 42, // offset 42
        0, 0, 0, 5, // leader epoch 5
        0, 1, b'm', // metadata "m"
        0, 0, 0, 0, 0, 0, 0x03, 0xe8, // commit timestamp 1000
    ];
    const GROUP_KEY: &[u8] = &[
        0, 2, // key version 2
        0, 3, b'g', b'r', b'p', // group "grp"
    ];
    const GROUP_VALUE: &[u8] = &[
        0, 3, // value version 3
        0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', // protocolType
        0, 0, 0, 2, // generation 2
        0, 5, b'r', b'a', b'n', b'g', b'e', // protocol "range"
        0, 2, b'm', b'1', // leader "m1"
        0, 0, 0, 0, 0, 0, 0x07, 0xd0, // currentStateTimestamp 2000
        0, 0, 0, 1, // 1 member
        0, 2, b'm', b'1', // memberId
        0xff, 0xff, // groupInstanceId null
        0, 1, b'c', // clientId "c"
        0, 2, b'/', b'h', // clientHost "/h"
        0, 0, 0x75, 0x30, // rebalanceTimeout 30000
        0, 0, 0x27, 0x10, // sessionTimeout 10000
        0, 0, 0, 13, // subscription: 13 bytes
        0, 0, // ConsumerProtocolSubscription v0
        0, 0, 0, 1, // 1 topic
        0, 1, b't', // "t"
        0xff, 0xff, 0xff, 0xff, // userData null
        0, 0, 0, 2, 9, 9, // assignment [9, 9]
    ];

    fn golden_offset() -> GroupRecord {
        GroupRecord::Offset {
            group_id: "g".into(),
            tp: TopicPartition::new("tp", 3),
            committed: committed(42, Some(5), "m", 1000),
        }
    }

    fn golden_group() -> GroupRecord {
        GroupRecord::Metadata(GroupMetadataValue {
            group_id: "grp".into(),
            protocol_type: Some("consumer".into()),
            generation_id: 2,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: Some(2000),
            members: vec![MemberMetadataValue {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: subscription_v0(&["t"]),
                subscribed_topics: Some(BTreeSet::from(["t".to_string()])),
                assignment: Bytes::from_static(&[9, 9]),
            }],
        })
    }

    #[test]
    fn golden_bytes() {
        let (key, value) = encode(&golden_offset());
        assert_eq!(&key[..], OFFSET_KEY);
        assert_eq!(value.as_deref(), Some(OFFSET_VALUE));
        assert_eq!(
            decode(OFFSET_KEY, Some(OFFSET_VALUE)),
            Ok(Some(golden_offset()))
        );

        let (key, value) = encode(&golden_group());
        assert_eq!(&key[..], GROUP_KEY);
        assert_eq!(value.as_deref(), Some(GROUP_VALUE));
        assert_eq!(
            decode(GROUP_KEY, Some(GROUP_VALUE)),
            Ok(Some(golden_group()))
        );

        assert_eq!(
            decode(GROUP_KEY, None),
            Ok(Some(GroupRecord::GroupTombstone {
                group_id: "grp".into()
            }))
        );
        // Key version 0 reads like 1.
        let mut v0 = OFFSET_KEY.to_vec();
        v0[1] = 0;
        assert_eq!(
            decode(&v0, None),
            Ok(Some(GroupRecord::OffsetTombstone {
                group_id: "g".into(),
                tp: TopicPartition::new("tp", 3),
            }))
        );
    }

    #[test]
    fn decodes_old_offset_value_versions() {
        // v0: offset, metadata, timestamp.
        let v0 = [
            &[0u8, 0][..],
            &42i64.to_be_bytes(),
            &[0, 1, b'm'],
            &1000i64.to_be_bytes(),
        ]
        .concat();
        let expected = Some(GroupRecord::Offset {
            group_id: "g".into(),
            tp: TopicPartition::new("tp", 3),
            committed: committed(42, None, "m", 1000),
        });
        assert_eq!(decode(OFFSET_KEY, Some(&v0)), Ok(expected.clone()));
        // v1: plus expireTimestamp, dropped.
        let mut v1 = [&v0[..], &5000i64.to_be_bytes()].concat();
        v1[1] = 1;
        assert_eq!(decode(OFFSET_KEY, Some(&v1)), Ok(expected.clone()));
        // v2: same fields as v0.
        let mut v2 = v0.clone();
        v2[1] = 2;
        assert_eq!(decode(OFFSET_KEY, Some(&v2)), Ok(expected));
        // v4, flexible: compact metadata and a tagged field to skip.
        let v4 = [
            &[0u8, 4][..],
            &42i64.to_be_bytes(),
            &5i32.to_be_bytes(),
            &[2, b'm'],
            &1000i64.to_be_bytes(),
            &[1, 7, 2, 0xaa, 0xbb], // 1 tagged field: tag 7, 2 bytes
        ]
        .concat();
        assert_eq!(decode(OFFSET_KEY, Some(&v4)), Ok(Some(golden_offset())));
        let mut v5 = v0;
        v5[1] = 5;
        assert_eq!(
            decode(OFFSET_KEY, Some(&v5)),
            Err(CodecError::UnknownValueVersion {
                record: "OffsetCommitValue",
                version: 5
            })
        );
    }

    #[test]
    fn decodes_old_group_value_versions() {
        let sub = subscription_v0(&["t"]);
        let header = |version: u8| {
            let mut b = vec![0, version, 0, 8];
            b.extend_from_slice(b"consumer");
            b.extend_from_slice(&[0, 0, 0, 2, 0, 5]);
            b.extend_from_slice(b"range");
            b.extend_from_slice(&[0, 2, b'm', b'1']);
            b
        };
        let member_tail = |b: &mut Vec<u8>| {
            b.extend_from_slice(&[0, 0, 0x27, 0x10]); // session 10000
            b.extend_from_slice(&(sub.len() as i32).to_be_bytes());
            b.extend_from_slice(&sub);
            b.extend_from_slice(&[0, 0, 0, 2, 9, 9]);
        };
        // v0: no timestamp, no rebalance timeout, no instance id.
        let mut v0 = header(0);
        v0.extend_from_slice(&[0, 0, 0, 1, 0, 2, b'm', b'1', 0, 1, b'c', 0, 2, b'/', b'h']);
        member_tail(&mut v0);
        let Ok(Some(GroupRecord::Metadata(g))) = decode(GROUP_KEY, Some(&v0)) else {
            panic!("v0 decodes");
        };
        assert_eq!(g.current_state_timestamp_ms, None);
        assert_eq!(g.members[0].rebalance_timeout_ms, 10_000);
        assert_eq!(
            g.members[0].subscribed_topics,
            Some(BTreeSet::from(["t".to_string()]))
        );
        // v2: timestamp and rebalance timeout; no instance id.
        let mut v2 = header(2);
        v2.extend_from_slice(&2000i64.to_be_bytes());
        v2.extend_from_slice(&[0, 0, 0, 1, 0, 2, b'm', b'1', 0, 1, b'c', 0, 2, b'/', b'h']);
        v2.extend_from_slice(&[0, 0, 0x75, 0x30]);
        member_tail(&mut v2);
        assert_eq!(decode(GROUP_KEY, Some(&v2)), Ok(Some(golden_group())));
        // v4, flexible, with tagged fields on the member and the group.
        let mut v4 = vec![0, 4, 9];
        v4.extend_from_slice(b"consumer");
        v4.extend_from_slice(&[0, 0, 0, 2, 6]);
        v4.extend_from_slice(b"range");
        v4.extend_from_slice(&[3, b'm', b'1']);
        v4.extend_from_slice(&2000i64.to_be_bytes());
        v4.extend_from_slice(&[2, 3, b'm', b'1', 0, 2, b'c', 3, b'/', b'h']);
        v4.extend_from_slice(&[0, 0, 0x75, 0x30, 0, 0, 0x27, 0x10]);
        v4.push(sub.len() as u8 + 1);
        v4.extend_from_slice(&sub);
        v4.extend_from_slice(&[3, 9, 9]);
        v4.extend_from_slice(&[1, 0, 1, 0xee]); // member: tag 0, 1 byte
        v4.extend_from_slice(&[2, 1, 0, 200, 1, 0]); // group: tag 1 empty, tag 200 empty
        assert_eq!(decode(GROUP_KEY, Some(&v4)), Ok(Some(golden_group())));
    }

    #[test]
    fn skips_newer_record_types_and_rejects_negative_ones() {
        for version in [3i16, 4, 1000, i16::MAX] {
            let key = [&version.to_be_bytes()[..], b"anything"].concat();
            assert_eq!(decode(&key, Some(b"whatever")), Ok(None));
            assert_eq!(decode(&key, None), Ok(None));
        }
        assert_eq!(
            decode(&[0xff, 0xfe, 0, 0], None),
            Err(CodecError::UnknownKeyVersion { version: -2 })
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for (key, value) in [(OFFSET_KEY, OFFSET_VALUE), (GROUP_KEY, GROUP_VALUE)] {
            for cut in 0..key.len() {
                assert!(
                    matches!(
                        decode(&key[..cut], Some(value)),
                        Err(CodecError::Truncated { .. })
                    ),
                    "key cut at {cut}"
                );
            }
            for cut in 0..value.len() {
                assert!(
                    matches!(
                        decode(key, Some(&value[..cut])),
                        Err(CodecError::Truncated { .. })
                    ),
                    "value cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let trailing = [OFFSET_VALUE, &[0]].concat();
        assert_eq!(
            decode(OFFSET_KEY, Some(&trailing)),
            Err(CodecError::TrailingBytes {
                what: "OffsetCommitValue",
                count: 1
            })
        );
        let trailing_key = [GROUP_KEY, b"x"].concat();
        assert!(matches!(
            decode(&trailing_key, None),
            Err(CodecError::TrailingBytes { .. })
        ));
        assert_eq!(
            decode(&[0, 2, 0, 2, 0xc3, 0x28], None),
            Err(CodecError::InvalidUtf8 {
                what: "GroupMetadataKey group"
            })
        );
        assert_eq!(
            decode(&[0, 2, 0xff, 0xff], None),
            Err(CodecError::UnexpectedNull {
                what: "GroupMetadataKey group"
            })
        );
        assert_eq!(
            decode(&[0, 2, 0xff, 0xfe], None),
            Err(CodecError::InvalidLength {
                what: "GroupMetadataKey group",
                length: -2
            })
        );
        // A huge member count with nothing behind it.
        let mut huge = GROUP_VALUE[..GROUP_VALUE.len() - 44].to_vec();
        assert_eq!(&huge[huge.len() - 4..], &[0, 0, 0, 1]);
        let n = huge.len();
        huge[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode(GROUP_KEY, Some(&huge)),
            Err(CodecError::Truncated { .. })
        ));
        // A flexible varint that never ends.
        let bad_varint = [&[0u8, 4][..], &[0; 12], &[0xff; 6]].concat();
        assert_eq!(
            decode(OFFSET_KEY, Some(&bad_varint)),
            Err(CodecError::InvalidVarint {
                what: "OffsetCommitValue metadata"
            })
        );
        assert!(matches!(
            decode(OFFSET_KEY, Some(&[])),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn too_long_strings_fail_try_encode_and_are_clamped_by_encode() {
        let record = GroupRecord::OffsetTombstone {
            group_id: "é".repeat(20_000),
            tp: TopicPartition::new("t", 0),
        };
        assert_eq!(
            try_encode(&record),
            Err(CodecError::TooLong {
                what: "OffsetCommitKey group",
                len: 40_000,
                max: 32_767
            })
        );
        let (key, value) = encode(&record);
        assert_eq!(value, None);
        let Ok(Some(GroupRecord::OffsetTombstone { group_id, tp })) = decode(&key, None) else {
            panic!("clamped key decodes");
        };
        assert_eq!(group_id, "é".repeat(16_383));
        assert_eq!(tp, TopicPartition::new("t", 0));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn decode_never_panics(
                key in proptest::collection::vec(any::<u8>(), 0..64),
                value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
            ) {
                let _ = decode(&key, value.as_deref());
            }

            #[test]
            fn decode_never_panics_on_known_versions(
                key_version in 0i16..=2,
                key in proptest::collection::vec(any::<u8>(), 0..32),
                value_version in 0i16..=4,
                value in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                let key = [&key_version.to_be_bytes()[..], &key].concat();
                let value = [&value_version.to_be_bytes()[..], &value].concat();
                let _ = decode(&key, Some(&value));
            }

            #[test]
            fn mutated_golden_bytes_never_panic(
                pos in any::<proptest::sample::Index>(),
                byte in any::<u8>(),
                group in any::<bool>(),
            ) {
                let (key, value) = if group { (GROUP_KEY, GROUP_VALUE) } else { (OFFSET_KEY, OFFSET_VALUE) };
                let mut value = value.to_vec();
                let i = pos.index(value.len());
                value[i] = byte;
                let _ = decode(key, Some(&value));
            }

            #[test]
            fn offsets_round_trip(
                group_id in ".{0,20}",
                topic in ".{0,20}",
                partition in any::<i32>(),
                offset in any::<i64>(),
                epoch in proptest::option::of(0i32..),
                metadata in ".{0,40}",
                ts in any::<i64>(),
            ) {
                let record = GroupRecord::Offset {
                    group_id,
                    tp: TopicPartition::new(topic, partition),
                    committed: committed(offset, epoch, &metadata, ts),
                };
                let (key, value) = encode(&record);
                prop_assert_eq!(decode(&key, value.as_deref()), Ok(Some(record)));
            }
        }
    }
}
