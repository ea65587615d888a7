//! ListOffsets (key 2): an offset by timestamp, or the earliest / latest /
//! max-timestamp offset of a partition.

use fjord_broker::AclOperation;
use fjord_broker::{ListedOffset, OffsetSpec};
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{check_leader_epoch, isolation_level, partition_registration};
use crate::context::RequestContext;
use crate::error_code::partition_error;
use crate::services::Services;

/// What a wire timestamp asks for; `None`: a kind of offset this broker never
/// has (tiered storage), answered with offset -1.
fn offset_spec(timestamp: i64) -> Option<OffsetSpec> {
    match timestamp {
        // EARLIEST_LOCAL_TIMESTAMP (v8+): without tiered storage, the log start.
        -4 => Some(OffsetSpec::Earliest),
        // LATEST_TIERED_TIMESTAMP (v9+), EARLIEST_PENDING_UPLOAD (v10+).
        -5 | -6 => None,
        ts => Some(OffsetSpec::from_wire(ts)),
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = ctx.api_version;
    let image = svc.metadata.image();
    let isolation = isolation_level(request.isolation_level);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            // DESCRIBE on the topic (Kafka's `handleListOffsetRequest`).
            let authorized = ctx.authorized_topic(svc, AclOperation::Describe, &name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let registration = partition_registration(&image, &name, p.partition_index);
                    let refused = if authorized {
                        check_leader_epoch(registration, p.current_leader_epoch)
                    } else {
                        Some(ResponseError::TopicAuthorizationFailed)
                    };
                    let listed = match refused {
                        Some(error) => Err(error),
                        None => match offset_spec(p.timestamp) {
                            None => Ok(ListedOffset {
                                offset: -1,
                                timestamp: -1,
                                leader_epoch: -1,
                            }),
                            Some(spec) => svc
                                .replicas
                                .list_offset(&TopicPartition::new(name.clone(), p.partition_index), spec, p.current_leader_epoch, isolation)
                                .map_err(|err| {
                                    tracing::debug!(topic = %name, partition = p.partition_index, %err, "list offsets failed");
                                    partition_error(&err)
                                }),
                        },
                    };
                    partition_response(p.partition_index, listed, version)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn partition_response(
    index: i32,
    listed: Result<ListedOffset, ResponseError>,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
    match listed {
        Ok(listed) => {
            let response = response
                .with_offset(listed.offset)
                .with_timestamp(listed.timestamp);
            // leader_epoch exists from v4; earlier versions refuse a non-default value.
            if version >= 4 {
                response.with_leader_epoch(listed.leader_epoch)
            } else {
                response
            }
        }
        Err(error) => response
            .with_error_code(error.code())
            .with_offset(-1)
            .with_timestamp(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn special_timestamps() {
        assert_eq!(offset_spec(-1), Some(OffsetSpec::Latest));
        assert_eq!(offset_spec(-2), Some(OffsetSpec::Earliest));
        assert_eq!(offset_spec(-3), Some(OffsetSpec::MaxTimestamp));
        assert_eq!(offset_spec(-4), Some(OffsetSpec::Earliest));
        assert_eq!(offset_spec(-5), None);
        assert_eq!(
            offset_spec(1_700_000_000_000),
            Some(OffsetSpec::Timestamp(1_700_000_000_000))
        );
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 1..=10 {
            let ok = ListedOffset {
                offset: 42,
                timestamp: 1000,
                leader_epoch: 3,
            };
            let response = ListOffsetsResponse::default().with_topics(vec![
                ListOffsetsTopicResponse::default()
                    .with_name(super::super::wire_name("t"))
                    .with_partitions(vec![
                        partition_response(0, Ok(ok), version),
                        partition_response(1, Err(ResponseError::NotLeaderOrFollower), version),
                    ]),
            ]);
            encode_response(
                ApiKey::ListOffsets,
                version,
                1,
                &ResponseKind::ListOffsets(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
