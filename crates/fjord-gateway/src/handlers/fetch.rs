//! Fetch (key 1): stored record batches, as stored, for consumers.
//!
//! The broker long-polls (`max_wait_ms`, `min_bytes`); records go back as
//! the bytes the log returned, never decoded. Topics are named (v4-12) or
//! given by id (v13+, resolved through the applied metadata image).
//!
//! Fetch sessions (KIP-227) are not supported, which the protocol allows:
//! every response carries session id 0, which tells the client that no
//! session was created so it keeps sending full fetches. librdkafka never
//! asks for one (it sends session id 0, epoch -1); the Java client asks
//! with epoch 0 and falls back to full fetches on session id 0. A request
//! naming a session id (which we never handed out) gets
//! FETCH_SESSION_ID_NOT_FOUND, unless it closes it (epoch -1), and one with
//! session id 0 but a positive epoch gets INVALID_FETCH_SESSION_EPOCH, as
//! Kafka answers both.

use std::time::Duration;

use fjord_broker::{
    AclOperation, FetchParams, FetchPartition, FetchPartitionData, MetadataImage, PartitionError,
};
use fjord_types::{NO_BROKER, TopicPartition};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::protocol::StrBytes;

use super::{
    Reply, broker_endpoint, check_leader_epoch, isolation_level, partition_registration,
    topic_id_from_wire, wire_name,
};
use crate::context::RequestContext;
use crate::error_code::partition_error;
use crate::services::Services;

enum Slot {
    /// Sent to the broker as `params.partitions[i]`.
    Sent(usize),
    Refused(ResponseError),
}

pub(crate) async fn handle(ctx: &RequestContext, svc: &Services, request: FetchRequest) -> Reply {
    let response = fetch(ctx, svc, request).await;
    // The response is about as big as the records it carries.
    let size_hint = record_bytes(&response);
    Reply::Response {
        body: response.into(),
        size_hint,
    }
}

async fn fetch(ctx: &RequestContext, svc: &Services, request: FetchRequest) -> FetchResponse {
    let version = ctx.api_version;
    let listener = ctx.listener();
    if version >= 7
        && let Some(error) = session_error(request.session_id, request.session_epoch)
    {
        return FetchResponse::default().with_error_code(error.code());
    }

    let image = svc.metadata.image();
    let mut partitions = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut requested_partitions = 0usize;
    for topic in request.topics {
        let (name, topic_error) = if version >= 13 {
            match image.topics.get(&topic_id_from_wire(topic.topic_id)) {
                Some(t) => (t.name.clone(), None),
                None => (String::new(), Some(ResponseError::UnknownTopicId)),
            }
        } else {
            (topic.topic.0.to_string(), None)
        };
        // READ on the topic, checked per topic before the broker sees any
        // of its partitions (Kafka's `handleFetchRequest`).
        let topic_error = topic_error.or_else(|| {
            (!ctx.authorized_topic(svc, AclOperation::Read, &name))
                .then_some(ResponseError::TopicAuthorizationFailed)
        });
        let mut slots = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            requested_partitions += 1;
            let registration = partition_registration(&image, &name, p.partition);
            let refused =
                topic_error.or_else(|| check_leader_epoch(registration, p.current_leader_epoch));
            let slot = match refused {
                Some(error) => Slot::Refused(error),
                None => {
                    partitions.push(FetchPartition {
                        tp: TopicPartition::new(name.clone(), p.partition),
                        fetch_offset: p.fetch_offset,
                        partition_max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        current_leader_epoch: p.current_leader_epoch,
                    });
                    Slot::Sent(partitions.len() - 1)
                }
            };
            slots.push((p.partition, slot));
        }
        topics.push((name, topic.topic_id, slots));
    }

    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let results = if !partitions.is_empty() {
        svc.replicas
            .fetch(FetchParams {
                partitions,
                max_wait,
                min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
                max_bytes: usize::try_from(request.max_bytes).unwrap_or(0),
                isolation: isolation_level(request.isolation_level),
            })
            .await
    } else {
        if requested_partitions == 0 {
            // An empty fetch waits out max_wait as in Kafka, so a client
            // polling with nothing assigned does not spin.
            tokio::time::sleep(max_wait).await;
        }
        Vec::new()
    };

    let bytes_out: usize = results
        .iter()
        .filter_map(|(_, result)| result.as_ref().ok())
        .map(|data| data.records.len())
        .sum();
    fjord_metrics::BYTES_OUT.add(bytes_out as u64);

    let mut leaders_to_describe = Vec::new();
    let responses = topics
        .into_iter()
        .map(|(name, topic_id, slots)| {
            let partitions = slots
                .into_iter()
                .map(|(index, slot)| match slot {
                    Slot::Refused(error) => failed(index, error, None),
                    Slot::Sent(i) => match results.get(i) {
                        Some((_, Ok(data))) => PartitionData::default()
                            .with_partition_index(index)
                            .with_high_watermark(data.high_watermark)
                            .with_last_stable_offset(data.last_stable_offset)
                            .with_log_start_offset(data.log_start_offset)
                            .with_aborted_transactions(aborted_transactions(data))
                            .with_records(Some(data.records.clone())),
                        Some((tp, Err(err))) => {
                            let leader = match err {
                                // KIP-951: stale clients learn the leader at once.
                                PartitionError::NotLeaderOrFollower { .. }
                                | PartitionError::FencedLeaderEpoch { .. }
                                    if version >= 12 =>
                                {
                                    current_leader(&image, tp)
                                }
                                _ => None,
                            };
                            if let Some(leader) = &leader {
                                leaders_to_describe.push(leader.leader_id.0);
                            }
                            tracing::debug!(%tp, %err, "fetch failed");
                            failed(index, partition_error(err), leader)
                        }
                        None => failed(index, ResponseError::UnknownServerError, None),
                    },
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(wire_name(&name))
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();

    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 16 {
        leaders_to_describe.sort_unstable();
        leaders_to_describe.dedup();
        // As in Kafka, the current-leader hint keeps the leader's id and
        // epoch even when it has no endpoint on this connection's listener;
        // only its node endpoint is left out (the client then asks Metadata).
        response.node_endpoints = leaders_to_describe
            .into_iter()
            .filter_map(|id| {
                let (host, port) = broker_endpoint(&image, id, listener)?;
                let rack = image.brokers.get(&id).and_then(|b| b.rack.clone());
                Some(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(i32::from(port))
                        .with_rack(rack.map(StrBytes::from_string)),
                )
            })
            .collect();
    }
    response
}

/// The total record bytes in a response, to size its buffer.
fn record_bytes(response: &FetchResponse) -> usize {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()) + 64)
        .sum()
}

/// Fetch sessions are not supported: see the module docs.
fn session_error(session_id: i32, session_epoch: i32) -> Option<ResponseError> {
    match (session_id, session_epoch) {
        // Sessionless (epoch -1), or asking for a new session (epoch 0):
        // served as a full fetch, with session id 0 in the response.
        (0, -1 | 0) => None,
        (0, _) => Some(ResponseError::InvalidFetchSessionEpoch),
        // Closing a session: nothing to close; still a full fetch.
        (_, -1) => None,
        (_, _) => Some(ResponseError::FetchSessionIdNotFound),
    }
}

/// The response's `AbortedTransactions`: null unless READ_COMMITTED (as
/// Kafka), else the aborted transactions overlapping the records.
fn aborted_transactions(data: &FetchPartitionData) -> Option<Vec<AbortedTransaction>> {
    data.aborted_transactions.as_ref().map(|txns| {
        txns.iter()
            .map(|t| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(t.producer_id))
                    .with_first_offset(t.first_offset)
            })
            .collect()
    })
}

fn failed(index: i32, error: ResponseError, leader: Option<LeaderIdAndEpoch>) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_current_leader(leader.unwrap_or_default())
}

/// KIP-951: tell a client that hit NOT_LEADER_OR_FOLLOWER who leads now.
fn current_leader(image: &MetadataImage, tp: &TopicPartition) -> Option<LeaderIdAndEpoch> {
    let registration = partition_registration(image, &tp.topic, tp.partition)?;
    (registration.leader != NO_BROKER).then(|| {
        LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(registration.leader))
            .with_leader_epoch(registration.leader_epoch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::{ApiKey, ResponseKind};
    use uuid::Uuid;

    use crate::frame::encode_response;

    #[test]
    fn aborted_transactions_are_null_unless_read_committed() {
        let data = |aborted| FetchPartitionData {
            high_watermark: 9,
            last_stable_offset: 4,
            log_start_offset: 0,
            records: Bytes::new(),
            aborted_transactions: aborted,
        };
        assert_eq!(aborted_transactions(&data(None)), None);
        assert_eq!(aborted_transactions(&data(Some(vec![]))), Some(vec![]));
        let txn = fjord_broker::AbortedTransaction {
            producer_id: 7,
            first_offset: 3,
        };
        assert_eq!(
            aborted_transactions(&data(Some(vec![txn]))),
            Some(vec![
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(7))
                    .with_first_offset(3)
            ])
        );
        assert_eq!(
            super::isolation_level(1),
            fjord_log::IsolationLevel::ReadCommitted
        );
        assert_eq!(
            super::isolation_level(0),
            fjord_log::IsolationLevel::ReadUncommitted
        );
    }

    #[test]
    fn sessions_are_refused_the_way_kafka_refuses_unknown_ones() {
        assert_eq!(session_error(0, -1), None);
        assert_eq!(session_error(0, 0), None);
        assert_eq!(
            session_error(0, 3),
            Some(ResponseError::InvalidFetchSessionEpoch)
        );
        assert_eq!(session_error(77, -1), None);
        assert_eq!(
            session_error(77, 0),
            Some(ResponseError::FetchSessionIdNotFound)
        );
        assert_eq!(
            session_error(77, 5),
            Some(ResponseError::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn responses_encode_at_every_version_and_carry_records_verbatim() {
        let records = Bytes::from_static(b"stored batch bytes");
        for version in 4..=18 {
            let leader =
                (version >= 12).then(|| LeaderIdAndEpoch::default().with_leader_id(BrokerId(3)));
            let mut response = FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(wire_name("t"))
                    .with_topic_id(Uuid::new_v4())
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(0)
                            .with_high_watermark(5)
                            .with_last_stable_offset(5)
                            .with_log_start_offset(0)
                            .with_records(Some(records.clone())),
                        failed(1, ResponseError::NotLeaderOrFollower, leader),
                    ]),
            ]);
            if version >= 16 {
                response.node_endpoints = vec![
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(3))
                        .with_host(StrBytes::from_static_str("h"))
                        .with_port(1),
                ];
            }
            let hint = record_bytes(&response);
            let frame = encode_response(
                ApiKey::Fetch,
                version,
                1,
                &ResponseKind::Fetch(response),
                hint,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            assert!(
                frame.windows(records.len()).any(|w| w == &records[..]),
                "v{version}: records must appear verbatim"
            );
        }
    }
}
