//! OffsetFetch (key 9): a group's committed positions.
//!
//! v1–v7 ask for one group, v8+ batch groups. Null topics (v2+) ask for
//! every committed offset. Partitions without a commit answer offset -1.
//! A group error goes to the top-level code from v2, to the group's code
//! from v8, and onto every partition at v1 (which has no top-level code).
//! `require_stable` (v7+, one flag for every group of a v8+ request, as
//! Kafka's schema has it): a partition with pending transactional offsets
//! of the group answers UNSTABLE_OFFSET_COMMIT (88), per partition at every
//! version as Kafka does; the client retries. The v9 member id and epoch
//! belong to KIP-848 groups, which do not exist here.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use fjord_coordinator::group::{self, CommittedOffset, GroupError};
use fjord_types::TopicPartition;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;

use super::{wire_name, wire_str};
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

/// One partition's answer: the committed offset, or the error.
type Fetched = Vec<(TopicPartition, Result<Option<CommittedOffset>, GroupError>)>;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.api_version;
    // Zero below v7, where the field does not exist.
    let require_stable = request.require_stable;
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            // DESCRIBE on the group (Kafka's `handleOffsetFetchRequest`).
            if !ctx.authorized_group(svc, AclOperation::Describe, &g.group_id.0) {
                let error = ResponseError::GroupAuthorizationFailed;
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(error.code()),
                );
                continue;
            }
            let partitions = g.topics.map(|topics| {
                topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name.0.to_string();
                        t.partition_indexes
                            .into_iter()
                            .map(move |partition| TopicPartition {
                                topic: name.clone(),
                                partition,
                            })
                    })
                    .collect()
            });
            let (partitions, refused) = split_authorized(ctx, svc, partitions);
            let fetched = fetch(svc, g.group_id.0.to_string(), partitions, require_stable).await;
            let fetched = fetched.map(|f| keep_authorized(ctx, svc, f));
            let mut group = group_v8(g.group_id, fetched);
            if group.error_code == 0 {
                group
                    .topics
                    .extend(by_topic(refused).into_iter().map(|(topic, partitions)| {
                        let code = ResponseError::TopicAuthorizationFailed.code();
                        OffsetFetchResponseTopics::default()
                            .with_name(wire_name(&topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, ())| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(StrBytes::default()))
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    }));
            }
            groups.push(group);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if !ctx.authorized_group(svc, AclOperation::Describe, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return OffsetFetchResponse::default().with_error_code(error.code());
    }
    let partitions = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |partition| TopicPartition {
                        topic: name.clone(),
                        partition,
                    })
            })
            .collect::<Vec<_>>()
    });
    let (partitions, refused) = split_authorized(ctx, svc, partitions);
    let requested = partitions.clone();
    let fetched = fetch(
        svc,
        request.group_id.0.to_string(),
        partitions,
        require_stable,
    )
    .await
    .map(|f| keep_authorized(ctx, svc, f));
    let mut response = response_v1(fetched, requested, version);
    let code = ResponseError::TopicAuthorizationFailed.code();
    response
        .topics
        .extend(by_topic(refused).into_iter().map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(wire_name(&topic))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, ())| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::default()))
                                .with_error_code(code)
                        })
                        .collect(),
                )
        }));
    response
}

/// The requested partitions whose topic the principal may describe, and
/// the others (answered TOPIC_AUTHORIZATION_FAILED after the rest, as
/// Kafka's `handleOffsetFetchRequest`). `None` (every partition) stays
/// `None`: [`keep_authorized`] filters the answer instead.
fn split_authorized(
    ctx: &RequestContext,
    svc: &Services,
    partitions: Option<Vec<TopicPartition>>,
) -> (Option<Vec<TopicPartition>>, Vec<(TopicPartition, ())>) {
    let Some(partitions) = partitions else {
        return (None, Vec::new());
    };
    let (allowed, refused): (Vec<_>, Vec<_>) = partitions
        .into_iter()
        .partition(|tp| ctx.authorized_topic(svc, AclOperation::Describe, &tp.topic));
    (
        Some(allowed),
        refused.into_iter().map(|tp| (tp, ())).collect(),
    )
}

/// The fetched offsets of topics the principal may describe: a group's
/// other topics are left out, not reported.
fn keep_authorized(ctx: &RequestContext, svc: &Services, mut fetched: Fetched) -> Fetched {
    fetched.retain(|(tp, _)| ctx.authorized_topic(svc, AclOperation::Describe, &tp.topic));
    fetched
}

async fn fetch(
    svc: &Services,
    group_id: String,
    partitions: Option<Vec<TopicPartition>>,
    require_stable: bool,
) -> Result<Fetched, GroupError> {
    svc.groups
        .offset_fetch(group::OffsetFetchRequest {
            group_id,
            partitions,
            require_stable,
        })
        .await
}

/// The partitions grouped by topic, topics in first-seen order.
fn by_topic<T>(partitions: Vec<(TopicPartition, T)>) -> Vec<(String, Vec<(i32, T)>)> {
    let mut order: Vec<(String, Vec<(i32, T)>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (tp, value) in partitions {
        let i = *index.entry(tp.topic.clone()).or_insert_with(|| {
            order.push((tp.topic.clone(), Vec::new()));
            order.len() - 1
        });
        order[i].1.push((tp.partition, value));
    }
    order
}

/// (offset, leader epoch, metadata, error code) of one partition.
fn fields(result: Result<Option<CommittedOffset>, GroupError>) -> (i64, i32, StrBytes, i16) {
    match result {
        Ok(Some(c)) => (
            c.offset,
            c.leader_epoch.unwrap_or(-1),
            wire_str(c.metadata),
            0,
        ),
        Ok(None) => (-1, -1, StrBytes::default(), 0),
        Err(err) => (-1, -1, StrBytes::default(), group_error(&err).code()),
    }
}

fn response_v1(
    fetched: Result<Fetched, GroupError>,
    requested: Option<Vec<TopicPartition>>,
    version: i16,
) -> OffsetFetchResponse {
    let (partitions, error) = match fetched {
        Ok(partitions) => (partitions, None),
        Err(err) => {
            tracing::debug!(%err, "OffsetFetch failed");
            // v1 has no top-level code: the error goes on every partition.
            let partitions = if version < 2 {
                requested
                    .unwrap_or_default()
                    .into_iter()
                    .map(|tp| (tp, Err(err.clone())))
                    .collect()
            } else {
                Vec::new()
            };
            (partitions, Some(err))
        }
    };
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, result)| {
                    let (offset, epoch, metadata, code) = fields(result);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(wire_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    let code = match (&error, version) {
        (Some(err), 2..) => group_error(err).code(),
        _ => 0,
    };
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(code)
}

fn group_v8(group_id: GroupId, fetched: Result<Fetched, GroupError>) -> OffsetFetchResponseGroup {
    let (partitions, code) = match fetched {
        Ok(partitions) => (partitions, 0),
        Err(err) => {
            tracing::debug!(%err, "OffsetFetch failed");
            (Vec::new(), group_error(&err).code())
        }
    };
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, result)| {
                    let (offset, epoch, metadata, code) = fields(result);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(wire_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
        .with_error_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    fn fetched() -> Fetched {
        vec![
            (
                tp("a", 0),
                Ok(Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: Some(3),
                    metadata: "m".into(),
                    commit_timestamp_ms: 1,
                })),
            ),
            (tp("b", 0), Ok(None)),
            (tp("a", 1), Ok(None)),
        ]
    }

    #[test]
    fn groups_by_topic_and_places_errors() {
        let ok = response_v1(Ok(fetched()), None, 7);
        assert_eq!(ok.topics.len(), 2);
        assert_eq!(ok.topics[0].name.0.as_str(), "a");
        assert_eq!(ok.topics[0].partitions.len(), 2);
        assert_eq!(ok.topics[0].partitions[0].committed_offset, 42);
        assert_eq!(ok.topics[0].partitions[1].committed_offset, -1);

        let requested = Some(vec![tp("a", 0)]);
        let v1 = response_v1(Err(GroupError::NotCoordinator), requested.clone(), 1);
        assert_eq!(v1.error_code, 0);
        assert_eq!(v1.topics[0].partitions[0].error_code, 16);
        let v2 = response_v1(Err(GroupError::NotCoordinator), requested, 2);
        assert_eq!(v2.error_code, 16);
        assert!(v2.topics.is_empty());

        let v8 = group_v8(GroupId(wire_str("g")), Err(GroupError::NotCoordinator));
        assert_eq!(v8.error_code, 16);
    }

    #[test]
    fn unstable_offsets_answer_88_on_their_partition_only() {
        let mut fetched = fetched();
        fetched[2].1 = Err(GroupError::UnstableOffsetCommit);
        // v7: the partition carries 88, the response's code stays 0.
        let v7 = response_v1(Ok(fetched.clone()), None, 7);
        assert_eq!(v7.error_code, 0);
        let codes = |partitions: Vec<(i32, i16, i64)>| {
            assert_eq!(partitions, vec![(0, 0, 42), (1, 88, -1)]);
        };
        codes(
            v7.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code, p.committed_offset))
                .collect(),
        );
        // v8+: the same per partition; the group's code stays 0.
        let v8 = group_v8(GroupId(wire_str("g")), Ok(fetched));
        assert_eq!(v8.error_code, 0);
        codes(
            v8.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code, p.committed_offset))
                .collect(),
        );
    }

    #[test]
    fn require_stable_is_one_top_level_flag_from_v7() {
        use kafka_protocol::protocol::{Decodable, Encodable};
        for version in [6, 7, 8, 9] {
            let mut request = OffsetFetchRequest::default();
            if version >= 7 {
                request.require_stable = true;
            }
            let mut buf = bytes::BytesMut::new();
            request.encode(&mut buf, version).expect("encode");
            let decoded = OffsetFetchRequest::decode(&mut buf.freeze(), version).expect("decode");
            assert_eq!(decoded.require_stable, version >= 7, "v{version}");
        }
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 1..=9 {
            let responses = if version >= 8 {
                vec![OffsetFetchResponse::default().with_groups(vec![
                    group_v8(GroupId(wire_str("g")), Ok(fetched())),
                    group_v8(GroupId(wire_str("h")), Err(GroupError::NotCoordinator)),
                ])]
            } else {
                vec![
                    response_v1(Ok(fetched()), None, version),
                    response_v1(
                        Err(GroupError::NotCoordinator),
                        Some(vec![tp("a", 0)]),
                        version,
                    ),
                ]
            };
            for response in responses {
                encode_response(
                    ApiKey::OffsetFetch,
                    version,
                    1,
                    &ResponseKind::OffsetFetch(response),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
