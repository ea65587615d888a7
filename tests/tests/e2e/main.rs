//! End-to-end tests: real `fjord` processes on loopback, real clients.
//!
//! One test binary (modules below) to keep link time down. Every test starts its own node via
//! `fjord_e2e::FjordNode` (or its own cluster via `fjord_e2e::FjordCluster`), which fails the
//! test if a node log shows a panic. `bench_cluster` holds ignored benchmarks (`bench/failover`). Time bounds:
//! `fjord_e2e::bounded` per async test, plus nextest's slow-timeout in `.config/nextest.toml`.

mod acls;
mod admin_api;
mod admin_cli;
mod admin_group_cli;
mod bench_cluster;
mod bench_scale;
mod cluster;
mod compaction;
mod configs;
mod coordinator_loads;
mod coordinator_shards;
mod delete_records;
mod dev_cluster;
mod durability;
mod elect_leaders;
mod failover;
mod groups;
mod hostile_input;
mod idempotence;
mod list_groups;
mod listeners;
mod log_dir_failure;
mod observability;
mod offsets_topic;
mod open_files;
mod produce_consume;
mod produce_validation;
mod producer_state;
mod protocol_errors;
mod reassignment;
mod retention;
mod scram;
mod shutdown_order;
mod transactions_admin;
mod txn_verification;
