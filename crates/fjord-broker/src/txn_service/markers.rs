//! Writing the markers the transaction coordinator decided (Kafka's
//! WriteTxnMarkers, one partition at a time): for partitions this broker
//! leads, through [`ReplicaManager::append_txn_marker`]; for partitions
//! another broker leads, over the inter-node gRPC (`ReplicaService`'s
//! `WriteTxnMarkers`, at the leader's replication listener), whose leader
//! calls the same `append_txn_marker`
//! ([`Broker::serve_write_txn_markers`]).
//!
//! Outcomes as Kafka's `TransactionMarkerRequestCompletionHandler`: a
//! refused producer or coordinator epoch ends the sending (a newer
//! producer or coordinator owns the transaction); a partition whose topic
//! is gone counts as marked; anything else (no leader, leader moved,
//! unreachable, too few replicas, timeout) is retried by the coordinator.

use std::sync::Arc;
use std::time::Duration;

use fjord_coordinator::CONSUMER_OFFSETS;
use fjord_coordinator::runtime::{MarkerError, MarkerSender, MarkerWrite};
use fjord_coordinator::txn::TransactionResult;
use fjord_log::control::TxnResult;
use fjord_rpc::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use fjord_types::{BrokerId, TopicPartition};
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;

use super::peers::{PeerError, Peers};
use crate::broker::Broker;
use crate::error::PartitionError;
use crate::group_service::GroupCoordinatorAdapter;
use crate::internal_topics::partition_leader;
use crate::replica_manager::ReplicaManager;

/// Why a marker for a partition another broker leads was not written.
#[derive(Debug, thiserror::Error)]
pub enum RemoteMarkerError {
    /// The partition has no leader right now.
    #[error("no leader")]
    NoLeader,
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("broker {leader}: WriteTxnMarkers failed")]
    Rpc {
        leader: BrokerId,
        #[source]
        source: tonic::Status,
    },
    /// The leader refused the marker with this Kafka error code.
    #[error("broker {leader} answered error code {code}")]
    Refused { leader: BrokerId, code: i16 },
}

/// Writes markers on the partitions this broker leads, for its own
/// transaction coordinator, for another broker's (gRPC) and for
/// WriteTxnMarkers from a client (Admin `abortTransaction`): the marker
/// is appended as leader and committed, then, in `__consumer_offsets`,
/// the group coordinator settles the producer's pending offsets (Kafka's
/// `onTransactionCompleted` after the marker's append).
pub struct LocalMarkerWriter {
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) groups: Arc<GroupCoordinatorAdapter>,
}

/// One marker to write on a partition led here.
#[derive(Clone, Debug)]
pub struct MarkerAppend {
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub result: TxnResult,
    /// How long to wait for the marker to be committed.
    pub timeout: Duration,
}

impl LocalMarkerWriter {
    pub async fn write(&self, marker: MarkerAppend) -> Result<(), PartitionError> {
        self.replicas
            .append_txn_marker(
                &marker.tp,
                marker.producer_id,
                marker.producer_epoch,
                marker.coordinator_epoch,
                marker.result,
                marker.timeout,
            )
            .await?;
        if marker.tp.topic == CONSUMER_OFFSETS {
            let result = match marker.result {
                TxnResult::Commit => TransactionResult::Commit,
                TxnResult::Abort => TransactionResult::Abort,
            };
            self.groups
                .complete_txn(marker.tp.partition, marker.producer_id, result)
                .await;
        }
        Ok(())
    }
}

/// Writes markers on partition leaders: this broker's own partitions
/// directly, others' over gRPC.
pub struct ReplicaMarkerSender {
    pub(crate) node_id: BrokerId,
    pub(crate) local: Arc<LocalMarkerWriter>,
    pub(crate) peers: Arc<Peers>,
}

impl MarkerSender for ReplicaMarkerSender {
    fn write_marker(&self, marker: MarkerWrite) -> BoxFuture<'_, Result<(), MarkerError>> {
        Box::pin(async move {
            let image = self.peers.metadata.image();
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
            let Some(leader) = partition_leader(&image, &tp.topic, tp.partition) else {
                return Err(MarkerError::Retriable {
                    tp,
                    source: Arc::new(RemoteMarkerError::NoLeader),
                });
            };
            if leader != self.node_id {
                return self.write_remote(leader, marker).await;
            }
            let result = if marker.result == TransactionResult::Commit {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            };
            self.local
                .write(MarkerAppend {
                    tp: tp.clone(),
                    producer_id: marker.producer_id,
                    producer_epoch: marker.producer_epoch,
                    coordinator_epoch: marker.coordinator_epoch,
                    result,
                    timeout: marker.timeout,
                })
                .await
                .map_err(|err| marker_error(tp, err))
        })
    }
}

impl ReplicaMarkerSender {
    /// WriteTxnMarkers to `leader` over gRPC.
    async fn write_remote(&self, leader: BrokerId, marker: MarkerWrite) -> Result<(), MarkerError> {
        let tp = marker.tp.clone();
        let retriable = |source: RemoteMarkerError| MarkerError::Retriable {
            tp: tp.clone(),
            source: Arc::new(source),
        };
        let mut client = self.peers.client(leader).map_err(|e| retriable(e.into()))?;
        let request = WriteTxnMarkersRequest {
            topic: tp.topic.clone(),
            partition: tp.partition,
            producer_id: marker.producer_id,
            producer_epoch: i32::from(marker.producer_epoch),
            coordinator_epoch: marker.coordinator_epoch,
            commit: marker.result == TransactionResult::Commit,
            timeout_ms: u32::try_from(marker.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let code = match client.write_txn_markers(request).await {
            Ok(reply) => i16::try_from(reply.into_inner().error_code).unwrap_or(-1),
            Err(source) => return Err(retriable(RemoteMarkerError::Rpc { leader, source })),
        };
        if code == 0 {
            return Ok(());
        }
        let fenced = [
            ResponseError::InvalidProducerEpoch.code(),
            ResponseError::TransactionCoordinatorFenced.code(),
        ];
        if fenced.contains(&code) {
            return Err(MarkerError::Fenced { tp });
        }
        Err(retriable(RemoteMarkerError::Refused { leader, code }))
    }
}

impl Broker {
    /// WriteTxnMarkers from another broker's transaction coordinator: write
    /// the marker as leader and answer once it is committed.
    pub(crate) async fn serve_write_txn_markers(
        &self,
        req: WriteTxnMarkersRequest,
    ) -> WriteTxnMarkersResponse {
        let tp = TopicPartition::new(req.topic, req.partition);
        let result = if req.commit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let written = match i16::try_from(req.producer_epoch) {
            Ok(producer_epoch) => self
                .markers
                .write(MarkerAppend {
                    tp,
                    producer_id: req.producer_id,
                    producer_epoch,
                    coordinator_epoch: req.coordinator_epoch,
                    result,
                    timeout: Duration::from_millis(u64::from(req.timeout_ms)),
                })
                .await
                .map_err(|err| marker_error_code(&err)),
            Err(_) => Err(ResponseError::InvalidRequest.code()),
        };
        WriteTxnMarkersResponse {
            error_code: i32::from(written.err().unwrap_or(0)),
        }
    }
}

/// The Kafka error code of a marker the leader refused (Kafka's
/// WriteTxnMarkers answers per partition).
pub fn marker_error_code(err: &PartitionError) -> i16 {
    let error = match err {
        PartitionError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        PartitionError::TransactionCoordinatorFenced(_) => {
            ResponseError::TransactionCoordinatorFenced
        }
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::NotLeaderOrFollower { .. }
        | PartitionError::FencedLeaderEpoch { .. }
        | PartitionError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::RequestTimedOut => ResponseError::RequestTimedOut,
        _ => ResponseError::KafkaStorageError,
    };
    error.code()
}

/// Kafka's `TransactionMarkerRequestCompletionHandler`: a newer producer
/// or coordinator epoch ends the sending; anything else is retried.
fn marker_error(tp: TopicPartition, err: PartitionError) -> MarkerError {
    match err {
        PartitionError::InvalidProducerEpoch(_)
        | PartitionError::TransactionCoordinatorFenced(_) => MarkerError::Fenced { tp },
        other => MarkerError::Retriable {
            tp,
            source: Arc::new(other),
        },
    }
}
