//! Counters, gauges and histograms as plain atomics.
//!
//! All operations use relaxed ordering: a scrape needs each value to be
//! some recent value, not a consistent cut across values.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }

    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets: 0.5 ms to 10 s, roughly
/// ×2–×2.5 apart, covering a local fetch as well as a long-polled one
/// (`fetch.max.wait.ms` defaults to 500 ms) and an acks=all produce
/// waiting on a slow follower.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, the unit observations are compared in.
const LATENCY_BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

const BUCKETS: usize = LATENCY_BUCKETS_MICROS.len();

/// A latency histogram over [`LATENCY_BUCKETS_SECONDS`] plus `+Inf`.
///
/// Each observation increments exactly one (non-cumulative) slot and the
/// sum; the count is the total over the slots, so a snapshot's count always
/// equals its `+Inf` bucket even while observations race with the scrape.
#[derive(Debug)]
pub struct Histogram {
    /// `slots[i]`: observations in `(bound[i-1], bound[i]]`; the last slot
    /// is above the highest bound.
    slots: [AtomicU64; BUCKETS + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram read at one moment, buckets cumulative as Prometheus wants them.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations <= bound)`, ascending; the
    /// `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            slots: [const { AtomicU64::new(0) }; BUCKETS + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BUCKETS);
        self.slots[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BUCKETS);
        for (slot, bound) in self.slots.iter().zip(LATENCY_BUCKETS_SECONDS) {
            cumulative += slot.load(Ordering::Relaxed);
            buckets.push((bound, cumulative));
        }
        let count = cumulative + self.slots[BUCKETS].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::new();
        g.set(-3);
        assert_eq!(g.get(), -3);
    }

    #[test]
    fn bounds_in_both_units_agree() {
        for (s, us) in LATENCY_BUCKETS_SECONDS.iter().zip(LATENCY_BUCKETS_MICROS) {
            assert_eq!((s * 1e6).round() as u64, us);
        }
        assert!(LATENCY_BUCKETS_MICROS.windows(2).all(|w| w[0] < w[1]));
    }

    /// Each observation lands in the first bucket whose bound is >= it
    /// (Prometheus buckets are `le`, inclusive), and buckets are cumulative.
    #[test]
    fn observations_land_in_le_buckets() {
        let h = Histogram::new();
        for (micros, le_index) in [
            (0u64, 0usize),
            (500, 0),
            (501, 1),
            (1_000, 1),
            (7_000, 4),
            (10_000_000, 13),
        ] {
            let before = h.snapshot();
            h.observe(Duration::from_micros(micros));
            let after = h.snapshot();
            for (i, ((_, b), (_, a))) in before.buckets.iter().zip(&after.buckets).enumerate() {
                let expected = if i >= le_index { b + 1 } else { *b };
                assert_eq!(*a, expected, "{micros} us: bucket {i}");
            }
        }
        // Above the highest bound: only +Inf (the count) moves.
        let before = h.snapshot();
        h.observe(Duration::from_secs(60));
        let after = h.snapshot();
        assert_eq!(before.buckets, after.buckets);
        assert_eq!(after.count, before.count + 1);
        assert_eq!(after.count, 7);
        assert_eq!(h.count(), 7);
        let expected_sum = (500 + 501 + 1_000 + 7_000 + 10_000_000 + 60_000_000) as f64 / 1e6;
        assert!((after.sum_seconds - expected_sum).abs() < 1e-9);
    }
}
