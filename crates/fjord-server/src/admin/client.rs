//! [`KafkaClient`]: one TCP connection to one broker, with the ApiVersions
//! handshake done and versions negotiated.
//!
//! Wire format (Kafka protocol guide): every request and response is a
//! frame `i32 size | header | body`. The request header version follows
//! from the API and its version (`Req::header_version`); so does the
//! response header's, except that ApiVersions responses always use header
//! v0 so that a client can parse them before it knows anything else.
//! Requests on one connection are answered in order; the client sends one
//! at a time and checks the correlation id of each answer.
//!
//! On SSL and SASL_SSL listeners the TCP stream is wrapped in TLS first; on
//! SASL listeners the ApiVersions handshake is followed by SaslHandshake v1
//! and SaslAuthenticate (the mechanisms' messages are in `sasl_client`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::KafkaError;
use super::sasl_client::{ScramClient, plain_message};
use super::security::{ClientSecurity, SaslMechanism, SaslSettings};

/// A TCP or TLS stream; boxed because the CLI's few connections do not
/// need the indirection spared.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// `client_id` in every request header.
pub const CLIENT_ID: &str = "fjord-cli";

/// Largest response frame accepted. Fetch responses are the big ones and
/// are capped by the `max_bytes` we ask for (well below this); anything
/// larger is a corrupt size prefix or not a Kafka broker.
const MAX_FRAME_BYTES: usize = 256 << 20;

/// Version of the first ApiVersions request: v3 is the first flexible one
/// (Kafka 2.4+) and carries our software name. A broker that does not know
/// it answers `UNSUPPORTED_VERSION` in v0 format, and we fall back to v0.
const API_VERSIONS_FIRST_TRY: i16 = 3;

/// Error code `UNSUPPORTED_VERSION`.
const UNSUPPORTED_VERSION: i16 = 35;

/// A connection to one broker after the ApiVersions handshake.
///
/// Not cancellation-safe: if a [`KafkaClient::send`] future is dropped or
/// fails half way, the connection is in an unknown state, so the client
/// marks itself broken and every later call fails; callers reconnect.
pub struct KafkaClient {
    addr: String,
    stream: Box<dyn Io>,
    next_correlation_id: i32,
    /// The broker's supported range per API key, from ApiVersions.
    broker_versions: HashMap<i16, VersionRange>,
    timeout: Duration,
    broken: bool,
}

impl fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaClient")
            .field("addr", &self.addr)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// Connects to `addr` (`host:port`) over PLAINTEXT and negotiates API
    /// versions. `timeout` bounds the connect and every later round trip.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self> {
        Self::connect_with(addr, timeout, &ClientSecurity::plaintext()).await
    }

    /// Like [`KafkaClient::connect`], secured as `security` says: TLS
    /// first, then ApiVersions, then SASL authentication.
    pub async fn connect_with(
        addr: &str,
        timeout: Duration,
        security: &Arc<ClientSecurity>,
    ) -> Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                anyhow::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {addr}: no answer within {timeout:?}"),
                ))
            })?
            .with_context(|| format!("connect to {addr}"))?;
        // Requests are small and strictly request/response: don't let
        // Nagle hold them back.
        stream
            .set_nodelay(true)
            .with_context(|| format!("set TCP_NODELAY on connection to {addr}"))?;
        let stream: Box<dyn Io> = match &security.tls {
            None => Box::new(stream),
            Some(connector) => {
                let name = server_name(addr)?;
                let tls = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| {
                        anyhow::Error::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("TLS handshake with {addr}: no answer within {timeout:?}"),
                        ))
                    })?
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                Box::new(tls)
            }
        };
        let mut client = KafkaClient {
            addr: addr.to_owned(),
            stream,
            next_correlation_id: 0,
            broker_versions: HashMap::new(),
            timeout,
            broken: false,
        };
        client.handshake().await?;
        if let Some(sasl) = &security.sasl {
            client.authenticate(sasl).await.with_context(|| {
                format!(
                    "{} authentication as {} with {addr}",
                    sasl.mechanism.name(),
                    sasl.username
                )
            })?;
        }
        Ok(client)
    }

    /// Connects to the first reachable address of `addrs`, in order. On
    /// failure the error chain ends in the last address's error (an
    /// `io::Error` for refused or timed-out connections, which callers
    /// treat as retriable).
    pub async fn connect_any(
        addrs: &[String],
        timeout: Duration,
        security: &Arc<ClientSecurity>,
    ) -> Result<Self> {
        let mut last_error = None;
        for addr in addrs {
            match Self::connect_with(addr, timeout, security).await {
                Ok(client) => return Ok(client),
                Err(e) => {
                    tracing::debug!(%addr, error = %format!("{e:#}"), "bootstrap server unreachable");
                    last_error = Some(e);
                }
            }
        }
        match last_error {
            None => bail!("no bootstrap server given"),
            Some(e) if addrs.len() == 1 => Err(e),
            Some(e) => Err(e.context(format!(
                "could not reach any bootstrap server of {}",
                addrs.join(",")
            ))),
        }
    }

    /// The `host:port` this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether an earlier failure left the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks the connection unusable, e.g. after a failure that suggests
    /// the peer went away; callers then reconnect.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// The highest version of `Req` both this client and the broker speak.
    pub fn version<Req: Request>(&self) -> Result<i16> {
        self.version_at_most::<Req>(i16::MAX)
    }

    /// Like [`KafkaClient::version`], but no higher than `cap` — for
    /// callers that cannot fill what newer versions require (e.g. topic
    /// ids in Fetch v13+ when the broker's metadata has none).
    pub fn version_at_most<Req: Request>(&self, cap: i16) -> Result<i16> {
        let name = api_name(Req::KEY);
        let broker = self
            .broker_versions
            .get(&Req::KEY)
            .ok_or_else(|| anyhow!("broker {} does not support the {name} API", self.addr))?;
        let usable = broker.intersect(&Req::VERSIONS);
        let version = usable.max.min(cap);
        ensure!(
            !usable.is_empty() && version >= usable.min,
            "broker {} supports {name} versions {broker}, this client supports {} (capped at {cap})",
            self.addr,
            Req::VERSIONS,
        );
        Ok(version)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<Req: Request>(&mut self, req: &Req) -> Result<Req::Response> {
        let version = self.version::<Req>()?;
        self.send_version(req, version).await
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn send_version<Req: Request>(
        &mut self,
        req: &Req,
        version: i16,
    ) -> Result<Req::Response> {
        let (correlation_id, body) = self.round_trip(req, version, true).await?;
        let body = body.ok_or_else(|| anyhow!("response expected but none read"))?;
        let response = decode_response::<Req>(correlation_id, version, body);
        if response.is_err() {
            // Out of step with the broker (or it speaks something else):
            // do not trust the next frame on this connection either.
            self.broken = true;
        }
        response.with_context(|| {
            format!(
                "decode {} v{version} response from {}",
                api_name(Req::KEY),
                self.addr
            )
        })
    }

    /// Sends `req` at `version` without reading a response, for requests
    /// the broker does not answer (Produce with `acks=0`).
    pub async fn send_without_response<Req: Request>(
        &mut self,
        req: &Req,
        version: i16,
    ) -> Result<()> {
        self.round_trip(req, version, false).await.map(|_| ())
    }

    /// Writes one request and, if `expect_response`, reads one response
    /// frame, all within the timeout; returns the request's correlation id
    /// and the response body. Poisons the client on any failure.
    async fn round_trip<Req: Request>(
        &mut self,
        req: &Req,
        version: i16,
        expect_response: bool,
    ) -> Result<(i32, Option<Bytes>)> {
        ensure!(
            !self.broken,
            "connection to {} is unusable after an earlier error",
            self.addr
        );
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(correlation_id, version, req)
            .with_context(|| format!("encode {} v{version} request", api_name(Req::KEY)))?;

        // Poisoned up front; cleared only when the exchange completes, so
        // a dropped future or an I/O error leaves the client broken.
        self.broken = true;
        let timeout = self.timeout;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            // TLS buffers what it encrypts.
            self.stream.flush().await?;
            if expect_response {
                read_frame(&mut self.stream).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                anyhow::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no response within {timeout:?}"),
                ))
            })
            .and_then(|r| r);
        let response = result.with_context(|| {
            format!(
                "{} request to {} (correlation id {correlation_id})",
                api_name(Req::KEY),
                self.addr
            )
        })?;
        self.broken = false;
        Ok((correlation_id, response))
    }

    /// ApiVersions handshake: learn what the broker speaks.
    async fn handshake(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fjord"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let (correlation_id, first) = self
            .round_trip(&request, API_VERSIONS_FIRST_TRY, true)
            .await?;
        let first = first.ok_or_else(|| anyhow!("ApiVersions response expected"))?;
        let response = match decode_response::<ApiVersionsRequest>(
            correlation_id,
            API_VERSIONS_FIRST_TRY,
            first,
        ) {
            Ok(r) if r.error_code != UNSUPPORTED_VERSION => r,
            // An older broker: it answered in v0 format (or we could not
            // parse the answer as v3). v0 has no fields to fill.
            _ => {
                tracing::debug!(addr = %self.addr, "ApiVersions v3 refused, retrying with v0");
                self.send_version(&ApiVersionsRequest::default(), 0).await?
            }
        };
        KafkaError::check(
            response.error_code,
            format_args!("ApiVersions handshake with {}", self.addr),
        )?;
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Ok(())
    }
}

impl KafkaClient {
    /// SaslHandshake v1, then SaslAuthenticate round(s) for the mechanism.
    /// A refusal is the broker's error (SASL_AUTHENTICATION_FAILED with its
    /// message); the broker closes the connection after it.
    async fn authenticate(&mut self, sasl: &SaslSettings) -> Result<()> {
        let mechanism = sasl.mechanism.name();
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let response = self.send_version(&handshake, 1).await?;
        KafkaError::check(response.error_code, "SaslHandshake").with_context(|| {
            let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            format!(
                "mechanism {mechanism} on {}, which offers [{}]",
                self.addr,
                enabled.join(", ")
            )
        })?;
        match sasl.mechanism {
            SaslMechanism::Plain => {
                self.sasl_round(plain_message(&sasl.username, &sasl.password))
                    .await?;
            }
            SaslMechanism::Scram(m) => {
                let scram = ScramClient::new(m, &sasl.username, &sasl.password);
                let server_first = self.sasl_round(scram.first_message()).await?;
                let (client_final, pending) = scram.final_message(&server_first)?;
                let server_final = self.sasl_round(client_final).await?;
                pending.verify_server_final(&server_final)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round trip: our bytes, the server's bytes.
    async fn sasl_round(&mut self, auth_bytes: Vec<u8>) -> Result<Bytes> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes));
        let response = self.send(&request).await?;
        if response.error_code != 0 {
            // The broker closes the connection after a failed authentication.
            self.broken = true;
        }
        KafkaError::check_with_message(
            response.error_code,
            response.error_message.as_ref(),
            "SaslAuthenticate",
        )?;
        Ok(response.auth_bytes)
    }
}

/// The TLS server name for `host:port`: an IP address or a DNS name.
fn server_name(addr: &str) -> Result<rustls::pki_types::ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| anyhow!("{host:?} is not a host name usable for TLS: {e}"))
}

/// `Metadata`, `Fetch`, ... for messages; the numeric key if unknown.
fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(()) => format!("api key {key}"),
    }
}

/// One request frame: size prefix, request header, body.
pub(crate) fn encode_request<Req: Request>(
    correlation_id: i32,
    version: i16,
    req: &Req,
) -> Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::new();
    buf.put_i32(0); // size, filled in below
    header.encode(&mut buf, Req::header_version(version))?;
    req.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4).context("request too large for one frame")?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Parses a response frame body (size prefix already stripped).
pub(crate) fn decode_response<Req: Request>(
    correlation_id: i32,
    version: i16,
    mut body: Bytes,
) -> Result<Req::Response> {
    let header_version = <Req::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut body, header_version)?;
    ensure!(
        header.correlation_id == correlation_id,
        "response correlation id {} does not match request {correlation_id}",
        header.correlation_id
    );
    <Req::Response as Decodable>::decode(&mut body, version)
}

/// Reads one size-prefixed frame and returns its body.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> Result<Bytes> {
    let size = stream.read_i32().await.context("read response size")?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_FRAME_BYTES)
        .ok_or_else(|| anyhow!("invalid response frame size {size}"))?;
    let mut body = vec![0u8; size];
    stream
        .read_exact(&mut body)
        .await
        .context("read response body")?;
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::messages::{
        MetadataRequest, MetadataResponse, TopicName, metadata_request::MetadataRequestTopic,
        metadata_response::MetadataResponseTopic,
    };
    use kafka_protocol::protocol::{Message, decode_request_header_from_buffer};

    use super::*;

    fn metadata_request() -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t1")))),
            ]))
            .with_allow_auto_topic_creation(false)
    }

    #[test]
    fn request_frame_is_size_prefixed_and_parseable() {
        for version in [4, 9, 12] {
            let request = metadata_request();
            let mut frame = encode_request(7, version, &request)
                .expect("encode")
                .freeze();
            let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            assert_eq!(size as usize, frame.len() - 4);
            let mut body = frame.split_off(4);
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 7);
            assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
            let decoded = MetadataRequest::decode(&mut body, version).expect("body");
            assert_eq!(decoded, request);
        }
    }

    fn response_frame(correlation_id: i32, version: i16, response: &MetadataResponse) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, MetadataResponse::header_version(version))
            .expect("header");
        response.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    #[test]
    fn response_is_decoded_with_its_header_version() {
        let response = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t1"))))
                .with_error_code(3),
        ]);
        // v9+ responses carry a flexible (v1) header, older ones v0.
        for version in [5, 9, 12] {
            let body = response_frame(42, version, &response);
            let decoded = decode_response::<MetadataRequest>(42, version, body).expect("decode");
            assert_eq!(decoded.topics.len(), 1);
            assert_eq!(decoded.topics[0].error_code, 3);
        }
    }

    #[test]
    fn mismatched_correlation_id_is_rejected() {
        let body = response_frame(1, 12, &MetadataResponse::default());
        let err = decode_response::<MetadataRequest>(2, 12, body).expect_err("mismatch");
        assert!(err.to_string().contains("correlation id"), "{err}");
    }

    #[test]
    fn api_versions_response_uses_header_v0_even_when_flexible() {
        assert_eq!(ApiVersionsResponse::header_version(3), 0);
        assert_eq!(ApiVersionsRequest::header_version(3), 2);
    }

    #[tokio::test]
    async fn read_frame_checks_size() {
        let mut ok: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', b'z'];
        assert_eq!(read_frame(&mut ok).await.expect("frame"), &b"abc"[..]);

        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut negative).await.is_err());

        let mut truncated: &[u8] = &[0, 0, 0, 5, b'a'];
        assert!(read_frame(&mut truncated).await.is_err());
    }

    /// The handshake, version negotiation and a request against a scripted
    /// broker on loopback.
    #[tokio::test]
    async fn handshake_negotiates_versions_with_a_scripted_broker() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use tokio::net::TcpListener;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            // ApiVersions v3.
            let mut body = read_frame(&mut socket).await.expect("request");
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
            let response = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default()
                    .with_api_key(ApiKey::ApiVersions as i16)
                    .with_min_version(0)
                    .with_max_version(3),
                ApiVersion::default()
                    .with_api_key(ApiKey::Metadata as i16)
                    .with_min_version(0)
                    .with_max_version(99),
            ]);
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, 0)
                .expect("header");
            response.encode(&mut out, 3).expect("body");
            let size = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&size.to_be_bytes());
            socket.write_all(&out).await.expect("write");

            // Metadata at the capped version.
            let mut body = read_frame(&mut socket).await.expect("request");
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
            let version = header.request_api_version;
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, MetadataResponse::header_version(version))
                .expect("header");
            MetadataResponse::default()
                .encode(&mut out, version)
                .expect("body");
            let size = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&size.to_be_bytes());
            socket.write_all(&out).await.expect("write");
            version
        });

        let mut client = KafkaClient::connect(&addr, Duration::from_secs(5))
            .await
            .expect("connect");
        // The broker claims Metadata up to v99; we cap at what we know.
        assert_eq!(
            client.version::<MetadataRequest>().expect("metadata"),
            MetadataRequest::VERSIONS.max
        );
        assert_eq!(
            client
                .version_at_most::<MetadataRequest>(9)
                .expect("capped"),
            9
        );
        let err = client
            .version::<kafka_protocol::messages::FetchRequest>()
            .expect_err("fetch not offered");
        assert!(err.to_string().contains("Fetch"), "{err}");
        client
            .send(&metadata_request())
            .await
            .expect("metadata round trip");
        let sent_version = broker.await.expect("broker task");
        assert_eq!(sent_version, MetadataRequest::VERSIONS.max);
        assert!(!client.is_broken());
    }

    /// A broker that accepts but never answers: the handshake times out
    /// with an I/O `TimedOut` error (which callers treat as retriable).
    #[tokio::test]
    async fn silent_broker_times_out() {
        use tokio::net::TcpListener;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let err = KafkaClient::connect(&addr, Duration::from_millis(200))
            .await
            .expect_err("no answer");
        assert!(format!("{err:#}").contains("no response within"), "{err:#}");
        assert!(err.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        }));
        silent.abort();
    }
}
