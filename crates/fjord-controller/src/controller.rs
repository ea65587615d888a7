//! The public handle: open a controller node, bring it into the quorum, propose commands
//! from any node, follow the image.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::Weak;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use fjord_rpc::AddLearnerRequest;
use fjord_rpc::HeartbeatRequest;
use fjord_rpc::WriteRequest;
use fjord_rpc::add_learner_reply;
use fjord_rpc::controller_service_client::ControllerServiceClient;
use fjord_rpc::controller_service_server::ControllerServiceServer;
use fjord_rpc::heartbeat_reply;
use fjord_rpc::write_reply;
use fjord_types::BrokerId;
use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::Fatal;
use openraft::errors::InitializeError;
use openraft::errors::RaftError;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::command::MetadataCommand;
use crate::command::MetadataError;
use crate::command::MetadataResponse;
use crate::grpc_network::GrpcNetworkFactory;
use crate::grpc_network::MAX_MESSAGE_BYTES;
use crate::grpc_network::PeerError;
use crate::grpc_network::Peers;
use crate::image::MetadataImage;
use crate::liveness::Heartbeat;
use crate::liveness::HeartbeatAction;
use crate::liveness::HeartbeatState;
use crate::liveness::Liveness;
use crate::log_store::LogStoreError;
use crate::log_store::RocksLogStore;
use crate::log_store::open_db;
use crate::service::ControllerRpc;
use crate::snapshot_store::SnapshotError;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::MetadataStateMachine;
use crate::types::ControllerNode;
use crate::types::ControllerRaft;
use crate::types::NodeId;
use crate::types::TypeConfig;
use crate::types::broker_id_of;
use crate::types::node_id_of;
use crate::unreachable::PROBE_QUEUE;
use crate::unreachable::ProbeRequest;
use crate::unreachable::run_probe;

/// Default of [`ControllerConfig::startup_timeout_ms`]: peers may come up minutes apart.
pub const DEFAULT_STARTUP_TIMEOUT_MS: u64 = 120_000;
/// Default of [`ControllerConfig::write_timeout_ms`].
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 10_000;
/// Kafka's `broker.session.timeout.ms` default.
pub const DEFAULT_BROKER_SESSION_TIMEOUT_MS: u64 = 9_000;
/// Kafka's `broker.heartbeat.interval.ms` default.
pub const DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS: u64 = 2_000;

/// How long [`Controller::shutdown`] waits for the Raft tasks to release RocksDB.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Controller::ready`] says what it is still waiting for.
const STARTUP_LOG_EVERY: Duration = Duration::from_secs(5);
/// How often [`Controller::ready`] re-checks the Raft metrics and the image.
const STARTUP_POLL: Duration = Duration::from_millis(20);
/// How often the leader looks for expired broker sessions.
const LIVENESS_TICK: Duration = Duration::from_millis(250);
/// How long one forwarded heartbeat may wait for the leader before it is retried
/// (re-routed): well below the broker session timeouts in use (Kafka's 9 s, 2.5 s in tests).
const FORWARDED_HEARTBEAT_ATTEMPT: Duration = Duration::from_millis(800);
/// Kafka's `leader.imbalance.check.interval.seconds` (300).
const LEADER_IMBALANCE_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Kafka's `leader.imbalance.per.broker.percentage` (10).
const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: u32 = 10;
/// Retry delays for forwarded requests: doubling from the first to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_millis(500);
/// How long one AddLearner request to a voter may take.
const JOIN_RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Snapshots travel as one message; give them far more than an append.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

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
    /// (Kafka's `controller.quorum.voters`). A node not in this map is a learner: it
    /// follows the log (the metadata image) but never votes.
    pub voters: BTreeMap<BrokerId, String>,
    /// This node's own controller RPC address (`host:port` that peers dial). `None` for
    /// a voter means `voters[node_id]`; a learner must set it.
    pub rpc_addr: Option<String>,
    /// Election timeout range in milliseconds (min, max).
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every_logs: u64,
    /// How long [`Controller::write`] and [`Controller::heartbeat`] keep retrying to
    /// reach a leader before giving up.
    pub write_timeout_ms: u64,
    /// How long [`Controller::ready`] waits for the quorum (a leader, the cluster id).
    pub startup_timeout_ms: u64,
    /// Kafka's `broker.session.timeout.ms`: the leader fences a broker whose last
    /// heartbeat is older than this.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `broker.heartbeat.interval.ms`: carried here for the brokers that
    /// heartbeat; the controller's early fencing waits for 1.5 intervals of silence
    /// before it believes peers that cannot reach a broker.
    pub broker_heartbeat_interval_ms: u64,
    /// Fjord-specific: fence a broker before its session expires when peers report it
    /// unreachable and the controller's own probe confirms it
    /// ([`crate::failure_detector`]). Off: only the session timeout fences.
    pub broker_fast_fencing_enable: bool,
    /// How peers are dialled: plaintext (default) or mutual TLS.
    pub peer_tls: fjord_rpc::PeerTls,
}

impl ControllerConfig {
    /// A single-voter quorum of this node with default timings.
    pub fn single_voter(node_id: BrokerId, data_dir: PathBuf, rpc_addr: String) -> Self {
        ControllerConfig {
            node_id,
            data_dir,
            voters: BTreeMap::from([(node_id, rpc_addr)]),
            rpc_addr: None,
            election_timeout_ms: (300, 600),
            heartbeat_interval_ms: 100,
            snapshot_every_logs: 1000,
            write_timeout_ms: DEFAULT_WRITE_TIMEOUT_MS,
            startup_timeout_ms: DEFAULT_STARTUP_TIMEOUT_MS,
            broker_session_timeout_ms: DEFAULT_BROKER_SESSION_TIMEOUT_MS,
            broker_heartbeat_interval_ms: DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS,
            broker_fast_fencing_enable: true,
            peer_tls: fjord_rpc::PeerTls::plaintext(),
        }
    }

    /// Whether this node votes (is in `voters`) or only follows the log.
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }
}

/// A configuration the controller cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("node id {node_id} is negative")]
    NegativeNodeId { node_id: BrokerId },
    #[error("voter id {voter} is negative")]
    NegativeVoterId { voter: BrokerId },
    #[error("no controller voters configured")]
    NoVoters,
    #[error("node {node_id} is not a voter, so it joins as a learner and needs its own rpc_addr")]
    LearnerWithoutRpcAddr { node_id: BrokerId },
    #[error("snapshot_every_logs must be > 0")]
    ZeroSnapshotInterval,
    #[error("{what} must be > 0")]
    ZeroTimeout { what: &'static str },
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
    /// The node asked is not the leader (`leader`: the one it knows of). Retried by
    /// [`Controller::write`] until its deadline.
    #[error("not the controller leader (leader: {leader:?})")]
    NotLeader { leader: Option<BrokerId> },
    /// No leader is known (an election is under way or no quorum is reachable).
    #[error("no controller leader is known")]
    NoLeader,
    /// The leader could not be reached over RPC.
    #[error("controller leader {leader:?} unreachable")]
    Unreachable {
        leader: Option<BrokerId>,
        #[source]
        source: PeerError,
    },
    /// The leader answered with a failure of its own (its Raft stopped, storage).
    #[error("controller leader {leader:?} failed the request: {message}")]
    RemoteFailed {
        leader: Option<BrokerId>,
        message: String,
    },
    /// The leader's reply made no sense (a version mismatch between nodes).
    #[error("bad reply from controller leader {leader:?}: {reason}")]
    BadReply {
        leader: Option<BrokerId>,
        reason: String,
    },
    /// Leadership changed while the write was in flight, or a forwarded write got no
    /// answer in time: it may or may not commit.
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
    #[error("initialize the controller quorum")]
    Initialize {
        #[source]
        source: RaftError<TypeConfig, InitializeError<TypeConfig>>,
    },
    /// [`Controller::ready`] gave up.
    #[error(
        "controller quorum not ready after {waited:?}: {what} (leader: {leader:?}, last error: {last_error})"
    )]
    StartupTimeout {
        waited: Duration,
        what: &'static str,
        leader: Option<BrokerId>,
        last_error: String,
    },
    /// A learner asked to join under the id of a voter with another address.
    #[error("node {node_id} is a voter; it cannot join as a learner at {rpc_addr}")]
    VoterAsLearner { node_id: NodeId, rpc_addr: String },
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

impl ControllerError {
    /// Worth retrying on (maybe another) leader: nothing was written.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            ControllerError::NotLeader { .. }
                | ControllerError::NoLeader
                | ControllerError::Unreachable { .. }
                | ControllerError::RemoteFailed { .. }
        )
    }

    /// The quorum cannot answer now (no leader, leader unreachable, outcome
    /// unknown) but may later: a caller that must get through, such as a
    /// broker registering, tries again instead of giving up.
    pub fn is_transient(&self) -> bool {
        self.is_retryable() || matches!(self, ControllerError::WriteOutcomeUnknown { .. })
    }
}

/// A controller node. Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: BrokerId,
    raft_id: NodeId,
    /// This node's own address and role.
    own: ControllerNode,
    is_voter: bool,
    /// The configured voters (the initial membership of a fresh quorum).
    members: BTreeMap<NodeId, ControllerNode>,
    write_timeout: Duration,
    startup_timeout: Duration,
    raft: ControllerRaft,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    /// Becomes true when every Raft task has dropped the log store and RocksDB closed.
    db_closed: watch::Receiver<bool>,
    peers: Peers,
    /// Broker sessions; meaningful only while this node leads. Never held across an
    /// await.
    liveness: Mutex<Liveness>,
    liveness_task: Mutex<Option<JoinHandle<()>>>,
    /// `broker_fast_fencing_enable`.
    fast_fencing: bool,
    /// Probes of suspected brokers, run by the liveness task (which owns them).
    probe_tx: mpsc::Sender<ProbeRequest>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// A config checked and turned into Raft terms.
struct Validated {
    raft_id: NodeId,
    members: BTreeMap<NodeId, ControllerNode>,
    own: ControllerNode,
    is_voter: bool,
}

fn validate(config: &ControllerConfig) -> Result<Validated, ConfigError> {
    let raft_id = node_id_of(config.node_id).ok_or(ConfigError::NegativeNodeId {
        node_id: config.node_id,
    })?;
    if config.voters.is_empty() {
        return Err(ConfigError::NoVoters);
    }
    if config.snapshot_every_logs == 0 {
        return Err(ConfigError::ZeroSnapshotInterval);
    }
    for (what, value) in [
        ("write_timeout_ms", config.write_timeout_ms),
        ("startup_timeout_ms", config.startup_timeout_ms),
        (
            "broker_session_timeout_ms",
            config.broker_session_timeout_ms,
        ),
    ] {
        if value == 0 {
            return Err(ConfigError::ZeroTimeout { what });
        }
    }
    let is_voter = config.is_voter();
    let rpc_addr = match (&config.rpc_addr, config.voters.get(&config.node_id)) {
        (Some(addr), _) => addr.clone(),
        (None, Some(addr)) => addr.clone(),
        (None, None) => {
            return Err(ConfigError::LearnerWithoutRpcAddr {
                node_id: config.node_id,
            });
        }
    };
    let members = config
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
        .collect::<Result<_, ConfigError>>()?;
    Ok(Validated {
        raft_id,
        members,
        own: ControllerNode { rpc_addr },
        is_voter,
    })
}

fn raft_config(config: &ControllerConfig) -> Result<openraft::Config, ConfigError> {
    let raft = openraft::Config {
        cluster_name: "fjord-controller".to_owned(),
        election_timeout_min: config.election_timeout_ms.0,
        election_timeout_max: config.election_timeout_ms.1,
        heartbeat_interval: config.heartbeat_interval_ms,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        // A voter that restarts, or starts after the others formed the quorum, must not
        // depose a healthy leader by bumping the term: it first asks whether it could win.
        enable_pre_vote: Some(true),
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

/// Where a request for the leader goes right now.
enum Route {
    Local,
    Forward {
        leader: Option<BrokerId>,
        addr: String,
    },
    NoLeader,
}

/// A request on its way to the leader at `addr`, with the time left for it.
pub(crate) struct Forward {
    pub(crate) client: ControllerServiceClient<Channel>,
    pub(crate) leader: Option<BrokerId>,
    pub(crate) addr: String,
    pub(crate) remaining: Duration,
}

/// Doubling retry delays, capped.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self::capped(BACKOFF_CAP)
    }

    fn capped(cap: Duration) -> Self {
        Backoff {
            next: BACKOFF_FIRST.min(cap),
            cap,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }
}

/// A reply's `int32 not_leader` / `outcome_unknown` leader hint (-1: unknown).
pub(crate) fn leader_hint(id: i32) -> Option<BrokerId> {
    (id >= 0).then_some(id)
}

/// An error with its sources, for replies that carry text.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn client_write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ControllerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ControllerError::NotLeader {
            leader: f.leader_id.and_then(broker_id_of),
        },
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            ControllerError::WriteOutcomeUnknown {
                leader: f.leader_id.and_then(broker_id_of),
            }
        }
        RaftError::APIError(source) => ControllerError::WriteRejected { source },
        RaftError::Fatal(source) => ControllerError::Fatal { source },
    }
}

impl Controller {
    /// Open RocksDB and the snapshots and build the Raft node, without waiting for
    /// anything. Serve [`Controller::rpc_service`] next, then call
    /// [`Controller::ready`]: voters must reach each other before a quorum can form.
    pub async fn open(config: ControllerConfig) -> Result<Controller, ControllerError> {
        let validated = validate(&config)?;
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

        let peers = Peers::new(config.peer_tls.clone());
        let (probe_tx, probe_rx) = mpsc::channel(PROBE_QUEUE);
        let network = GrpcNetworkFactory::new(validated.raft_id, peers.clone());
        let raft = ControllerRaft::new(
            validated.raft_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|source| ControllerError::Fatal { source })?;
        let controller = Controller {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                raft_id: validated.raft_id,
                own: validated.own,
                is_voter: validated.is_voter,
                members: validated.members,
                write_timeout: Duration::from_millis(config.write_timeout_ms),
                startup_timeout: Duration::from_millis(config.startup_timeout_ms),
                raft,
                image_rx,
                db_closed,
                peers,
                liveness: Mutex::new(Liveness::new(
                    Duration::from_millis(config.broker_session_timeout_ms),
                    Duration::from_millis(config.broker_heartbeat_interval_ms),
                )),
                liveness_task: Mutex::new(None),
                fast_fencing: config.broker_fast_fencing_enable,
                probe_tx,
            }),
        };
        let task = tokio::spawn(liveness_loop(Arc::downgrade(&controller.inner), probe_rx));
        *lock(&controller.inner.liveness_task) = Some(task);
        Ok(controller)
    }

    /// [`Controller::open`] then [`Controller::ready`], shutting the node down again if
    /// it does not get ready. Enough for a single-voter quorum, which needs no RPC
    /// server.
    pub async fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        let controller = Self::open(config).await?;
        match controller.ready().await {
            Ok(()) => Ok(controller),
            Err(e) => {
                if let Err(shutdown_err) = controller.shutdown().await {
                    tracing::warn!(error = %shutdown_err, "shutdown after failed start");
                }
                Err(e)
            }
        }
    }

    /// The gRPC service peers and brokers call (Raft traffic, forwarded writes and
    /// heartbeats, learners joining). Mount it on the node's server before
    /// [`Controller::ready`].
    pub fn rpc_service(&self) -> ControllerServiceServer<ControllerRpc> {
        ControllerServiceServer::new(ControllerRpc::new(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Join the quorum and wait until this node follows it: a voter on a fresh store
    /// initializes the quorum with the configured voters (every voter does, with the
    /// same membership; never on restart), a learner asks the voters to add it. Then
    /// wait for a leader, let the leader write `InitCluster` if the image has no cluster
    /// id, and wait until the local image has the cluster id and the committed log
    /// applied. Gives up after `startup_timeout_ms`.
    pub async fn ready(&self) -> Result<(), ControllerError> {
        let started = Instant::now();
        let deadline = started + self.inner.startup_timeout;
        if self.inner.is_voter {
            self.initialize_if_fresh().await?;
        } else {
            self.join_as_learner(deadline).await?;
        }
        self.wait_ready(deadline).await?;
        let image = self.inner.image_rx.borrow().clone();
        tracing::info!(
            node_id = self.inner.node_id,
            voter = self.inner.is_voter,
            leader = ?self.leader_id(),
            cluster_id = %image.cluster_id,
            metadata_offset = image.metadata_offset,
            took = ?started.elapsed(),
            "controller ready"
        );
        Ok(())
    }

    async fn initialize_if_fresh(&self) -> Result<(), ControllerError> {
        let raft = &self.inner.raft;
        let node_id = self.inner.raft_id;
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
            let configured: BTreeSet<NodeId> = self.inner.members.keys().copied().collect();
            if stored != configured {
                // Membership changes are not implemented yet; the stored quorum wins.
                tracing::warn!(
                    ?stored,
                    ?configured,
                    "configured voters differ from the stored quorum; using the stored quorum"
                );
            }
            tracing::info!(node_id, "controller restarting on an initialized store");
            return Ok(());
        }
        // Every voter initializes with the same membership: the membership entry is
        // identical everywhere (log index 0, no leader yet), and the election decides
        // who leads. A voter that starts after the others formed the quorum appends
        // the same entry and is then brought up to date by the leader.
        tracing::info!(
            node_id,
            voters = ?self.inner.members.keys().collect::<Vec<_>>(),
            "fresh controller store: initializing the quorum"
        );
        match raft.initialize(self.inner.members.clone()).await {
            Ok(()) => Ok(()),
            // Someone (an earlier, interrupted start, or the leader's log) already
            // initialized it.
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::info!(error = %e, "quorum already initialized");
                Ok(())
            }
            Err(source) => Err(ControllerError::Initialize { source }),
        }
    }

    /// Ask the voters (any of them; a follower names the leader) to add this node as a
    /// learner, until one leader says it did.
    async fn join_as_learner(&self, deadline: Instant) -> Result<(), ControllerError> {
        let me = self.inner.raft_id;
        let own = self.inner.own.clone();
        let known = self
            .inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&me)
            .cloned();
        if known.as_ref() == Some(&own) {
            // A restart: the quorum already replicates to this address.
            return Ok(());
        }
        let voters: Vec<(NodeId, String)> = self
            .inner
            .members
            .iter()
            .map(|(id, node)| (*id, node.rpc_addr.clone()))
            .collect();
        let mut backoff = Backoff::new();
        let mut round = 0usize;
        let mut hint: Option<String> = None;
        let mut last_error = String::from("none");
        loop {
            let followed_hint = hint.is_some();
            let addr = match hint.take() {
                Some(addr) => addr,
                None => {
                    let (_, addr) = &voters[round % voters.len()];
                    round += 1;
                    addr.clone()
                }
            };
            match self.ask_add_learner(&addr).await {
                Ok(()) => {
                    tracing::info!(node_id = me, via = %addr, rpc_addr = %own.rpc_addr, "joined the controller quorum as a learner");
                    return Ok(());
                }
                Err(ControllerError::NotLeader {
                    leader: Some(leader),
                }) if !followed_hint => {
                    hint = node_id_of(leader)
                        .and_then(|l| self.inner.members.get(&l))
                        .map(|n| n.rpc_addr.clone());
                    if hint.is_some() {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::debug!(via = %addr, error = %e, "joining as a learner");
                    last_error = error_chain(&e);
                }
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                return Err(ControllerError::StartupTimeout {
                    waited: self.inner.startup_timeout,
                    what: "no voter added this node as a learner",
                    leader: None,
                    last_error,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn ask_add_learner(&self, addr: &str) -> Result<(), ControllerError> {
        let unreachable = |source| ControllerError::Unreachable {
            leader: None,
            source,
        };
        let mut client = self.inner.peers.client(addr).map_err(unreachable)?;
        let req = AddLearnerRequest {
            node_id: self.inner.raft_id,
            rpc_addr: self.inner.own.rpc_addr.clone(),
        };
        let reply = match tokio::time::timeout(JOIN_RPC_TIMEOUT, client.add_learner(req)).await {
            Err(_elapsed) => {
                return Err(ControllerError::RemoteFailed {
                    leader: None,
                    message: format!("AddLearner to {addr} timed out"),
                });
            }
            Ok(Err(status)) => {
                return Err(unreachable(PeerError::Rpc {
                    addr: addr.to_owned(),
                    source: Box::new(status),
                }));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        match reply.outcome {
            Some(add_learner_reply::Outcome::Added(_)) => Ok(()),
            Some(add_learner_reply::Outcome::NotLeader(l)) => Err(ControllerError::NotLeader {
                leader: leader_hint(l),
            }),
            Some(add_learner_reply::Outcome::Failed(message)) => {
                Err(ControllerError::RemoteFailed {
                    leader: None,
                    message,
                })
            }
            None => Err(ControllerError::BadReply {
                leader: None,
                reason: "empty AddLearner reply".to_owned(),
            }),
        }
    }

    /// Wait for a leader, a caught-up local image and a cluster id; the leader writes
    /// `InitCluster` once it has applied its whole log and still sees no cluster id.
    async fn wait_ready(&self, deadline: Instant) -> Result<(), ControllerError> {
        let me = self.inner.raft_id;
        let mut next_log = Instant::now() + STARTUP_LOG_EVERY;
        let mut last_error = String::from("none");
        loop {
            let (leader, state, leading_caught_up, caught_up) = {
                let m = self.inner.raft.metrics().borrow_watched().clone();
                if let Err(source) = m.running_state {
                    return Err(ControllerError::Fatal { source });
                }
                let applied = m.last_applied.as_ref().map(|id| id.index());
                let committed = m.local_committed.as_ref().map(|id| id.index());
                let leading = m.state == ServerState::Leader && m.current_leader == Some(me);
                // The blank entry of the new term is last: everything committed before
                // it, including any earlier InitCluster, is in the image.
                let leading_caught_up = leading && applied == m.last_log_index;
                (
                    m.current_leader,
                    m.state,
                    leading_caught_up,
                    if leading {
                        leading_caught_up
                    } else {
                        m.current_leader.is_some() && applied >= committed
                    },
                )
            };
            let has_cluster_id = !self.inner.image_rx.borrow().cluster_id.is_empty();
            if caught_up && has_cluster_id {
                return Ok(());
            }
            if leading_caught_up && !has_cluster_id {
                let cluster_id = random_cluster_id();
                tracing::info!(%cluster_id, "initializing cluster id");
                match self
                    .write_local(MetadataCommand::InitCluster { cluster_id })
                    .await
                {
                    // Another leader's InitCluster won the race; that id stands.
                    Ok(MetadataResponse::Error(MetadataError::ClusterAlreadyInitialized {
                        ..
                    })) => {}
                    Ok(MetadataResponse::Error(source)) => {
                        return Err(ControllerError::InitClusterRejected { source });
                    }
                    Ok(_) => {}
                    Err(e) if e.is_retryable() => last_error = error_chain(&e),
                    Err(e) => return Err(e),
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ControllerError::StartupTimeout {
                    waited: self.inner.startup_timeout,
                    what: if leader.is_none() {
                        "no leader elected"
                    } else {
                        "no cluster id or log not applied"
                    },
                    leader: leader.and_then(broker_id_of),
                    last_error,
                });
            }
            if now >= next_log {
                tracing::info!(
                    node_id = me,
                    ?leader,
                    ?state,
                    has_cluster_id,
                    "waiting for the controller quorum"
                );
                next_log = now + STARTUP_LOG_EVERY;
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    /// Where the leader is, as this node knows it.
    fn route(&self) -> Route {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            Some(leader) if leader == self.inner.raft_id => Route::Local,
            Some(leader) => match m.membership_config.membership().get_node(&leader) {
                Some(node) => Route::Forward {
                    leader: broker_id_of(leader),
                    addr: node.rpc_addr.clone(),
                },
                None => Route::NoLeader,
            },
            None => Route::NoLeader,
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.raft_id)
    }

    /// Run a request on the leader: locally if this node leads, else over gRPC;
    /// retried with backoff while no leader is known or reachable, until
    /// `write_timeout_ms`.
    pub(crate) async fn on_leader<T, LF, FF>(
        &self,
        local: impl FnMut() -> LF,
        forward: impl FnMut(Forward) -> FF,
    ) -> Result<T, ControllerError>
    where
        LF: Future<Output = Result<T, ControllerError>>,
        FF: Future<Output = Result<T, ControllerError>>,
    {
        self.on_leader_retrying_within(BACKOFF_CAP, local, forward)
            .await
    }

    /// [`Controller::on_leader`] with retry delays capped at `cap`: for small,
    /// idempotent requests that must reach a new leader as soon as it is elected.
    pub(crate) async fn on_leader_retrying_within<T, LF, FF>(
        &self,
        cap: Duration,
        mut local: impl FnMut() -> LF,
        mut forward: impl FnMut(Forward) -> FF,
    ) -> Result<T, ControllerError>
    where
        LF: Future<Output = Result<T, ControllerError>>,
        FF: Future<Output = Result<T, ControllerError>>,
    {
        let deadline = Instant::now() + self.inner.write_timeout;
        let mut backoff = Backoff::capped(cap);
        loop {
            let result = match self.route() {
                Route::Local => local().await,
                Route::Forward { leader, addr } => match self.inner.peers.client(&addr) {
                    Ok(client) => {
                        forward(Forward {
                            client,
                            leader,
                            addr,
                            remaining: deadline.saturating_duration_since(Instant::now()),
                        })
                        .await
                    }
                    Err(source) => Err(ControllerError::Unreachable { leader, source }),
                },
                Route::NoLeader => Err(ControllerError::NoLeader),
            };
            match result {
                Err(e) if e.is_retryable() => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, ?delay, "controller request: retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Propose `cmd` on the leader (this node or, forwarded, another) and wait until it
    /// is committed and applied there; returns the apply result (which may be
    /// [`MetadataResponse::Error`] for a rejected command). When a local write returns
    /// `Ok`, [`Controller::image`] already shows the result; after a forwarded write
    /// this node's image catches up within a heartbeat.
    ///
    /// Retries while no leader is known or reachable, for up to `write_timeout_ms`.
    /// [`ControllerError::WriteOutcomeUnknown`] means it may or may not commit.
    /// Not cancellation-safe in the sense that a dropped future may still commit.
    pub async fn write(&self, cmd: MetadataCommand) -> Result<MetadataResponse, ControllerError> {
        let command_json =
            Bytes::from(
                serde_json::to_vec(&cmd).map_err(|e| ControllerError::BadReply {
                    leader: None,
                    reason: format!("encode command: {e}"),
                })?,
            );
        self.on_leader(
            || self.write_local(cmd.clone()),
            |to| forward_write(to, command_json.clone()),
        )
        .await
    }

    /// One attempt to write on this node's Raft (the leader, or it says who is).
    pub(crate) async fn write_local(
        &self,
        cmd: MetadataCommand,
    ) -> Result<MetadataResponse, ControllerError> {
        self.inner
            .raft
            .client_write(cmd)
            .await
            .map(|resp| resp.data)
            .map_err(client_write_error)
    }

    /// A broker's heartbeat, handled by the leader's liveness tracker (forwarded like
    /// [`Controller::write`]). The leader writes `UnfenceBroker` for a fenced broker
    /// that caught up, and `ControlledShutdown` once for `want_shut_down`.
    pub async fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatState, ControllerError> {
        self.on_leader(|| self.heartbeat_local(hb), |to| forward_heartbeat(to, hb))
            .await
    }

    pub(crate) async fn heartbeat_local(
        &self,
        hb: Heartbeat,
    ) -> Result<HeartbeatState, ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader_id(),
            });
        }
        let image = self.inner.image_rx.borrow().clone();
        let action = lock(&self.inner.liveness).heartbeat(&image, &hb, Instant::now());
        let (broker_id, broker_epoch) = (hb.broker_id, hb.broker_epoch);
        match action {
            HeartbeatAction::Stale => Ok(HeartbeatState {
                fenced: true,
                shutdown_ready: false,
                stale_broker_epoch: true,
            }),
            HeartbeatAction::None { fenced } => Ok(HeartbeatState {
                fenced,
                ..HeartbeatState::default()
            }),
            HeartbeatAction::Unfence => {
                let resp = self
                    .write_local(MetadataCommand::UnfenceBroker {
                        broker_id,
                        broker_epoch,
                    })
                    .await?;
                tracing::info!(broker_id, broker_epoch, ?resp, "broker caught up: unfence");
                Ok(HeartbeatState {
                    fenced: self.broker_fenced(broker_id),
                    ..HeartbeatState::default()
                })
            }
            HeartbeatAction::ControlledShutdown => {
                let resp = self
                    .write_local(MetadataCommand::ControlledShutdown {
                        broker_id,
                        broker_epoch,
                    })
                    .await?;
                tracing::info!(broker_id, broker_epoch, ?resp, "controlled shutdown");
                let done = !matches!(resp, MetadataResponse::Error(_));
                if done {
                    lock(&self.inner.liveness).shutdown_applied(broker_id, broker_epoch);
                }
                Ok(HeartbeatState {
                    fenced: self.broker_fenced(broker_id),
                    shutdown_ready: done,
                    stale_broker_epoch: false,
                })
            }
            HeartbeatAction::ShutdownDone => Ok(HeartbeatState {
                fenced: self.broker_fenced(broker_id),
                shutdown_ready: true,
                stale_broker_epoch: false,
            }),
        }
    }

    fn broker_fenced(&self, broker_id: BrokerId) -> bool {
        self.inner
            .image_rx
            .borrow()
            .brokers
            .get(&broker_id)
            .is_none_or(|b| b.fenced)
    }

    /// Add (or re-address) learner `id` at `rpc_addr`; only on the leader.
    pub(crate) async fn add_learner_local(
        &self,
        id: NodeId,
        rpc_addr: String,
    ) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader_id(),
            });
        }
        let node = ControllerNode { rpc_addr };
        let (existing, is_voter) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            let membership = m.membership_config.membership();
            (
                membership.get_node(&id).cloned(),
                membership.voter_ids().any(|v| v == id),
            )
        };
        let result = match existing {
            Some(n) if n == node => return Ok(()),
            Some(_) if is_voter => {
                return Err(ControllerError::VoterAsLearner {
                    node_id: id,
                    rpc_addr: node.rpc_addr,
                });
            }
            // A learner restarted on another address: replicate there from now on.
            Some(_) => {
                self.inner
                    .raft
                    .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                    .await
            }
            None => self.inner.raft.add_learner(id, node, false).await,
        };
        result.map(|_| ()).map_err(client_write_error)
    }

    /// The committed image, updated after every applied batch; starts with the image
    /// restored from the snapshot and log. Learners follow it exactly like voters: this
    /// is the metadata stream of broker-only nodes.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    pub fn node_id(&self) -> BrokerId {
        self.inner.node_id
    }

    /// Whether this node votes in the quorum (else it is a learner).
    pub fn is_voter(&self) -> bool {
        self.inner.is_voter
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

    pub(crate) fn liveness(&self) -> MutexGuard<'_, Liveness> {
        lock(&self.inner.liveness)
    }

    pub(crate) fn committed_image(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    pub(crate) fn fast_fencing(&self) -> bool {
        self.inner.fast_fencing
    }

    pub(crate) fn probe_sender(&self) -> &mpsc::Sender<ProbeRequest> {
        &self.inner.probe_tx
    }

    /// The Raft handle: for the RPC service and for metrics.
    pub fn raft(&self) -> &ControllerRaft {
        &self.inner.raft
    }

    /// Stop the Raft node and wait until RocksDB is closed, so the same directory can
    /// be opened again. Further writes fail with [`ControllerError::Fatal`].
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        if let Some(task) = lock(&self.inner.liveness_task).take() {
            task.abort();
        }
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

    /// One liveness round on the leader; `led_term` is the term this node last started
    /// leading in. Returns false once the Raft node stopped.
    async fn liveness_tick(&self, led: &mut LeaderTicks) -> bool {
        let (running, leading, term) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            (
                m.running_state.is_ok(),
                m.state == ServerState::Leader && m.current_leader == Some(self.inner.raft_id),
                m.current_term,
            )
        };
        if !running {
            return false;
        }
        if !leading {
            led.term = None;
            return true;
        }
        let image = self.inner.image_rx.borrow().clone();
        let now = Instant::now();
        if led.term != Some(term) {
            led.term = Some(term);
            led.next_rebalance = now + LEADER_IMBALANCE_CHECK_INTERVAL;
            lock(&self.inner.liveness).on_leadership(&image, now);
            return true;
        }
        if now >= led.next_rebalance {
            led.next_rebalance = now + LEADER_IMBALANCE_CHECK_INTERVAL;
            self.rebalance_preferred_leaders(&image).await;
        }
        self.fence_early(&image, now).await;
        let expired = lock(&self.inner.liveness).expired(&image, now);
        for (broker_id, broker_epoch) in expired {
            match self
                .write_local(MetadataCommand::FenceBroker {
                    broker_id,
                    broker_epoch,
                })
                .await
            {
                Ok(resp) => tracing::info!(
                    broker_id,
                    broker_epoch,
                    ?resp,
                    "broker session expired: fenced"
                ),
                Err(e) => tracing::warn!(
                    broker_id,
                    broker_epoch,
                    error = %e,
                    "broker session expired, but FenceBroker failed"
                ),
            }
        }
        true
    }
}

impl Controller {
    /// Kafka's `auto.leader.rebalance.enable`: hand leadership back to preferred
    /// replicas (live and in sync again, e.g. after a restart) once a broker's
    /// share of such partitions exceeds `leader.imbalance.per.broker.percentage`.
    async fn rebalance_preferred_leaders(&self, image: &MetadataImage) {
        let partitions = image.preferred_leader_imbalance(LEADER_IMBALANCE_PER_BROKER_PERCENTAGE);
        if partitions.is_empty() {
            return;
        }
        let count = partitions.len();
        let cmd = MetadataCommand::ElectLeaders {
            election: crate::command::ElectionType::Preferred,
            partitions: Some(partitions),
        };
        match self.write_local(cmd).await {
            Ok(_) => tracing::info!(partitions = count, "preferred leaders elected"),
            Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
        }
    }
}

/// What the periodic leader duties remember between ticks.
struct LeaderTicks {
    /// The Raft term this node last led in (a new term restarts the duties).
    term: Option<u64>,
    next_rebalance: Instant,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every [`LIVENESS_TICK`] while the controller exists; acts only while it leads. It
/// also runs the probes of suspected brokers (each bounded by its own timeout), so they
/// end with it.
async fn liveness_loop(inner: Weak<Inner>, mut probes: mpsc::Receiver<ProbeRequest>) {
    let mut ticker = tokio::time::interval(LIVENESS_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led = LeaderTicks {
        term: None,
        next_rebalance: Instant::now(),
    };
    let mut running = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if !(Controller { inner }).liveness_tick(&mut led).await {
                    return;
                }
            }
            Some(request) = probes.recv() => {
                running.spawn(run_probe(request));
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if let Ok(done) = done {
                    (Controller { inner }).probe_done(done).await;
                }
            }
        }
    }
}

async fn forward_write(
    to: Forward,
    command_json: Bytes,
) -> Result<MetadataResponse, ControllerError> {
    let Forward {
        mut client,
        leader,
        addr,
        remaining,
    } = to;
    let call = client.write(WriteRequest { command_json });
    // Timed out: the request may have reached the leader and may still commit.
    let timed_out = ControllerError::WriteOutcomeUnknown { leader };
    let reply = call_leader(leader, addr, remaining, call, timed_out).await?;
    match reply.outcome {
        Some(write_reply::Outcome::ResponseJson(json)) => {
            serde_json::from_slice(&json).map_err(|e| ControllerError::BadReply {
                leader,
                reason: format!("decode MetadataResponse: {e}"),
            })
        }
        Some(write_reply::Outcome::NotLeader(l)) => Err(ControllerError::NotLeader {
            leader: leader_hint(l),
        }),
        Some(write_reply::Outcome::OutcomeUnknown(l)) => {
            Err(ControllerError::WriteOutcomeUnknown {
                leader: leader_hint(l),
            })
        }
        Some(write_reply::Outcome::Failed(message)) => {
            Err(ControllerError::RemoteFailed { leader, message })
        }
        None => Err(ControllerError::BadReply {
            leader,
            reason: "empty Write reply".to_owned(),
        }),
    }
}

/// One forwarded call to the leader at `addr`: its reply, `timed_out` when it takes
/// longer than `timeout`, or `Unreachable` when the RPC itself failed.
pub(crate) async fn call_leader<T>(
    leader: Option<BrokerId>,
    addr: String,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    timed_out: ControllerError,
) -> Result<T, ControllerError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_elapsed) => Err(timed_out),
        Ok(Err(status)) => Err(ControllerError::Unreachable {
            leader,
            source: PeerError::Rpc {
                addr,
                source: Box::new(status),
            },
        }),
        Ok(Ok(reply)) => Ok(reply.into_inner()),
    }
}

async fn forward_heartbeat(to: Forward, hb: Heartbeat) -> Result<HeartbeatState, ControllerError> {
    let Forward {
        mut client,
        leader,
        addr,
        remaining,
    } = to;
    let call = client.broker_heartbeat(HeartbeatRequest {
        broker_id: hb.broker_id,
        broker_epoch: hb.broker_epoch,
        metadata_offset: hb.metadata_offset,
        want_shut_down: hb.want_shut_down,
    });
    // One attempt is short: a leader that stopped answering (paused, partitioned) must
    // not hold the heartbeat past the broker session timeout; the retry is routed to
    // the leader this node knows by then.
    let attempt = remaining.min(FORWARDED_HEARTBEAT_ATTEMPT);
    let timed_out = ControllerError::RemoteFailed {
        leader,
        message: "heartbeat timed out".to_owned(),
    };
    let reply = call_leader(leader, addr, attempt, call, timed_out).await?;
    match reply.outcome {
        Some(heartbeat_reply::Outcome::State(s)) => Ok(HeartbeatState {
            fenced: s.fenced,
            shutdown_ready: s.shutdown_ready,
            stale_broker_epoch: s.stale_broker_epoch,
        }),
        Some(heartbeat_reply::Outcome::NotLeader(l)) => Err(ControllerError::NotLeader {
            leader: leader_hint(l),
        }),
        Some(heartbeat_reply::Outcome::Failed(message)) => {
            Err(ControllerError::RemoteFailed { leader, message })
        }
        None => Err(ControllerError::BadReply {
            leader,
            reason: "empty BrokerHeartbeat reply".to_owned(),
        }),
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

        // A node outside the voters is a learner and must say where it listens.
        let mut learner = ok.clone();
        learner.node_id = 2;
        assert!(matches!(
            validate(&learner),
            Err(ConfigError::LearnerWithoutRpcAddr { node_id: 2 })
        ));
        learner.rpc_addr = Some("h:2".into());
        let v = validate(&learner).expect("learner with an address");
        assert!(!v.is_voter);
        assert_eq!(v.own.rpc_addr, "h:2");

        let mut multi = ok.clone();
        multi.voters.insert(2, "h:2".into());
        multi.voters.insert(3, "h:3".into());
        let v = validate(&multi).expect("three voters");
        assert!(v.is_voter);
        assert_eq!(v.members.len(), 3);
        assert_eq!(v.own.rpc_addr, "h:1");

        let mut none = ok.clone();
        none.voters.clear();
        assert!(matches!(validate(&none), Err(ConfigError::NoVoters)));

        let mut no_session = ok.clone();
        no_session.broker_session_timeout_ms = 0;
        assert!(matches!(
            validate(&no_session),
            Err(ConfigError::ZeroTimeout { .. })
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
