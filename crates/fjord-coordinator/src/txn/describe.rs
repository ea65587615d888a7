//! DescribeTransactions and ListTransactions data (reads only).

use super::api::*;
use super::{TransactionCoordinator, TransactionState, TxnError};

impl TransactionCoordinator {
    /// DescribeTransactions for one id (Kafka's
    /// `handleDescribeTransactions`).
    pub fn describe(&self, transactional_id: &str) -> Result<TransactionDescription, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::EmptyTransactionalId);
        }
        let md = self
            .get(transactional_id)
            .filter(|md| md.state != TransactionState::Dead)
            .ok_or(TxnError::TransactionalIdNotFound)?;
        Ok(TransactionDescription {
            transactional_id: md.transactional_id.clone(),
            state: md.state,
            timeout_ms: md.timeout_ms,
            start_timestamp_ms: md.start_timestamp_ms,
            producer_id: md.producer_id,
            producer_epoch: md.producer_epoch,
            partitions: md.partitions.clone(),
        })
    }

    /// ListTransactions over this coordinator's ids (Kafka's
    /// `listTransactionStates`): by state name, producer id and, from v1,
    /// running for longer than `duration_ms`.
    pub fn list(&self, filter: &ListTransactionsFilter, now_ms: i64) -> ListTransactionsData {
        let mut states = Vec::new();
        let mut unknown_state_filters = Vec::new();
        for name in &filter.states {
            match TransactionState::from_name(name) {
                Some(s) => states.push(s),
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let transactions = self
            .transactions()
            .filter(|md| md.state != TransactionState::Dead)
            .filter(|md| filter.states.is_empty() || states.contains(&md.state))
            .filter(|md| {
                filter.producer_ids.is_empty() || filter.producer_ids.contains(&md.producer_id)
            })
            .filter(|md| {
                filter.duration_ms < 0 || now_ms - md.start_timestamp_ms > filter.duration_ms
            })
            .map(|md| TransactionListing {
                transactional_id: md.transactional_id.clone(),
                producer_id: md.producer_id,
                state: md.state,
            })
            .collect();
        ListTransactionsData {
            unknown_state_filters,
            transactions,
        }
    }
}
