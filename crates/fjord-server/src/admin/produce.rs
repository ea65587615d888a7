//! `fjord produce`: one record per stdin line, like
//! `kafka-console-producer.sh` or `kcat -P`.
//!
//! Lines are gathered into requests of up to [`MAX_REQUEST_RECORDS`]
//! records or [`MAX_REQUEST_BYTES`] bytes, or whatever arrived within
//! [`LINGER`] of the first line, so piped input is sent in bulk and typed
//! input is sent as it is typed. Each request carries one batch per
//! partition and goes to the partition's leader. Delivery is at least
//! once: the producer is not idempotent, so a retried request can
//! duplicate records the broker had already appended.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::ConnectArgs;
use super::batch::{ProducerRecord, encode_batch};
use super::cluster::{Cluster, TopicLayout};
use super::error::{KafkaError, is_retriable};
use super::partitioner::Partitioner;

/// Most records per produce request.
const MAX_REQUEST_RECORDS: usize = 1000;
/// A request is sent once its records reach this many bytes.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long to wait for more lines after the first of a request.
const LINGER: Duration = Duration::from_millis(10);
/// Attempts per request before a retriable error becomes final.
const MAX_ATTEMPTS: u32 = 6;
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Produce v13 names topics by id only.
const LAST_PRODUCE_VERSION_WITH_NAMES: i16 = 12;

/// Which acknowledgement the producer waits for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// The full ISR has the records (`acks=-1`).
    #[value(name = "all", alias = "-1")]
    All,
    /// The leader has appended the records (`acks=1`).
    #[value(name = "1")]
    Leader,
    /// Fire and forget: the broker sends no response (`acks=0`).
    #[value(name = "0")]
    None,
}

impl Acks {
    fn code(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// Compression codec for produced batches.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// `fjord produce`: read stdin, one record per line.
#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    /// Topic to produce to.
    pub topic: String,
    /// Send every record to this partition instead of partitioning by key
    /// (murmur2, like the Java client) or round-robin per request.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Split each line at the first occurrence of this string into key and
    /// value; lines without it are sent without a key.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Acknowledgement to wait for: all, 1 or 0.
    #[arg(long, value_enum, default_value_t = Acks::All, allow_hyphen_values = true)]
    pub acks: Acks,
    /// Compression codec for the record batches.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
}

/// Produces stdin to `args.topic` until EOF.
pub async fn run_produce(connect: &ConnectArgs, args: ProduceArgs) -> Result<()> {
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    produce_from(connect, args, stdin).await.map(|_| ())
}

/// Produces every line of `input`; returns how many records were sent.
pub(super) async fn produce_from<R: AsyncBufRead + Unpin>(
    connect: &ConnectArgs,
    args: ProduceArgs,
    input: R,
) -> Result<u64> {
    if let Some(sep) = &args.key_separator {
        ensure!(!sep.is_empty(), "--key-separator must not be empty");
    }
    let op = format!("produce to {}", args.topic);
    let mut cluster = Cluster::connect(connect).await?;
    let layout = cluster.topic_ready(&args.topic, &op).await?;
    layout.select_partitions(args.partition, &op)?;
    let mut producer = Producer {
        server_timeout_ms: i32::try_from(connect.request_timeout_ms.saturating_mul(3) / 4)
            .unwrap_or(i32::MAX),
        partitioner: Partitioner::new(args.partition),
        key_separator: args.key_separator.map(String::into_bytes),
        acks: args.acks,
        compression: args.compression.into(),
        op,
        cluster,
        layout,
        sent: 0,
    };
    let mut lines = input.split(b'\n');
    loop {
        let batch = read_batch(&mut lines, MAX_REQUEST_RECORDS, MAX_REQUEST_BYTES, LINGER).await?;
        if !batch.lines.is_empty() {
            producer.send(batch.lines).await?;
        }
        if batch.eof {
            break;
        }
    }
    tracing::debug!(records = producer.sent, topic = %args.topic, "produced");
    Ok(producer.sent)
}

/// Lines for one request, and whether input ended after them.
#[derive(Debug, PartialEq, Eq)]
struct LineBatch {
    lines: Vec<Vec<u8>>,
    eof: bool,
}

/// Waits for one line, then takes more while they come within `linger`
/// of each other, up to the record and byte limits.
async fn read_batch<R: AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Split<R>,
    max_records: usize,
    max_bytes: usize,
    linger: Duration,
) -> Result<LineBatch> {
    let mut batch = LineBatch {
        lines: Vec::new(),
        eof: false,
    };
    let mut bytes = 0;
    match lines.next_segment().await.context("read stdin")? {
        Some(line) => {
            bytes += line.len();
            batch.lines.push(strip_cr(line));
        }
        None => {
            batch.eof = true;
            return Ok(batch);
        }
    }
    while batch.lines.len() < max_records && bytes < max_bytes {
        // `Split::next_segment` is cancellation safe: a timeout loses no
        // input, the partial line stays buffered for the next call.
        match tokio::time::timeout(linger, lines.next_segment()).await {
            Err(_) => break,
            Ok(next) => match next.context("read stdin")? {
                Some(line) => {
                    bytes += line.len();
                    batch.lines.push(strip_cr(line));
                }
                None => {
                    batch.eof = true;
                    break;
                }
            },
        }
    }
    Ok(batch)
}

/// Drops the `\r` of a `\r\n` line ending, as line-oriented Kafka tools do.
fn strip_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Splits `line` at the first `separator` into key and value.
fn split_key(line: Vec<u8>, separator: Option<&[u8]>) -> ProducerRecord {
    if let Some(sep) = separator.filter(|s| !s.is_empty())
        && let Some(at) = line.windows(sep.len()).position(|w| w == sep)
    {
        let line = Bytes::from(line);
        return ProducerRecord {
            key: Some(line.slice(..at)),
            value: line.slice(at + sep.len()..),
        };
    }
    ProducerRecord {
        key: None,
        value: Bytes::from(line),
    }
}

struct Producer {
    op: String,
    cluster: Cluster,
    layout: TopicLayout,
    partitioner: Partitioner,
    key_separator: Option<Vec<u8>>,
    acks: Acks,
    compression: Compression,
    server_timeout_ms: i32,
    sent: u64,
}

impl Producer {
    /// Partitions, encodes and sends one request's worth of lines,
    /// retrying partitions that fail with retriable errors.
    async fn send(&mut self, lines: Vec<Vec<u8>>) -> Result<()> {
        let partitions = self.layout.partition_count();
        let sticky = self.partitioner.next_batch_partition(partitions);
        let mut by_partition: BTreeMap<i32, Vec<ProducerRecord>> = BTreeMap::new();
        for line in lines {
            let record = split_key(line, self.key_separator.as_deref());
            let p = self
                .partitioner
                .partition(record.key.as_deref(), partitions, sticky);
            by_partition.entry(p).or_default().push(record);
        }
        let timestamp = now_ms();
        let mut pending: BTreeMap<i32, (Bytes, u64)> = BTreeMap::new();
        for (p, records) in by_partition {
            let batch = encode_batch(&records, timestamp, self.compression)
                .with_context(|| format!("{}-{p}: encode record batch", self.op))?;
            pending.insert(p, (batch, records.len() as u64));
        }

        let mut backoff = RETRY_BACKOFF_MIN;
        for attempt in 1..=MAX_ATTEMPTS {
            let retry_reason = self.send_to_leaders(&mut pending).await?;
            let Some(reason) = retry_reason else {
                return Ok(());
            };
            if attempt == MAX_ATTEMPTS {
                return Err(
                    reason.context(format!("{}: giving up after {attempt} attempts", self.op))
                );
            }
            tracing::warn!(error = %format!("{reason:#}"), attempt, "produce failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            self.layout = self
                .cluster
                .topic_ready(&self.layout.name, &self.op)
                .await?;
        }
        Err(anyhow!("{}: no attempts made", self.op))
    }

    /// One produce request per leader for the `pending` partitions.
    /// Acknowledged partitions leave `pending`; returns the last retriable
    /// problem if any partition is left, and fails on other errors.
    async fn send_to_leaders(
        &mut self,
        pending: &mut BTreeMap<i32, (Bytes, u64)>,
    ) -> Result<Option<anyhow::Error>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in pending.keys() {
            let leader = self.layout.partitions.get(p).map_or(-1, |l| l.leader);
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut retry_reason = None;
        for (leader, partitions) in by_leader {
            if leader < 0 {
                retry_reason = Some(anyhow!(
                    "{}: no leader for partitions {partitions:?}",
                    self.op
                ));
                continue;
            }
            let request = self.request(&partitions, pending);
            match self.send_to(leader, &request).await {
                Err(e) if is_retriable(&e) => {
                    // Transport trouble: reconnect (maybe to a new leader).
                    self.cluster.forget_broker(leader);
                    retry_reason = Some(e);
                }
                Err(e) => return Err(e),
                Ok(None) => {
                    // acks=0: nothing to check.
                    for p in &partitions {
                        if let Some((_, count)) = pending.remove(p) {
                            self.sent += count;
                        }
                    }
                }
                Ok(Some(response)) => {
                    for partition in response
                        .responses
                        .iter()
                        .flat_map(|t| &t.partition_responses)
                    {
                        let op = format!("{}-{}", self.op, partition.index);
                        match KafkaError::check_with_message(
                            partition.error_code,
                            partition.error_message.as_ref(),
                            &op,
                        ) {
                            Ok(()) => {
                                if let Some((_, count)) = pending.remove(&partition.index) {
                                    self.sent += count;
                                    tracing::debug!(
                                        partition = partition.index,
                                        base_offset = partition.base_offset,
                                        records = count,
                                        "produced"
                                    );
                                }
                            }
                            Err(e) if e.is_retriable() => retry_reason = Some(e.into()),
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        }
        if !pending.is_empty() && retry_reason.is_none() {
            let missing: Vec<_> = pending.keys().collect();
            retry_reason = Some(anyhow!(
                "{}: no response for partitions {missing:?}",
                self.op
            ));
        }
        Ok(if pending.is_empty() {
            None
        } else {
            retry_reason
        })
    }

    fn request(&self, partitions: &[i32], pending: &BTreeMap<i32, (Bytes, u64)>) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(self.acks.code())
            .with_timeout_ms(self.server_timeout_ms)
            .with_topic_data(vec![
                TopicProduceData::default()
                    // v3-12 use the name, v13 the id; encoding writes only
                    // the one the version has.
                    .with_name(TopicName(StrBytes::from_string(self.layout.name.clone())))
                    .with_topic_id(self.layout.topic_id)
                    .with_partition_data(
                        partitions
                            .iter()
                            .filter_map(|p| {
                                pending.get(p).map(|(batch, _)| {
                                    PartitionProduceData::default()
                                        .with_index(*p)
                                        .with_records(Some(batch.clone()))
                                })
                            })
                            .collect(),
                    ),
            ])
    }

    /// Sends to broker `leader`; `None` for acks=0, which has no response.
    async fn send_to(
        &mut self,
        leader: i32,
        request: &ProduceRequest,
    ) -> Result<Option<kafka_protocol::messages::ProduceResponse>> {
        let cap = if self.layout.topic_id.is_nil() {
            LAST_PRODUCE_VERSION_WITH_NAMES
        } else {
            i16::MAX
        };
        let op = &self.op;
        let context = || format!("{op}: send to broker {leader}");
        let client = self.cluster.broker(leader).await.with_context(context)?;
        let version = client.version_at_most::<ProduceRequest>(cap)?;
        if self.acks == Acks::None {
            client
                .send_without_response(request, version)
                .await
                .with_context(context)?;
            Ok(None)
        } else {
            let response = client
                .send_version(request, version)
                .await
                .with_context(context)?;
            Ok(Some(response))
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn batches(input: &'static [u8], max_records: usize, max_bytes: usize) -> Vec<LineBatch> {
        let mut lines = AsyncBufReadExt::split(input, b'\n');
        let mut out = Vec::new();
        loop {
            let batch = read_batch(
                &mut lines,
                max_records,
                max_bytes,
                Duration::from_millis(50),
            )
            .await
            .expect("read");
            let eof = batch.eof;
            out.push(batch);
            if eof {
                return out;
            }
        }
    }

    fn lines(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[tokio::test]
    async fn lines_are_batched_by_count_and_bytes() {
        let got = batches(b"a\nb\r\nc\n\nd", 2, 1024).await;
        assert_eq!(
            got,
            vec![
                LineBatch {
                    lines: lines(&["a", "b"]),
                    eof: false
                },
                LineBatch {
                    lines: lines(&["c", ""]),
                    eof: false
                },
                LineBatch {
                    lines: lines(&["d"]),
                    eof: true
                },
            ]
        );

        // The byte limit closes a batch once reached.
        let got = batches(b"aaaa\nbbbb\ncc\n", 100, 8).await;
        assert_eq!(
            got,
            vec![
                LineBatch {
                    lines: lines(&["aaaa", "bbbb"]),
                    eof: false
                },
                LineBatch {
                    lines: lines(&["cc"]),
                    eof: true
                },
            ]
        );

        assert_eq!(
            batches(b"", 10, 10).await,
            vec![LineBatch {
                lines: vec![],
                eof: true
            }]
        );
    }

    #[tokio::test]
    async fn linger_sends_typed_lines_without_waiting_for_more() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut lines = tokio::io::BufReader::new(reader).split(b'\n');
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"first\nsec")
            .await
            .expect("write");
        let batch = read_batch(&mut lines, 10, 1024, Duration::from_millis(20))
            .await
            .expect("read");
        assert_eq!(
            batch,
            LineBatch {
                lines: lines_of(&["first"]),
                eof: false
            }
        );
        // The half line stayed buffered across the linger timeout.
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"ond\n")
            .await
            .expect("write");
        drop(writer);
        let batch = read_batch(&mut lines, 10, 1024, Duration::from_millis(20))
            .await
            .expect("read");
        assert_eq!(
            batch,
            LineBatch {
                lines: lines_of(&["second"]),
                eof: true
            }
        );
    }

    fn lines_of(items: &[&str]) -> Vec<Vec<u8>> {
        lines(items)
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        assert_eq!(
            split_key(b"k1:v:1".to_vec(), Some(b":")),
            ProducerRecord {
                key: Some(Bytes::from_static(b"k1")),
                value: Bytes::from_static(b"v:1")
            }
        );
        assert_eq!(
            split_key(b"k::v".to_vec(), Some(b"::")),
            ProducerRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Bytes::from_static(b"v")
            }
        );
        // No separator in the line: no key.
        assert_eq!(
            split_key(b"plain".to_vec(), Some(b":")),
            ProducerRecord {
                key: None,
                value: Bytes::from_static(b"plain")
            }
        );
        assert_eq!(
            split_key(b":v".to_vec(), Some(b":")),
            ProducerRecord {
                key: Some(Bytes::new()),
                value: Bytes::from_static(b"v")
            }
        );
        assert_eq!(
            split_key(b"a:b".to_vec(), None),
            ProducerRecord {
                key: None,
                value: Bytes::from_static(b"a:b")
            }
        );
    }

    #[test]
    fn acks_map_to_protocol_codes() {
        assert_eq!(Acks::All.code(), -1);
        assert_eq!(Acks::Leader.code(), 1);
        assert_eq!(Acks::None.code(), 0);
    }
}
