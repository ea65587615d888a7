//! The controller-to-controller Raft transport over gRPC (`ControllerService` in
//! `proto/fjord.proto`).
//!
//! openraft's messages travel as serde_json inside a `Json` message (small, low-rate,
//! already serde types); a full snapshot travels as one `Snapshot` message with the
//! image bytes raw. One lazily connected tonic [`Channel`] per peer address is shared by
//! every replication stream to that peer and by write forwarding ([`Peers`]).
//!
//! Error mapping: any failure to get an answer (connection refused, reset, a peer whose
//! Raft stopped) is `Unreachable`, so openraft backs off instead of spinning; a reply
//! that does not come within the RPC's time budget is `Timeout`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use fjord_rpc::Json;
use fjord_rpc::controller_service_client::ControllerServiceClient;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::alias::SnapshotOf;
use openraft::alias::VoteOf;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RPCTypes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::types::ControllerNode;
use crate::types::NodeId;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// How long establishing a TCP + HTTP/2 connection to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest gRPC message either side accepts: a full snapshot is one message, so
/// this bounds the metadata image size (tonic's 4 MiB default would be far too small).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Why a peer RPC got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("invalid controller rpc address {addr:?}")]
    InvalidAddr {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("rpc to {addr} failed")]
    Rpc {
        addr: String,
        /// Boxed: a `Status` is large, and this error travels in `Result`s everywhere.
        #[source]
        source: Box<tonic::Status>,
    },
    #[error("encode a message for {addr}")]
    Encode {
        addr: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("decode the reply of {addr}")]
    Decode {
        addr: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Channels to peers by `host:port`, created on first use and then shared.
///
/// A tonic [`Channel`] reconnects by itself, so one per address lives for the whole
/// process; the lock is held only to look one up, never across an await.
#[derive(Clone)]
pub(crate) struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    tls: Arc<fjord_rpc::PeerTls>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    pub(crate) fn new(tls: fjord_rpc::PeerTls) -> Self {
        Peers {
            channels: Arc::default(),
            tls: Arc::new(tls),
        }
    }

    /// A client for the controller service at `addr` (`host:port`).
    pub(crate) fn client(&self, addr: &str) -> Result<ControllerServiceClient<Channel>, PeerError> {
        let channel = {
            let mut channels = self
                .channels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match channels.get(addr) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = self
                        .tls
                        .endpoint(addr)
                        .map_err(|source| PeerError::InvalidAddr {
                            addr: addr.to_owned(),
                            source,
                        })?
                        .connect_timeout(CONNECT_TIMEOUT)
                        .tcp_nodelay(true)
                        .connect_lazy();
                    channels.insert(addr.to_owned(), channel.clone());
                    channel
                }
            }
        };
        Ok(ControllerServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Hands out [`GrpcNetwork`] clients to openraft, one per replication stream; they share
/// the per-peer channels.
#[derive(Clone, Debug)]
pub struct GrpcNetworkFactory {
    node_id: NodeId,
    peers: Peers,
}

impl GrpcNetworkFactory {
    pub(crate) fn new(node_id: NodeId, peers: Peers) -> Self {
        GrpcNetworkFactory { node_id, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> Self::Network {
        GrpcNetwork {
            from: self.node_id,
            target,
            addr: node.rpc_addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// openraft's view of one peer.
#[derive(Clone, Debug)]
pub struct GrpcNetwork {
    from: NodeId,
    target: NodeId,
    addr: String,
    peers: Peers,
}

#[derive(Clone, Copy)]
enum JsonRpc {
    AppendEntries,
    Vote,
    PreVote,
}

impl GrpcNetwork {
    fn unreachable(&self, e: PeerError) -> Unreachable<TypeConfig> {
        tracing::debug!(target_node = self.target, error = %e, "controller peer unreachable");
        Unreachable::new(&e)
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.from,
            target: self.target,
            timeout,
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Bytes, PeerError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|source| PeerError::Encode {
                addr: self.addr.clone(),
                source,
            })
    }

    /// One unary JSON RPC within `option`'s hard TTL.
    async fn json_call<Req, Resp>(
        &self,
        rpc: JsonRpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let action = match rpc {
            JsonRpc::AppendEntries => RPCTypes::AppendEntries,
            JsonRpc::Vote | JsonRpc::PreVote => RPCTypes::Vote,
        };
        let msg = Json {
            json: self.encode(req).map_err(|e| self.unreachable(e))?,
        };
        let mut client = self
            .peers
            .client(&self.addr)
            .map_err(|e| self.unreachable(e))?;
        let ttl = option.hard_ttl();
        let call = async {
            match rpc {
                JsonRpc::AppendEntries => client.append_entries(msg).await,
                JsonRpc::Vote => client.vote(msg).await,
                JsonRpc::PreVote => client.pre_vote(msg).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, call).await {
            Err(_elapsed) => return Err(RPCError::Timeout(self.timeout(action, ttl))),
            Ok(Err(status)) => {
                return Err(RPCError::Unreachable(self.unreachable(PeerError::Rpc {
                    addr: self.addr.clone(),
                    source: Box::new(status),
                })));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        serde_json::from_slice(&reply.json).map_err(|source| {
            RPCError::Unreachable(self.unreachable(PeerError::Decode {
                addr: self.addr.clone(),
                source,
            }))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::AppendEntries, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::Vote, &rpc, &option).await
    }

    /// Overridden because the default grants every pre-vote, which would defeat its
    /// purpose (a rejoining node must not disrupt a healthy leader).
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::PreVote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let encoded = self
            .encode(&vote)
            .and_then(|vote_json| Ok((vote_json, self.encode(&snapshot.meta)?)));
        let (vote_json, meta_json) = encoded.map_err(|e| self.unreachable(e))?;
        let msg = fjord_rpc::Snapshot {
            vote_json,
            meta_json,
            data: Bytes::from(snapshot.snapshot.into_inner()),
        };
        let mut client = self
            .peers
            .client(&self.addr)
            .map_err(|e| self.unreachable(e))?;
        let ttl = option.hard_ttl();
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = tokio::time::timeout(ttl, client.install_snapshot(msg)) => reply,
        };
        let reply = match reply {
            Err(_elapsed) => {
                return Err(StreamingError::Timeout(
                    self.timeout(RPCTypes::InstallSnapshot, ttl),
                ));
            }
            Ok(Err(status)) => {
                return Err(StreamingError::Unreachable(self.unreachable(
                    PeerError::Rpc {
                        addr: self.addr.clone(),
                        source: Box::new(status),
                    },
                )));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        serde_json::from_slice(&reply.json).map_err(|source| {
            StreamingError::Unreachable(self.unreachable(PeerError::Decode {
                addr: self.addr.clone(),
                source,
            }))
        })
    }
}
