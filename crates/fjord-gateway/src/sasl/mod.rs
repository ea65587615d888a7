//! SASL on the SASL_PLAINTEXT and SASL_SSL listeners (Kafka's
//! `SaslServerAuthenticator`): the mechanisms, their server exchanges, and
//! the per-connection authentication state the connection consults before
//! every request.
//!
//! Layout:
//! - this file: the listener-wide settings ([`SaslConfig`], [`PlainUsers`])
//!   and what every connection of a SASL listener shares ([`SaslServer`]:
//!   the settings and the SCRAM credential store);
//! - `plain`: PLAIN (RFC 4616) against the users file;
//! - `scram`: the SCRAM-SHA-256/512 server exchange (RFC 5802/7677);
//! - `session`: one connection's state (handshake, authenticate,
//!   authenticated, re-authentication of KIP-368) and the gate that
//!   decides, per request, whether it is served, is a SASL step, or closes
//!   the connection.
//!
//! The exchanges are plain state machines without I/O: a token in, a
//! challenge or a result out, every malformed message an error value. The
//! connection's task moves the bytes and applies the failure delay.

mod plain;
pub(crate) mod scram;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_broker::scram_credentials::ScramCredentialStore;
use fjord_scram::ScramMechanism;

pub(crate) use session::{Admission, Authentication, SaslOutcome};

/// A SASL mechanism Fjord serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
    ];

    /// The IANA name clients ask for in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.mechanism_name(),
        }
    }

    /// Exact match, as Kafka compares mechanism names.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// PLAIN's users and passwords (Kafka reads them from the JAAS
/// `user_<name>="<password>"` options; Fjord from a TOML file of
/// `name = "password"`). Passwords never reach `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlainUsers {
    users: HashMap<String, Box<[u8]>>,
}

impl PlainUsers {
    pub fn new(users: impl IntoIterator<Item = (String, String)>) -> Self {
        PlainUsers {
            users: users
                .into_iter()
                .map(|(user, password)| (user, password.into_bytes().into_boxed_slice()))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn password(&self, user: &str) -> Option<&[u8]> {
        self.users.get(user).map(|p| &**p)
    }
}

impl std::fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainUsers")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// Kafka's `sasl.*` broker settings, for every SASL listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`, in the order SaslHandshake lists them.
    pub enabled_mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users; required when PLAIN is enabled.
    pub plain_users: PlainUsers,
    /// `connections.max.reauth.ms`: `None` (0) leaves sessions unbounded.
    pub connections_max_reauth: Option<Duration>,
    /// `connection.failed.authentication.delay.ms`: how long a failed
    /// authentication waits before its answer and the close.
    pub failed_authentication_delay: Duration,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            enabled_mechanisms: vec![
                SaslMechanism::Scram(ScramMechanism::Sha256),
                SaslMechanism::Scram(ScramMechanism::Sha512),
            ],
            plain_users: PlainUsers::default(),
            connections_max_reauth: None,
            failed_authentication_delay: Duration::from_millis(100),
        }
    }
}

/// What every connection of the SASL listeners shares.
pub(crate) struct SaslServer {
    pub(crate) config: SaslConfig,
    pub(crate) scram_credentials: Arc<ScramCredentialStore>,
    /// Random per process: salts the stand-in credential of unknown SCRAM
    /// users, so an unknown user looks like a known one (stable salt, full
    /// exchange, the same failure) without the salt naming the process.
    unknown_user_secret: Vec<u8>,
}

impl SaslServer {
    pub(crate) fn new(config: SaslConfig, scram_credentials: Arc<ScramCredentialStore>) -> Self {
        SaslServer {
            config,
            scram_credentials,
            unknown_user_secret: fjord_scram::random_bytes(32),
        }
    }

    fn is_enabled(&self, mechanism: SaslMechanism) -> bool {
        self.config.enabled_mechanisms.contains(&mechanism)
    }
}

impl std::fmt::Debug for SaslServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed. The client is told [`SaslError::client_message`];
/// the log gets the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SaslError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {got}")]
    PlainTokens { got: usize },
    #[error("Authentication failed: username not specified")]
    PlainNoUsername,
    #[error("Authentication failed: password not specified")]
    PlainNoPassword,
    #[error("Authentication failed: Invalid username or password")]
    PlainInvalidCredentials,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthorizationIdMismatch,
    #[error("malformed SCRAM {message} message: {reason}")]
    ScramMalformed {
        message: &'static str,
        reason: &'static str,
    },
    #[error("SCRAM channel binding is not supported")]
    ScramChannelBinding,
    #[error("SCRAM extensions are not supported (delegation tokens are not)")]
    ScramExtensions,
    #[error("SCRAM channel binding does not match the client-first header")]
    ScramChannelBindingMismatch,
    #[error("SCRAM nonce does not match the server's")]
    ScramNonce,
    #[error("invalid SCRAM client proof (unknown user or wrong password)")]
    ScramProof,
    #[error("SASL mechanism '{requested}' is not enabled")]
    UnsupportedMechanism { requested: String },
    #[error("a token arrived after the exchange ended")]
    ExchangeOver,
    #[error("SaslHandshake v0 (unframed SASL tokens) is not served; use v1 with SaslAuthenticate")]
    HandshakeV0,
    #[error(
        "SASL mechanism '{requested}' requested by client is not supported for re-authentication of mechanism '{previous}'"
    )]
    ReauthMechanism {
        requested: String,
        previous: &'static str,
    },
    #[error(
        "Cannot change principals during re-authentication from User:{previous}: User:{requested}"
    )]
    ReauthPrincipal { previous: String, requested: String },
}

impl SaslError {
    /// The SASL_AUTHENTICATION_FAILED message: Kafka sends the text of a
    /// `SaslAuthenticationException` (PLAIN's credential checks,
    /// re-authentication rules) and a fixed sentence for anything else, so a
    /// SCRAM client never learns which step failed.
    pub(crate) fn client_message(&self, mechanism: SaslMechanism) -> String {
        match self {
            SaslError::PlainInvalidCredentials
            | SaslError::AuthorizationIdMismatch
            | SaslError::ReauthMechanism { .. }
            | SaslError::ReauthPrincipal { .. } => self.to_string(),
            _ => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                mechanism.name()
            ),
        }
    }
}

/// One step of an exchange.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this challenge and wait for the next token.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; `final_token` goes back to the client
    /// (SCRAM's server-final message, empty for PLAIN).
    Complete { user: String, final_token: Vec<u8> },
}

/// A mechanism's server side, for one authentication.
pub(crate) enum Exchange {
    Plain(plain::PlainServer),
    Scram(Box<scram::ScramServer>),
}

impl Exchange {
    pub(crate) fn new(mechanism: SaslMechanism) -> Exchange {
        match mechanism {
            SaslMechanism::Plain => Exchange::Plain(plain::PlainServer::default()),
            SaslMechanism::Scram(m) => Exchange::Scram(Box::new(scram::ScramServer::new(m))),
        }
    }

    pub(crate) fn evaluate(
        &mut self,
        server: &SaslServer,
        token: &[u8],
    ) -> Result<Step, SaslError> {
        match self {
            Exchange::Plain(p) => p.evaluate(&server.config.plain_users, token),
            Exchange::Scram(s) => s.evaluate(server, token),
        }
    }
}
