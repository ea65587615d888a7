//! Telling the controller at once that a partition leader cannot be reached, so a
//! killed leader is fenced (and its partitions get new leaders) without waiting for its
//! broker session to expire. The controller decides what a report means
//! (`fjord_controller`'s failure detector probes the leader's port itself); a report
//! is only a hint, sent again while fetches keep failing.

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::UnreachableReport;
use fjord_types::BrokerId;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::broker::Broker;

/// At most one report per leader this often (a fetcher fails every back-off, 100 ms at
/// first): enough to keep the controller's suspicion fresh, not a flood.
const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// One report, including the retries to reach the controller leader (an election may be
/// going on when the dead node was also the controller leader).
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// One fetcher's reports about its leader: one in flight at a time.
#[derive(Default)]
pub(crate) struct UnreachableReporter {
    in_flight: Option<JoinHandle<()>>,
    last_sent: Option<Instant>,
}

impl UnreachableReporter {
    /// The fetch from `leader` failed at the transport level.
    pub(crate) fn report(&mut self, broker: &Arc<Broker>, leader: BrokerId) {
        if self.in_flight.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let now = Instant::now();
        if self
            .last_sent
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_REPORT_INTERVAL)
        {
            return;
        }
        let image = broker.metadata();
        let Some(target) = image.brokers.get(&leader) else {
            return;
        };
        if target.fenced {
            return;
        }
        let report = UnreachableReport {
            reporter_id: broker.node_id(),
            reporter_epoch: broker.broker_epoch(),
            broker_id: leader,
            broker_epoch: target.broker_epoch,
        };
        self.last_sent = Some(now);
        let (b, cancel) = (broker.clone(), broker.cancel.clone());
        // Owned by the broker's task tracker: shutdown cancels and drains it.
        self.in_flight = Some(broker.tasks.spawn(async move {
            let sent = tokio::time::timeout(REPORT_TIMEOUT, b.controller.report_unreachable(report));
            tokio::select! {
                _ = cancel.cancelled() => {}
                outcome = sent => match outcome {
                    Ok(Ok(())) => tracing::debug!(leader, "reported unreachable leader"),
                    Ok(Err(err)) => tracing::debug!(leader, %err, "unreachability report failed"),
                    Err(_) => tracing::debug!(leader, "unreachability report timed out"),
                },
            }
        }));
    }
}
