//! The openraft type configuration of the controller quorum.

use std::io::Cursor;

use fjord_types::BrokerId;
use serde::Deserialize;
use serde::Serialize;

use crate::command::MetadataCommand;
use crate::command::MetadataResponse;

/// A Raft node id: Kafka's `node.id` as `u64` (node ids are never negative).
pub type NodeId = u64;

/// What the quorum knows about a voter: where its controller RPC listens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    /// `host:port` of the node's controller RPC endpoint (gRPC, next issue).
    pub rpc_addr: String,
}

openraft::declare_raft_types!(
    /// Raft types of the metadata quorum.
    pub TypeConfig:
        D = MetadataCommand,
        R = MetadataResponse,
        NodeId = u64,
        Node = ControllerNode,
);

/// A snapshot's bytes in memory: the JSON of a [`MetadataImage`](crate::MetadataImage).
///
/// Both the state machine and the network use this type, so a network implementation
/// can ship snapshots as plain bytes.
pub type SnapshotData = Cursor<Vec<u8>>;

/// The controller's Raft handle.
pub type ControllerRaft = openraft::Raft<TypeConfig, crate::state_machine::MetadataStateMachine>;

/// Convert a Kafka node id to a Raft node id; `None` for negative ids.
pub fn node_id_of(broker_id: BrokerId) -> Option<NodeId> {
    u64::try_from(broker_id).ok()
}

/// Convert a Raft node id back to a Kafka node id; `None` if it does not fit.
pub fn broker_id_of(node_id: NodeId) -> Option<BrokerId> {
    BrokerId::try_from(node_id).ok()
}
