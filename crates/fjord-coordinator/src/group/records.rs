//! What the coordinator writes to `__consumer_offsets`, and replay: how a
//! coordinator that loads a partition rebuilds its groups from it.
//!
//! Keys follow Kafka's: group metadata and its tombstone are keyed by group
//! id, offsets and their tombstones by (group id, topic, partition); the
//! shell encodes them and the log compacts them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use fjord_types::TopicPartition;

use super::api::CommittedOffset;
use super::{ClassicGroup, GroupState, Member, MemberProtocol};
use crate::txn::TransactionResult;

/// One `__consumer_offsets` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    /// The group after a sync completed, after it became Empty, or after a
    /// static member was replaced in a Stable group.
    Metadata(GroupMetadataValue),
    /// A committed offset.
    Offset {
        group_id: String,
        tp: TopicPartition,
        committed: CommittedOffset,
    },
    /// A transactional offset commit (TxnOffsetCommit): the same key and
    /// value as [`GroupRecord::Offset`], in a transactional batch of the
    /// producer; pending until the producer's [`GroupRecord::EndTxnMarker`].
    TxnOffset {
        producer_id: i64,
        producer_epoch: i16,
        group_id: String,
        tp: TopicPartition,
        committed: CommittedOffset,
    },
    /// A deleted or expired offset; pending transactional offsets of the
    /// partition go too.
    OffsetTombstone {
        group_id: String,
        tp: TopicPartition,
    },
    /// A deleted group (after its offset tombstones).
    GroupTombstone { group_id: String },
    /// The COMMIT or ABORT marker of a producer's transaction (the record
    /// of a control batch, which the transaction coordinator's
    /// WriteTxnMarkers writes, never the group coordinator): settles the
    /// producer's pending offsets in every group of the partition.
    EndTxnMarker {
        producer_id: i64,
        producer_epoch: i16,
        result: TransactionResult,
        coordinator_epoch: i32,
    },
}

impl GroupRecord {
    /// The group the record belongs to (which picks its partition); empty
    /// for a marker, which belongs to the partition.
    pub fn group_id(&self) -> &str {
        match self {
            GroupRecord::Metadata(value) => &value.group_id,
            GroupRecord::Offset { group_id, .. }
            | GroupRecord::TxnOffset { group_id, .. }
            | GroupRecord::OffsetTombstone { group_id, .. }
            | GroupRecord::GroupTombstone { group_id } => group_id,
            GroupRecord::EndTxnMarker { .. } => "",
        }
    }
}

/// Kafka's `GroupMetadataValue`: the chosen protocol's metadata only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub group_id: String,
    pub protocol_type: Option<String>,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: Option<i64>,
    pub members: Vec<MemberMetadataValue>,
}

/// One member in a [`GroupMetadataValue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Metadata for the chosen protocol.
    pub subscription: Bytes,
    /// Decoded topics of `subscription`, when known.
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub assignment: Bytes,
}

/// Applies one record to `groups` (Kafka's `loadGroupsAndOffsets`): a
/// group with members loads as Stable, without as Empty; offsets of a
/// group without metadata make an Empty group with no protocol type.
/// Member sessions start when loading completes.
pub(crate) fn replay(groups: &mut BTreeMap<String, ClassicGroup>, record: GroupRecord) {
    match record {
        GroupRecord::Metadata(value) => {
            let group = groups
                .entry(value.group_id.clone())
                .or_insert_with(|| ClassicGroup::new(value.group_id.clone(), None));
            let offsets = std::mem::take(&mut group.offsets);
            let pending_txn = std::mem::take(&mut group.pending_txn);
            let mut fresh =
                ClassicGroup::new(value.group_id.clone(), value.current_state_timestamp_ms);
            fresh.offsets = offsets;
            fresh.pending_txn = pending_txn;
            fresh.generation_id = value.generation_id;
            let protocol_type_of_record = value.protocol_type;
            fresh.protocol_type = protocol_type_of_record.clone();
            fresh.protocol_name = value.protocol_name.clone();
            let protocol = value.protocol_name.unwrap_or_default();
            for m in value.members {
                let member = Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![MemberProtocol {
                        name: protocol.clone(),
                        metadata: m.subscription,
                        topics: m.subscribed_topics,
                    }],
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                    heartbeat_deadline_ms: i64::MAX,
                    join_seq: 0,
                };
                let protocol_type = fresh.protocol_type.clone().unwrap_or_default();
                fresh.add_member(member, &protocol_type);
            }
            fresh.leader_id = value
                .leader
                .filter(|id| fresh.members.contains_key(id))
                .or_else(|| fresh.members().first().map(|m| m.member_id.clone()));
            fresh.protocol_type = protocol_type_of_record;
            if !fresh.members.is_empty() {
                fresh.state = GroupState::Stable;
            }
            fresh.subscribed_topics = fresh.compute_subscribed_topics();
            *group = fresh;
        }
        GroupRecord::Offset {
            group_id,
            tp,
            committed,
        } => {
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| ClassicGroup::new(group_id, None));
            group.pending_txn.on_committed(&tp);
            group.offsets.insert(tp, committed);
        }
        GroupRecord::TxnOffset {
            producer_id,
            group_id,
            tp,
            committed,
            ..
        } => {
            groups
                .entry(group_id.clone())
                .or_insert_with(|| ClassicGroup::new(group_id, None))
                .pending_txn
                .add(producer_id, tp, committed);
        }
        GroupRecord::OffsetTombstone { group_id, tp } => {
            if let Some(group) = groups.get_mut(&group_id) {
                group.offsets.remove(&tp);
                group.pending_txn.remove_partition(&tp);
            }
        }
        GroupRecord::GroupTombstone { group_id } => {
            groups.remove(&group_id);
        }
        GroupRecord::EndTxnMarker {
            producer_id,
            result,
            ..
        } => complete_txn(groups, producer_id, result),
    }
}

/// Settles `producer_id`'s pending offsets in every group (see
/// [`GroupCoordinator::complete_txn`](super::GroupCoordinator::complete_txn)).
pub(crate) fn complete_txn(
    groups: &mut BTreeMap<String, ClassicGroup>,
    producer_id: i64,
    result: TransactionResult,
) {
    for group in groups.values_mut() {
        group
            .pending_txn
            .complete(producer_id, result, &mut group.offsets);
    }
}
