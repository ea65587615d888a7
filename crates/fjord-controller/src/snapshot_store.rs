//! Snapshot files of the metadata image, in `<data_dir>/snapshots/`.
//!
//! One file per snapshot, `snapshot-<last log index, 20 digits>.json` (or
//! `snapshot-empty.json` for a snapshot of nothing), holding the openraft snapshot meta
//! and the image as JSON. A file is written as `*.tmp`, fsynced, renamed into place and
//! the directory fsynced, so a reader sees a whole snapshot or none. After a new
//! snapshot is durable, older ones are deleted; the newest file is the current snapshot.

use std::fs;
use std::fs::File;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use openraft::alias::SnapshotMetaOf;
use serde::Deserialize;
use serde::Serialize;

use crate::image::MetadataImage;
use crate::types::TypeConfig;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".json";
const TMP_SUFFIX: &str = ".tmp";
const EMPTY_NAME: &str = "empty";

/// Failures reading or writing snapshot files. Travels inside `io::Error` through
/// openraft's state machine trait.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("encode snapshot")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
    #[error("decode snapshot {path} (corrupt snapshot?)")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("decode snapshot data received for installation")]
    DecodeData {
        #[source]
        source: serde_json::Error,
    },
    #[error("blocking snapshot task failed")]
    BlockingTask {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<SnapshotError> for io::Error {
    fn from(e: SnapshotError) -> io::Error {
        let kind = match &e {
            SnapshotError::Decode { .. } | SnapshotError::DecodeData { .. } => {
                io::ErrorKind::InvalidData
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// What a snapshot file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMetaOf<TypeConfig>,
    pub image: MetadataImage,
}

/// The snapshot directory. Blocking: call from `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Create the directory if needed and remove leftovers of interrupted writes.
    pub fn open(dir: &Path) -> Result<Self, SnapshotError> {
        fs::create_dir_all(dir).map_err(|source| SnapshotError::Io {
            op: "create snapshot dir",
            path: dir.to_owned(),
            source,
        })?;
        let store = SnapshotStore {
            dir: dir.to_owned(),
        };
        for (path, name) in store.list()? {
            if name.ends_with(TMP_SUFFIX) {
                tracing::info!(path = %path.display(), "removing unfinished snapshot");
                remove(&path)?;
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list(&self) -> Result<Vec<(PathBuf, String)>, SnapshotError> {
        let io_err = |op| {
            let path = self.dir.clone();
            move |source| SnapshotError::Io { op, path, source }
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("list snapshot dir"))? {
            let entry = entry.map_err(io_err("list snapshot dir"))?;
            if let Some(name) = entry.file_name().to_str() {
                out.push((entry.path(), name.to_owned()));
            }
        }
        Ok(out)
    }

    /// Snapshot files by rank (0 = empty snapshot, i + 1 = last log index i).
    fn snapshots(&self) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
        let mut out: Vec<(u64, PathBuf)> = self
            .list()?
            .into_iter()
            .filter_map(|(path, name)| rank_of(&name).map(|rank| (rank, path)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Durably write `file` as the newest snapshot and delete older ones.
    pub fn save(&self, file: &SnapshotFile) -> Result<PathBuf, SnapshotError> {
        let bytes = serde_json::to_vec(file).map_err(|source| SnapshotError::Encode { source })?;
        let rank = rank(&file.meta);
        let path = self.dir.join(file_name(rank));
        let tmp = self.dir.join(format!(
            "{}.{}{TMP_SUFFIX}",
            file_name(rank),
            uuid::Uuid::new_v4()
        ));
        let io_err = |op, path: &Path| {
            let path = path.to_owned();
            move |source| SnapshotError::Io { op, path, source }
        };
        {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(&bytes).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync dir", &self.dir))?;
        for (older, older_path) in self.snapshots()? {
            if older < rank {
                remove(&older_path)?;
            }
        }
        Ok(path)
    }

    /// The newest snapshot, if any.
    pub fn load_latest(&self) -> Result<Option<SnapshotFile>, SnapshotError> {
        let Some((_, path)) = self.snapshots()?.pop() else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(|source| SnapshotError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        let file = serde_json::from_slice(&bytes)
            .map_err(|source| SnapshotError::Decode { path, source })?;
        Ok(Some(file))
    }
}

fn remove(path: &Path) -> Result<(), SnapshotError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        // Another writer got there first; the goal is reached.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SnapshotError::Io {
            op: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

fn rank(meta: &SnapshotMetaOf<TypeConfig>) -> u64 {
    meta.last_log_id
        .as_ref()
        .map_or(0, |id| id.index().saturating_add(1))
}

fn file_name(rank: u64) -> String {
    match rank.checked_sub(1) {
        None => format!("{PREFIX}{EMPTY_NAME}{SUFFIX}"),
        Some(index) => format!("{PREFIX}{index:020}{SUFFIX}"),
    }
}

fn rank_of(name: &str) -> Option<u64> {
    let stem = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if stem == EMPTY_NAME {
        return Some(0);
    }
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<u64>().ok()?.checked_add(1)
}

#[cfg(test)]
mod tests {
    use openraft::StoredMembership;
    use openraft::testing::log_id;

    use super::*;

    fn file(index: Option<u64>, cluster_id: &str) -> SnapshotFile {
        SnapshotFile {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: index.map(|i| log_id::<TypeConfig>(1, 1, i)),
                last_membership: StoredMembership::default(),
            },
            image: MetadataImage {
                cluster_id: cluster_id.into(),
                metadata_offset: index.unwrap_or(0),
                ..MetadataImage::default()
            },
        }
    }

    #[test]
    fn names_sort_by_index() {
        assert_eq!(rank_of(&file_name(0)), Some(0));
        assert_eq!(rank_of(&file_name(11)), Some(11));
        assert_eq!(rank_of("snapshot-123.json"), None);
        assert_eq!(rank_of("snapshot-00000000000000000001.json.x.tmp"), None);
        assert!(file_name(10) < file_name(100));
    }

    #[test]
    fn save_keeps_only_the_newest_and_cleans_tmp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert!(store.load_latest().expect("load").is_none());

        store.save(&file(None, "a")).expect("save");
        store.save(&file(Some(9), "b")).expect("save");
        store.save(&file(Some(100), "c")).expect("save");
        // An older snapshot written late does not delete the newer one.
        store.save(&file(Some(50), "d")).expect("save");
        fs::write(dir.path().join("snapshot-x.json.1.tmp"), b"partial").expect("write");

        let store = SnapshotStore::open(dir.path()).expect("reopen");
        let latest = store.load_latest().expect("load").expect("some");
        assert_eq!(latest.image.cluster_id, "c");
        let names: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with(TMP_SUFFIX)));
    }

    #[test]
    fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        fs::write(dir.path().join(file_name(5)), b"{").expect("write");
        assert!(matches!(
            store.load_latest(),
            Err(SnapshotError::Decode { .. })
        ));
    }
}
