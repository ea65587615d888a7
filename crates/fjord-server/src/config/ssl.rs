//! `[ssl]`: the TLS settings of the SSL listeners, Kafka's `ssl.*` broker
//! configs with the dots of the part after `ssl.` as underscores
//! (`ssl.keystore.location` → `[ssl] keystore_location`). PEM files only.
//!
//! `[rpc_ssl]`: mutual TLS for the node-to-node gRPC (Fjord's own; Kafka's
//! inter-broker listener would be an SSL listener). Off unless
//! `keystore_location` is set; then every node presents its certificate and
//! accepts only peers whose certificate the truststore (the cluster CA)
//! vouches for, on both the server and the client side.

use std::path::PathBuf;
use std::time::Duration;

use fjord_gateway::tls::{ClientAuth, PrincipalMapper, TlsConfig, TlsVersion};
use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SslSection {
    /// `ssl.keystore.type`: only `PEM`.
    pub keystore_type: String,
    /// `ssl.keystore.location`: PEM certificate chain, leaf first, and the
    /// private key unless `key_location` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore_location: Option<PathBuf>,
    /// Fjord's: the private key in a PEM file of its own (PKCS#8, PKCS#1 or
    /// SEC1, unencrypted: Kafka's `ssl.key.password` is not supported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_location: Option<PathBuf>,
    /// `ssl.truststore.type`: only `PEM`.
    pub truststore_type: String,
    /// `ssl.truststore.location`: PEM CA certificates for client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truststore_location: Option<PathBuf>,
    /// `ssl.client.auth`: none, requested or required.
    pub client_auth: String,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<String>,
    /// `ssl.cipher.suites`; empty: the TLS library's defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`.
    pub principal_mapping_rules: String,
    /// Fjord's: how often the PEM files' modification times are checked;
    /// a change is loaded for new connections without a restart.
    pub reload_interval_ms: u64,
}

impl Default for SslSection {
    fn default() -> Self {
        SslSection {
            keystore_type: "PEM".into(),
            keystore_location: None,
            key_location: None,
            truststore_type: "PEM".into(),
            truststore_location: None,
            client_auth: "none".into(),
            enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            cipher_suites: Vec::new(),
            principal_mapping_rules: fjord_gateway::tls::DEFAULT_RULES.into(),
            reload_interval_ms: 5000,
        }
    }
}

impl SslSection {
    /// The gateway's TLS settings; `None` when no keystore is configured.
    pub(super) fn tls_config(&self) -> Result<Option<TlsConfig>, ConfigError> {
        for (key, value) in [
            ("ssl.keystore_type", &self.keystore_type),
            ("ssl.truststore_type", &self.truststore_type),
        ] {
            if !value.eq_ignore_ascii_case("PEM") {
                return Err(ConfigError::Invalid {
                    key,
                    value: value.clone(),
                    expected: "store type (only PEM is supported)",
                });
            }
        }
        let client_auth =
            ClientAuth::from_name(&self.client_auth).ok_or_else(|| ConfigError::Invalid {
                key: "ssl.client_auth",
                value: self.client_auth.clone(),
                expected: "client auth (none, requested or required)",
            })?;
        let enabled_protocols = self
            .enabled_protocols
            .iter()
            .map(|p| {
                TlsVersion::from_name(p).ok_or_else(|| ConfigError::Invalid {
                    key: "ssl.enabled_protocols",
                    value: p.clone(),
                    expected: "protocol (TLSv1.2 or TLSv1.3)",
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if enabled_protocols.is_empty() {
            return Err(ConfigError::Invalid {
                key: "ssl.enabled_protocols",
                value: String::new(),
                expected: "non-empty list of TLSv1.2, TLSv1.3",
            });
        }
        let principal_mapper = PrincipalMapper::from_rules(&self.principal_mapping_rules)
            .map_err(ConfigError::SslPrincipalMappingRules)?;
        let Some(keystore_location) = self.keystore_location.clone() else {
            return Ok(None);
        };
        if client_auth != ClientAuth::None && self.truststore_location.is_none() {
            return Err(ConfigError::SslNoTruststore {
                client_auth: self.client_auth.clone(),
            });
        }
        Ok(Some(TlsConfig {
            keystore_location,
            key_location: self.key_location.clone(),
            truststore_location: self.truststore_location.clone(),
            client_auth,
            enabled_protocols,
            cipher_suites: self.cipher_suites.clone(),
            principal_mapper,
            reload_interval: Duration::from_millis(self.reload_interval_ms.max(100)),
        }))
    }
}

/// `[rpc_ssl]`: see the module doc.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSslSection {
    /// This node's certificate chain (and key unless `key_location`), PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore_location: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_location: Option<PathBuf>,
    /// The cluster CA every node's certificate must chain to, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truststore_location: Option<PathBuf>,
}

/// Node-to-node mutual TLS, validated: all three files named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcTls {
    pub keystore_location: PathBuf,
    pub key_location: PathBuf,
    pub truststore_location: PathBuf,
}

impl RpcSslSection {
    pub(super) fn rpc_tls(&self) -> Result<Option<RpcTls>, ConfigError> {
        let Some(keystore_location) = self.keystore_location.clone() else {
            if self.truststore_location.is_some() || self.key_location.is_some() {
                return Err(ConfigError::RpcSslIncomplete);
            }
            return Ok(None);
        };
        let truststore_location = self
            .truststore_location
            .clone()
            .ok_or(ConfigError::RpcSslIncomplete)?;
        Ok(Some(RpcTls {
            key_location: self
                .key_location
                .clone()
                .unwrap_or_else(|| keystore_location.clone()),
            keystore_location,
            truststore_location,
        }))
    }
}
