//! `fjord txn ...`: list and describe transactions, abort a hanging one and
//! find hanging ones, like `kafka-transactions.sh`.
//!
//! - `list`: ListTransactions at every broker (each lists the transactional
//!   ids whose `__transaction_state` partition it leads), merged.
//! - `describe`: DescribeTransactions at the id's coordinator, found with
//!   FindCoordinator(TRANSACTION) and retried while it loads or moves.
//! - `abort`: WriteTxnMarkers (ABORT) at the partition's leader, with the
//!   producer id, epoch and coordinator epoch the operator read from
//!   `find-hanging` (Kafka's Admin `abortTransaction`): for a transaction
//!   its coordinator forgot, which would otherwise hold the partition's
//!   last stable offset back for ever.
//! - `find-hanging`: DescribeProducers at one broker for every partition
//!   it hosts; a producer whose transaction there has been open for longer
//!   than `transaction.max.timeout.ms` is hanging unless its coordinator
//!   still has that transaction open on that partition (Kafka's
//!   `FindHangingTransactionsCommand`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::Cluster;
use super::coordinator::{Coordinator, CoordinatorKey, with_coordinator};
use super::error::KafkaError;
use super::table::render_table;

/// Kafka's default `transaction.max.timeout.ms`: a transaction open for
/// longer has outlived any timeout a producer may ask for.
const DEFAULT_MAX_TRANSACTION_TIMEOUT_MS: i64 = 15 * 60 * 1000;

/// Transaction administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TxnCommand {
    /// List transactional ids: coordinator, producer id, state.
    List,
    /// Show a transactional id's state, producer, timeout and partitions.
    Describe {
        /// Transactional id.
        transactional_id: String,
    },
    /// Write an ABORT marker for a producer's open transaction on one
    /// partition (for a hanging transaction; see find-hanging).
    Abort(AbortArgs),
    /// List the transactions open on a broker's partitions for longer than
    /// the maximum transaction timeout that their coordinator does not
    /// know as open.
    FindHanging {
        /// The broker whose partitions to look at.
        #[arg(long)]
        broker_id: i32,
        /// The brokers' `transaction.max.timeout.ms`, in minutes.
        #[arg(long, default_value_t = 15)]
        max_transaction_timeout: i64,
    },
}

/// `fjord txn abort`.
#[derive(clap::Args, Debug, Clone)]
pub struct AbortArgs {
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub partition: i32,
    #[arg(long)]
    pub producer_id: i64,
    #[arg(long)]
    pub producer_epoch: i16,
    /// The coordinator epoch to write the marker with: not below the one
    /// of the producer's last marker on the partition, which find-hanging
    /// shows (-1: it has none), else the leader refuses it
    /// (TRANSACTION_COORDINATOR_FENCED).
    #[arg(long, allow_hyphen_values = true)]
    pub coordinator_epoch: i32,
}

/// Runs one transaction command, printing its result to stdout.
pub async fn run_txn(connect: &ConnectArgs, cmd: TxnCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    let timeout = connect.request_timeout();
    match cmd {
        TxnCommand::List => {
            let listed = list(&mut cluster).await?;
            if listed.is_empty() {
                println!("No transactions.");
            } else {
                let rows: Vec<Vec<String>> = listed
                    .into_iter()
                    .map(|t| {
                        vec![
                            t.transactional_id,
                            t.coordinator.to_string(),
                            t.producer_id.to_string(),
                            t.state,
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    render_table(
                        &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                        &rows
                    )
                );
            }
        }
        TxnCommand::Describe { transactional_id } => {
            let d = describe(&mut cluster, &transactional_id, timeout).await?;
            print!("{}", format_description(&d, now_ms()));
        }
        TxnCommand::Abort(args) => {
            abort(&mut cluster, &args).await?;
            println!(
                "Aborted the transaction of producer {} (epoch {}) on {}-{}.",
                args.producer_id, args.producer_epoch, args.topic, args.partition
            );
        }
        TxnCommand::FindHanging {
            broker_id,
            max_transaction_timeout,
        } => {
            let max_ms = max_transaction_timeout
                .checked_mul(60_000)
                .unwrap_or(DEFAULT_MAX_TRANSACTION_TIMEOUT_MS);
            let (open, hanging) = find_hanging(&mut cluster, broker_id, max_ms, timeout).await?;
            if hanging.is_empty() {
                println!(
                    "No hanging transactions on broker {broker_id} ({open} open for longer \
                     than {max_transaction_timeout} min, all open at their coordinator)."
                );
            } else {
                print!("{}", format_hanging(&hanging, now_ms()));
            }
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn wire(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// One transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedTxn {
    transactional_id: String,
    /// The broker that listed it (it leads the id's partition).
    coordinator: i32,
    producer_id: i64,
    state: String,
}

/// ListTransactions at every broker in the metadata (with `producer_ids`
/// as filter, if any), merged and sorted by id.
async fn list_filtered(cluster: &mut Cluster, producer_ids: &[i64]) -> Result<Vec<ListedTxn>> {
    let request = ListTransactionsRequest::default()
        .with_producer_id_filters(producer_ids.iter().copied().map(ProducerId).collect());
    let answers = cluster
        .ask_every_broker("list transactions", &request)
        .await?;
    let mut listed = BTreeMap::new();
    for (id, response) in answers {
        KafkaError::check(
            response.error_code,
            format!("list transactions at broker {id}"),
        )?;
        for t in response.transaction_states {
            let txn_id = t.transactional_id.0.to_string();
            listed.insert(
                txn_id.clone(),
                ListedTxn {
                    transactional_id: txn_id,
                    coordinator: id,
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                },
            );
        }
    }
    Ok(listed.into_values().collect())
}

async fn list(cluster: &mut Cluster) -> Result<Vec<ListedTxn>> {
    list_filtered(cluster, &[]).await
}

/// What DescribeTransactions says about one id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TxnDescription {
    transactional_id: String,
    coordinator: String,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    /// -1 when no transaction is open.
    start_time_ms: i64,
    partitions: BTreeSet<(String, i32)>,
}

async fn describe_at(
    coordinator: &mut Coordinator,
    transactional_id: &str,
) -> Result<TxnDescription> {
    let op = format!("describe transaction {transactional_id}");
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(wire(transactional_id))]);
    let response = coordinator
        .client
        .send(&request)
        .await
        .with_context(|| op.clone())?;
    let t = response
        .transaction_states
        .into_iter()
        .find(|t| t.transactional_id.0.as_str() == transactional_id)
        .ok_or_else(|| anyhow!("{op}: transactional id missing from the response"))?;
    KafkaError::check(t.error_code, &op)?;
    Ok(TxnDescription {
        transactional_id: transactional_id.to_owned(),
        coordinator: coordinator.describe(),
        state: t.transaction_state.to_string(),
        producer_id: t.producer_id.0,
        producer_epoch: t.producer_epoch,
        timeout_ms: t.transaction_timeout_ms,
        start_time_ms: t.transaction_start_time_ms,
        partitions: t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|p| (topic.topic.0.to_string(), *p))
            })
            .collect(),
    })
}

async fn describe(
    cluster: &mut Cluster,
    transactional_id: &str,
    timeout: Duration,
) -> Result<TxnDescription> {
    with_coordinator(
        cluster,
        CoordinatorKey::Transaction(transactional_id),
        timeout,
        async |c: &mut Coordinator| describe_at(c, transactional_id).await,
    )
    .await
}

fn format_description(d: &TxnDescription, now_ms: i64) -> String {
    let (start, duration) = if d.start_time_ms >= 0 {
        (
            d.start_time_ms.to_string(),
            now_ms.saturating_sub(d.start_time_ms).to_string(),
        )
    } else {
        ("-".to_owned(), "-".to_owned())
    };
    let partitions = if d.partitions.is_empty() {
        "-".to_owned()
    } else {
        d.partitions
            .iter()
            .map(|(t, p)| format!("{t}-{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let rows = vec![vec![
        d.coordinator.clone(),
        d.transactional_id.clone(),
        d.producer_id.to_string(),
        d.producer_epoch.to_string(),
        d.state.clone(),
        d.timeout_ms.to_string(),
        start,
        duration,
        partitions,
    ]];
    render_table(
        &[
            "COORDINATOR",
            "TRANSACTIONAL-ID",
            "PRODUCER-ID",
            "PRODUCER-EPOCH",
            "STATE",
            "TIMEOUT-MS",
            "START-TIME-MS",
            "DURATION-MS",
            "PARTITIONS",
        ],
        &rows,
    )
}

/// WriteTxnMarkers (ABORT) for one producer on one partition, at its leader.
async fn abort(cluster: &mut Cluster, args: &AbortArgs) -> Result<()> {
    let op = format!(
        "abort the transaction of producer {} on {}-{}",
        args.producer_id, args.topic, args.partition
    );
    let layout = cluster.topic(&args.topic, &op).await?;
    let leader = layout
        .partitions
        .get(&args.partition)
        .map(|p| p.leader)
        .ok_or_else(|| {
            anyhow!(
                "{op}: topic {} has no partition {}",
                args.topic,
                args.partition
            )
        })?;
    anyhow::ensure!(leader >= 0, "{op}: the partition has no leader");
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(args.producer_id))
            .with_producer_epoch(args.producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(args.coordinator_epoch)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(wire(&args.topic)))
                    .with_partition_indexes(vec![args.partition]),
            ]),
    ]);
    let response = match cluster.broker(leader).await {
        Ok(client) => client.send(&request).await,
        Err(e) => Err(e),
    };
    let response = response
        .inspect_err(|_| cluster.forget_broker(leader))
        .with_context(|| op.clone())?;
    let code = response
        .markers
        .iter()
        .filter(|m| m.producer_id.0 == args.producer_id)
        .flat_map(|m| &m.topics)
        .filter(|t| t.name.0.as_str() == args.topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == args.partition)
        .map(|p| p.error_code)
        .ok_or_else(|| anyhow!("{op}: partition missing from the response"))?;
    Ok(KafkaError::check(code, &op)?)
}

/// A transaction open on a partition for longer than the maximum timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenTxn {
    topic: String,
    partition: i32,
    producer_id: i64,
    producer_epoch: i32,
    coordinator_epoch: i32,
    start_offset: i64,
    last_timestamp: i64,
}

/// DescribeProducers at `broker_id` for every partition it hosts; the
/// transactions open longer than `max_ms`.
async fn long_open_transactions(
    cluster: &mut Cluster,
    broker_id: i32,
    max_ms: i64,
    now_ms: i64,
) -> Result<Vec<OpenTxn>> {
    let op = format!("describe producers at broker {broker_id}");
    let metadata = cluster.metadata(None).await.with_context(|| op.clone())?;
    let topics: Vec<TopicRequest> = metadata
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?;
            let partitions: Vec<i32> = t
                .partitions
                .iter()
                .filter(|p| p.replica_nodes.iter().any(|r| r.0 == broker_id))
                .map(|p| p.partition_index)
                .collect();
            (!partitions.is_empty()).then(|| {
                TopicRequest::default()
                    .with_name(name.clone())
                    .with_partition_indexes(partitions)
            })
        })
        .collect();
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let request = DescribeProducersRequest::default().with_topics(topics);
    let response = match cluster.broker(broker_id).await {
        Ok(client) => client.send(&request).await,
        Err(e) => Err(e),
    };
    let response = response
        .inspect_err(|_| cluster.forget_broker(broker_id))
        .with_context(|| op.clone())?;
    let mut open = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            let op = format!("{op}: {}-{}", t.name.0, p.partition_index);
            KafkaError::check_with_message(p.error_code, p.error_message.as_ref(), &op)?;
            open.extend(
                p.active_producers
                    .iter()
                    .filter(|s| {
                        s.current_txn_start_offset >= 0
                            && now_ms.saturating_sub(s.last_timestamp) > max_ms
                    })
                    .map(|s| OpenTxn {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        producer_id: s.producer_id.0,
                        producer_epoch: s.producer_epoch,
                        coordinator_epoch: s.coordinator_epoch,
                        start_offset: s.current_txn_start_offset,
                        last_timestamp: s.last_timestamp,
                    }),
            );
        }
    }
    Ok(open)
}

/// Whether the coordinator's view `described` of the producer's
/// transactional id still has `txn` open (Kafka's
/// `FindHangingTransactionsCommand.isTransactionHanging`, inverted).
fn still_open(txn: &OpenTxn, described: &TxnDescription) -> bool {
    let open_states = [
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "PrepareEpochFence",
    ];
    open_states.contains(&described.state.as_str())
        && described.producer_id == txn.producer_id
        && described
            .partitions
            .contains(&(txn.topic.clone(), txn.partition))
}

/// The transactions open on `broker_id`'s partitions for longer than
/// `max_ms` (how many), and those of them their coordinator does not have
/// open on that partition.
async fn find_hanging(
    cluster: &mut Cluster,
    broker_id: i32,
    max_ms: i64,
    timeout: Duration,
) -> Result<(usize, Vec<OpenTxn>)> {
    let candidates = long_open_transactions(cluster, broker_id, max_ms, now_ms()).await?;
    let open = candidates.len();
    if candidates.is_empty() {
        return Ok((open, candidates));
    }
    let producer_ids: Vec<i64> = candidates
        .iter()
        .map(|c| c.producer_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut ids_by_producer: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for t in list_filtered(cluster, &producer_ids).await? {
        ids_by_producer
            .entry(t.producer_id)
            .or_default()
            .push(t.transactional_id);
    }
    let mut descriptions: BTreeMap<String, TxnDescription> = BTreeMap::new();
    for id in ids_by_producer.values().flatten() {
        match describe(cluster, id, timeout).await {
            Ok(d) => {
                descriptions.insert(id.clone(), d);
            }
            // Expired meanwhile: it no longer holds the transaction open.
            Err(e)
                if e.chain()
                    .find_map(|c| c.downcast_ref::<KafkaError>())
                    .is_some_and(|k| k.code == TRANSACTIONAL_ID_NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
    }
    let hanging = candidates
        .into_iter()
        .filter(|c| {
            !ids_by_producer
                .get(&c.producer_id)
                .into_iter()
                .flatten()
                .filter_map(|id| descriptions.get(id))
                .any(|d| still_open(c, d))
        })
        .collect();
    Ok((open, hanging))
}

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn format_hanging(hanging: &[OpenTxn], now_ms: i64) -> String {
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|h| {
            vec![
                h.topic.clone(),
                h.partition.to_string(),
                h.producer_id.to_string(),
                h.producer_epoch.to_string(),
                h.coordinator_epoch.to_string(),
                h.start_offset.to_string(),
                h.last_timestamp.to_string(),
                (now_ms.saturating_sub(h.last_timestamp) / 60_000).to_string(),
            ]
        })
        .collect();
    render_table(
        &[
            "TOPIC",
            "PARTITION",
            "PRODUCER-ID",
            "PRODUCER-EPOCH",
            "COORDINATOR-EPOCH",
            "START-OFFSET",
            "LAST-TIMESTAMP",
            "DURATION-MIN",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::parse_for_tests;

    fn parse(args: &[&str]) -> Result<TxnCommand, clap::Error> {
        parse_for_tests::parse(args)
    }

    #[test]
    fn clap_definitions_are_consistent() {
        parse_for_tests::assert_consistent::<TxnCommand>();
    }

    #[test]
    fn commands_parse() {
        assert!(matches!(parse(&["list"]), Ok(TxnCommand::List)));
        match parse(&["describe", "t1"]) {
            Ok(TxnCommand::Describe { transactional_id }) => assert_eq!(transactional_id, "t1"),
            other => panic!("{other:?}"),
        }
        match parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "2",
            "--producer-id",
            "1000",
            "--producer-epoch",
            "3",
            "--coordinator-epoch",
            "-1",
        ]) {
            Ok(TxnCommand::Abort(a)) => assert_eq!(
                (
                    a.topic.as_str(),
                    a.partition,
                    a.producer_id,
                    a.producer_epoch,
                    a.coordinator_epoch
                ),
                ("t", 2, 1000, 3, -1)
            ),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["abort", "--topic", "t"]).is_err());
        match parse(&["find-hanging", "--broker-id", "2"]) {
            Ok(TxnCommand::FindHanging {
                broker_id,
                max_transaction_timeout,
            }) => assert_eq!((broker_id, max_transaction_timeout), (2, 15)),
            other => panic!("{other:?}"),
        }
    }

    fn open_txn() -> OpenTxn {
        OpenTxn {
            topic: "t".into(),
            partition: 0,
            producer_id: 7,
            producer_epoch: 1,
            coordinator_epoch: 2,
            start_offset: 10,
            last_timestamp: 0,
        }
    }

    fn description(state: &str, producer_id: i64, partitions: &[(&str, i32)]) -> TxnDescription {
        TxnDescription {
            transactional_id: "x".into(),
            coordinator: "1 (h:1)".into(),
            state: state.into(),
            producer_id,
            producer_epoch: 1,
            timeout_ms: 60_000,
            start_time_ms: 5,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
        }
    }

    #[test]
    fn a_transaction_hangs_unless_its_coordinator_has_it_open_on_the_partition() {
        let txn = open_txn();
        assert!(still_open(&txn, &description("Ongoing", 7, &[("t", 0)])));
        assert!(still_open(
            &txn,
            &description("PrepareAbort", 7, &[("t", 0), ("u", 1)])
        ));
        // Completed, another producer, or not on this partition: hanging.
        assert!(!still_open(
            &txn,
            &description("CompleteAbort", 7, &[("t", 0)])
        ));
        assert!(!still_open(&txn, &description("Empty", 7, &[])));
        assert!(!still_open(&txn, &description("Ongoing", 8, &[("t", 0)])));
        assert!(!still_open(&txn, &description("Ongoing", 7, &[("t", 1)])));
    }

    #[test]
    fn tables() {
        let d = description("Ongoing", 7, &[("t", 0), ("t", 1)]);
        let out = format_description(&d, 1_005);
        assert!(out.starts_with("COORDINATOR"), "{out}");
        assert!(out.contains("Ongoing"), "{out}");
        assert!(out.contains("t-0,t-1"), "{out}");
        assert!(out.contains("1000"), "duration: {out}");
        let out = format_hanging(&[open_txn()], 30 * 60_000);
        assert!(out.contains("DURATION-MIN"), "{out}");
        assert!(
            out.lines().nth(1).is_some_and(|l| l.ends_with("30")),
            "{out}"
        );
    }
}
