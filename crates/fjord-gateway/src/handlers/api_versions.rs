//! ApiVersions (key 18): the apis and version ranges this gateway serves,
//! exactly the registry's [`SUPPORTED`] table (`handlers/mod.rs`), which
//! request decoding enforces too.
//!
//! The client software name and version a v3+ request carries are kept by
//! the connection (`RequestContext::client_software`), not here.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SUPPORTED;
use crate::context::RequestContext;
use crate::services::Services;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub(crate) async fn handle(
    _ctx: &RequestContext,
    _svc: &Services,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    supported()
}

/// Every served api and its version range.
fn supported() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The answer to an ApiVersions request at a version we do not speak; the
/// caller encodes it as v0, as Kafka does, so any client can read it.
pub(crate) fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
    use kafka_protocol::protocol::{Decodable, Message};

    use crate::frame::encode_response;
    use crate::handlers::supported_versions;

    fn decode_frame(mut frame: Bytes, version: i16) -> (i32, ApiVersionsResponse) {
        let size = frame.get_i32();
        assert_eq!(size as usize, frame.remaining());
        // ApiVersions responses always use header v0 (just the correlation id).
        let header = ResponseHeader::decode(&mut frame, 0).expect("header");
        let body = ApiVersionsResponse::decode(&mut frame, version).expect("body");
        assert!(!frame.has_remaining());
        (header.correlation_id, body)
    }

    #[test]
    fn advertises_exactly_the_supported_table() {
        let response = supported();
        assert_eq!(response.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        let expected: Vec<(i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|&(k, min, max)| (k as i16, min, max))
            .collect();
        assert_eq!(advertised, expected);
    }

    #[test]
    fn supported_ranges_fit_the_protocol_crate() {
        for &(key, min, max) in SUPPORTED {
            let crate_range = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(
                crate_range.min <= min && max <= crate_range.max,
                "{key:?} {min}..{max} outside kafka-protocol's {crate_range}"
            );
        }
        assert_eq!(ApiVersionsResponse::VERSIONS.max, 4);
        // The KIP-896 floors Kafka 4 enforces for the hot apis.
        assert_eq!(supported_versions(ApiKey::Produce).map(|r| r.min), Some(3));
        assert_eq!(supported_versions(ApiKey::Fetch).map(|r| r.min), Some(4));
        assert_eq!(
            supported_versions(ApiKey::ListOffsets).map(|r| r.min),
            Some(1)
        );
        // The group apis at their KIP-896 floors.
        for (key, min) in [
            (ApiKey::FindCoordinator, 0),
            (ApiKey::JoinGroup, 0),
            (ApiKey::SyncGroup, 0),
            (ApiKey::Heartbeat, 0),
            (ApiKey::LeaveGroup, 0),
            (ApiKey::OffsetCommit, 2),
            (ApiKey::OffsetFetch, 1),
            (ApiKey::DescribeGroups, 0),
            (ApiKey::ListGroups, 0),
            (ApiKey::DeleteGroups, 0),
            (ApiKey::OffsetDelete, 0),
            (ApiKey::AddPartitionsToTxn, 0),
            (ApiKey::AddOffsetsToTxn, 0),
            (ApiKey::EndTxn, 0),
            (ApiKey::TxnOffsetCommit, 0),
        ] {
            assert_eq!(supported_versions(key).map(|r| r.min), Some(min), "{key:?}");
        }
        assert!(supported_versions(ApiKey::ConsumerGroupHeartbeat).is_none());
    }

    #[test]
    fn encodes_and_decodes_at_every_version() {
        for version in 0..=4 {
            let body = ResponseKind::ApiVersions(supported());
            let frame = encode_response(ApiKey::ApiVersions, version, 7, &body, 0).expect("encode");
            let (correlation_id, decoded) = decode_frame(frame, version);
            assert_eq!(correlation_id, 7);
            assert_eq!(decoded.api_keys.len(), SUPPORTED.len());
        }
    }

    #[test]
    fn unsupported_version_answer_is_v0_with_error_35() {
        let body = ResponseKind::ApiVersions(unsupported_version());
        let frame = encode_response(ApiKey::ApiVersions, 0, 9, &body, 0).expect("encode");
        let (correlation_id, decoded) = decode_frame(frame.clone(), 0);
        assert_eq!(correlation_id, 9);
        assert_eq!(decoded.error_code, 35);
        let fetch = decoded
            .api_keys
            .iter()
            .find(|a| a.api_key == ApiKey::Fetch as i16)
            .expect("fetch advertised");
        assert_eq!((fetch.min_version, fetch.max_version), (4, 18));
        // v0 layout: size, correlation id, error code, array of 6-byte entries.
        let mut raw = BytesMut::from(&frame[..]);
        raw.advance(8);
        assert_eq!(raw.get_i16(), 35);
        assert_eq!(raw.get_i32() as usize, SUPPORTED.len());
        assert_eq!(raw.remaining(), SUPPORTED.len() * 6);
    }
}
