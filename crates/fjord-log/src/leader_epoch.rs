//! `LeaderEpochCache`: which leader epoch started at which offset.
//!
//! Pure logic; `Log` persists it in `leader-epoch-checkpoint` using Kafka's
//! text format: version `0`, the entry count, then `epoch start_offset` per line.

use std::fmt::Write as _;

/// (epoch, start offset) entries, both strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Record that `epoch` starts at `start_offset`. Only a new, larger epoch
    /// is recorded; entries at or after `start_offset` are dropped first (they
    /// belong to a divergent history). Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.entries.retain(|&(_, o)| o < start_offset);
        self.entries.push((epoch, start_offset));
        true
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` where end offset is the
    /// start of the next larger epoch, or `log_end_offset` for the latest one.
    /// A requested epoch below the first known returns (requested, first start);
    /// one between entries returns the floor entry's epoch. `None` (Kafka's
    /// UNDEFINED) when the epoch is larger than any known, negative, or the
    /// cache is empty.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.iter().find(|&&(e, _)| e > epoch)?;
        match self.entries.iter().rev().find(|&&(e, _)| e <= epoch) {
            None => Some((epoch, higher.1)),
            Some(&(floor, _)) => Some((floor, higher.1)),
        }
    }

    /// Remove entries starting at or after `end_offset` (log truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start_offset`: drop entries wholly below it and
    /// move the last such entry's start up to it.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.partition_point(|&(_, o)| o <= start_offset);
        if below == 0 {
            return false;
        }
        let (epoch, old_start) = self.entries[below - 1];
        self.entries.drain(..below - 1);
        self.entries[0] = (epoch, start_offset);
        below > 1 || old_start != start_offset
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            let _ = writeln!(s, "{e} {o}");
        }
        s
    }

    /// Parse the checkpoint format; `None` if malformed.
    pub fn from_text(text: &str) -> Option<LeaderEpochCache> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next()? != "0" {
            return None;
        }
        let count: usize = lines.next()?.parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for line in lines {
            let mut parts = line.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let offset: i64 = parts.next()?.parse().ok()?;
            if parts.next().is_some() || epoch < 0 || offset < 0 {
                return None;
            }
            if let Some(&(le, lo)) = cache.entries.last()
                && (epoch <= le || offset < lo)
            {
                return None;
            }
            cache.entries.push((epoch, offset));
        }
        (cache.entries.len() == count).then_some(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(2, 30), Some((1, 10)));
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5));
        assert!(!c.assign(0, 5));
        assert!(c.assign(2, 10));
        assert!(c.assign(4, 20));
        assert!(c.truncate_from_end(15));
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        assert!(c.assign(5, 8)); // divergent history dropped
        assert_eq!(c.entries(), &[(1, 0), (5, 8)]);
        assert!(c.truncate_from_start(9));
        assert_eq!(c.entries(), &[(5, 9)]);
        assert!(!c.truncate_from_start(3));
    }

    #[test]
    fn text_round_trip() {
        let c = cache(&[(0, 0), (7, 100)]);
        assert_eq!(LeaderEpochCache::from_text(&c.to_text()), Some(c));
        assert_eq!(LeaderEpochCache::from_text("0\n2\n1 0\n"), None);
        assert_eq!(LeaderEpochCache::from_text("1\n0\n"), None);
        assert_eq!(LeaderEpochCache::from_text("0\n2\n3 0\n2 5\n"), None);
    }
}
