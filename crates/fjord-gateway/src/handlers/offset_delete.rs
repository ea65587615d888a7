//! OffsetDelete (key 47): delete a group's committed offsets of partitions
//! it is not subscribed to. Partitions of unknown topics get
//! UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator, as in
//! Kafka; a group error is the top-level code.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::HashMap;

use fjord_coordinator::group::{GroupError, PartitionResults};
use fjord_types::TopicPartition;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::partition_registration;
use crate::context::RequestContext;
use crate::error_code::{group_error, partition_group_result};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    // DELETE on the group, READ on each topic (Kafka's
    // `handleOffsetDeleteRequest`).
    if !ctx.authorized_group(svc, AclOperation::Delete, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return OffsetDeleteResponse::default().with_error_code(error.code());
    }
    let refused: Vec<&str> = request
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|name| !ctx.authorized_topic(svc, AclOperation::Read, name))
        .collect();
    let image = svc.metadata.image();
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TopicPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
            })
        })
        .filter(|tp| partition_registration(&image, &tp.topic, tp.partition).is_some())
        .filter(|tp| !refused.contains(&tp.topic.as_str()))
        .collect();
    let result = svc
        .groups
        .offset_delete(request.group_id.0.as_str(), partitions)
        .await;
    let mut response = response(&request, result);
    if response.error_code == 0 {
        let error = ResponseError::TopicAuthorizationFailed;
        for topic in response
            .topics
            .iter_mut()
            .filter(|t| refused.contains(&t.name.0.as_str()))
        {
            for p in &mut topic.partitions {
                p.error_code = error.code();
            }
        }
    }
    response
}

fn response(
    request: &OffsetDeleteRequest,
    result: Result<PartitionResults, GroupError>,
) -> OffsetDeleteResponse {
    let results: HashMap<TopicPartition, Result<(), GroupError>> = match result {
        Ok(results) => results.into_iter().collect(),
        Err(err) => {
            tracing::debug!(%err, "OffsetDelete failed");
            return OffsetDeleteResponse::default().with_error_code(group_error(&err).code());
        }
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition {
                        topic: topic.name.0.to_string(),
                        partition: p.partition_index,
                    };
                    let code = partition_group_result(&results, &tp);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;
    use crate::handlers::wire_name;

    #[test]
    fn responses_encode_at_every_version() {
        let request = OffsetDeleteRequest::default().with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(wire_name("t"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                    OffsetDeleteRequestPartition::default().with_partition_index(1),
                ]),
        ]);
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let ok = response(
            &request,
            Ok(vec![(tp, Err(GroupError::GroupSubscribedToTopic))]),
        );
        let codes: Vec<i16> = ok.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![86, 3]);
        let err = response(&request, Err(GroupError::GroupIdNotFound));
        assert_eq!(err.error_code, 69);
        for response in [ok, err] {
            encode_response(
                ApiKey::OffsetDelete,
                0,
                1,
                &ResponseKind::OffsetDelete(response),
                0,
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
}
