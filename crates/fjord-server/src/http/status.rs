//! [`NodeStatus`]: what the HTTP endpoints know about the node while it
//! starts, serves and stops, and the readiness rule over it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use fjord_broker::Broker;
use fjord_controller::Controller;
use tokio_util::sync::CancellationToken;

/// Filled in by node start-up as each part comes up; read by the HTTP
/// handlers without locks.
pub struct NodeStatus {
    node_id: fjord_types::BrokerId,
    /// The node runs a broker (else it is controller-only).
    is_broker: bool,
    controller: OnceLock<Controller>,
    broker: OnceLock<Arc<Broker>>,
    /// The Kafka listener accepts connections.
    kafka_serving: AtomicBool,
    /// The node began its graceful stop (it is no longer ready).
    stopping: AtomicBool,
    /// Fired by `GET /shutdown`: the owner of the node stops it.
    stop_requested: CancellationToken,
    /// Fired once the broker's controlled shutdown finished (at once for a
    /// controller-only node), which is what `GET /shutdown` waits for.
    controlled_shutdown_done: CancellationToken,
}

/// Why a node is not ready (what `/readyz` answers with 503).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("shutting down")]
    Stopping,
    #[error("controller: not started")]
    ControllerStarting,
    #[error("controller: the Raft node stopped on a fatal error")]
    ControllerFailed,
    #[error("controller: no quorum leader known")]
    NoQuorumLeader,
    #[error("controller: metadata log applied to {applied:?}, committed to {committed:?}")]
    ControllerBehind {
        applied: Option<u64>,
        committed: Option<u64>,
    },
    #[error("broker: not registered with the controller")]
    NotRegistered,
    #[error("broker: metadata applied up to offset {applied}, registration is at {registered_at}")]
    MetadataBehind { applied: u64, registered_at: i64 },
    #[error("broker: fenced by the controller (no heartbeat accepted yet)")]
    Fenced,
    #[error("kafka listener: not serving yet")]
    KafkaNotServing,
}

impl NodeStatus {
    pub fn new(node_id: fjord_types::BrokerId, is_broker: bool) -> Self {
        NodeStatus {
            node_id,
            is_broker,
            controller: OnceLock::new(),
            broker: OnceLock::new(),
            kafka_serving: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop_requested: CancellationToken::new(),
            controlled_shutdown_done: CancellationToken::new(),
        }
    }

    pub fn controller_started(&self, controller: Controller) {
        let _ = self.controller.set(controller);
    }

    pub fn broker_started(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    pub fn kafka_serving(&self) {
        self.kafka_serving.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn controlled_shutdown_finished(&self) {
        self.controlled_shutdown_done.cancel();
    }

    /// Fires when `GET /shutdown` asked the node to stop.
    pub fn stop_requested(&self) -> &CancellationToken {
        &self.stop_requested
    }

    pub(crate) fn controlled_shutdown_done(&self) -> &CancellationToken {
        &self.controlled_shutdown_done
    }

    pub fn controller(&self) -> Option<&Controller> {
        self.controller.get()
    }

    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }

    /// Ready for traffic, or the first condition that fails.
    ///
    /// A broker node is ready when it is registered (broker epoch known),
    /// has applied the metadata log up to its own registration (everything
    /// the controller had committed when it registered), is unfenced, its
    /// controller follows a quorum leader, and the Kafka listener serves. A
    /// controller-only node is ready when the quorum has a leader and it
    /// applied everything it knows to be committed.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.stopping.load(Ordering::Relaxed) || self.stop_requested.is_cancelled() {
            return Err(NotReady::Stopping);
        }
        let controller = self.controller().ok_or(NotReady::ControllerStarting)?;
        let raft = controller.raft_status();
        if raft.failed {
            return Err(NotReady::ControllerFailed);
        }
        if raft.leader.is_none() {
            return Err(NotReady::NoQuorumLeader);
        }
        if !self.is_broker {
            return if raft.caught_up() {
                Ok(())
            } else {
                Err(NotReady::ControllerBehind {
                    applied: raft.last_applied,
                    committed: raft.committed,
                })
            };
        }
        let broker = self.broker().ok_or(NotReady::NotRegistered)?;
        let registered_at = broker.broker_epoch();
        if registered_at < 0 {
            return Err(NotReady::NotRegistered);
        }
        let image = broker.metadata();
        // The broker epoch is the metadata offset of the registration record.
        if i64::try_from(image.metadata_offset).unwrap_or(i64::MAX) < registered_at {
            return Err(NotReady::MetadataBehind {
                applied: image.metadata_offset,
                registered_at,
            });
        }
        if image.brokers.get(&self.node_id).is_none_or(|b| b.fenced) {
            return Err(NotReady::Fenced);
        }
        if !self.kafka_serving.load(Ordering::Relaxed) {
            return Err(NotReady::KafkaNotServing);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fjord_broker::BrokerConfig;
    use fjord_controller::ControllerConfig;

    use super::*;

    /// The readiness rule walks start-up in order, with a real single-voter
    /// controller and broker: each step clears one condition.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_follows_start_up_and_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            ControllerConfig::single_voter(1, dir.path().join("controller"), "127.0.0.1:1".into());
        let controller = Controller::start(config).await.expect("controller");

        // A controller-only node: ready once its controller leads and applied the log.
        let controller_only = NodeStatus::new(1, false);
        assert_eq!(
            controller_only.readiness(),
            Err(NotReady::ControllerStarting)
        );
        controller_only.controller_started(controller.clone());
        assert_eq!(controller_only.readiness(), Ok(()));

        // A broker node also needs its registration, an unfenced broker and the listener.
        let node = NodeStatus::new(1, true);
        node.controller_started(controller.clone());
        assert_eq!(node.readiness(), Err(NotReady::NotRegistered));
        let broker_config = BrokerConfig::new(1, dir.path().join("logs"), "127.0.0.1".into(), 9092);
        let broker = Broker::start(broker_config, controller.clone())
            .await
            .expect("broker");
        node.broker_started(broker.clone());
        assert_eq!(node.readiness(), Err(NotReady::KafkaNotServing));
        node.kafka_serving();
        assert_eq!(node.readiness(), Ok(()));

        // Stopping: neither is ready any more; /shutdown's request counts too.
        node.stopping();
        assert_eq!(node.readiness(), Err(NotReady::Stopping));
        controller_only.stop_requested().cancel();
        assert_eq!(controller_only.readiness(), Err(NotReady::Stopping));
        assert!(
            NotReady::MetadataBehind {
                applied: 3,
                registered_at: 5
            }
            .to_string()
            .contains("offset 3, registration is at 5")
        );

        broker.shutdown().await;
        controller.shutdown().await.expect("controller shutdown");
    }
}
