//! CreatePartitions (key 37): grow topics to a new partition count.

use std::collections::HashMap;

use fjord_broker::AclOperation;
use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.0.to_string()).or_default() += 1;
    }
    let validate_only = request.validate_only;
    let results = join_all(request.topics.into_iter().map(|topic| {
        let duplicate = counts.get(topic.name.as_str()).copied().unwrap_or(0) > 1;
        async move {
            let entry = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            // ALTER on the topic (Kafka's `handleCreatePartitionsRequest`).
            if !ctx.authorized_topic(svc, AclOperation::Alter, topic.name.as_str()) {
                let error = ResponseError::TopicAuthorizationFailed;
                return entry
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string())));
            }
            if duplicate {
                return entry
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "topic appears more than once in the request",
                    )));
            }
            let assignments: Vec<Vec<i32>> = topic
                .assignments
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                .collect();
            match svc
                .admin
                .create_partitions(topic.name.as_str(), topic.count, assignments, validate_only)
                .await
            {
                Ok(()) => entry,
                Err(err) => {
                    tracing::debug!(topic = %topic.name.as_str(), %err, "create partitions failed");
                    entry
                        .with_error_code(admin_error(&err).code())
                        .with_error_message(Some(StrBytes::from_string(admin_error_message(&err))))
                }
            }
        }
    }))
    .await;
    CreatePartitionsResponse::default().with_results(results)
}
