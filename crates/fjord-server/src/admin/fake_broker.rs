//! Test-only: a scripted in-memory broker on loopback, just enough Kafka
//! (ApiVersions, Metadata, CreateTopics, Produce, Fetch, ListOffsets) to
//! drive the admin commands end to end without a real node, plus fault
//! injection for the retry paths.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsResponse, FetchResponse,
    ListOffsetsResponse, MetadataResponse, ProduceResponse, RequestKind, ResponseHeader,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes, decode_request_header_from_buffer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use super::batch::split_batches;

const NODE_ID: i32 = 1;

/// APIs and versions the fake serves (the newest kafka-protocol knows).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
];

#[derive(Default)]
struct PartitionLog {
    /// (base offset, batch bytes rebased to it).
    batches: Vec<(i64, i64, Bytes)>,
    next_offset: i64,
}

#[derive(Default)]
pub(crate) struct State {
    topics: BTreeMap<String, (Uuid, Vec<PartitionLog>)>,
    /// Error codes to answer the next produce partitions with, in order.
    pub(crate) produce_faults: Vec<i16>,
    pub(crate) produce_requests: usize,
}

impl State {
    /// Values (with keys) of a partition's records, in offset order.
    pub(crate) fn records(&self, topic: &str, partition: usize) -> Vec<(Option<Bytes>, Bytes)> {
        let Some((_, partitions)) = self.topics.get(topic) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (_, _, bytes) in &partitions[partition].batches {
            for batch in split_batches(bytes.clone()).expect("stored batches are whole") {
                for r in batch.records().expect("decodable") {
                    out.push((r.key, r.value.unwrap_or_default()));
                }
            }
        }
        out
    }
}

pub(crate) struct FakeBroker {
    pub(crate) addr: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBroker {
    pub(crate) async fn start() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                connections.spawn(serve(socket, shared.clone(), addr.port()));
            }
        });
        FakeBroker {
            addr: addr.to_string(),
            state,
            task,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake broker state")
    }
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>, port: u16) {
    loop {
        let Ok(size) = socket.read_i32().await else {
            return;
        };
        let mut body = vec![0; size as usize];
        if socket.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = Bytes::from(body);
        let header = decode_request_header_from_buffer(&mut body).expect("request header");
        let key = ApiKey::try_from(header.request_api_key).expect("known api");
        let version = header.request_api_version;
        let request = RequestKind::decode(key, &mut body, version).expect("request body");
        let (response, wait) = {
            let mut state = state.lock().expect("state");
            handle(&mut state, request, version, port)
        };
        let Some(response) = response else {
            continue; // acks=0
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, response.header_version(version))
            .expect("response header");
        response.encode(&mut out, version).expect("response body");
        let size = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        if socket.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// The response, and how long to hold it (an empty fetch long-polls).
fn handle(
    state: &mut State,
    request: RequestKind,
    version: i16,
    port: u16,
) -> (Option<ResponseKind>, Option<Duration>) {
    let topic_by_id = |state: &State, id: Uuid| {
        state
            .topics
            .iter()
            .find(|(_, (topic_id, _))| *topic_id == id)
            .map(|(n, _)| n.clone())
    };
    match request {
        RequestKind::ApiVersions(_) => {
            let keys = SUPPORTED
                .iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect();
            let response = ApiVersionsResponse::default().with_api_keys(keys);
            (Some(response.into()), None)
        }
        RequestKind::Metadata(r) => {
            let names: Vec<String> = match r.topics {
                Some(topics) => topics
                    .into_iter()
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect(),
                None => state.topics.keys().cloned().collect(),
            };
            let topics = names
                .into_iter()
                .map(|n| match state.topics.get(&n) {
                    None => MetadataResponseTopic::default()
                        .with_name(Some(name(&n)))
                        .with_error_code(3),
                    Some((id, partitions)) => MetadataResponseTopic::default()
                        .with_name(Some(name(&n)))
                        .with_topic_id(*id)
                        .with_partitions(
                            (0..partitions.len() as i32)
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(BrokerId(NODE_ID))
                                        .with_replica_nodes(vec![BrokerId(NODE_ID)])
                                        .with_isr_nodes(vec![BrokerId(NODE_ID)])
                                })
                                .collect(),
                        ),
                })
                .collect();
            let response = MetadataResponse::default()
                .with_brokers(vec![
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(NODE_ID))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(port)),
                ])
                .with_topics(topics);
            (Some(response.into()), None)
        }
        RequestKind::CreateTopics(r) => {
            let results = r
                .topics
                .into_iter()
                .map(|t| {
                    let n = t.name.0.to_string();
                    let error_code = if state.topics.contains_key(&n) {
                        36
                    } else {
                        let partitions = (0..t.num_partitions)
                            .map(|_| PartitionLog::default())
                            .collect();
                        state.topics.insert(n.clone(), (Uuid::new_v4(), partitions));
                        0
                    };
                    CreatableTopicResult::default()
                        .with_name(name(&n))
                        .with_error_code(error_code)
                })
                .collect();
            let response = CreateTopicsResponse::default().with_topics(results);
            (Some(response.into()), None)
        }
        RequestKind::Produce(r) => {
            state.produce_requests += 1;
            let acks = r.acks;
            let mut responses = Vec::new();
            for topic in r.topic_data {
                let n = if version >= 13 {
                    topic_by_id(state, topic.topic_id).expect("known topic id")
                } else {
                    topic.name.0.to_string()
                };
                let mut partition_responses = Vec::new();
                for data in topic.partition_data {
                    let fault = if state.produce_faults.is_empty() {
                        0
                    } else {
                        state.produce_faults.remove(0)
                    };
                    let mut response = PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_error_code(fault);
                    if fault == 0 {
                        let (_, partitions) = state.topics.get_mut(&n).expect("known topic");
                        let log = &mut partitions[data.index as usize];
                        response = response.with_base_offset(log.next_offset);
                        for batch in
                            split_batches(data.records.unwrap_or_default()).expect("whole batches")
                        {
                            let mut bytes = BytesMut::from(&batch.as_bytes()[..]);
                            bytes[..8].copy_from_slice(&log.next_offset.to_be_bytes());
                            let count = batch.last_offset - batch.base_offset + 1;
                            let base = log.next_offset;
                            log.batches.push((base, base + count - 1, bytes.freeze()));
                            log.next_offset += count;
                        }
                    }
                    partition_responses.push(response);
                }
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(name(&n))
                        .with_topic_id(topic.topic_id)
                        .with_partition_responses(partition_responses),
                );
            }
            if acks == 0 {
                return (None, None);
            }
            let response = ProduceResponse::default().with_responses(responses);
            (Some(response.into()), None)
        }
        RequestKind::Fetch(r) => {
            let mut any = false;
            let mut responses = Vec::new();
            for topic in r.topics {
                let n = if version >= 13 {
                    topic_by_id(state, topic.topic_id).expect("known topic id")
                } else {
                    topic.topic.0.to_string()
                };
                let (_, partitions) = state.topics.get(&n).expect("known topic");
                let data = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let log = &partitions[p.partition as usize];
                        let base = PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_high_watermark(log.next_offset);
                        if p.fetch_offset > log.next_offset || p.fetch_offset < 0 {
                            return base.with_error_code(1);
                        }
                        let mut records = BytesMut::new();
                        for (_, last, bytes) in &log.batches {
                            if *last >= p.fetch_offset {
                                records.extend_from_slice(bytes);
                            }
                        }
                        any |= !records.is_empty();
                        base.with_records(Some(records.freeze()))
                    })
                    .collect();
                responses.push(
                    FetchableTopicResponse::default()
                        .with_topic(name(&n))
                        .with_topic_id(topic.topic_id)
                        .with_partitions(data),
                );
            }
            let wait = (!any).then(|| Duration::from_millis(r.max_wait_ms.clamp(0, 50) as u64));
            let response = FetchResponse::default().with_responses(responses);
            (Some(response.into()), wait)
        }
        RequestKind::ListOffsets(r) => {
            let topics = r
                .topics
                .into_iter()
                .map(|t| {
                    let n = t.name.0.to_string();
                    let (_, partitions) = state.topics.get(&n).expect("known topic");
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let log = &partitions[p.partition_index as usize];
                                    let offset = if p.timestamp == -2 {
                                        0
                                    } else {
                                        log.next_offset
                                    };
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_offset(offset)
                                })
                                .collect(),
                        )
                })
                .collect();
            let response = ListOffsetsResponse::default().with_topics(topics);
            (Some(response.into()), None)
        }
        other => panic!("fake broker got an unexpected request: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::partitioner::partition_for_key;
    use super::super::{
        ConnectArgs, ConsumeArgs, ProduceArgs, TopicCommand, consume::consume_to,
        produce::produce_from, run_topic,
    };
    use super::*;

    fn connect(broker: &FakeBroker) -> ConnectArgs {
        ConnectArgs {
            bootstrap: broker.addr.clone(),
            request_timeout_ms: 5_000,
        }
    }

    fn produce_args(args: &[&str]) -> ProduceArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ProduceArgs,
        }
        match Cli::try_parse_from(std::iter::once("produce").chain(args.iter().copied())) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{e}"),
        }
    }

    fn consume_args(args: &[&str]) -> ConsumeArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ConsumeArgs,
        }
        match Cli::try_parse_from(std::iter::once("consume").chain(args.iter().copied())) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{e}"),
        }
    }

    async fn create(connect: &ConnectArgs, topic: &str, partitions: i32) -> anyhow::Result<()> {
        run_topic(
            connect,
            TopicCommand::Create {
                name: topic.to_owned(),
                partitions,
                replication_factor: 1,
                configs: vec![],
            },
        )
        .await
    }

    async fn consume(connect: &ConnectArgs, args: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            consume_to(connect, &consume_args(args), &mut out),
        )
        .await
        .expect("consume finishes")
        .expect("consume");
        String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn produce_then_consume_round_trip() {
        let broker = FakeBroker::start().await;
        let c = connect(&broker);

        // Phase 1: create; a second create names the error code.
        create(&c, "t1", 1).await.expect("create");
        let err = create(&c, "t1", 1).await.expect_err("exists");
        assert_eq!(format!("{err:#}"), "create topic t1: TOPIC_ALREADY_EXISTS");

        // Phase 2: 2500 lines go out in requests of at most 1000 records.
        let input: Vec<String> = (0..2500).map(|i| format!("line {i}")).collect();
        let stdin = input.join("\n") + "\n";
        let sent = produce_from(&c, produce_args(&["t1"]), stdin.as_bytes())
            .await
            .expect("produce");
        assert_eq!(sent, 2500);
        assert!(broker.state().produce_requests >= 3);
        assert_eq!(broker.state().records("t1", 0).len(), 2500);

        // Phase 3: consume from the beginning, from an offset, the tail.
        let all = consume(&c, &["t1", "--from-beginning", "--max-messages", "2500"]).await;
        assert_eq!(all, input);
        let mid = consume(
            &c,
            &[
                "t1",
                "--partition",
                "0",
                "--offset",
                "1500",
                "--max-messages",
                "3",
            ],
        )
        .await;
        assert_eq!(mid, input[1500..1503]);
        let tail = consume(&c, &["t1", "--offset", "-2", "--exit-at-end"]).await;
        assert_eq!(tail, input[2498..]);
        // From the end with nothing new: nothing, and it stops.
        assert!(consume(&c, &["t1", "--exit-at-end"]).await.is_empty());
        assert!(
            consume(&c, &["t1", "--idle-timeout-ms", "200"])
                .await
                .is_empty()
        );
        // Past the end: reset to the end.
        assert!(
            consume(&c, &["t1", "--offset", "99999", "--exit-at-end"])
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn keyed_records_land_on_their_murmur2_partition() {
        let broker = FakeBroker::start().await;
        let c = connect(&broker);
        create(&c, "keyed", 3).await.expect("create");
        let stdin: String = (0..60).map(|i| format!("key-{i}:value-{i}\n")).collect();
        produce_from(
            &c,
            produce_args(&["keyed", "--key-separator", ":"]),
            stdin.as_bytes(),
        )
        .await
        .expect("produce");
        let mut total = 0;
        for p in 0..3 {
            let records = broker.state().records("keyed", p);
            for (key, value) in records {
                let key = key.expect("keyed");
                assert_eq!(partition_for_key(&key, 3), p as i32, "{key:?}");
                let suffix = &key[4..];
                assert_eq!(&value[6..], suffix);
                total += 1;
            }
        }
        assert_eq!(total, 60);

        let printed = consume(
            &c,
            &[
                "keyed",
                "--from-beginning",
                "--print-key",
                "--key-separator",
                "=",
                "--max-messages",
                "60",
            ],
        )
        .await;
        assert_eq!(printed.len(), 60);
        assert!(
            printed
                .iter()
                .all(|l| l.starts_with("key-") && l.contains("=value-"))
        );

        // An explicit partition takes all keyless records.
        produce_from(
            &c,
            produce_args(&["keyed", "--partition", "2"]),
            &b"a\nb\n"[..],
        )
        .await
        .expect("produce");
        let p2 = broker.state().records("keyed", 2);
        assert_eq!(
            p2[p2.len() - 2..]
                .iter()
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>(),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
    }

    #[tokio::test]
    async fn retriable_produce_errors_are_retried_and_others_fail() {
        let broker = FakeBroker::start().await;
        let c = connect(&broker);
        create(&c, "t1", 1).await.expect("create");

        // NOT_LEADER_OR_FOLLOWER twice, then success: records land once.
        broker.state().produce_faults = vec![6, 6];
        produce_from(&c, produce_args(&["t1"]), &b"x\ny\nz\n"[..])
            .await
            .expect("produce after retries");
        assert_eq!(broker.state().produce_requests, 3);
        assert_eq!(broker.state().records("t1", 0).len(), 3);

        // MESSAGE_TOO_LARGE is final and named.
        broker.state().produce_faults = vec![10];
        let err = produce_from(&c, produce_args(&["t1"]), &b"big\n"[..])
            .await
            .expect_err("too large");
        assert_eq!(format!("{err:#}"), "produce to t1-0: MESSAGE_TOO_LARGE");

        // acks=0: no response expected, records still land.
        produce_from(&c, produce_args(&["t1", "--acks", "0"]), &b"fire\n"[..])
            .await
            .expect("produce acks=0");
        let out = consume(&c, &["t1", "--offset", "-1", "--max-messages", "1"]).await;
        assert_eq!(out, vec!["fire"]);
    }

    #[tokio::test]
    async fn missing_topics_and_partitions_are_reported() {
        let broker = FakeBroker::start().await;
        let c = connect(&broker);
        let err = produce_from(&c, produce_args(&["nope"]), &b"x\n"[..])
            .await
            .expect_err("missing topic");
        assert_eq!(
            format!("{err:#}"),
            "produce to nope: UNKNOWN_TOPIC_OR_PARTITION"
        );

        create(&c, "t1", 2).await.expect("create");
        let err = produce_from(&c, produce_args(&["t1", "--partition", "5"]), &b"x\n"[..])
            .await
            .expect_err("missing partition");
        assert!(
            format!("{err:#}").contains("partition 5 does not exist"),
            "{err:#}"
        );

        let mut out = Vec::new();
        let err = consume_to(&c, &consume_args(&["nope", "--exit-at-end"]), &mut out)
            .await
            .expect_err("missing topic");
        assert_eq!(
            format!("{err:#}"),
            "consume from nope: UNKNOWN_TOPIC_OR_PARTITION"
        );

        let err = super::super::client::KafkaClient::connect("127.0.0.1:1", Duration::from_secs(2))
            .await
            .expect_err("nothing listens on port 1");
        assert!(
            format!("{err:#}").contains("connect to 127.0.0.1:1"),
            "{err:#}"
        );
    }
}
