//! One client connection: read frames, handle requests one at a time, write
//! responses in request order.
//!
//! Two halves run in the connection's task. The reader splits frames off the
//! socket and decodes them while the previous request is being handled
//! (read-ahead bounded by [`PIPELINE_DEPTH`]); the handler takes requests in
//! order, awaits each one and writes its response before the next. Handling
//! one request at a time is what Kafka does per connection too, and it keeps
//! a producer's pipelined batches for a partition in order.
//!
//! Any framing or decoding error ends the reader: requests already read are
//! still answered, then the connection closes.
//!
//! On a SASL listener the handler half owns the connection's
//! [`Authentication`]: each request is first admitted by it (served, a SASL
//! step, or the end of the connection), and a successful authentication
//! swaps the connection's [`ConnectionInfo`] for one with the new principal.
//! Requests are handled one at a time, so that state needs no lock.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::context::{ClientSoftware, ConnectionInfo, RequestContext};
use crate::error::GatewayError;
use crate::frame::{
    Decoded, FrameCodec, Request, decode_request, encode_response, encode_response_frame,
};
use crate::handlers::{self, api_versions};
use crate::response_frame::ResponseFrame;
use crate::sasl::{Admission, Authentication, SaslOutcome, SaslServer};
use crate::services::Services;

/// Requests decoded ahead of the one being handled.
const PIPELINE_DEPTH: usize = 4;

/// Kafka's `connections.max.idle.ms` default: a connection that sends no
/// request for this long is closed, so idle clients do not hold connection
/// slots forever (clients reconnect transparently).
const CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(600);

/// Kafka's `sasl.server.max.receive.size` default: the largest frame a SASL
/// listener reads before the connection has authenticated.
const SASL_MAX_RECEIVE_SIZE: usize = 512 * 1024;

/// What answers decoded requests: the node's services in production, a fake in the
/// connection and server tests.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The encoded response frame, or `None` when the client expects none.
    fn handle(
        &self,
        ctx: &RequestContext,
        request: RequestKind,
    ) -> impl Future<Output = Result<Option<ResponseFrame>, GatewayError>> + Send;
}

impl Handler for Services {
    fn handle(
        &self,
        ctx: &RequestContext,
        request: RequestKind,
    ) -> impl Future<Output = Result<Option<ResponseFrame>, GatewayError>> + Send {
        handlers::handle(ctx, self, request)
    }
}

/// A byte stream a connection can serve: split into halves the reader and
/// the writer own. TCP splits without a lock; a TLS stream shares one
/// session state between its halves, so it uses `tokio::io::split`.
pub(crate) trait Stream: Send + 'static {
    type Read: AsyncRead + Unpin + Send;
    type Write: AsyncWrite + Unpin + Send;
    fn into_split(self) -> (Self::Read, Self::Write);
}

impl Stream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_split(self) -> (Self::Read, Self::Write) {
        TcpStream::into_split(self)
    }
}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn into_split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

pub(crate) struct Connection<S, H> {
    pub(crate) stream: S,
    pub(crate) info: Arc<ConnectionInfo>,
    pub(crate) handler: Arc<H>,
    pub(crate) max_frame_bytes: usize,
    /// Set on SASL listeners: the connection authenticates before it is served.
    pub(crate) sasl: Option<Arc<SaslServer>>,
}

impl<S: Stream, H: Handler> Connection<S, H> {
    /// Serve until the client disconnects, a request is malformed, `shutdown`
    /// fires (stop reading, finish what was read), or `abort` fires (drop
    /// everything at once).
    pub(crate) async fn run(self, shutdown: CancellationToken, abort: CancellationToken) {
        let peer = self.info.peer;
        tokio::select! {
            _ = abort.cancelled() => tracing::debug!(%peer, "connection aborted at shutdown"),
            () = self.serve(shutdown) => {}
        }
    }

    async fn serve(self, shutdown: CancellationToken) {
        let Connection {
            stream,
            info,
            handler,
            max_frame_bytes,
            sasl,
        } = self;
        let peer = info.peer;
        tracing::debug!(
            %peer,
            listener = %info.listener,
            security_protocol = info.security_protocol.name(),
            principal = %info.principal,
            "serving connection"
        );
        let (read_half, mut write_half) = stream.into_split();
        let authenticated = Arc::new(AtomicBool::new(false));
        let mut codec = FrameCodec::new(max_frame_bytes);
        if sasl.is_some() {
            codec = codec.with_pre_auth_limit(SASL_MAX_RECEIVE_SIZE, authenticated.clone());
        }
        let mut frames = FramedRead::new(read_half, codec);
        let mut authentication = sasl.map(Authentication::new);
        let (tx, mut rx) = mpsc::channel::<Decoded>(PIPELINE_DEPTH);
        let writer_gone = CancellationToken::new();

        let reader = async {
            loop {
                // FramedRead::next is cancellation safe: a partial frame stays buffered.
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = writer_gone.cancelled() => break,
                    next = tokio::time::timeout(CONNECTIONS_MAX_IDLE, frames.next()) => next,
                };
                let frame = match next {
                    Err(_idle) => {
                        tracing::debug!(%peer, "closing idle connection");
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Ok(frame))) => frame,
                    Ok(Some(Err(err))) => {
                        log_closing(peer, &err);
                        break;
                    }
                };
                match decode_request(frame) {
                    Ok(decoded) => {
                        if tx.send(decoded).await.is_err() {
                            break;
                        }
                    }
                    Err(err) => {
                        log_closing(peer, &err);
                        break;
                    }
                }
            }
            // Dropping the sender lets the handler finish what is queued, then stop.
            drop(tx);
        };

        let handler = async {
            // What the client said about itself in its last ApiVersions v3+.
            let mut client_software: Option<Arc<ClientSoftware>> = None;
            // Replaced (not mutated) when SASL authenticates a new principal.
            let mut info = info;
            while let Some(decoded) = rx.recv().await {
                let (reply, throttle) = match decoded {
                    Decoded::Request(request) => {
                        let Request {
                            api_key,
                            mut header,
                            body,
                        } = *request;
                        if let Some(auth) = authentication.as_mut() {
                            match auth.admit(api_key, Instant::now()) {
                                Admission::Serve => {}
                                Admission::Close(reason) => {
                                    tracing::info!(%peer, ?api_key, reason, "closing SASL connection");
                                    break;
                                }
                                Admission::Sasl => {
                                    let version = header.request_api_version;
                                    let outcome = auth.handle(version, body, Instant::now());
                                    let (response, close) = match outcome {
                                        SaslOutcome::Continue(response) => (response, false),
                                        SaslOutcome::Authenticated {
                                            response,
                                            user,
                                            reauthentication,
                                        } => {
                                            info = Arc::new(info.authenticated_as(user));
                                            authenticated.store(true, Ordering::Release);
                                            if reauthentication {
                                                fjord_metrics::SASL_REAUTHENTICATIONS.inc();
                                                tracing::debug!(%peer, principal = %info.principal, "re-authenticated");
                                            } else {
                                                fjord_metrics::SASL_AUTHENTICATIONS.inc();
                                                tracing::debug!(%peer, principal = %info.principal, "authenticated");
                                            }
                                            (response, false)
                                        }
                                        SaslOutcome::Failed { response, reason } => {
                                            fjord_metrics::SASL_FAILED_AUTHENTICATIONS.inc();
                                            tracing::info!(%peer, listener = %info.listener, %reason, "failed authentication");
                                            // In this connection's task only: other
                                            // connections and the accept loop go on.
                                            tokio::time::sleep(auth.failed_authentication_delay())
                                                .await;
                                            (response, true)
                                        }
                                    };
                                    let frame = encode_response_frame(
                                        api_key,
                                        version,
                                        header.correlation_id,
                                        &response,
                                        0,
                                    );
                                    let written = match frame {
                                        Ok(frame) => write(&mut write_half, frame).await,
                                        Err(err) => Err(err),
                                    };
                                    if let Err(err) = written {
                                        log_closing(peer, &err);
                                        break;
                                    }
                                    if close {
                                        break;
                                    }
                                    continue;
                                }
                            }
                        }
                        if let RequestKind::ApiVersions(r) = &body
                            && header.request_api_version >= 3
                        {
                            client_software = Some(Arc::new(ClientSoftware {
                                name: r.client_software_name.as_str().into(),
                                version: r.client_software_version.as_str().into(),
                            }));
                        }
                        let ctx = RequestContext {
                            api_key,
                            api_version: header.request_api_version,
                            correlation_id: header.correlation_id,
                            client_id: header.client_id.take(),
                            client_software: client_software.clone(),
                            connection: info.clone(),
                            throttle: Default::default(),
                        };
                        let started = std::time::Instant::now();
                        let reply = handler.handle(&ctx, body).await;
                        fjord_metrics::REQUESTS.record(api_key as i16, started.elapsed());
                        tracing::trace!(
                            %peer,
                            ?api_key,
                            version = ctx.api_version,
                            correlation_id = ctx.correlation_id,
                            client_id = ctx.client_id(),
                            client_software = ctx.client_software.as_deref().map(|s| &*s.name),
                            client_software_version =
                                ctx.client_software.as_deref().map(|s| &*s.version),
                            elapsed_us = started.elapsed().as_micros() as u64,
                            "request handled"
                        );
                        (reply, ctx.throttle.get())
                    }
                    Decoded::UnsupportedApiVersions {
                        correlation_id,
                        version,
                    } => {
                        tracing::debug!(%peer, version, "ApiVersions at an unsupported version");
                        let body = ResponseKind::ApiVersions(api_versions::unsupported_version());
                        let reply =
                            encode_response(ApiKey::ApiVersions, 0, correlation_id, &body, 0)
                                .map(|frame| Some(frame.into()));
                        (reply, None)
                    }
                };
                let written = match reply {
                    Ok(Some(frame)) => write(&mut write_half, frame).await,
                    Ok(None) => Ok(()),
                    Err(err) => Err(err),
                };
                if let Err(err) = written {
                    log_closing(peer, &err);
                    break;
                }
                // KIP-219: a throttled response goes out at once, then the
                // connection handles nothing more until the throttle ends.
                if let Some(throttle) = throttle {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        () = tokio::time::sleep(throttle) => {}
                    }
                }
            }
            writer_gone.cancel();
            let _ = write_half.shutdown().await;
        };

        tokio::join!(reader, handler);
        tracing::debug!(%peer, "connection closed");
    }
}

/// Write a response frame: its chunks (a Fetch response's record sets are
/// chunks of their own) with vectored writes, nothing copied.
async fn write(
    write_half: &mut (impl AsyncWrite + Unpin),
    frame: ResponseFrame,
) -> Result<(), GatewayError> {
    match frame.chunks() {
        [one] => write_half.write_all(one).await?,
        _ => write_half.write_all_buf(&mut frame.into_buf()).await?,
    }
    Ok(())
}

/// Client misbehaviour and disconnects are routine for a server: debug for
/// I/O, warn for protocol violations, error only for our own encoding bugs.
fn log_closing(peer: SocketAddr, err: &GatewayError) {
    match err {
        GatewayError::Io(_) => tracing::debug!(%peer, error = %err, "closing connection"),
        GatewayError::Encode { .. } => {
            tracing::error!(%peer, error = ?err, "closing connection: cannot encode a response")
        }
        GatewayError::AcksZeroProduceFailed => {
            tracing::debug!(%peer, error = %err, "closing connection")
        }
        _ => tracing::warn!(%peer, error = %err, "closing connection"),
    }
}
