//! Telling the controller at once that a peer cannot be reached, so a killed broker is
//! fenced (its partitions get new leaders, it leaves every ISR) without waiting for its
//! broker session to expire. Two sources: a follower whose fetches from a leader fail at
//! the transport level, and a leader whose ISR follower stopped fetching. The controller decides what a report
//! means (`fjord_controller`'s failure detector probes the peer's port itself); a report
//! is only a hint, sent again while the trouble lasts.

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

/// Reports about one peer: one in flight at a time.
#[derive(Default)]
pub(crate) struct UnreachableReporter {
    in_flight: Option<JoinHandle<()>>,
    last_sent: Option<Instant>,
}

impl UnreachableReporter {
    /// `peer` could not be reached (a fetch from it failed, or its fetch stream broke).
    pub(crate) fn report(&mut self, broker: &Arc<Broker>, peer: BrokerId) {
        if broker.cancel.is_cancelled() {
            return;
        }
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
        let Some(target) = image.brokers.get(&peer) else {
            return;
        };
        if target.fenced {
            return;
        }
        let report = UnreachableReport {
            reporter_id: broker.node_id(),
            reporter_epoch: broker.broker_epoch(),
            broker_id: peer,
            broker_epoch: target.broker_epoch,
        };
        self.last_sent = Some(now);
        let (b, cancel) = (broker.clone(), broker.cancel.clone());
        // Owned by the broker's task tracker: shutdown cancels and drains it.
        self.in_flight = Some(broker.tasks.spawn(async move {
            let sent =
                tokio::time::timeout(REPORT_TIMEOUT, b.controller.report_unreachable(report));
            tokio::select! {
                _ = cancel.cancelled() => {}
                outcome = sent => match outcome {
                    Ok(Ok(())) => tracing::debug!(peer, "reported unreachable peer"),
                    Ok(Err(err)) => tracing::debug!(peer, %err, "unreachability report failed"),
                    Err(_) => tracing::debug!(peer, "unreachability report timed out"),
                },
            }
        }));
    }
}

/// How often a leader looks for ISR followers that stopped fetching.
const SILENT_CHECK_EVERY: Duration = Duration::from_millis(250);
/// A follower long-polls for at most `replica.fetch.wait.max.ms` and sends its next fetch
/// at once; silent for that plus this much, it is not fetching any more.
const SILENT_SLACK: Duration = Duration::from_millis(500);

impl Broker {
    /// The leader side: every [`SILENT_CHECK_EVERY`], report ISR followers of partitions
    /// led here that have not fetched for `replica.fetch.wait.max.ms` + 500 ms. This is
    /// how a killed broker that leads nothing is noticed: the partitions it follows wait
    /// for it (acks=all) until it is fenced or leaves the ISR.
    pub(crate) fn spawn_silent_follower_check(self: &Arc<Self>) {
        let silent = self.replication.replica_fetch_wait_max + SILENT_SLACK;
        let silent_ms = i64::try_from(silent.as_millis()).unwrap_or(i64::MAX);
        let (broker, cancel) = (self.clone(), self.cancel.clone());
        self.tasks.spawn(async move {
            let mut reporters: std::collections::HashMap<BrokerId, UnreachableReporter> =
                std::collections::HashMap::new();
            let mut ticks = tokio::time::interval(SILENT_CHECK_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = crate::replica_manager::now_ms();
                let mut silent_followers = std::collections::BTreeSet::new();
                for partition in broker.replicas.all() {
                    silent_followers.extend(partition.silent_isr_followers(now, silent_ms));
                }
                for follower in silent_followers {
                    reporters
                        .entry(follower)
                        .or_default()
                        .report(&broker, follower);
                }
            }
        });
    }
}
