//! Kafka framing: a 4-byte big-endian size, then the request header and body.
//!
//! Decoding is zero-copy: a frame is split off the connection's read buffer
//! and frozen, and the `kafka-protocol` decoders slice fields (record batches
//! above all) out of that one `Bytes`. Every path that meets bad input returns
//! a [`GatewayError`]; none panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio_util::codec::Decoder;

use crate::error::{GatewayError, boxed};
use crate::handlers;
use crate::response_frame::{ChunkedFrame, ResponseFrame};

/// Splits length-prefixed frames off a byte stream, refusing sizes that are
/// negative or above `max_frame_bytes` before reading (or allocating) them.
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    max_frame_bytes: usize,
    /// On a SASL listener: the smaller bound of frames read before the
    /// connection has authenticated (Kafka's `sasl.server.max.receive.size`),
    /// lifted once the flag is set; an unauthenticated client cannot make the
    /// broker buffer `socket.request.max.bytes`.
    pre_auth: Option<(usize, Arc<AtomicBool>)>,
}

impl FrameCodec {
    pub(crate) fn new(max_frame_bytes: usize) -> Self {
        FrameCodec {
            max_frame_bytes,
            pre_auth: None,
        }
    }

    /// Frames up to `max_pre_auth_bytes` until `authenticated` is set.
    pub(crate) fn with_pre_auth_limit(
        mut self,
        max_pre_auth_bytes: usize,
        authenticated: Arc<AtomicBool>,
    ) -> Self {
        self.pre_auth = Some((max_pre_auth_bytes, authenticated));
        self
    }

    fn max(&self) -> usize {
        match &self.pre_auth {
            Some((limit, authenticated)) if !authenticated.load(Ordering::Acquire) => {
                (*limit).min(self.max_frame_bytes)
            }
            _ => self.max_frame_bytes,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = GatewayError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, GatewayError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = usize::try_from(size).map_err(|_| GatewayError::NegativeFrameSize { size })?;
        let max = self.max();
        if size > max {
            return Err(GatewayError::FrameTooLarge { size, max });
        }
        let total = 4 + size;
        if src.len() < total {
            // Read the rest straight into one allocation of the frame's size.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size).freeze()))
    }
}

/// A decoded request, ready for its handler.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) api_key: ApiKey,
    pub(crate) header: RequestHeader,
    pub(crate) body: RequestKind,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded {
    Request(Box<Request>),
    /// ApiVersions at a version we do not know: answered (not closed) with
    /// UNSUPPORTED_VERSION and our ranges in the v0 format, so that the client
    /// can retry at a version we speak.
    UnsupportedApiVersions {
        correlation_id: i32,
        version: i16,
    },
}

/// Decode one frame (without its size prefix) into a request.
pub(crate) fn decode_request(mut frame: Bytes) -> Result<Decoded, GatewayError> {
    if frame.len() < 4 {
        return Err(GatewayError::FrameTooShort { size: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|()| GatewayError::UnknownApiKey { api_key: raw_key })?;
    let Some(supported) = handlers::supported_versions(api_key) else {
        return Err(GatewayError::UnsupportedApi { api_key });
    };
    if version < supported.min || version > supported.max {
        // The correlation id sits at the same place in every header version,
        // so a client speaking an ApiVersions version (and header) we do not
        // know still gets an answer it can match.
        return match frame.get(4..8) {
            Some(id) if api_key == ApiKey::ApiVersions => Ok(Decoded::UnsupportedApiVersions {
                correlation_id: i32::from_be_bytes([id[0], id[1], id[2], id[3]]),
                version,
            }),
            _ => Err(GatewayError::UnsupportedVersion { api_key, version }),
        };
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        GatewayError::MalformedHeader {
            api_key,
            version,
            source: boxed(e),
        }
    })?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| {
        GatewayError::MalformedRequest {
            api_key,
            version,
            correlation_id: header.correlation_id,
            source: boxed(e),
        }
    })?;
    if frame.has_remaining() {
        tracing::debug!(
            ?api_key,
            version,
            trailing = frame.remaining(),
            "ignoring trailing bytes after request body"
        );
    }
    Ok(Decoded::Request(Box::new(Request {
        api_key,
        header,
        body,
    })))
}

/// Encode a whole response frame (size prefix, header, body) into one buffer.
///
/// `size_hint` is the caller's guess of the body size (a fetch knows its
/// record bytes), so big responses are written without regrowing.
pub(crate) fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    size_hint: usize,
) -> Result<Bytes, GatewayError> {
    let encode_error = |e| GatewayError::Encode {
        api_key,
        version,
        source: boxed(e),
    };
    let mut buf = BytesMut::with_capacity(64 + size_hint);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(encode_error)?;
    body.encode(&mut buf, version).map_err(encode_error)?;
    let size = i32::try_from(buf.len() - 4).map_err(|e| GatewayError::Encode {
        api_key,
        version,
        source: boxed(e),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Encode a response frame as the connection writes it: a Fetch response
/// as chunks whose record bytes are the log's `Bytes` (not copied; the size
/// prefix is computed first, so nothing is patched afterwards), any other
/// response as one buffer ([`encode_response`]).
pub(crate) fn encode_response_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    size_hint: usize,
) -> Result<ResponseFrame, GatewayError> {
    let ResponseKind::Fetch(fetch) = body else {
        return encode_response(api_key, version, correlation_id, body, size_hint)
            .map(ResponseFrame::from);
    };
    let encode_error = |e| GatewayError::Encode {
        api_key,
        version,
        source: boxed(e),
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + fetch.compute_size(version)?))
        .map_err(encode_error)?;
    let size = i32::try_from(size).map_err(|e| GatewayError::Encode {
        api_key,
        version,
        source: boxed(e),
    })?;
    // Fields only: the records become chunks of their own.
    let mut frame = ChunkedFrame::with_capacity(256);
    frame.put_i32(size);
    header
        .encode(&mut frame, header_version)
        .map_err(encode_error)?;
    fetch.encode(&mut frame, version).map_err(encode_error)?;
    Ok(frame.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn frame_of(api_key: ApiKey, version: i16, body: impl FnOnce(&mut BytesMut)) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("encode header");
        body(&mut buf);
        buf.freeze()
    }

    fn codec_decode(codec: &mut FrameCodec, input: &[u8]) -> Result<Option<Bytes>, GatewayError> {
        let mut buf = BytesMut::from(input);
        codec.decode(&mut buf)
    }

    #[test]
    fn frame_codec_waits_for_whole_frame_then_splits_it() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.put_i32(3);
        buf.put_slice(b"ab");
        assert!(codec.decode(&mut buf).expect("partial").is_none());
        buf.put_slice(b"c");
        buf.put_i32(1);
        let frame = codec.decode(&mut buf).expect("whole").expect("a frame");
        assert_eq!(&frame[..], b"abc");
        assert_eq!(buf.len(), 4, "next frame's prefix stays");
    }

    #[test]
    fn frame_codec_refuses_oversized_and_negative_sizes() {
        let mut codec = FrameCodec::new(100);
        let too_big = 101i32.to_be_bytes();
        assert!(matches!(
            codec_decode(&mut codec, &too_big),
            Err(GatewayError::FrameTooLarge {
                size: 101,
                max: 100
            })
        ));
        let negative = (-5i32).to_be_bytes();
        assert!(matches!(
            codec_decode(&mut codec, &negative),
            Err(GatewayError::NegativeFrameSize { size: -5 })
        ));
        let at_cap = 100i32.to_be_bytes();
        assert!(
            codec_decode(&mut codec, &at_cap)
                .expect("at cap is fine")
                .is_none()
        );
    }

    #[test]
    fn short_and_unknown_frames_are_errors() {
        for short in [&b""[..], b"\x00", b"\x00\x03\x00"] {
            assert!(matches!(
                decode_request(Bytes::copy_from_slice(short)),
                Err(GatewayError::FrameTooShort { .. })
            ));
        }
        assert!(matches!(
            decode_request(Bytes::from_static(b"\x7f\x00\x00\x00\x00\x00\x00\x01")),
            Err(GatewayError::UnknownApiKey { api_key: 0x7f00 })
        ));
        // ConsumerGroupHeartbeat is a Kafka api, but not one served here.
        assert!(matches!(
            decode_request(frame_of(ApiKey::ConsumerGroupHeartbeat, 0, |_| {})),
            Err(GatewayError::UnsupportedApi { .. })
        ));
    }

    #[test]
    fn unsupported_versions_close_except_api_versions() {
        assert!(matches!(
            decode_request(frame_of(ApiKey::Produce, 2, |_| {})),
            Err(GatewayError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            decode_request(frame_of(ApiKey::Metadata, 99, |_| {})),
            Err(GatewayError::UnsupportedVersion { version: 99, .. })
        ));
        match decode_request(frame_of(ApiKey::ApiVersions, 9, |_| {})) {
            Ok(Decoded::UnsupportedApiVersions {
                correlation_id: 42,
                version: 9,
            }) => {}
            other => panic!("expected UnsupportedApiVersions, got {other:?}"),
        }
        // Even with a header that does not decode at that version's header
        // version (a v1 header without tagged fields), or no client id at all.
        let header_only = Bytes::from_static(b"\x00\x12\x00\x63\x00\x00\x00\x07");
        assert!(matches!(
            decode_request(header_only),
            Ok(Decoded::UnsupportedApiVersions {
                correlation_id: 7,
                version: 99
            })
        ));
        // Too short to carry a correlation id: closed.
        assert!(decode_request(Bytes::from_static(b"\x00\x12\x00\x63\x00")).is_err());
    }

    #[test]
    fn truncated_and_garbage_bodies_are_errors_not_panics() {
        let mut body = BytesMut::new();
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t")))),
            ]))
            .encode(&mut body, 12)
            .expect("encode");
        let whole = frame_of(ApiKey::Metadata, 12, |b| b.put_slice(&body));
        assert!(matches!(
            decode_request(whole.clone()),
            Ok(Decoded::Request(_))
        ));
        for cut in 0..whole.len() {
            // Never a panic, whatever the cut; short ones are errors.
            let _ = decode_request(whole.slice(..cut));
        }
        // Deterministic pseudo-random garbage after valid api keys and versions.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let mut buf = BytesMut::new();
            let (key, version) = [
                (0i16, 9i16),
                (1, 12),
                (2, 7),
                (3, 12),
                (18, 3),
                (19, 7),
                (60, 1),
            ][round % 7];
            buf.put_i16(key);
            buf.put_i16(version);
            for _ in 0..(round % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Small bytes keep array lengths small: kafka-protocol 0.18
                // pre-allocates whatever count the wire declares.
                buf.put_u8((seed % 4) as u8);
            }
            let _ = decode_request(buf.freeze());
        }
    }

    #[test]
    fn malformed_header_is_an_error() {
        // ApiVersions v3 uses a flexible header: a client id length that runs past the end.
        let frame = Bytes::from_static(b"\x00\x12\x00\x03\x00\x00\x00\x01\x00\x50");
        assert!(matches!(
            decode_request(frame),
            Err(GatewayError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn request_records_are_slices_of_the_frame() {
        use kafka_protocol::messages::ProduceRequest;
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let records = Bytes::from_static(b"pretend-these-are-record-batches");
        let mut body = BytesMut::new();
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records.clone())),
                    ]),
            ])
            .encode(&mut body, 9)
            .expect("encode");
        let frame = frame_of(ApiKey::Produce, 9, |b| b.put_slice(&body));
        let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        let Ok(Decoded::Request(request)) = decode_request(frame.clone()) else {
            panic!("produce should decode");
        };
        let RequestKind::Produce(produce) = request.body else {
            panic!("not a produce");
        };
        let got = produce.topic_data[0].partition_data[0]
            .records
            .clone()
            .expect("records");
        assert_eq!(got, records);
        assert!(
            frame_range.contains(&(got.as_ptr() as usize)),
            "records must not be copied"
        );
    }

    #[test]
    fn api_versions_request_roundtrips_header() {
        let mut body = BytesMut::new();
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .encode(&mut body, 3)
            .expect("encode");
        let frame = frame_of(ApiKey::ApiVersions, 3, |b| b.put_slice(&body));
        let Ok(Decoded::Request(request)) = decode_request(frame) else {
            panic!("should decode");
        };
        assert_eq!(request.header.correlation_id, 42);
        assert_eq!(request.api_key, ApiKey::ApiVersions);
    }
}

#[cfg(test)]
mod allocation_tests {
    use super::*;

    /// A 16-byte Metadata v0 request declaring 2^31-1 topics. kafka-protocol
    /// 0.18 as released pre-allocates the declared count (about 150 GB) and
    /// the allocation failure aborts the process; with array capacity bounded
    /// by the bytes remaining it is an ordinary decode error.
    #[test]

    fn huge_declared_array_count_is_a_decode_error() {
        let frame = Bytes::from_static(b"\x00\x03\x00\x00\x00\x00\x00\x01\xff\xff\x7f\xff\xff\xff");
        assert!(matches!(
            decode_request(frame),
            Err(GatewayError::MalformedRequest { .. })
        ));
        // The same through a compact (flexible) array: Metadata v9, count 2^32-2.
        let frame =
            Bytes::from_static(b"\x00\x03\x00\x09\x00\x00\x00\x01\xff\xff\x00\xff\xff\xff\xff\x0f");
        assert!(matches!(
            decode_request(frame),
            Err(GatewayError::MalformedRequest { .. })
        ));
    }

    /// A Fetch response in chunks is byte for byte the one-buffer frame, and
    /// a large record set is the log's own `Bytes` (same memory), not a copy.
    #[test]
    fn fetch_frames_carry_the_record_bytes_uncopied() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let big = Bytes::from(vec![7u8; 4096]);
        let small = Bytes::from(vec![9u8; 100]);
        for version in [4, 11, 12, 16] {
            let body = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        PartitionData::default().with_records(Some(big.clone())),
                        PartitionData::default()
                            .with_partition_index(1)
                            .with_records(Some(small.clone())),
                        PartitionData::default()
                            .with_partition_index(2)
                            .with_records(Some(big.clone())),
                    ]),
            ]));
            let whole = encode_response(ApiKey::Fetch, version, 5, &body, 0).expect("whole");
            let frame = encode_response_frame(ApiKey::Fetch, version, 5, &body, 0).expect("chunks");
            let joined: Vec<u8> = frame
                .chunks()
                .iter()
                .flat_map(|c| c.iter().copied())
                .collect();
            assert_eq!(joined, whole.to_vec(), "v{version}");
            let shared = frame
                .chunks()
                .iter()
                .filter(|c| c.as_ptr() == big.as_ptr() && c.len() == big.len())
                .count();
            assert_eq!(shared, 2, "v{version}: both large record sets uncopied");
            // And written through the vectored Buf, the same bytes again.
            let mut buf = frame.into_buf();
            let mut written = Vec::new();
            while buf.has_remaining() {
                let n = buf.chunk().len().min(1000);
                written.extend_from_slice(&buf.chunk()[..n]);
                buf.advance(n);
            }
            assert_eq!(written, whole.to_vec());
        }
    }
}
