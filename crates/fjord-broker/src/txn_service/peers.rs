//! gRPC clients of the other brokers' `ReplicaService` for the transaction
//! coordinator's calls between nodes (markers to partition leaders,
//! verifications to coordinators): one lazy channel per address, reused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use fjord_rpc::replica_service_client::ReplicaServiceClient;
use fjord_types::BrokerId;
use tonic::transport::Channel;

use crate::metadata_cache::MetadataCache;
use crate::replication::replication_address;

/// Why another broker cannot be called.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The broker registered no replication listener.
    #[error("broker {node} has no replication listener")]
    NoAddress { node: BrokerId },
    #[error("broker {node}: bad replication address {address}")]
    BadAddress {
        node: BrokerId,
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
}

pub(crate) struct Peers {
    pub(crate) metadata: MetadataCache,
    clients: Mutex<HashMap<String, ReplicaServiceClient<Channel>>>,
    tls: fjord_rpc::PeerTls,
}

impl Peers {
    pub(crate) fn new(metadata: MetadataCache, tls: fjord_rpc::PeerTls) -> Self {
        Peers {
            metadata,
            clients: Mutex::default(),
            tls,
        }
    }

    /// The client of `node`'s `ReplicaService` at its registered
    /// replication address (connecting on first use).
    pub(crate) fn client(
        &self,
        node: BrokerId,
    ) -> Result<ReplicaServiceClient<Channel>, PeerError> {
        let address = replication_address(&self.metadata.image(), node)
            .ok_or(PeerError::NoAddress { node })?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&address) {
            return Ok(client.clone());
        }
        let channel = self
            .tls
            .endpoint(&address)
            .map_err(|source| PeerError::BadAddress {
                node,
                address: address.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = ReplicaServiceClient::new(channel);
        clients.insert(address, client.clone());
        Ok(client)
    }
}
