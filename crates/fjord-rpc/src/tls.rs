//! Mutual TLS between nodes: the one place that knows whether a peer is
//! dialled over `http://` or `https://` with this node's certificate.
//!
//! Both sides verify: a node serves only peers whose certificate chains to
//! the cluster CA, and dials only peers whose certificate does and names
//! the host it dialled (a SAN for the advertised rpc host).

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// This node's certificate chain, its key and the cluster CA, PEM; or
/// nothing (plaintext, the default). Kept as bytes so configs compare.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTls {
    pem: Option<PeerPem>,
}

#[derive(Clone, PartialEq, Eq)]
struct PeerPem {
    chain: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl std::fmt::Debug for PeerPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("PeerPem").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Plaintext gRPC.
    pub fn plaintext() -> Self {
        PeerTls::default()
    }

    /// Mutual TLS with `chain` and `key` as this node's identity and `ca`
    /// the cluster CA.
    pub fn mutual(chain: Vec<u8>, key: Vec<u8>, ca: Vec<u8>) -> Self {
        PeerTls {
            pem: Some(PeerPem { chain, key, ca }),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.pem.is_some()
    }

    /// An endpoint for a peer at `host:port`.
    pub fn endpoint(&self, host_port: &str) -> Result<Endpoint, tonic::transport::Error> {
        match &self.pem {
            None => Endpoint::from_shared(format!("http://{host_port}")),
            Some(pem) => Endpoint::from_shared(format!("https://{host_port}"))?.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&pem.ca))
                    .identity(Identity::from_pem(&pem.chain, &pem.key)),
            ),
        }
    }

    /// The server side: `None` for plaintext; else this node's identity,
    /// requiring a client certificate from the cluster CA.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        let pem = self.pem.as_ref()?;
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&pem.chain, &pem.key))
                .client_ca_root(Certificate::from_pem(&pem.ca)),
        )
    }
}
