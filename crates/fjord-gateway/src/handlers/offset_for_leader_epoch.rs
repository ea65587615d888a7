//! OffsetForLeaderEpoch (key 23): where a leader epoch ends in the leader's
//! log. Clients ask it after a leader change (KIP-320) with the epoch of the
//! last record they consumed: an end offset below their position means the
//! log they read from was truncated, and they reset to it.
//!
//! Per partition: the client's `current_leader_epoch` is fenced as in Fetch
//! (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), only the leader answers
//! (NOT_LEADER_OR_FOLLOWER), and an epoch the log does not know gets
//! Kafka's UNDEFINED answer (epoch -1, offset -1) without an error.

use fjord_broker::AclOperation;
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::context::RequestContext;
use crate::error_code::partition_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            // DESCRIBE on the topic for consumers (Kafka's
            // `handleOffsetForLeaderEpochRequest`; followers use gRPC).
            let authorized = ctx.authorized_topic(svc, AclOperation::Describe, &name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    if !authorized {
                        let error = ResponseError::TopicAuthorizationFailed;
                        return epoch_end_offset(p.partition, Err(error));
                    }
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    let answer = svc.replicas.end_offset_for_epoch(
                        &tp,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    );
                    match answer {
                        Ok(found) => epoch_end_offset(p.partition, Ok(found)),
                        Err(err) => {
                            tracing::debug!(%tp, %err, "offset for leader epoch failed");
                            epoch_end_offset(p.partition, Err(partition_error(&err)))
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn epoch_end_offset(
    partition: i32,
    answer: Result<Option<(i32, i64)>, ResponseError>,
) -> EpochEndOffset {
    let response = EpochEndOffset::default().with_partition(partition);
    match answer {
        Ok(Some((epoch, end_offset))) => response
            .with_leader_epoch(epoch)
            .with_end_offset(end_offset),
        Ok(None) => response.with_leader_epoch(-1).with_end_offset(-1),
        Err(error) => response
            .with_error_code(error.code())
            .with_leader_epoch(-1)
            .with_end_offset(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn answers_encode_at_every_version() {
        for version in 2..=4 {
            let response = OffsetForLeaderEpochResponse::default().with_topics(vec![
                OffsetForLeaderTopicResult::default()
                    .with_topic(super::super::wire_name("t"))
                    .with_partitions(vec![
                        epoch_end_offset(0, Ok(Some((3, 42)))),
                        epoch_end_offset(1, Ok(None)),
                        epoch_end_offset(2, Err(ResponseError::FencedLeaderEpoch)),
                    ]),
            ]);
            encode_response(
                ApiKey::OffsetForLeaderEpoch,
                version,
                1,
                &ResponseKind::OffsetForLeaderEpoch(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }

    #[test]
    fn undefined_and_errors_carry_minus_one() {
        let undefined = epoch_end_offset(1, Ok(None));
        assert_eq!(
            (
                undefined.error_code,
                undefined.leader_epoch,
                undefined.end_offset
            ),
            (0, -1, -1)
        );
        let found = epoch_end_offset(0, Ok(Some((3, 42))));
        assert_eq!(
            (found.error_code, found.leader_epoch, found.end_offset),
            (0, 3, 42)
        );
        let fenced = epoch_end_offset(2, Err(ResponseError::UnknownLeaderEpoch));
        assert_eq!((fenced.error_code, fenced.end_offset), (75, -1));
    }
}
