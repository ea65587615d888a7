//! openraft's state machine: the in-memory [`MetadataImage`] plus snapshot files.
//!
//! The image is not persisted on apply. Durability comes from the Raft log plus the
//! newest snapshot file: on start openraft installs the newest snapshot
//! ([`RaftStateMachine::get_current_snapshot`] → [`RaftStateMachine::install_snapshot`])
//! and re-applies the committed entries after it (the log store persists `committed`).
//!
//! Every applied batch is published on a `tokio::sync::watch` channel *before* the
//! batch's client responses are sent, so a `write` that returned is already visible in
//! the image.

use std::io;
use std::io::Cursor;
use std::sync::Arc;

use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::Snapshot;
use openraft::StoredMembership;
use openraft::alias::LogIdOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::SnapshotOf;
use openraft::alias::StoredMembershipOf;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use tokio::sync::watch;

use crate::command::MetadataResponse;
use crate::image::MetadataImage;
use crate::snapshot_store::SnapshotError;
use crate::snapshot_store::SnapshotFile;
use crate::snapshot_store::SnapshotStore;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// The controller's state machine (owned by openraft's state machine task).
pub struct MetadataStateMachine {
    image: MetadataImage,
    last_applied: Option<LogIdOf<TypeConfig>>,
    last_membership: StoredMembershipOf<TypeConfig>,
    snapshots: SnapshotStore,
    image_tx: watch::Sender<Arc<MetadataImage>>,
}

impl std::fmt::Debug for MetadataStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStateMachine")
            .field("last_applied", &self.last_applied)
            .field("metadata_offset", &self.image.metadata_offset)
            .finish_non_exhaustive()
    }
}

impl MetadataStateMachine {
    /// An empty state machine over `snapshots`; openraft restores the newest snapshot
    /// into it on start. Applied images are published to `image_tx`.
    pub fn new(snapshots: SnapshotStore, image_tx: watch::Sender<Arc<MetadataImage>>) -> Self {
        MetadataStateMachine {
            image: MetadataImage::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshots,
            image_tx,
        }
    }

    /// Publish the image as of the last applied entry. Cheap: topics are shared
    /// (`Arc<TopicImage>`), so this copies pointers, and a topic the batch did not
    /// change is the same `Arc` as in the previous image.
    fn publish(&self) {
        self.image_tx.send_replace(Arc::new(self.image.clone()));
    }

    fn builder(&self) -> MetadataSnapshotBuilder {
        MetadataSnapshotBuilder {
            file: SnapshotFile {
                meta: SnapshotMetaOf::<TypeConfig> {
                    last_log_id: self.last_applied,
                    last_membership: self.last_membership.clone(),
                },
                image: self.image.clone(),
            },
            snapshots: self.snapshots.clone(),
        }
    }
}

async fn blocking<T, F>(f: F) -> Result<T, SnapshotError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SnapshotError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| SnapshotError::BlockingTask { source })?
}

fn image_bytes(image: &MetadataImage) -> Result<Vec<u8>, SnapshotError> {
    serde_json::to_vec(image).map_err(|source| SnapshotError::Encode { source })
}

/// A point-in-time copy of the state machine, written out as a snapshot file.
pub struct MetadataSnapshotBuilder {
    file: SnapshotFile,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let file = self.file.clone();
        let snapshots = self.snapshots.clone();
        let (meta, bytes) = blocking(move || {
            let path = snapshots.save(&file)?;
            tracing::info!(
                path = %path.display(),
                metadata_offset = file.image.metadata_offset,
                "wrote metadata snapshot"
            );
            Ok((file.meta.clone(), image_bytes(&file.image)?))
        })
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(bytes),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut responses = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let index = log_id.index();
            let response = match &entry.payload {
                EntryPayload::Blank => {
                    self.image.advance_offset(index);
                    MetadataResponse::Noop
                }
                EntryPayload::Normal(cmd) => {
                    let response = self.image.apply(index, cmd);
                    if let MetadataResponse::Error(e) = &response {
                        tracing::debug!(index, %cmd, error = %e, "metadata command rejected");
                    }
                    response
                }
                EntryPayload::Membership(membership) => {
                    self.image.advance_offset(index);
                    self.last_membership = StoredMembership::new(Some(log_id), membership.clone());
                    MetadataResponse::Noop
                }
            };
            self.last_applied = Some(log_id);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        if self.last_applied.is_some() {
            self.publish();
        }
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.builder())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref())
            .map_err(|source| SnapshotError::DecodeData { source })?;
        let file = SnapshotFile {
            meta: meta.clone(),
            image,
        };
        let snapshots = self.snapshots.clone();
        let file = blocking(move || {
            snapshots.save(&file)?;
            Ok(file)
        })
        .await?;
        tracing::info!(
            metadata_offset = file.image.metadata_offset,
            "installed metadata snapshot"
        );
        self.image = file.image;
        self.last_applied = file.meta.last_log_id;
        self.last_membership = file.meta.last_membership;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        let snapshots = self.snapshots.clone();
        let latest = blocking(move || {
            snapshots
                .load_latest()?
                .map(|file| Ok((file.meta, image_bytes(&file.image)?)))
                .transpose()
        })
        .await?;
        Ok(latest.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Cursor::new(bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::StorageError;
    use openraft::testing::log::StoreBuilder;
    use openraft::testing::log::Suite;

    use super::*;
    use crate::log_store::RocksLogStore;
    use crate::log_store::open_db;

    /// Builds a fresh RocksDB log store and state machine in a temp dir for each test of
    /// openraft's storage conformance suite.
    struct Builder;

    impl StoreBuilder<TypeConfig, RocksLogStore, MetadataStateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<
            (tempfile::TempDir, RocksLogStore, MetadataStateMachine),
            StorageError<TypeConfig>,
        > {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = open_db(&dir.path().join("raft")).expect("open db");
            let log = RocksLogStore::new(db).expect("log store");
            let snapshots = SnapshotStore::open(&dir.path().join("snapshots")).expect("snapshots");
            let (tx, _rx) = watch::channel(Arc::new(MetadataImage::default()));
            Ok((dir, log, MetadataStateMachine::new(snapshots, tx)))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openraft_storage_conformance_suite() {
        Suite::test_all(Builder).await.expect("conformance suite");
    }
}
