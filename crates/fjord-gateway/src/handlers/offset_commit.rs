//! OffsetCommit (key 8): store a group's consumed positions.
//!
//! v2–v4 carry a retention time, which Kafka 4 ignores and so do we; v6+
//! carry the leader epoch; v7+ the static instance id. Partitions of topics
//! or partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION without
//! reaching the coordinator, as in Kafka; every other partition gets the
//! coordinator's result (group errors repeat on each partition).

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::HashMap;

use fjord_coordinator::group::{self, GroupError, OffsetCommitPartition};
use fjord_types::TopicPartition;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use fjord_broker::MetadataImage;
use kafka_protocol::protocol::StrBytes;

use super::partition_registration;
use crate::context::RequestContext;
use crate::error_code::partition_group_result;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = ctx.api_version;
    // READ on the group, then READ on each topic (Kafka's
    // `handleOffsetCommitRequest`); refused partitions never reach the
    // coordinator.
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let mut response = response(&request, &HashMap::new());
        set_codes(
            &mut response,
            |_| true,
            ResponseError::GroupAuthorizationFailed,
        );
        return response;
    }
    let refused_topics: Vec<&str> = request
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|name| !ctx.authorized_topic(svc, AclOperation::Read, name))
        .collect();
    let image = svc.metadata.image();
    let mut partitions = Vec::new();
    for topic in &request.topics {
        if refused_topics.contains(&topic.name.0.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            partitions.extend(known_partition(
                &image,
                &topic.name.0,
                p.partition_index,
                p.committed_offset,
                (version >= 6).then_some(p.committed_leader_epoch),
                p.committed_metadata.as_ref(),
            ));
        }
    }
    let results: HashMap<TopicPartition, Result<(), GroupError>> = if partitions.is_empty() {
        HashMap::new()
    } else {
        let req = group::OffsetCommitRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: request
                .group_instance_id
                .as_ref()
                .filter(|_| version >= 7)
                .map(|i| i.to_string()),
            partitions,
        };
        svc.groups.offset_commit(req).await.into_iter().collect()
    };
    let mut response = response(&request, &results);
    if !refused_topics.is_empty() {
        set_codes(
            &mut response,
            |topic| refused_topics.contains(&topic),
            ResponseError::TopicAuthorizationFailed,
        );
    }
    response
}

/// Answer `error` for every partition of the topics `which` selects.
fn set_codes(
    response: &mut OffsetCommitResponse,
    which: impl Fn(&str) -> bool,
    error: ResponseError,
) {
    for topic in response
        .topics
        .iter_mut()
        .filter(|t| which(t.name.0.as_str()))
    {
        for p in &mut topic.partitions {
            p.error_code = error.code();
        }
    }
}

/// One partition of an OffsetCommit or TxnOffsetCommit, `None` when its
/// topic or partition does not exist (answered UNKNOWN_TOPIC_OR_PARTITION
/// without reaching the coordinator). A negative leader epoch is none.
pub(super) fn known_partition(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    offset: i64,
    leader_epoch: Option<i32>,
    metadata: Option<&StrBytes>,
) -> Option<OffsetCommitPartition> {
    partition_registration(image, topic, partition)?;
    Some(OffsetCommitPartition {
        tp: TopicPartition::new(topic, partition),
        offset,
        leader_epoch: leader_epoch.filter(|&epoch| epoch >= 0),
        metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
    })
}

/// One entry per requested partition, in request order; partitions the
/// coordinator did not see are unknown.
fn response(
    request: &OffsetCommitRequest,
    results: &HashMap<TopicPartition, Result<(), GroupError>>,
) -> OffsetCommitResponse {
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
                    let code = partition_group_result(results, &tp);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;
    use crate::handlers::wire_name;

    fn request() -> OffsetCommitRequest {
        OffsetCommitRequest::default().with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(wire_name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default().with_partition_index(0),
                    OffsetCommitRequestPartition::default().with_partition_index(1),
                    OffsetCommitRequestPartition::default().with_partition_index(2),
                ]),
        ])
    }

    fn results() -> HashMap<TopicPartition, Result<(), GroupError>> {
        let tp = |partition| TopicPartition {
            topic: "t".into(),
            partition,
        };
        HashMap::from([
            (tp(0), Ok(())),
            (
                tp(1),
                Err(GroupError::IllegalGeneration {
                    generation_id: 1,
                    current: 2,
                }),
            ),
        ])
    }

    #[test]
    fn per_partition_codes() {
        let response = response(&request(), &results());
        let codes: Vec<i16> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, 22, 3]);
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 2..=9 {
            encode_response(
                ApiKey::OffsetCommit,
                version,
                1,
                &ResponseKind::OffsetCommit(response(&request(), &results())),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
