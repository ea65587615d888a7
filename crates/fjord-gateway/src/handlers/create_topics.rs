//! CreateTopics (key 19): create topics (or, with validate_only, check them).
//!
//! The gateway refuses what Kafka refuses before the controller sees it
//! (duplicate names in one request, bad names, null config values, explicit
//! assignments mixed with counts or with gaps); the broker validates and
//! places the rest.

use fjord_broker::AclOperation;
use std::collections::{BTreeMap, HashMap};

use fjord_broker::{AdminError, CreatedTopic, NewTopic};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{is_valid_topic_name, wire_topic_id};
use crate::context::RequestContext;
use crate::error_code::{admin_error, admin_error_message};
use crate::services::Services;

/// A topic refused by the gateway itself, with Kafka's code and message.
type Refusal = (ResponseError, String);

/// One request entry on its way to the response.
struct Outcome {
    name: TopicName,
    refusal: Option<Refusal>,
    result: Option<Result<CreatedTopic, AdminError>>,
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = ctx.api_version;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.0.to_string()).or_default() += 1;
    }
    let mut outcomes = Vec::with_capacity(request.topics.len());
    let mut to_create = Vec::new();
    // CREATE on the cluster allows every topic; otherwise CREATE on each
    // (Kafka's `handleCreateTopicsRequest`).
    let cluster_create = ctx.authorized_cluster(svc, AclOperation::Create);
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let refusal = if !cluster_create && !ctx.authorized_topic(svc, AclOperation::Create, &name)
        {
            let error = ResponseError::TopicAuthorizationFailed;
            Some((error, error.to_string()))
        } else if counts.get(&name).copied().unwrap_or(0) > 1 {
            Some((
                ResponseError::InvalidRequest,
                format!("topic {name} appears more than once in the request"),
            ))
        } else {
            None
        };
        let wire = topic.name.clone();
        let refusal = match refusal.map_or_else(|| new_topic(topic), Err) {
            Ok(new) => {
                to_create.push(new);
                None
            }
            Err(refusal) => Some(refusal),
        };
        outcomes.push(Outcome {
            name: wire,
            refusal,
            result: None,
        });
    }

    let mut created: HashMap<String, Result<CreatedTopic, AdminError>> = svc
        .admin
        .create_topics(to_create, request.validate_only)
        .await
        .into_iter()
        .collect();
    for outcome in outcomes.iter_mut() {
        outcome.result = created.remove(outcome.name.as_str());
    }

    let topics = outcomes
        .into_iter()
        .map(
            |Outcome {
                 name,
                 refusal,
                 result,
             }| {
                let base = CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_message(None);
                match (refusal, result) {
                    (Some((error, message)), _) => base
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(message))),
                    (None, Some(Ok(created))) => success(base, created, version),
                    (None, Some(Err(err))) => {
                        tracing::debug!(%err, "create topic failed");
                        base.with_error_code(admin_error(&err).code())
                            .with_error_message(Some(StrBytes::from_string(admin_error_message(
                                &err,
                            ))))
                    }
                    (None, None) => base.with_error_code(ResponseError::UnknownServerError.code()),
                }
            },
        )
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn success(
    base: CreatableTopicResult,
    created: CreatedTopic,
    version: i16,
) -> CreatableTopicResult {
    let base = base.with_topic_id(wire_topic_id(created.topic_id));
    if version < 5 {
        // The counts and configs exist from v5; older versions refuse them.
        return base.with_configs(None);
    }
    let configs = created
        .configs
        .into_iter()
        .map(|c| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(c.name))
                .with_value((!c.sensitive).then(|| StrBytes::from_string(c.value)))
                .with_read_only(c.read_only)
                .with_config_source(c.source.code())
                .with_is_sensitive(c.sensitive)
        })
        .collect();
    base.with_num_partitions(created.num_partitions)
        .with_replication_factor(created.replication_factor)
        .with_configs(Some(configs))
}

/// Translate one request entry, or refuse it as Kafka would.
fn new_topic(topic: CreatableTopic) -> Result<NewTopic, Refusal> {
    let name = topic.name.0.to_string();
    if !is_valid_topic_name(&name) {
        return Err((
            ResponseError::InvalidTopicException,
            format!("topic name {name:?} is illegal: use 1 to 249 of [a-zA-Z0-9._-], not . or .."),
        ));
    }
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        let key = config.name.to_string();
        match config.value {
            Some(value) => {
                configs.insert(key, value.to_string());
            }
            None => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("null value not supported for topic config {key}"),
                ));
            }
        }
    }
    let mut assignments = Vec::new();
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "both num_partitions/replication_factor and replica assignments were set".into(),
            ));
        }
        let mut by_index: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .into_iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.into_iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        by_index.sort_by_key(|(index, _)| *index);
        for (expected, (index, replicas)) in by_index.into_iter().enumerate() {
            if usize::try_from(index).ok() != Some(expected) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    "partitions must be numbered consecutively from 0".into(),
                ));
            }
            assignments.push(replicas);
        }
    }
    Ok(NewTopic {
        name,
        num_partitions: topic.num_partitions,
        replication_factor: topic.replication_factor,
        assignments,
        configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_broker::{ConfigEntry, ConfigSource, ConfigType};
    use fjord_types::TopicId;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind};

    use crate::frame::encode_response;
    use crate::handlers::wire_name;

    #[test]
    fn refuses_what_kafka_refuses() {
        let bad_name = CreatableTopic::default().with_name(wire_name("a b"));
        assert_eq!(
            new_topic(bad_name).err().map(|r| r.0),
            Some(ResponseError::InvalidTopicException)
        );

        let null_config = CreatableTopic::default()
            .with_name(wire_name("t"))
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name("retention.ms".into())
                    .with_value(None),
            ]);
        assert_eq!(
            new_topic(null_config).err().map(|r| r.0),
            Some(ResponseError::InvalidConfig)
        );

        let gap = CreatableTopic::default()
            .with_name(wire_name("t"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1)]),
                CreatableReplicaAssignment::default()
                    .with_partition_index(2)
                    .with_broker_ids(vec![BrokerId(1)]),
            ]);
        assert_eq!(
            new_topic(gap).err().map(|r| r.0),
            Some(ResponseError::InvalidReplicaAssignment)
        );

        let ok = CreatableTopic::default()
            .with_name(wire_name("t"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(1)
                    .with_broker_ids(vec![BrokerId(2)]),
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1)]),
            ]);
        let new = new_topic(ok).expect("valid");
        assert_eq!(new.assignments, vec![vec![1], vec![2]]);
    }

    #[test]
    fn responses_encode_at_every_version() {
        for version in 2..=7 {
            let created = CreatedTopic {
                topic_id: TopicId::random(),
                num_partitions: 3,
                replication_factor: 1,
                configs: vec![ConfigEntry {
                    name: "retention.ms".into(),
                    value: "1000".into(),
                    source: ConfigSource::DynamicTopic,
                    read_only: false,
                    sensitive: false,
                    config_type: ConfigType::Long,
                    documentation: "",
                    synonyms: Vec::new(),
                }],
            };
            let base = CreatableTopicResult::default()
                .with_name(wire_name("t"))
                .with_error_message(None);
            let response = CreateTopicsResponse::default().with_topics(vec![
                success(base.clone(), created, version),
                base.with_error_code(36)
                    .with_error_message(Some("exists".into())),
            ]);
            encode_response(
                ApiKey::CreateTopics,
                version,
                1,
                &ResponseKind::CreateTopics(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
