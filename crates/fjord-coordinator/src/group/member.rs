//! One member of a classic group (Kafka's `MemberMetadata`).

use std::collections::BTreeSet;

use bytes::Bytes;

/// The shell's handle for a parked JoinGroup or SyncGroup request: the
/// answer comes back as a [`DelayedResponse`](super::DelayedResponse) with
/// the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestToken(pub u64);

/// One assignment protocol a member supports, in its order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberProtocol {
    /// The assignor name (`range`, `cooperative-sticky`, ...).
    pub name: String,
    /// Opaque protocol metadata (the consumer's subscription).
    pub metadata: Bytes,
    /// The topics the metadata subscribes to, when the gateway could decode
    /// a consumer subscription; `None` otherwise. Guards OffsetDelete and
    /// offsets retention of Stable consumer groups.
    pub topics: Option<BTreeSet<String>>,
}

impl MemberProtocol {
    pub fn new(name: impl Into<String>, metadata: impl Into<Bytes>) -> Self {
        MemberProtocol {
            name: name.into(),
            metadata: metadata.into(),
            topics: None,
        }
    }
}

/// A joined member. Deadlines are absolute milliseconds of the caller's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<MemberProtocol>,
    /// The assignment of the current generation (empty until the leader syncs).
    pub assignment: Bytes,
    /// A parked JoinGroup of this member.
    pub(crate) awaiting_join: Option<RequestToken>,
    /// A parked SyncGroup of this member.
    pub(crate) awaiting_sync: Option<RequestToken>,
    /// Joined during the group's first join phase: expires after the new
    /// member join timeout even while its JoinGroup is parked.
    pub(crate) is_new: bool,
    /// Session expiry: last heartbeat + session timeout.
    pub(crate) heartbeat_deadline_ms: i64,
    /// Order of joining; the oldest member becomes leader when the leader goes.
    pub(crate) join_seq: u64,
}

impl Member {
    /// The member's metadata for `protocol`, if it supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&MemberProtocol> {
        self.protocols.iter().find(|p| p.name == protocol)
    }

    pub fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    /// Same protocols, same order, same metadata (Kafka's `matches`).
    pub fn matches(&self, protocols: &[MemberProtocol]) -> bool {
        self.protocols.len() == protocols.len()
            && self
                .protocols
                .iter()
                .zip(protocols)
                .all(|(a, b)| a.name == b.name && a.metadata == b.metadata)
    }

    /// The member's most preferred protocol among `candidates`.
    pub(crate) fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// When the session of this member runs out, if it can: a member with a
    /// parked JoinGroup or SyncGroup cannot heartbeat and does not expire
    /// (unless it is new), as in Kafka's `hasSatisfiedHeartbeat`.
    pub(crate) fn expiry_deadline(&self) -> Option<i64> {
        if self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none()) {
            Some(self.heartbeat_deadline_ms)
        } else {
            None
        }
    }

    /// Heartbeat received (or a response handed out): restart the session.
    pub(crate) fn touch(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms.saturating_add(i64::from(self.session_timeout_ms));
    }
}
