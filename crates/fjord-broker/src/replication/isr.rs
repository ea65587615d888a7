//! ISR changes: proposed to the controller as AlterPartition, at most one in
//! flight per partition (the partition's `LeaderState::pending`), effective
//! once committed and applied here.

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::{MetadataCommand, MetadataResponse};

use crate::broker::Broker;
use crate::leader_state::IsrProposal;
use crate::partition::Partition;
use crate::replica_manager::now_ms;

/// After a rejected or failed proposal, wait this long before allowing the
/// next, so a leader whose metadata lags does not flood the controller.
const RETRY_AFTER: Duration = Duration::from_millis(500);

impl Broker {
    /// Send `proposal` (already marked pending on `partition`) to the controller.
    pub(crate) fn propose_isr(self: &Arc<Self>, partition: Arc<Partition>, proposal: IsrProposal) {
        let broker = self.clone();
        // The committed ISR size the proposal departs from: whether it
        // shrinks or expands the ISR, for the metrics.
        let isr_before = partition.assignment().isr.len();
        self.tasks.spawn(async move {
            let cmd = MetadataCommand::AlterPartition {
                broker_id: broker.node_id(),
                broker_epoch: broker.broker_epoch(),
                topic_id: partition.topic_id,
                partition: partition.tp.partition,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.new_isr.clone(),
            };
            tracing::info!(tp = %partition.tp, isr = ?proposal.new_isr, partition_epoch = proposal.partition_epoch, "proposing ISR change");
            let outcome = tokio::select! {
                _ = broker.cancel.cancelled() => return,
                outcome = broker.controller.write(cmd) => outcome,
            };
            match outcome {
                // Committed: the pending mark clears when this broker
                // applies the image with the new partition epoch.
                Ok(MetadataResponse::PartitionAltered { isr, partition_epoch, .. }) => {
                    tracing::info!(tp = %partition.tp, ?isr, partition_epoch, "ISR change committed");
                    match isr.len().cmp(&isr_before) {
                        std::cmp::Ordering::Less => fjord_metrics::ISR_SHRINKS.inc(),
                        std::cmp::Ordering::Greater => fjord_metrics::ISR_EXPANDS.inc(),
                        std::cmp::Ordering::Equal => {}
                    }
                    return;
                }
                Ok(MetadataResponse::Error(err)) => {
                    tracing::info!(tp = %partition.tp, %err, "ISR change rejected");
                }
                Ok(other) => {
                    tracing::warn!(tp = %partition.tp, ?other, "unexpected answer to AlterPartition");
                }
                Err(err) => {
                    tracing::warn!(tp = %partition.tp, %err, "cannot propose ISR change");
                }
            }
            tokio::select! {
                _ = broker.cancel.cancelled() => {}
                _ = tokio::time::sleep(RETRY_AFTER) => partition.clear_pending_isr(&proposal),
            }
        });
    }

    /// Every `replica.lag.time.max.ms / 2`, propose removing followers that
    /// have not caught up within `replica.lag.time.max.ms` (Kafka's
    /// `maybeShrinkIsr` schedule).
    pub(crate) fn spawn_isr_shrinker(self: &Arc<Self>) {
        let lag = self.replication.replica_lag_time_max;
        let lag_ms = lag.as_millis() as i64;
        let every = (lag / 2).max(Duration::from_millis(10));
        let (broker, cancel) = (self.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = now_ms();
                for partition in broker.replicas.all() {
                    if let Some(proposal) = partition.maybe_shrink_isr(now, lag_ms) {
                        broker.propose_isr(partition, proposal);
                    }
                }
            }
        });
    }
}
