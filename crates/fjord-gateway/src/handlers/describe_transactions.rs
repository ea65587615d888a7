//! DescribeTransactions (key 65, v0): per transactional id, what its
//! coordinator knows (Kafka's `handleDescribeTransactions`): the state by
//! Kafka's name, timeout, start time, producer id and epoch, and the
//! partitions of the transaction. Each id is answered by this broker only
//! if it coordinates it: NOT_COORDINATOR otherwise,
//! COORDINATOR_LOAD_IN_PROGRESS while its partition loads,
//! TRANSACTIONAL_ID_NOT_FOUND for an id it does not know.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use fjord_coordinator::txn::{TransactionDescription, TxnError};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TransactionalId,
};

use super::{wire_name, wire_str};
use crate::context::RequestContext;
use crate::error_code::txn_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        // DESCRIBE on the transactional id (Kafka's
        // `handleDescribeTransactionsRequest`).
        if !ctx.authorized_transactional_id(svc, AclOperation::Describe, &id.0) {
            let error = ResponseError::TransactionalIdAuthorizationFailed;
            states.push(
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(error.code()),
            );
            continue;
        }
        let mut result = svc.txns.describe(id.0.as_str()).await;
        // Only the partitions of topics the principal may describe.
        if let Ok(d) = &mut result {
            d.partitions
                .retain(|tp| ctx.authorized_topic(svc, AclOperation::Describe, &tp.topic));
        }
        states.push(described(id, result));
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(
    id: TransactionalId,
    result: Result<TransactionDescription, TxnError>,
) -> TransactionState {
    let base = TransactionState::default().with_transactional_id(id);
    match result {
        Ok(d) => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for tp in d.partitions {
                by_topic.entry(tp.topic).or_default().push(tp.partition);
            }
            let topics = by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicData::default()
                        .with_topic(wire_name(&topic))
                        .with_partitions(partitions)
                })
                .collect();
            base.with_transaction_state(wire_str(d.state.as_str()))
                .with_transaction_timeout_ms(d.timeout_ms)
                .with_transaction_start_time_ms(d.start_timestamp_ms)
                .with_producer_id(ProducerId(d.producer_id))
                .with_producer_epoch(d.producer_epoch)
                .with_topics(topics)
        }
        Err(err) => {
            tracing::debug!(%err, "DescribeTransactions failed");
            base.with_error_code(txn_error(&err).code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_coordinator::txn::TransactionState as State;
    use fjord_types::TopicPartition;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    fn id(s: &str) -> TransactionalId {
        TransactionalId(wire_str(s))
    }

    #[test]
    fn descriptions_group_partitions_by_topic_and_errors_carry_kafka_codes() {
        let description = TransactionDescription {
            transactional_id: "t1".into(),
            state: State::PrepareCommit,
            timeout_ms: 60_000,
            start_timestamp_ms: 1_700_000_000_000,
            producer_id: 7,
            producer_epoch: 2,
            partitions: [("b", 1), ("a", 3), ("b", 0)]
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t, p))
                .collect(),
        };
        let ok = described(id("t1"), Ok(description));
        assert_eq!(ok.error_code, 0);
        assert_eq!(ok.transaction_state.as_str(), "PrepareCommit");
        assert_eq!(
            (ok.transaction_timeout_ms, ok.transaction_start_time_ms),
            (60_000, 1_700_000_000_000)
        );
        assert_eq!((ok.producer_id.0, ok.producer_epoch), (7, 2));
        let topics: Vec<(&str, Vec<i32>)> = ok
            .topics
            .iter()
            .map(|t| (t.topic.0.as_str(), t.partitions.clone()))
            .collect();
        assert_eq!(topics, vec![("a", vec![3]), ("b", vec![0, 1])]);

        for (err, code) in [
            (TxnError::NotCoordinator, 16),
            (TxnError::CoordinatorLoadInProgress, 14),
            (TxnError::TransactionalIdNotFound, 105),
        ] {
            let failed = described(id("t2"), Err(err));
            assert_eq!(failed.error_code, code);
            assert_eq!(failed.transactional_id.0.as_str(), "t2");
            assert!(failed.topics.is_empty());
        }
    }

    #[test]
    fn responses_encode_at_every_version() {
        let description = TransactionDescription {
            transactional_id: "t1".into(),
            state: State::Ongoing,
            timeout_ms: 1,
            start_timestamp_ms: 2,
            producer_id: 3,
            producer_epoch: 4,
            partitions: [TopicPartition::new("a", 0)].into_iter().collect(),
        };
        let response = DescribeTransactionsResponse::default().with_transaction_states(vec![
            described(id("t1"), Ok(description)),
            described(id("t2"), Err(TxnError::TransactionalIdNotFound)),
        ]);
        encode_response(
            ApiKey::DescribeTransactions,
            0,
            1,
            &ResponseKind::DescribeTransactions(response),
            0,
        )
        .expect("v0");
    }
}
