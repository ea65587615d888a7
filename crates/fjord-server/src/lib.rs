//! `fjord-server`: the `fjord` binary as a library.
//!
//! - [`config`]: TOML file + `FJORD_*` environment → validated [`config::Config`].
//! - [`node`]: start a node (controller, broker, Kafka listener) and stop it
//!   gracefully; [`node::run`] is what `main`, tests and simulators call.
//! - [`admin`]: the admin commands (`fjord topic`, `produce`, `consume`), a
//!   small Kafka client that speaks the wire protocol to any node.

pub mod admin;
pub mod config;
pub mod node;
