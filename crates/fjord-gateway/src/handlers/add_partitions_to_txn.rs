//! AddPartitionsToTxn (key 24), v0–v3 (the client versions; v4+ is the
//! brokers' batched verification of KIP-890, not served): a transactional
//! producer adds partitions to its transaction before producing to them.
//!
//! As Kafka's `handleAddPartitionsToTxnRequest`: when any requested
//! partition does not exist, those answer UNKNOWN_TOPIC_OR_PARTITION and
//! the others OPERATION_NOT_ATTEMPTED, and the coordinator is not asked;
//! otherwise every partition carries the coordinator's one answer.

use fjord_broker::AclOperation;
use std::collections::BTreeSet;

use fjord_coordinator::txn::TxnProducer;
use fjord_types::TopicPartition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::partition_registration;
use crate::context::RequestContext;
use crate::error_code::txn_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let image = svc.metadata.image();
    let requested: Vec<TopicPartition> = request
        .v3_and_below_topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|&p| TopicPartition::new(topic.name.0.to_string(), p))
        })
        .collect();
    // WRITE on the transactional id, then on each topic (Kafka's
    // `handleAddPartitionsToTxnRequest`): a refused id refuses every
    // partition; a refused topic its partitions, the others not attempted.
    let txn_refused = !ctx.authorized_transactional_id(
        svc,
        AclOperation::Write,
        &request.v3_and_below_transactional_id.0,
    );
    let unauthorized: BTreeSet<&TopicPartition> = requested
        .iter()
        .filter(|tp| !ctx.authorized_topic(svc, AclOperation::Write, &tp.topic))
        .collect();
    let unknown: BTreeSet<&TopicPartition> = requested
        .iter()
        .filter(|tp| partition_registration(&image, &tp.topic, tp.partition).is_none())
        .collect();
    let code_of = |tp: &TopicPartition, answer: i16| {
        if txn_refused {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else if !unauthorized.is_empty() {
            if unauthorized.contains(tp) {
                ResponseError::TopicAuthorizationFailed.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            }
        } else if unknown.is_empty() {
            answer
        } else if unknown.contains(tp) {
            ResponseError::UnknownTopicOrPartition.code()
        } else {
            ResponseError::OperationNotAttempted.code()
        }
    };
    let answer = if unknown.is_empty() && unauthorized.is_empty() && !txn_refused {
        let producer = TxnProducer {
            transactional_id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
        };
        match svc
            .txns
            .add_partitions(producer, requested.iter().cloned().collect())
            .await
        {
            Ok(()) => 0,
            Err(err) => {
                tracing::debug!(%err, "AddPartitionsToTxn refused");
                txn_error(&err).code()
            }
        }
    } else {
        0
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    let tp = TopicPartition::new(topic.name.0.to_string(), p);
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code_of(&tp, answer))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;
    use crate::handlers::wire_name;

    #[test]
    fn responses_encode_at_every_served_version() {
        let response =
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
                AddPartitionsToTxnTopicResult::default()
                    .with_name(wire_name("t"))
                    .with_results_by_partition(vec![
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(0)
                            .with_partition_error_code(51),
                    ]),
            ]);
        for version in 0..=3 {
            encode_response(
                ApiKey::AddPartitionsToTxn,
                version,
                1,
                &ResponseKind::AddPartitionsToTxn(response.clone()),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
