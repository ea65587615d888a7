//! Hostile input for frame decoding (issue 17, item 7), run by the test
//! command for a bounded time (`fjord-fuzz`).
//!
//! Seeds: a request of every api and version the gateway serves, encoded
//! from what the decoder makes of neutral bytes, plus a Produce request
//! carrying a real record batch. Each input is decoded three ways, as a
//! connection meets it: as one frame body, through the frame codec with a
//! size prefix, and as a raw byte stream. Any outcome but a panic or an
//! allocation past the limit is fine: errors close the connection.

use bytes::{BufMut, Bytes, BytesMut};
use fjord_fuzz::Fuzz;
use fjord_log::testing::{TIMESTAMP, encode, record};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use tokio_util::codec::Decoder;

use crate::frame::{FrameCodec, decode_request};
use crate::handlers::SUPPORTED;

const MAX_FRAME_BYTES: usize = 1 << 20;

/// A body the decoder accepts at `version`: kafka-protocol builds none for
/// us generically, but neutral bytes (zero counts and lengths; 1 for the
/// compact encodings, where 0 means null) decode into a minimal request.
fn minimal_body(api: ApiKey, version: i16) -> Option<RequestKind> {
    [0u8, 1]
        .into_iter()
        .find_map(|fill| RequestKind::decode(api, &mut Bytes::from(vec![fill; 512]), version).ok())
        .or_else(|| (api == ApiKey::Fetch).then(fetch))
}

/// Fetch's flexible versions decode from no neutral filling (a replica id
/// of 0 from a consumer is refused); this one asks for one partition.
fn fetch() -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        FetchPartition::default().with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    )
}

fn frame_body(api: ApiKey, version: i16, body: &RequestKind) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn produce_with_records(compression: Compression) -> RequestKind {
    let records: Vec<_> = (0..3)
        .map(|i| {
            record(
                i,
                TIMESTAMP + i,
                Some(Bytes::from(format!("k{i}"))),
                Bytes::from_static(b"value"),
            )
        })
        .collect();
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(encode(&records, compression))),
                    ]),
            ]),
    )
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .filter_map(|(api, version)| frame_body(api, version, &minimal_body(api, version)?))
        .collect();
    for (version, compression) in [
        (3, Compression::None),
        (9, Compression::Gzip),
        (11, Compression::Zstd),
    ] {
        seeds.extend(frame_body(
            ApiKey::Produce,
            version,
            &produce_with_records(compression),
        ));
    }
    seeds
}

fn decode_all_ways(input: &[u8]) {
    let _ = std::hint::black_box(decode_request(Bytes::copy_from_slice(input)));
    for stream in [
        {
            let mut framed = BytesMut::with_capacity(input.len() + 4);
            framed.put_i32(input.len() as i32);
            framed.put_slice(input);
            framed
        },
        BytesMut::from(input),
    ] {
        let mut stream = stream;
        let mut codec = FrameCodec::new(MAX_FRAME_BYTES);
        while let Ok(Some(frame)) = codec.decode(&mut stream) {
            let _ = std::hint::black_box(decode_request(frame));
        }
    }
}

#[test]
fn every_served_api_has_a_seed() {
    let missing: Vec<(ApiKey, i16)> = SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .filter(|&(api, version)| minimal_body(api, version).is_none())
        .collect();
    assert!(missing.is_empty(), "no seed for {missing:?}");
    let seeds = seeds();
    for seed in &seeds {
        assert!(
            decode_request(Bytes::copy_from_slice(seed)).is_ok(),
            "a seed must decode: {}",
            fjord_fuzz::hex(seed)
        );
    }
}

#[test]
fn fuzz_request_frames() {
    let report = Fuzz::from_env("request frames").run(&seeds(), decode_all_ways);
    assert!(report.cases > 0);
}
