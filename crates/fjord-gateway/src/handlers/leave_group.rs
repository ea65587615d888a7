//! LeaveGroup (key 13): members leave a group. v0–v2 name one member at the
//! top level (its error is the response's); v3+ batch members, by member id
//! or by static instance id, with an error each.

use fjord_broker::AclOperation;
use fjord_coordinator::group::{self, LeaveGroupResponse as Left, LeavingMember};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.api_version;
    // READ on the group (Kafka's `handleLeaveGroupRequest`).
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return LeaveGroupResponse::default().with_error_code(error.code());
    }
    let left = svc
        .groups
        .leave_group(domain_request(request, version))
        .await;
    response(left, version)
}

fn domain_request(request: LeaveGroupRequest, version: i16) -> group::LeaveGroupRequest {
    let members = if version < 3 {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    } else {
        request
            .members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
            })
            .collect()
    };
    group::LeaveGroupRequest {
        group_id: request.group_id.0.to_string(),
        members,
    }
}

fn response(left: Left, version: i16) -> LeaveGroupResponse {
    let members = match left {
        Ok(members) => members,
        Err(err) => {
            tracing::debug!(%err, "LeaveGroup failed");
            return LeaveGroupResponse::default().with_error_code(group_error(&err).code());
        }
    };
    if version < 3 {
        let code = members
            .first()
            .and_then(|(_, result)| result.as_ref().err())
            .map_or(0, |err| group_error(err).code());
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = members
        .into_iter()
        .map(|(member, result)| {
            MemberResponse::default()
                .with_member_id(wire_str(member.member_id))
                .with_group_instance_id(member.group_instance_id.map(wire_str))
                .with_error_code(result.err().map_or(0, |err| group_error(&err).code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_coordinator::group::GroupError;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::{ApiKey, GroupId, ResponseKind};

    use crate::frame::encode_response;

    fn left() -> Left {
        Ok(vec![
            (
                LeavingMember {
                    member_id: "m1".into(),
                    group_instance_id: None,
                },
                Err(GroupError::UnknownMemberId {
                    member_id: "m1".into(),
                }),
            ),
            (
                LeavingMember {
                    member_id: String::new(),
                    group_instance_id: Some("i".into()),
                },
                Ok(()),
            ),
        ])
    }

    #[test]
    fn single_member_below_v3() {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(wire_str("g")))
            .with_member_id(wire_str("m1"))
            .with_members(vec![
                MemberIdentity::default().with_member_id(wire_str("x")),
            ]);
        let v2 = domain_request(request.clone(), 2);
        assert_eq!(v2.members.len(), 1);
        assert_eq!(v2.members[0].member_id, "m1");
        let v3 = domain_request(request, 3);
        assert_eq!(v3.members[0].member_id, "x");
        assert_eq!(response(left(), 2).error_code, 25);
        let v3 = response(left(), 3);
        assert_eq!(v3.error_code, 0);
        assert_eq!(
            v3.members.iter().map(|m| m.error_code).collect::<Vec<_>>(),
            vec![25, 0]
        );
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=5 {
            for left in [left(), Err(GroupError::NotCoordinator)] {
                encode_response(
                    ApiKey::LeaveGroup,
                    version,
                    1,
                    &ResponseKind::LeaveGroup(response(left, version)),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
