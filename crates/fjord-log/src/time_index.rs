//! `TimeIndex`: the sparse time index of one segment (`.timeindex` file).
//!
//! Entry `(timestamp, relative offset)` says: the batch at that base offset
//! has `maxTimestamp == timestamp`, and no earlier batch of the segment has a
//! larger one. Entries are added together with offset-index entries (every
//! `index.interval.bytes`) when the segment's max timestamp grew, plus one
//! final entry when the segment stops being active, so the last entry is the
//! segment's largest timestamp (as in Kafka). 12 bytes per entry on disk:
//! i64 timestamp + u32 relative offset, big-endian.

pub(crate) const ENTRY_LEN: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    /// (timestamp, relative offset), both strictly increasing.
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Add an entry if it raises the largest timestamp seen.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, o)) if timestamp <= t || relative_offset <= o => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// Relative offset from which to scan for the first batch with
    /// `maxTimestamp >= timestamp`: the last entry with a smaller timestamp
    /// (every batch up to it is older), or `None` to scan from the start.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<u32> {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1].1)
        }
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Parse a time index file; `None` unless it is whole entries, strictly
    /// increasing, with offsets below `max_relative_offset`.
    pub(crate) fn from_bytes(bytes: &[u8], max_relative_offset: u64) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut index = TimeIndex::default();
        for c in bytes.chunks_exact(ENTRY_LEN) {
            let t = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let o = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if u64::from(o) >= max_relative_offset {
                return None;
            }
            if let Some(&(lt, lo)) = index.entries.last()
                && (t <= lt || o <= lo)
            {
                return None;
            }
            index.entries.push((t, o));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_last_older_entry() {
        let mut idx = TimeIndex::default();
        idx.maybe_append(100, 0);
        idx.maybe_append(90, 5); // not growing: ignored
        idx.maybe_append(200, 10);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(50), None);
        assert_eq!(idx.lookup(100), None);
        assert_eq!(idx.lookup(101), Some(0));
        assert_eq!(idx.lookup(1000), Some(10));
        let bytes = idx.to_bytes();
        assert_eq!(TimeIndex::from_bytes(&bytes, 11), Some(idx.clone()));
        assert_eq!(TimeIndex::from_bytes(&bytes, 10), None);
        assert_eq!(idx.last(), Some((200, 10)));
    }
}
