//! `cleaner-offset-checkpoint`: where the next pass's dirty range starts,
//! and when each cleaned offset range was first cleaned (for tombstones'
//! `delete.retention.ms`).
//!
//! ```text
//! 1                       version
//! <first dirty offset>
//! <n>
//! <end offset> <ms>       n lines, ascending: the records below <end> (and at or
//!                         above the previous line's end) were first cleaned at <ms>
//! ```
//! A pass adds one line (its map end, now). Lines whose time is older than
//! `delete.retention.ms` are merged into one, so the file holds at most one
//! line per pass within `delete.retention.ms`. Kafka's per-directory file
//! holds only the offset (version 0, also read here: no clean times).

use std::path::Path;

use crate::checkpoint::{self, CLEANER_OFFSET};
use crate::error::LogError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// `None` before the first pass.
    pub first_dirty: Option<i64>,
    /// (end offset, first clean time ms), ascending in both.
    pub clean_times: Vec<(i64, i64)>,
}

impl CleanerCheckpoint {
    /// The checkpoint of the log in `dir`; none if absent. A malformed file
    /// is not fatal (unlike the log's other checkpoints): it is logged and
    /// ignored, which costs a full re-clean and restarts tombstones'
    /// `delete.retention.ms` clocks, never data.
    pub(crate) fn read(dir: &Path) -> Result<CleanerCheckpoint, LogError> {
        match Self::parse(dir) {
            Err(LogError::CorruptCheckpoint { path, reason }) => {
                tracing::warn!(path = %path.display(), reason,
                    "ignoring a malformed cleaner checkpoint");
                Ok(CleanerCheckpoint::default())
            }
            other => other,
        }
    }

    fn parse(dir: &Path) -> Result<CleanerCheckpoint, LogError> {
        let Some((path, text)) = checkpoint::read(dir, CLEANER_OFFSET)? else {
            return Ok(CleanerCheckpoint::default());
        };
        let corrupt = |reason| LogError::CorruptCheckpoint {
            path: path.clone(),
            reason,
        };
        let mut lines = text.lines().map(str::trim);
        let version = lines.next();
        let first_dirty = lines
            .next()
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|&o| o >= 0)
            .ok_or_else(|| corrupt("expected a non-negative offset"))?;
        let mut c = CleanerCheckpoint {
            first_dirty: Some(first_dirty),
            clean_times: Vec::new(),
        };
        match version {
            Some("0") => return Ok(c),
            Some("1") => {}
            _ => return Err(corrupt("unknown version")),
        }
        let n: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| corrupt("expected a count of clean times"))?;
        for _ in 0..n {
            let entry = lines.next().and_then(|l| {
                let (end, ms) = l.split_once(' ')?;
                Some((end.parse().ok()?, ms.parse().ok()?))
            });
            c.clean_times
                .push(entry.ok_or_else(|| corrupt("malformed clean time"))?);
        }
        Ok(c)
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<(), LogError> {
        self.write_then(dir, checkpoint::sync_dir)
    }

    /// Write the file, its rename made durable by the caller's next fsync
    /// of `dir` (a crash before leaves the older checkpoint: more to clean
    /// again, tombstones kept longer, nothing lost).
    pub(crate) fn write_unsynced(&self, dir: &Path) -> Result<(), LogError> {
        self.write_then(dir, |_| Ok(()))
    }

    fn write_then(
        &self,
        dir: &Path,
        then: impl FnOnce(&Path) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let Some(first_dirty) = self.first_dirty else {
            return Ok(());
        };
        let mut text = format!("1\n{first_dirty}\n{}\n", self.clean_times.len());
        for (end, ms) in &self.clean_times {
            text.push_str(&format!("{end} {ms}\n"));
        }
        checkpoint::write_atomic_unsynced(dir, CLEANER_OFFSET, text.as_bytes())?;
        then(dir)
    }

    /// When the record at `offset` was first cleaned; `None` if never.
    pub(crate) fn first_cleaned_at(&self, offset: i64) -> Option<i64> {
        self.clean_times
            .iter()
            .find(|&&(end, _)| offset < end)
            .map(|&(_, ms)| ms)
    }

    /// A pass cleaned up to `map_end` at `now_ms`: the next dirty range
    /// starts there, and what it newly cleaned was first cleaned now.
    /// Clean times older than `delete_retention_ms` are merged.
    pub(crate) fn record_pass(&mut self, map_end: i64, now_ms: i64, delete_retention_ms: i64) {
        let covered = self.clean_times.last().map_or(i64::MIN, |&(end, _)| end);
        if map_end > covered {
            self.clean_times.push((map_end, now_ms));
        }
        self.first_dirty = Some(map_end);
        let expired = self
            .clean_times
            .partition_point(|&(_, ms)| ms.saturating_add(delete_retention_ms) <= now_ms);
        if expired > 1 {
            self.clean_times.drain(..expired - 1);
        }
    }

    /// The log was truncated to `offset`: nothing at or above it is clean.
    pub(crate) fn truncate_to(&mut self, offset: i64) {
        if self.first_dirty.is_some_and(|d| d > offset) {
            self.first_dirty = Some(offset);
        }
        // A range cut by the truncation keeps its time up to the offset;
        // the ranges wholly above it go.
        for e in &mut self.clean_times {
            e.0 = e.0.min(offset);
        }
        self.clean_times.dedup_by_key(|e| e.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_clean_times_and_expiry() {
        let mut c = CleanerCheckpoint::default();
        assert_eq!(c.first_cleaned_at(0), None);
        c.record_pass(100, 1_000, 500);
        c.record_pass(200, 1_200, 500);
        assert_eq!(c.first_cleaned_at(0), Some(1_000));
        assert_eq!(c.first_cleaned_at(150), Some(1_200));
        assert_eq!(c.first_cleaned_at(200), None);
        // At 1_800 both are expired: merged into the later one.
        c.record_pass(300, 1_800, 500);
        assert_eq!(c.clean_times, vec![(200, 1_200), (300, 1_800)]);
        assert_eq!(c.first_cleaned_at(50), Some(1_200));
        c.truncate_to(250);
        assert_eq!(c.first_dirty, Some(250));
        assert_eq!(c.clean_times, vec![(200, 1_200), (250, 1_800)]);
        c.truncate_to(150);
        assert_eq!(c.clean_times, vec![(150, 1_200)]);
    }

    #[test]
    fn file_round_trip_and_kafka_version_0() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            CleanerCheckpoint::read(dir.path()).expect("read"),
            CleanerCheckpoint::default()
        );
        let mut c = CleanerCheckpoint::default();
        c.record_pass(10, 5, 100);
        c.record_pass(20, 6, 100);
        c.write(dir.path()).expect("write");
        assert_eq!(CleanerCheckpoint::read(dir.path()).expect("read"), c);
        std::fs::write(dir.path().join(CLEANER_OFFSET), "0\n42\n").expect("write");
        let v0 = CleanerCheckpoint::read(dir.path()).expect("read");
        assert_eq!((v0.first_dirty, v0.clean_times.len()), (Some(42), 0));
        std::fs::write(dir.path().join(CLEANER_OFFSET), "1\n42\n2\n1 2\n").expect("write");
        assert!(CleanerCheckpoint::parse(dir.path()).is_err());
        assert_eq!(
            CleanerCheckpoint::read(dir.path()).expect("a bad file is ignored"),
            CleanerCheckpoint::default()
        );
    }
}
