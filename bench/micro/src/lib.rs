//! Criterion micro-benchmarks of Fjord's hot path, in `benches/`:
//! `log` (`Log::append_as_leader`, `Log::read`) and `codec` (Produce and
//! Fetch frames through the gateway's frame codec). Run them with
//! `bench/micro/run`; they need the `micro` feature, so neither the test
//! command nor `cargo build --bins` compiles them. This library is empty.
