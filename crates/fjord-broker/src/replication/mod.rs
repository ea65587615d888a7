//! Replication between brokers (Kafka's replica fetch, KIP-101/279/320/497).
//!
//! - Leader side ([`leader`]): the `ReplicaService` gRPC service answers
//!   followers' fetches: fencing by leader epoch, the divergence check, the
//!   follower's position (high watermark, ISR expansion), and batches up to
//!   the log end, long-polling on the partitions' log ends.
//! - Follower side ([`fetcher`]): one fetcher task per leader node, batching
//!   every partition this broker follows from it; appends what it gets (as
//!   the leader wrote it), truncates where the leader says the logs diverge.
//! - Unreachable peers ([`reporter`]): a fetch that fails at the transport
//!   level (follower side) and an ISR follower that stopped fetching (leader
//!   side) are reported to the controller at once, which may fence a dead
//!   broker long before its broker session expires.
//! - ISR changes ([`isr`]): expansions found by follower fetches and shrinks
//!   found by a periodic check go to the controller as AlterPartition, at
//!   most one in flight per partition; they take effect when committed.
//!
//! Followers find a leader's gRPC address in the metadata image: the broker
//! registration's listener named [`REPLICATION_LISTENER`](crate::REPLICATION_LISTENER).

mod fetcher;
pub(crate) use fetcher::replication_address;
mod isr;
mod leader;
mod reporter;

use std::sync::Arc;

use fjord_rpc::replica_service_server::{ReplicaService, ReplicaServiceServer};
use fjord_rpc::{
    ReplicaFetchRequest, ReplicaFetchResponse, VerifyTxnPartitionsRequest,
    VerifyTxnPartitionsResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::error::PartitionError;

/// The gRPC service followers fetch from, and transaction coordinators
/// write markers through. The node's gRPC server starts
/// before its broker (the controller needs it first), so requests are
/// answered UNAVAILABLE until `broker` holds one.
pub struct ReplicaFetchService {
    broker: watch::Receiver<Option<Arc<Broker>>>,
}

/// The `ReplicaService` server to add to the node's gRPC server.
pub fn replica_service(
    broker: watch::Receiver<Option<Arc<Broker>>>,
) -> ReplicaServiceServer<ReplicaFetchService> {
    ReplicaServiceServer::new(ReplicaFetchService { broker })
}

impl ReplicaFetchService {
    /// The broker, or UNAVAILABLE while it is not started yet.
    fn started(&self) -> Result<Arc<Broker>, Status> {
        self.broker
            .borrow()
            .clone()
            .ok_or_else(|| Status::unavailable("the broker is not started yet"))
    }
}

#[tonic::async_trait]
impl ReplicaService for ReplicaFetchService {
    async fn fetch(
        &self,
        request: Request<ReplicaFetchRequest>,
    ) -> Result<Response<ReplicaFetchResponse>, Status> {
        let broker = self.started()?;
        Ok(Response::new(
            broker.serve_replica_fetch(request.into_inner()).await,
        ))
    }

    async fn write_txn_markers(
        &self,
        request: Request<WriteTxnMarkersRequest>,
    ) -> Result<Response<WriteTxnMarkersResponse>, Status> {
        let broker = self.started()?;
        Ok(Response::new(
            broker.serve_write_txn_markers(request.into_inner()).await,
        ))
    }

    async fn verify_txn_partitions(
        &self,
        request: Request<VerifyTxnPartitionsRequest>,
    ) -> Result<Response<VerifyTxnPartitionsResponse>, Status> {
        let broker = self.started()?;
        Ok(Response::new(
            broker
                .serve_verify_txn_partitions(request.into_inner())
                .await,
        ))
    }
}

/// The Kafka error code a follower gets for a failed partition.
fn error_code(err: &PartitionError) -> i32 {
    let error = match err {
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::NotLeaderOrFollower { .. } | PartitionError::ShuttingDown => {
            ResponseError::NotLeaderOrFollower
        }
        PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        PartitionError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        PartitionError::CorruptMessage(_) => ResponseError::CorruptMessage,
        _ => ResponseError::KafkaStorageError,
    };
    i32::from(error.code())
}

#[cfg(test)]
mod delete_records_tests;
#[cfg(test)]
mod tests;
