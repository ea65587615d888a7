//! DeleteTopics (key 20): delete topics by name (v1-6) or by id (v6).

use fjord_broker::{AclOperation, AdminError};
use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{topic_id_from_wire, wire_name, wire_topic_id};
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

enum Target {
    Name(String),
    Id(Uuid),
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = ctx.api_version;
    let targets: Vec<Target> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => Target::Name(name.0.to_string()),
                None => Target::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| Target::Name(n.0.to_string()))
            .collect()
    };

    // DELETE on each topic; a topic given by id is looked up first, so an
    // unknown id stays UNKNOWN_TOPIC_ID (Kafka's `handleDeleteTopicsRequest`).
    let image = svc.metadata.image();
    let refused = |name: &str| !ctx.authorized_topic(svc, AclOperation::Delete, name);
    let denied = || {
        let error = ResponseError::TopicAuthorizationFailed;
        Err((error, error.to_string()))
    };
    let failed = |err: AdminError| {
        tracing::debug!(%err, "delete topic failed");
        Err((admin_error(&err), admin_error_message(&err)))
    };
    let results = join_all(targets.into_iter().map(|target| {
        let by_id = match &target {
            Target::Id(id) => image
                .topics
                .get(&topic_id_from_wire(*id))
                .map(|t| t.name.clone()),
            Target::Name(_) => None,
        };
        async move {
            match target {
                Target::Name(name) if refused(&name) => (Some(name), Uuid::nil(), denied()),
                Target::Name(name) => match svc.admin.delete_topic(&name).await {
                    Ok(id) => (Some(name), wire_topic_id(id), Ok(())),
                    Err(err) => (Some(name), Uuid::nil(), failed(err)),
                },
                Target::Id(id) if by_id.as_deref().is_some_and(refused) => (None, id, denied()),
                Target::Id(id) => match svc.admin.delete_topic_id(topic_id_from_wire(id)).await {
                    Ok(name) => (Some(name), id, Ok(())),
                    Err(err) => (None, id, failed(err)),
                },
            }
        }
    }))
    .await;

    let responses = results
        .into_iter()
        .map(|(name, topic_id, result)| {
            // Names are nullable only in v6; earlier versions get "".
            let name = match name {
                Some(name) => Some(wire_name(&name)),
                None if version >= 6 => None,
                None => Some(wire_name("")),
            };
            let entry = DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(topic_id);
            match result {
                Ok(()) => entry,
                Err((error, message)) => entry
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
