//! Metadata (key 3): brokers, topics, partitions and their leaders.
//!
//! Answers from the broker's applied image (partitions listed here have
//! their logs open). Requested topics that do not exist are created first
//! when the request allows it (v4+ `allow_auto_topic_creation`, always before
//! v4) and the broker has `auto.create.topics.enable`.

use std::collections::BTreeSet;

use fjord_broker::{Broker, MetadataImage, TopicImage};
use fjord_types::NO_BROKER;
use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{
    broker_endpoint, is_internal_topic, is_valid_topic_name, topic_id_from_wire, wire_name,
    wire_topic_id,
};
use crate::error_code::admin_error;

/// A topic the client asked about, by name or (v10+) by id.
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub(crate) async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let wanted = match request.topics {
        None => None,
        // v0 has no null: an empty list means every topic.
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => {
            let mut seen = BTreeSet::new();
            let mut wanted = Vec::with_capacity(topics.len());
            for topic in topics {
                let entry = match topic.name {
                    Some(name) => Wanted::Name(name.0.to_string()),
                    None => Wanted::Id(topic.topic_id),
                };
                let key = match &entry {
                    Wanted::Name(name) => format!("n:{name}"),
                    Wanted::Id(id) => format!("i:{id}"),
                };
                if seen.insert(key) {
                    wanted.push(entry);
                }
            }
            Some(wanted)
        }
    };

    let mut image = broker.metadata();
    let topics = match wanted {
        None => image
            .topics
            .values()
            .map(|t| topic_entry(&image, t))
            .collect(),
        Some(wanted) => {
            let allow_create =
                request.allow_auto_topic_creation && broker.config().auto_create_topics_enable;
            let missing: Vec<&str> = wanted
                .iter()
                .filter_map(|w| match w {
                    // Internal topics are created by their coordinators with
                    // their own settings, never by a client's Metadata request.
                    Wanted::Name(name)
                        if is_valid_topic_name(name)
                            && !is_internal_topic(name)
                            && !image.topic_ids.contains_key(name) =>
                    {
                        Some(name.as_str())
                    }
                    _ => None,
                })
                .collect();
            let mut create_errors = Vec::new();
            if allow_create && !missing.is_empty() {
                let results =
                    join_all(missing.iter().map(|name| broker.auto_create_topic(name))).await;
                for (name, result) in missing.iter().zip(results) {
                    if let Err(err) = result {
                        tracing::debug!(topic = %name, %err, "auto-create from Metadata failed");
                        create_errors.push((name.to_string(), admin_error(&err)));
                    }
                }
                image = broker.metadata();
            }
            wanted
                .iter()
                .map(|w| match w {
                    Wanted::Name(name) => {
                        if !is_valid_topic_name(name) {
                            error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::InvalidTopicException,
                                version,
                            )
                        } else if let Some(topic) = image.topic_by_name(name) {
                            topic_entry(&image, topic)
                        } else {
                            let error = create_errors
                                .iter()
                                .find(|(n, _)| n == name)
                                .map_or(ResponseError::UnknownTopicOrPartition, |(_, e)| *e);
                            error_entry(Some(name), Uuid::nil(), error, version)
                        }
                    }
                    Wanted::Id(id) => match image.topics.get(&topic_id_from_wire(*id)) {
                        Some(topic) if !id.is_nil() => topic_entry(&image, topic),
                        _ => error_entry(None, *id, ResponseError::UnknownTopicId, version),
                    },
                })
                .collect()
        }
    };

    let brokers = live_brokers(broker, &image);
    let controller_id = broker
        .controller_id()
        .filter(|id| brokers.iter().any(|b| b.node_id.0 == *id))
        .unwrap_or_else(|| broker.node_id());
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(BrokerId(controller_id))
        .with_topics(topics)
}

/// Unfenced registered brokers, with the endpoint clients should use.
fn live_brokers(broker: &Broker, image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = broker_endpoint(broker, image, b.broker_id)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn error_entry(
    name: Option<&str>,
    topic_id: Uuid,
    error: ResponseError,
    version: i16,
) -> MetadataResponseTopic {
    // Names are nullable only from v12; older versions get "".
    let name = match name {
        Some(name) => Some(wire_name(name)),
        None if version >= 12 => None,
        None => Some(wire_name("")),
    };
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name)
        .with_topic_id(topic_id)
}

fn topic_entry(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let error = if p.leader == NO_BROKER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| !live(r))
                        .copied()
                        .map(BrokerId)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(wire_name(&topic.name)))
        .with_topic_id(wire_topic_id(topic.id))
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_broker::PartitionRegistration;
    use fjord_types::TopicId;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use crate::frame::encode_response;

    fn image() -> MetadataImage {
        let id = TopicId::random();
        let mut image = MetadataImage {
            cluster_id: "test-cluster".into(),
            ..Default::default()
        };
        image.topic_ids.insert("orders".into(), id);
        image.topics.insert(
            id,
            TopicImage {
                id,
                name: "orders".into(),
                partitions: vec![
                    PartitionRegistration {
                        replicas: vec![1, 2],
                        isr: vec![1],
                        leader: 1,
                        leader_epoch: 3,
                        partition_epoch: 4,
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    },
                    PartitionRegistration {
                        replicas: vec![2],
                        isr: vec![],
                        leader: NO_BROKER,
                        leader_epoch: 1,
                        partition_epoch: 1,
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    },
                ],
                configs: Default::default(),
            },
        );
        image
    }

    #[test]
    fn topic_entry_reports_leaders_replicas_and_offline() {
        let image = image();
        let topic = image.topic_by_name("orders").expect("topic");
        let entry = topic_entry(&image, topic);
        assert_eq!(entry.topic_id, topic.id.0);
        assert_eq!(entry.partitions.len(), 2);
        let p0 = &entry.partitions[0];
        assert_eq!((p0.error_code, p0.leader_id.0, p0.leader_epoch), (0, 1, 3));
        assert_eq!(p0.replica_nodes, vec![BrokerId(1), BrokerId(2)]);
        // No broker is registered in this image, so every replica is offline.
        assert_eq!(p0.offline_replicas.len(), 2);
        assert_eq!(entry.partitions[1].error_code, 5);
    }

    #[test]
    fn responses_encode_at_every_version() {
        let image = image();
        let topic = image.topic_by_name("orders").expect("topic");
        for version in 0..=13 {
            let response = MetadataResponse::default()
                .with_brokers(vec![
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(StrBytes::from_static_str("localhost"))
                        .with_port(9092)
                        .with_rack(Some(StrBytes::from_static_str("r1"))),
                ])
                .with_cluster_id(Some(StrBytes::from_static_str("c")))
                .with_controller_id(BrokerId(1))
                .with_topics(vec![
                    topic_entry(&image, topic),
                    error_entry(
                        Some("bad name"),
                        Uuid::nil(),
                        ResponseError::InvalidTopicException,
                        version,
                    ),
                    error_entry(None, Uuid::new_v4(), ResponseError::UnknownTopicId, version),
                ]);
            encode_response(
                ApiKey::Metadata,
                version,
                1,
                &ResponseKind::Metadata(response),
                0,
            )
            .unwrap_or_else(|e| panic!("v{version}: {e:?}"));
        }
    }
}
