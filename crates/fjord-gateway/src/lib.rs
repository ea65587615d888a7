//! `fjord-gateway`: the Kafka wire-protocol server.
//!
//! What it owns: the TCP listeners for Kafka clients, framing, decoding
//! requests and encoding responses with the `kafka-protocol` crate, and the
//! translation between Kafka wire messages and the node's services in
//! domain terms ([`Services`]: replicas, metadata cache, admin, producer
//! ids, groups). It holds no state of its own beyond connections: every
//! answer comes from a service.
//!
//! Layout:
//! - [`server`](serve_listeners): one accept loop per named listener
//!   (Kafka's `listeners`), one connection cap over all of them, shutdown
//!   and drain.
//! - `connection`: one task per connection, generic over its stream; reads
//!   frames ahead, handles requests one at a time, writes responses in
//!   request order, and builds each request's context.
//! - `authz`: ACL checks from a request's context (Kafka's `AuthHelper`),
//!   answered by the broker's authorizer snapshot.
//! - `context`: Kafka's `RequestContext` (api key and version, correlation
//!   id, client id and software, listener, peer, security protocol,
//!   principal) and the per-connection state it is built from.
//! - `frame`: the size-prefixed frame codec, request decoding and response
//!   encoding (one buffer per response).
//! - `handlers/`: one file per Kafka api, each `handle(ctx, svc,
//!   request)`; `handlers/mod.rs` holds the registry (`apis!`), the one
//!   table of served apis, version ranges and handlers that feeds both
//!   ApiVersions/decoding and dispatch.
//! - [`tls`]: SSL listeners (rustls): PEM keystore and truststore,
//!   reloaded when the files change, `ssl.client.auth`, and the client
//!   certificate's principal (`ssl.principal.mapping.rules`). The handshake
//!   runs in the connection's task under a timeout, never in an accept loop.
//! - `sasl`: SASL_PLAINTEXT and SASL_SSL ([`SaslConfig`]): SaslHandshake
//!   and SaslAuthenticate, PLAIN against a users file, the SCRAM-SHA-256/512
//!   server exchange against the SCRAM credentials of the metadata image,
//!   re-authentication (KIP-368), and the gate that lets an unauthenticated
//!   connection call nothing but ApiVersions and the SASL apis.
//! - [`error_code`]: the one place broker errors become Kafka error codes.
//! - [`GatewayError`]: why a connection closed or the server stopped.
//!
//! Invariants:
//! - Responses on a connection go out in request order; acks=0 produce gets
//!   no response (and a failed one closes the connection, as in Kafka).
//! - Bad input never panics: a frame size that is negative or above
//!   `max_frame_bytes`, a short or undecodable header or body, an unknown api
//!   key, an api not served here or a version outside the advertised range
//!   closes the connection. The one exception is ApiVersions at an unknown
//!   version, answered with UNSUPPORTED_VERSION and the supported ranges in
//!   the v0 format, so clients can fall back.
//! - ApiVersions advertises exactly the table decoding enforces, and
//!   dispatch serves exactly that table (both are generated from it).
//! - A client is only ever told broker addresses advertised under the name
//!   of the listener it connected to (never another listener's, which it may
//!   not be able to reach).
//! - Record batches are never decoded or copied on the way in: a frame is
//!   one frozen `Bytes`, and produce hands the broker slices of it; fetch
//!   returns the stored bytes as they are.
//!
//! Lengths from the wire are never trusted for allocation: `kafka-protocol`
//! 0.18.0 as released pre-allocated arrays with the declared count (a
//! 16-byte request could abort the node asking for ~150 GB); the workspace
//! uses a patched copy (`vendor/README.md`), and `frame::allocation_tests`
//! keeps it honest.

mod authz;
mod connection;
mod context;
mod error;
pub mod error_code;
mod frame;
#[cfg(test)]
mod fuzz_tests;
mod handlers;
mod quota;
mod response_frame;
mod sasl;
mod server;
mod services;
pub mod tls;

pub use context::SecurityProtocol;
pub use error::{DecodeSource, GatewayError};
pub use sasl::{PlainUsers, SaslConfig, SaslMechanism};
pub use server::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME_BYTES, GatewayConfig, ListenerConfig, NamedListener,
    serve, serve_listeners,
};
pub use services::Services;

/// Entry points for the micro-benchmarks (`benches/codec.rs`, run by
/// `bench/micro`): the frame codec as the connection uses it. Not an API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_api {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, ResponseKind};
    use tokio_util::codec::Decoder;

    use crate::GatewayError;

    /// Split one frame off `buf` and decode it into a request (dropped).
    pub fn decode_frame(buf: &mut BytesMut, max_frame_bytes: usize) -> Result<bool, GatewayError> {
        let Some(frame) = crate::frame::FrameCodec::new(max_frame_bytes).decode(buf)? else {
            return Ok(false);
        };
        let decoded = crate::frame::decode_request(frame)?;
        std::hint::black_box(decoded);
        Ok(true)
    }

    /// Encode a response frame as the connection does: the chunks it
    /// writes (a Fetch response's record sets are chunks of their own).
    pub fn encode_response(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &ResponseKind,
        size_hint: usize,
    ) -> Result<Vec<Bytes>, GatewayError> {
        crate::frame::encode_response_frame(api_key, version, correlation_id, body, size_hint)
            .map(|frame| frame.chunks().to_vec())
    }

    /// The frame as one buffer, record bytes copied in (the encoding every
    /// response had before Fetch went out in chunks): the baseline.
    pub fn encode_response_copied(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &ResponseKind,
        size_hint: usize,
    ) -> Result<Bytes, GatewayError> {
        crate::frame::encode_response(api_key, version, correlation_id, body, size_hint)
    }
}
