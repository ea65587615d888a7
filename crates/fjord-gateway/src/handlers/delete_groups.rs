//! DeleteGroups (key 42): delete empty groups and their offsets; one result
//! per group.

use fjord_broker::AclOperation;
use fjord_coordinator::group::GroupError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    // DELETE on each group; refused groups never reach the coordinator
    // (Kafka's `handleDeleteGroupsRequest`).
    let (allowed, refused): (Vec<String>, Vec<String>) = request
        .groups_names
        .into_iter()
        .map(|g| g.0.to_string())
        .partition(|g| ctx.authorized_group(svc, AclOperation::Delete, g));
    let mut response = response(svc.groups.delete_groups(allowed).await);
    for group_id in refused {
        response.results.push(
            DeletableGroupResult::default()
                .with_group_id(GroupId(wire_str(group_id)))
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        );
    }
    response
}

fn response(results: Vec<(String, Result<(), GroupError>)>) -> DeleteGroupsResponse {
    let results = results
        .into_iter()
        .map(|(group_id, result)| {
            let code = match result {
                Ok(()) => 0,
                Err(err) => {
                    tracing::debug!(%err, group = group_id, "DeleteGroups failed");
                    group_error(&err).code()
                }
            };
            DeletableGroupResult::default()
                .with_group_id(GroupId(wire_str(group_id)))
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=2 {
            let response = response(vec![
                ("a".into(), Ok(())),
                ("b".into(), Err(GroupError::NonEmptyGroup)),
            ]);
            assert_eq!(response.results[1].error_code, 68);
            encode_response(
                ApiKey::DeleteGroups,
                version,
                1,
                &ResponseKind::DeleteGroups(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
