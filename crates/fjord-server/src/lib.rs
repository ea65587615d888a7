//! `fjord-server`: the `fjord` binary as a library.
//!
//! - [`config`]: TOML file + `FJORD_*` environment → validated [`config::Config`].
//! - [`node`]: start a node (gRPC server, controller, broker, Kafka listener) and stop it
//!   gracefully; [`node::run`] is what `main`, tests and simulators call.
//! - [`http`]: the node's HTTP port (`/healthz`, `/readyz`, `/metrics`,
//!   `/shutdown`) and [`health_check`], the `fjord health` probe client.
//! - [`dev_cluster`]: `fjord dev --nodes N`, a local cluster of child
//!   processes.
//! - [`admin`]: the admin commands (`fjord topic`, `produce`, `consume`, `group`,
//!   `cluster status`), a
//!   small Kafka client that speaks the wire protocol to any node.

pub mod admin;
pub mod config;
pub mod dev_cluster;
pub mod health_check;
pub mod http;
pub mod node;
