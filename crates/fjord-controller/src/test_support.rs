//! Images for the leadership and reassignment table tests.

use std::collections::BTreeMap;

use fjord_types::{BrokerId, TopicId};
use uuid::Uuid;

use crate::image::{
    BrokerRegistration, Listener, MetadataImage, PartitionRegistration, TopicImage,
};

/// The test topic ("t").
pub(crate) const T: TopicId = TopicId(Uuid::from_u128(7));

/// A partition at leader epoch 5, partition epoch 8, not being reassigned.
pub(crate) fn partition(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    leader: BrokerId,
) -> PartitionRegistration {
    PartitionRegistration {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: 5,
        partition_epoch: 8,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

/// Brokers 1..=4 (broker epoch = 10 * id; those in `fenced` fenced) and topic
/// T with `partitions`.
pub(crate) fn image_with(
    fenced: &[BrokerId],
    partitions: Vec<PartitionRegistration>,
) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=4 {
        image.brokers.insert(
            id,
            BrokerRegistration {
                broker_id: id,
                incarnation_id: Uuid::from_u128(id as u128),
                broker_epoch: i64::from(id) * 10,
                listeners: vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                }],
                rack: None,
                fenced: fenced.contains(&id),
            },
        );
    }
    image.topics.insert(
        T,
        std::sync::Arc::new(TopicImage {
            id: T,
            name: "t".into(),
            partitions,
            configs: BTreeMap::new(),
        }),
    );
    image.topic_ids.insert("t".into(), T);
    image
}

/// An image holding only brokers, each `(id, broker epoch, fenced)`: the
/// liveness and failure-detector tests' fixture.
pub(crate) fn brokers_image(brokers: &[(BrokerId, i64, bool)]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &(broker_id, broker_epoch, fenced) in brokers {
        image.brokers.insert(
            broker_id,
            BrokerRegistration {
                broker_id,
                incarnation_id: Uuid::nil(),
                broker_epoch,
                listeners: Vec::new(),
                rack: None,
                fenced,
            },
        );
    }
    image
}
