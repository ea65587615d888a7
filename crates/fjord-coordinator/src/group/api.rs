//! Requests and responses of the group APIs in domain terms. The gateway
//! translates Kafka wire types to and from these.

use std::collections::BTreeSet;

use bytes::Bytes;
use fjord_types::{LeaderEpoch, Offset, TopicPartition};

use super::{GroupError, GroupRecord, GroupState, MemberProtocol, RequestToken};

/// What one coordinator call decided.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct CoordinatorOutput<T> {
    /// The answer to the request itself.
    pub reply: T,
    /// To append to `__consumer_offsets`, in order, before sending answers.
    pub records: Vec<GroupRecord>,
    /// Parked JoinGroup/SyncGroup requests answered by this call.
    pub delayed: Vec<DelayedResponse>,
}

/// An answer now, or later through a [`DelayedResponse`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Pending,
}

/// The answer to a parked request.
#[derive(Debug, PartialEq, Eq)]
pub enum DelayedResponse {
    Join {
        token: RequestToken,
        result: Result<JoinGroupResult, GroupError>,
    },
    Sync {
        token: RequestToken,
        result: Result<SyncGroupResult, GroupError>,
    },
}

/// JoinGroup. `member_id` is empty for a member that has none yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupRequest {
    pub token: RequestToken,
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<MemberProtocol>,
    /// Request version >= 4 (KIP-394): a new dynamic member first gets
    /// MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A successful JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResult {
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// KIP-814: the leader gets the members but must not assign (a static
    /// leader rejoined a Stable group). The gateway drops `members` for
    /// JoinGroup versions below 9.
    pub skip_assignment: bool,
    /// Non-empty only for the leader.
    pub members: Vec<JoinedMember>,
}

/// SyncGroup; `assignments` only from the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupRequest {
    pub token: RequestToken,
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A successful SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResult {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// One member of a LeaveGroup (v3+ batches; by instance id with an empty
/// member id for administrative removal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

/// Top-level error, or one result per leaving member.
pub type LeaveGroupResponse = Result<Vec<(LeavingMember, Result<(), GroupError>)>, GroupError>;

/// One committed offset as stored (Kafka's `OffsetAndMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: Offset,
    pub leader_epoch: Option<LeaderEpoch>,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One partition of an OffsetCommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitPartition {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub leader_epoch: Option<LeaderEpoch>,
    pub metadata: String,
}

/// OffsetCommit. A standalone (admin / manual assignment) commit has
/// generation -1, an empty member id and no instance id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<OffsetCommitPartition>,
}

pub type PartitionResults = Vec<(TopicPartition, Result<(), GroupError>)>;

/// TxnOffsetCommit: offsets a transactional producer commits in its
/// transaction. v0–v2 carry no member: generation -1, empty member id, no
/// instance id; v3+ (KIP-447) carry the consumer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<OffsetCommitPartition>,
}

/// OffsetFetch; `partitions: None` asks for every committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    pub group_id: String,
    pub partitions: Option<Vec<TopicPartition>>,
    /// v7+ (KIP-447): a partition with pending transactional offsets of the
    /// group answers UNSTABLE_OFFSET_COMMIT instead of its committed offset.
    pub require_stable: bool,
}

/// Per partition, the committed offset (`None`: nothing committed, Kafka's
/// offset -1) or UNSTABLE_OFFSET_COMMIT.
pub type OffsetFetchResponse =
    Result<Vec<(TopicPartition, Result<Option<CommittedOffset>, GroupError>)>, GroupError>;

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the chosen protocol; empty unless Stable.
    pub metadata: Bytes,
    /// Empty unless Stable.
    pub assignment: Bytes,
}

/// DescribeGroups of one group. An unknown group is described as Dead with
/// no members, as Kafka does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless Stable.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// ListGroups entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Topics a set of members subscribe to, when all are known.
pub(crate) fn union_topics<'a>(
    sets: impl Iterator<Item = Option<&'a BTreeSet<String>>>,
) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(set?.iter().cloned());
    }
    Some(all)
}
