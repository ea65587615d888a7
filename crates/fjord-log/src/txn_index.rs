//! `TransactionIndex`: a segment's aborted transactions (Kafka's `.txnindex`
//! and `AbortedTxn`), so that a read_committed fetch can tell the consumer
//! which producers' batches in the fetched range to drop.
//!
//! # Format (Kafka's, big-endian, 34 bytes per entry, no header)
//! ```text
//! i16 version = 0
//! i64 producer id
//! i64 first offset          the transaction's first batch
//! i64 last offset           its ABORT marker (in this segment)
//! i64 last stable offset    the LSO right after the abort (see below)
//! ```
//! An entry is appended to the segment holding the marker, when the marker
//! completes the transaction; entries are ordered by last offset. The last
//! stable offset is the first offset of the oldest other transaction still
//! open then, or the marker's offset + 1: once a search's upper bound is at
//! or below it, no later entry can overlap the range (Kafka's
//! `TxnIndexSearchResult.isComplete`).
//!
//! The file is appended to at once (aborts are rare) and fsynced with the
//! segment. The entries are also kept in memory. A torn or unknown entry at
//! the end of the file (a crash in the middle of a write) is dropped on load.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::LogError;
use crate::flush::SyncTarget;
use crate::segment;

pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
const VERSION: i16 = 0;
const ENTRY_LEN: usize = 34;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[..2].copy_from_slice(&VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let field = |at: usize| b.get(at..at + 8)?.try_into().ok().map(i64::from_be_bytes);
        if b.get(..2)? != VERSION.to_be_bytes() {
            return None;
        }
        Some(AbortedTxn {
            producer_id: field(2)?,
            first_offset: field(10)?,
            last_offset: field(18)?,
            last_stable_offset: field(26)?,
        })
    }
}

/// Write a new index file at `path` holding `entries` (ordered by marker
/// offset), fsynced: the cleaner's output for a cleaned segment, written
/// even when empty so that its swap can tell a completed rename apart.
pub(crate) fn write_entries(path: &Path, entries: &[AbortedTxn]) -> Result<(), LogError> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        bytes.extend_from_slice(&e.encode());
    }
    let mut f = File::create(path).map_err(LogError::io("creating", path))?;
    f.write_all(&bytes).map_err(LogError::io("writing", path))?;
    f.sync_all().map_err(LogError::io("syncing", path))
}

/// The aborted transactions overlapping a fetched range, and whether the
/// search can stop (no later segment can hold more).
#[derive(Debug, Default)]
pub(crate) struct TxnIndexSearch {
    pub aborted: Vec<AbortedTxn>,
    pub complete: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct TransactionIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// Appended to since the last fsync.
    unsynced: bool,
}

impl TransactionIndex {
    pub(crate) fn path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(segment::file_name(base_offset, TXN_INDEX_SUFFIX))
    }

    /// The index of the segment at `base_offset`, from its file if any.
    /// Entries past a torn or unknown one are dropped (and cut from the file).
    pub(crate) fn open(dir: &Path, base_offset: i64) -> Result<Self, LogError> {
        let path = Self::path(dir, base_offset);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(LogError::Io {
                    context: "reading",
                    path,
                    source,
                });
            }
        };
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks(ENTRY_LEN) {
            let Some(e) = AbortedTxn::decode(chunk) else {
                break;
            };
            if entries
                .last()
                .is_some_and(|l: &AbortedTxn| l.last_offset >= e.last_offset)
            {
                break;
            }
            entries.push(e);
        }
        let mut index = TransactionIndex {
            path,
            entries,
            unsynced: false,
        };
        if index.entries.len() * ENTRY_LEN != bytes.len() {
            tracing::warn!(path = %index.path.display(), kept = index.entries.len(),
                "dropping a torn or malformed tail of a transaction index");
            index.rewrite()?;
        }
        Ok(index)
    }

    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The last offset of the newest entry.
    pub(crate) fn last_offset(&self) -> Option<i64> {
        self.entries.last().map(|e| e.last_offset)
    }

    /// Append an entry (its marker is after every entry's).
    pub(crate) fn append(&mut self, txn: AbortedTxn) -> Result<(), LogError> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(LogError::io("opening", &self.path))?;
        file.write_all(&txn.encode())
            .map_err(LogError::io("appending to", &self.path))?;
        self.entries.push(txn);
        self.unsynced = true;
        Ok(())
    }

    /// Drop the entries whose marker is at or after `offset` (Kafka's
    /// `truncateTo`).
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// The entries overlapping `[fetch_offset, upper_bound)` (Kafka's
    /// `collectAbortedTxns`).
    pub(crate) fn collect(&self, fetch_offset: i64, upper_bound: i64) -> TxnIndexSearch {
        let mut search = TxnIndexSearch::default();
        for e in &self.entries {
            if e.last_offset >= fetch_offset && e.first_offset < upper_bound {
                search.aborted.push(*e);
            }
            if e.last_stable_offset >= upper_bound {
                search.complete = true;
                break;
            }
        }
        search
    }

    pub(crate) fn sync(&mut self) -> Result<(), LogError> {
        if !self.unsynced {
            return Ok(());
        }
        match File::open(&self.path) {
            Ok(f) => f.sync_all().map_err(LogError::io("syncing", &self.path))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LogError::Io {
                    context: "syncing",
                    path: self.path.clone(),
                    source,
                });
            }
        }
        // The file may be new (or removed): make its directory entry durable too.
        if let Some(dir) = self.path.parent() {
            checkpoint::sync_dir(dir)?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// [`Self::sync`] split for a flush outside the log's lock.
    pub(crate) fn take_sync(&mut self, out: &mut Vec<SyncTarget>) {
        if !self.unsynced {
            return;
        }
        out.push(SyncTarget::Path {
            path: self.path.clone(),
            optional: true,
        });
        // The file may be new (or removed): make its directory entry durable too.
        if let Some(dir) = self.path.parent() {
            out.push(SyncTarget::Dir(dir.to_owned()));
        }
        self.unsynced = false;
    }

    /// Remove the file (the segment is deleted).
    pub(crate) fn delete(self) -> Result<(), LogError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LogError::Io {
                context: "deleting",
                path: self.path,
                source,
            }),
        }
    }

    /// Write the file from `entries` (after a truncation or a torn tail);
    /// an empty index has no file.
    fn rewrite(&mut self) -> Result<(), LogError> {
        if self.entries.is_empty() {
            let path = self.path.clone();
            return match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(source) => Err(LogError::Io {
                    context: "deleting",
                    path,
                    source,
                }),
            };
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        fs::write(&self.path, bytes).map_err(LogError::io("writing", &self.path))?;
        self.unsynced = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TransactionIndex::open(dir.path(), 0).expect("open");
        assert!(index.entries().is_empty());
        index.append(txn(1, 0, 5, 6)).expect("append");
        index.append(txn(2, 3, 9, 10)).expect("append");
        index.sync().expect("sync");
        let path = TransactionIndex::path(dir.path(), 0);
        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let reopened = TransactionIndex::open(dir.path(), 0).expect("reopen");
        assert_eq!(reopened.entries(), index.entries());

        // A torn last entry is dropped, on disk too.
        fs::write(&path, &bytes[..50]).expect("tear");
        let torn = TransactionIndex::open(dir.path(), 0).expect("open torn");
        assert_eq!(torn.entries(), &[txn(1, 0, 5, 6)]);
        assert_eq!(fs::read(&path).expect("read").len(), 34);
        // An unknown version is dropped from there.
        let mut bad = bytes.clone();
        bad[1] = 9;
        fs::write(&path, &bad).expect("write");
        assert!(
            TransactionIndex::open(dir.path(), 0)
                .expect("open")
                .entries()
                .is_empty()
        );
    }

    #[test]
    fn truncation_drops_entries_whose_marker_is_cut_and_collect_stops_at_the_lso() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TransactionIndex::open(dir.path(), 0).expect("open");
        index.append(txn(1, 0, 5, 2)).expect("append");
        index.append(txn(2, 2, 9, 10)).expect("append");
        index.append(txn(3, 11, 12, 13)).expect("append");

        // Overlap: last >= fetch offset and first < upper bound.
        let s = index.collect(6, 11);
        assert_eq!(s.aborted, vec![txn(2, 2, 9, 10)]);
        assert!(s.complete, "entry 3's LSO 13 is past the bound");
        let s = index.collect(6, 20);
        assert_eq!(s.aborted, vec![txn(2, 2, 9, 10), txn(3, 11, 12, 13)]);
        assert!(!s.complete, "a later segment may hold more");
        let s = index.collect(0, 10);
        assert_eq!(s.aborted, vec![txn(1, 0, 5, 2), txn(2, 2, 9, 10)]);
        assert!(s.complete);
        let s = index.collect(13, 20);
        assert!(s.aborted.is_empty());

        index.truncate_to(9).expect("truncate");
        assert_eq!(index.entries(), &[txn(1, 0, 5, 2)]);
        assert_eq!(
            TransactionIndex::open(dir.path(), 0)
                .expect("reopen")
                .entries(),
            &[txn(1, 0, 5, 2)]
        );
        index.truncate_to(0).expect("truncate all");
        assert!(!TransactionIndex::path(dir.path(), 0).exists());
        index.delete().expect("delete");
    }
}
