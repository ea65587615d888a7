//! ListGroups (key 16): the groups this node coordinates. v4+ filter by
//! state (case-insensitive, as Kafka parses them; unknown names match
//! nothing); v5 filters by group type, and every group here is "classic".

use fjord_broker::AclOperation;
use fjord_coordinator::group::{GroupError, GroupListing, GroupState};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

/// The type of every group this broker has (KIP-848's "classic").
const CLASSIC: &str = "classic";

const STATES: [GroupState; 5] = [
    GroupState::Empty,
    GroupState::PreparingRebalance,
    GroupState::CompletingRebalance,
    GroupState::Stable,
    GroupState::Dead,
];

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = ctx.api_version;
    let mut listings = match filter(&request, version) {
        Some(states) => svc.groups.list_groups(&states).await,
        None => Ok(Vec::new()),
    };
    // DESCRIBE on the cluster lists every group; otherwise only the groups
    // the principal may describe (Kafka's `handleListGroupsRequest`).
    if !ctx.authorized_cluster(svc, AclOperation::Describe)
        && let Ok(listings) = &mut listings
    {
        listings.retain(|g| ctx.authorized_group(svc, AclOperation::Describe, &g.group_id));
    }
    response(listings)
}

/// The states to ask the broker for (empty: all), or `None` when the
/// filters match no group at all.
fn filter(request: &ListGroupsRequest, version: i16) -> Option<Vec<GroupState>> {
    if version >= 5
        && !request.types_filter.is_empty()
        && !request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC))
    {
        return None;
    }
    if version < 4 || request.states_filter.is_empty() {
        return Some(Vec::new());
    }
    let states: Vec<GroupState> = STATES
        .into_iter()
        .filter(|s| {
            request
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s.as_str()))
        })
        .collect();
    (!states.is_empty()).then_some(states)
}

/// The groups, or the error for all of them (COORDINATOR_LOAD_IN_PROGRESS
/// while a led partition loads: the client retries).
fn response(listings: Result<Vec<GroupListing>, GroupError>) -> ListGroupsResponse {
    let listings = match listings {
        Ok(listings) => listings,
        Err(err) => {
            return ListGroupsResponse::default().with_error_code(group_error(&err).code());
        }
    };
    let groups = listings
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(wire_str(g.group_id)))
                .with_protocol_type(wire_str(g.protocol_type))
                .with_group_state(wire_str(g.state.as_str()))
                .with_group_type(wire_str(CLASSIC))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn filters() {
        let states = |s: &[&str]| {
            ListGroupsRequest::default()
                .with_states_filter(s.iter().map(|s| wire_str(*s)).collect())
        };
        assert_eq!(filter(&states(&[]), 4), Some(vec![]));
        assert_eq!(filter(&states(&["stable"]), 3), Some(vec![]));
        assert_eq!(
            filter(&states(&["stable", "EMPTY", "bogus"]), 4),
            Some(vec![GroupState::Empty, GroupState::Stable])
        );
        assert_eq!(filter(&states(&["bogus"]), 4), None);
        let types = |t: &[&str]| {
            ListGroupsRequest::default().with_types_filter(t.iter().map(|t| wire_str(*t)).collect())
        };
        assert_eq!(filter(&types(&["consumer"]), 5), None);
        assert_eq!(filter(&types(&["Classic"]), 5), Some(vec![]));
        assert_eq!(filter(&types(&["consumer"]), 4), Some(vec![]));
    }

    #[test]
    fn a_loading_coordinator_answers_load_in_progress() {
        let response = response(Err(GroupError::CoordinatorLoadInProgress));
        assert_eq!(response.error_code, 14);
        assert!(response.groups.is_empty());
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=5 {
            let response = response(Ok(vec![GroupListing {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                state: GroupState::Stable,
            }]));
            encode_response(
                ApiKey::ListGroups,
                version,
                1,
                &ResponseKind::ListGroups(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
