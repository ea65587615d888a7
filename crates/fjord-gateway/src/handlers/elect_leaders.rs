//! ElectLeaders (key 43): preferred or unclean leader elections, as
//! `kafka-leader-election.sh` and the admin client's `electLeaders` ask.

use fjord_broker::AclOperation;
use std::collections::BTreeMap;

use fjord_broker::{ElectionError, ElectionType};
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ElectLeadersRequest;
use kafka_protocol::messages::ElectLeadersResponse;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::protocol::StrBytes;

use super::wire_name;
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let version = ctx.api_version;
    // ALTER on the cluster (Kafka's `handleElectLeaders`).
    if !ctx.authorized_cluster(svc, AclOperation::Alter) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return ElectLeadersResponse::default().with_error_code(error.code());
    }
    // v0 has no election type: it is always a preferred election.
    let election = match (version, request.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            tracing::debug!(election_type = other, "unknown election type");
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| TopicPartition::new(topic.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    match svc.admin.elect_leaders(election, partitions).await {
        Ok(outcomes) => {
            let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
            for (tp, outcome) in outcomes {
                let entry = PartitionResult::default().with_partition_id(tp.partition);
                let entry = match outcome {
                    Ok(_) => entry,
                    Err(e) => entry
                        .with_error_code(election_error(election, &e).code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                };
                by_topic.entry(tp.topic).or_default().push(entry);
            }
            ElectLeadersResponse::default().with_replica_election_results(
                by_topic
                    .into_iter()
                    .map(|(topic, results)| {
                        ReplicaElectionResult::default()
                            .with_topic(wire_name(&topic))
                            .with_partition_result(results)
                    })
                    .collect(),
            )
        }
        Err(err) => {
            // The whole request failed (e.g. the controller is unreachable).
            tracing::debug!(%err, error = %admin_error_message(&err), "elect leaders failed");
            ElectLeadersResponse::default().with_error_code(admin_error(&err).code())
        }
    }
}

/// Kafka's codes: an unavailable preferred replica and an unavailable eligible
/// leader are told apart by the election type.
fn election_error(election: ElectionType, err: &ElectionError) -> ResponseError {
    match (err, election) {
        (ElectionError::UnknownTopicOrPartition, _) => ResponseError::UnknownTopicOrPartition,
        (ElectionError::ElectionNotNeeded, _) => ResponseError::ElectionNotNeeded,
        (ElectionError::EligibleLeadersNotAvailable, ElectionType::Preferred) => {
            ResponseError::PreferredLeaderNotAvailable
        }
        (ElectionError::EligibleLeadersNotAvailable, ElectionType::Unclean) => {
            ResponseError::EligibleLeadersNotAvailable
        }
    }
}
