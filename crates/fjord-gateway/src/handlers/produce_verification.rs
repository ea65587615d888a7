//! KIP-890 part 1 for Produce: before a producer's first transactional
//! batch opens a transaction on a partition, the leader asks the
//! transactional id's coordinator whether the partition is in the
//! producer's ongoing transaction (Kafka's
//! `ReplicaManager.appendRecordsWithTransactionVerification`). The
//! partition's guard, taken before asking, makes a stale answer worthless:
//! a marker in between spends it, and the append is refused.
//!
//! Answers become Produce errors as Kafka maps them: a fenced producer
//! INVALID_PRODUCER_EPOCH; a partition not in the transaction
//! INVALID_TXN_STATE (TRANSACTION_ABORTABLE from v11, which clients of
//! that version abort on); a coordinator that cannot answer now
//! (loading, moved, unreachable, markers of the previous transaction
//! still being written) NOT_ENOUGH_REPLICAS, which every producer retries
//! without refreshing metadata.

use std::collections::BTreeSet;

use fjord_broker::ProducePartition;
use fjord_coordinator::txn::TxnProducer;
use kafka_protocol::ResponseError;

use crate::services::Services;

/// Verify the `requests` that would open their producer's transaction;
/// set the guards of the verified ones. Returns the refused ones (by
/// index in `requests`) with their error.
pub(super) async fn verify(
    svc: &Services,
    version: i16,
    transactional_id: &str,
    requests: &mut [ProducePartition],
) -> Vec<(usize, ResponseError)> {
    let mut pending = Vec::new();
    for (index, req) in requests.iter().enumerate() {
        // A partition that fails here (not the leader) fails the same way
        // at its append, which answers for it.
        if let Ok(Some(verification)) = svc.replicas.start_txn_verification(&req.tp, &req.records) {
            pending.push((index, verification));
        }
    }
    let Some(&(_, first)) = pending.first() else {
        return Vec::new();
    };
    // One producer per request: a producer sends its own batches.
    let producer = TxnProducer {
        transactional_id: transactional_id.to_string(),
        producer_id: first.producer_id,
        producer_epoch: first.producer_epoch,
    };
    let partitions: BTreeSet<_> = pending
        .iter()
        .map(|&(i, _)| requests[i].tp.clone())
        .collect();
    let answers = match svc.txns.verify(producer, partitions).await {
        Ok(answers) => answers,
        Err(err) => {
            tracing::debug!(%err, transactional_id, "transaction verification failed");
            return pending
                .iter()
                .map(|&(i, _)| (i, ResponseError::NotEnoughReplicas))
                .collect();
        }
    };
    let mut refused = Vec::new();
    for (index, verification) in pending {
        let answer = answers
            .iter()
            .find(|(tp, _)| *tp == requests[index].tp)
            .map_or(Err(ResponseError::UnknownServerError.code()), |(_, r)| *r);
        let mixed_producer = verification.producer_id != first.producer_id
            || verification.producer_epoch != first.producer_epoch;
        match answer {
            Ok(()) if !mixed_producer => requests[index].verification = Some(verification.guard),
            Ok(()) => refused.push((index, ResponseError::InvalidTxnState)),
            Err(code) => refused.push((index, produce_error(code, version))),
        }
    }
    refused
}

/// The Produce error for a coordinator's verification answer (Kafka's).
fn produce_error(code: i16, version: i16) -> ResponseError {
    use ResponseError as E;
    match ResponseError::try_from_code(code) {
        Some(E::ProducerFenced) => E::InvalidProducerEpoch,
        Some(E::TransactionAbortable) if version < 11 => E::InvalidTxnState,
        Some(
            E::NetworkException
            | E::CoordinatorLoadInProgress
            | E::CoordinatorNotAvailable
            | E::NotCoordinator
            | E::ConcurrentTransactions,
        ) => E::NotEnoughReplicas,
        Some(other) => other,
        None => E::UnknownServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_answers_map_to_produce_errors_as_kafka() {
        use ResponseError as E;
        let table = [
            (E::ProducerFenced, 9, E::InvalidProducerEpoch),
            (E::TransactionAbortable, 10, E::InvalidTxnState),
            (E::TransactionAbortable, 11, E::TransactionAbortable),
            (E::CoordinatorLoadInProgress, 9, E::NotEnoughReplicas),
            (E::CoordinatorNotAvailable, 9, E::NotEnoughReplicas),
            (E::NotCoordinator, 9, E::NotEnoughReplicas),
            (E::ConcurrentTransactions, 9, E::NotEnoughReplicas),
            (E::InvalidProducerIdMapping, 9, E::InvalidProducerIdMapping),
        ];
        for (answer, version, produce) in table {
            assert_eq!(
                produce_error(answer.code(), version),
                produce,
                "{answer:?} v{version}"
            );
        }
    }
}
