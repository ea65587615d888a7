//! Controller-to-controller networking: a placeholder until the gRPC transport lands.
//!
//! [`UnreachableNetworkFactory`] answers every RPC to every peer with `Unreachable`, so
//! openraft backs off instead of spinning. A single-voter quorum never sends RPCs, so it
//! is fully functional with this network; a multi-voter quorum would never elect a
//! leader, which is why [`Controller::start`](crate::Controller::start) refuses
//! multi-voter configurations for now.
//!
//! The seam for the real transport: implement [`openraft::RaftNetworkFactory`] for
//! [`TypeConfig`] with `SnapshotData =` [`SnapshotData`] (snapshot bytes), pass it to
//! [`Controller::start_with_network`](crate::Controller::start_with_network), and on the
//! receiving side call `append_entries` / `vote` / `install_full_snapshot` on
//! [`Controller::raft`](crate::Controller::raft).

use std::future::Future;

use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::alias::SnapshotOf;
use openraft::alias::VoteOf;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;

use crate::types::ControllerNode;
use crate::types::NodeId;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Why a peer could not be reached: there is no transport yet.
#[derive(Debug, thiserror::Error)]
#[error("no controller network transport yet: cannot reach node {target} at {rpc_addr:?}")]
pub struct NoTransport {
    pub target: NodeId,
    pub rpc_addr: String,
}

/// Hands out [`UnreachableNetwork`] clients.
#[derive(Clone, Debug, Default)]
pub struct UnreachableNetworkFactory;

impl RaftNetworkFactory<TypeConfig> for UnreachableNetworkFactory {
    type Network = UnreachableNetwork;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> Self::Network {
        UnreachableNetwork {
            target,
            rpc_addr: node.rpc_addr.clone(),
        }
    }
}

/// A "connection" to a peer that fails every RPC with `Unreachable`.
#[derive(Clone, Debug)]
pub struct UnreachableNetwork {
    target: NodeId,
    rpc_addr: String,
}

impl UnreachableNetwork {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::new(&NoTransport {
            target: self.target,
            rpc_addr: self.rpc_addr.clone(),
        })
    }
}

impl RaftNetworkV2<TypeConfig> for UnreachableNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    /// Overridden because the default grants every pre-vote.
    async fn pre_vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TypeConfig>,
        _snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
