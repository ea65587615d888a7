//! The classic consumer-group coordinator as plain code: events in,
//! decisions out. No sockets, no timers, no log I/O.
//!
//! What it owns:
//! - [`GroupCoordinator`]: the groups of the `__consumer_offsets` partitions
//!   this node leads, one method per Kafka API (JoinGroup, SyncGroup,
//!   Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete,
//!   DeleteGroups, DescribeGroups, ListGroups) taking domain requests and
//!   `now_ms`, returning a [`CoordinatorOutput`]: the immediate reply (or
//!   [`Reply::Pending`] for a parked JoinGroup/SyncGroup), the
//!   [`GroupRecord`]s to append to `__consumer_offsets`, and the
//!   [`DelayedResponse`]s of parked requests that are now answered.
//! - [`ClassicGroup`]: one group — state, generation, protocol, leader,
//!   members, static members, pending (KIP-394) members, committed offsets.
//! - [`GroupRecord`] and [`GroupCoordinator::replay`]: what Kafka writes to
//!   `__consumer_offsets`, and how a coordinator rebuilds state from it.
//! - Transactions (KIP-98/447): [`GroupCoordinator::txn_offset_commit`]
//!   stores offsets as pending for their producer (OffsetFetch does not see
//!   them; with `require_stable` their partitions answer
//!   UNSTABLE_OFFSET_COMMIT); [`GroupCoordinator::complete_txn`], for the
//!   producer's COMMIT/ABORT marker in the partition, commits or drops them.
//!
//! - [`GroupCoordinator::unload`]: leadership of a `__consumer_offsets`
//!   partition moved away; its groups go and parked requests get
//!   NOT_COORDINATOR.
//!
//! Time is an input: the shell asks [`GroupCoordinator::next_deadline`] and
//! calls [`GroupCoordinator::on_tick`] when it passes (session expiry, join
//! and pending-sync timeouts, the initial rebalance delay, offsets retention).
//!
//! States and transitions (Kafka's classic protocol):
//! ```text
//!  Empty ──join──► PreparingRebalance ──all joined / rebalance timeout──► CompletingRebalance
//!    ▲                 ▲        │ (no members left)                          │ leader SyncGroup
//!    └─────────────────┼────────┘                                            ▼
//!                      └──── member join/leave/expiry/metadata change ─── Stable
//!  Empty ──DeleteGroups / offsets expired / cleanup──► Dead (removed from the map)
//! ```
//! - Empty: no members; offsets may exist and expire after
//!   `offsets.retention.minutes` counted from when the group became empty.
//!   The group is kept (listed, described, deletable) until DeleteGroups,
//!   until its last offsets expire, or, when it has none (its last member
//!   left, OffsetDelete removed them), until the cleanup
//!   `offsets.retention.check.interval.ms` later.
//! - PreparingRebalance: waiting for every known member to (re)join; members
//!   that do not rejoin by the rebalance timeout (max over members) are
//!   removed, except static members (KIP-345), which only their session
//!   timeout removes.
//! - CompletingRebalance: the generation is bumped, the protocol chosen, the
//!   leader has the member list; waiting for the leader's SyncGroup.
//! - Stable: assignment stored (a `GroupRecord::Metadata` written) and
//!   handed to every member.
//! - Dead: being deleted; never kept in the map.
//!
//! Invariants:
//! - Every JoinGroup/SyncGroup answered with [`Reply::Pending`] gets exactly
//!   one [`DelayedResponse`] carrying its [`RequestToken`], in this call's
//!   output or a later one.
//! - The shell must make a call's `records` durable before it sends the
//!   call's responses (Kafka answers SyncGroup and OffsetCommit only after
//!   the append). When the append fails, the shell puts back the state of
//!   [`GroupCoordinator::snapshot`] taken before the call.
//! - A group with members always has a leader that is one of its members.
//! - `generation_id` only grows; it bumps once per completed join phase.
//! - Replaying the records a coordinator emitted rebuilds the persisted part
//!   of its state (Stable/Empty groups, generations, assignments, offsets).
//!
//! Wiring:
//! - Gateway: translates the wire requests into these types (JoinGroup v4+
//!   sets `require_known_member_id`; for protocol type `consumer` it decodes
//!   each `ConsumerProtocolSubscription` into [`MemberProtocol::topics`];
//!   below JoinGroup v9 it drops the members of a `skip_assignment` answer)
//!   and maps [`GroupError`] to error codes.
//! - [`crate::runtime`]: one [`GroupCoordinator`] per led
//!   `__consumer_offsets` partition; it parks [`Reply::Pending`] requests
//!   by [`RequestToken`], encodes [`GroupRecord`]s with [`codec`], appends
//!   them and waits for them to be committed before sending the call's
//!   answers; it replays a partition when this node becomes its leader
//!   ([`GroupCoordinator::replay`], then
//!   [`GroupCoordinator::complete_load`]) and calls
//!   [`GroupCoordinator::unload`] when it stops; its timer sleeps until
//!   [`GroupCoordinator::next_deadline`] and calls
//!   [`GroupCoordinator::on_tick`].
//!
//! Departures from Kafka: ties in protocol votes go to the first name in
//! lexicographic order (Kafka: hash order); offsets expire at their exact
//! deadline rather than every `offsets.retention.check.interval.ms`, and an
//! Empty group without offsets goes one interval after it became so (Kafka:
//! at the next periodic run, at most one interval later); a JoinGroup that
//! creates a group writes nothing until the group has a generation (Kafka 4
//! writes an empty group metadata record at once); a
//! parked JoinGroup/SyncGroup replaced by a newer one from the same member
//! is answered REBALANCE_IN_PROGRESS (Kafka drops it); pending
//! transactional offsets are kept per group (Kafka 4: per producer across
//! groups; a marker here visits every group of the partition) and settled
//! by write order rather than record offset (see `txn_offsets.rs`);
//! OffsetCommit v1 retention times and KIP-848 groups are not modelled.

mod api;
mod classic_group;
pub mod codec;
mod coordinator;
mod errors;
mod member;
mod offsets;
mod rebalance;
mod records;
mod state;
mod txn_offsets;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests_membership;
#[cfg(test)]
mod tests_offsets;
#[cfg(test)]
mod tests_simulation;
#[cfg(test)]
mod tests_timeouts;
#[cfg(test)]
mod tests_txn_offsets;

pub use api::*;
pub use classic_group::ClassicGroup;
pub use coordinator::{GroupCoordinator, GroupsSnapshot};
pub use errors::GroupError;
pub use member::{Member, MemberProtocol, RequestToken};
pub use records::{GroupMetadataValue, GroupRecord, MemberMetadataValue};
pub use state::GroupState;

/// The protocol type of Kafka consumers (`ConsumerProtocol.PROTOCOL_TYPE`):
/// only such groups have subscribed topics that guard their offsets.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Settings of the group coordinator, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of
    /// an Empty group waits for more members (extended per new member up to
    /// the rebalance timeout). 0 disables the delay.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often Kafka's cleanup
    /// runs. An Empty group without offsets is deleted this long after it
    /// became so (emptied, lost its last offset to OffsetDelete, or was
    /// loaded), where Kafka's periodic cleanup deletes it at the latest.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// How long a new member may wait in its first join phase
    /// (Kafka's `NewMemberJoinTimeoutMs`, 5 minutes).
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            new_member_join_timeout_ms: 300_000,
        }
    }
}
