//! JoinGroup (key 11): join (or rejoin) a classic group; parked by the
//! broker until the join phase completes.
//!
//! v0 has no rebalance timeout (the session timeout stands in, as in
//! Kafka); v4+ require a known member id (KIP-394); v5+ carry static
//! instance ids; v7+ answer the protocol type; v9 answers
//! `skip_assignment` (KIP-814), and below v9 the leader of such an answer
//! gets no members. For protocol type `consumer` each protocol's metadata is
//! decoded as a `ConsumerProtocolSubscription` (by the broker's
//! `group::codec`, the reader replay uses too) so the coordinator knows the
//! subscribed topics.

use fjord_broker::AclOperation;
use fjord_coordinator::group::{
    self, CONSUMER_PROTOCOL_TYPE, GroupError, JoinGroupResult, MemberProtocol, RequestToken, codec,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::group_error;
use crate::services::Services;

/// Who sent the request (from the header and the connection).
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

impl Client {
    fn of(ctx: &RequestContext) -> Self {
        Client {
            client_id: ctx.client_id().to_string(),
            client_host: super::client_host(ctx.peer()),
        }
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = ctx.api_version;
    // READ on the group (Kafka's `handleJoinGroupRequest`).
    if !ctx.authorized_group(svc, AclOperation::Read, &request.group_id.0) {
        let error = ResponseError::GroupAuthorizationFailed;
        return JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
            .with_member_id(request.member_id);
    }
    let client = Client::of(ctx);
    let member_id = request.member_id.to_string();
    let req = domain_request(request, version, client);
    let result = svc.groups.join_group(req).await;
    response(result, &member_id, version)
}

fn domain_request(
    request: JoinGroupRequest,
    version: i16,
    client: Client,
) -> group::JoinGroupRequest {
    let protocol_type = request.protocol_type.to_string();
    let is_consumer = protocol_type == CONSUMER_PROTOCOL_TYPE;
    let protocols = request
        .protocols
        .into_iter()
        .map(|p| MemberProtocol {
            name: p.name.to_string(),
            topics: if is_consumer {
                codec::subscription_topics(&p.metadata)
            } else {
                None
            },
            metadata: p.metadata,
        })
        .collect();
    group::JoinGroupRequest {
        token: RequestToken(0),
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: client.client_id,
        client_host: client.client_host,
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type,
        protocols,
        require_known_member_id: version >= 4,
    }
}

fn response(
    result: Result<JoinGroupResult, GroupError>,
    request_member_id: &str,
    version: i16,
) -> JoinGroupResponse {
    // Below v7 the protocol name is a non-nullable string.
    let name = |n: Option<String>| match n {
        Some(n) => Some(wire_str(n)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    match result {
        Ok(joined) => {
            let members = if joined.skip_assignment && version < 9 {
                Vec::new()
            } else {
                joined
                    .members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(wire_str(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(wire_str))
                            .with_metadata(m.metadata)
                    })
                    .collect()
            };
            JoinGroupResponse::default()
                .with_generation_id(joined.generation_id)
                .with_protocol_type(joined.protocol_type.map(wire_str))
                .with_protocol_name(name(joined.protocol_name))
                .with_leader(wire_str(joined.leader))
                .with_skip_assignment(joined.skip_assignment && version >= 9)
                .with_member_id(wire_str(joined.member_id))
                .with_members(members)
        }
        Err(err) => {
            tracing::debug!(%err, "JoinGroup failed");
            let member_id = match &err {
                GroupError::MemberIdRequired { member_id } => member_id.clone(),
                _ => request_member_id.to_string(),
            };
            JoinGroupResponse::default()
                .with_error_code(group_error(&err).code())
                .with_generation_id(-1)
                .with_protocol_type(None)
                .with_protocol_name(name(None))
                .with_leader(StrBytes::default())
                .with_member_id(wire_str(member_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use bytes::{BufMut, Bytes, BytesMut};
    use fjord_coordinator::group::JoinedMember;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{ApiKey, ConsumerProtocolSubscription, GroupId, ResponseKind};
    use kafka_protocol::protocol::Encodable;

    use crate::frame::encode_response;

    fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let sub = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| wire_str(*t)).collect());
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        sub.encode(&mut buf, version.min(3)).expect("encode");
        buf.freeze()
    }

    fn joined(skip_assignment: bool) -> JoinGroupResult {
        JoinGroupResult {
            member_id: "m1".into(),
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "m1".into(),
            skip_assignment,
            members: vec![JoinedMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                metadata: Bytes::from_static(b"x"),
            }],
        }
    }

    #[test]
    fn decodes_consumer_subscriptions() {
        for version in 0..=5 {
            let topics = codec::subscription_topics(&subscription(version, &["b", "a"]));
            assert_eq!(
                topics,
                Some(BTreeSet::from(["a".to_string(), "b".to_string()])),
                "v{version}"
            );
        }
        assert_eq!(
            codec::subscription_topics(&Bytes::from_static(b"\x00")),
            None
        );
        assert_eq!(
            codec::subscription_topics(&Bytes::from_static(b"\xff\xff")),
            None
        );
        assert_eq!(
            codec::subscription_topics(&Bytes::from_static(b"\x00\x00\x00\x05")),
            None
        );
    }

    #[test]
    fn translates_requests() {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(wire_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(60_000)
            .with_protocol_type(wire_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(wire_str("range"))
                    .with_metadata(subscription(1, &["t"])),
            ]);
        let client = || Client {
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        };
        let v0 = domain_request(request.clone(), 0, client());
        assert_eq!(v0.rebalance_timeout_ms, 10_000);
        assert!(!v0.require_known_member_id);
        let v4 = domain_request(request.clone(), 4, client());
        assert_eq!(v4.rebalance_timeout_ms, 60_000);
        assert!(v4.require_known_member_id);
        assert_eq!(
            v4.protocols[0].topics,
            Some(BTreeSet::from(["t".to_string()]))
        );
        assert_eq!(v4.client_host, "/127.0.0.1");
        let other = domain_request(request.with_protocol_type(wire_str("connect")), 4, client());
        assert_eq!(other.protocols[0].topics, None);
    }

    #[test]
    fn skip_assignment_drops_members_below_v9() {
        let v8 = response(Ok(joined(true)), "", 8);
        assert!(v8.members.is_empty());
        assert!(!v8.skip_assignment);
        let v9 = response(Ok(joined(true)), "", 9);
        assert_eq!(v9.members.len(), 1);
        assert!(v9.skip_assignment);
        let required = response(
            Err(GroupError::MemberIdRequired {
                member_id: "new".into(),
            }),
            "",
            4,
        );
        assert_eq!(required.error_code, 79);
        assert_eq!(required.member_id.as_str(), "new");
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 0..=9 {
            for result in [
                Ok(joined(false)),
                Ok(joined(true)),
                Err(GroupError::RebalanceInProgress),
            ] {
                let response = response(result, "m", version);
                encode_response(
                    ApiKey::JoinGroup,
                    version,
                    1,
                    &ResponseKind::JoinGroup(response),
                    0,
                )
                .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
            }
        }
    }
}
