//! Kafka's sampled rate (`SampledStat` + `Rate`, as in Kafka 4.1) and its
//! throttle formula, as plain maths over millisecond timestamps: no clock,
//! no I/O.
//!
//! A rate keeps up to `num_samples + 1` samples of `window_ms` each: the
//! extra one so that the sample about to be recycled still counts while
//! the window it belongs to is measured (with only `num_samples`, starting
//! a new sample drops the oldest and the measured span shrinks by a whole
//! window at once, which reads as a 10 % jump in rate with the default 11
//! samples). A sample whose last recording is older than all the windows
//! together is reset before measuring. The rate is the samples' total
//! over the time since the oldest sample started, counting at least
//! `num_samples - 1` full windows, so a burst after a quiet period is
//! measured over the whole window (Kafka's `Rate.windowSize`).

/// One sample: the value recorded since `start_ms`, last at `last_ms`.
#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: u64,
    last_ms: u64,
    value: f64,
}

impl Sample {
    fn fresh(now_ms: u64) -> Self {
        Sample {
            start_ms: now_ms,
            last_ms: now_ms,
            value: 0.0,
        }
    }
}

/// A rate per second over sampled windows.
#[derive(Debug)]
pub struct SampledRate {
    samples: Vec<Sample>,
    current: usize,
    /// `quota.window.num`: the windows the rate is measured over.
    num_samples: usize,
    window_ms: u64,
}

impl SampledRate {
    pub fn new(num_samples: usize, window_ms: u64, now_ms: u64) -> Self {
        let num_samples = num_samples.max(2);
        let mut samples = Vec::with_capacity(num_samples + 1);
        samples.push(Sample::fresh(now_ms));
        SampledRate {
            samples,
            current: 0,
            num_samples,
            window_ms: window_ms.max(1),
        }
    }

    /// Add `value` at `now_ms` (negative to take back what was recorded).
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let sample = self.samples[self.current];
        if now_ms >= sample.start_ms.saturating_add(self.window_ms) {
            self.current = (self.current + 1) % (self.num_samples + 1);
            let fresh = Sample::fresh(now_ms);
            if self.current == self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.last_ms = now_ms;
    }

    /// Reset samples with nothing recorded within the whole window (a
    /// sample that began before it but was recorded into since still
    /// counts, as in Kafka).
    fn purge(&mut self, now_ms: u64) {
        let expire_ms = self.window_ms * self.num_samples as u64;
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.last_ms) >= expire_ms {
                *sample = Sample::fresh(now_ms);
            }
        }
    }

    /// The span the rate is measured over (Kafka's `Rate.windowSize`).
    pub fn window_size_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / self.window_ms;
        let min_full_windows = self.num_samples as u64 - 1;
        if full_windows < min_full_windows {
            elapsed += (min_full_windows - full_windows) * self.window_ms;
        }
        elapsed
    }

    /// Value per second at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        let window_ms = self.window_size_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total * 1000.0 / window_ms as f64
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long the client must stay quiet
/// for the rate over the window to come back to the bound.
pub fn throttle_time_ms(rate: f64, bound: f64, window_ms: u64) -> u64 {
    if rate <= bound || bound <= 0.0 {
        return 0;
    }
    ((rate - bound) / bound * window_ms as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    /// A first burst is measured over `num_samples - 1` windows.
    #[test]
    fn burst_is_spread_over_the_minimum_window() {
        let mut rate = SampledRate::new(11, 1000, 0);
        rate.record(20.0 * MIB, 0);
        assert_eq!(rate.window_size_ms(0), 10_000);
        assert_eq!(rate.measure(0), 2.0 * MIB);
        // (2 - 1) / 1 of the 10 s window.
        assert_eq!(throttle_time_ms(rate.measure(0), MIB, 10_000), 10_000);
        // At the bound: no throttle.
        let mut at_bound = SampledRate::new(11, 1000, 0);
        at_bound.record(10.0 * MIB, 0);
        assert_eq!(throttle_time_ms(at_bound.measure(0), MIB, 10_000), 0);
    }

    /// Samples roll over and the oldest expire, so a steady rate is
    /// measured as itself once the window is full.
    #[test]
    fn steady_rate_and_expiry() {
        let mut rate = SampledRate::new(11, 1000, 0);
        for second in 0..30u64 {
            rate.record(500.0, second * 1000);
        }
        // 11 samples of 500 over the 10.x s they span.
        let measured = rate.measure(29_000);
        assert!((measured - 5500.0 / 10.0).abs() < 1.0, "{measured}");
        // Quiet for longer than the whole window: everything expired.
        assert_eq!(rate.measure(29_000 + 11_000), 0.0);
        assert_eq!(rate.window_size_ms(29_000 + 11_000), 10_000);
    }

    /// A steady stream is measured as itself at every recording, also
    /// right after a new sample starts (the extra sample keeps the span
    /// from shrinking by a window at once).
    #[test]
    fn steady_stream_has_no_jumps() {
        let mut rate = SampledRate::new(11, 1000, 0);
        for step in 0..400u64 {
            let now = step * 100;
            rate.record(100.0, now);
            let measured = rate.measure(now);
            if now >= 12_000 {
                assert!((measured - 1000.0).abs() <= 10.0, "{now}: {measured}");
            }
        }
    }

    /// A sample that started more than the whole window ago but was
    /// recorded into since still counts (Kafka expires by last event).
    #[test]
    fn expiry_by_last_recording() {
        let mut rate = SampledRate::new(2, 1000, 0);
        rate.record(100.0, 0);
        rate.record(100.0, 900);
        // 2100 ms after the start, 1200 ms after the last recording: kept.
        assert_eq!(rate.measure(2_100), 200.0 * 1000.0 / 2_100.0);
        // 2000 ms after the last recording: gone.
        assert_eq!(rate.measure(2_900), 0.0);
    }

    /// Recording a negative value takes a recording back (Kafka's unrecord
    /// of a throttled fetch).
    #[test]
    fn unrecord() {
        let mut rate = SampledRate::new(11, 1000, 0);
        rate.record(1000.0, 5);
        rate.record(-1000.0, 6);
        assert_eq!(rate.measure(6), 0.0);
    }

    #[test]
    fn throttle_formula() {
        assert_eq!(throttle_time_ms(150.0, 100.0, 10_000), 5_000);
        assert_eq!(throttle_time_ms(100.0, 100.0, 10_000), 0);
        assert_eq!(throttle_time_ms(99.0, 100.0, 10_000), 0);
        assert_eq!(throttle_time_ms(101.0, 100.0, 1_000), 10);
    }
}
