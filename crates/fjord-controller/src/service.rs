//! The receiving side of `ControllerService`: Raft RPCs from peers go into the local
//! Raft node; writes, heartbeats and learner joins are served only by the leader (a
//! follower answers `not_leader` with the leader it knows, and the caller retries
//! there; it never forwards again, so requests cannot loop).

use std::io::Cursor;

use fjord_rpc::AddLearnerReply;
use fjord_rpc::AddLearnerRequest;
use fjord_rpc::HeartbeatReply;
use fjord_rpc::HeartbeatRequest;
use fjord_rpc::Json;
use fjord_rpc::Snapshot;
use fjord_rpc::UnreachableReply;
use fjord_rpc::UnreachableReport;
use fjord_rpc::WriteReply;
use fjord_rpc::WriteRequest;
use fjord_rpc::add_learner_reply;
use fjord_rpc::controller_service_server::ControllerService;
use fjord_rpc::heartbeat_reply;
use fjord_rpc::unreachable_reply;
use fjord_rpc::write_reply;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::VoteOf;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::VoteRequest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::command::MetadataCommand;
use crate::controller::Controller;
use crate::controller::ControllerError;
use crate::controller::error_chain;
use crate::liveness::Heartbeat;
use crate::liveness::UnreachableReport as Report;
use crate::types::TypeConfig;

/// `ControllerService` over one [`Controller`]; get it (wrapped in its tonic server)
/// from [`Controller::rpc_service`].
#[derive(Clone, Debug)]
pub struct ControllerRpc {
    controller: Controller,
}

impl ControllerRpc {
    pub(crate) fn new(controller: Controller) -> Self {
        ControllerRpc { controller }
    }
}

fn decode<T: DeserializeOwned>(what: &str, json: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(json)
        .map_err(|e| Status::invalid_argument(format!("decode {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Json, Status> {
    serde_json::to_vec(value)
        .map(|json| Json { json: json.into() })
        .map_err(|e| Status::internal(format!("encode reply: {e}")))
}

/// The local Raft stopped: the peer sees the node as unreachable and backs off.
fn raft_stopped(e: &dyn std::error::Error) -> Status {
    Status::unavailable(error_chain(e))
}

fn not_leader_hint(leader: Option<fjord_types::BrokerId>) -> i32 {
    leader.unwrap_or(-1)
}

#[tonic::async_trait]
impl ControllerService for ControllerRpc {
    async fn append_entries(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode("AppendEntriesRequest", &request.get_ref().json)?;
        let resp = self
            .controller
            .raft()
            .append_entries(rpc)
            .await
            .map_err(|e| raft_stopped(&e))?;
        encode(&resp).map(Response::new)
    }

    async fn vote(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode("VoteRequest", &request.get_ref().json)?;
        let resp = self
            .controller
            .raft()
            .vote(rpc)
            .await
            .map_err(|e| raft_stopped(&e))?;
        encode(&resp).map(Response::new)
    }

    async fn pre_vote(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode("VoteRequest", &request.get_ref().json)?;
        let resp = self
            .controller
            .raft()
            .pre_vote(rpc)
            .await
            .map_err(|e| raft_stopped(&e))?;
        encode(&resp).map(Response::new)
    }

    async fn install_snapshot(&self, request: Request<Snapshot>) -> Result<Response<Json>, Status> {
        let msg = request.into_inner();
        let vote: VoteOf<TypeConfig> = decode("snapshot vote", &msg.vote_json)?;
        let meta: SnapshotMetaOf<TypeConfig> = decode("snapshot meta", &msg.meta_json)?;
        let snapshot = openraft::Snapshot {
            meta,
            snapshot: Cursor::new(Vec::from(msg.data)),
        };
        let resp = self
            .controller
            .raft()
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| raft_stopped(&e))?;
        encode(&resp).map(Response::new)
    }

    async fn write(&self, request: Request<WriteRequest>) -> Result<Response<WriteReply>, Status> {
        let cmd: MetadataCommand = decode("MetadataCommand", &request.get_ref().command_json)?;
        let outcome = match self.controller.write_local(cmd).await {
            Ok(resp) => match serde_json::to_vec(&resp) {
                Ok(json) => write_reply::Outcome::ResponseJson(json.into()),
                Err(e) => write_reply::Outcome::Failed(format!("encode response: {e}")),
            },
            Err(ControllerError::NotLeader { leader }) => {
                write_reply::Outcome::NotLeader(not_leader_hint(leader))
            }
            Err(ControllerError::WriteOutcomeUnknown { leader }) => {
                write_reply::Outcome::OutcomeUnknown(not_leader_hint(leader))
            }
            Err(e) => write_reply::Outcome::Failed(error_chain(&e)),
        };
        Ok(Response::new(WriteReply {
            outcome: Some(outcome),
        }))
    }

    async fn broker_heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let req = request.into_inner();
        let hb = Heartbeat {
            broker_id: req.broker_id,
            broker_epoch: req.broker_epoch,
            metadata_offset: req.metadata_offset,
            want_shut_down: req.want_shut_down,
        };
        let outcome = match self.controller.heartbeat_local(hb).await {
            Ok(state) => heartbeat_reply::Outcome::State(fjord_rpc::HeartbeatState {
                fenced: state.fenced,
                shutdown_ready: state.shutdown_ready,
                stale_broker_epoch: state.stale_broker_epoch,
            }),
            Err(ControllerError::NotLeader { leader }) => {
                heartbeat_reply::Outcome::NotLeader(not_leader_hint(leader))
            }
            Err(e) => heartbeat_reply::Outcome::Failed(error_chain(&e)),
        };
        Ok(Response::new(HeartbeatReply {
            outcome: Some(outcome),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<AddLearnerReply>, Status> {
        let req = request.into_inner();
        let outcome = match self
            .controller
            .add_learner_local(req.node_id, req.rpc_addr)
            .await
        {
            Ok(()) => add_learner_reply::Outcome::Added(true),
            Err(ControllerError::NotLeader { leader }) => {
                add_learner_reply::Outcome::NotLeader(not_leader_hint(leader))
            }
            Err(e) => add_learner_reply::Outcome::Failed(error_chain(&e)),
        };
        Ok(Response::new(AddLearnerReply {
            outcome: Some(outcome),
        }))
    }

    async fn report_unreachable(
        &self,
        request: Request<UnreachableReport>,
    ) -> Result<Response<UnreachableReply>, Status> {
        let req = request.into_inner();
        let report = Report {
            reporter_id: req.reporter_id,
            reporter_epoch: req.reporter_epoch,
            broker_id: req.broker_id,
            broker_epoch: req.broker_epoch,
        };
        let outcome = match self.controller.report_unreachable_local(report).await {
            Ok(()) => unreachable_reply::Outcome::Accepted(true),
            Err(ControllerError::NotLeader { leader }) => {
                unreachable_reply::Outcome::NotLeader(not_leader_hint(leader))
            }
            Err(e) => unreachable_reply::Outcome::Failed(error_chain(&e)),
        };
        Ok(Response::new(UnreachableReply {
            outcome: Some(outcome),
        }))
    }
}
