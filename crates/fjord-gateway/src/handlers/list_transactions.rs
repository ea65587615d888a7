//! ListTransactions (key 66, v0-1): the transactions of every
//! `__transaction_state` partition this broker leads (clients ask every
//! broker and merge), filtered by state name and producer id, and from v1
//! by duration (running for longer than `DurationFilter` ms). State names
//! no state has come back in `UnknownStateFilters`. While a led partition
//! loads the answer is COORDINATOR_LOAD_IN_PROGRESS, as ListGroups'.
//! v2's TransactionalIdPattern (KIP-1152) is not served.

use fjord_broker::AclOperation;
use fjord_coordinator::txn::{ListTransactionsData, ListTransactionsFilter, TxnError};
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::txn_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let filter = filter(&request, ctx.api_version);
    let mut listed = svc.txns.list(&filter).await;
    // Only the transactional ids the principal may describe (Kafka's
    // `handleListTransactionsRequest`).
    if let Ok(listed) = &mut listed {
        listed.transactions.retain(|t| {
            ctx.authorized_transactional_id(svc, AclOperation::Describe, &t.transactional_id)
        });
    }
    response(listed)
}

fn filter(request: &ListTransactionsRequest, version: i16) -> ListTransactionsFilter {
    ListTransactionsFilter {
        states: request
            .state_filters
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        duration_ms: if version >= 1 {
            request.duration_filter
        } else {
            -1
        },
    }
}

fn response(listed: Result<ListTransactionsData, TxnError>) -> ListTransactionsResponse {
    let listed = match listed {
        Ok(listed) => listed,
        Err(err) => {
            tracing::debug!(%err, "ListTransactions failed");
            return ListTransactionsResponse::default().with_error_code(txn_error(&err).code());
        }
    };
    let states = listed
        .transactions
        .into_iter()
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(wire_str(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(wire_str(t.state.as_str()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(
            listed
                .unknown_state_filters
                .into_iter()
                .map(wire_str)
                .collect(),
        )
        .with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_coordinator::txn::{TransactionListing, TransactionState as State};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn filters_take_the_duration_from_v1() {
        let request = ListTransactionsRequest::default()
            .with_state_filters(vec![wire_str("Ongoing")])
            .with_producer_id_filters(vec![ProducerId(5)])
            .with_duration_filter(60_000);
        let v0 = filter(&request, 0);
        assert_eq!(v0.states, vec!["Ongoing".to_string()]);
        assert_eq!(v0.producer_ids.into_iter().collect::<Vec<_>>(), vec![5]);
        assert_eq!(v0.duration_ms, -1);
        assert_eq!(filter(&request, 1).duration_ms, 60_000);
        assert_eq!(
            filter(&ListTransactionsRequest::default(), 1).duration_ms,
            -1
        );
    }

    #[test]
    fn a_loading_coordinator_answers_load_in_progress() {
        let response = response(Err(TxnError::CoordinatorLoadInProgress));
        assert_eq!(response.error_code, 14);
        assert!(response.transaction_states.is_empty());
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=1 {
            let response = response(Ok(ListTransactionsData {
                unknown_state_filters: vec!["Bogus".into()],
                transactions: vec![TransactionListing {
                    transactional_id: "t1".into(),
                    producer_id: 9,
                    state: State::CompleteAbort,
                }],
            }));
            assert_eq!(
                response.transaction_states[0].transaction_state.as_str(),
                "CompleteAbort"
            );
            assert_eq!(response.unknown_state_filters[0].as_str(), "Bogus");
            encode_response(
                ApiKey::ListTransactions,
                version,
                1,
                &ResponseKind::ListTransactions(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
