//! Admin commands of the `fjord` binary: a small Kafka protocol client in
//! the spirit of `kafka-topics.sh`, `kafka-console-producer.sh` and
//! `kafka-console-consumer.sh`, speaking only the public wire protocol so
//! it works against Fjord and against any Kafka-compatible broker.
//!
//! Layout:
//! - [`client`]: [`KafkaClient`], one connection to one broker — framing,
//!   correlation ids, the ApiVersions handshake and version negotiation.
//! - `cluster`: metadata snapshots and lazily opened connections to
//!   partition leaders (produce and fetch always go to the leader).
//! - `batch`: record batch encoding for produce and the fetch-side split of
//!   `records` bytes into complete v2 batches.
//! - `partitioner`: the Java client's murmur2 key partitioner.
//! - `topic`, `produce`, `consume`: the commands.
//! - `cluster_status`: `fjord cluster status` (nodes, controller,
//!   under-replicated and offline partitions).
//! - `group`: consumer group commands; `group_describe`: their assignment
//!   decoding, lag arithmetic and tables.
//! - `configs`: `fjord config` (describe and change topic and broker configs).
//! - `acl`: `fjord acl` (add, remove and list ACLs, like kafka-acls.sh).
//! - `user`: `fjord user` (SCRAM credentials, like kafka-configs.sh --entity-type users).
//! - `quota`: `fjord quota` (set, remove and list client quotas, like
//!   kafka-configs.sh on users and clients).
//! - `txn`: transaction commands (list, describe, abort, find-hanging).
//! - `coordinator`: finding a group's or transactional id's coordinator,
//!   with a bounded retry while it loads or moves.
//! - `security`: `--command-config`, the Kafka client properties that say
//!   how to reach SSL, SASL_PLAINTEXT and SASL_SSL listeners;
//!   `sasl_client`: the client side of PLAIN and SCRAM.
//! - `error`: [`KafkaError`], a response error code with the operation that
//!   got it, displayed with Kafka's `SCREAMING_SNAKE` error names.
//!
//! This is the CLI layer, so errors are `anyhow`; every error that comes
//! from a response names the Kafka error code
//! (`create topic t1: TOPIC_ALREADY_EXISTS (...)`).

mod acl;
mod batch;
pub mod client;
mod cluster;
mod cluster_status;
mod configs;
mod consume;
mod coordinator;
mod delete_records;
mod error;
mod group;
mod group_describe;
mod partitioner;
mod produce;
mod quota;
mod sasl_client;
pub mod security;
mod table;
mod topic;
mod txn;
mod user;

use std::time::Duration;

pub use acl::{AclCommand, run_acl};
pub use client::KafkaClient;
pub use cluster_status::{ClusterCommand, run_cluster};
pub use configs::{ConfigCommand, run_config};
pub use consume::{ConsumeArgs, run_consume};
pub use error::{KafkaError, error_name};
pub use group::{GroupCommand, ResetOffsetsArgs, ResetTarget, run_group};
pub use produce::{Acks, CompressionArg, ProduceArgs, run_produce};
pub use quota::{QuotaCommand, run_quota};
pub use topic::{TopicCommand, run_topic};
pub use txn::{AbortArgs, TxnCommand, run_txn};
pub use user::{UserCommand, run_user};

/// How to reach the cluster; shared by every admin command.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Bootstrap broker(s), `host:port`, comma separated; tried in order.
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        env = "FJORD_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,

    /// Timeout for connecting and for each request round trip.
    #[arg(
        long = "request-timeout-ms",
        env = "FJORD_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub request_timeout_ms: u64,

    /// Kafka client properties for secured listeners (security.protocol,
    /// ssl.*, sasl.*), as Kafka tools' `--command-config`.
    #[arg(
        long = "command-config",
        env = "FJORD_COMMAND_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub command_config: Option<std::path::PathBuf>,
}

impl ConnectArgs {
    /// The bootstrap addresses, in the order they are tried.
    pub fn bootstrap_addrs(&self) -> Vec<String> {
        self.bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How to secure connections: PLAINTEXT without `--command-config`.
    pub fn security(&self) -> anyhow::Result<std::sync::Arc<security::ClientSecurity>> {
        match &self.command_config {
            None => Ok(security::ClientSecurity::plaintext()),
            Some(path) => Ok(std::sync::Arc::new(security::ClientSecurity::from_file(
                path,
            )?)),
        }
    }
}

/// Parsing one admin subcommand tree in tests, as `main` nests it under
/// the shared connection flags (`fjord group …`, `fjord txn …`).
#[cfg(test)]
pub(crate) mod parse_for_tests {
    use clap::{CommandFactory, Parser, Subcommand};

    use super::ConnectArgs;

    #[derive(Parser, Debug)]
    struct Cli<T: Subcommand> {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: T,
    }

    /// `args` after the command's own name (`["list"]` for `fjord txn list`).
    pub(crate) fn parse<T: Subcommand>(args: &[&str]) -> Result<T, clap::Error> {
        Cli::<T>::try_parse_from(std::iter::once("fjord").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    /// clap's own consistency checks of the tree.
    pub(crate) fn assert_consistent<T: Subcommand>() {
        Cli::<T>::command().debug_assert();
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Stand-in for the lead's clap tree: the admin types must flatten and
    /// nest the way `main` uses them.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Command {
        #[command(subcommand)]
        Topic(TopicCommand),
        Produce(ProduceArgs),
        Consume(ConsumeArgs),
    }

    fn parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(std::iter::once("fjord").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => panic!("parse {args:?}: {e}"),
        }
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn bootstrap_list_is_split_and_trimmed() {
        let cli = parse(&["-b", "a:1, b:2,,", "topic", "list"]);
        assert_eq!(cli.connect.bootstrap_addrs(), vec!["a:1", "b:2"]);
        assert_eq!(cli.connect.request_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn topic_create_parses_partitions_rf_and_configs() {
        let cli = parse(&[
            "--bootstrap-server",
            "127.0.0.1:19092",
            "topic",
            "create",
            "t1",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "retention.ms=1000",
        ]);
        assert_eq!(cli.connect.bootstrap, "127.0.0.1:19092");
        match cli.command {
            Command::Topic(TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                configs,
            }) => {
                assert_eq!(name, "t1");
                assert_eq!(partitions, 3);
                assert_eq!(replication_factor, 1);
                assert_eq!(configs, vec!["cleanup.policy=compact", "retention.ms=1000"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn topic_create_defaults() {
        match parse(&["topic", "create", "t1"]).command {
            Command::Topic(TopicCommand::Create {
                partitions,
                replication_factor,
                configs,
                ..
            }) => {
                assert_eq!((partitions, replication_factor), (1, -1));
                assert!(configs.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn topic_add_partitions_takes_new_total() {
        match parse(&["topic", "add-partitions", "t1", "--count", "6"]).command {
            Command::Topic(TopicCommand::AddPartitions { name, count }) => {
                assert_eq!((name.as_str(), count), ("t1", 6));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn topic_delete_records_takes_flags_or_a_json_file() {
        match parse(&[
            "topic",
            "delete-records",
            "--topic",
            "t1",
            "--partition",
            "2",
            "--offset",
            "-1",
        ])
        .command
        {
            Command::Topic(TopicCommand::DeleteRecords {
                topic,
                partition,
                offset,
                offset_json_file,
            }) => {
                assert_eq!(
                    (topic.as_deref(), partition, offset),
                    (Some("t1"), Some(2), Some(-1))
                );
                assert!(offset_json_file.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["topic", "delete-records", "--offset-json-file", "o.json"]).command {
            Command::Topic(TopicCommand::DeleteRecords {
                offset_json_file, ..
            }) => assert_eq!(offset_json_file, Some("o.json".into())),
            other => panic!("unexpected {other:?}"),
        }
        let cli = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("fjord").chain(args.iter().copied()))
        };
        // Flags are all or nothing, and exclusive with the file.
        assert!(cli(&["topic", "delete-records", "--topic", "t1", "--offset", "3"]).is_err());
        assert!(cli(&["topic", "delete-records"]).is_err());
        assert!(
            cli(&[
                "topic",
                "delete-records",
                "--offset-json-file",
                "o.json",
                "--topic",
                "t1"
            ])
            .is_err()
        );
    }

    #[test]
    fn produce_parses_acks_and_separator() {
        match parse(&[
            "produce",
            "t1",
            "--partition",
            "2",
            "--key-separator",
            ":",
            "--acks",
            "1",
        ])
        .command
        {
            Command::Produce(args) => {
                assert_eq!(args.topic, "t1");
                assert_eq!(args.partition, Some(2));
                assert_eq!(args.key_separator.as_deref(), Some(":"));
                assert_eq!(args.acks, Acks::Leader);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["produce", "t1"]).command {
            Command::Produce(args) => {
                assert_eq!(args.acks, Acks::All);
                assert_eq!(args.compression, CompressionArg::None);
                assert_eq!(args.partition, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["produce", "t1", "--acks", "-1"]).command {
            Command::Produce(args) => assert_eq!(args.acks, Acks::All),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["fjord", "produce", "t1", "--acks", "2"]).is_err());
    }

    #[test]
    fn consume_parses_start_position_and_limits() {
        match parse(&[
            "consume",
            "t1",
            "--from-beginning",
            "--max-messages",
            "10",
            "--print-key",
        ])
        .command
        {
            Command::Consume(args) => {
                assert!(args.from_beginning);
                assert_eq!(args.max_messages, Some(10));
                assert!(args.print_key);
                assert_eq!(args.partition, None);
                assert_eq!(args.offset, None);
                assert_eq!(args.idle_timeout_ms, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["consume", "t1", "--partition", "0", "--offset", "-5"]).command {
            Command::Consume(args) => {
                assert_eq!((args.partition, args.offset), (Some(0), Some(-5)))
            }
            other => panic!("unexpected {other:?}"),
        }
        // --offset and --from-beginning contradict each other.
        assert!(
            Cli::try_parse_from([
                "fjord",
                "consume",
                "t1",
                "--offset",
                "3",
                "--from-beginning"
            ])
            .is_err()
        );
    }
}
