//! Micro-benchmarks of request decode and response encode through the
//! gateway's frame codec: a Produce request (decode) and a Fetch request
//! and response (decode, encode), at the versions current clients use.

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_gateway::bench_api;
use fjord_log::testing;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const MAX_FRAME: usize = 100 << 20;

/// `partitions` batches of 100 records of 100 bytes.
fn records() -> Bytes {
    testing::batch_of_values((0..100).map(|_| Bytes::from(vec![b'x'; 100])))
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench"))
}

/// A request frame with its size prefix, as it arrives on the socket.
fn frame(api_key: ApiKey, version: i16, body: RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_request");
    for partitions in [1, 8] {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(
                        (0..partitions)
                            .map(|i| {
                                PartitionProduceData::default()
                                    .with_index(i)
                                    .with_records(Some(records()))
                            })
                            .collect(),
                    ),
            ]);
        let produce = frame(
            ApiKey::Produce,
            PRODUCE_VERSION,
            RequestKind::Produce(produce),
        );
        group.throughput(Throughput::Bytes(produce.len() as u64));
        group.bench_function(format!("produce_v{PRODUCE_VERSION}_{partitions}p"), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&produce[..]);
                black_box(bench_api::decode_frame(&mut buf, MAX_FRAME).expect("decode"))
            })
        });
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![
            FetchTopic::default().with_topic(topic()).with_partitions(
                (0..8)
                    .map(|i| {
                        FetchPartition::default()
                            .with_partition(i)
                            .with_fetch_offset(1_000_000)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            ),
        ]);
    let fetch = frame(ApiKey::Fetch, FETCH_VERSION, RequestKind::Fetch(fetch));
    group.bench_function(format!("fetch_v{FETCH_VERSION}_8p"), |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&fetch[..]);
            black_box(bench_api::decode_frame(&mut buf, MAX_FRAME).expect("decode"))
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_response");
    for (partitions, batches) in [(1, 1), (1, 100), (8, 10)] {
        // Stored batches back to back, as `Log::read` returns them.
        let one = records();
        let mut stored = BytesMut::new();
        for _ in 0..batches {
            stored.put_slice(&one);
        }
        let stored = stored.freeze();
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(topic())
                .with_partitions(
                    (0..partitions)
                        .map(|i| {
                            PartitionData::default()
                                .with_partition_index(i)
                                .with_high_watermark(2_000_000)
                                .with_last_stable_offset(2_000_000)
                                .with_records(Some(stored.clone()))
                        })
                        .collect(),
                ),
        ]);
        let body = ResponseKind::Fetch(response);
        let size_hint = stored.len() * partitions as usize;
        group.throughput(Throughput::Bytes(size_hint as u64));
        let name = format!(
            "fetch_v{FETCH_VERSION}_{partitions}p_{}KiB",
            size_hint / 1024
        );
        // What the connection writes: fields in one buffer, record sets as
        // chunks of their own (not copied).
        group.bench_function(format!("{name}_chunked"), |b| {
            b.iter(|| {
                black_box(
                    bench_api::encode_response(ApiKey::Fetch, FETCH_VERSION, 7, &body, size_hint)
                        .expect("encode"),
                )
            })
        });
        // The baseline: one buffer with the record bytes copied in.
        group.bench_function(format!("{name}_copied"), |b| {
            b.iter(|| {
                black_box(
                    bench_api::encode_response_copied(
                        ApiKey::Fetch,
                        FETCH_VERSION,
                        7,
                        &body,
                        size_hint,
                    )
                    .expect("encode"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
