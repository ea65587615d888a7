//! Where partition logs live on disk: `<log.dirs>/<topic>-<partition>/`, each
//! with a `partition.metadata` file naming its topic id (as Kafka does), so a
//! directory left from a deleted topic is never mistaken for a new topic of
//! the same name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use fjord_types::{TopicId, TopicPartition};

const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

/// A partition directory found on disk.
#[derive(Debug)]
pub struct FoundPartition {
    pub path: PathBuf,
    pub tp: TopicPartition,
    /// `None` when the metadata file is missing or unreadable.
    pub topic_id: Option<TopicId>,
}

pub struct LogDirs {
    root: PathBuf,
}

impl LogDirs {
    pub fn open(root: &Path) -> io::Result<LogDirs> {
        fs::create_dir_all(root)?;
        Ok(LogDirs {
            root: root.to_path_buf(),
        })
    }

    pub fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.root.join(format!("{}-{}", tp.topic, tp.partition))
    }

    /// Create (or find) the directory of a partition of `topic_id`.
    /// A directory there that belongs to another topic id is deleted first.
    pub fn prepare(&self, tp: &TopicPartition, topic_id: TopicId) -> io::Result<PathBuf> {
        let dir = self.partition_dir(tp);
        if dir.exists() {
            match read_topic_id(&dir) {
                Some(id) if id == topic_id => return Ok(dir),
                _ => self.delete(&dir, topic_id)?,
            }
        }
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
        fs::write(&tmp, format!("version: 0\ntopic_id: {topic_id}\n"))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, dir.join(PARTITION_METADATA))?;
        Ok(dir)
    }

    /// Delete a partition directory: rename it aside first so that a crash
    /// midway leaves a `-delete` directory (removed on next start), never a
    /// half-deleted log under the live name.
    pub fn delete(&self, dir: &Path, topic_id: TopicId) -> io::Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = self
            .root
            .join(format!("{name}.{}{DELETE_SUFFIX}", topic_id.0.simple()));
        fs::rename(dir, &aside)?;
        fs::remove_dir_all(&aside)
    }

    /// Every partition directory on disk; removes leftovers of interrupted deletes.
    pub fn scan(&self) -> io::Result<Vec<FoundPartition>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETE_SUFFIX) {
                fs::remove_dir_all(entry.path())?;
                continue;
            }
            let Some((topic, partition)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            found.push(FoundPartition {
                path: entry.path(),
                tp: TopicPartition::new(topic, partition),
                topic_id: read_topic_id(&entry.path()),
            });
        }
        Ok(found)
    }
}

fn read_topic_id(dir: &Path) -> Option<TopicId> {
    let text = fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id: "))
        .and_then(|id| id.trim().parse().ok())
        .map(TopicId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_replaces_a_directory_of_another_topic_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = LogDirs::open(tmp.path()).unwrap();
        let tp = TopicPartition::new("orders", 0);
        let old = TopicId::random();
        let dir = dirs.prepare(&tp, old).unwrap();
        fs::write(dir.join("00000000000000000000.log"), b"old").unwrap();

        let new = TopicId::random();
        let dir = dirs.prepare(&tp, new).unwrap();
        assert!(!dir.join("00000000000000000000.log").exists());
        let found = dirs.scan().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].tp, tp);
        assert_eq!(found[0].topic_id, Some(new));
    }
}
