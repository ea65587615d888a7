//! `fjord-metrics`: the process-wide counters of a Fjord node and the
//! Prometheus text exposition (format 0.0.4) they are scraped in.
//!
//! Layout:
//! - [`primitives`]: [`Counter`], [`Gauge`] and a fixed-bucket [`Histogram`],
//!   each a few atomics.
//! - [`requests`]: [`RequestMetrics`], one histogram per Kafka API key in a
//!   static array (the key is the index).
//! - [`exposition`]: [`TextEncoder`], which writes families and samples.
//!
//! The statics below are what the hot paths record into. They are per
//! process: a production node is one process; in-process test clusters share
//! them (their tests must not read them per node).
//!
//! Invariants: recording is lock-free and allocation-free (relaxed atomic
//! adds, no map lookup, no mutex), so the produce and fetch paths can record
//! every request. Values that are cheaper to compute when scraped (partitions
//! led, lag, Raft state) are not kept here: the HTTP scrape computes them.

pub mod exposition;
pub mod primitives;
pub mod requests;

pub use exposition::{MetricKind, TextEncoder};
pub use primitives::{Counter, Gauge, Histogram, HistogramSnapshot};
pub use requests::RequestMetrics;

/// Kafka requests handled, by API key, with their latency.
pub static REQUESTS: RequestMetrics = RequestMetrics::new();

/// Record bytes appended by Produce requests (Kafka's `BytesInPerSec`).
pub static BYTES_IN: Counter = Counter::new();

/// Record bytes returned to Kafka Fetch requests (Kafka's `BytesOutPerSec`;
/// replication between Fjord nodes runs over gRPC and is not counted).
pub static BYTES_OUT: Counter = Counter::new();

/// ISR shrinks this node proposed as partition leader and the controller
/// committed (Kafka's `IsrShrinksPerSec`).
pub static ISR_SHRINKS: Counter = Counter::new();

/// ISR expansions this node proposed as partition leader and the controller
/// committed (Kafka's `IsrExpandsPerSec`).
pub static ISR_EXPANDS: Counter = Counter::new();

/// SASL authentications that succeeded on this node's listeners (Kafka's
/// `successful-authentication-total`), re-authentications not counted.
pub static SASL_AUTHENTICATIONS: Counter = Counter::new();

/// SASL re-authentications that succeeded (KIP-368; Kafka's
/// `successful-reauthentication-total`).
pub static SASL_REAUTHENTICATIONS: Counter = Counter::new();

/// SASL authentications and re-authentications that failed (Kafka's
/// `failed-authentication-total`).
pub static SASL_FAILED_AUTHENTICATIONS: Counter = Counter::new();

/// Bytes of log segments the log cleaner rewrote (read and filtered).
pub static CLEANER_BYTES_CLEANED: Counter = Counter::new();

/// Bytes the log cleaner wrote (the cleaned segments).
pub static CLEANER_BYTES_WRITTEN: Counter = Counter::new();

/// Cleaning passes swapped in.
pub static CLEANER_PASSES: Counter = Counter::new();

/// Wall time of the last cleaning pass, in milliseconds.
pub static CLEANER_LAST_PASS_MS: Gauge = Gauge::new();

/// The largest dirty ratio among this node's compacted logs at the last
/// cleaner check, in parts per million (the scrape divides).
pub static CLEANER_MAX_DIRTY_RATIO_PPM: Gauge = Gauge::new();
