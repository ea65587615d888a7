//! Broker heartbeats (KIP-631): every `broker.heartbeat.interval.ms` the
//! broker tells the controller it is alive and how far it has applied the
//! metadata (a fenced broker is unfenced once caught up). On shutdown it
//! heartbeats with `want_shut_down` until the controller reports that it
//! leads nothing any more (controlled shutdown), so leadership moves away
//! before the logs close and producers fail over without timeouts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fjord_controller::{Heartbeat, HeartbeatState};
use tokio::time::Instant;

use crate::broker::{Broker, register};

/// Between controlled-shutdown heartbeats.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

impl Broker {
    async fn broker_heartbeat(&self, want_shut_down: bool) -> Option<HeartbeatState> {
        let beat = Heartbeat {
            broker_id: self.node_id(),
            broker_epoch: self.broker_epoch(),
            metadata_offset: self.metadata().metadata_offset,
            want_shut_down,
        };
        match self.controller.heartbeat(beat).await {
            Ok(state) => Some(state),
            Err(err) => {
                tracing::debug!(%err, "broker heartbeat failed");
                None
            }
        }
    }

    pub(crate) fn spawn_heartbeats(self: &Arc<Self>) {
        let (broker, cancel) = (self.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            let mut ticks = tokio::time::interval(broker.replication.broker_heartbeat_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut fenced = false;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(state) = broker.broker_heartbeat(false).await else {
                    continue;
                };
                if state.stale_broker_epoch {
                    // The controller no longer knows this incarnation (e.g.
                    // its registration was lost): register again.
                    tracing::warn!(
                        epoch = broker.broker_epoch(),
                        "broker epoch is stale; registering again"
                    );
                    match register(&broker.config, &broker.replication, &broker.controller).await {
                        Ok(epoch) => broker.broker_epoch.store(epoch, Ordering::Relaxed),
                        Err(err) => tracing::warn!(%err, "cannot register again"),
                    }
                    continue;
                }
                if state.fenced != fenced {
                    fenced = state.fenced;
                    tracing::info!(fenced, "broker fencing changed");
                }
            }
        });
    }

    /// Controlled shutdown: ask the controller to move every leadership
    /// away, and wait (bounded by `controlled_shutdown_timeout`) until it did.
    pub async fn controlled_shutdown(&self) {
        let deadline = Instant::now() + self.replication.controlled_shutdown_timeout;
        loop {
            // Bounded as a whole: without a controller quorum a heartbeat
            // may wait for its own (longer) write timeout.
            let Ok(answer) = tokio::time::timeout_at(deadline, self.broker_heartbeat(true)).await
            else {
                tracing::warn!("controlled shutdown did not complete in time; closing anyway");
                return;
            };
            if let Some(state) = answer
                && state.shutdown_ready
            {
                // The controller fenced this broker and moved its leaderships in one
                // entry; once this broker has applied it too, clients still connected
                // are answered NOT_LEADER_OR_FOLLOWER with the new leaders.
                let node_id = self.node_id();
                let left = deadline.saturating_duration_since(Instant::now());
                self.wait_applied(left, |image| {
                    image.brokers.get(&node_id).is_none_or(|b| b.fenced)
                })
                .await;
                tracing::info!("controlled shutdown complete");
                return;
            }
            if Instant::now() + SHUTDOWN_POLL >= deadline {
                tracing::warn!("controlled shutdown did not complete in time; closing anyway");
                return;
            }
            tokio::time::sleep(SHUTDOWN_POLL).await;
        }
    }
}
