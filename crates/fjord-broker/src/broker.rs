//! The broker: hosts partitions, follows committed metadata, and offers
//! the operations the gateway serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fjord_controller::{Controller, Listener, MetadataCommand, MetadataImage, MetadataResponse};
use fjord_types::{BrokerId, TopicPartition};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::log_cleaner::LogCleaner;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::admin::AdminService;
use crate::authorizer::Authorizer;
use crate::config::{BrokerConfig, REPLICATION_LISTENER, ReplicationConfig};
use crate::error::BrokerError;
use crate::group_service::GroupCoordinatorAdapter;
use crate::log_dir_failure::{LogDirFailure, LogOperation};
use crate::log_dirs::LogDirs;
use crate::metadata_applier::{
    LocalReplicaChange, apply_delta, apply_image, open_pending, remove_stray_logs,
};
use crate::metadata_cache::MetadataCache;
use crate::parallel::{LOG_PASS_THREADS, map_parallel};
use crate::producer_ids::ProducerIdService;
use crate::quota::QuotaManager;
use crate::replica_manager::{ReplicaManager, now_ms};
use crate::scram_credentials::ScramCredentialStore;
use crate::scram_credentials::scram_index;
use crate::txn_service::{LocalMarkerWriter, TransactionCoordinatorAdapter, TxnAdapterParts};

pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) replication: ReplicationConfig,
    pub(crate) controller: Controller,
    pub(crate) replicas: Arc<ReplicaManager>,
    /// The image whose partitions are open locally.
    pub(crate) metadata_cache: MetadataCache,
    /// The local replica changes of each applied image (Kafka's
    /// `LocalReplicaChanges`), sent before the image is published as applied.
    pub(crate) local_changes: broadcast::Sender<LocalReplicaChanges>,
    /// This broker's epoch, from its registration (-1: unknown).
    pub(crate) broker_epoch: AtomicI64,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) admin: Arc<AdminService>,
    pub(crate) producer_ids: Arc<ProducerIdService>,
    pub(crate) groups: Arc<GroupCoordinatorAdapter>,
    /// Not reachable by clients yet (no gateway route).
    pub(crate) txns: Arc<TransactionCoordinatorAdapter>,
    /// Writes transaction markers on partitions led here.
    pub(crate) markers: Arc<LocalMarkerWriter>,
    /// ACL checks; takes up each applied image's ACLs before the image is
    /// published as applied.
    pub(crate) authorizer: Arc<Authorizer>,
    /// SCRAM credentials for SaslAuthenticate (published by the metadata follower).
    pub(crate) scram_credentials: Arc<ScramCredentialStore>,
    pub(crate) quotas: Arc<QuotaManager>,
}

/// The local replica changes of one applied image, shared by every subscriber.
pub type LocalReplicaChanges = Arc<[LocalReplicaChange]>;

/// Images a slow subscriber may fall behind before it is told it lagged
/// (then it rescans the hosted replicas, as at start).
const LOCAL_CHANGES_BACKLOG: usize = 1024;
/// How often partition logs a full disk kept from opening are retried.
const OPEN_RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Broker {
    /// A broker without replication settings (a single node): see
    /// [`Broker::start_with_replication`].
    pub async fn start(
        config: BrokerConfig,
        controller: Controller,
    ) -> Result<Arc<Broker>, BrokerError> {
        Self::start_with_replication(config, ReplicationConfig::default(), controller).await
    }

    /// Register with the controller (with the replication listener, if
    /// any), open the logs the committed metadata assigns to this broker,
    /// and start following metadata, fetching from leaders and tracking ISRs.
    pub async fn start_with_replication(
        config: BrokerConfig,
        replication: ReplicationConfig,
        controller: Controller,
    ) -> Result<Arc<Broker>, BrokerError> {
        let log_dirs = LogDirs::open(&config.log_dir).map_err(|source| BrokerError::LogDir {
            path: config.log_dir.clone(),
            source,
        })?;
        let broker_epoch = register(&config, &replication, &controller).await?;

        let failure = LogDirFailure::new(config.log_dir.clone());
        let replicas = Arc::new(ReplicaManager::new(config.node_id, failure.clone()));
        let mut committed = controller.image();
        // The local metadata replica may still be the one from before a crash: acting on
        // it would make this node lead partitions at epochs long superseded (and accept
        // writes it must truncate later). Like Kafka's brokers, replay the metadata log
        // up to this broker's own registration first: the broker epoch is its offset.
        let first = caught_up_to(&mut committed, broker_epoch).await?;
        {
            let (replicas, for_apply, first) = (replicas.clone(), config.clone(), first.clone());
            tokio::task::spawn_blocking(move || {
                let log_dirs = LogDirs::open(&for_apply.log_dir)?;
                remove_stray_logs(&replicas, &log_dirs, &first);
                apply_image(&replicas, &log_dirs, &for_apply, &first);
                Ok::<_, std::io::Error>(())
            })
            .await
            .map_err(|e| BrokerError::LogDir {
                path: config.log_dir.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| BrokerError::LogDir {
                path: config.log_dir.clone(),
                source,
            })?;
        }
        drop(log_dirs);
        if let Some(failed) = failure.first_failure() {
            return Err(BrokerError::LogDir {
                path: config.log_dir.clone(),
                source: std::io::Error::other(failed.error.clone()),
            });
        }
        let group_config = config.groups.clone();
        let authorizer = Arc::new(Authorizer::new(
            config.authorizer.clone(),
            first.acls.clone(),
        ));
        // The first image's credentials, before any connection can ask.
        let scram_credentials = Arc::new(ScramCredentialStore::default());
        scram_credentials.publish(scram_index(&first.scram));
        let quotas = Arc::new(QuotaManager::new(
            config.quotas.clone(),
            first.client_quotas.clone(),
        ));
        let (applied_tx, applied) = watch::channel(first);
        let metadata_cache = MetadataCache::new(applied);
        let admin = Arc::new(AdminService::new(
            config.clone(),
            controller.clone(),
            metadata_cache.clone(),
        ));
        let producer_ids = Arc::new(ProducerIdService::new(config.node_id, controller.clone()));
        let (local_changes, _) = broadcast::channel(LOCAL_CHANGES_BACKLOG);
        let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
        let groups = Arc::new(GroupCoordinatorAdapter::new(
            group_config,
            replicas.clone(),
            tasks.clone(),
            cancel.clone(),
            admin.clone(),
            metadata_cache.clone(),
        ));
        let markers = Arc::new(LocalMarkerWriter {
            replicas: replicas.clone(),
            groups: groups.clone(),
        });
        let txns = Arc::new(TransactionCoordinatorAdapter::new(TxnAdapterParts {
            config: config.transactions.clone(),
            node_id: config.node_id,
            replicas: replicas.clone(),
            markers: markers.clone(),
            producer_ids: producer_ids.clone(),
            admin: admin.clone(),
            metadata: metadata_cache.clone(),
            peer_tls: replication.peer_tls.clone(),
            tasks: tasks.clone(),
            cancel: cancel.clone(),
        }));
        let broker = Arc::new(Broker {
            config,
            replication,
            controller,
            replicas,
            admin,
            producer_ids,
            metadata_cache,
            local_changes,
            broker_epoch: AtomicI64::new(broker_epoch),
            cancel,
            tasks,
            groups,
            txns,
            markers,
            authorizer,
            scram_credentials,
            quotas,
        });
        broker.spawn_metadata_follower(committed, applied_tx);
        broker.spawn_housekeeping();
        broker.spawn_flusher();
        broker.spawn_log_cleaner();
        broker.spawn_group_coordinator();
        broker.spawn_transaction_coordinator();
        broker.spawn_fetcher_manager();
        broker.spawn_isr_shrinker();
        broker.spawn_silent_follower_check();
        broker.spawn_heartbeats();
        Ok(broker)
    }

    /// Follow committed metadata: apply every new image to the local logs (only
    /// the topics changed since the image applied before), then publish it as
    /// applied.
    fn spawn_metadata_follower(
        &self,
        mut committed: watch::Receiver<Arc<MetadataImage>>,
        applied_tx: watch::Sender<Arc<MetadataImage>>,
    ) {
        let replicas = self.replicas.clone();
        let config = self.config.clone();
        let cancel = self.cancel.clone();
        let local_changes = self.local_changes.clone();
        let authorizer = self.authorizer.clone();
        let scram_credentials = self.scram_credentials.clone();
        // The credentials last published into `scram_credentials`.
        let mut published_scram = applied_tx.borrow().scram.clone();
        let quotas = self.quotas.clone();
        // The image applied at start; `None` after a failed apply: walk everything.
        let mut prev = Some(applied_tx.borrow().clone());
        self.tasks.spawn(async move {
            loop {
                // A full disk kept some hosted partition's log from opening:
                // retry every second until it opens (see `open_pending`).
                let retry_opens = replicas.opens_pending() || replicas.log_dir_failure().is_full();
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(OPEN_RETRY_INTERVAL), if retry_opens => {
                        let (replicas, config) = (replicas.clone(), config.clone());
                        let image = applied_tx.borrow().clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            match LogDirs::open(&config.log_dir) {
                                Ok(log_dirs) => open_pending(&replicas, &log_dirs, &config, &image),
                                Err(err) => {
                                    let failure = replicas.log_dir_failure();
                                    failure.fail(LogOperation::MetadataApply, None, &err);
                                }
                            }
                        })
                        .await;
                        continue;
                    }
                }
                let image = committed.borrow_and_update().clone();
                let (replicas, config, for_apply, prev_applied) =
                    (replicas.clone(), config.clone(), image.clone(), prev.take());
                let applied =
                    tokio::task::spawn_blocking(move || match LogDirs::open(&config.log_dir) {
                        Ok(log_dirs) => apply_delta(
                            &replicas,
                            &log_dirs,
                            &config,
                            prev_applied.as_deref(),
                            &for_apply,
                        ),
                        Err(err) => {
                            let failure = replicas.log_dir_failure();
                            failure.fail(LogOperation::MetadataApply, None, &err);
                            Vec::new()
                        }
                    })
                    .await;
                match applied {
                    Ok(changes) => {
                        if !changes.is_empty() {
                            tracing::debug!(?changes, "local replica changes");
                            // No receiver is not an error: nobody listens yet.
                            let _ = local_changes.send(changes.into());
                        }
                        prev = Some(image.clone());
                    }
                    Err(err) => tracing::error!(%err, "metadata apply task failed"),
                }
                // Before the image: an admin call waiting for its ACLs to be
                // applied here answers only once they are enforced.
                authorizer.publish(&image.acls);
                if !Arc::ptr_eq(&published_scram, &image.scram) {
                    scram_credentials.publish(scram_index(&image.scram));
                    published_scram = image.scram.clone();
                }
                quotas.publish(&image.client_quotas);
                applied_tx.send_replace(image);
            }
        });
    }

    /// The log cleaner manager (`log.cleaner.enable`), see [`LogCleaner`].
    fn spawn_log_cleaner(&self) {
        if !self.config.log_cleaner.enable {
            return;
        }
        let cleaner = Arc::new(LogCleaner::new(
            self.replicas.clone(),
            self.config.log_cleaner.clone(),
            self.metadata_cache.clone(),
            self.config.node_id,
        ));
        self.tasks.spawn(cleaner.run(self.cancel.clone()));
    }

    /// Retention, flush policy, producer id expiry and high watermark
    /// checkpoints, on their intervals.
    fn spawn_housekeeping(&self) {
        let (replicas, cancel) = (self.replicas.clone(), self.cancel.clone());
        let (retention_every, flush_every, expiry_every, checkpoint_every) = (
            self.config.retention_check_interval,
            self.config.flush_check_interval,
            self.config.producer_id_expiration_check_interval,
            self.replication.hw_checkpoint_interval,
        );
        /// What a tick of the walk over the partitions does.
        #[derive(Clone, Copy)]
        enum Chore {
            Retention,
            Flush,
            ExpireProducers,
        }
        self.tasks.spawn(async move {
            let mut retention = tokio::time::interval(retention_every);
            let mut flush = tokio::time::interval(flush_every);
            let mut expiry = tokio::time::interval(expiry_every);
            let mut checkpoint = tokio::time::interval(checkpoint_every);
            loop {
                let chore = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = retention.tick() => Chore::Retention,
                    _ = flush.tick() => Chore::Flush,
                    _ = expiry.tick() => Chore::ExpireProducers,
                    _ = checkpoint.tick() => {
                        let replicas = replicas.clone();
                        let _ = tokio::task::spawn_blocking(move || checkpoint_high_watermarks(&replicas)).await;
                        continue;
                    }
                };
                let replicas = replicas.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    // A failure goes to the log directory's fault handler.
                    for p in replicas.all() {
                        match chore {
                            Chore::Flush => p.maybe_flush(now),
                            Chore::Retention => {
                                if let deleted @ 1.. = p.apply_retention(now) {
                                    tracing::info!(tp = %p.tp, deleted, "retention deleted segments");
                                }
                            }
                            // Kafka's removeExpiredProducers: memory only.
                            Chore::ExpireProducers => {
                                if let expired @ 1.. = p.remove_expired_producers(now) {
                                    tracing::debug!(tp = %p.tp, expired, "expired idle producer ids");
                                }
                            }
                        }
                    }
                })
                .await;
            }
        });
    }

    /// The flusher: partitions an append made a flush due on
    /// (`flush.messages` / `flush.ms`) are fsynced here, on a blocking
    /// thread, while their produces wait ([`crate::partition::FlushWait`]).
    /// Partitions queued during a pass are flushed in the next one, so one
    /// fsync covers every append that came before it (group commit).
    fn spawn_flusher(&self) {
        let (replicas, cancel) = (self.replicas.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            let queue = Arc::clone(replicas.flush_queue());
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    () = queue.wanted() => {}
                }
                let (replicas, queue) = (replicas.clone(), Arc::clone(&queue));
                let _ = tokio::task::spawn_blocking(move || {
                    for tp in queue.take() {
                        if let Some(p) = replicas.get(&tp) {
                            p.flush();
                        }
                    }
                })
                .await;
            }
        });
    }

    pub fn node_id(&self) -> BrokerId {
        self.config.node_id
    }

    /// This broker's replica of `tp`, leader or follower (its log end and
    /// high watermark, for tests and diagnostics).
    pub fn local_replica(&self, tp: &TopicPartition) -> Option<Arc<crate::partition::Partition>> {
        self.replicas.get(tp)
    }

    /// The log directory's fault handler: [`LogDirFailure::halted`] fires
    /// when the node must stop.
    pub fn log_dir_failure(&self) -> &LogDirFailure {
        self.replicas.log_dir_failure()
    }

    /// This broker's epoch from its registration (-1: unknown).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Relaxed)
    }

    pub fn replication_config(&self) -> &ReplicationConfig {
        &self.replication
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The local replica changes of every image applied from now on. A
    /// subscriber reads the hosted replicas ([`ReplicaManager::all`]) after
    /// subscribing for the state before, and rescans them when it lagged
    /// (`RecvError::Lagged`); a change may repeat what that scan saw.
    pub fn subscribe_local_changes(&self) -> broadcast::Receiver<LocalReplicaChanges> {
        self.local_changes.subscribe()
    }

    /// Topic administration, leader elections and reassignments.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// SCRAM credentials for SaslAuthenticate.
    pub fn scram_credentials(&self) -> &Arc<ScramCredentialStore> {
        &self.scram_credentials
    }

    pub fn quotas(&self) -> &Arc<QuotaManager> {
        &self.quotas
    }

    pub fn admin(&self) -> &Arc<AdminService> {
        &self.admin
    }

    /// The group APIs (the group coordinator's front).
    pub fn groups(&self) -> &Arc<GroupCoordinatorAdapter> {
        &self.groups
    }

    /// The transaction coordinator (not reachable by clients yet).
    pub fn txns(&self) -> &Arc<TransactionCoordinatorAdapter> {
        &self.txns
    }

    /// Writes transaction markers on partitions led here (WriteTxnMarkers).
    pub fn markers(&self) -> &Arc<LocalMarkerWriter> {
        &self.markers
    }

    /// Producer ids for InitProducerId.
    pub fn producer_ids(&self) -> &Arc<ProducerIdService> {
        &self.producer_ids
    }

    /// The partitions hosted here.
    pub fn replicas(&self) -> &Arc<ReplicaManager> {
        &self.replicas
    }

    /// The applied image, as a cache the services share.
    pub fn metadata_cache(&self) -> &MetadataCache {
        &self.metadata_cache
    }

    /// A handle on the controller quorum.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The metadata image whose partitions are open here.
    pub fn metadata(&self) -> Arc<MetadataImage> {
        self.metadata_cache.image()
    }

    /// Waits until the controller has unfenced this broker's current incarnation in
    /// the applied image: only then does Kafka let a (re)started broker serve clients.
    /// A restarted broker stays fenced until its first heartbeat shows it caught up
    /// with the metadata log; a new one starts unfenced.
    pub async fn wait_unfenced(&self) {
        let node_id = self.node_id();
        let mut applied = self.metadata_cache.subscribe();
        let unfenced = |image: &Arc<MetadataImage>| {
            image
                .brokers
                .get(&node_id)
                .is_some_and(|b| !b.fenced && b.broker_epoch == self.broker_epoch())
        };
        if !unfenced(&applied.borrow()) {
            tracing::info!(node_id, "waiting for the controller to unfence this broker");
        }
        // Err: the follower task ended (shutdown); nothing left to wait for.
        let _ = applied.wait_for(unfenced).await;
    }

    /// Wait until the applied image satisfies `ready`, or `timeout`.
    pub(crate) async fn wait_applied(
        &self,
        timeout: Duration,
        ready: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        self.metadata_cache.wait_for(timeout, ready).await
    }

    /// Controlled shutdown (leadership moves away first, bounded by
    /// `controlled_shutdown_timeout`), then [`close`](Self::close).
    pub async fn shutdown(&self) {
        self.controlled_shutdown().await;
        self.close().await;
    }

    /// Stop background work and close every log (flushing it). A node calls
    /// it after its controlled shutdown and once its Kafka connections are
    /// drained.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("broker tasks did not stop within 10 s");
        }
        let replicas = self.replicas.clone();
        let _ = tokio::task::spawn_blocking(move || {
            checkpoint_high_watermarks(&replicas);
            let failure = replicas.log_dir_failure();
            // Closing is mostly fsyncs: a few threads (see `parallel`).
            map_parallel(&replicas.all(), LOG_PASS_THREADS, |p| {
                // An offline directory is not touched again: its logs are
                // dropped unflushed, and recovery runs at the next start.
                if let Some(log) = p.take_log()
                    && !failure.is_offline()
                    && let Err(err) = log.close()
                {
                    failure.report(LogOperation::Close, Some(&p.tp), &err);
                }
            });
        })
        .await;
    }
}

/// Persist every partition's high watermark that moved since its last checkpoint.
fn checkpoint_high_watermarks(replicas: &ReplicaManager) {
    let _pass = replicas.hw_checkpoint_pass();
    // Three fsyncs a partition: a few threads (see `parallel`).
    map_parallel(&replicas.all(), LOG_PASS_THREADS, |p| {
        if let Some((dir, hw)) = p.hw_checkpoint_due() {
            match crate::hw_checkpoint::write(&dir, hw) {
                Ok(()) => p.hw_checkpointed(hw),
                Err(err) => {
                    replicas.log_dir_failure().report_io(
                        LogOperation::HwCheckpoint,
                        Some(&p.tp),
                        &err,
                    );
                }
            }
        }
    });
}

/// Waits until the committed image has applied the metadata log up to `offset`
/// (taking the newest image), or fails when the controller stops.
async fn caught_up_to(
    committed: &mut watch::Receiver<Arc<MetadataImage>>,
    offset: i64,
) -> Result<Arc<MetadataImage>, BrokerError> {
    let reached = |image: &Arc<MetadataImage>| {
        i64::try_from(image.metadata_offset).is_ok_and(|applied| applied >= offset)
    };
    if !reached(&committed.borrow()) {
        tracing::info!(
            registered_at = offset,
            applied = committed.borrow().metadata_offset,
            "replaying the metadata log up to this broker's registration"
        );
    }
    committed
        .wait_for(reached)
        .await
        .map_err(|_| BrokerError::MetadataClosed)?;
    Ok(committed.borrow_and_update().clone())
}

/// Pause between registration attempts while the controller quorum is unavailable.
const REGISTRATION_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Register this broker process (a new incarnation) with its listeners:
/// every advertised client listener, then the replication one; returns the
/// broker epoch the controller assigned.
pub(crate) async fn register(
    config: &BrokerConfig,
    replication: &ReplicationConfig,
    controller: &Controller,
) -> Result<i64, BrokerError> {
    let mut listeners: Vec<Listener> = config
        .advertised_listeners
        .iter()
        .map(|l| Listener {
            name: l.name.clone(),
            host: l.host.clone(),
            port: l.port,
        })
        .collect();
    if let Some(rpc) = &replication.replication_listener {
        listeners.push(Listener {
            name: REPLICATION_LISTENER.to_string(),
            host: rpc.host.clone(),
            port: rpc.port,
        });
    }
    let command = MetadataCommand::RegisterBroker {
        broker_id: config.node_id,
        incarnation_id: Uuid::new_v4(),
        listeners,
        rack: config.rack.clone(),
    };
    // Like Kafka's brokers, wait for the quorum as long as it takes: a node
    // restarted while the controllers have no quorum (a partition, most
    // voters down) registers once they have one, instead of exiting. Each
    // write already retries for the controller's write timeout; the same
    // incarnation is sent again, so a registration that did commit is
    // simply repeated.
    let mut attempts = 0u32;
    let registered = loop {
        match controller.write(command.clone()).await {
            Ok(response) => break response,
            Err(err) if err.is_transient() => {
                attempts += 1;
                tracing::warn!(
                    node_id = config.node_id,
                    attempts,
                    error = %err,
                    "broker registration: controller quorum unavailable, retrying"
                );
                tokio::time::sleep(REGISTRATION_RETRY_DELAY).await;
            }
            Err(err) => return Err(BrokerError::Register(err)),
        }
    };
    match registered {
        MetadataResponse::BrokerRegistered { broker_epoch, .. } => Ok(broker_epoch),
        other => Err(BrokerError::RegistrationRefused {
            response: format!("{other:?}"),
        }),
    }
}
