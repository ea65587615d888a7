//! [`RaftStatus`]: what a node's health and metrics endpoints report about
//! its controller, read from openraft's metrics without waiting.

use fjord_types::BrokerId;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use crate::controller::Controller;
use crate::types::broker_id_of;

/// The local Raft node's view of the quorum at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    /// The leader this node follows (or is); `None` during an election.
    pub leader: Option<BrokerId>,
    /// This node is the active controller.
    pub is_leader: bool,
    pub term: u64,
    /// Raft log index of the last entry applied to the metadata image.
    pub last_applied: Option<u64>,
    /// Raft log index this node knows to be committed.
    pub committed: Option<u64>,
    /// The Raft node stopped on a fatal error.
    pub failed: bool,
}

impl RaftStatus {
    /// Whether everything this node knows to be committed is applied.
    pub fn caught_up(&self) -> bool {
        self.last_applied >= self.committed
    }
}

impl Controller {
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.raft().metrics();
        let m = metrics.borrow_watched();
        let leader = m.current_leader.and_then(broker_id_of);
        RaftStatus {
            leader,
            is_leader: m.state == ServerState::Leader && leader == Some(self.node_id()),
            term: m.current_term,
            last_applied: m.last_applied.as_ref().map(|id| id.index()),
            committed: m.local_committed.as_ref().map(|id| id.index()),
            failed: m.running_state.is_err(),
        }
    }
}
