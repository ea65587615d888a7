//! DeleteTopics (key 20): delete topics by name (v1-6) or by id (v6).

use futures::future::join_all;
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

    let results = join_all(targets.into_iter().map(|target| async move {
        match target {
            Target::Name(name) => match svc.admin.delete_topic(&name).await {
                Ok(id) => (Some(name), wire_topic_id(id), Ok(())),
                Err(err) => (Some(name), Uuid::nil(), Err(err)),
            },
            Target::Id(id) => match svc.admin.delete_topic_id(topic_id_from_wire(id)).await {
                Ok(name) => (Some(name), id, Ok(())),
                Err(err) => (None, id, Err(err)),
            },
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
                Err(err) => {
                    tracing::debug!(%err, "delete topic failed");
                    entry
                        .with_error_code(admin_error(&err).code())
                        .with_error_message(Some(StrBytes::from_string(admin_error_message(&err))))
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
