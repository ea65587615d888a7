//! DescribeProducers (key 61, v0): per requested partition hosted here,
//! the producers its log's producer state knows (Kafka's
//! `activeProducerState`): producer id and epoch, last sequence, last
//! timestamp, the coordinator epoch of its last marker and the start
//! offset of its open transaction (-1 for none). Admin tools use it to
//! find hanging transactions. Admin sends it to the leader unless told a
//! broker id; like Kafka, a follower answers from its own replica (to
//! compare replicas). A partition that exists but has no replica here is
//! NOT_LEADER_OR_FOLLOWER; one that does not exist
//! UNKNOWN_TOPIC_OR_PARTITION (Kafka's `getPartitionOrError`).

use fjord_broker::AclOperation;
use fjord_broker::PartitionError;
use fjord_log::ActiveProducer;
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::partition_registration;
use crate::context::RequestContext;
use crate::error_code::partition_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = svc.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            // READ on the topic (Kafka's `handleDescribeProducersRequest`).
            let authorized = ctx.authorized_topic(svc, AclOperation::Read, &name);
            let partitions = topic
                .partition_indexes
                .into_iter()
                .map(|p| {
                    if !authorized {
                        return partition_response(p, Err(ResponseError::TopicAuthorizationFailed));
                    }
                    let tp = TopicPartition::new(name.clone(), p);
                    let producers = match svc.replicas.active_producers(&tp) {
                        // Not hosted here, but the topic has it: another
                        // broker leads it.
                        Err(PartitionError::UnknownTopicOrPartition)
                            if partition_registration(&image, &name, p).is_some() =>
                        {
                            Err(ResponseError::NotLeaderOrFollower)
                        }
                        Err(err) => {
                            tracing::debug!(%tp, %err, "DescribeProducers failed");
                            Err(partition_error(&err))
                        }
                        Ok(producers) => Ok(producers),
                    };
                    partition_response(p, producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn partition_response(
    index: i32,
    producers: Result<Vec<ActiveProducer>, ResponseError>,
) -> PartitionResponse {
    let response = PartitionResponse::default()
        .with_partition_index(index)
        .with_error_message(None);
    match producers {
        Ok(producers) => response.with_active_producers(
            producers
                .into_iter()
                .map(|p| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(p.producer_id))
                        .with_producer_epoch(i32::from(p.producer_epoch))
                        .with_last_sequence(p.last_sequence)
                        .with_last_timestamp(p.last_timestamp)
                        .with_coordinator_epoch(p.coordinator_epoch)
                        .with_current_txn_start_offset(p.current_txn_start_offset)
                })
                .collect(),
        ),
        Err(error) => response.with_error_code(error.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn producers_and_errors_per_partition() {
        let producer = ActiveProducer {
            producer_id: 4,
            producer_epoch: 1,
            last_sequence: 9,
            last_timestamp: 1_000,
            coordinator_epoch: -1,
            current_txn_start_offset: 12,
        };
        let ok = partition_response(0, Ok(vec![producer]));
        assert_eq!(ok.error_code, 0);
        let p = &ok.active_producers[0];
        assert_eq!(
            (
                p.producer_id.0,
                p.producer_epoch,
                p.last_sequence,
                p.last_timestamp,
                p.coordinator_epoch,
                p.current_txn_start_offset
            ),
            (4, 1, 9, 1_000, -1, 12)
        );
        let failed = partition_response(1, Err(ResponseError::NotLeaderOrFollower));
        assert_eq!((failed.partition_index, failed.error_code), (1, 6));
        assert!(failed.active_producers.is_empty());
        // Kafka's codes for the partition-level failures this api answers.
        for (err, code) in [
            (PartitionError::UnknownTopicOrPartition, 3),
            (PartitionError::NotLeaderOrFollower { leader: Some(2) }, 6),
            (PartitionError::LogDirOffline, 56),
        ] {
            assert_eq!(partition_error(&err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn responses_encode_at_every_version() {
        let response = DescribeProducersResponse::default().with_topics(vec![
            TopicResponse::default()
                .with_name(super::super::wire_name("t"))
                .with_partitions(vec![
                    partition_response(
                        0,
                        Ok(vec![ActiveProducer {
                            producer_id: 1,
                            producer_epoch: 0,
                            last_sequence: 0,
                            last_timestamp: 0,
                            coordinator_epoch: 3,
                            current_txn_start_offset: -1,
                        }]),
                    ),
                    partition_response(1, Err(ResponseError::UnknownTopicOrPartition)),
                ]),
        ]);
        encode_response(
            ApiKey::DescribeProducers,
            0,
            1,
            &ResponseKind::DescribeProducers(response),
            0,
        )
        .expect("v0");
    }
}
