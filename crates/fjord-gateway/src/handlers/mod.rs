//! One file per Kafka api. Each handler takes the decoded request and the
//! version it came in at, calls the broker in domain terms, and builds the
//! response message; [`handle`] dispatches and encodes.

mod alter_partition_reassignments;
pub(crate) mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;

use std::net::SocketAddr;

use bytes::Bytes;
use fjord_broker::{Broker, MetadataImage, PartitionRegistration};
use fjord_types::{BrokerId, TopicId};
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::connection::RequestContext;
use crate::error::GatewayError;
use crate::frame::{Request, encode_response};

/// Handle one request; `Ok(None)` when the client expects no response
/// (acks=0). Answers that name brokers use the endpoints of the listener the
/// request came in on.
pub(crate) async fn handle(
    broker: &Broker,
    request: Request,
    context: RequestContext,
) -> Result<Option<Bytes>, GatewayError> {
    let listener = &*context.listener_name;
    let Request {
        api_key,
        header,
        body,
    } = request;
    let version = header.request_api_version;
    let mut size_hint = 0;
    let response: ResponseKind = match body {
        RequestKind::ApiVersions(r) => api_versions::handle(&r).into(),
        RequestKind::Metadata(r) => metadata::handle(broker, r, version, listener).await.into(),
        RequestKind::ElectLeaders(r) => elect_leaders::handle(broker, r, version).await.into(),
        RequestKind::AlterPartitionReassignments(r) => {
            alter_partition_reassignments::handle(broker, r, version)
                .await
                .into()
        }
        RequestKind::ListPartitionReassignments(r) => {
            list_partition_reassignments::handle(broker, r).into()
        }
        RequestKind::Produce(r) => match produce::handle(broker, r, version, listener).await? {
            Some(response) => response.into(),
            None => return Ok(None),
        },
        RequestKind::Fetch(r) => {
            let response = fetch::handle(broker, r, version, listener).await;
            size_hint = fetch::record_bytes(&response);
            response.into()
        }
        RequestKind::ListOffsets(r) => list_offsets::handle(broker, r, version).into(),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(broker, r).into(),
        RequestKind::CreateTopics(r) => create_topics::handle(broker, r, version).await.into(),
        RequestKind::DeleteTopics(r) => delete_topics::handle(broker, r, version).await.into(),
        RequestKind::CreatePartitions(r) => create_partitions::handle(broker, r).await.into(),
        RequestKind::DescribeConfigs(r) => describe_configs::handle(broker, r, version).into(),
        RequestKind::DescribeCluster(r) => {
            describe_cluster::handle(broker, r, version, listener).into()
        }
        RequestKind::InitProducerId(r) => init_producer_id::handle(broker, r).await.into(),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(broker, r, version, listener)
            .await
            .into(),
        RequestKind::JoinGroup(r) => {
            let client = join_group::Client {
                client_id: header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                client_host: client_host(context.peer),
            };
            join_group::handle(broker, r, version, client).await.into()
        }
        RequestKind::SyncGroup(r) => sync_group::handle(broker, r, version).await.into(),
        RequestKind::Heartbeat(r) => heartbeat::handle(broker, r).await.into(),
        RequestKind::LeaveGroup(r) => leave_group::handle(broker, r, version).await.into(),
        RequestKind::OffsetCommit(r) => offset_commit::handle(broker, r, version).await.into(),
        RequestKind::OffsetFetch(r) => offset_fetch::handle(broker, r, version).await.into(),
        RequestKind::OffsetDelete(r) => offset_delete::handle(broker, r).await.into(),
        RequestKind::DescribeGroups(r) => describe_groups::handle(broker, r, version).await.into(),
        RequestKind::ListGroups(r) => list_groups::handle(broker, r, version).await.into(),
        RequestKind::DeleteGroups(r) => delete_groups::handle(broker, r).await.into(),
        // Decoding already refused every api not in `api_versions::SUPPORTED`.
        _ => return Err(GatewayError::UnsupportedApi { api_key }),
    };
    encode_response(
        api_key,
        version,
        header.correlation_id,
        &response,
        size_hint,
    )
    .map(Some)
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
