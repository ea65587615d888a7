//! The public handle: start a controller node, propose commands, follow the image.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fjord_types::BrokerId;
use openraft::RaftNetworkFactory;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::Fatal;
use openraft::errors::InitializeError;
use openraft::errors::RaftError;
use openraft::metrics::WaitError;
use openraft::network::NetSnapshot;
use tokio::sync::watch;

use crate::command::MetadataCommand;
use crate::command::MetadataError;
use crate::command::MetadataResponse;
use crate::image::MetadataImage;
use crate::log_store::LogStoreError;
use crate::log_store::RocksLogStore;
use crate::log_store::open_db;
use crate::network::UnreachableNetworkFactory;
use crate::snapshot_store::SnapshotError;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::MetadataStateMachine;
use crate::types::ControllerNode;
use crate::types::ControllerRaft;
use crate::types::NodeId;
use crate::types::SnapshotData;
use crate::types::TypeConfig;
use crate::types::broker_id_of;
use crate::types::node_id_of;

/// How long [`Controller::start`] waits for leadership and an applied log.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Controller::shutdown`] waits for the Raft tasks to release RocksDB.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Subdirectory of `data_dir` holding the Raft log's RocksDB.
pub const RAFT_DIR: &str = "raft";
/// Subdirectory of `data_dir` holding snapshot files.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// How to run one controller node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// This node's `node.id`.
    pub node_id: BrokerId,
    /// The controller's own directory (`raft/` and `snapshots/` live under it).
    pub data_dir: PathBuf,
    /// The voters by node id, with their controller RPC addresses
    /// (Kafka's `controller.quorum.voters`). Must contain `node_id`.
    pub voters: BTreeMap<BrokerId, String>,
    /// Election timeout range in milliseconds (min, max).
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every_logs: u64,
}

impl ControllerConfig {
    /// A single-voter quorum of this node with default timings.
    pub fn single_voter(node_id: BrokerId, data_dir: PathBuf, rpc_addr: String) -> Self {
        ControllerConfig {
            node_id,
            data_dir,
            voters: BTreeMap::from([(node_id, rpc_addr)]),
            election_timeout_ms: (300, 600),
            heartbeat_interval_ms: 100,
            snapshot_every_logs: 1000,
        }
    }
}

/// A configuration the controller cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("node id {node_id} is negative")]
    NegativeNodeId { node_id: BrokerId },
    #[error("voter id {voter} is negative")]
    NegativeVoterId { voter: BrokerId },
    #[error("node {node_id} is not one of the voters {voters:?}")]
    NotAVoter {
        node_id: BrokerId,
        voters: Vec<BrokerId>,
    },
    #[error(
        "voters {voters:?}: only a single-voter quorum is supported until the controller network exists"
    )]
    MultiVoterUnsupported { voters: Vec<BrokerId> },
    #[error("snapshot_every_logs must be > 0")]
    ZeroSnapshotInterval,
    #[error("invalid raft timing")]
    Raft {
        #[source]
        source: openraft::ConfigError,
    },
}

/// Errors of the controller handle.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("invalid controller config")]
    Config(#[from] ConfigError),
    #[error("create controller directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open the raft log store")]
    OpenLogStore {
        #[source]
        source: LogStoreError,
    },
    #[error("open the snapshot store")]
    OpenSnapshots {
        #[source]
        source: SnapshotError,
    },
    #[error("blocking startup task failed")]
    StartupTask {
        #[source]
        source: tokio::task::JoinError,
    },
    /// This node is not the leader; retry on `leader` (if known).
    #[error("not the controller leader (leader: {leader:?})")]
    NotLeader { leader: Option<BrokerId> },
    /// Leadership changed while the write was in flight: it may or may not commit.
    #[error(
        "leadership changed during the write; it may or may not commit (leader now: {leader:?})"
    )]
    WriteOutcomeUnknown { leader: Option<BrokerId> },
    #[error("raft rejected the write")]
    WriteRejected {
        #[source]
        source: ClientWriteError<TypeConfig>,
    },
    /// The Raft node stopped: shut down, panicked, or hit a storage error. Fatal for
    /// this controller; the node's fault handler decides what happens next.
    #[error("the raft node stopped")]
    Fatal {
        #[source]
        source: Fatal<TypeConfig>,
    },
    #[error("initialize the single-voter quorum")]
    Initialize {
        #[source]
        source: RaftError<TypeConfig, InitializeError<TypeConfig>>,
    },
    #[error("waiting for {what}")]
    Wait {
        what: &'static str,
        #[source]
        source: WaitError,
    },
    #[error("the quorum rejected InitCluster")]
    InitClusterRejected {
        #[source]
        source: MetadataError,
    },
    #[error("shut down the raft node")]
    Shutdown {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("the raft log store was still open {waited:?} after shutdown")]
    StoreNotReleased { waited: Duration },
}

/// A running controller node. Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: BrokerId,
    raft: ControllerRaft,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    /// Becomes true when every Raft task has dropped the log store and RocksDB closed.
    db_closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// The validated voter set, as Raft node ids.
fn validate(config: &ControllerConfig) -> Result<BTreeMap<NodeId, ControllerNode>, ConfigError> {
    if node_id_of(config.node_id).is_none() {
        return Err(ConfigError::NegativeNodeId {
            node_id: config.node_id,
        });
    }
    if !config.voters.contains_key(&config.node_id) {
        return Err(ConfigError::NotAVoter {
            node_id: config.node_id,
            voters: config.voters.keys().copied().collect(),
        });
    }
    if config.voters.len() != 1 {
        return Err(ConfigError::MultiVoterUnsupported {
            voters: config.voters.keys().copied().collect(),
        });
    }
    if config.snapshot_every_logs == 0 {
        return Err(ConfigError::ZeroSnapshotInterval);
    }
    config
        .voters
        .iter()
        .map(|(&voter, addr)| {
            let id = node_id_of(voter).ok_or(ConfigError::NegativeVoterId { voter })?;
            Ok((
                id,
                ControllerNode {
                    rpc_addr: addr.clone(),
                },
            ))
        })
        .collect()
}

fn raft_config(config: &ControllerConfig) -> Result<openraft::Config, ConfigError> {
    let raft = openraft::Config {
        cluster_name: "fjord-controller".to_owned(),
        election_timeout_min: config.election_timeout_ms.0,
        election_timeout_max: config.election_timeout_ms.1,
        heartbeat_interval: config.heartbeat_interval_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_logs),
        // Keep one interval of log behind the snapshot (for followers that lag a
        // little); everything older is purged, so the log stays within ~2 intervals.
        max_in_snapshot_log_to_keep: config.snapshot_every_logs,
        ..Default::default()
    };
    raft.validate()
        .map_err(|source| ConfigError::Raft { source })
}

fn create_dir(path: &Path) -> Result<(), ControllerError> {
    std::fs::create_dir_all(path).map_err(|source| ControllerError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

impl Controller {
    /// Open RocksDB and the snapshots, build the Raft node, and on a fresh store whose
    /// voters are just this node initialize the single-voter quorum (never on restart).
    /// Then wait until this node leads with its whole log applied, and write
    /// `InitCluster` with a random cluster id if the image has none.
    ///
    /// Uses [`UnreachableNetworkFactory`]: only single-voter quorums are supported.
    pub async fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        Self::start_with_network(config, UnreachableNetworkFactory).await
    }

    /// [`Controller::start`] with a caller-provided Raft network (the seam for the gRPC
    /// transport). The voter set is still limited to this node until multi-voter
    /// bootstrap is designed together with that transport.
    pub async fn start_with_network<N>(
        config: ControllerConfig,
        network: N,
    ) -> Result<Controller, ControllerError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: NetSnapshot<TypeConfig, SnapshotData = SnapshotData>,
    {
        let members = validate(&config)?;
        let raft_config = Arc::new(raft_config(&config)?);
        let raft_dir = config.data_dir.join(RAFT_DIR);
        let snapshot_dir = config.data_dir.join(SNAPSHOT_DIR);
        create_dir(&config.data_dir)?;

        let (db, snapshots) = tokio::task::spawn_blocking(move || {
            let db =
                open_db(&raft_dir).map_err(|source| ControllerError::OpenLogStore { source })?;
            let snapshots = SnapshotStore::open(&snapshot_dir)
                .map_err(|source| ControllerError::OpenSnapshots { source })?;
            Ok::<_, ControllerError>((db, snapshots))
        })
        .await
        .map_err(|source| ControllerError::StartupTask { source })??;
        let log_store =
            RocksLogStore::new(db).map_err(|source| ControllerError::OpenLogStore { source })?;
        let db_closed = log_store.closed();

        let (image_tx, image_rx) = watch::channel(Arc::new(MetadataImage::default()));
        let state_machine = MetadataStateMachine::new(snapshots, image_tx);

        // A node id is validated non-negative above.
        let node_id = node_id_of(config.node_id).ok_or(ConfigError::NegativeNodeId {
            node_id: config.node_id,
        })?;
        let raft = ControllerRaft::new(node_id, raft_config, network, log_store, state_machine)
            .await
            .map_err(|source| ControllerError::Fatal { source })?;
        let controller = Controller {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                raft,
                image_rx,
                db_closed,
            }),
        };
        // From here on, a failed start must stop the Raft tasks it started.
        match controller.bootstrap(node_id, members).await {
            Ok(()) => Ok(controller),
            Err(e) => {
                if let Err(shutdown_err) = controller.shutdown().await {
                    tracing::warn!(error = %shutdown_err, "shutdown after failed start");
                }
                Err(e)
            }
        }
    }

    async fn bootstrap(
        &self,
        node_id: NodeId,
        members: BTreeMap<NodeId, ControllerNode>,
    ) -> Result<(), ControllerError> {
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|source| ControllerError::Fatal { source })?;
        if initialized {
            let stored: BTreeSet<NodeId> = raft
                .metrics()
                .borrow_watched()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            let configured: BTreeSet<NodeId> = members.keys().copied().collect();
            if stored != configured {
                // Membership changes are not implemented yet; the stored quorum wins.
                tracing::warn!(
                    ?stored,
                    ?configured,
                    "configured voters differ from the stored quorum; using the stored quorum"
                );
            }
            tracing::info!(node_id, "controller restarting on an initialized store");
        } else {
            tracing::info!(
                node_id,
                "fresh controller store: initializing single-voter quorum"
            );
            match raft.initialize(members).await {
                Ok(()) => {}
                // Someone (an earlier, interrupted start) already initialized it.
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::info!(error = %e, "quorum already initialized");
                }
                Err(source) => return Err(ControllerError::Initialize { source }),
            }
        }

        // Leader, and every entry in the log applied: the blank entry a new leader
        // appends is last, so anything committed before the restart is in the image.
        raft.wait(Some(STARTUP_TIMEOUT))
            .metrics(
                move |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(node_id)
                        && m.last_applied.as_ref().map(|id| id.index()) == m.last_log_index
                },
                "controller leadership with the log applied",
            )
            .await
            .map_err(|source| ControllerError::Wait {
                what: "leadership with the log applied",
                source,
            })?;

        if self.inner.image_rx.borrow().cluster_id.is_empty() {
            let cluster_id = random_cluster_id();
            tracing::info!(%cluster_id, "initializing cluster id");
            let resp = self
                .write(MetadataCommand::InitCluster { cluster_id })
                .await?;
            if let MetadataResponse::Error(source) = resp {
                return Err(ControllerError::InitClusterRejected { source });
            }
        }
        let image = self.inner.image_rx.borrow().clone();
        tracing::info!(
            cluster_id = %image.cluster_id,
            metadata_offset = image.metadata_offset,
            "controller ready"
        );
        Ok(())
    }

    /// Propose `cmd` and wait until it is committed and applied; returns the apply
    /// result (which may be [`MetadataResponse::Error`] for a rejected command). When this
    /// returns `Ok`, [`Controller::image`] already shows the result.
    ///
    /// Not cancellation-safe in the sense that a dropped future may still commit.
    pub async fn write(&self, cmd: MetadataCommand) -> Result<MetadataResponse, ControllerError> {
        match self.inner.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader {
                    leader: f.leader_id.and_then(broker_id_of),
                })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(ControllerError::WriteOutcomeUnknown {
                    leader: f.leader_id.and_then(broker_id_of),
                })
            }
            Err(RaftError::APIError(source)) => Err(ControllerError::WriteRejected { source }),
            Err(RaftError::Fatal(source)) => Err(ControllerError::Fatal { source }),
        }
    }

    /// The committed image, updated after every applied batch; starts with the image
    /// restored from the snapshot and log.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    pub fn node_id(&self) -> BrokerId {
        self.inner.node_id
    }

    /// The current leader as this node knows it.
    pub fn leader_id(&self) -> Option<BrokerId> {
        self.inner
            .raft
            .metrics()
            .borrow_watched()
            .current_leader
            .and_then(broker_id_of)
    }

    /// The Raft handle: for the RPC server (which feeds `append_entries`, `vote` and
    /// `install_full_snapshot` into it) and for metrics.
    pub fn raft(&self) -> &ControllerRaft {
        &self.inner.raft
    }

    /// Stop the Raft node and wait until RocksDB is closed, so the same directory can
    /// be opened again. Further writes fail with [`ControllerError::Fatal`].
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|source| ControllerError::Shutdown { source })?;
        // The log store (and its readers) are owned by Raft tasks that finish after
        // `shutdown` returns; RocksDB closes when the last of them drops its handle.
        let mut closed = self.inner.db_closed.clone();
        match tokio::time::timeout(RELEASE_TIMEOUT, closed.wait_for(|closed| *closed)).await {
            // `Err` from wait_for: the sender is gone, which happens only after it fired.
            Ok(_) => Ok(()),
            Err(_elapsed) => Err(ControllerError::StoreNotReleased {
                waited: RELEASE_TIMEOUT,
            }),
        }
    }
}

/// A Kafka-style cluster id: a random UUID as 22 characters of unpadded base64url.
pub fn random_cluster_id() -> String {
    base64url_nopad(uuid::Uuid::new_v4().as_bytes())
}

/// Unpadded base64url (RFC 4648 §5). Sixteen bytes do not justify a dependency.
fn base64url_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes yields k + 1 characters.
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64url_nopad(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64url_nopad(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn cluster_id_is_22_base64url_chars() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(id, random_cluster_id());
    }

    #[test]
    fn config_validation() {
        let dir = PathBuf::from("/nonexistent");
        let ok = ControllerConfig::single_voter(1, dir.clone(), "h:1".into());
        assert!(validate(&ok).is_ok());
        assert!(raft_config(&ok).is_ok());

        let mut negative = ok.clone();
        negative.node_id = -1;
        assert!(matches!(
            validate(&negative),
            Err(ConfigError::NegativeNodeId { node_id: -1 })
        ));

        let mut not_voter = ok.clone();
        not_voter.node_id = 2;
        assert!(matches!(
            validate(&not_voter),
            Err(ConfigError::NotAVoter { node_id: 2, .. })
        ));

        let mut multi = ok.clone();
        multi.voters.insert(2, "h:2".into());
        assert!(matches!(
            validate(&multi),
            Err(ConfigError::MultiVoterUnsupported { .. })
        ));

        let mut zero = ok.clone();
        zero.snapshot_every_logs = 0;
        assert!(matches!(
            validate(&zero),
            Err(ConfigError::ZeroSnapshotInterval)
        ));

        let mut timing = ok;
        timing.election_timeout_ms = (50, 40);
        assert!(matches!(
            raft_config(&timing),
            Err(ConfigError::Raft { .. })
        ));
    }
}
