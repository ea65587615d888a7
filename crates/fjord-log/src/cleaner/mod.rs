//! The log cleaner (compaction, Kafka's `LogCleaner` / `Cleaner`): for a log
//! with `cleanup.policy` `compact` (or `compact,delete`), keep only the
//! latest record of each key, at its original offset.
//!
//! # A pass, and the log's lock
//! The broker holds one lock per log; a pass takes it twice, briefly:
//! 1. [`crate::Log::plan_cleaning`] (locked): the cleanable range
//!    ([`plan`]), the sealed segments below its end (file handles, sizes,
//!    mtimes, txn index entries), the aborted transactions and each
//!    producer's last batch. Returns `None` when no pass is due.
//! 2. [`CleaningPlan::clean`] (NOT locked; sealed segments are immutable and
//!    read through their own handles): build the [`OffsetMap`] over the
//!    dirty range, then rewrite every sealed segment below where the map
//!    stopped, in groups below `segment.bytes`, into `.cleaned` files
//!    ([`pass`]).
//! 3. [`crate::Log::swap_cleaned`] (locked): if the cleaned segments are all
//!    still there unchanged (no truncation, retention or DeleteRecords
//!    removed them meanwhile) swap the new files in (`.swap`, crash-safe,
//!    see [`swap`]) and move `cleaner-offset-checkpoint` to where the map
//!    stopped; else discard the work.
//!
//! # What is kept (per batch, see `CleaningPlan::filter_batch`)
//! - Cleaned batches keep baseOffset, lastOffsetDelta, producer id, epoch,
//!   base sequence, attributes, codec and baseTimestamp; only the records
//!   are filtered (copied verbatim, recompressed with the same codec), and
//!   recordsCount, maxTimestamp (CreateTime), batchLength and the CRC are
//!   recomputed ([`records`]). A batch left without records disappears.
//!   Stored batches may then have `lastOffsetDelta != recordsCount - 1`:
//!   recovery and follower appends accept that (`Origin::Replica`), the
//!   leader's produce validation does not.
//! - Control batches (transaction markers) are always kept (Kafka removes
//!   them once their transaction's data is gone and `delete.retention.ms`
//!   passed).
//! - The last data batch of each producer id known to the producer state is
//!   kept whole: the producer state must rebuild from the log after a
//!   restart without snapshots, and a retry of it must still be recognised.
//! - Batches of aborted transactions are removed (and never enter the map);
//!   committed transactional records are compacted like others.
//! - Tombstones (null values) that are the latest for their key stay until
//!   `delete.retention.ms` after the pass that first cleaned them: the
//!   checkpoint file records, per pass, the offset range it newly cleaned
//!   and when ([`checkpoint`]). Kafka measures from segment mtimes (which
//!   merging segments moves) or, since KIP-534, a delete horizon written
//!   into each batch's baseTimestamp; Fjord's record of clean times leaves
//!   batches' timestamps alone and does not depend on file mtimes.
//!
//! # Files
//! `<dir>/cleaner-offset-checkpoint` (first dirty offset and clean times,
//! see [`checkpoint`]);
//! `<base>.log.cleaned`, `<base>.txnindex.cleaned` during a pass; `.swap`
//! during a swap. Cleaned segments' offset and time indexes are built while
//! writing; their txn index is the union of the replaced segments' (markers
//! are kept, so every entry still points into the segment).

mod checkpoint;
pub mod offset_map;
mod pass;
mod plan;
pub(crate) mod records;
mod swap;

pub use offset_map::OffsetMap;
pub use pass::{CleanedLog, CleanerStats, CleaningPlan};
pub use plan::CleanableRange;
pub use swap::SwapOutcome;

pub(crate) use checkpoint::CleanerCheckpoint;
pub(crate) use swap::complete_interrupted_swaps;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
