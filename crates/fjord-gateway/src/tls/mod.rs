//! TLS for SSL listeners (rustls): the server configuration built from PEM
//! files, reloaded when they change, and the principal of a client
//! certificate.
//!
//! Layout: this file (settings, loading, reload), `dn` (a certificate's
//! subject as Kafka prints it), `principal` (`ssl.principal.mapping.rules`).
//!
//! Reload: a task polls the modification times of the keystore, key and
//! truststore files every `reload_interval` and, when one changed, builds a
//! new rustls configuration; connections accepted afterwards use it, those
//! already open keep theirs. A file that does not load keeps the previous
//! configuration and is logged at ERROR (a human has to fix it).

mod dn;
mod principal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::context::KafkaPrincipal;
pub use dn::{MalformedCertificate, subject_dn};
pub use principal::{DEFAULT_RULES, MappingRulesError, NoMatchingRule, PrincipalMapper};

/// Kafka's `ssl.client.auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// A client without a certificate the truststore vouches for is refused.
    Required,
}

impl ClientAuth {
    pub fn from_name(name: &str) -> Option<ClientAuth> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// One of Kafka's `ssl.enabled.protocols` that rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn from_name(name: &str) -> Option<TlsVersion> {
        match name {
            "TLSv1.2" => Some(TlsVersion::Tls12),
            "TLSv1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// The SSL settings of the Kafka listeners (Kafka's `ssl.*`, PEM only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// `ssl.keystore.location` with `ssl.keystore.type=PEM`: the certificate
    /// chain, leaf first, and (unless `key_location` is set) the private key.
    pub keystore_location: PathBuf,
    /// The private key's own PEM file, when it is not in the keystore file.
    pub key_location: Option<PathBuf>,
    /// `ssl.truststore.location`: the CA certificates client certificates
    /// are verified against (needed unless `client_auth` is none).
    pub truststore_location: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<TlsVersion>,
    /// `ssl.cipher.suites`: IANA names; empty means rustls' defaults.
    pub cipher_suites: Vec<String>,
    pub principal_mapper: PrincipalMapper,
    /// How often the PEM files' modification times are polled.
    pub reload_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no private key")]
    NoKey { path: PathBuf },
    #[error("ssl.client.auth is {client_auth:?} but no truststore is configured")]
    NoTruststore { client_auth: ClientAuth },
    #[error("the truststore {path} holds no usable CA certificate")]
    BadTruststore {
        path: PathBuf,
        #[source]
        source: Option<rustls::Error>,
    },
    #[error("ssl.cipher.suites: {name} is not a cipher suite rustls offers")]
    UnknownCipherSuite { name: String },
    #[error("ssl.enabled.protocols and ssl.cipher.suites leave nothing to negotiate")]
    Rustls(#[source] rustls::Error),
    #[error("the client certificate verifier cannot be built")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// What the reload task compares: each file's modification time.
type Stamps = Vec<Option<SystemTime>>;

/// The rustls configuration of the SSL listeners, swapped on reload.
#[derive(Debug)]
pub struct TlsServer {
    config: TlsConfig,
    current: watch::Sender<Arc<rustls::ServerConfig>>,
}

impl TlsServer {
    /// Loads the PEM files: a startup error when they do not load.
    pub fn load(config: TlsConfig) -> Result<Arc<TlsServer>, TlsError> {
        let server = build(&config)?;
        let (current, _) = watch::channel(server);
        Ok(Arc::new(TlsServer { config, current }))
    }

    /// The configuration new connections use.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.borrow().clone()
    }

    /// The principal of a handshaken connection: `User:<mapped subject>`
    /// from the client certificate, `User:ANONYMOUS` without one (Kafka's
    /// `DefaultKafkaPrincipalBuilder`).
    pub(crate) fn principal(
        &self,
        peer_certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<KafkaPrincipal, PrincipalError> {
        let Some(leaf) = peer_certificates.and_then(<[_]>::first) else {
            return Ok(KafkaPrincipal::ANONYMOUS);
        };
        let dn = subject_dn(leaf)?;
        let name = self.config.principal_mapper.name(&dn)?;
        Ok(KafkaPrincipal {
            principal_type: "User".into(),
            name: name.into(),
        })
    }

    fn files(&self) -> Vec<&Path> {
        let c = &self.config;
        std::iter::once(c.keystore_location.as_path())
            .chain(c.key_location.as_deref())
            .chain(c.truststore_location.as_deref())
            .collect()
    }

    fn stamps(&self) -> Stamps {
        self.files()
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Polls the PEM files until `shutdown`; see the module doc.
    pub(crate) async fn reload_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut seen = self.stamps();
        let mut tick = tokio::time::interval(self.config.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            // Reading PEM files is small blocking I/O; keep it off the async workers.
            let config = self.config.clone();
            match tokio::task::spawn_blocking(move || build(&config)).await {
                Ok(Ok(server)) => {
                    self.current.send_replace(server);
                    tracing::info!(
                        keystore = %self.config.keystore_location.display(),
                        "SSL certificates reloaded; new connections use them"
                    );
                }
                Ok(Err(err)) => tracing::error!(
                    error = %error_chain(&err),
                    "SSL certificates changed on disk but do not load; keeping the previous ones"
                ),
                Err(err) => tracing::error!(%err, "SSL certificate reload task failed"),
            }
        }
    }
}

/// Why a verified client certificate yields no principal.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrincipalError {
    #[error(transparent)]
    Malformed(#[from] MalformedCertificate),
    #[error(transparent)]
    NoMatchingRule(#[from] NoMatchingRule),
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        source => TlsError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// The rustls server configuration of `config`, files read now.
fn build(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certs(&config.keystore_location)?;
    let key = read_key(
        config
            .key_location
            .as_deref()
            .unwrap_or(&config.keystore_location),
    )?;
    let mut provider = ring_provider();
    if !config.cipher_suites.is_empty() {
        let mut chosen = Vec::with_capacity(config.cipher_suites.len());
        for name in &config.cipher_suites {
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| suite_matches(s.suite(), name))
                .ok_or_else(|| TlsError::UnknownCipherSuite { name: name.clone() })?;
            chosen.push(*suite);
        }
        provider.cipher_suites = chosen;
    }
    let versions: Vec<_> = config
        .enabled_protocols
        .iter()
        .map(|v| v.rustls())
        .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(TlsError::Rustls)?;
    let builder = match config.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let path = config
                .truststore_location
                .as_deref()
                .ok_or(TlsError::NoTruststore { client_auth: auth })?;
            let mut roots = RootCertStore::empty();
            for ca in read_certs(path)? {
                roots.add(ca).map_err(|source| TlsError::BadTruststore {
                    path: path.to_owned(),
                    source: Some(source),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(ring_provider()),
            );
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(TlsError::Verifier)?)
        }
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    Ok(Arc::new(server))
}

/// rustls' ring provider. Deprecated in rustls 0.23.48 for lacking
/// post-quantum key exchange, which only the aws-lc-rs provider offers;
/// ring keeps the build free of aws-lc's C/cmake step. Revisit when ring
/// gains ML-KEM or the build can afford aws-lc-rs.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Kafka (Java) names TLS 1.3 suites `TLS_AES_128_GCM_SHA256`, rustls
/// `TLS13_AES_128_GCM_SHA256`; TLS 1.2 names agree.
fn suite_matches(suite: rustls::CipherSuite, name: &str) -> bool {
    let ours = format!("{suite:?}");
    ours == name
        || matches!(
            (ours.strip_prefix("TLS13_"), name.strip_prefix("TLS_")),
            (Some(a), Some(b)) if a == b
        )
}
