//! A flush split around the caller's lock: [`Log::plan_flush`] (under it)
//! takes the handles and paths of what is unsynced and the offset that
//! covers, [`FlushPlan::sync`] (without it) fsyncs them, and
//! [`Log::complete_flush`] (under it again) advances the recovery point
//! unless a truncation came between; the `recovery-point-checkpoint` write
//! it returns ([`RecoveryPointWrite`]) runs without the lock too.
//!
//! [`Log::plan_flush`]: crate::Log::plan_flush
//! [`Log::complete_flush`]: crate::Log::complete_flush

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::checkpoint::{self, RECOVERY_POINT};
use crate::error::LogError;

/// One fsync of a flush.
pub(crate) enum SyncTarget {
    /// A segment's data, through its open handle (still valid if the file
    /// is deleted or renamed meanwhile: the fsync is then harmless).
    Data { file: Arc<File>, path: PathBuf },
    /// A file written by path (index files); `optional`: it may be gone
    /// (a transaction index removed with its segment).
    Path { path: PathBuf, optional: bool },
    /// A directory whose entries changed (segments created or deleted).
    Dir(PathBuf),
}

impl SyncTarget {
    fn sync(&self) -> Result<(), LogError> {
        match self {
            SyncTarget::Data { file, path } => {
                file.sync_data().map_err(LogError::io("syncing", path))
            }
            SyncTarget::Path { path, optional } => match File::open(path) {
                Ok(f) => f.sync_all().map_err(LogError::io("syncing", path)),
                Err(e) if *optional && e.kind() == ErrorKind::NotFound => Ok(()),
                Err(source) => Err(LogError::Io {
                    context: "syncing",
                    path: path.clone(),
                    source,
                }),
            },
            SyncTarget::Dir(dir) => checkpoint::sync_dir(dir),
        }
    }
}

/// What a flush has to fsync, taken under the caller's lock.
#[must_use = "a planned flush does nothing until synced and completed"]
pub struct FlushPlan {
    pub(crate) targets: Vec<SyncTarget>,
    pub(crate) covers: i64,
    pub(crate) truncations: u64,
    pub(crate) checkpoint: Arc<RecoveryPointCheckpoint>,
}

impl std::fmt::Debug for FlushPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushPlan")
            .field("fsyncs", &self.targets.len())
            .field("covers", &self.covers)
            .field("truncations", &self.truncations)
            .finish_non_exhaustive()
    }
}

impl FlushPlan {
    /// Offsets below this are durable once the plan is synced (the log end
    /// when planned).
    pub fn covers(&self) -> i64 {
        self.covers
    }

    /// The log's truncation count when planned (see [`crate::Log::truncations`]).
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// fsync everything planned; no lock needed. An error is fatal for the
    /// log directory (after a failed fsync the kernel may have dropped the
    /// dirty pages, so a later fsync proves nothing);
    /// [`crate::Log::flush_failed`] marks everything unsynced again.
    pub fn sync(self) -> Result<SyncedFlush, LogError> {
        for target in &self.targets {
            target.sync()?;
        }
        Ok(SyncedFlush {
            covers: self.covers,
            truncations: self.truncations,
            checkpoint: self.checkpoint,
        })
    }
}

/// A [`FlushPlan`] whose fsyncs succeeded: offsets below `covers` are
/// durable unless a truncation came since the plan.
#[derive(Debug)]
#[must_use = "the recovery point moves only in Log::complete_flush"]
pub struct SyncedFlush {
    pub(crate) covers: i64,
    pub(crate) truncations: u64,
    pub(crate) checkpoint: Arc<RecoveryPointCheckpoint>,
}

/// The `recovery-point-checkpoint` write of a completed flush, to run
/// without the caller's lock (a temp file, fsync, rename, directory fsync).
#[derive(Debug)]
#[must_use = "the checkpoint file is written only by write()"]
pub struct RecoveryPointWrite {
    pub(crate) offset: i64,
    pub(crate) generation: u64,
    pub(crate) checkpoint: Arc<RecoveryPointCheckpoint>,
}

impl RecoveryPointWrite {
    /// The offset written.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Write the checkpoint, unless a truncation lowered the recovery point
    /// since (its own write is then the right one and stays).
    pub fn write(self) -> Result<(), LogError> {
        self.checkpoint.write_if(self.offset, self.generation)
    }
}

/// The `recovery-point-checkpoint` file, written from under the log's lock
/// (truncations, `flush`, `close`) and from outside it (a completed split
/// flush). The mutex serialises the writes (they share a temp file); the
/// generation, bumped by every truncation before its own write, drops an
/// outside write planned before it, which could otherwise land last and
/// claim bytes that were cut and rewritten since.
#[derive(Debug)]
pub(crate) struct RecoveryPointCheckpoint {
    dir: PathBuf,
    write: Mutex<()>,
    generation: AtomicU64,
}

impl RecoveryPointCheckpoint {
    pub(crate) fn new(dir: &Path) -> Self {
        RecoveryPointCheckpoint {
            dir: dir.to_owned(),
            write: Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A truncation: writes planned before it are dropped.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn write(&self, offset: i64) -> Result<(), LogError> {
        let _serial = self.write.lock().unwrap_or_else(|p| p.into_inner());
        checkpoint::write_offset(&self.dir, RECOVERY_POINT, offset)
    }

    fn write_if(&self, offset: i64, generation: u64) -> Result<(), LogError> {
        let _serial = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation {
            return Ok(());
        }
        checkpoint::write_offset(&self.dir, RECOVERY_POINT, offset)
    }
}
