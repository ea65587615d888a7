//! AlterPartitionReassignments (key 45, KIP-455): start or cancel moving
//! partitions to new replicas, as `kafka-reassign-partitions.sh --execute`
//! and the admin client's `alterPartitionReassignments` ask.

use fjord_broker::AclOperation;
use std::collections::BTreeMap;

use fjord_broker::ReassignmentError;
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::AlterPartitionReassignmentsResponse;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::wire_name;
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let version = ctx.api_version;
    // ALTER on the cluster (Kafka's `handleAlterPartitionReassignmentsRequest`).
    if !ctx.authorized_cluster(svc, AclOperation::Alter) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(error.to_string())));
    }
    // v0 has no flag: the replication factor may change.
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let reassignments = request
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| {
                (
                    TopicPartition::new(topic.clone(), p.partition_index),
                    p.replicas
                        .map(|replicas| replicas.into_iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect::<Vec<_>>();
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change && version >= 1);
    match svc
        .admin
        .alter_partition_reassignments(reassignments, allow_rf_change)
        .await
    {
        Ok(outcomes) => {
            let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> =
                BTreeMap::new();
            for (tp, outcome) in outcomes {
                let entry =
                    ReassignablePartitionResponse::default().with_partition_index(tp.partition);
                let entry = match outcome {
                    Ok(()) => entry,
                    Err(e) => entry
                        .with_error_code(reassignment_error(&e).code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                };
                by_topic.entry(tp.topic).or_default().push(entry);
            }
            response.with_responses(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ReassignableTopicResponse::default()
                            .with_name(wire_name(&topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        }
        Err(err) => {
            // The whole request failed (e.g. the controller is unreachable).
            tracing::debug!(%err, "alter partition reassignments failed");
            response
                .with_error_code(admin_error(&err).code())
                .with_error_message(Some(StrBytes::from_string(admin_error_message(&err))))
        }
    }
}

/// Kafka's code for each refusal.
pub(crate) fn reassignment_error(err: &ReassignmentError) -> ResponseError {
    match err {
        ReassignmentError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ReassignmentError::InvalidReplicaAssignment { .. } => {
            ResponseError::InvalidReplicaAssignment
        }
        ReassignmentError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
        ReassignmentError::InvalidReplicationFactor { .. } => {
            ResponseError::InvalidReplicationFactor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_broker::ReplicaAssignmentError;

    #[test]
    fn error_codes_are_kafkas() {
        let cases = [
            (ReassignmentError::UnknownTopicOrPartition, 3),
            (
                ReassignmentError::InvalidReplicaAssignment {
                    reason: ReplicaAssignmentError::Empty,
                },
                39,
            ),
            (ReassignmentError::NoReassignmentInProgress, 85),
            (
                ReassignmentError::InvalidReplicationFactor {
                    current: 1,
                    target: 2,
                },
                38,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(reassignment_error(&err).code(), code, "{err}");
        }
    }
}
