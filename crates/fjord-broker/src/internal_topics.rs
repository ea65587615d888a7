//! The coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`): created on first use with exactly their
//! configured replication factor, and the leader of one of their
//! partitions (the coordinator of a group or transactional id).

use std::sync::Arc;

use fjord_controller::MetadataImage;
use fjord_types::BrokerId;

use crate::admin::AdminService;
use crate::types::NewTopic;

/// Why an internal topic is not there yet; callers answer
/// COORDINATOR_NOT_AVAILABLE (retriable) either way.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InternalTopicError {
    /// Fewer unfenced brokers than the topic's replication factor: Kafka
    /// never creates it with fewer replicas.
    #[error("{live_brokers} live brokers, fewer than replication factor {replication_factor}")]
    TooFewBrokers {
        live_brokers: usize,
        replication_factor: i16,
    },
    #[error("cannot create the topic")]
    Create(#[source] crate::AdminError),
    #[error("the controller did not answer the creation")]
    NoAnswer,
}

/// Create `topic` unless it exists (seen in `image`).
pub(crate) async fn ensure_internal_topic(
    admin: &AdminService,
    image: &MetadataImage,
    topic: NewTopic,
) -> Result<(), InternalTopicError> {
    if image.topic_ids.contains_key(&topic.name) {
        return Ok(());
    }
    let live_brokers = image.brokers.values().filter(|b| !b.fenced).count();
    if live_brokers < usize::try_from(topic.replication_factor).unwrap_or(0) {
        return Err(InternalTopicError::TooFewBrokers {
            live_brokers,
            replication_factor: topic.replication_factor,
        });
    }
    let name = topic.name.clone();
    match admin.create_topics(vec![topic], false).await.pop() {
        Some((_, Ok(_))) | Some((_, Err(crate::AdminError::TopicAlreadyExists))) => Ok(()),
        Some((_, Err(err))) => {
            tracing::warn!(%err, "cannot create {name}");
            Err(InternalTopicError::Create(err))
        }
        None => Err(InternalTopicError::NoAnswer),
    }
}

/// The leader of `topic`'s `partition`, if it has one.
pub(crate) fn partition_leader(
    image: &Arc<MetadataImage>,
    topic: &str,
    partition: i32,
) -> Option<BrokerId> {
    image
        .topic_ids
        .get(topic)
        .and_then(|id| image.topics.get(id))
        .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        .map(|p| p.leader)
        .filter(|leader| *leader >= 0)
}
