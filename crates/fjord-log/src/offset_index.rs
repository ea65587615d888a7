//! `OffsetIndex`: the sparse offset index of one segment (`.index` file).
//!
//! Entries map a batch's base offset, relative to the segment's base offset
//! (u32), to the batch's byte position in the `.log` file (u32). Both are
//! big-endian on disk, 8 bytes per entry, as in Kafka. The index lives in
//! memory; the file is written on roll, flush and close.

/// Size of one on-disk entry.
pub(crate) const ENTRY_LEN: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    /// (relative offset, position), both strictly increasing.
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Add an entry; ignored unless it is past the last one.
    pub(crate) fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(o, p)) = self.entries.last()
            && (relative_offset <= o || position <= p)
        {
            return;
        }
        self.entries.push((relative_offset, position));
    }

    /// Position of the last indexed batch whose base offset is <= `relative_offset`
    /// (0, the segment start, when there is none).
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }

    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Parse an index file; `None` if it is not a whole number of entries or
    /// its entries are not strictly increasing or point past `log_size`.
    pub(crate) fn from_bytes(bytes: &[u8], log_size: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let o = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let p = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if u64::from(p) >= log_size {
                return None;
            }
            if let Some(&(lo, lp)) = index.entries.last()
                && (o <= lo || p <= lp)
            {
                return None;
            }
            index.entries.push((o, p));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.append(10, 100);
        idx.append(20, 200);
        idx.append(15, 300); // not increasing: ignored
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 100);
        assert_eq!(idx.lookup(19), 100);
        assert_eq!(idx.lookup(1000), 200);
    }

    #[test]
    fn file_round_trip_and_sanity() {
        let mut idx = OffsetIndex::default();
        idx.append(1, 61);
        idx.append(5, 400);
        let bytes = idx.to_bytes();
        assert_eq!(OffsetIndex::from_bytes(&bytes, 1000), Some(idx));
        assert_eq!(OffsetIndex::from_bytes(&bytes, 400), None);
        assert_eq!(OffsetIndex::from_bytes(&bytes[..7], 1000), None);
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(OffsetIndex::from_bytes(&swapped, 1000), None);
    }
}
