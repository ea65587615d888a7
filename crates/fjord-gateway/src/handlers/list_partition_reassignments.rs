//! ListPartitionReassignments (key 46, KIP-455): the reassignments in
//! progress, as `kafka-reassign-partitions.sh --verify` and the admin
//! client's `listPartitionReassignments` ask.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use fjord_types::TopicPartition;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::wire_name;
use crate::context::RequestContext;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // DESCRIBE on the cluster (Kafka's `handleListPartitionReassignmentsRequest`).
    if !ctx.authorized_cluster(svc, AclOperation::Describe) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_string(
                error.to_string(),
            )));
    }
    // Null topics: every partition being reassigned.
    let partitions = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| TopicPartition::new(topic.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for ongoing in svc.admin.list_partition_reassignments(partitions) {
        let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
        by_topic.entry(ongoing.tp.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(ongoing.tp.partition)
                .with_replicas(ids(ongoing.replicas))
                .with_adding_replicas(ids(ongoing.adding_replicas))
                .with_removing_replicas(ids(ongoing.removing_replicas)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(wire_name(&topic))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
