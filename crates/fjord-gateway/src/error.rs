//! Errors of the gateway layer: why a connection is closed, or why the
//! server stopped. Request-level failures are not here: they travel to the
//! client as Kafka error codes (see [`crate::error_code`]).

use kafka_protocol::messages::ApiKey;

/// The decoder errors of `kafka-protocol` are `anyhow::Error`s; kept as a
/// boxed source so the cause chain survives.
pub type DecodeSource = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listening socket cannot tell its own address.
    #[error("cannot read the listener's local address")]
    LocalAddr(#[source] std::io::Error),

    /// Reading from or writing to a client socket failed.
    #[error("connection I/O failed")]
    Io(#[from] std::io::Error),

    /// The 4-byte size prefix is negative.
    #[error("negative frame size {size}")]
    NegativeFrameSize { size: i32 },

    /// The 4-byte size prefix exceeds `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: usize, max: usize },

    /// The frame is too short to hold an api key and version.
    #[error("frame of {size} bytes is too short for a request header")]
    FrameTooShort { size: usize },

    /// The api key is not one Kafka defines.
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16 },

    /// A Kafka api this gateway does not serve (and does not advertise).
    #[error("api {api_key:?} is not served by this broker")]
    UnsupportedApi { api_key: ApiKey },

    /// A version outside the range advertised in ApiVersions.
    #[error("{api_key:?} v{version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },

    /// The request header does not decode.
    #[error("malformed request header for {api_key:?} v{version}")]
    MalformedHeader {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: DecodeSource,
    },

    /// The request body does not decode.
    #[error("malformed {api_key:?} v{version} request (correlation id {correlation_id})")]
    MalformedRequest {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        #[source]
        source: DecodeSource,
    },

    /// A response could not be encoded at the version the client asked for:
    /// a gateway bug (a field set that the version does not have).
    #[error("cannot encode {api_key:?} v{version} response")]
    Encode {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: DecodeSource,
    },

    /// An acks=0 produce failed: Kafka closes the connection so that the
    /// client, which gets no response, notices and refreshes its metadata.
    #[error("acks=0 produce failed on at least one partition")]
    AcksZeroProduceFailed,
}

/// `anyhow::Error` does not implement `std::error::Error`; convert it into a
/// source we can chain.
pub(crate) fn boxed(err: impl Into<DecodeSource>) -> DecodeSource {
    err.into()
}
