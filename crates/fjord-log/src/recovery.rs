//! Recovery on open: find the segment files, trust what the recovery
//! checkpoint covers, validate everything after it and cut a torn tail.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::checkpoint::{CleanShutdown, TMP_SUFFIX};
use crate::error::LogError;
use crate::file_cache::FileCache;
use crate::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, LogSegment, TIME_INDEX_SUFFIX};
use crate::txn_index::TXN_INDEX_SUFFIX;

/// Open the segments with these base offsets (sorted). Segments wholly below
/// `recovery_checkpoint` are trusted: index files loaded if sane, else
/// rebuilt from headers (a trusted segment that does not parse is an error).
/// Every later segment is validated batch by batch; at the first bad batch
/// its file is cut there and all later segments are deleted. Returns the
/// segments and whether files were created or deleted.
///
/// After a clean shutdown (`clean`), the active segment is trusted too when
/// its base and size match the marker and its index files load.
pub(crate) fn load_segments(
    dir: &Path,
    bases: &[i64],
    recovery_checkpoint: i64,
    clean: Option<CleanShutdown>,
    interval: u32,
    files: &FileCache,
) -> Result<(BTreeMap<i64, LogSegment>, bool), LogError> {
    let mut segments = BTreeMap::new();
    let mut dir_dirty = false;
    for (i, &base) in bases.iter().enumerate() {
        let mut seg = LogSegment::open(dir, base, files)?;
        let next_base = bases.get(i + 1).copied();
        if let Some(c) = clean
            && next_base.is_none()
            && c.active_base_offset == base
            && c.active_size == seg.size()
            && c.log_end_offset <= recovery_checkpoint
            && seg.load_indexes(c.log_end_offset)?
        {
            seg.mark_exact();
            segments.insert(base, seg);
            continue;
        }
        let trusted = next_base.is_some_and(|n| n <= recovery_checkpoint);
        if trusted {
            let next_base = next_base.unwrap_or(base);
            if !seg.load_indexes(next_base)? {
                tracing::info!(dir = %dir.display(), base, "rebuilding indexes of a segment");
                if let Some(position) = seg.rebuild(false, interval)? {
                    return Err(LogError::CorruptSegment {
                        path: dir.join(segment::file_name(base, LOG_SUFFIX)),
                        position,
                    });
                }
            }
            segments.insert(base, seg);
            continue;
        }
        let prev_next = segments.values().next_back().map(LogSegment::next_offset);
        let overlaps = prev_next.is_some_and(|n| base < n);
        // Data read back may still be only in the page cache: fsync it
        // before the recovery point moves past it.
        seg.mark_unsynced();
        let torn = if overlaps {
            Some(0)
        } else {
            seg.rebuild(true, interval)?
        };
        if let Some(position) = torn {
            tracing::warn!(dir = %dir.display(), base, position,
                "truncating a torn or corrupt log tail during recovery");
            seg.truncate_to_position(position, interval)?;
            // Keep the cut segment unless it is now empty and not the only one.
            let keep = segments.is_empty() || position > 0;
            if keep {
                segments.insert(base, seg);
            } else {
                seg.delete()?;
            }
            for &later in &bases[i + 1..] {
                LogSegment::open(dir, later, files)?.delete()?;
            }
            dir_dirty = true;
            break;
        }
        segments.insert(base, seg);
    }
    Ok((segments, dir_dirty))
}

/// Base offsets of the `.log` files in `dir`, sorted, after completing the
/// cleaner swaps a crash interrupted; removes leftovers (temp files, orphan
/// indexes, `.deleted`, uncommitted `.cleaned` / `.swap` files).
pub(crate) fn scan_directory(dir: &Path) -> Result<Vec<i64>, LogError> {
    crate::cleaner::complete_interrupted_swaps(dir)?;
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    let entries = fs::read_dir(dir).map_err(LogError::io("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if [TMP_SUFFIX, ".deleted", ".cleaned", ".swap"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            fs::remove_file(&path).map_err(LogError::io("removing leftover", &path))?;
        } else if let Some(base) = parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_name(name, INDEX_SUFFIX)
            .or_else(|| parse_segment_name(name, TIME_INDEX_SUFFIX))
            .or_else(|| parse_segment_name(name, TXN_INDEX_SUFFIX))
        {
            index_files.push((base, path));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            fs::remove_file(&path).map_err(LogError::io("removing orphan index", &path))?;
        }
    }
    Ok(bases)
}

pub(crate) fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
