//! WriteTxnMarkers (key 27, v1; Kafka 4 removed v0 and kafka-protocol 0.18
//! has no v2): write COMMIT/ABORT markers on partitions this broker leads.
//! Fjord's own transaction coordinator writes markers in-process or over
//! the inter-node gRPC; this api is for clients, i.e. Admin
//! `abortTransaction` (`kafka-transactions.sh abort`), which sends it to
//! the partition's leader to end a hanging transaction.
//!
//! Every partition of every marker in the request is written at once
//! (each waits, as acks=all, until its marker is committed, at most the
//! coordinator's marker timeout); each gets Kafka's code for its outcome
//! ([`marker_error_code`]).

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::time::Duration;

use fjord_broker::txn_service::{MarkerAppend, marker_error_code};
use fjord_log::control::TxnResult;
use fjord_types::TopicPartition;
use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use crate::context::RequestContext;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let timeout = svc.txns.service().config().marker_timeout;
    let appends = marker_appends(&request, timeout);
    // CLUSTER_ACTION on the cluster: only brokers write markers (Kafka's
    // `handleWriteTxnMarkersRequest`).
    if !ctx.authorized_cluster(svc, AclOperation::ClusterAction) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        return response(&request, appends.iter().map(|(at, _)| (*at, code)));
    }
    let codes = join_all(appends.iter().map(|(_, append)| async {
        match svc.markers.write(append.clone()).await {
            Ok(()) => 0,
            Err(err) => {
                tracing::debug!(tp = %append.tp, producer_id = append.producer_id, %err, "WriteTxnMarkers refused");
                marker_error_code(&err)
            }
        }
    }))
    .await;
    response(&request, appends.iter().map(|(at, _)| *at).zip(codes))
}

/// Where a partition's result goes: (marker index, topic index, partition
/// index) in the request.
type Slot = (usize, usize, usize);

/// One append per partition of every marker, in request order.
fn marker_appends(
    request: &WriteTxnMarkersRequest,
    timeout: Duration,
) -> Vec<(Slot, MarkerAppend)> {
    let mut appends = Vec::new();
    for (m, marker) in request.markers.iter().enumerate() {
        // `TransactionResult`: true is COMMIT, false ABORT.
        let result = if marker.transaction_result {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        for (t, topic) in marker.topics.iter().enumerate() {
            for (p, &partition) in topic.partition_indexes.iter().enumerate() {
                appends.push((
                    (m, t, p),
                    MarkerAppend {
                        tp: TopicPartition::new(topic.name.0.to_string(), partition),
                        producer_id: marker.producer_id.0,
                        producer_epoch: marker.producer_epoch,
                        coordinator_epoch: marker.coordinator_epoch,
                        result,
                        timeout,
                    },
                ));
            }
        }
    }
    appends
}

/// The request's shape with each partition's code.
fn response(
    request: &WriteTxnMarkersRequest,
    codes: impl Iterator<Item = (Slot, i16)>,
) -> WriteTxnMarkersResponse {
    let codes: BTreeMap<Slot, i16> = codes.collect();
    let markers = request
        .markers
        .iter()
        .enumerate()
        .map(|(m, marker)| {
            let topics = marker
                .topics
                .iter()
                .enumerate()
                .map(|(t, topic)| {
                    let partitions = topic
                        .partition_indexes
                        .iter()
                        .enumerate()
                        .map(|(p, &partition)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(partition)
                                .with_error_code(codes.get(&(m, t, p)).copied().unwrap_or(0))
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(topic.name.0.clone()))
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(marker.producer_id.0))
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_broker::PartitionError;
    use fjord_log::SequenceError;
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::super::wire_name;
    use crate::frame::encode_response;

    fn request() -> WriteTxnMarkersRequest {
        let marker = |pid: i64, commit: bool, topics: Vec<(&str, Vec<i32>)>| {
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(3)
                .with_transaction_result(commit)
                .with_coordinator_epoch(7)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(wire_name(name))
                                .with_partition_indexes(partitions)
                        })
                        .collect(),
                )
        };
        WriteTxnMarkersRequest::default().with_markers(vec![
            marker(1, false, vec![("a", vec![0, 2]), ("b", vec![1])]),
            marker(2, true, vec![("a", vec![0])]),
        ])
    }

    #[test]
    fn one_append_per_partition_of_every_marker() {
        let timeout = Duration::from_secs(1);
        let appends = marker_appends(&request(), timeout);
        let seen: Vec<(Slot, String, i64, TxnResult)> = appends
            .iter()
            .map(|(slot, a)| (*slot, a.tp.to_string(), a.producer_id, a.result))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    (0, 0, 0),
                    TopicPartition::new("a", 0).to_string(),
                    1,
                    TxnResult::Abort
                ),
                (
                    (0, 0, 1),
                    TopicPartition::new("a", 2).to_string(),
                    1,
                    TxnResult::Abort
                ),
                (
                    (0, 1, 0),
                    TopicPartition::new("b", 1).to_string(),
                    1,
                    TxnResult::Abort
                ),
                (
                    (1, 0, 0),
                    TopicPartition::new("a", 0).to_string(),
                    2,
                    TxnResult::Commit
                ),
            ]
        );
        for (_, a) in &appends {
            assert_eq!(
                (a.producer_epoch, a.coordinator_epoch, a.timeout),
                (3, 7, timeout)
            );
        }
    }

    #[test]
    fn codes_land_on_their_partition_and_encode() {
        let codes = [((0, 0, 1), 6), ((1, 0, 0), 47)];
        let response = response(&request(), codes.into_iter());
        let got: Vec<(i64, &str, i32, i16)> = response
            .markers
            .iter()
            .flat_map(|m| {
                m.topics.iter().flat_map(move |t| {
                    t.partitions.iter().map(move |p| {
                        (
                            m.producer_id.0,
                            t.name.0.as_str(),
                            p.partition_index,
                            p.error_code,
                        )
                    })
                })
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "a", 0, 0),
                (1, "a", 2, 6),
                (1, "b", 1, 0),
                (2, "a", 0, 47)
            ]
        );
        encode_response(
            ApiKey::WriteTxnMarkers,
            1,
            1,
            &ResponseKind::WriteTxnMarkers(response),
            0,
        )
        .expect("v1");
    }

    #[test]
    fn refused_markers_map_to_kafka_codes() {
        let table: Vec<(PartitionError, i16)> = vec![
            (
                PartitionError::InvalidProducerEpoch(SequenceError::InvalidProducerEpoch {
                    current: 2,
                    got: 1,
                }),
                47,
            ),
            (
                PartitionError::TransactionCoordinatorFenced(
                    SequenceError::TransactionCoordinatorFenced { current: 2, got: 1 },
                ),
                52,
            ),
            (PartitionError::UnknownTopicOrPartition, 3),
            (PartitionError::NotLeaderOrFollower { leader: None }, 6),
            (PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 }, 19),
            (PartitionError::RequestTimedOut, 7),
            (PartitionError::LogDirOffline, 56),
        ];
        for (err, code) in table {
            assert_eq!(marker_error_code(&err), code, "{err:?}");
        }
    }
}
