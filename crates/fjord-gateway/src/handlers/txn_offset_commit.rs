//! TxnOffsetCommit (key 28): a transactional producer commits a group's
//! offsets inside its transaction (`sendOffsetsToTransaction`). They stay
//! pending until the transaction's marker reaches the group's
//! `__consumer_offsets` partition: visible on COMMIT, dropped on ABORT.
//!
//! v2+ carry the leader epoch; v3+ (KIP-447) the consumer's generation,
//! member id and instance id, which the coordinator fences as an
//! OffsetCommit's. Unknown topics and partitions get
//! UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator, as in
//! OffsetCommit.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::HashMap;

use fjord_coordinator::group::{self, GroupError};
use fjord_types::TopicPartition;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::known_partition;
use crate::context::RequestContext;
use crate::error_code::partition_group_result;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = ctx.api_version;
    // WRITE on the transactional id, READ on the group, READ on each topic
    // (Kafka's `handleTxnOffsetCommitRequest`).
    let whole = if !ctx.authorized_transactional_id(
        svc,
        AclOperation::Write,
        &request.transactional_id.0,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(error) = whole {
        let mut response = response(&request, &HashMap::new());
        set_codes(&mut response, |_| true, error);
        return response;
    }
    let refused: Vec<&str> = request
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|name| !ctx.authorized_topic(svc, AclOperation::Read, name))
        .collect();
    let image = svc.metadata.image();
    let mut partitions = Vec::new();
    for topic in &request.topics {
        if refused.contains(&topic.name.0.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            partitions.extend(known_partition(
                &image,
                &topic.name.0,
                p.partition_index,
                p.committed_offset,
                (version >= 2).then_some(p.committed_leader_epoch),
                p.committed_metadata.as_ref(),
            ));
        }
    }
    let results: HashMap<TopicPartition, Result<(), GroupError>> = if partitions.is_empty() {
        HashMap::new()
    } else {
        let member = version >= 3;
        let req = group::TxnOffsetCommitRequest {
            group_id: request.group_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
            generation_id: if member { request.generation_id } else { -1 },
            member_id: if member {
                request.member_id.to_string()
            } else {
                String::new()
            },
            group_instance_id: request
                .group_instance_id
                .as_ref()
                .filter(|_| member)
                .map(|i| i.to_string()),
            partitions,
        };
        svc.groups
            .txn_offset_commit(req)
            .await
            .into_iter()
            .collect()
    };
    let mut response = response(&request, &results);
    if !refused.is_empty() {
        set_codes(
            &mut response,
            |topic| refused.contains(&topic),
            ResponseError::TopicAuthorizationFailed,
        );
    }
    response
}

/// Answer `error` for every partition of the topics `which` selects.
fn set_codes(
    response: &mut TxnOffsetCommitResponse,
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

/// One entry per requested partition, in request order.
fn response(
    request: &TxnOffsetCommitRequest,
    results: &HashMap<TopicPartition, Result<(), GroupError>>,
) -> TxnOffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(partition_group_result(results, &tp))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;
    use crate::handlers::wire_name;

    #[test]
    fn every_partition_answers_in_request_order_at_every_version() {
        let request = TxnOffsetCommitRequest::default().with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(wire_name("t"))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default().with_partition_index(0),
                    TxnOffsetCommitRequestPartition::default().with_partition_index(1),
                    TxnOffsetCommitRequestPartition::default().with_partition_index(2),
                ]),
        ]);
        let results = HashMap::from([
            (TopicPartition::new("t", 0), Ok(())),
            (
                TopicPartition::new("t", 1),
                Err(GroupError::UnknownMemberId {
                    member_id: "m".into(),
                }),
            ),
        ]);
        let response = response(&request, &results);
        let codes: Vec<i16> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, 25, 3]);
        for version in 0..=4 {
            encode_response(
                ApiKey::TxnOffsetCommit,
                version,
                1,
                &ResponseKind::TxnOffsetCommit(response.clone()),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
