//! Why a group request failed. Each variant is one Kafka error code; the
//! gateway maps them in its single error-code module.

/// A group coordinator request error (Kafka's error code in the doc of each).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// INVALID_GROUP_ID
    #[error("the group id is empty")]
    InvalidGroupId,
    /// COORDINATOR_NOT_AVAILABLE (retriable): `__consumer_offsets` cannot be
    /// created yet, the group is being deleted, or the records of the call
    /// could not be replicated (too few in-sync replicas, the write timed out).
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// NOT_COORDINATOR: this node no longer leads the group's
    /// `__consumer_offsets` partition.
    #[error("this node is not the group's coordinator")]
    NotCoordinator,
    /// COORDINATOR_LOAD_IN_PROGRESS (retriable): this node leads the group's
    /// `__consumer_offsets` partition but is still replaying it.
    #[error("the group coordinator is loading the group's partition")]
    CoordinatorLoadInProgress,
    /// UNKNOWN_SERVER_ERROR: the records of the call could not be appended for
    /// a reason a retry does not fix (Kafka's answer to records too large).
    #[error("the group coordinator could not write the call's records")]
    UnknownServerError,
    /// INVALID_SESSION_TIMEOUT
    #[error("session timeout {timeout_ms} ms is outside [{min_ms}, {max_ms}]")]
    InvalidSessionTimeout {
        timeout_ms: i32,
        min_ms: i32,
        max_ms: i32,
    },
    /// INCONSISTENT_GROUP_PROTOCOL
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    /// UNKNOWN_MEMBER_ID
    #[error("unknown member id {member_id:?}")]
    UnknownMemberId { member_id: String },
    /// MEMBER_ID_REQUIRED (KIP-394): rejoin with the given member id.
    #[error("a member id is required: rejoin with {member_id:?}")]
    MemberIdRequired { member_id: String },
    /// FENCED_INSTANCE_ID (KIP-345): another member id now owns the instance id.
    #[error("static member {group_instance_id:?} is fenced: member id {member_id:?} was replaced")]
    FencedInstanceId {
        group_instance_id: String,
        member_id: String,
    },
    /// ILLEGAL_GENERATION
    #[error("generation {generation_id} is not the group's generation {current}")]
    IllegalGeneration { generation_id: i32, current: i32 },
    /// REBALANCE_IN_PROGRESS
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// GROUP_MAX_SIZE_REACHED
    #[error("the group has reached group.max.size {max}")]
    GroupMaxSizeReached { max: usize },
    /// GROUP_ID_NOT_FOUND
    #[error("group not found")]
    GroupIdNotFound,
    /// NON_EMPTY_GROUP
    #[error("the group has members")]
    NonEmptyGroup,
    /// GROUP_SUBSCRIBED_TO_TOPIC
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// UNSTABLE_OFFSET_COMMIT (retriable, KIP-447): OffsetFetch with
    /// `require_stable` of a partition whose transactional offsets wait for
    /// their transaction's end.
    #[error("the partition has pending transactional offsets")]
    UnstableOffsetCommit,
    /// OFFSET_METADATA_TOO_LARGE
    #[error("offset metadata of {size} bytes exceeds offset.metadata.max.bytes {max}")]
    OffsetMetadataTooLarge { size: usize, max: usize },
}
