//! DeleteRecords (key 21): move partitions' log start offsets forward
//! (`kafka-delete-records.sh`, Admin `deleteRecords`). Each partition is
//! answered with its low watermark (the smallest log start offset over the
//! in-sync replicas) once it reached the requested offset, or an error;
//! REQUEST_TIMED_OUT when followers did not catch up within `timeout_ms`.

use fjord_broker::AclOperation;
use std::time::Duration;

use fjord_broker::PartitionError;
use fjord_types::{Offset, TopicPartition};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{is_internal_topic, partition_registration, wire_name};
use crate::context::RequestContext;
use crate::error_code::partition_error;
use crate::services::Services;

/// Kafka's `DeleteRecordsResponse.INVALID_LOW_WATERMARK`, sent with an error.
const INVALID_LOW_WATERMARK: Offset = -1;

/// One partition's answer: its low watermark or its error.
type Answer = Result<Offset, ResponseError>;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = svc.metadata.image();
    // Per partition in request order: an answer decided here, or `None`
    // for the replica manager's.
    let mut decided: Vec<(String, i32, Option<Answer>)> = Vec::new();
    let mut to_delete = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        // DELETE on the topic (Kafka's `handleDeleteRecordsRequest`).
        let authorized = ctx.authorized_topic(svc, AclOperation::Delete, &name);
        for p in topic.partitions {
            let early = if !authorized {
                Some(Err(ResponseError::TopicAuthorizationFailed))
            } else if is_internal_topic(&name) {
                // Kafka refuses clients' deletions on internal topics.
                Some(Err(ResponseError::InvalidTopicException))
            } else if partition_registration(&image, &name, p.partition_index).is_none() {
                Some(Err(ResponseError::UnknownTopicOrPartition))
            } else {
                to_delete.push((
                    TopicPartition::new(name.clone(), p.partition_index),
                    p.offset,
                ));
                None
            };
            decided.push((name.clone(), p.partition_index, early));
        }
    }
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut deleted = svc
        .replicas
        .delete_records(to_delete, timeout)
        .await
        .into_iter();
    let answers = decided.into_iter().map(|(name, partition, early)| {
        let result = early.unwrap_or_else(|| match deleted.next() {
            Some((_, result)) => result.map_err(|err| refused(&name, partition, &err)),
            None => Err(ResponseError::UnknownServerError),
        });
        (name, partition, result)
    });
    response(answers)
}

fn refused(topic: &str, partition: i32, err: &PartitionError) -> ResponseError {
    tracing::debug!(topic, partition, %err, "DeleteRecords refused");
    partition_error(err)
}

/// The response, topics in the order they first appear.
fn response(answers: impl IntoIterator<Item = (String, i32, Answer)>) -> DeleteRecordsResponse {
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::new();
    for (name, partition, result) in answers {
        let (low_watermark, error_code) = match result {
            Ok(lw) => (lw, 0),
            Err(error) => (INVALID_LOW_WATERMARK, error.code()),
        };
        let answer = DeleteRecordsPartitionResult::default()
            .with_partition_index(partition)
            .with_low_watermark(low_watermark)
            .with_error_code(error_code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(topic) => topic.partitions.push(answer),
            None => topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(wire_name(&name))
                    .with_partitions(vec![answer]),
            ),
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn responses_group_partitions_by_topic_and_encode_at_every_version() {
        let response = response(vec![
            ("a".to_string(), 0, Ok(5)),
            ("b".to_string(), 0, Err(ResponseError::OffsetOutOfRange)),
            ("a".to_string(), 1, Err(ResponseError::RequestTimedOut)),
        ]);
        assert_eq!(response.topics.len(), 2);
        let a = &response.topics[0].partitions;
        assert_eq!((a[0].low_watermark, a[0].error_code), (5, 0));
        assert_eq!((a[1].low_watermark, a[1].error_code), (-1, 7));
        assert_eq!(response.topics[1].partitions[0].error_code, 1);
        for version in 0..=2 {
            encode_response(
                ApiKey::DeleteRecords,
                version,
                1,
                &ResponseKind::DeleteRecords(response.clone()),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
