//! DescribeGroups (key 15): state, protocol and members of groups. An
//! unknown group is described as Dead with no members, as Kafka does (up to
//! v5). v3+ may ask for the authorized operations: without ACLs every group
//! operation is allowed. v4+ show static instance ids.

use fjord_broker::AclOperation;
use fjord_coordinator::group::{GroupDescription, GroupError};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::{authorized_operations, wire_str};
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.api_version;
    let asked = version >= 3 && request.include_authorized_operations;
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        // DESCRIBE on the group (Kafka's `handleDescribeGroupsRequest`).
        if !ctx.authorized_group(svc, AclOperation::Describe, group_id.0.as_str()) {
            let error = ResponseError::GroupAuthorizationFailed;
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(error.code())
                    .with_authorized_operations(authorized_operations::OMITTED),
            );
            continue;
        }
        let operations = if asked {
            authorized_operations::group(ctx, svc, group_id.0.as_str())
        } else {
            authorized_operations::OMITTED
        };
        let result = svc.groups.describe_group(group_id.0.as_str()).await;
        groups.push(described(group_id, result, operations));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

fn described(
    group_id: GroupId,
    result: Result<GroupDescription, GroupError>,
    operations: i32,
) -> DescribedGroup {
    let base = DescribedGroup::default()
        .with_group_id(group_id)
        .with_authorized_operations(operations)
        .with_error_message(None);
    match result {
        Ok(d) => {
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(wire_str(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(wire_str))
                        .with_client_id(wire_str(m.client_id))
                        .with_client_host(wire_str(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            base.with_group_state(wire_str(d.state.as_str()))
                .with_protocol_type(wire_str(d.protocol_type))
                .with_protocol_data(wire_str(d.protocol))
                .with_members(members)
        }
        Err(err) => {
            tracing::debug!(%err, "DescribeGroups failed");
            base.with_error_code(group_error(&err).code())
                .with_group_state(StrBytes::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use fjord_coordinator::group::{GroupState, MemberDescription};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    fn description() -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberDescription {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: Bytes::from_static(b"md"),
                assignment: Bytes::from_static(b"as"),
            }],
        }
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=5 {
            let operations = if version >= 3 {
                (1 << 3) | (1 << 6) | (1 << 8)
            } else {
                authorized_operations::OMITTED
            };
            let g = || GroupId(wire_str("g"));
            let response = DescribeGroupsResponse::default().with_groups(vec![
                described(g(), Ok(description()), operations),
                described(g(), Err(GroupError::NotCoordinator), operations),
            ]);
            assert_eq!(response.groups[0].group_state.as_str(), "Stable");
            assert_eq!(response.groups[1].error_code, 16);
            encode_response(
                ApiKey::DescribeGroups,
                version,
                1,
                &ResponseKind::DescribeGroups(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
