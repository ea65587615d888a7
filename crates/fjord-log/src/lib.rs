//! Partition log storage for Fjord: one [`Log`] per partition directory.
//!
//! # What this crate owns
//! Storing, serving, recovering and expiring the record batches of one
//! partition replica, plus the partition's leader epoch cache and its
//! idempotent producers' state (`producer_state`). It knows
//! nothing of replication or the network: the broker decides *when* to
//! append, read (up to the high watermark), truncate, flush and apply
//! retention; this crate does it durably and cheaply. `Log` is `Send + Sync`;
//! the broker serialises mutation (one lock per log), reads take `&self`
//! and can be planned under that lock and done outside it
//! ([`Log::plan_read`], [`ReadPlan::execute`]).
//!
//! # Layout on disk (Kafka's)
//! ```text
//! <dir>/00000000000000000000.log        record batches, stored as received
//! <dir>/00000000000000000000.index      sparse offset index (u32 rel. offset, u32 position)
//! <dir>/00000000000000000000.timeindex  sparse time index (i64 timestamp, u32 rel. offset)
//! <dir>/recovery-point-checkpoint       "0\n<offset>\n": offsets below are fsynced
//! <dir>/log-start-offset-checkpoint     "0\n<offset>\n"
//! <dir>/leader-epoch-checkpoint         "0\n<n>\n<epoch> <start offset>\n"...
//! <dir>/00000000000000000000.snapshot   producer state as of that offset (binary, CRC32C;
//!                                       format in `producer_state/snapshot.rs`)
//! <dir>/00000000000000000000.txnindex   aborted transactions whose ABORT marker is in the
//!                                       segment (Kafka's 34-byte entries, `txn_index.rs`);
//!                                       absent while there are none
//! <dir>/clean-shutdown                  "0\n<log end>\n<active base>\n<active size>\n",
//!                                       left by `close`, consumed by `open`
//! <dir>/cleaner-offset-checkpoint       "1\n<first dirty offset>\n<n>\n<end> <ms>\n"...: where the
//!                                       next cleaning pass starts, and when each cleaned
//!                                       range was first cleaned (`cleaner/checkpoint.rs`)
//! <dir>/<base>.log.cleaned, .txnindex.cleaned   a cleaning pass's output (deleted on open)
//! <dir>/<base>.log.swap, .txnindex.swap         a committed swap (completed on open)
//! ```
//! Segments are named by their base offset in 20 digits. Checkpoints are
//! written to a temp file, fsynced, renamed and the directory fsynced.
//! Index entries are big-endian; an offset-index entry maps a batch's base
//! offset to its position (Kafka keys by the batch's last offset; either
//! works because lookups walk batch headers forward from the entry).
//!
//! # Batches
//! Only magic v2 batches are accepted. The leader validates each batch
//! (lengths, magic, CRC32C, `max.message.bytes`, `recordsCount > 0`,
//! `lastOffsetDelta == recordsCount - 1`, known codec) and rewrites only
//! `baseOffset` and `partitionLeaderEpoch` (outside the CRC): it writes a new
//! 17-byte prefix and the client's body slice with one vectored write, never
//! copying the body. With `message.timestamp.type=LogAppendTime` the leader
//! also sets the timestamp-type bit and `maxTimestamp = now` and patches the
//! CRC arithmetically (CRC32C is affine, so only the 40 changed header bytes
//! are hashed and shifted with `crc32c_combine`): the prefix is then the whole
//! 61-byte header, the body is still not copied. On a CreateTime topic a
//! producer batch claiming LogAppendTime is rejected (`InvalidTimestamp`).
//! Append and read never decode records; only `offset_for_timestamp` and
//! `max_timestamp` decode one batch (cold paths).
//!
//! # Indexes
//! Indexes live in memory (`Vec`s) and are written to their files when a
//! segment is rolled and on close, fsynced on the next flush before the
//! recovery point passes them. An offset-index entry is added every
//! `index.interval.bytes`; a time-index entry is added at the same moments
//! when the segment's largest timestamp grew, plus a final one on roll so the
//! last entry is the segment's largest timestamp. A segment rolls when
//! `segment.bytes` would be exceeded, `segment.ms` has passed since its first
//! append (wall clock; after a restart, the first batch's timestamp), either
//! index reaches `segment.index.bytes`, or offsets no longer fit the u32
//! relative offsets / positions.
//!
//! # Open files
//! A segment's `.log` file is opened on first use (append, read, fsync,
//! cut), not by [`Log::open`], which only `stat`s it, through the node's
//! [`FileCache`] (in [`LogConfig::open_files`]; unbounded by default, the
//! broker bounds it with `log_open_files_max`). Past its bound the cache
//! closes the least recently used handle (second-chance queue, see
//! `file_cache`); a reader holding an `Arc<File>` keeps its descriptor.
//! Indexes and checkpoints hold no descriptor.
//!
//! # Recovery (in [`Log::open`])
//! Segments wholly below the recovery point are trusted: their index files
//! are loaded if they pass sanity checks (whole entries, strictly increasing,
//! inside the file, last offset entry points at a matching batch header, a
//! time entry when non-empty), else rebuilt by walking batch headers; a
//! trusted segment whose headers do not walk is a `CorruptSegment` error
//! (flushed data is never dropped silently). Every later segment (always
//! including the active one) is validated batch by batch (framing, magic,
//! CRC32C, increasing offsets); at the first bad batch the segment is cut
//! there and all later segments are deleted. Then segments wholly below the
//! log start are deleted, the epoch cache is trimmed to the log, the
//! recovered data is fsynced and the recovery point set to the log end.
//! After a graceful `close` the `clean-shutdown` marker lets `open` trust the
//! active segment as well (if its base and size still match and its sealed
//! index files load), so a clean restart does not re-read every active
//! segment; the marker is deleted (durably) before anything else happens, so
//! a crash after the open falls back to full validation.
//! Last, the producer state is loaded: the newest readable snapshot at or
//! below the recovered log end, plus the batch headers after it. Before any
//! of this, a cleaner swap interrupted after its commit point (a
//! `.log.swap` file) is completed and uncommitted `.cleaned` files are
//! deleted (`cleaner/swap.rs`). Stored batches are validated as replica
//! data: the cleaner leaves `lastOffsetDelta` greater than `recordsCount - 1`.
//!
//! # Compaction ([`cleaner`])
//! With `cleanup.policy` `compact` (or `compact,delete`) the broker's cleaner
//! keeps only the latest record per key below the active segment and the
//! last stable offset. A pass takes the log's lock twice, briefly:
//! `plan_cleaning` (copies segment handles, aborted transactions, producers'
//! last batches), then `CleaningPlan::clean` runs unlocked (offset map over
//! the dirty range, sealed segments rewritten into `.cleaned` files), then
//! `swap_cleaned` swaps the files in if the cleaned segments are unchanged.
//! Control batches and each producer's last batch are always kept; aborted
//! transactions' batches go; tombstones go `delete.retention.ms` after the
//! pass that first cleaned them. See the `cleaner` module docs.
//!
//! # Invariants
//! - There is always at least one segment; the last one is the active one and
//!   the only one appended to. Its `next_offset` is the log end offset (LEO).
//! - Segment files contain only whole, validated batches with increasing
//!   offsets; a failed write is cut back. Nothing corrupt is ever served.
//! - `log_start_offset <= LEO`; it only moves up, except `truncate_to` below it
//!   (which restarts the log empty there).
//! - Reads return whole batches from one segment, starting with the batch
//!   containing the requested offset.
//! - Retention deletes whole segments only, oldest first, never the active
//!   one (an entirely expired active segment is rolled first).
//! - The cleaner never changes an offset, the log start offset or the log
//!   end: it removes records (and whole batches) below the active segment
//!   and the last stable offset; every kept record stays at its offset.
//! - `size_bytes` counts `.log` files only.
//!
//! # Caller contract
//! - `now_ms` arguments are wall-clock milliseconds since the epoch (they
//!   become LogAppendTime timestamps and drive `segment.ms` / `retention.ms`).
//! - Calls that take `&mut self` do file I/O and may fsync (`flush`, `close`,
//!   rolls write index files, epoch / log-start changes write checkpoints):
//!   run them off the async threads. As implemented by the broker:
//!   - Flushes (the fsyncs of `flush.messages` / `flush.ms`) run only on
//!     the broker's flusher, a blocking thread, and not under the partition
//!     lock: `plan_flush` under it (the unsynced files' handles and paths,
//!     the offset covered = the log end), `FlushPlan::sync` without it,
//!     `complete_flush` under it again (the recovery point moves to what was
//!     covered unless `truncations()` changed meanwhile), and the returned
//!     `RecoveryPointWrite` without it (dropped if a truncation wrote the
//!     checkpoint since: a shared generation and mutex order those writes).
//!     One flush of a partition at a time (the broker's `flush_serial`).
//!     An append that makes a flush due queues the partition and its produce
//!     waits, off the lock and asynchronously, for the fsync covering it
//!     (group commit: one fsync answers every append before its plan), so a
//!     `flush.messages=1` ack means fsynced, as in Kafka. A failed fsync is
//!     reported to the log dir's fault handler, `flush_failed` marks every
//!     segment unsynced again, and the waiting produces get
//!     KAFKA_STORAGE_ERROR. `flush` (all under `&mut self`) stays for
//!     `open`, `close` and callers without a flusher.
//!   - `append_as_leader` / `append_as_follower` stay inline on the
//!     request's (async) thread under the partition lock: a page-cache
//!     write costs less than a hop to a blocking thread and back
//!     (`bench/micro`, on a loaded 2-core machine: an append of a 100-byte
//!     batch ~1.3-1.7 µs, of 100 x 100 bytes ~10 µs, of 16 x 1 KiB 12-50 µs;
//!     `spawn_blocking` and back with no work ~12 µs). A roll (index files
//!     written, no fsync) or a full disk makes one slower; that is the
//!     accepted cost.
//! - Reads: `read` takes `&self` and does its `read_at` under whatever lock
//!   the caller holds. The broker's fetch paths instead call `plan_read`
//!   under the lock (index lookup and a header walk of at most a few index
//!   intervals, from the page cache) and `ReadPlan::execute` after releasing
//!   it, so reads do not wait behind appends nor hold them up. This is safe
//!   because the plan covers only bytes below the segment's size when
//!   planned, which are whole batches that never change in place: the active
//!   segment is append-only, sealed segments are immutable, retention and
//!   the cleaner's swap unlink or rename files (the plan's `Arc<File>` still
//!   reads the old inode), and the one operation that rewrites positions —
//!   a truncation (`truncate_to`, then appends) — bumps the segment's
//!   truncation counter before cutting the file, so `execute` returns `None`
//!   and the caller reads again under the lock. The caller bounds the plan
//!   by the HW (or LSO) it read under the same lock.
//! - `append_as_leader` accepts control and transactional batches as they
//!   are and does not check sequences or transactions: the broker calls
//!   `check_producer_batches` (or `check_txn_marker` for a marker it writes)
//!   first, under the same lock, and appends only what it allows. Every
//!   append, leader or follower, updates the producer state from the batch
//!   headers (and a control batch's one record).
//! - The broker reports high watermark changes (`on_high_watermark_updated`):
//!   a completed transaction holds the last stable offset back until its
//!   marker is below the HW. `last_stable_offset(hw)` is right even without
//!   the report, only slower.
//! - Any `LogError::Io` or `CorruptSegment` is fatal for the log directory.
//!
//! # Modules
//! `batch` (v2 header parsing, validation, leader rewrites), `segment`
//! (`LogSegment`), `offset_index` / `time_index` (`OffsetIndex`, `TimeIndex`),
//! `leader_epoch` (`LeaderEpochCache`, pure logic), `file_cache` (`FileCache`:
//! the node's bound on open segment files), `checkpoint` (atomic text
//! files), `recovery` (directory scan and recovery on open), `producer_state`
//! (`ProducerStateManager`: the sequence and transaction rules in `entry`,
//! snapshot files in `snapshot`, load and replay), `control` (transaction
//! markers: parse, build), `txn_index` (`TransactionIndex`, `AbortedTxn`),
//! `recompress` (`compression.type`: a client's batches in the topic's codec,
//! called by the broker before it takes the partition lock), `cleaner`
//! (compaction: `offset_map`, `plan`, `pass`, `records`, `checkpoint`,
//! `swap`), `config` (`LogConfig`), `error`, and `log` (`Log`, the API the
//! broker calls).
//!
//! # Not implemented yet
//! KIP-890's verification guard, asynchronous segment deletion (`.deleted` renames; files
//! are removed synchronously), memory-mapped indexes (indexes are `Vec`s: about
//! 20 bytes per `index.interval.bytes` of log, i.e. ~5 MiB per full 1 GiB segment).

mod batch;
mod checkpoint;
pub mod cleaner;
mod config;
pub mod control;
mod decompress;
mod error;
mod file_cache;
mod flush;
mod leader_epoch;
mod log;
mod offset_index;
mod producer_state;
mod recompress;
mod recovery;
mod segment;
mod time_index;
mod txn_index;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
pub use cleaner::records::{RecordView, visit_records};
pub use cleaner::{CleanableRange, CleanedLog, CleanerStats, CleaningPlan, SwapOutcome};
pub use config::{CleanupPolicy, CompressionType, DirtyRatio, LogConfig, TimestampType};
pub use decompress::{MAX_DECOMPRESSED_BATCH_BYTES, decode_batch};
pub use error::{ConfigError, LogError, io_is_out_of_space};
pub use file_cache::{FileCache, FileCacheStats};
pub use flush::{FlushPlan, RecoveryPointWrite, SyncedFlush};
pub use leader_epoch::LeaderEpochCache;
pub use log::{AppendInfo, IsolationLevel, Log, ReadInfo, ReadPlan};
pub use producer_state::{
    ActiveProducer, BatchMetadata, CompletedTxn, DuplicateBatch, ProducerStateEntry,
    ProducerStateLoad, ProducerStateManager, RETAINED_SNAPSHOTS, SequenceCheck, SequenceError,
    VerificationGuard,
};
pub use recompress::recompress;
pub use txn_index::AbortedTxn;

#[cfg(test)]
mod tests;
