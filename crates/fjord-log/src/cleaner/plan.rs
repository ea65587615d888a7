//! Which part of a log a cleaning pass may touch, and whether it is worth
//! it (Kafka's `LogCleanerManager.cleanableOffsets` and dirty ratio). Pure
//! logic over segment summaries; the log takes them under its lock.

use crate::config::LogConfig;

/// What the plan needs to know of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    /// Largest batch timestamp; -1 when none.
    pub max_timestamp: i64,
}

/// The cleanable part of a log: `[log start, end)`, of which
/// `[first_dirty, end)` was not cleaned yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanableRange {
    /// Where the last pass stopped (or the log start).
    pub first_dirty: i64,
    /// The first offset a pass must not clean (Kafka's
    /// `firstUncleanableDirtyOffset`): the smallest of the active segment's
    /// base, the last stable offset, and the base of the first dirty segment
    /// younger than `min.compaction.lag.ms`.
    pub end: i64,
    /// Bytes of the segments below `first_dirty`.
    pub clean_bytes: u64,
    /// Bytes of the segments overlapping `[first_dirty, end)`.
    pub dirty_bytes: u64,
    /// `max.compaction.lag.ms` passed for the oldest dirty record.
    pub forced: bool,
}

impl CleanableRange {
    /// Dirty bytes over cleanable bytes; 0 when there is nothing to clean.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether a pass should run: something dirty, and the ratio reached
    /// `min.cleanable.dirty.ratio` or `max.compaction.lag.ms` forces it.
    pub fn is_due(&self, config: &LogConfig) -> bool {
        self.dirty_bytes > 0
            && (self.forced || self.dirty_ratio() >= config.min_cleanable_dirty_ratio.get())
    }
}

/// The cleanable range of a log whose segments are `segments` (by base
/// offset; the last one is the active segment), given the cleaner's
/// checkpoint, the last stable offset and, for the forced case, the first
/// dirty segment's first batch timestamp (`first_dirty_timestamp`).
pub(crate) fn cleanable_range(
    segments: &[SegmentSummary],
    log_start: i64,
    checkpoint: Option<i64>,
    last_stable_offset: i64,
    first_dirty_timestamp: impl FnOnce(&SegmentSummary) -> Option<i64>,
    config: &LogConfig,
    now_ms: i64,
) -> CleanableRange {
    let active_base = segments.last().map_or(log_start, |s| s.base_offset);
    let first_dirty = checkpoint.unwrap_or(log_start).max(log_start);
    let mut end = active_base.min(last_stable_offset);
    if config.min_compaction_lag_ms > 0 {
        let young_after = now_ms.saturating_sub(config.min_compaction_lag_ms);
        if let Some(young) = segments
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .find(|s| s.max_timestamp > young_after)
        {
            end = end.min(young.base_offset);
        }
    }
    let sealed = &segments[..segments.len().saturating_sub(1)];
    let clean_bytes = sealed
        .iter()
        .filter(|s| s.base_offset < first_dirty.min(end))
        .map(|s| s.size)
        .sum();
    let dirty: Vec<&SegmentSummary> = sealed
        .iter()
        .filter(|s| s.next_offset > first_dirty && s.base_offset < end)
        .collect();
    let dirty_bytes = if first_dirty < end {
        dirty.iter().map(|s| s.size).sum()
    } else {
        0
    };
    let forced = dirty_bytes > 0
        && config.max_compaction_lag_ms < i64::MAX
        && dirty
            .first()
            .and_then(|s| first_dirty_timestamp(s))
            .is_some_and(|ts| now_ms.saturating_sub(ts) >= config.max_compaction_lag_ms);
    CleanableRange {
        first_dirty,
        end: end.max(first_dirty),
        clean_bytes,
        dirty_bytes,
        forced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirtyRatio;

    /// Segments of 10 offsets and 100 bytes each from 0; `ts[i]` is the i-th
    /// one's largest timestamp; the last is the active one.
    fn segs(ts: &[i64]) -> Vec<SegmentSummary> {
        ts.iter()
            .enumerate()
            .map(|(i, &t)| SegmentSummary {
                base_offset: 10 * i as i64,
                next_offset: 10 * i as i64 + 10,
                size: 100,
                max_timestamp: t,
            })
            .collect()
    }

    fn cfg(ratio: f64, min_lag: i64, max_lag: i64) -> LogConfig {
        LogConfig {
            min_cleanable_dirty_ratio: DirtyRatio::new(ratio).expect("ratio"),
            min_compaction_lag_ms: min_lag,
            max_compaction_lag_ms: max_lag,
            ..LogConfig::default()
        }
    }

    #[test]
    fn range_bounds_and_ratio() {
        let s = segs(&[1, 2, 3, 4, 5]);
        let none = |_: &SegmentSummary| None;
        // (checkpoint, lso, min lag, now) -> (first dirty, end, clean, dirty)
        let cases = [
            (None, i64::MAX, 0, 0, (0, 40, 0, 400)),
            (Some(20), i64::MAX, 0, 0, (20, 40, 200, 200)),
            // LSO inside the third segment.
            (Some(10), 25, 0, 0, (10, 25, 100, 200)),
            // Segments younger than the lag (ts > now - lag = 2) are not cleanable.
            (None, i64::MAX, 10, 12, (0, 20, 0, 200)),
            // Everything clean already.
            (Some(40), i64::MAX, 0, 0, (40, 40, 400, 0)),
            // A checkpoint past the log end (truncation) cleans nothing.
            (Some(99), i64::MAX, 0, 0, (99, 99, 400, 0)),
        ];
        for (checkpoint, lso, lag, now, want) in cases {
            let r = cleanable_range(&s, 0, checkpoint, lso, none, &cfg(0.5, lag, i64::MAX), now);
            assert_eq!(
                (r.first_dirty, r.end, r.clean_bytes, r.dirty_bytes),
                want,
                "{checkpoint:?} {lso} {lag} {now}"
            );
        }
        let r = cleanable_range(&s, 0, Some(20), i64::MAX, none, &cfg(0.5, 0, i64::MAX), 0);
        assert_eq!(r.dirty_ratio(), 0.5);
        assert!(r.is_due(&cfg(0.5, 0, i64::MAX)));
        assert!(!r.is_due(&cfg(0.6, 0, i64::MAX)));
    }

    #[test]
    fn max_compaction_lag_forces_a_pass() {
        let s = segs(&[1, 2, 3, 4, 5]);
        let first_ts = |seg: &SegmentSummary| Some(seg.base_offset);
        let c = cfg(0.9, 0, 100);
        let r = cleanable_range(&s, 0, Some(30), i64::MAX, first_ts, &c, 1000);
        assert!(r.forced && r.is_due(&c));
        let r = cleanable_range(&s, 0, Some(30), i64::MAX, first_ts, &c, 50);
        assert!(!r.forced && !r.is_due(&c));
    }
}
