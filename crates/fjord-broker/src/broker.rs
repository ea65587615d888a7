//! The broker: hosts partitions, follows committed metadata, and offers
//! the operations the gateway serves.

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::{Controller, Listener, MetadataCommand, MetadataImage};
use fjord_types::{BrokerId, TopicPartition};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, PartitionError};
use crate::log_dirs::LogDirs;
use crate::metadata_applier::{apply_image, remove_stray_logs};
use crate::replica_manager::{ReplicaManager, now_ms};
use crate::types::{
    Acks, FetchParams, FetchResult, ListedOffset, OffsetSpec, ProducePartition, ProduceResult,
};

pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) controller: Controller,
    pub(crate) replicas: Arc<ReplicaManager>,
    /// The image whose partitions are open locally: what Metadata answers from,
    /// so a client is never told of a partition whose log is not open yet.
    applied: watch::Receiver<Arc<MetadataImage>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    pub(crate) producer_ids: crate::producer_ids::ProducerIds,
    pub(crate) group_service: crate::group_service::GroupService,
}

impl Broker {
    /// Register with the controller, open the logs the committed metadata
    /// assigns to this broker, and start following metadata.
    pub async fn start(
        config: BrokerConfig,
        controller: Controller,
    ) -> Result<Arc<Broker>, BrokerError> {
        let log_dirs = LogDirs::open(&config.log_dir).map_err(|source| BrokerError::LogDir {
            path: config.log_dir.clone(),
            source,
        })?;
        let listener = &config.advertised_listener;
        controller
            .write(MetadataCommand::RegisterBroker {
                broker_id: config.node_id,
                incarnation_id: Uuid::new_v4(),
                listeners: vec![Listener {
                    name: listener.name.clone(),
                    host: listener.host.clone(),
                    port: listener.port,
                }],
                rack: config.rack.clone(),
            })
            .await
            .map_err(BrokerError::Register)?;

        let replicas = Arc::new(ReplicaManager::new(config.node_id));
        let mut committed = controller.image();
        let first = committed.borrow_and_update().clone();
        {
            let (replicas, for_apply, first) = (replicas.clone(), config.clone(), first.clone());
            tokio::task::spawn_blocking(move || {
                let log_dirs = LogDirs::open(&for_apply.log_dir)?;
                remove_stray_logs(&log_dirs, &first, for_apply.node_id);
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
        let group_config = config.groups.clone();
        let (applied_tx, applied) = watch::channel(first);
        let broker = Arc::new(Broker {
            config,
            controller,
            replicas,
            applied,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            producer_ids: Default::default(),
            group_service: crate::group_service::GroupService::new(group_config),
        });
        broker.spawn_metadata_follower(committed, applied_tx);
        broker.spawn_housekeeping();
        broker.spawn_group_timer();
        Ok(broker)
    }

    /// Follow committed metadata: apply every new image to the local logs,
    /// then publish it as applied.
    fn spawn_metadata_follower(
        &self,
        mut committed: watch::Receiver<Arc<MetadataImage>>,
        applied_tx: watch::Sender<Arc<MetadataImage>>,
    ) {
        let replicas = self.replicas.clone();
        let config = self.config.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                }
                let image = committed.borrow_and_update().clone();
                let (replicas, config, for_apply) =
                    (replicas.clone(), config.clone(), image.clone());
                let applied =
                    tokio::task::spawn_blocking(move || match LogDirs::open(&config.log_dir) {
                        Ok(log_dirs) => apply_image(&replicas, &log_dirs, &config, &for_apply),
                        Err(err) => tracing::error!(%err, "cannot open log directory"),
                    })
                    .await;
                if let Err(err) = applied {
                    tracing::error!(%err, "metadata apply task failed");
                }
                applied_tx.send_replace(image);
            }
        });
    }

    /// The group coordinator's timer (session and rebalance timeouts, offset expiry).
    fn spawn_group_timer(self: &Arc<Self>) {
        let (broker, cancel) = (self.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = broker.run_group_timer() => {}
            }
        });
    }

    /// Retention and flush policy, on their intervals.
    fn spawn_housekeeping(&self) {
        let (replicas, cancel) = (self.replicas.clone(), self.cancel.clone());
        let (retention_every, flush_every) = (
            self.config.retention_check_interval,
            self.config.flush_check_interval,
        );
        self.tasks.spawn(async move {
            let mut retention = tokio::time::interval(retention_every);
            let mut flush = tokio::time::interval(flush_every);
            loop {
                let retention_due = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = retention.tick() => true,
                    _ = flush.tick() => false,
                };
                let replicas = replicas.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    for p in replicas.all() {
                        let outcome = if retention_due {
                            p.apply_retention(now).map(|deleted| {
                                if deleted > 0 {
                                    tracing::info!(tp = %p.tp, deleted, "retention deleted segments");
                                }
                            })
                        } else {
                            p.maybe_flush(now)
                        };
                        if let Err(err) = outcome {
                            tracing::error!(tp = %p.tp, %err, "log maintenance failed");
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

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The metadata image whose partitions are open here.
    pub fn metadata(&self) -> Arc<MetadataImage> {
        self.applied.borrow().clone()
    }

    /// Wait until the applied image satisfies `ready`, or `timeout`.
    pub(crate) async fn wait_applied(
        &self,
        timeout: Duration,
        ready: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn controller_id(&self) -> Option<BrokerId> {
        self.controller.leader_id()
    }

    pub async fn produce(
        &self,
        requests: Vec<ProducePartition>,
        acks: Acks,
        timeout: Duration,
    ) -> Vec<ProduceResult> {
        self.replicas.produce(requests, acks, timeout).await
    }

    pub async fn fetch(&self, params: FetchParams) -> Vec<FetchResult> {
        self.replicas.fetch(params).await
    }

    pub fn list_offset(
        &self,
        tp: &TopicPartition,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, PartitionError> {
        self.replicas.list_offset(tp, spec)
    }

    /// Stop background work and close every log (flushing it).
    pub async fn shutdown(&self) {
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
            for p in replicas.all() {
                if let Some(log) = p.take_log()
                    && let Err(err) = log.close()
                {
                    tracing::error!(tp = %p.tp, %err, "cannot close partition log");
                }
            }
        })
        .await;
    }
}
