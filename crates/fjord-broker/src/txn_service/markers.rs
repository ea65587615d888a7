//! Writing the markers the transaction coordinator decided
//! (WriteTxnMarkers' per-partition write): for partitions this broker
//! leads, through [`ReplicaManager::append_txn_marker`].
//!
//! Partitions led by another broker are not marked yet: their markers
//! fail with [`RemoteLeader`] and the coordinator retries them until the
//! leader moves here or its shard unloads. What is missing is the
//! inter-node WriteTxnMarkers RPC (fjord-rpc), served by the leader with
//! the same `append_txn_marker`.

use std::sync::Arc;

use fjord_coordinator::runtime::{MarkerError, MarkerSender, MarkerWrite};
use fjord_coordinator::txn::TransactionResult;
use fjord_log::control::TxnResult;
use fjord_types::BrokerId;
use futures::future::BoxFuture;

use crate::error::PartitionError;
use crate::internal_topics::partition_leader;
use crate::metadata_cache::MetadataCache;
use crate::replica_manager::ReplicaManager;

/// A marker for a partition led by another broker (or by none right now).
#[derive(Debug, thiserror::Error)]
#[error(
    "the leader of the partition is {leader:?}, not this broker: remote markers are not sent yet"
)]
pub struct RemoteLeader {
    pub leader: Option<BrokerId>,
}

/// Writes markers to the partitions this broker leads.
pub struct ReplicaMarkerSender {
    pub(crate) node_id: BrokerId,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) metadata: MetadataCache,
}

impl MarkerSender for ReplicaMarkerSender {
    fn write_marker(&self, marker: MarkerWrite) -> BoxFuture<'_, Result<(), MarkerError>> {
        Box::pin(async move {
            let image = self.metadata.image();
            let tp = marker.tp.clone();
            let Some(topic) = image
                .topic_ids
                .get(&tp.topic)
                .and_then(|id| image.topics.get(id))
            else {
                return Err(MarkerError::PartitionGone { tp });
            };
            if usize::try_from(tp.partition).map_or(true, |p| p >= topic.partitions.len()) {
                return Err(MarkerError::PartitionGone { tp });
            }
            let leader = partition_leader(&image, &tp.topic, tp.partition);
            if leader != Some(self.node_id) {
                return Err(MarkerError::Retriable {
                    tp,
                    source: Arc::new(RemoteLeader { leader }),
                });
            }
            let result = match marker.result {
                TransactionResult::Commit => TxnResult::Commit,
                TransactionResult::Abort => TxnResult::Abort,
            };
            self.replicas
                .append_txn_marker(
                    &tp,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.coordinator_epoch,
                    result,
                    marker.timeout,
                )
                .await
                .map_err(|err| marker_error(tp, err))
        })
    }
}

/// Kafka's `TransactionMarkerRequestCompletionHandler`: a newer producer
/// or coordinator epoch ends the sending; anything else is retried.
fn marker_error(tp: fjord_types::TopicPartition, err: PartitionError) -> MarkerError {
    match err {
        PartitionError::InvalidProducerEpoch(_)
        | PartitionError::TransactionCoordinatorFenced(_) => MarkerError::Fenced { tp },
        other => MarkerError::Retriable {
            tp,
            source: Arc::new(other),
        },
    }
}
