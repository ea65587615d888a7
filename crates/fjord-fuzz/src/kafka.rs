//! Seeds for fuzzing the Kafka protocol: one well-formed request frame
//! (header and body, without the size prefix) per api and version, and
//! Produce requests that carry real record batches. Shared by the gateway's
//! in-process decoder fuzzing and the end-to-end run against a live node.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A body the decoder accepts at `version`: kafka-protocol builds none for
/// us generically, but neutral bytes (zero counts and lengths; 1 for the
/// compact encodings, where 0 means null) decode into a minimal request.
/// Fetch's flexible versions decode from neither (a replica id of 0 from a
/// consumer is refused): they get a one-partition fetch.
pub fn minimal_body(api: ApiKey, version: i16) -> Option<RequestKind> {
    [0u8, 1]
        .into_iter()
        .find_map(|fill| RequestKind::decode(api, &mut Bytes::from(vec![fill; 512]), version).ok())
        .or_else(|| (api == ApiKey::Fetch).then(fetch))
}

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

/// Header and body of a request frame (what follows the size prefix).
pub fn frame_body(api: ApiKey, version: i16, body: &RequestKind) -> Option<Vec<u8>> {
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

fn produce_with_records(compression: Compression) -> Option<RequestKind> {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut batch, &records, &options).ok()?;
    Some(RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]),
    ))
}

/// A minimal request of every (api, min..=max version) given that decodes,
/// plus Produce requests with records (plain, gzip, zstd) when Produce is
/// among them.
pub fn request_seeds(apis: impl IntoIterator<Item = (ApiKey, i16, i16)>) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (api, min, max) in apis {
        for version in min..=max {
            seeds.extend(minimal_body(api, version).and_then(|b| frame_body(api, version, &b)));
        }
        if api == ApiKey::Produce {
            let with_records = [
                (min, Compression::None),
                (max, Compression::Gzip),
                (max, Compression::Zstd),
            ];
            for (version, compression) in with_records {
                seeds.extend(
                    produce_with_records(compression).and_then(|b| frame_body(api, version, &b)),
                );
            }
        }
    }
    seeds
}
