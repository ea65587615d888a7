//! Small text checkpoint files, written atomically (temp file, fsync,
//! rename, fsync of the directory).
//!
//! Offset checkpoints (`recovery-point-checkpoint`, `log-start-offset-checkpoint`)
//! hold two lines: the format version `0` and the offset.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::LogError;

pub(crate) const RECOVERY_POINT: &str = "recovery-point-checkpoint";
pub(crate) const LOG_START_OFFSET: &str = "log-start-offset-checkpoint";
pub(crate) const LEADER_EPOCH: &str = "leader-epoch-checkpoint";
/// The cleaner's first dirty offset (Kafka keeps one such file per log
/// directory; one per partition directory travels with the partition).
pub(crate) const CLEANER_OFFSET: &str = "cleaner-offset-checkpoint";
pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Written by `Log::close` after everything is flushed and every index file
/// (the active segment's too, sealed) is written and fsynced: lets the next
/// open trust the active segment instead of re-validating it. Removed by
/// `open` before anything else changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub log_end_offset: i64,
    pub active_base_offset: i64,
    pub active_size: u64,
}

impl CleanShutdown {
    pub(crate) fn write(&self, dir: &Path) -> Result<(), LogError> {
        let text = format!(
            "0\n{}\n{}\n{}\n",
            self.log_end_offset, self.active_base_offset, self.active_size
        );
        write_atomic(dir, CLEAN_SHUTDOWN, text.as_bytes())
    }

    /// Read and delete the marker. A malformed marker is ignored (full recovery).
    pub(crate) fn take(dir: &Path) -> Result<Option<CleanShutdown>, LogError> {
        let Some((path, text)) = read(dir, CLEAN_SHUTDOWN)? else {
            return Ok(None);
        };
        fs::remove_file(&path).map_err(LogError::io("removing", &path))?;
        sync_dir(dir)?;
        let mut lines = text.lines().map(str::trim);
        if lines.next() != Some("0") {
            return Ok(None);
        }
        let mut next = || lines.next().and_then(|l| l.parse::<i64>().ok());
        Ok(match (next(), next(), next()) {
            (Some(leo), Some(base), Some(size)) if size >= 0 && leo >= base => {
                Some(CleanShutdown {
                    log_end_offset: leo,
                    active_base_offset: base,
                    active_size: size as u64,
                })
            }
            _ => None,
        })
    }
}

/// Replace `dir/name` with `contents` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    write_atomic_unsynced(dir, name, contents)?;
    sync_dir(dir)
}

/// Replace `dir/name` with `contents` atomically: the new contents are
/// durable, the rename only once the caller fsyncs `dir` (until then a
/// crash leaves the old file).
pub(crate) fn write_atomic_unsynced(
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(LogError::io("creating", &tmp))?;
    f.write_all(contents)
        .map_err(LogError::io("writing", &tmp))?;
    f.sync_all().map_err(LogError::io("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(LogError::io("renaming to", &path))
}

/// fsync a directory so that creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("syncing directory", dir))
}

/// Read `dir/name`; `None` if it does not exist.
pub(crate) fn read(dir: &Path, name: &str) -> Result<Option<(PathBuf, String)>, LogError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some((path, s))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Io {
            context: "reading",
            path,
            source: e,
        }),
    }
}

pub(crate) fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, name, format!("0\n{offset}\n").as_bytes())
}

/// Read an offset checkpoint; `None` if the file does not exist.
pub(crate) fn read_offset(dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let Some((path, text)) = read(dir, name)? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(LogError::CorruptCheckpoint {
            path,
            reason: "unknown version",
        });
    }
    match lines.next().map(|l| l.trim().parse::<i64>()) {
        Some(Ok(offset)) if offset >= 0 => Ok(Some(offset)),
        _ => Err(LogError::CorruptCheckpoint {
            path,
            reason: "expected a non-negative offset",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_offset(dir.path(), RECOVERY_POINT).expect("read"), None);
        write_offset(dir.path(), RECOVERY_POINT, 42).expect("write");
        write_offset(dir.path(), RECOVERY_POINT, 43).expect("write");
        assert_eq!(
            read_offset(dir.path(), RECOVERY_POINT).expect("read"),
            Some(43)
        );
        assert!(!dir.path().join("recovery-point-checkpoint.tmp").exists());
        fs::write(dir.path().join(RECOVERY_POINT), "0\nx\n").expect("write");
        assert!(matches!(
            read_offset(dir.path(), RECOVERY_POINT),
            Err(LogError::CorruptCheckpoint { .. })
        ));
    }
}
