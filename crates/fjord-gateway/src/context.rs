//! Who asked, and how: Kafka's `RequestContext`.
//!
//! A connection keeps what it learns once ([`ConnectionInfo`]: listener,
//! peer, security protocol, principal) and what a client tells it later (its
//! software name and version, from ApiVersions v3+). Per request the
//! connection builds one [`RequestContext`] from that state and the request
//! header: a move of the header's client id and two reference-count bumps,
//! no allocation and no lock.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

/// Kafka's `security.protocol` of a listener (`listener.security.protocol.map`).
/// The gateway serves all four: SSL and SASL_SSL wrap the connection in
/// TLS, SASL_PLAINTEXT and SASL_SSL authenticate with SASL first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// The name Kafka uses (`listener.security.protocol.map`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol of a Kafka name, case-insensitive as Kafka's
    /// `SecurityProtocol.forName`.
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether the connection authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether the connection is wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// Kafka's `KafkaPrincipal`: who the client authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KafkaPrincipal {
    pub(crate) principal_type: Cow<'static, str>,
    pub(crate) name: Cow<'static, str>,
}

impl KafkaPrincipal {
    /// `User:ANONYMOUS`, every PLAINTEXT client's principal in Kafka.
    pub(crate) const ANONYMOUS: KafkaPrincipal = KafkaPrincipal {
        principal_type: Cow::Borrowed("User"),
        name: Cow::Borrowed("ANONYMOUS"),
    };
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What a connection knows from the moment it is accepted.
#[derive(Debug)]
pub(crate) struct ConnectionInfo {
    /// The listener the connection was accepted on: answers that name
    /// brokers give their endpoints advertised under this name.
    pub(crate) listener: Arc<str>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    pub(crate) security_protocol: SecurityProtocol,
    pub(crate) principal: KafkaPrincipal,
}

impl ConnectionInfo {
    /// An SSL connection: `principal` comes from the client certificate
    /// (`User:ANONYMOUS` without one).
    pub(crate) fn ssl(listener: Arc<str>, peer: SocketAddr, principal: KafkaPrincipal) -> Self {
        ConnectionInfo {
            listener,
            peer,
            security_protocol: SecurityProtocol::Ssl,
            principal,
        }
    }

    /// A connection to a SASL listener, `User:ANONYMOUS` until it
    /// authenticates (it can call nothing but ApiVersions and the SASL apis
    /// until then). On SASL_SSL a client certificate names no principal:
    /// the SASL identity does, as in Kafka.
    pub(crate) fn sasl(
        listener: Arc<str>,
        peer: SocketAddr,
        security_protocol: SecurityProtocol,
    ) -> Self {
        ConnectionInfo {
            listener,
            peer,
            security_protocol,
            principal: KafkaPrincipal::ANONYMOUS,
        }
    }

    /// The same connection as `User:<user>`, after a SASL authentication:
    /// the connection swaps its `Arc` (one allocation per authentication,
    /// none per request).
    pub(crate) fn authenticated_as(&self, user: String) -> Self {
        ConnectionInfo {
            listener: self.listener.clone(),
            peer: self.peer,
            security_protocol: self.security_protocol,
            principal: KafkaPrincipal {
                principal_type: Cow::Borrowed("User"),
                name: Cow::Owned(user),
            },
        }
    }

    /// A PLAINTEXT connection from `peer` on `listener`, as `User:ANONYMOUS`.
    pub(crate) fn plaintext(listener: Arc<str>, peer: SocketAddr) -> Self {
        ConnectionInfo {
            listener,
            peer,
            security_protocol: SecurityProtocol::Plaintext,
            principal: KafkaPrincipal::ANONYMOUS,
        }
    }
}

/// The client software a client named in ApiVersions v3+ (KIP-511), kept
/// for the rest of its connection. Copied out of the request, so the
/// connection does not pin its read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientSoftware {
    pub(crate) name: Box<str>,
    pub(crate) version: Box<str>,
}

/// One request's context: built by the connection, read by every handler.
#[derive(Clone, Debug)]
pub(crate) struct RequestContext {
    pub(crate) api_key: ApiKey,
    pub(crate) api_version: i16,
    pub(crate) correlation_id: i32,
    /// The header's client id (null when the client sent none).
    pub(crate) client_id: Option<StrBytes>,
    /// From the connection's last ApiVersions v3+, if any.
    pub(crate) client_software: Option<Arc<ClientSoftware>>,
    pub(crate) connection: Arc<ConnectionInfo>,
    /// Set by the quota check when the client went over a quota: the
    /// connection holds its next request this long (KIP-219).
    pub(crate) throttle: crate::quota::Throttle,
}

impl RequestContext {
    /// The listener the request came in on.
    pub(crate) fn listener(&self) -> &str {
        &self.connection.listener
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.connection.peer
    }

    /// The client id, empty when the client sent none (as Kafka reports it).
    pub(crate) fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or_default()
    }
}
