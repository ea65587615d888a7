//! The accept loops, one per Kafka listener: one task per connection,
//! capped by a semaphore, owned by a TaskTracker and drained with a deadline
//! at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_broker::DEFAULT_LISTENER;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{Connection, Handler};
use crate::context::{ConnectionInfo, SecurityProtocol};
use crate::error::GatewayError;
use crate::sasl::{SaslConfig, SaslServer};
use crate::services::Services;
use crate::tls::{TlsConfig, TlsServer};

/// How long connections get at shutdown to finish the request in hand
/// (a fetch long poll, an acks=all produce) before they are dropped.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Pause after an accept error that is not about one connection (out of
/// file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a client gets to complete the TLS handshake of an SSL listener
/// before its connection is closed (it holds a connection slot meanwhile).
const SSL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Default cap on concurrent client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Where one named Kafka listener binds (one entry of Kafka's `listeners`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Kafka's listener name; connections accepted here are answered with
    /// every broker's endpoint advertised under this name.
    pub name: String,
    pub listen: SocketAddr,
    /// From `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Where the Kafka listeners bind (the server crate binds them and hands
    /// [`serve_listeners`] the sockets, so tests can bind port 0).
    pub listeners: Vec<ListenerConfig>,
    /// `socket.request.max.bytes`: larger (or negative) frame sizes close
    /// the connection before anything is read or allocated.
    pub max_frame_bytes: usize,
    /// `max.connections`: connections served at once over all listeners
    /// together; further clients wait in their listener's accept backlog.
    pub max_connections: usize,
    /// The `ssl.*` settings every SSL listener uses; required when one is.
    pub tls: Option<TlsConfig>,
    /// The `sasl.*` settings every SASL_PLAINTEXT and SASL_SSL listener uses.
    pub sasl: SaslConfig,
}

impl GatewayConfig {
    /// Kafka's defaults and one listener named [`DEFAULT_LISTENER`] on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        GatewayConfig {
            listeners: vec![ListenerConfig {
                name: DEFAULT_LISTENER.to_string(),
                listen,
                security_protocol: SecurityProtocol::Plaintext,
            }],
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            sasl: SaslConfig::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig::new(SocketAddr::from(([0, 0, 0, 0], 9092)))
    }
}

/// A bound Kafka listener, its name and, for an SSL listener, its TLS
/// configuration ([`TlsServer::load`], shared by the SSL listeners).
#[derive(Debug)]
pub struct NamedListener {
    pub name: String,
    pub listener: TcpListener,
    pub tls: Option<Arc<TlsServer>>,
}

/// Serve Kafka clients on one `listener` named [`DEFAULT_LISTENER`] until
/// `shutdown` fires (see [`serve_listeners`]).
pub async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let listener = NamedListener {
        name: DEFAULT_LISTENER.to_string(),
        listener,
        tls: None,
    };
    serve_listeners(vec![listener], services, config, shutdown).await
}

/// Serve Kafka clients on every listener until `shutdown` fires. Each
/// connection remembers the name of the listener it came in on: Metadata,
/// FindCoordinator, DescribeCluster and the produce/fetch leader hints answer
/// with the brokers' endpoints of that name.
///
/// Shutdown: stop accepting on every listener, tell connections to stop
/// reading (each finishes the requests it already read), wait up to
/// [`DRAIN_DEADLINE`], then drop the stragglers and return.
pub async fn serve_listeners(
    listeners: Vec<NamedListener>,
    services: Arc<Services>,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let sasl = Arc::new(SaslServer::new(
        config.sasl.clone(),
        services.scram_credentials.clone(),
    ));
    serve_with(listeners, services, config, Some(sasl), shutdown).await
}

/// What every accept loop shares.
struct Shared<H> {
    handler: Arc<H>,
    /// One cap over all listeners, like Kafka's broker-wide
    /// `max.connections` (Kafka's per-listener caps are not offered).
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Fired after the drain deadline: drops connections still busy.
    abort: CancellationToken,
    shutdown: CancellationToken,
    max_frame_bytes: usize,
    /// What SASL listeners authenticate with.
    sasl: Option<Arc<SaslServer>>,
}

/// [`serve_listeners`] with any request handler (tests use a fake broker).
pub(crate) async fn serve_with<H: Handler>(
    listeners: Vec<NamedListener>,
    handler: Arc<H>,
    config: GatewayConfig,
    sasl: Option<Arc<SaslServer>>,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let shared = Shared {
        handler,
        permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        tracker: TaskTracker::new(),
        abort: CancellationToken::new(),
        shutdown,
        max_frame_bytes: config.max_frame_bytes,
        sasl,
    };
    let mut bound = Vec::with_capacity(listeners.len());
    let mut reloading: Vec<Arc<TlsServer>> = Vec::new();
    for NamedListener {
        name,
        listener,
        tls,
    } in listeners
    {
        let local = listener.local_addr().map_err(GatewayError::LocalAddr)?;
        // The configured protocol; a listener the config does not name
        // (tests) is SSL with a TLS configuration, else PLAINTEXT.
        let security_protocol = config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.security_protocol)
            .filter(|p| p.uses_tls() == tls.is_some())
            .unwrap_or(if tls.is_some() {
                SecurityProtocol::Ssl
            } else {
                SecurityProtocol::Plaintext
            });
        tracing::info!(listener = %name, addr = %local, security_protocol = security_protocol.name(), max_connections = config.max_connections, "Kafka listener ready");
        if let Some(tls) = &tls
            && !reloading.iter().any(|r| Arc::ptr_eq(r, tls))
        {
            reloading.push(tls.clone());
        }
        bound.push((
            Arc::<str>::from(name),
            listener,
            local,
            tls,
            security_protocol,
        ));
    }
    // One certificate reload task per TLS configuration, ended by shutdown.
    let reloaders: Vec<_> = reloading
        .into_iter()
        .map(|tls| tokio::spawn(tls.reload_loop(shared.shutdown.clone())))
        .collect();
    // The loops run in this task (no spawn): each returns once `shutdown`
    // fires, dropping its socket, so the drain below starts with every
    // listener closed.
    futures::future::join_all(
        bound
            .into_iter()
            .map(|(name, listener, local, tls, protocol)| {
                accept_loop(&shared, name, listener, local, tls, protocol)
            }),
    )
    .await;
    for reloader in reloaders {
        let _ = reloader.await;
    }

    let Shared { tracker, abort, .. } = shared;
    tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "connections still busy after the drain deadline; dropping them"
        );
        abort.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Accepts on one listener until shutdown; connections are spawned on the
/// shared tracker.
async fn accept_loop<H: Handler>(
    shared: &Shared<H>,
    name: Arc<str>,
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<Arc<TlsServer>>,
    security_protocol: SecurityProtocol,
) {
    loop {
        let Some(permit) = next_permit(shared).await else {
            break;
        };
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if is_connection_error(&err) {
                    tracing::debug!(listener = %name, %err, "accept failed for one connection");
                } else {
                    tracing::warn!(listener = %name, %err, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
        }
        tracing::debug!(%peer, listener = %name, "connection accepted");
        let (shutdown, abort) = (shared.shutdown.clone(), shared.abort.clone());
        let (handler, max_frame_bytes) = (shared.handler.clone(), shared.max_frame_bytes);
        let (name, tls) = (name.clone(), tls.clone());
        let sasl = shared
            .sasl
            .clone()
            .filter(|_| security_protocol.uses_sasl());
        // The TLS handshake runs here, in the connection's task, never in
        // the accept loop: a slow or hostile client delays only itself.
        shared.tracker.spawn(async move {
            // The connection slot is freed when this task ends, whichever way.
            let _permit = permit;
            match tls {
                None => {
                    let info = if sasl.is_some() {
                        ConnectionInfo::sasl(name, peer, SecurityProtocol::SaslPlaintext)
                    } else {
                        ConnectionInfo::plaintext(name, peer)
                    };
                    let connection = Connection {
                        stream,
                        info: Arc::new(info),
                        handler,
                        max_frame_bytes,
                        sasl,
                    };
                    connection.run(shutdown, abort).await;
                }
                Some(tls) => {
                    let Some(stream) = ssl_handshake(&tls, stream, &name, peer, &shutdown).await
                    else {
                        return;
                    };
                    let info = if sasl.is_some() {
                        // SASL_SSL: the SASL identity is the principal, not the certificate.
                        ConnectionInfo::sasl(name, peer, SecurityProtocol::SaslSsl)
                    } else {
                        match tls.principal(stream.get_ref().1.peer_certificates()) {
                            Ok(principal) => ConnectionInfo::ssl(name, peer, principal),
                            Err(err) => {
                                tracing::info!(%peer, listener = %name, %err, "failed authentication (no principal for the client certificate)");
                                return;
                            }
                        }
                    };
                    let connection = Connection {
                        stream,
                        info: Arc::new(info),
                        handler,
                        max_frame_bytes,
                        sasl,
                    };
                    connection.run(shutdown, abort).await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!(listener = %name, addr = %local, "Kafka listener stopped");
}

/// The TLS handshake of a connection to an SSL or SASL_SSL listener,
/// bounded by [`SSL_HANDSHAKE_TIMEOUT`]. `None`: the connection is dropped
/// (Kafka logs failed authentications at INFO, and so does this).
async fn ssl_handshake(
    tls: &TlsServer,
    stream: tokio::net::TcpStream,
    listener: &str,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let handshake = tokio::time::timeout(SSL_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let stream = tokio::select! {
        _ = shutdown.cancelled() => return None,
        handshake = handshake => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::info!(%peer, %listener, %err, "failed authentication (SSL handshake failed)");
                return None;
            }
            Err(_) => {
                tracing::info!(%peer, %listener, timeout = ?SSL_HANDSHAKE_TIMEOUT, "failed authentication (SSL handshake timed out)");
                return None;
            }
        },
    };
    Some(stream)
}

/// A connection slot, or `None` once shutdown fires.
async fn next_permit<H>(shared: &Shared<H>) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        _ = shared.shutdown.cancelled() => None,
        // The semaphore is never closed; stop serving if it ever is.
        permit = shared.permits.clone().acquire_owned() => permit.ok(),
    }
}

/// Accept errors that concern only the connection being accepted.
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
        RequestHeader, RequestKind, ResponseKind,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::context::RequestContext;
    use crate::frame::encode_response;

    /// Answers every request with an empty ApiVersions response carrying its
    /// correlation id, after `delay_ms(correlation_id)`; acks=0 produce gets none.
    /// Records the listener each request came in on.
    struct Fake {
        delay_ms: fn(i32) -> u64,
        seen: std::sync::Mutex<Vec<(i32, String)>>,
        contexts: std::sync::Mutex<Vec<RequestContext>>,
    }

    impl Handler for Fake {
        fn handle(
            &self,
            ctx: &RequestContext,
            request: RequestKind,
        ) -> impl Future<
            Output = Result<Option<crate::response_frame::ResponseFrame>, GatewayError>,
        > + Send {
            let delay = Duration::from_millis((self.delay_ms)(ctx.correlation_id));
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((ctx.correlation_id, ctx.listener().to_string()));
            }
            if let Ok(mut contexts) = self.contexts.lock() {
                contexts.push(ctx.clone());
            }
            let correlation_id = ctx.correlation_id;
            async move {
                tokio::time::sleep(delay).await;
                if let RequestKind::Produce(produce) = &request
                    && produce.acks == 0
                {
                    return Ok(None);
                }
                let body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
                encode_response(ApiKey::ApiVersions, 0, correlation_id, &body, 0)
                    .map(|frame| Some(frame.into()))
            }
        }
    }

    struct Running {
        /// The first listener's address.
        addr: SocketAddr,
        /// Every listener's address, in the order of the names given to `start_named`.
        addrs: Vec<SocketAddr>,
        fake: Arc<Fake>,
        shutdown: CancellationToken,
        server: tokio::task::JoinHandle<Result<(), GatewayError>>,
    }

    async fn start(delay_ms: fn(i32) -> u64, max_connections: usize) -> Running {
        start_named(&["PLAINTEXT"], delay_ms, max_connections).await
    }

    async fn start_named(
        names: &[&str],
        delay_ms: fn(i32) -> u64,
        max_connections: usize,
    ) -> Running {
        let mut listeners = Vec::new();
        let mut configs = Vec::new();
        for name in names {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let listen = listener.local_addr().expect("addr");
            configs.push(ListenerConfig {
                name: name.to_string(),
                listen,
                security_protocol: SecurityProtocol::Plaintext,
            });
            listeners.push(NamedListener {
                name: name.to_string(),
                listener,
                tls: None,
            });
        }
        let addrs: Vec<SocketAddr> = configs.iter().map(|c| c.listen).collect();
        let config = GatewayConfig {
            listeners: configs,
            max_frame_bytes: 1024,
            max_connections,
            tls: None,
            sasl: SaslConfig::default(),
        };
        let shutdown = CancellationToken::new();
        let fake = Arc::new(Fake {
            delay_ms,
            seen: Default::default(),
            contexts: Default::default(),
        });
        let server = tokio::spawn(serve_with(
            listeners,
            fake.clone(),
            config,
            None,
            shutdown.clone(),
        ));
        Running {
            addr: addrs[0],
            addrs,
            fake,
            shutdown,
            server,
        }
    }

    fn request(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: impl Encodable,
    ) -> BytesMut {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut frame, api_key.request_header_version(version))
            .expect("header");
        body.encode(&mut frame, version).expect("body");
        let mut out = BytesMut::new();
        out.put_i32(frame.len() as i32);
        out.put_slice(&frame);
        out
    }

    fn api_versions(correlation_id: i32) -> BytesMut {
        request(
            ApiKey::ApiVersions,
            3,
            correlation_id,
            ApiVersionsRequest::default(),
        )
    }

    /// Read one response frame: (correlation id, body bytes); `None` at EOF.
    async fn read_response(stream: &mut TcpStream) -> Option<(i32, Bytes)> {
        let size = stream.read_i32().await.ok()?;
        let mut body = vec![0; usize::try_from(size).ok()?];
        stream.read_exact(&mut body).await.ok()?;
        let mut body = Bytes::from(body);
        let correlation_id = bytes::Buf::get_i32(&mut body);
        Some((correlation_id, body))
    }

    async fn closed(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order() {
        // Earlier requests take longer: order must still hold.
        let running = start(|id| 10 * (6 - id as u64).min(6), 10).await;
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        let mut all = BytesMut::new();
        for id in 1..=5 {
            all.extend_from_slice(&api_versions(id));
        }
        client.write_all(&all).await.expect("write");
        for id in 1..=5 {
            let (got, _) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut client))
                .await
                .expect("in time")
                .expect("a response");
            assert_eq!(got, id);
        }
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn context_carries_header_connection_and_remembered_client_software() {
        let running = start(|_| 0, 10).await;
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        let mut all = request(ApiKey::Metadata, 12, 1, MetadataRequest::default());
        all.extend_from_slice(&request(
            ApiKey::ApiVersions,
            3,
            2,
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("librdkafka"))
                .with_client_software_version(StrBytes::from_static_str("2.6.1")),
        ));
        all.extend_from_slice(&request(
            ApiKey::Metadata,
            12,
            3,
            MetadataRequest::default(),
        ));
        client.write_all(&all).await.expect("write");
        for id in 1..=3 {
            let (got, _) = read_response(&mut client).await.expect("a response");
            assert_eq!(got, id);
        }
        let contexts = running.fake.contexts.lock().expect("lock").clone();
        let summary: Vec<_> = contexts
            .iter()
            .map(|c| {
                (
                    c.api_key,
                    c.api_version,
                    c.correlation_id,
                    c.client_software
                        .as_deref()
                        .map(|s| (s.name.to_string(), s.version.to_string())),
                )
            })
            .collect();
        let librdkafka = Some(("librdkafka".to_string(), "2.6.1".to_string()));
        assert_eq!(
            summary,
            [
                (ApiKey::Metadata, 12, 1, None),
                (ApiKey::ApiVersions, 3, 2, librdkafka.clone()),
                (ApiKey::Metadata, 12, 3, librdkafka),
            ]
        );
        let local = client.local_addr().expect("local addr");
        for c in &contexts {
            assert_eq!(c.client_id(), "test");
            assert_eq!(c.listener(), "PLAINTEXT");
            assert_eq!(c.peer(), local);
            assert_eq!(c.connection.security_protocol.name(), "PLAINTEXT");
            assert_eq!(c.connection.principal.to_string(), "User:ANONYMOUS");
        }
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn acks_zero_produce_gets_no_response() {
        let running = start(|_| 0, 10).await;
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        let mut all = request(
            ApiKey::Produce,
            9,
            1,
            ProduceRequest::default().with_acks(0),
        );
        all.extend_from_slice(&api_versions(2));
        client.write_all(&all).await.expect("write");
        let (got, _) = read_response(&mut client).await.expect("a response");
        assert_eq!(got, 2, "the acks=0 produce must not be answered");
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn bad_frames_close_the_connection_after_earlier_answers() {
        let running = start(|_| 0, 10).await;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("oversized", 2048i32.to_be_bytes().to_vec()),
            ("negative size", (-1i32).to_be_bytes().to_vec()),
            (
                "unknown api key",
                [8i32.to_be_bytes().to_vec(), vec![0x7f, 0, 0, 0, 0, 0, 0, 1]].concat(),
            ),
            (
                "too short",
                [2i32.to_be_bytes().to_vec(), vec![0, 3]].concat(),
            ),
            ("unsupported version", {
                let mut frame = request(ApiKey::Metadata, 13, 9, MetadataRequest::default());
                frame[7] = 14; // the version's low byte, after the size prefix and api key
                frame.to_vec()
            }),
            ("truncated body", {
                let mut frame = BytesMut::new();
                frame.put_i16(ApiKey::Produce as i16);
                frame.put_i16(9);
                frame.put_i32(9);
                frame.put_i16(-1);
                frame.put_u8(0);
                frame.put_u8(5);
                let mut out = BytesMut::new();
                out.put_i32(frame.len() as i32);
                out.put_slice(&frame);
                out.to_vec()
            }),
        ];
        for (name, bad) in cases {
            let mut client = TcpStream::connect(running.addr).await.expect("connect");
            let mut all = api_versions(1);
            all.extend_from_slice(&bad);
            all.extend_from_slice(&api_versions(3));
            client.write_all(&all).await.expect("write");
            let (got, _) = read_response(&mut client)
                .await
                .expect("the earlier request is answered");
            assert_eq!(got, 1, "{name}");
            assert!(closed(&mut client).await, "{name}: connection must close");
        }
        // The server survived all of it.
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        client.write_all(&api_versions(4)).await.expect("write");
        assert_eq!(read_response(&mut client).await.map(|r| r.0), Some(4));
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn unknown_api_versions_version_gets_error_35_in_v0() {
        let running = start(|_| 0, 10).await;
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        client
            .write_all(&request(
                ApiKey::ApiVersions,
                4,
                5,
                ApiVersionsRequest::default(),
            ))
            .await
            .expect("write");
        let (got, _) = read_response(&mut client).await.expect("a response");
        assert_eq!(got, 5);
        // A version one past ours, with a flexible header as a newer client sends it.
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(5)
            .with_correlation_id(6)
            .encode(&mut frame, 2)
            .expect("header");
        frame.put_u8(1);
        frame.put_u8(1);
        frame.put_u8(0);
        let mut out = BytesMut::new();
        out.put_i32(frame.len() as i32);
        out.put_slice(&frame);
        client.write_all(&out).await.expect("write");
        let (got, mut body) = read_response(&mut client).await.expect("a response");
        assert_eq!(got, 6);
        let decoded = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
        assert_eq!(decoded.error_code, 35);
        assert!(!decoded.api_keys.is_empty());
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    /// With one connection slot, a client of `second` waits in the backlog
    /// until the client of `first` leaves, then gets its answer.
    async fn assert_one_slot(running: Running, first: SocketAddr, second: SocketAddr) {
        let mut first = TcpStream::connect(first).await.expect("connect");
        first.write_all(&api_versions(1)).await.expect("write");
        assert_eq!(read_response(&mut first).await.map(|r| r.0), Some(1));
        let mut second = TcpStream::connect(second).await.expect("connect (backlog)");
        second.write_all(&api_versions(2)).await.expect("write");
        let waited =
            tokio::time::timeout(Duration::from_millis(200), read_response(&mut second)).await;
        assert!(
            waited.is_err(),
            "second client must wait for the connection slot"
        );
        drop(first);
        let answered =
            tokio::time::timeout(Duration::from_secs(5), read_response(&mut second)).await;
        assert_eq!(answered.ok().flatten().map(|r| r.0), Some(2));
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn connection_cap_holds_further_clients_in_the_backlog() {
        let running = start(|_| 0, 1).await;
        let addr = running.addr;
        assert_one_slot(running, addr, addr).await;
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_hand_then_closes() {
        let running = start(|_| 300, 10).await;
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        client.write_all(&api_versions(1)).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.shutdown.cancel();
        let (got, _) = read_response(&mut client)
            .await
            .expect("request in hand is answered");
        assert_eq!(got, 1);
        assert!(closed(&mut client).await);
        tokio::time::timeout(Duration::from_secs(10), running.server)
            .await
            .expect("serve returns within the drain deadline")
            .expect("join")
            .expect("serve");
        assert!(
            TcpStream::connect(running.addr).await.is_err(),
            "listener is closed"
        );
    }

    #[tokio::test]
    async fn each_connection_knows_its_listener() {
        let running = start_named(&["INTERNAL", "EXTERNAL"], |_| 0, 10).await;
        for (i, addr) in running.addrs.iter().enumerate() {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            let id = i32::try_from(i).expect("small") + 1;
            client.write_all(&api_versions(id)).await.expect("write");
            assert_eq!(read_response(&mut client).await.map(|r| r.0), Some(id));
        }
        let seen = running.fake.seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![(1, "INTERNAL".to_string()), (2, "EXTERNAL".to_string())]
        );
        running.shutdown.cancel();
        running.server.await.expect("join").expect("serve");
        for addr in &running.addrs {
            assert!(
                TcpStream::connect(addr).await.is_err(),
                "every listener is closed"
            );
        }
    }

    #[tokio::test]
    async fn the_connection_cap_spans_all_listeners() {
        let running = start_named(&["INTERNAL", "EXTERNAL"], |_| 0, 1).await;
        let (internal, external) = (running.addrs[0], running.addrs[1]);
        assert_one_slot(running, internal, external).await;
    }
}
