//! The Raft log on RocksDB.
//!
//! Layout (`<data_dir>/raft/`, one RocksDB):
//! - column family `logs`: key = log index as 8 big-endian bytes (so key order is index
//!   order), value = the JSON of the openraft entry.
//! - column family `meta`: `vote`, `committed`, `last_purged` (JSON of openraft types).
//!
//! Durability: appends, votes, truncations and purges are written with
//! `WriteOptions::sync = true`; the `IOFlushed` callback of an append fires only after
//! that synced write returned. `committed` is written without sync: losing it costs only
//! a later re-apply (openraft re-derives it from the quorum), never correctness.
//!
//! Threads: every RocksDB call runs on tokio's blocking pool (`spawn_blocking`), never on
//! an async worker thread. `append` awaits its synced write before returning, so
//! entries are readable when it returns (openraft's requirement) and the callback is
//! already satisfied; the Raft core runs log I/O off its main loop, so this costs
//! latency per batch, not throughput of other work.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::alias::EntryOf;
use openraft::alias::LogIdOf;
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::DB;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::Options;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::TypeConfig;

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// Failures of the RocksDB log store. openraft's storage traits speak `io::Error`, so
/// these travel inside one (`io::Error::other`), with this error as the source.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("open RocksDB at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("column family {name:?} missing")]
    MissingColumnFamily { name: &'static str },
    #[error("RocksDB {op} failed")]
    RocksDb {
        op: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("decode {what} (corrupt log store?)")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("log key {key:?} is not an 8-byte index (corrupt log store?)")]
    CorruptKey { key: Vec<u8> },
    #[error("log key says index {key_index} but the entry says {entry_index} (corrupt log store?)")]
    IndexMismatch { key_index: u64, entry_index: u64 },
    #[error("blocking RocksDB task failed")]
    BlockingTask {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<LogStoreError> for io::Error {
    fn from(e: LogStoreError) -> io::Error {
        let kind = match &e {
            LogStoreError::Decode { .. }
            | LogStoreError::CorruptKey { .. }
            | LogStoreError::IndexMismatch { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Open (or create) the log store's RocksDB at `path`.
pub fn open_db(path: &Path) -> Result<DB, LogStoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOGS, CF_META].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| LogStoreError::Open {
        path: path.to_owned(),
        source,
    })
}

/// openraft's log storage over a RocksDB handle; cheap to clone (the log reader is a clone).
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<ClosingDb>,
}

/// The DB plus a signal raised once it is fully closed. Field order matters: fields drop
/// in declaration order, so `db` (closing RocksDB, releasing its LOCK file) finishes
/// before `closed` fires. `Arc::strong_count` reaching 0 is not enough: it happens
/// before the destructor runs.
struct ClosingDb {
    db: DB,
    closed: CloseSignal,
}

struct CloseSignal(tokio::sync::watch::Sender<bool>);

impl Drop for CloseSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore").finish_non_exhaustive()
    }
}

impl RocksLogStore {
    /// Wrap an opened DB (see [`open_db`]); fails if a column family is missing.
    pub fn new(db: DB) -> Result<Self, LogStoreError> {
        cf(&db, CF_LOGS)?;
        cf(&db, CF_META)?;
        let (closed, _) = tokio::sync::watch::channel(false);
        Ok(RocksLogStore {
            db: Arc::new(ClosingDb {
                db,
                closed: CloseSignal(closed),
            }),
        })
    }

    /// Becomes `true` once the last clone of this store is dropped and RocksDB is
    /// closed, so the directory can be opened again.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.db.closed.0.subscribe()
    }

    /// Run `f` against the DB on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, LogStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> Result<T, LogStoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db.db))
            .await
            .map_err(|source| LogStoreError::BlockingTask { source })?
    }

    async fn get_meta<T>(&self, key: &'static str) -> Result<Option<T>, LogStoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(move |db| {
            let bytes =
                db.get_cf(cf(db, CF_META)?, key)
                    .map_err(|source| LogStoreError::RocksDb {
                        op: "get meta",
                        source,
                    })?;
            bytes.map(|b| decode(key, &b)).transpose()
        })
        .await
    }

    /// Write (or delete, for `None`) one meta key.
    async fn put_meta<T: Serialize>(
        &self,
        key: &'static str,
        value: Option<&T>,
        sync: bool,
    ) -> Result<(), LogStoreError> {
        let bytes = value.map(|v| encode(key, v)).transpose()?;
        self.blocking(move |db| {
            let cf = cf(db, CF_META)?;
            let mut batch = WriteBatch::default();
            match bytes {
                Some(b) => batch.put_cf(cf, key, b),
                None => batch.delete_cf(cf, key),
            }
            write(db, batch, sync, "put meta")
        })
        .await
    }
}

fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily, LogStoreError> {
    db.cf_handle(name)
        .ok_or(LogStoreError::MissingColumnFamily { name })
}

fn write(db: &DB, batch: WriteBatch, sync: bool, op: &'static str) -> Result<(), LogStoreError> {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    db.write_opt(batch, &opts)
        .map_err(|source| LogStoreError::RocksDb { op, source })
}

fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, LogStoreError> {
    serde_json::to_vec(value).map_err(|source| LogStoreError::Encode { what, source })
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, LogStoreError> {
    serde_json::from_slice(bytes).map_err(|source| LogStoreError::Decode { what, source })
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64, LogStoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| LogStoreError::CorruptKey { key: key.to_vec() })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Decode a stored entry and check it sits under its own index.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<EntryOf<TypeConfig>, LogStoreError> {
    let key_index = key_index(key)?;
    let entry: EntryOf<TypeConfig> = decode("log entry", value)?;
    if entry.index() != key_index {
        return Err(LogStoreError::IndexMismatch {
            key_index,
            entry_index: entry.index(),
        });
    }
    Ok(entry)
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        // Exclusive end; `None` = to the last entry.
        let end = match range.end_bound() {
            Bound::Included(&x) => Some(x.saturating_add(1)),
            Bound::Excluded(&x) => Some(x),
            Bound::Unbounded => None,
        };
        let entries = self
            .blocking(move |db| {
                let mut entries = Vec::new();
                let from = index_key(start);
                let iter = db.iterator_cf(
                    cf(db, CF_LOGS)?,
                    IteratorMode::From(&from, Direction::Forward),
                );
                for item in iter {
                    let (key, value) = item.map_err(|source| LogStoreError::RocksDb {
                        op: "iterate logs",
                        source,
                    })?;
                    if end.is_some_and(|end| key_index(&key).is_ok_and(|i| i >= end)) {
                        break;
                    }
                    entries.push(decode_entry(&key, &value)?);
                }
                Ok(entries)
            })
            .await?;
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta(KEY_VOTE).await?)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> =
            self.get_meta(KEY_LAST_PURGED).await?;
        let last = self
            .blocking(|db| {
                let mut iter = db.iterator_cf(cf(db, CF_LOGS)?, IteratorMode::End);
                match iter.next() {
                    None => Ok(None),
                    Some(item) => {
                        let (key, value) = item.map_err(|source| LogStoreError::RocksDb {
                            op: "read last log",
                            source,
                        })?;
                        Ok(Some(decode_entry(&key, &value)?.log_id()))
                    }
                }
            })
            .await?;
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(KEY_VOTE, Some(vote), true).await?;
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        self.put_meta(KEY_COMMITTED, committed.as_ref(), false)
            .await?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta(KEY_COMMITTED).await?)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((index_key(entry.index()), encode("log entry", &entry)?));
        }
        self.blocking(move |db| {
            let cf = cf(db, CF_LOGS)?;
            let mut batch = WriteBatch::default();
            for (key, value) in encoded {
                batch.put_cf(cf, key, value);
            }
            write(db, batch, true, "append logs")
        })
        .await?;
        // The batch above was written with sync=true: the entries are on disk.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index().saturating_add(1));
        tracing::debug!(from, "truncating raft log");
        self.blocking(move |db| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf(db, CF_LOGS)?, index_key(from), index_key(u64::MAX));
            // delete_range's end is exclusive; u64::MAX itself is never a real index.
            write(db, batch, true, "truncate logs")
        })
        .await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        let upto = log_id.index();
        tracing::debug!(upto, "purging raft log");
        let purged = encode(KEY_LAST_PURGED, &log_id)?;
        self.blocking(move |db| {
            // One batch: the purge marker and the deletion land together.
            let mut batch = WriteBatch::default();
            batch.put_cf(cf(db, CF_META)?, KEY_LAST_PURGED, purged);
            batch.delete_range_cf(
                cf(db, CF_LOGS)?,
                index_key(0),
                index_key(upto.saturating_add(1)),
            );
            write(db, batch, true, "purge logs")
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::Entry;
    use openraft::EntryPayload;
    use openraft::Vote;
    use openraft::type_config::TypeConfigExt;

    use super::*;
    use crate::command::MetadataCommand;

    fn log_id(term: u64, index: u64) -> LogIdOf<TypeConfig> {
        openraft::testing::log_id::<TypeConfig>(term, 1, index)
    }

    fn entry(term: u64, index: u64) -> EntryOf<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(MetadataCommand::InitCluster {
                cluster_id: format!("c{index}"),
            }),
        }
    }

    async fn append(store: &mut RocksLogStore, entries: Vec<EntryOf<TypeConfig>>) {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(entries, IOFlushed::signal(tx))
            .await
            .expect("append");
        rx.await.expect("callback").expect("flushed");
    }

    fn indexes(entries: &[EntryOf<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.index()).collect()
    }

    #[tokio::test]
    async fn append_read_truncate_purge_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raft");
        {
            let mut store = RocksLogStore::new(open_db(&path).expect("open")).expect("store");
            let state = store.get_log_state().await.expect("state");
            assert_eq!(state.last_log_id, None);
            assert_eq!(state.last_purged_log_id, None);

            append(&mut store, (1..=10).map(|i| entry(1, i)).collect()).await;
            assert_eq!(
                indexes(&store.try_get_log_entries(3..6).await.expect("read")),
                vec![3, 4, 5]
            );
            assert_eq!(
                indexes(&store.try_get_log_entries(8..=9).await.expect("read")),
                vec![8, 9]
            );
            assert_eq!(
                indexes(&store.try_get_log_entries(9..).await.expect("read")),
                vec![9, 10]
            );

            store
                .truncate_after(Some(log_id(1, 7)))
                .await
                .expect("truncate");
            append(&mut store, vec![entry(2, 8)]).await;
            store.purge(log_id(1, 3)).await.expect("purge");

            let vote = Vote::new(2, 1);
            store.save_vote(&vote).await.expect("vote");
            store
                .save_committed(Some(log_id(2, 8)))
                .await
                .expect("committed");
        }
        // Reopen: everything above survives.
        let mut store = RocksLogStore::new(open_db(&path).expect("reopen")).expect("store");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(2, 8)));
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(
            indexes(&store.try_get_log_entries(0..100).await.expect("read")),
            vec![4, 5, 6, 7, 8]
        );
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new(2, 1))
        );
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(2, 8))
        );

        // Purging everything leaves the purged id as the last log id.
        store.purge(log_id(2, 8)).await.expect("purge all");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(2, 8)));
        assert!(
            store
                .try_get_log_entries(0..100)
                .await
                .expect("read")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn corrupt_entry_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path()).expect("open");
        let cf_logs = db.cf_handle(CF_LOGS).expect("cf");
        db.put_cf(cf_logs, index_key(1), b"not json").expect("put");
        db.put_cf(cf_logs, b"short", b"{}").expect("put");
        let mut store = RocksLogStore::new(db).expect("store");
        let err = store.try_get_log_entries(0..10).await.expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
