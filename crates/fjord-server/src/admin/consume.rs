//! `fjord consume`: print a topic's records to stdout, one per line, like
//! `kafka-console-consumer.sh` or `kcat -C`.
//!
//! A plain partition reader, not a group member: positions come from the
//! flags (latest by default, earliest with `--from-beginning`, or an
//! explicit `--offset`), fetches go to each partition's leader, and nothing
//! is committed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::ConnectArgs;
use super::batch::split_batches;
use super::cluster::{Cluster, TopicLayout};
use super::error::{KafkaError, is_retriable};

/// ListOffsets timestamps with special meaning.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// Error code `OFFSET_OUT_OF_RANGE`.
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Fetch v13+ names topics by id only.
const LAST_FETCH_VERSION_WITH_NAMES: i16 = 12;
/// Long-poll time per fetch when there is nothing to read.
const MAX_WAIT: Duration = Duration::from_millis(500);
const FETCH_MAX_BYTES: i32 = 50 << 20;
/// Per-partition fetch size; doubled (up to the cap) if a single batch does
/// not fit and the broker returns only part of it.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const PARTITION_MAX_BYTES_CAP: i32 = 64 << 20;
/// Consecutive failed rounds (transport or retriable errors) before giving
/// up.
const MAX_CONSECUTIVE_FAILURES: u32 = 10;
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// `fjord consume`: print records, one value per line.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all partitions).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Start at the earliest available offset instead of the end.
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset in every partition read; negative counts back
    /// from the end (`--offset -10`: the last ten records).
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<i64>,
    /// Exit after printing this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Print `key<separator>value` instead of the value alone.
    #[arg(long)]
    pub print_key: bool,
    /// Separator between key and value with `--print-key`.
    #[arg(long, default_value = "\t")]
    pub key_separator: String,
    /// Exit once every partition read has reached its high watermark.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Exit when no record arrived for this long (default: follow forever).
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartPosition {
    Earliest,
    Latest,
    Offset(i64),
    /// This many records before the end (never before the log start).
    BeforeEnd(i64),
}

impl StartPosition {
    fn from_args(args: &ConsumeArgs) -> Self {
        match (args.offset, args.from_beginning) {
            (Some(offset), _) if offset >= 0 => StartPosition::Offset(offset),
            (Some(offset), _) => StartPosition::BeforeEnd(offset.saturating_neg()),
            (None, true) => StartPosition::Earliest,
            (None, false) => StartPosition::Latest,
        }
    }
}

/// Reads `args.topic` and prints it to stdout until a stop condition
/// (`--max-messages`, `--exit-at-end`, `--idle-timeout-ms`) holds, or
/// forever. A closed stdout (`| head`) ends it quietly.
pub async fn run_consume(connect: &ConnectArgs, args: ConsumeArgs) -> Result<()> {
    let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
    match consume_to(connect, &args, &mut stdout).await {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The consume loop, writing to `out`; returns the number of records
/// printed.
pub(super) async fn consume_to<W: AsyncWrite + Unpin>(
    connect: &ConnectArgs,
    args: &ConsumeArgs,
    out: &mut W,
) -> Result<u64> {
    let op = format!("consume from {}", args.topic);
    let mut cluster = Cluster::connect(connect).await?;
    let layout = cluster.topic_ready(&args.topic, &op).await?;
    let partitions = layout.select_partitions(args.partition, &op)?;
    let mut consumer = Consumer {
        op,
        cluster,
        layout,
        start: StartPosition::from_args(args),
        positions: BTreeMap::new(),
        partition_max_bytes: partitions
            .iter()
            .map(|p| (*p, PARTITION_MAX_BYTES))
            .collect(),
        at_end: BTreeMap::new(),
        printed: 0,
    };
    consumer.positions = consumer.resolve_start(&partitions).await?;
    tracing::debug!(positions = ?consumer.positions, "start positions");

    let max_wait = args
        .idle_timeout_ms
        .map_or(MAX_WAIT, |idle| MAX_WAIT.min(Duration::from_millis(idle)));
    let idle_timeout = args.idle_timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let mut failures = 0u32;
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        if args.max_messages.is_some_and(|max| consumer.printed >= max) {
            break;
        }
        if args.exit_at_end
            && consumer
                .positions
                .keys()
                .all(|p| consumer.at_end.get(p).copied().unwrap_or(false))
        {
            break;
        }
        let before = consumer.printed;
        match consumer.fetch_round(args, max_wait, out).await {
            Ok(None) => {
                failures = 0;
                backoff = RETRY_BACKOFF_MIN;
            }
            Ok(Some(reason)) => {
                failures += 1;
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    return Err(reason.context(format!(
                        "{}: giving up after {failures} failed fetch rounds",
                        consumer.op
                    )));
                }
                tracing::warn!(error = %format!("{reason:#}"), "fetch failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                match consumer
                    .cluster
                    .topic_ready(&args.topic, &consumer.op)
                    .await
                {
                    Ok(layout) => consumer.layout = layout,
                    // The broker may be restarting: the next round retries.
                    Err(e) if is_retriable(&e) => {
                        tracing::warn!(error = %format!("{e:#}"), "metadata refresh failed");
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        out.flush().await.context("write stdout")?;
        if consumer.printed > before {
            last_record = Instant::now();
        } else if idle_timeout.is_some_and(|idle| last_record.elapsed() >= idle) {
            break;
        }
    }
    out.flush().await.context("write stdout")?;
    Ok(consumer.printed)
}

struct Consumer {
    op: String,
    cluster: Cluster,
    layout: TopicLayout,
    start: StartPosition,
    /// Next offset to fetch, per partition read.
    positions: BTreeMap<i32, i64>,
    partition_max_bytes: BTreeMap<i32, i32>,
    /// Whether the partition's position had reached its high watermark at
    /// the last fetch.
    at_end: BTreeMap<i32, bool>,
    printed: u64,
}

impl Consumer {
    /// Start offsets for `partitions` per `self.start`.
    async fn resolve_start(&mut self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
        match self.start {
            StartPosition::Offset(offset) => Ok(partitions.iter().map(|p| (*p, offset)).collect()),
            StartPosition::Earliest => self.list_offsets(partitions, EARLIEST_TIMESTAMP).await,
            StartPosition::Latest => self.list_offsets(partitions, LATEST_TIMESTAMP).await,
            StartPosition::BeforeEnd(n) => {
                let earliest = self.list_offsets(partitions, EARLIEST_TIMESTAMP).await?;
                let latest = self.list_offsets(partitions, LATEST_TIMESTAMP).await?;
                Ok(latest
                    .into_iter()
                    .map(|(p, end)| {
                        let start = earliest.get(&p).copied().unwrap_or(0);
                        (p, end.saturating_sub(n).max(start))
                    })
                    .collect())
            }
        }
    }

    /// ListOffsets for `partitions` at `timestamp`, retrying retriable
    /// errors after a metadata refresh.
    async fn list_offsets(
        &mut self,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>> {
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_list_offsets(partitions, timestamp).await {
                Ok(offsets) => return Ok(offsets),
                Err(e) if attempt < MAX_CONSECUTIVE_FAILURES && is_retriable(&e) => {
                    tracing::warn!(error = %format!("{e:#}"), "list offsets failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                    self.layout = self
                        .cluster
                        .topic_ready(&self.layout.name, &self.op)
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_list_offsets(
        &mut self,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>> {
        let what = if timestamp == EARLIEST_TIMESTAMP {
            "earliest"
        } else {
            "latest"
        };
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in self.by_leader(partitions)? {
            let request = ListOffsetsRequest::default()
                // A consumer, not a follower.
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(self.layout.name.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        ),
                ]);
            let response = match self.cluster.broker(leader).await {
                Ok(client) => client.send(&request).await,
                Err(e) => Err(e),
            };
            let response = response
                .inspect_err(|_| self.cluster.forget_broker(leader))
                .with_context(|| format!("{}: list {what} offsets", self.op))?;
            for partition in response.topics.iter().flat_map(|t| &t.partitions) {
                KafkaError::check(
                    partition.error_code,
                    format_args!(
                        "{}: list {what} offset of partition {}",
                        self.op, partition.partition_index
                    ),
                )?;
                offsets.insert(partition.partition_index, partition.offset);
            }
        }
        for p in partitions {
            ensure!(
                offsets.contains_key(p),
                "{}: no {what} offset returned for partition {p}",
                self.op
            );
        }
        Ok(offsets)
    }

    /// Groups `partitions` by their current leader.
    fn by_leader(&self, partitions: &[i32]) -> Result<BTreeMap<i32, Vec<i32>>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let leader = self
                .layout
                .partitions
                .get(p)
                .map(|l| l.leader)
                .filter(|l| *l >= 0)
                .ok_or_else(|| {
                    anyhow::Error::new(KafkaError {
                        op: format!("{}: partition {p}", self.op),
                        code: 5, // LEADER_NOT_AVAILABLE
                        message: None,
                    })
                })?;
            by_leader.entry(leader).or_default().push(*p);
        }
        Ok(by_leader)
    }

    /// One fetch per leader for all partitions read. Returns the reason to
    /// refresh metadata and retry, if any; fails on non-retriable errors.
    async fn fetch_round<W: AsyncWrite + Unpin>(
        &mut self,
        args: &ConsumeArgs,
        max_wait: Duration,
        out: &mut W,
    ) -> Result<Option<anyhow::Error>> {
        let partitions: Vec<i32> = self.positions.keys().copied().collect();
        let by_leader = match self.by_leader(&partitions) {
            Ok(by_leader) => by_leader,
            Err(e) => return Ok(Some(e)),
        };
        let mut retry_reason = None;
        for (leader, partitions) in by_leader {
            let response = match self.fetch_from(leader, &partitions, max_wait).await {
                Ok(response) => response,
                Err(e) => {
                    self.cluster.forget_broker(leader);
                    retry_reason = Some(e);
                    continue;
                }
            };
            if let Err(e) =
                KafkaError::check(response.error_code, format_args!("{}: fetch", self.op))
            {
                if e.is_retriable() {
                    retry_reason = Some(e.into());
                    continue;
                }
                return Err(e.into());
            }
            for topic in response.responses {
                for data in topic.partitions {
                    let p = data.partition_index;
                    let Some(&position) = self.positions.get(&p) else {
                        continue;
                    };
                    match data.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            self.reset_out_of_range(p, position).await?;
                            continue;
                        }
                        code => {
                            let e = KafkaError {
                                op: format!("{}: fetch partition {p}", self.op),
                                code,
                                message: None,
                            };
                            if e.is_retriable() {
                                retry_reason = Some(e.into());
                                continue;
                            }
                            return Err(e.into());
                        }
                    }
                    let records = data.records.unwrap_or_default();
                    let fetched_bytes = records.len();
                    let batches = split_batches(records).with_context(|| {
                        format!("{}: partition {p} at offset {position}", self.op)
                    })?;
                    if batches.is_empty() && fetched_bytes > 0 {
                        self.grow_partition_max_bytes(p)?;
                    }
                    let mut next = position;
                    'batches: for batch in batches {
                        if batch.last_offset < next {
                            continue;
                        }
                        for record in batch.records()? {
                            if record.offset < next {
                                continue;
                            }
                            if args.max_messages.is_some_and(|max| self.printed >= max) {
                                break 'batches;
                            }
                            write_record(out, &record, args).await?;
                            self.printed += 1;
                            next = record.offset + 1;
                        }
                        next = next.max(batch.last_offset + 1);
                    }
                    self.positions.insert(p, next);
                    self.at_end.insert(p, next >= data.high_watermark);
                }
            }
        }
        Ok(retry_reason)
    }

    async fn fetch_from(
        &mut self,
        leader: i32,
        partitions: &[i32],
        max_wait: Duration,
    ) -> Result<FetchResponse> {
        let cap = if self.layout.topic_id.is_nil() {
            LAST_FETCH_VERSION_WITH_NAMES
        } else {
            i16::MAX
        };
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            // read_uncommitted: like the console consumer's default.
            .with_isolation_level(0)
            // Sessionless full fetches: session id 0, epoch -1.
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    // v4-12 use the name, v13+ the id.
                    .with_topic(TopicName(StrBytes::from_string(self.layout.name.clone())))
                    .with_topic_id(self.layout.topic_id)
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_fetch_offset(self.positions.get(p).copied().unwrap_or(0))
                                    .with_partition_max_bytes(
                                        self.partition_max_bytes
                                            .get(p)
                                            .copied()
                                            .unwrap_or(PARTITION_MAX_BYTES),
                                    )
                            })
                            .collect(),
                    ),
            ]);
        let op = &self.op;
        let client = self.cluster.broker(leader).await?;
        let version = client.version_at_most::<FetchRequest>(cap)?;
        client
            .send_version(&request, version)
            .await
            .with_context(|| format!("{op}: fetch from broker {leader}"))
    }

    /// The broker returned bytes but not one whole batch: the next batch is
    /// larger than we asked for.
    fn grow_partition_max_bytes(&mut self, p: i32) -> Result<()> {
        let current = self
            .partition_max_bytes
            .get(&p)
            .copied()
            .unwrap_or(PARTITION_MAX_BYTES);
        ensure!(
            current < PARTITION_MAX_BYTES_CAP,
            "{}: partition {p}: a record batch is larger than {current} bytes",
            self.op
        );
        self.partition_max_bytes
            .insert(p, current.saturating_mul(2).min(PARTITION_MAX_BYTES_CAP));
        Ok(())
    }

    /// `OFFSET_OUT_OF_RANGE`: below the log start, continue at the log
    /// start (records were deleted); past the end, continue at the end.
    async fn reset_out_of_range(&mut self, p: i32, position: i64) -> Result<()> {
        let earliest = self.list_offsets(&[p], EARLIEST_TIMESTAMP).await?;
        let earliest = earliest.get(&p).copied().unwrap_or(0);
        let reset = if position < earliest {
            earliest
        } else {
            let latest = self.list_offsets(&[p], LATEST_TIMESTAMP).await?;
            latest.get(&p).copied().unwrap_or(earliest)
        };
        tracing::warn!(
            topic = %self.layout.name,
            partition = p,
            position,
            reset,
            "offset out of range, resetting"
        );
        self.positions.insert(p, reset);
        Ok(())
    }
}

/// Writes one record as a line: the value, or `key<sep>value`; a null key
/// or value prints as `null`, as the console consumer does.
async fn write_record<W: AsyncWrite + Unpin>(
    out: &mut W,
    record: &Record,
    args: &ConsumeArgs,
) -> Result<()> {
    let mut line = Vec::with_capacity(record.value.as_ref().map_or(4, |v| v.len()) + 1);
    if args.print_key {
        line.extend_from_slice(record.key.as_deref().unwrap_or(b"null"));
        line.extend_from_slice(args.key_separator.as_bytes());
    }
    line.extend_from_slice(record.value.as_deref().unwrap_or(b"null"));
    line.push(b'\n');
    out.write_all(&line).await.context("write stdout")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;
    use bytes::Bytes;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::TimestampType;

    use super::*;

    fn args(extra: &[&str]) -> ConsumeArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            consume: ConsumeArgs,
        }
        match Cli::try_parse_from(["consume", "t1"].iter().chain(extra)) {
            Ok(cli) => cli.consume,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn start_position_follows_flags() {
        assert_eq!(StartPosition::from_args(&args(&[])), StartPosition::Latest);
        assert_eq!(
            StartPosition::from_args(&args(&["--from-beginning"])),
            StartPosition::Earliest
        );
        assert_eq!(
            StartPosition::from_args(&args(&["--offset", "7"])),
            StartPosition::Offset(7)
        );
        assert_eq!(
            StartPosition::from_args(&args(&["--offset", "-3"])),
            StartPosition::BeforeEnd(3)
        );
    }

    fn record(key: Option<&'static [u8]>, value: Option<&'static [u8]>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
            headers: IndexMap::new(),
        }
    }

    #[tokio::test]
    async fn records_print_as_lines() {
        let mut out = Vec::new();
        write_record(&mut out, &record(Some(b"k"), Some(b"v")), &args(&[]))
            .await
            .expect("write");
        write_record(
            &mut out,
            &record(Some(b"k"), Some(b"v")),
            &args(&["--print-key"]),
        )
        .await
        .expect("write");
        write_record(
            &mut out,
            &record(None, None),
            &args(&["--print-key", "--key-separator", "="]),
        )
        .await
        .expect("write");
        assert_eq!(out, b"v\nk\tv\nnull=null\n");
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("write stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow!("other")));
    }
}
