//! Metadata (key 3): brokers, topics, partitions and their leaders.
//!
//! Answers from the broker's applied image (partitions listed here have
//! their logs open). Requested topics that do not exist are created first
//! when the request allows it (v4+ `allow_auto_topic_creation`, always before
//! v4) and the broker has `auto.create.topics.enable`.

use std::collections::BTreeSet;

use fjord_broker::{AclOperation, MetadataImage, TopicImage};
use fjord_types::NO_BROKER;
use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{
    authorized_operations, broker_endpoint, is_internal_topic, is_valid_topic_name,
    topic_id_from_wire, wire_name, wire_topic_id,
};
use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

/// A topic the client asked about, by name or (v10+) by id.
#[derive(Debug, PartialEq)]
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.api_version;
    let listener = ctx.listener();
    let topic_operations_asked = version >= 8 && request.include_topic_authorized_operations;
    // Asked here up to v10; DescribeCluster answers it from then on.
    let cluster_operations =
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            authorized_operations::cluster(ctx, svc)
        } else {
            authorized_operations::OMITTED
        };
    let wanted = wanted_topics(request.topics, version);

    let mut image = svc.metadata.image();
    let topics: Vec<MetadataResponseTopic> = match wanted {
        // Every topic: those the principal may not describe are left out.
        None => image
            .topics
            .values()
            .filter(|t| ctx.authorized_topic(svc, AclOperation::Describe, &t.name))
            .map(|t| topic_entry(&image, t, listener, version))
            .collect(),
        Some(wanted) => {
            let allow_create =
                request.allow_auto_topic_creation && svc.admin.auto_create_topics_enable();
            let missing: Vec<&str> = wanted
                .iter()
                .filter_map(|w| match w {
                    // Internal topics are created by their coordinators with
                    // their own settings, never by a client's Metadata request.
                    Wanted::Name(name)
                        if is_valid_topic_name(name)
                            && !is_internal_topic(name)
                            && !image.topic_ids.contains_key(name)
                            && ctx.authorized_topic(svc, AclOperation::Describe, name) =>
                    {
                        Some(name.as_str())
                    }
                    _ => None,
                })
                .collect();
            let mut create_errors = Vec::new();
            // Creating needs CREATE on the cluster or on the topic (Kafka's
            // `handleTopicMetadataRequest`); the others are answered
            // TOPIC_AUTHORIZATION_FAILED.
            let missing: Vec<&str> = if allow_create
                && !ctx.authorized_cluster(svc, AclOperation::Create)
            {
                missing
                    .into_iter()
                    .filter(|name| {
                        let ok = ctx.authorized_topic(svc, AclOperation::Create, name);
                        if !ok {
                            create_errors
                                .push((name.to_string(), ResponseError::TopicAuthorizationFailed));
                        }
                        ok
                    })
                    .collect()
            } else {
                missing
            };
            if allow_create && !missing.is_empty() {
                let results =
                    join_all(missing.iter().map(|name| svc.admin.auto_create_topic(name))).await;
                for (name, result) in missing.iter().zip(results) {
                    if let Err(err) = result {
                        tracing::debug!(topic = %name, %err, "auto-create from Metadata failed");
                        create_errors.push((name.to_string(), admin_error(&err)));
                    }
                }
                image = svc.metadata.image();
            }
            wanted
                .iter()
                .map(|w| match w {
                    Wanted::Name(name) => {
                        if !ctx.authorized_topic(svc, AclOperation::Describe, name) {
                            error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::TopicAuthorizationFailed,
                                version,
                            )
                        } else if !is_valid_topic_name(name) {
                            error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::InvalidTopicException,
                                version,
                            )
                        } else if let Some(topic) = image.topic_by_name(name) {
                            topic_entry(&image, topic, listener, version)
                        } else {
                            let error = create_errors
                                .iter()
                                .find(|(n, _)| n == name)
                                .map_or(ResponseError::UnknownTopicOrPartition, |(_, e)| *e);
                            error_entry(Some(name), Uuid::nil(), error, version)
                        }
                    }
                    Wanted::Id(id) => match image.topics.get(&topic_id_from_wire(*id)) {
                        Some(topic)
                            if !id.is_nil()
                                && !ctx.authorized_topic(
                                    svc,
                                    AclOperation::Describe,
                                    &topic.name,
                                ) =>
                        {
                            error_entry(None, *id, ResponseError::TopicAuthorizationFailed, version)
                        }
                        Some(topic) if !id.is_nil() => {
                            topic_entry(&image, topic, listener, version)
                        }
                        _ => error_entry(None, *id, ResponseError::UnknownTopicId, version),
                    },
                })
                .collect()
        }
    };

    let brokers = live_brokers(&image, listener);
    let controller_id = svc
        .controller_id()
        .filter(|id| brokers.iter().any(|b| b.node_id.0 == *id))
        .unwrap_or_else(|| svc.node_id());
    let topics = topics
        .into_iter()
        .map(|t| {
            let operations = if t.error_code == 0 && topic_operations_asked {
                let name = t.name.as_deref().map_or("", |n| n.as_str());
                authorized_operations::topic(ctx, svc, name)
            } else {
                authorized_operations::OMITTED
            };
            t.with_topic_authorized_operations(operations)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(BrokerId(controller_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_operations)
}

/// The topics a request asks about, duplicates dropped; `None` for every
/// topic (a null list, or an empty one at v0, which has no null).
///
/// Kafka looks topics up by id as soon as one entry has a non-zero id (v10+;
/// the Java client sends name "" beside it, not null) and then ignores the
/// entries without one.
fn wanted_topics(topics: Option<Vec<MetadataRequestTopic>>, version: i16) -> Option<Vec<Wanted>> {
    let topics = topics?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    let by_id = topics.iter().any(|t| !t.topic_id.is_nil());
    let mut seen = BTreeSet::new();
    let mut wanted = Vec::with_capacity(topics.len());
    for topic in topics {
        let entry = match topic.name {
            Some(name) if !by_id => Wanted::Name(name.0.to_string()),
            _ if by_id && topic.topic_id.is_nil() => continue,
            _ => Wanted::Id(topic.topic_id),
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

/// Unfenced registered brokers with an endpoint on `listener`, with that
/// endpoint (Kafka leaves brokers without the listener out).
fn live_brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = broker_endpoint(image, b.broker_id, listener)?;
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

/// A topic's partitions as a client connected to `listener` sees them.
fn topic_entry(
    image: &MetadataImage,
    topic: &TopicImage,
    listener: &str,
    version: i16,
) -> MetadataResponseTopic {
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let (leader, error) = if p.leader == NO_BROKER {
                (NO_BROKER, ResponseError::LeaderNotAvailable.code())
            } else if leader_lacks_listener(image, p.leader, listener) {
                // Kafka: a leader without this listener is no leader to this
                // client; LISTENER_NOT_FOUND from v6 names the misconfiguration.
                let error = if version >= 6 {
                    ResponseError::ListenerNotFound
                } else {
                    ResponseError::LeaderNotAvailable
                };
                (NO_BROKER, error.code())
            } else {
                (p.leader, 0)
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(leader))
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

/// A registered broker that advertises no endpoint under `listener`.
fn leader_lacks_listener(image: &MetadataImage, leader: i32, listener: &str) -> bool {
    image
        .brokers
        .get(&leader)
        .is_some_and(|b| !b.listeners.iter().any(|l| l.name == listener))
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
            std::sync::Arc::new(TopicImage {
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
            }),
        );
        image
    }

    #[test]
    fn topic_entry_reports_leaders_replicas_and_offline() {
        let image = image();
        let topic = image.topic_by_name("orders").expect("topic");
        let entry = topic_entry(&image, topic, "PLAINTEXT", 13);
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
    fn topics_are_wanted_by_id_whenever_an_id_is_set() {
        let id = Uuid::new_v4();
        let topic = |name: Option<&str>, id: Uuid| {
            MetadataRequestTopic::default()
                .with_name(name.map(wire_name))
                .with_topic_id(id)
        };
        let name = |n: &str| Wanted::Name(n.into());
        // The Java client's describeTopics(ofTopicIds): name "" beside the id.
        assert_eq!(
            wanted_topics(Some(vec![topic(Some(""), id), topic(None, id)]), 12),
            Some(vec![Wanted::Id(id)])
        );
        // Entries without an id are ignored once one has an id, as Kafka does.
        assert_eq!(
            wanted_topics(
                Some(vec![topic(Some("orders"), Uuid::nil()), topic(None, id)]),
                13
            ),
            Some(vec![Wanted::Id(id)])
        );
        assert_eq!(
            wanted_topics(
                Some(vec![
                    topic(Some("orders"), Uuid::nil()),
                    topic(Some("orders"), Uuid::nil()),
                    topic(Some("x"), Uuid::nil())
                ]),
                13
            ),
            Some(vec![name("orders"), name("x")])
        );
        // A null name without an id: looked up by the zero id, UNKNOWN_TOPIC_ID.
        assert_eq!(
            wanted_topics(Some(vec![topic(None, Uuid::nil())]), 12),
            Some(vec![Wanted::Id(Uuid::nil())])
        );
        assert_eq!(wanted_topics(None, 12), None);
        assert_eq!(wanted_topics(Some(vec![]), 0), None);
        assert_eq!(wanted_topics(Some(vec![]), 1), Some(vec![]));
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
                    topic_entry(&image, topic, "PLAINTEXT", version),
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

    /// Broker 1 has INTERNAL and EXTERNAL listeners, broker 2 only INTERNAL.
    fn two_listener_image() -> MetadataImage {
        use fjord_broker::{BrokerRegistration, Listener};
        let mut image = image();
        let listener = |name: &str, host: &str, port| Listener {
            name: name.into(),
            host: host.into(),
            port,
        };
        for (id, listeners) in [
            (
                1,
                vec![
                    listener("INTERNAL", "fjord-1", 9092),
                    listener("EXTERNAL", "localhost", 29091),
                ],
            ),
            (2, vec![listener("INTERNAL", "fjord-2", 9092)]),
        ] {
            image.brokers.insert(
                id,
                BrokerRegistration {
                    broker_id: id,
                    incarnation_id: Uuid::new_v4(),
                    broker_epoch: 1,
                    listeners,
                    rack: None,
                    fenced: false,
                },
            );
        }
        let orders = image.topic_ids["orders"];
        if let Some(topic) = image.topics.get_mut(&orders).map(std::sync::Arc::make_mut) {
            topic.partitions[1].leader = 2;
            topic.partitions[1].isr = vec![2];
        }
        image
    }

    #[test]
    fn brokers_and_leaders_are_answered_per_listener() {
        let image = two_listener_image();
        let endpoints = |listener| {
            live_brokers(&image, listener)
                .into_iter()
                .map(|b| (b.node_id.0, b.host.to_string(), b.port))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            endpoints("INTERNAL"),
            vec![
                (1, "fjord-1".to_string(), 9092),
                (2, "fjord-2".to_string(), 9092)
            ]
        );
        // Broker 2 has no EXTERNAL listener: left out, as Kafka does.
        assert_eq!(
            endpoints("EXTERNAL"),
            vec![(1, "localhost".to_string(), 29091)]
        );

        let topic = image.topic_by_name("orders").expect("topic");
        let leaders = |listener, version| {
            topic_entry(&image, topic, listener, version)
                .partitions
                .iter()
                .map(|p| (p.leader_id.0, p.error_code))
                .collect::<Vec<_>>()
        };
        assert_eq!(leaders("INTERNAL", 12), vec![(1, 0), (2, 0)]);
        // Partition 1's leader cannot be reached on EXTERNAL.
        assert_eq!(leaders("EXTERNAL", 12), vec![(1, 0), (NO_BROKER, 72)]);
        assert_eq!(leaders("EXTERNAL", 5), vec![(1, 0), (NO_BROKER, 5)]);
    }
}
