//! One file per Kafka api, and the registry that ties them together.
//!
//! `apis!` below is the one table of (api, min version, max version,
//! handler module): it becomes both [`SUPPORTED`] (what decoding accepts and
//! ApiVersions advertises) and [`handle`]'s dispatch, so neither can know an
//! api the other lacks. A new api is one row there plus one module whose
//! handler has the shape every handler has:
//!
//! ```text
//! pub(crate) async fn handle(ctx: &RequestContext, svc: &Services, request: XRequest) -> R
//! ```
//!
//! where `R` is the response message (anything `Into<ResponseKind>`) or a
//! [`Reply`] when the handler needs to say more (no response for acks=0, a
//! size hint for fetch, or closing the connection). Handlers take the
//! version, listener, client and peer from the context, call the one
//! service their api belongs to ([`Services`]) in domain terms, and build
//! the response message; [`handle`] encodes.

mod acl_wire;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_user_scram_credentials;
pub(crate) mod api_versions;
mod authorized_operations;
mod config_resource;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_producers;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod produce_verification;
mod quota_wire;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use std::net::SocketAddr;

use fjord_broker::{MetadataImage, PartitionRegistration};
use fjord_types::{BrokerId, TopicId};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::frame::encode_response_frame;
use crate::response_frame::ResponseFrame;
use crate::services::Services;

/// The registry: `Api => handler_module, min..=max;` per served api. `Api`
/// names both the `ApiKey` and the `RequestKind` variant. Minimums sit at the
/// KIP-896 floor (Kafka 4, which `kafka-protocol` 0.18 also starts at);
/// maximums are the newest version each handler fills in correctly.
macro_rules! apis {
    ($($api:ident => $module:ident, $min:literal..=$max:literal;)*) => {
        /// (api, min version, max version) for every api a handler exists
        /// for, in the order ApiVersions lists them.
        pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[$((ApiKey::$api, $min, $max),)*];

        /// Run the handler the registry names for `request`.
        async fn dispatch(
            ctx: &RequestContext,
            svc: &Services,
            request: RequestKind,
        ) -> Reply {
            match request {
                $(RequestKind::$api(r) => $module::handle(ctx, svc, r).await.into_reply(),)*
                // Decoding already refused every api not in `SUPPORTED`.
                _ => Reply::Close(GatewayError::UnsupportedApi { api_key: ctx.api_key }),
            }
        }

        /// Per row: the versions `kafka-protocol` knows for the row's
        /// request and response messages (the types the handler takes and
        /// answers with).
        #[cfg(test)]
        fn message_versions() -> Vec<(ApiKey, VersionRange, VersionRange)> {
            fn request<T: kafka_protocol::protocol::Message>(_: fn(T) -> RequestKind) -> VersionRange {
                T::VERSIONS
            }
            fn response<T: kafka_protocol::protocol::Message>(_: fn(T) -> ResponseKind) -> VersionRange {
                T::VERSIONS
            }
            vec![$((
                ApiKey::$api,
                request(RequestKind::$api),
                response(ResponseKind::$api),
            ),)*]
        }
    };
}

apis! {
    Produce => produce, 3..=13;
    Fetch => fetch, 4..=18;
    ListOffsets => list_offsets, 1..=10;
    Metadata => metadata, 0..=13;
    ApiVersions => api_versions, 0..=4;
    CreateTopics => create_topics, 2..=7;
    DeleteTopics => delete_topics, 1..=6;
    DeleteRecords => delete_records, 0..=2;
    DescribeConfigs => describe_configs, 1..=4;
    AlterConfigs => alter_configs, 0..=2;
    CreatePartitions => create_partitions, 0..=3;
    DescribeCluster => describe_cluster, 0..=2;
    InitProducerId => init_producer_id, 0..=5;
    OffsetCommit => offset_commit, 2..=9;
    OffsetFetch => offset_fetch, 1..=9;
    FindCoordinator => find_coordinator, 0..=6;
    JoinGroup => join_group, 0..=9;
    Heartbeat => heartbeat, 0..=4;
    LeaveGroup => leave_group, 0..=5;
    SyncGroup => sync_group, 0..=5;
    // v0 is advertised but refused (sasl/session.rs): older librdkafka (2.0.2 in
    // Debian's kcat) only sends SaslHandshake (at v1) when ApiVersions lists v0,
    // as Kafka 4.1 does.
    SaslHandshake => sasl_handshake, 0..=1;
    SaslAuthenticate => sasl_authenticate, 0..=2;
    DescribeGroups => describe_groups, 0..=5;
    ListGroups => list_groups, 0..=5;
    DeleteGroups => delete_groups, 0..=2;
    OffsetDelete => offset_delete, 0..=0;
    OffsetForLeaderEpoch => offset_for_leader_epoch, 2..=4;
    ElectLeaders => elect_leaders, 0..=2;
    IncrementalAlterConfigs => incremental_alter_configs, 0..=1;
    AlterPartitionReassignments => alter_partition_reassignments, 0..=1;
    ListPartitionReassignments => list_partition_reassignments, 0..=0;
    AddPartitionsToTxn => add_partitions_to_txn, 0..=3;
    AddOffsetsToTxn => add_offsets_to_txn, 0..=4;
    EndTxn => end_txn, 0..=4;
    TxnOffsetCommit => txn_offset_commit, 0..=4;
    WriteTxnMarkers => write_txn_markers, 1..=1;
    DescribeProducers => describe_producers, 0..=0;
    DescribeTransactions => describe_transactions, 0..=0;
    ListTransactions => list_transactions, 0..=1;
    DescribeAcls => describe_acls, 1..=3;
    CreateAcls => create_acls, 1..=3;
    DeleteAcls => delete_acls, 1..=3;
    DescribeUserScramCredentials => describe_user_scram_credentials, 0..=0;
    AlterUserScramCredentials => alter_user_scram_credentials, 0..=0;
    DescribeClientQuotas => describe_client_quotas, 0..=1;
    AlterClientQuotas => alter_client_quotas, 0..=1;
}

/// The versions of `api_key` this gateway serves, if it serves it at all.
pub(crate) fn supported_versions(api_key: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| VersionRange { min, max })
}

/// What a handler sends back.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a Reply lives on the stack between handler and encoder; boxing the response would allocate once per request"
)]
pub(crate) enum Reply {
    /// A response; `size_hint` is the handler's guess of its encoded size
    /// (a fetch knows its record bytes), so it is written without regrowing.
    Response {
        body: ResponseKind,
        size_hint: usize,
    },
    /// Nothing: the client expects no response (acks=0 produce).
    NoResponse,
    /// Close the connection without answering (a failed acks=0 produce, as
    /// in Kafka).
    Close(GatewayError),
}

/// What a handler may return: its response message, or a [`Reply`].
pub(crate) trait IntoReply {
    fn into_reply(self) -> Reply;
}

impl<T: Into<ResponseKind>> IntoReply for T {
    fn into_reply(self) -> Reply {
        Reply::Response {
            body: self.into(),
            size_hint: 0,
        }
    }
}

impl IntoReply for Reply {
    fn into_reply(self) -> Reply {
        self
    }
}

/// Handle one request; `Ok(None)` when the client expects no response
/// (acks=0).
pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: RequestKind,
) -> Result<Option<ResponseFrame>, GatewayError> {
    let started = std::time::Instant::now();
    let mut request = request;
    let pending = crate::quota::before(ctx, svc, &mut request);
    let mut reply = dispatch(ctx, svc, request).await;
    if let Some(pending) = pending {
        crate::quota::after(ctx, svc, pending, &mut reply, started.elapsed());
    }
    match reply {
        Reply::Response { body, size_hint } => encode_response_frame(
            ctx.api_key,
            ctx.api_version,
            ctx.correlation_id,
            &body,
            size_hint,
        )
        .map(Some),
        Reply::NoResponse => Ok(None),
        Reply::Close(err) => Err(err),
    }
}

/// The client host Kafka shows for a member (`InetAddress.toString` of
/// the peer: a slash and the address).
pub(crate) fn client_host(peer: SocketAddr) -> String {
    format!("/{}", peer.ip())
}

/// A wire string from ours.
pub(crate) fn wire_str(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name as the wire carries it.
pub(crate) fn wire_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Kafka's topic id on the wire from ours (and back): both are UUIDs.
pub(crate) fn wire_topic_id(id: TopicId) -> Uuid {
    id.0
}

pub(crate) fn topic_id_from_wire(id: Uuid) -> TopicId {
    TopicId(id)
}

/// The partition's registration, if the topic and partition exist.
pub(crate) fn partition_registration<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Option<&'a PartitionRegistration> {
    let topic = image.topic_by_name(topic)?;
    usize::try_from(partition)
        .ok()
        .and_then(|p| topic.partitions.get(p))
}

/// The host and port a client connected to `listener` should use for
/// `broker_id`: that broker's endpoint registered under the same listener
/// name. `None` when the broker is unknown or has no such listener; as in
/// Kafka, callers then leave the broker out (Metadata and DescribeCluster
/// brokers, the produce/fetch `node_endpoints` hints) or report it
/// unavailable (a partition leader, a coordinator), never falling back to
/// another listener's address the client may not be able to reach.
pub(crate) fn broker_endpoint(
    image: &MetadataImage,
    broker_id: BrokerId,
    listener: &str,
) -> Option<(String, u16)> {
    image
        .brokers
        .get(&broker_id)?
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .map(|l| (l.host.clone(), l.port))
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, and not
/// "." or "..". Requests with other names get INVALID_TOPIC_EXCEPTION without
/// reaching the broker.
pub(crate) fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Topics Kafka marks `is_internal`.
pub(crate) fn is_internal_topic(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state")
}

/// A Fetch (v4+) or ListOffsets (v2+) `isolation_level`: 1 is
/// READ_COMMITTED, anything else (0, or absent in older versions)
/// READ_UNCOMMITTED, as Kafka reads it.
pub(crate) fn isolation_level(wire: i8) -> fjord_log::IsolationLevel {
    if wire == 1 {
        fjord_log::IsolationLevel::ReadCommitted
    } else {
        fjord_log::IsolationLevel::ReadUncommitted
    }
}

/// Check the leader epoch a client believes current (-1: it does not say)
/// against the partition's, as Kafka does for fetch and list offsets.
pub(crate) fn check_leader_epoch(
    registration: Option<&PartitionRegistration>,
    current_leader_epoch: i32,
) -> Option<kafka_protocol::ResponseError> {
    use kafka_protocol::ResponseError;
    let registration = registration?;
    if current_leader_epoch < 0 {
        None
    } else if current_leader_epoch < registration.leader_epoch {
        Some(ResponseError::FencedLeaderEpoch)
    } else if current_leader_epoch > registration.leader_epoch {
        Some(ResponseError::UnknownLeaderEpoch)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_rows_fit_the_protocol_crate() {
        let messages = message_versions();
        assert_eq!(messages.len(), SUPPORTED.len());
        for (&(key, min, max), &(message_key, request, response)) in SUPPORTED.iter().zip(&messages)
        {
            assert_eq!(key, message_key);
            assert!(min <= max, "{key:?} {min}..={max}");
            for (what, range) in [
                ("api key", key.valid_versions()),
                ("request", request),
                ("response", response),
            ] {
                assert!(
                    range.min <= min && max <= range.max,
                    "{key:?} {min}..={max} outside kafka-protocol's {what} versions {range}"
                );
            }
        }
        let mut keys: Vec<i16> = SUPPORTED.iter().map(|&(key, _, _)| key as i16).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SUPPORTED.len(), "one row per api");
    }

    #[test]
    fn topic_name_rules() {
        for ok in [
            "a",
            "orders",
            "my.topic_1-x",
            "__consumer_offsets",
            &"x".repeat(249),
        ] {
            assert!(is_valid_topic_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ä", "a/b", &"x".repeat(250)] {
            assert!(!is_valid_topic_name(bad), "{bad}");
        }
    }

    #[test]
    fn leader_epoch_check() {
        let registration = PartitionRegistration {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 5,
            partition_epoch: 7,
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        assert_eq!(check_leader_epoch(Some(&registration), -1), None);
        assert_eq!(check_leader_epoch(Some(&registration), 5), None);
        assert_eq!(
            check_leader_epoch(Some(&registration), 4),
            Some(kafka_protocol::ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            check_leader_epoch(Some(&registration), 6),
            Some(kafka_protocol::ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(check_leader_epoch(None, 6), None);
    }
}
