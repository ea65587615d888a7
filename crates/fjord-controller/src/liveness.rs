//! Broker liveness on the active controller (Kafka KRaft's `BrokerHeartbeatManager`):
//! who heartbeated when, whom to fence, and what a heartbeat asks for.
//!
//! Plain code over an explicit `now`, so every rule is unit-tested without clocks or
//! Raft. The controller feeds it heartbeats and leadership changes and turns its
//! decisions into [`MetadataCommand`](crate::MetadataCommand)s; the tracker itself
//! never writes anything. It is leader-local, soft state: a new leader starts from
//! scratch and gives every registered broker a full session timeout of grace.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use fjord_types::BrokerId;

use crate::failure_detector::FailureDetector;
use crate::failure_detector::FastFence;
use crate::failure_detector::ProbeOutcome;
use crate::failure_detector::ReportAction;
use crate::image::MetadataImage;

/// A broker's periodic heartbeat (Kafka's BrokerHeartbeatRequest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker_id: BrokerId,
    /// The epoch the broker got from its registration.
    pub broker_epoch: i64,
    /// The metadata offset the broker has applied: it is unfenced only once caught up
    /// to its own registration.
    pub metadata_offset: u64,
    /// The broker is stopping: move its leaderships away first (controlled shutdown).
    pub want_shut_down: bool,
}

/// The controller's answer to a heartbeat (Kafka's BrokerHeartbeatResponse flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatState {
    /// The broker may not lead partitions (yet, or any more).
    pub fenced: bool,
    /// Controlled shutdown is done: the broker leads nothing it could hand over and
    /// may stop.
    pub shutdown_ready: bool,
    /// The epoch is not the broker's registered one (or the broker is unknown): it
    /// must register again.
    pub stale_broker_epoch: bool,
}

/// What a heartbeat requires of the quorum, decided from the image alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeartbeatAction {
    /// Unknown broker or not its current epoch.
    Stale,
    /// Nothing to write; answer with the image's fencing state.
    None { fenced: bool },
    /// A fenced broker has caught up: write `UnfenceBroker`.
    Unfence,
    /// The broker asked to shut down and it was not yet written: write
    /// `ControlledShutdown`.
    ControlledShutdown,
    /// Controlled shutdown for this epoch was already applied.
    ShutdownDone,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    broker_epoch: i64,
    last_seen: Instant,
    /// A `FenceBroker` was written for this session; do not write it again until the
    /// broker heartbeats (then it is either unfenced or stays fenced anyway).
    fence_written: bool,
}

/// Per-broker heartbeat sessions of the current leadership term.
#[derive(Debug)]
pub(crate) struct Liveness {
    session_timeout: Duration,
    sessions: BTreeMap<BrokerId, Session>,
    /// Brokers (by id and epoch) whose controlled shutdown has been applied; they stay
    /// fenced even if they keep heartbeating, until they register again.
    shut_down: BTreeSet<(BrokerId, i64)>,
    /// Peers' unreachability reports and the controller's probes: fencing a dead broker
    /// before its session expires.
    detector: FailureDetector,
}

impl Liveness {
    pub(crate) fn new(session_timeout: Duration, heartbeat_interval: Duration) -> Self {
        Liveness {
            session_timeout,
            sessions: BTreeMap::new(),
            shut_down: BTreeSet::new(),
            detector: FailureDetector::new(heartbeat_interval),
        }
    }

    /// This node just became the leader: forget the previous term's sessions and give
    /// every registered broker a fresh session timeout, since nobody observed their
    /// heartbeats while another node led.
    pub(crate) fn on_leadership(&mut self, image: &MetadataImage, now: Instant) {
        self.sessions = image
            .brokers
            .values()
            .map(|b| {
                (
                    b.broker_id,
                    Session {
                        broker_epoch: b.broker_epoch,
                        last_seen: now,
                        fence_written: false,
                    },
                )
            })
            .collect();
        self.shut_down.clear();
        self.detector.reset();
    }

    /// Classify a heartbeat against the committed image, and record it as a sign of
    /// life if it is from the broker's current incarnation.
    pub(crate) fn heartbeat(
        &mut self,
        image: &MetadataImage,
        hb: &Heartbeat,
        now: Instant,
    ) -> HeartbeatAction {
        let Some(reg) = image.brokers.get(&hb.broker_id) else {
            return HeartbeatAction::Stale;
        };
        if reg.broker_epoch != hb.broker_epoch {
            return HeartbeatAction::Stale;
        }
        self.sessions.insert(
            hb.broker_id,
            Session {
                broker_epoch: hb.broker_epoch,
                last_seen: now,
                fence_written: false,
            },
        );
        self.detector.heartbeat(hb.broker_id, hb.broker_epoch);
        let shut_down = self.shut_down.contains(&(hb.broker_id, hb.broker_epoch));
        if hb.want_shut_down {
            return if shut_down {
                HeartbeatAction::ShutdownDone
            } else {
                HeartbeatAction::ControlledShutdown
            };
        }
        // Kafka unfences only a broker that has replayed the metadata log at least up
        // to its own registration: before that it does not know its partitions.
        let caught_up = u64::try_from(hb.broker_epoch).is_ok_and(|e| hb.metadata_offset >= e);
        if reg.fenced && !shut_down && caught_up {
            HeartbeatAction::Unfence
        } else {
            HeartbeatAction::None { fenced: reg.fenced }
        }
    }

    /// `ControlledShutdown` for this broker epoch has been committed and applied.
    pub(crate) fn shutdown_applied(&mut self, broker_id: BrokerId, broker_epoch: i64) {
        self.shut_down.insert((broker_id, broker_epoch));
    }

    /// Unfenced brokers whose session expired at `now`, as `(broker_id, broker_epoch)`
    /// to fence. Each is returned once per session: the caller writes `FenceBroker`.
    /// A broker registered after this term began gets its grace period from the first
    /// time it is seen here.
    pub(crate) fn expired(&mut self, image: &MetadataImage, now: Instant) -> Vec<(BrokerId, i64)> {
        // Sessions of brokers that re-registered (new epoch) or are gone are stale.
        self.sessions.retain(|id, s| {
            image
                .brokers
                .get(id)
                .is_some_and(|b| b.broker_epoch == s.broker_epoch)
        });
        let mut out = Vec::new();
        for reg in image.brokers.values() {
            let session = self.sessions.entry(reg.broker_id).or_insert(Session {
                broker_epoch: reg.broker_epoch,
                last_seen: now,
                fence_written: false,
            });
            if reg.fenced || session.fence_written {
                continue;
            }
            if now.saturating_duration_since(session.last_seen) > self.session_timeout {
                session.fence_written = true;
                out.push((reg.broker_id, reg.broker_epoch));
            }
        }
        out
    }
}

impl Liveness {
    /// `reporter` cannot reach `broker_id`; see [`FailureDetector::report`].
    pub(crate) fn report_unreachable(
        &mut self,
        image: &MetadataImage,
        report: &UnreachableReport,
        now: Instant,
    ) -> ReportAction {
        self.detector.report(
            image,
            report.reporter_id,
            report.reporter_epoch,
            report.broker_id,
            report.broker_epoch,
            now,
        )
    }

    /// The controller's own probe of a suspect came back.
    pub(crate) fn probe_done(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        started: Instant,
        outcome: ProbeOutcome,
        now: Instant,
    ) -> ReportAction {
        self.detector
            .probe_done(broker_id, broker_epoch, started, outcome, now)
    }

    /// Brokers to fence before their session expires (each incarnation once); their
    /// sessions count as fenced, so the session timeout does not write it again.
    pub(crate) fn fast_fences(&mut self, image: &MetadataImage, now: Instant) -> Vec<FastFence> {
        let sessions = &self.sessions;
        let out = self.detector.decide(
            image,
            |id| {
                sessions
                    .get(&id)
                    .filter(|s| {
                        image
                            .brokers
                            .get(&id)
                            .is_some_and(|b| b.broker_epoch == s.broker_epoch)
                    })
                    .map(|s| s.last_seen)
            },
            now,
        );
        for f in &out {
            if let Some(s) = self.sessions.get_mut(&f.broker_id)
                && s.broker_epoch == f.broker_epoch
            {
                s.fence_written = true;
            }
        }
        out
    }
}

/// A broker's report that it cannot reach another broker (its replica fetches from that
/// partition leader fail at the transport level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreachableReport {
    pub reporter_id: BrokerId,
    /// The reporter's registered epoch (reports of a stale or fenced reporter are ignored).
    pub reporter_epoch: i64,
    /// The broker it cannot reach, and that broker's epoch as the reporter knows it.
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::brokers_image as image;

    const TIMEOUT: Duration = Duration::from_millis(9000);
    const HB: Duration = Duration::from_millis(2000);

    fn hb(broker_id: BrokerId, broker_epoch: i64, metadata_offset: u64) -> Heartbeat {
        Heartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down: false,
        }
    }

    #[test]
    fn new_leader_gives_every_broker_a_full_grace_period() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false), (2, 20, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        assert!(l.expired(&img, t0 + TIMEOUT).is_empty());
        assert_eq!(
            l.expired(&img, t0 + TIMEOUT + Duration::from_millis(1)),
            vec![(1, 10), (2, 20)]
        );
    }

    #[test]
    fn heartbeats_keep_a_session_alive_and_fencing_is_written_once() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false), (2, 20, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            l.heartbeat(&img, &hb(1, 10, 10), t1),
            HeartbeatAction::None { fenced: false }
        );
        let t2 = t0 + Duration::from_secs(10);
        assert_eq!(l.expired(&img, t2), vec![(2, 20)]);
        // Not again while the image does not show it fenced yet.
        assert!(l.expired(&img, t2 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            l.expired(&img, t1 + TIMEOUT + Duration::from_millis(1)),
            vec![(1, 10)]
        );
    }

    #[test]
    fn fenced_broker_is_unfenced_only_when_caught_up() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, true)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        assert_eq!(
            l.heartbeat(&img, &hb(1, 10, 9), t0),
            HeartbeatAction::None { fenced: true }
        );
        assert_eq!(
            l.heartbeat(&img, &hb(1, 10, 10), t0),
            HeartbeatAction::Unfence
        );
        // Fenced brokers are never fenced again.
        assert!(l.expired(&img, t0 + TIMEOUT * 2).is_empty());
    }

    #[test]
    fn stale_epoch_and_unknown_broker() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        assert_eq!(
            l.heartbeat(&img, &hb(1, 9, 100), t0),
            HeartbeatAction::Stale
        );
        assert_eq!(
            l.heartbeat(&img, &hb(7, 1, 100), t0),
            HeartbeatAction::Stale
        );
        // A stale heartbeat is no sign of life of the current incarnation.
        assert_eq!(
            l.expired(&img, t0 + TIMEOUT + Duration::from_millis(1)),
            vec![(1, 10)]
        );
    }

    #[test]
    fn controlled_shutdown_once_then_done_and_stays_fenced() {
        let t0 = Instant::now();
        let mut img = image(&[(1, 10, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        let shutdown = Heartbeat {
            want_shut_down: true,
            ..hb(1, 10, 10)
        };
        assert_eq!(
            l.heartbeat(&img, &shutdown, t0),
            HeartbeatAction::ControlledShutdown
        );
        l.shutdown_applied(1, 10);
        img.brokers.get_mut(&1).expect("broker").fenced = true;
        assert_eq!(
            l.heartbeat(&img, &shutdown, t0),
            HeartbeatAction::ShutdownDone
        );
        // Heartbeating on without want_shut_down does not unfence it.
        assert_eq!(
            l.heartbeat(&img, &hb(1, 10, 50), t0),
            HeartbeatAction::None { fenced: true }
        );
    }

    #[test]
    fn re_registration_starts_a_new_session() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        let later = t0 + Duration::from_secs(8);
        let img2 = image(&[(1, 42, false)]);
        // The old session is dropped; the new epoch gets its grace from now.
        assert!(l.expired(&img2, later).is_empty());
        assert!(l.expired(&img2, later + TIMEOUT).is_empty());
        assert_eq!(
            l.expired(&img2, later + TIMEOUT + Duration::from_millis(1)),
            vec![(1, 42)]
        );
    }

    fn report(reporter: BrokerId, reporter_epoch: i64) -> UnreachableReport {
        UnreachableReport {
            reporter_id: reporter,
            reporter_epoch,
            broker_id: 3,
            broker_epoch: 30,
        }
    }

    #[test]
    fn one_peer_reports_but_the_broker_heartbeats_no_fence() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false), (2, 20, false), (3, 30, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        // Broker 1 lost its link to 3 and keeps reporting; the controller's probe gets no
        // answer either (say it shares 1's side of a partition), but 3 keeps heartbeating.
        let mut now = t0;
        for _ in 0..20 {
            if l.report_unreachable(&img, &report(1, 10), now) == ReportAction::Probe {
                let _ = l.probe_done(3, 30, now, ProbeOutcome::NoAnswer, now);
            }
            if now.duration_since(t0).as_millis().is_multiple_of(2000) {
                for (id, epoch) in [(1, 10), (2, 20), (3, 30)] {
                    l.heartbeat(&img, &hb(id, epoch, 30), now);
                }
            }
            assert!(l.fast_fences(&img, now).is_empty());
            assert!(l.expired(&img, now).is_empty());
            now += Duration::from_millis(500);
        }
    }

    #[test]
    fn an_early_fence_is_not_written_again_at_the_session_timeout() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false), (2, 20, false), (3, 30, false)]);
        let mut l = Liveness::new(TIMEOUT, HB);
        l.on_leadership(&img, t0);
        assert_eq!(
            l.report_unreachable(&img, &report(2, 20), t0),
            ReportAction::Probe
        );
        let _ = l.probe_done(3, 30, t0, ProbeOutcome::Refused, t0);
        let fences = l.fast_fences(&img, t0);
        assert_eq!(fences.len(), 1);
        assert_eq!((fences[0].broker_id, fences[0].broker_epoch), (3, 30));
        // The image has not applied it yet when the session would expire: no second write.
        let late = t0 + TIMEOUT + Duration::from_secs(1);
        l.heartbeat(&img, &hb(1, 10, 10), late);
        l.heartbeat(&img, &hb(2, 20, 20), late);
        assert!(l.expired(&img, late).is_empty());
    }
}
