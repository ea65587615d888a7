//! One connection's authentication on a SASL listener (Kafka's
//! `SaslServerAuthenticator` with the re-authentication of KIP-368).
//!
//! ```text
//!            SaslHandshake(ok)            SaslAuthenticate(complete)
//! Handshake ─────────────────> Authenticate ─────────────────────> Authenticated
//!     ^  ApiVersions served        │ challenge: stay                │  │ SaslHandshake
//!     │                            │ failure: delay, answer, close  │  │ (reauth on)
//!     │                            v                                │  v
//!     └─ (never back)            closed              Authenticate (re-authentication)
//! ```
//!
//! Before the first authentication only ApiVersions, SaslHandshake and
//! SaslAuthenticate are served; anything else closes the connection (Kafka's
//! `IllegalSaslStateException`). Once authenticated, every request is served
//! with the principal `User:<name>`; with `connections.max.reauth.ms` the
//! session expires, and after that anything but a SaslHandshake that begins
//! a re-authentication closes the connection. A re-authentication keeps
//! the mechanism and the principal, or fails.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Exchange, SaslError, SaslMechanism, SaslServer, Step};

/// What the connection does with a request, decided before it is handled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Serve it as on any listener.
    Serve,
    /// A SASL step: [`Authentication::handle`] answers it.
    Sasl,
    /// Close the connection without answering.
    Close(&'static str),
}

/// What a SASL step produced.
pub(crate) enum SaslOutcome {
    /// Answer and carry on (a handshake, a challenge).
    Continue(ResponseKind),
    /// Authenticated as `User:<user>`: answer, and use the principal from
    /// now on.
    Authenticated {
        response: ResponseKind,
        user: String,
        reauthentication: bool,
    },
    /// Failed: wait `connection.failed.authentication.delay.ms`, answer, close.
    Failed {
        response: ResponseKind,
        reason: SaslError,
    },
}

enum State {
    /// Waiting for a SaslHandshake (ApiVersions may come first).
    Handshake,
    /// A handshake chose a mechanism; SaslAuthenticate tokens follow.
    Authenticate {
        mechanism: SaslMechanism,
        exchange: Exchange,
    },
    /// A re-authentication asked for another mechanism: Kafka accepts the
    /// handshake and fails the SaslAuthenticate that follows.
    ReauthBadMechanism { requested: String },
    /// Serving requests.
    Authenticated,
}

/// Who authenticated, how, and until when.
struct Session {
    user: String,
    mechanism: SaslMechanism,
    /// `None`: never expires (`connections.max.reauth.ms` = 0).
    expires_at: Option<Instant>,
}

pub(crate) struct Authentication {
    server: Arc<SaslServer>,
    state: State,
    session: Option<Session>,
}

impl Authentication {
    pub(crate) fn new(server: Arc<SaslServer>) -> Self {
        Authentication {
            server,
            state: State::Handshake,
            session: None,
        }
    }

    /// `connection.failed.authentication.delay.ms`.
    pub(crate) fn failed_authentication_delay(&self) -> std::time::Duration {
        self.server.config.failed_authentication_delay
    }

    /// Decide what happens to a request of `api_key` arriving `now`.
    pub(crate) fn admit(&self, api_key: ApiKey, now: Instant) -> Admission {
        match (&self.state, api_key) {
            (State::Handshake, ApiKey::ApiVersions) => Admission::Serve,
            (State::Handshake, ApiKey::SaslHandshake) => Admission::Sasl,
            (State::Handshake, _) => Admission::Close(
                "request before SASL authentication (only ApiVersions and SaslHandshake are allowed)",
            ),
            (
                State::Authenticate { .. } | State::ReauthBadMechanism { .. },
                ApiKey::SaslAuthenticate,
            ) => Admission::Sasl,
            (State::Authenticate { .. } | State::ReauthBadMechanism { .. }, _) => {
                Admission::Close("request other than SaslAuthenticate during SASL authentication")
            }
            (State::Authenticated, api_key) => {
                let reauth_enabled = self.server.config.connections_max_reauth.is_some();
                if api_key == ApiKey::SaslHandshake && reauth_enabled {
                    return Admission::Sasl;
                }
                let expired = self
                    .session
                    .as_ref()
                    .and_then(|s| s.expires_at)
                    .is_some_and(|at| now >= at);
                if expired {
                    Admission::Close("SASL session expired without re-authentication")
                } else {
                    // SaslHandshake/SaslAuthenticate here reach their
                    // handlers, which answer ILLEGAL_SASL_STATE as Kafka.
                    Admission::Serve
                }
            }
        }
    }

    /// Answer a request [`Authentication::admit`] called a SASL step.
    pub(crate) fn handle(
        &mut self,
        version: i16,
        request: RequestKind,
        now: Instant,
    ) -> SaslOutcome {
        match request {
            // v0 is advertised only so that older librdkafka (2.0.2, Debian's kcat) sees
            // a SaslHandshake range overlapping [0, 0] and sends v1; the unframed
            // tokens of a real v0 exchange are not served.
            RequestKind::SaslHandshake(_) if version == 0 => SaslOutcome::Failed {
                response: SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::UnsupportedVersion.code())
                    .into(),
                reason: SaslError::HandshakeV0,
            },
            RequestKind::SaslHandshake(r) => self.handshake(r.mechanism),
            RequestKind::SaslAuthenticate(r) => self.authenticate(version, &r.auth_bytes, now),
            // admit() only calls the two SASL apis steps.
            _ => SaslOutcome::Failed {
                response: authenticate_failure(
                    ResponseError::IllegalSaslState,
                    "unexpected request".into(),
                ),
                reason: SaslError::ExchangeOver,
            },
        }
    }

    fn handshake(&mut self, requested: StrBytes) -> SaslOutcome {
        let enabled: Vec<StrBytes> = self
            .server
            .config
            .enabled_mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let mechanism = SaslMechanism::from_name(&requested).filter(|m| self.server.is_enabled(*m));
        let Some(mechanism) = mechanism else {
            let response = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            return SaslOutcome::Failed {
                response: response.into(),
                reason: SaslError::UnsupportedMechanism {
                    requested: requested.to_string(),
                },
            };
        };
        self.state = match &self.session {
            Some(session) if session.mechanism != mechanism => State::ReauthBadMechanism {
                requested: requested.to_string(),
            },
            _ => State::Authenticate {
                mechanism,
                exchange: Exchange::new(mechanism),
            },
        };
        SaslOutcome::Continue(
            SaslHandshakeResponse::default()
                .with_mechanisms(enabled)
                .into(),
        )
    }

    fn authenticate(&mut self, version: i16, token: &[u8], now: Instant) -> SaslOutcome {
        let (mechanism, exchange) = match &mut self.state {
            State::Authenticate {
                mechanism,
                exchange,
            } => (*mechanism, exchange),
            State::ReauthBadMechanism { requested } => {
                let previous = self.session.as_ref().map_or("", |s| s.mechanism.name());
                let reason = SaslError::ReauthMechanism {
                    requested: std::mem::take(requested),
                    previous,
                };
                return failed(reason, SaslMechanism::Plain);
            }
            // admit() sends SaslAuthenticate here only in the states above.
            State::Handshake | State::Authenticated => {
                return SaslOutcome::Failed {
                    response: authenticate_failure(
                        ResponseError::IllegalSaslState,
                        "SaslAuthenticate before SaslHandshake".into(),
                    ),
                    reason: SaslError::ExchangeOver,
                };
            }
        };
        match exchange.evaluate(&self.server, token) {
            Ok(Step::Challenge(challenge)) => SaslOutcome::Continue(
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(challenge.into())
                    .into(),
            ),
            Ok(Step::Complete { user, final_token }) => {
                let reauthentication = self.session.is_some();
                if let Some(previous) = &self.session
                    && previous.user != user
                {
                    let reason = SaslError::ReauthPrincipal {
                        previous: previous.user.clone(),
                        requested: user,
                    };
                    return failed(reason, mechanism);
                }
                let lifetime = self.server.config.connections_max_reauth;
                let mut response =
                    SaslAuthenticateResponse::default().with_auth_bytes(final_token.into());
                // v0 has no session lifetime; a v0 client's session still
                // expires (KIP-368: it is closed then, having no way to
                // re-authenticate).
                if version >= 1
                    && let Some(lifetime) = lifetime
                {
                    response.session_lifetime_ms =
                        i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
                }
                self.session = Some(Session {
                    user: user.clone(),
                    mechanism,
                    expires_at: lifetime.and_then(|l| now.checked_add(l)),
                });
                self.state = State::Authenticated;
                SaslOutcome::Authenticated {
                    response: response.into(),
                    user,
                    reauthentication,
                }
            }
            Err(reason) => failed(reason, mechanism),
        }
    }
}

fn failed(reason: SaslError, mechanism: SaslMechanism) -> SaslOutcome {
    SaslOutcome::Failed {
        response: authenticate_failure(
            ResponseError::SaslAuthenticationFailed,
            reason.client_message(mechanism),
        ),
        reason,
    }
}

fn authenticate_failure(error: ResponseError, message: String) -> ResponseKind {
    SaslAuthenticateResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .into()
}
