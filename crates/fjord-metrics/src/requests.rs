//! Per-Kafka-API request counts and latencies.

use std::time::Duration;

use crate::primitives::{Histogram, HistogramSnapshot};

/// API keys below this are recorded (Kafka's highest key is in the 70s);
/// others are counted in [`RequestMetrics::other`].
pub const MAX_API_KEYS: usize = 128;

/// One latency histogram per API key, indexed by the key: recording is an
/// array index and two atomic adds.
#[derive(Debug)]
pub struct RequestMetrics {
    by_key: [Histogram; MAX_API_KEYS],
    /// Requests with a key outside `0..MAX_API_KEYS` (never decoded today,
    /// kept so that no request goes uncounted).
    other: Histogram,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    pub const fn new() -> Self {
        RequestMetrics {
            by_key: [const { Histogram::new() }; MAX_API_KEYS],
            other: Histogram::new(),
        }
    }

    /// One request of `api_key` that took `elapsed` from decoded to answered.
    pub fn record(&self, api_key: i16, elapsed: Duration) {
        self.histogram(api_key).observe(elapsed);
    }

    fn histogram(&self, api_key: i16) -> &Histogram {
        usize::try_from(api_key)
            .ok()
            .and_then(|i| self.by_key.get(i))
            .unwrap_or(&self.other)
    }

    /// Requests of `api_key` so far.
    pub fn count(&self, api_key: i16) -> u64 {
        self.histogram(api_key).count()
    }

    /// `(api key, snapshot)` for every key that saw a request.
    pub fn snapshots(&self) -> Vec<(i16, HistogramSnapshot)> {
        self.by_key
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count() > 0)
            .filter_map(|(key, h)| Some((i16::try_from(key).ok()?, h.snapshot())))
            .collect()
    }

    /// Requests outside the indexed keys.
    pub fn other(&self) -> HistogramSnapshot {
        self.other.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_key_and_out_of_range_keys_go_to_other() {
        let m = RequestMetrics::new();
        m.record(0, Duration::from_millis(3));
        m.record(0, Duration::from_millis(4));
        m.record(1, Duration::from_millis(600));
        m.record(-1, Duration::from_millis(1));
        m.record(500, Duration::from_millis(1));
        assert_eq!(m.count(0), 2);
        assert_eq!(m.count(1), 1);
        assert_eq!(m.other().count, 2);
        let keys: Vec<i16> = m.snapshots().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![0, 1]);
    }
}
