//! `--command-config FILE`: a Kafka client properties file telling the
//! admin commands how to reach a secured listener, as
//! `kafka-topics.sh --command-config client.properties` does.
//!
//! Keys read (everything else is ignored with a warning on stderr):
//! - `security.protocol`: PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL.
//! - trust: `ssl.truststore.location` (PEM; `ssl.truststore.type` must be
//!   PEM if given) or librdkafka's `ssl.ca.location`. Without either, TLS
//!   fails: the CLI carries no public root store, brokers use private CAs.
//! - client certificate (mTLS): `ssl.keystore.location` (a PEM file with the
//!   certificate chain, and the key too when `ssl.key.location` is not
//!   given, as Kafka's `ssl.keystore.type=PEM`) or librdkafka's
//!   `ssl.certificate.location`; the key from `ssl.key.location`.
//!   Encrypted keys (`ssl.key.password`) are refused.
//! - `ssl.endpoint.identification.algorithm`: `https` (default) checks the
//!   broker's name against its certificate; empty (or librdkafka's `none`)
//!   checks only the chain.
//! - `sasl.mechanism`: PLAIN (default, as Kafka), SCRAM-SHA-256, SCRAM-SHA-512.
//! - credentials: `sasl.username` / `sasl.password` (librdkafka) or the
//!   `username="…" password="…"` options of `sasl.jaas.config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use fjord_gateway::SecurityProtocol;
use fjord_scram::ScramMechanism;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Kafka's `security.protocol` of a client: the same four the listeners
/// serve, case-insensitive as Kafka and librdkafka accept them.
fn parse_security_protocol(value: &str) -> Result<SecurityProtocol> {
    SecurityProtocol::from_name(value).ok_or_else(|| {
        anyhow!(
            "security.protocol {value:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        )
    })
}

/// A SASL mechanism the CLI speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    fn parse(value: &str) -> Result<Self> {
        if value == "PLAIN" {
            return Ok(SaslMechanism::Plain);
        }
        ScramMechanism::from_mechanism_name(value)
            .map(SaslMechanism::Scram)
            .ok_or_else(|| {
                anyhow!(
                    "sasl.mechanism {value:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                )
            })
    }

    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.mechanism_name(),
        }
    }
}

/// SASL settings: mechanism and credentials.
#[derive(Clone)]
pub struct SaslSettings {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

// The password stays out of logs and debug output.
impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How every admin connection is secured: built once per command from
/// the properties file and shared by all its connections.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    /// `None` on PLAINTEXT and SASL_PLAINTEXT.
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// `None` on PLAINTEXT and SSL.
    pub sasl: Option<SaslSettings>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ClientSecurity {
    /// PLAINTEXT: no TLS, no SASL.
    pub fn plaintext() -> Arc<Self> {
        Arc::new(ClientSecurity::default())
    }

    /// Reads a client properties file; unknown keys are reported on stderr.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read command config {}", path.display()))?;
        let props = parse_properties(&text);
        let (security, unknown) = Self::from_properties(&props, path.parent())
            .with_context(|| format!("command config {}", path.display()))?;
        for key in unknown {
            eprintln!(
                "warning: command config {}: ignoring unknown key {key}",
                path.display()
            );
        }
        Ok(security)
    }

    /// Builds the settings from parsed properties; relative file names are
    /// taken from `base` (the properties file's directory) when they do
    /// not exist relative to the working directory. Also returns the keys
    /// it did not read.
    fn from_properties(
        props: &BTreeMap<String, String>,
        base: Option<&Path>,
    ) -> Result<(Self, Vec<String>)> {
        let get = |k: &str| props.get(k).map(String::as_str);
        let protocol = get("security.protocol")
            .map(parse_security_protocol)
            .transpose()?
            .unwrap_or(SecurityProtocol::Plaintext);
        let resolve = |p: &str| resolve_path(p, base);
        let tls = if protocol.uses_tls() {
            Some(tls_connector(props, &resolve)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_settings(props)?)
        } else {
            None
        };
        let unknown = props
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok((ClientSecurity { tls, sasl }, unknown))
    }
}

/// Keys read (or deliberately accepted) by [`ClientSecurity::from_properties`].
const KNOWN_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.ca.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
];

fn resolve_path(p: &str, base: Option<&Path>) -> PathBuf {
    let path = PathBuf::from(p);
    match base {
        Some(base) if path.is_relative() && !path.exists() => base.join(path),
        _ => path,
    }
}

fn tls_connector(
    props: &BTreeMap<String, String>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<tokio_rustls::TlsConnector> {
    let get = |k: &str| props.get(k).map(String::as_str);
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(t) = get(key) {
            ensure!(
                t.eq_ignore_ascii_case("PEM"),
                "{key}={t}: only PEM files are supported (convert with openssl or keytool)"
            );
        }
    }
    ensure!(
        get("ssl.key.password").is_none_or(str::is_empty),
        "ssl.key.password: encrypted private keys are not supported; give an unencrypted PEM key"
    );
    let ca = get("ssl.truststore.location")
        .or(get("ssl.ca.location"))
        .ok_or_else(|| {
            anyhow!(
                "TLS needs the CA certificate: set ssl.truststore.location (PEM) or ssl.ca.location"
            )
        })?;
    let ca = resolve(ca);
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&ca, "CA certificate (ssl.truststore.location)")? {
        roots
            .add(cert)
            .with_context(|| format!("CA certificate {}", ca.display()))?;
    }
    let verify_hostname = match get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(a) if a.eq_ignore_ascii_case("https") => true,
        Some(a) if a.is_empty() || a.eq_ignore_ascii_case("none") => false,
        Some(a) => bail!("ssl.endpoint.identification.algorithm {a:?}: expected https or empty"),
    };
    let provider = Arc::new(ring_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("build the TLS server verifier")?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            inner: webpki,
            verify_hostname,
        }));
    let chain = get("ssl.keystore.location").or(get("ssl.certificate.location"));
    let config = match (chain, get("ssl.key.location")) {
        (None, None) => builder.with_no_client_auth(),
        (None, Some(_)) => {
            bail!("ssl.key.location is set but no certificate: set ssl.keystore.location too")
        }
        (Some(chain), key) => {
            let chain = resolve(chain);
            let key = key.map_or_else(|| chain.clone(), resolve);
            let certs = read_certs(&chain, "client certificate (ssl.keystore.location)")?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| anyhow!("private key (ssl.key.location) {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .context("client certificate and key do not match")?
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// rustls' ring provider, as the gateway's TLS uses (deprecated only for
/// lacking post-quantum key exchange; ring spares the build aws-lc's C step).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    ensure!(path.is_file(), "{what} {}: no such file", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{what} {}: {e}", path.display()))?;
    ensure!(
        !certs.is_empty(),
        "{what} {}: no PEM certificate in the file",
        path.display()
    );
    Ok(certs)
}

/// The webpki chain check, with the name check skipped when
/// `ssl.endpoint.identification.algorithm` is empty (as Kafka clients do).
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    verify_hostname: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn sasl_settings(props: &BTreeMap<String, String>) -> Result<SaslSettings> {
    let get = |k: &str| props.get(k).map(String::as_str);
    let mechanism = SaslMechanism::parse(get("sasl.mechanism").unwrap_or("PLAIN"))?;
    let jaas = get("sasl.jaas.config")
        .map(jaas_options)
        .unwrap_or_default();
    let username = get("sasl.username")
        .map(str::to_owned)
        .or_else(|| jaas.get("username").cloned())
        .ok_or_else(|| {
            anyhow!(
                "{} needs a user: set sasl.username or username=\"…\" in sasl.jaas.config",
                mechanism.name()
            )
        })?;
    let password = get("sasl.password")
        .map(str::to_owned)
        .or_else(|| jaas.get("password").cloned())
        .ok_or_else(|| {
            anyhow!("set sasl.password or password=\"…\" in sasl.jaas.config for user {username}")
        })?;
    Ok(SaslSettings {
        mechanism,
        username,
        password,
    })
}

/// The `key="value"` options of a JAAS line such as
/// `org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";`.
/// Values may be quoted (with `\"` and `\\` escapes) or bare.
fn jaas_options(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_owned();
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if !key.is_empty() {
            out.insert(key, value);
        }
        rest = tail;
    }
    out
}

/// Java `.properties` as Kafka tools read them: `key=value` or
/// `key: value`, `#`/`!` comments, a trailing `\` continues the line.
/// (Unicode escapes are not decoded; no client key needs them.)
fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = if logical.is_empty() {
            raw.trim()
        } else {
            raw.trim_start()
        };
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let split = entry.find(['=', ':']).unwrap_or(entry.len());
        let key = entry[..split].trim().to_owned();
        let value = entry.get(split + 1..).unwrap_or("").trim().to_owned();
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_with_comments_separators_and_continuations() {
        let props = parse_properties(
            "# comment\n! other\nsecurity.protocol=SASL_SSL\nsasl.mechanism : SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  \
             username=\"admin\" \\\n  password=\"p=w\\\"d\";\nempty=\n",
        );
        assert_eq!(props["security.protocol"], "SASL_SSL");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(props["empty"], "");
        let jaas = jaas_options(&props["sasl.jaas.config"]);
        assert_eq!(jaas["username"], "admin");
        assert_eq!(jaas["password"], "p=w\"d");
    }

    #[test]
    fn bare_jaas_values() {
        let jaas = jaas_options("x.PlainLoginModule required username=bob password=s3cret;");
        assert_eq!(jaas["username"], "bob");
        assert_eq!(jaas["password"], "s3cret");
    }

    fn from(text: &str) -> Result<(ClientSecurity, Vec<String>)> {
        ClientSecurity::from_properties(&parse_properties(text), None)
    }

    #[test]
    fn sasl_plaintext_with_librdkafka_keys_and_unknown_keys_reported() {
        let (s, unknown) = from(
            "security.protocol=sasl_plaintext\nsasl.mechanism=SCRAM-SHA-256\n\
             sasl.username=u\nsasl.password=p\nclient.id=x\n",
        )
        .expect("valid");
        assert!(s.tls.is_none());
        let sasl = s.sasl.expect("sasl");
        assert_eq!(sasl.mechanism, SaslMechanism::Scram(ScramMechanism::Sha256));
        assert_eq!((sasl.username.as_str(), sasl.password.as_str()), ("u", "p"));
        assert_eq!(unknown, vec!["client.id".to_owned()]);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let cases = [
            ("security.protocol=TLS\n", "security.protocol"),
            (
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b\n",
                "GSSAPI",
            ),
            ("security.protocol=SASL_PLAINTEXT\n", "needs a user"),
            ("security.protocol=SSL\n", "CA certificate"),
            (
                "security.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem\n",
                "no such file",
            ),
            (
                "security.protocol=SSL\nssl.truststore.type=JKS\nssl.truststore.location=x.jks\n",
                "only PEM",
            ),
        ];
        for (text, expected) in cases {
            let err = from(text).expect_err(text);
            assert!(format!("{err:#}").contains(expected), "{text}: {err:#}");
        }
    }
}
