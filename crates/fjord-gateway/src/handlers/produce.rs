//! Produce (key 0): append record batches, as stored bytes, to partitions.
//!
//! Records are never decoded here: each partition's `records` is a slice of
//! the request frame, handed to the broker as is. Topics are named (v3-12)
//! or given by id (v13). As in Kafka, produce does not auto-create topics:
//! clients find a partition's leader through Metadata first, and that is
//! where topics are auto-created.
//!
//! With acks=0 the client expects no response; when any partition fails,
//! the connection is closed instead (Kafka does the same), so that the
//! client notices and refreshes its metadata.

use std::time::Duration;

use fjord_broker::{
    Acks, AclOperation, MetadataImage, PartitionError, ProducePartition, RecordError,
};
use fjord_types::{NO_BROKER, TopicPartition};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::produce_verification;
use super::{
    IntoReply, Reply, broker_endpoint, is_internal_topic, is_valid_topic_name,
    partition_registration, topic_id_from_wire, wire_name,
};
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::error_code::partition_error;
use crate::services::Services;

/// Kafka's `AdminUtils.ADMIN_CLIENT_ID`: the one client id allowed to
/// produce to internal topics.
const ADMIN_CLIENT_ID: &str = "__admin_client";

/// Whether any partition's first batch is transactional (Kafka's
/// `ProduceRequest.hasTransactionalRecords` looks at the first batch too:
/// a producer's batches of one request are all or none transactional).
fn has_transactional_batches(request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .any(|records| {
            fjord_log::BatchHeader::parse(records).is_some_and(|header| header.is_transactional())
        })
}

/// The same error on every partition of the request.
fn refuse_all(request: &ProduceRequest, error: ResponseError) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(
                    topic
                        .partition_data
                        .iter()
                        .map(|p| failed(p.index, error, None))
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Take the `refused` requests (by index) out, their slots now answering
/// with their error, and renumber the others' slots.
fn drop_refused(
    requests: Vec<ProducePartition>,
    topics: &mut [TopicSlots],
    refused: &[(usize, ResponseError)],
) -> Vec<ProducePartition> {
    let mut renumbered = Vec::with_capacity(requests.len());
    let mut kept = Vec::with_capacity(requests.len());
    for (index, req) in requests.into_iter().enumerate() {
        match refused.iter().find(|(i, _)| *i == index) {
            Some(&(_, error)) => renumbered.push(Err(error)),
            None => {
                renumbered.push(Ok(kept.len()));
                kept.push(req);
            }
        }
    }
    for (_, slot) in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if let Slot::Sent(i) = *slot {
            *slot = match renumbered[i] {
                Ok(new) => Slot::Sent(new),
                Err(error) => Slot::Refused(error),
            };
        }
    }
    kept
}

/// What became of one partition of the request.
enum Slot {
    /// Sent to the broker as `requests[i]`.
    Sent(usize),
    /// Refused before reaching the broker.
    Refused(ResponseError),
}

struct TopicSlots {
    name: String,
    topic_id: Uuid,
    partitions: Vec<(i32, Slot)>,
}

pub(crate) async fn handle(ctx: &RequestContext, svc: &Services, request: ProduceRequest) -> Reply {
    let version = ctx.api_version;
    let listener = ctx.listener();
    let acks = Acks::from_wire(request.acks);
    // Transactional batches come with the producer's transactional id
    // (Kafka's `handleProduceRequest`, which checks the id's WRITE ACL
    // there; without an id the whole request is refused).
    if request.transactional_id.is_none() && has_transactional_batches(&request) {
        if acks == Some(Acks::None) {
            return Reply::Close(GatewayError::AcksZeroProduceFailed);
        }
        return refuse_all(&request, ResponseError::TransactionalIdAuthorizationFailed)
            .into_reply();
    }
    // WRITE on the transactional id, for every partition at once.
    if let Some(transactional_id) = &request.transactional_id
        && !ctx.authorized_transactional_id(svc, AclOperation::Write, transactional_id)
    {
        if acks == Some(Acks::None) {
            return Reply::Close(GatewayError::AcksZeroProduceFailed);
        }
        return refuse_all(&request, ResponseError::TransactionalIdAuthorizationFailed)
            .into_reply();
    }
    let image = svc.metadata.image();
    let mut requests = Vec::new();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let (name, topic_error) = if version >= 13 {
            match image.topics.get(&topic_id_from_wire(topic.topic_id)) {
                Some(t) => (t.name.clone(), None),
                None => (String::new(), Some(ResponseError::UnknownTopicId)),
            }
        } else {
            let name = topic.name.0.to_string();
            let error =
                (!is_valid_topic_name(&name)).then_some(ResponseError::InvalidTopicException);
            (name, error)
        };
        // WRITE on the topic, before its partitions reach the broker
        // (Kafka's `handleProduceRequest`).
        let topic_error = topic_error.or_else(|| {
            (!ctx.authorized_topic(svc, AclOperation::Write, &name))
                .then_some(ResponseError::TopicAuthorizationFailed)
        });
        // The coordinators' own topics take only what the coordinators
        // write: a client's bytes there would be loaded as group or
        // transaction state. Kafka's ReplicaManager refuses them the same
        // way (after authorization), letting only its admin tools'
        // client id through.
        let topic_error = topic_error.or_else(|| {
            (is_internal_topic(&name) && ctx.client_id() != ADMIN_CLIENT_ID)
                .then_some(ResponseError::InvalidTopicException)
        });
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let refused = if acks.is_none() {
                Some(ResponseError::InvalidRequiredAcks)
            } else {
                topic_error
            };
            let slot = match (refused, partition.records) {
                (Some(error), _) => Slot::Refused(error),
                (None, None) => Slot::Refused(ResponseError::InvalidRecord),
                (None, Some(records)) => {
                    requests.push(ProducePartition {
                        tp: TopicPartition::new(name.clone(), partition.index),
                        records,
                        verification: None,
                    });
                    Slot::Sent(requests.len() - 1)
                }
            };
            partitions.push((partition.index, slot));
        }
        topics.push(TopicSlots {
            name,
            topic_id: topic.topic_id,
            partitions,
        });
    }

    if let Some(transactional_id) = &request.transactional_id {
        let refused =
            produce_verification::verify(svc, version, transactional_id, &mut requests).await;
        if !refused.is_empty() {
            requests = drop_refused(requests, &mut topics, &refused);
        }
    }

    let acks = acks.unwrap_or(Acks::Leader);
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let sizes: Vec<usize> = requests.iter().map(|r| r.records.len()).collect();
    let results = if requests.is_empty() {
        Vec::new()
    } else {
        svc.replicas.produce(requests, acks, timeout).await
    };
    record_bytes_in(&sizes, &results);

    if acks == Acks::None {
        let failed = results.iter().any(|(_, r)| r.is_err())
            || topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|(_, slot)| matches!(slot, Slot::Refused(_)));
        if failed {
            return Reply::Close(GatewayError::AcksZeroProduceFailed);
        }
        return Reply::NoResponse;
    }

    let mut leaders_to_describe = Vec::new();
    let responses = topics
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partitions
                .into_iter()
                .map(|(index, slot)| match slot {
                    Slot::Refused(error) => failed(index, error, None),
                    Slot::Sent(i) => match results.get(i) {
                        Some((_, Ok(info))) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time_ms)
                            .with_log_start_offset(info.log_start_offset),
                        Some((tp, Err(err))) => {
                            let leader = match err {
                                PartitionError::NotLeaderOrFollower { .. } if version >= 10 => {
                                    current_leader(&image, tp)
                                }
                                _ => None,
                            };
                            if let Some(leader) = &leader {
                                leaders_to_describe.push(leader.leader_id.0);
                            }
                            tracing::debug!(%tp, %err, "produce failed");
                            let response = failed(index, partition_error(err), leader);
                            match err {
                                PartitionError::RecordsRejected { tp, errors } if version >= 8 => {
                                    with_record_errors(response, tp, errors)
                                }
                                _ => response,
                            }
                        }
                        None => failed(index, ResponseError::UnknownServerError, None),
                    },
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(wire_name(&topic.name))
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();

    let mut response = ProduceResponse::default().with_responses(responses);
    if version >= 10 {
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
    response.into_reply()
}

/// Bytes in: the record bytes of the partitions that were appended.
fn record_bytes_in<T, E>(sizes: &[usize], results: &[(TopicPartition, Result<T, E>)]) {
    let appended: usize = sizes
        .iter()
        .zip(results)
        .filter(|(_, (_, result))| result.is_ok())
        .map(|(size, _)| size)
        .sum();
    fjord_metrics::BYTES_IN.add(appended as u64);
}

fn failed(
    index: i32,
    error: ResponseError,
    leader: Option<LeaderIdAndEpoch>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_current_leader(leader.unwrap_or_default())
}

/// KIP-467 (v8+): name each refused record of the batch, with Kafka's
/// messages (`LogValidator.validateRecord`, `LogValidator.processRecordErrors`).
fn with_record_errors(
    response: PartitionProduceResponse,
    tp: &TopicPartition,
    errors: &[RecordError],
) -> PartitionProduceResponse {
    let summary = if errors.iter().any(RecordError::is_timestamp) {
        "One or more records have been rejected due to invalid timestamp".to_string()
    } else {
        let shown: Vec<String> = errors
            .iter()
            .take(3)
            .map(|e| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.batch_index,
                    e.message(tp)
                )
            })
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
            errors.len(),
            shown.join(", ")
        )
    };
    let record_errors = errors
        .iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(e.message(tp))))
        })
        .collect();
    response
        .with_record_errors(record_errors)
        .with_error_message(Some(StrBytes::from_string(summary)))
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
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn responses_encode_at_every_version() {
        for version in 3..=13 {
            let leader =
                (version >= 10).then(|| LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)));
            let mut keyless = failed(2, ResponseError::InvalidRecord, None);
            if version >= 8 {
                let errors = [0, 3].map(|batch_index| RecordError {
                    batch_index,
                    kind: fjord_broker::RecordErrorKind::MissingKey,
                });
                keyless = with_record_errors(keyless, &TopicPartition::new("t", 2), &errors);
            }
            let mut response = ProduceResponse::default().with_responses(vec![
                TopicProduceResponse::default()
                    .with_name(wire_name("t"))
                    .with_topic_id(Uuid::new_v4())
                    .with_partition_responses(vec![
                        PartitionProduceResponse::default()
                            .with_index(0)
                            .with_base_offset(10)
                            .with_log_start_offset(0),
                        failed(1, ResponseError::NotLeaderOrFollower, leader),
                        keyless,
                    ]),
            ]);
            if version >= 10 {
                response.node_endpoints = vec![
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(2))
                        .with_host(StrBytes::from_static_str("h"))
                        .with_port(1),
                ];
            }
            encode_response(
                ApiKey::Produce,
                version,
                1,
                &ResponseKind::Produce(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
