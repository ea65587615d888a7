//! Fast failure detection on the active controller: fencing a dead broker well before
//! its session times out, without fencing one that is merely cut off from a peer.
//!
//! Signals: a broker that cannot fetch from a partition leader (its replica stream
//! broke, or it cannot connect) *reports* that leader unreachable; the controller then
//! *probes* the suspect's gRPC (`REPLICATION`) port itself with one TCP connect. The rule
//! (see [`FailureDetector::decide`]):
//!
//! - **refused** — the controller's own probe was refused (a TCP RST: nothing listens on
//!   the port, so the process is gone; on a real network the peer's kernel answers the
//!   same way for a killed process) after at least one peer report → fence now;
//! - **unreachable** — reports from several distinct live peers (two, or every other
//!   unfenced broker when there are fewer), *and* the controller's probe got no answer
//!   either (timed out, or refused), *and* the suspect's heartbeats stopped (none for 1.5
//!   heartbeat intervals) → fence now;
//! - anything else waits for the session timeout ([`crate::liveness`]). In particular a
//!   probe that connects (a live process, or a paused one whose kernel still completes
//!   the handshake) never fences early, and neither does one peer's report while the
//!   suspect heartbeats.
//!
//! A heartbeat from the suspect's incarnation clears its suspicion. A heartbeat from an
//! incarnation that was fenced early proves the rule wrong for it (e.g. a firewall that
//! rejects instead of dropping): early fencing is then off for that incarnation, so it is
//! unfenced once (as any live broker) and can only be fenced by its session timeout from
//! then on — at most one fence/unfence per incarnation, never flapping.
//!
//! Plain code over an explicit `now`, leader-local soft state like the sessions: a new
//! controller leader starts with no suspects, and brokers report again while their
//! fetches keep failing.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use fjord_types::BrokerId;

use crate::image::MetadataImage;

/// How many distinct peers' reports the `unreachable` rule needs (fewer when the cluster
/// has fewer other unfenced brokers).
const PEERS_FOR_UNREACHABLE: usize = 2;
/// A probe result is reused this long; a newer report after it probes again.
const PROBE_FRESH: Duration = Duration::from_millis(500);
/// Probes per suspicion after the first one that was not decisive: a report often comes
/// while the killed process is still being torn down (its connections are reset before
/// its listening socket closes, so the first probe still connects). Re-probing every
/// [`REPROBE_DELAY`] catches the refusal within ~100 ms instead of waiting for the next
/// report.
const REPROBES: u32 = 10;
/// Between a probe that was not decisive and the next.
pub(crate) const REPROBE_DELAY: Duration = Duration::from_millis(100);

/// What one TCP connect to a suspect's gRPC port found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Connection refused: no process listens there.
    Refused,
    /// The handshake completed: the host and a listening socket are there (the process
    /// may still be paused; that is the session timeout's call).
    Connected,
    /// No answer within the probe timeout, or another network error.
    NoAnswer,
}

/// Why a broker is fenced before its session timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastFenceReason {
    /// The `refused` rule.
    Refused,
    /// The `unreachable` rule.
    Unreachable,
}

impl FastFenceReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FastFenceReason::Refused => "its gRPC port refuses connections",
            FastFenceReason::Unreachable => {
                "peers and the controller cannot reach it and its heartbeats stopped"
            }
        }
    }
}

/// A broker to fence now: `(broker_id, broker_epoch, why)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastFence {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub reason: FastFenceReason,
}

/// What the caller must do after a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportAction {
    /// Probe the suspect's port and feed [`FailureDetector::probe_done`].
    Probe,
    /// Nothing (stale, unknown, already fenced, or a probe is in flight or fresh).
    None,
}

#[derive(Debug)]
struct Suspect {
    broker_epoch: i64,
    /// Reporter → when it last reported.
    reporters: BTreeMap<BrokerId, Instant>,
    /// A probe in flight, since.
    probing: Option<Instant>,
    /// The last probe's result and when it was started.
    probe: Option<(ProbeOutcome, Instant)>,
    /// Re-probes left for this suspicion.
    reprobes_left: u32,
}

/// Suspicions about brokers of the current leadership term.
#[derive(Debug)]
pub(crate) struct FailureDetector {
    heartbeat_interval: Duration,
    /// Reports older than this no longer count.
    report_window: Duration,
    suspects: BTreeMap<BrokerId, Suspect>,
    /// Incarnations fenced by this detector (returned once each).
    fenced: BTreeSet<(BrokerId, i64)>,
    /// Incarnations that heartbeated after being fenced early: no early fencing again.
    disproved: BTreeSet<(BrokerId, i64)>,
}

impl FailureDetector {
    pub(crate) fn new(heartbeat_interval: Duration) -> Self {
        FailureDetector {
            heartbeat_interval,
            // Followers report on every failed fetch, at least every replica fetch
            // back-off (1 s by default): two intervals keep a steady suspicion alive.
            report_window: heartbeat_interval.max(Duration::from_secs(1)) * 2,
            suspects: BTreeMap::new(),
            fenced: BTreeSet::new(),
            disproved: BTreeSet::new(),
        }
    }

    /// A new leadership term: nobody is suspected yet.
    pub(crate) fn reset(&mut self) {
        self.suspects.clear();
        self.fenced.clear();
    }

    /// `reporter` (at `reporter_epoch`) cannot reach `broker_id` (at `broker_epoch`, as
    /// the reporter's metadata shows it).
    pub(crate) fn report(
        &mut self,
        image: &MetadataImage,
        reporter: BrokerId,
        reporter_epoch: i64,
        broker_id: BrokerId,
        broker_epoch: i64,
        now: Instant,
    ) -> ReportAction {
        let live_reporter = image
            .brokers
            .get(&reporter)
            .is_some_and(|r| r.broker_epoch == reporter_epoch && !r.fenced);
        let live_target = image
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.broker_epoch == broker_epoch && !b.fenced);
        if reporter == broker_id
            || !live_reporter
            || !live_target
            || self.disproved.contains(&(broker_id, broker_epoch))
            || self.fenced.contains(&(broker_id, broker_epoch))
        {
            return ReportAction::None;
        }
        let suspect = self.suspects.entry(broker_id).or_insert(Suspect {
            broker_epoch,
            reporters: BTreeMap::new(),
            probing: None,
            probe: None,
            reprobes_left: REPROBES,
        });
        if suspect.broker_epoch != broker_epoch {
            *suspect = Suspect {
                broker_epoch,
                reporters: BTreeMap::new(),
                probing: None,
                probe: None,
                reprobes_left: REPROBES,
            };
        }
        suspect.reporters.insert(reporter, now);
        let fresh = suspect
            .probe
            .is_some_and(|(_, at)| now.saturating_duration_since(at) < PROBE_FRESH);
        // A probe that never came back (its task died) does not block the next one.
        let in_flight = suspect
            .probing
            .is_some_and(|at| now.saturating_duration_since(at) < self.report_window);
        if fresh || in_flight {
            return ReportAction::None;
        }
        suspect.probing = Some(now);
        ReportAction::Probe
    }

    /// The probe started at `started` (the instant of the [`ReportAction::Probe`]) found
    /// `outcome`. Ignored when the suspicion was cleared meanwhile (a heartbeat came).
    /// [`ReportAction::Probe`]: probe again after [`REPROBE_DELAY`], keyed by `now`.
    pub(crate) fn probe_done(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        started: Instant,
        outcome: ProbeOutcome,
        now: Instant,
    ) -> ReportAction {
        let Some(suspect) = self.suspects.get_mut(&broker_id) else {
            return ReportAction::None;
        };
        if suspect.broker_epoch != broker_epoch || suspect.probing != Some(started) {
            return ReportAction::None;
        }
        suspect.probing = None;
        suspect.probe = Some((outcome, started));
        if outcome == ProbeOutcome::Refused || suspect.reprobes_left == 0 {
            return ReportAction::None;
        }
        suspect.reprobes_left -= 1;
        suspect.probing = Some(now);
        ReportAction::Probe
    }

    /// A heartbeat of `broker_id`'s current incarnation: it is alive now.
    pub(crate) fn heartbeat(&mut self, broker_id: BrokerId, broker_epoch: i64) {
        self.suspects
            .retain(|&id, s| id != broker_id || s.broker_epoch != broker_epoch);
        if self.fenced.contains(&(broker_id, broker_epoch)) {
            self.disproved.insert((broker_id, broker_epoch));
        }
    }

    /// Brokers to fence now (each incarnation once). `last_heartbeat` is when the
    /// controller last heard from a broker's current incarnation (or the start of its
    /// grace period).
    pub(crate) fn decide(
        &mut self,
        image: &MetadataImage,
        last_heartbeat: impl Fn(BrokerId) -> Option<Instant>,
        now: Instant,
    ) -> Vec<FastFence> {
        let window = self.report_window;
        // Drop suspects that are fenced or re-registered, and reports that went stale or
        // come from brokers no longer live.
        self.suspects.retain(|id, s| {
            image
                .brokers
                .get(id)
                .is_some_and(|b| b.broker_epoch == s.broker_epoch && !b.fenced)
        });
        let unfenced: BTreeSet<BrokerId> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect();
        let mut out = Vec::new();
        for (&broker_id, suspect) in &mut self.suspects {
            suspect.reporters.retain(|r, at| {
                unfenced.contains(r) && now.saturating_duration_since(*at) <= window
            });
            if suspect.reporters.is_empty() {
                continue;
            }
            let probe = suspect
                .probe
                .filter(|(_, at)| now.saturating_duration_since(*at) <= window)
                .map(|(outcome, _)| outcome);
            let reason = match probe {
                Some(ProbeOutcome::Refused) => Some(FastFenceReason::Refused),
                Some(ProbeOutcome::NoAnswer) => {
                    let others = unfenced.iter().filter(|&&b| b != broker_id).count();
                    let needed = PEERS_FOR_UNREACHABLE.min(others).max(1);
                    let silent = last_heartbeat(broker_id).is_none_or(|at| {
                        now.saturating_duration_since(at) > self.heartbeat_interval * 3 / 2
                    });
                    (suspect.reporters.len() >= needed && silent)
                        .then_some(FastFenceReason::Unreachable)
                }
                Some(ProbeOutcome::Connected) | None => None,
            };
            if let Some(reason) = reason {
                out.push(FastFence {
                    broker_id,
                    broker_epoch: suspect.broker_epoch,
                    reason,
                });
            }
        }
        for f in &out {
            self.suspects.remove(&f.broker_id);
            self.fenced.insert((f.broker_id, f.broker_epoch));
        }
        // Forget incarnations that are gone from the image.
        self.disproved.retain(|(id, epoch)| {
            image
                .brokers
                .get(id)
                .is_some_and(|b| b.broker_epoch == *epoch)
        });
        self.fenced.retain(|(id, epoch)| {
            image
                .brokers
                .get(id)
                .is_some_and(|b| b.broker_epoch == *epoch)
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::brokers_image as image;

    const HB: Duration = Duration::from_millis(2000);

    fn three() -> MetadataImage {
        image(&[(1, 10, false), (2, 20, false), (3, 30, false)])
    }

    /// Reports `reporter → 3`, and if that asks for a probe, answers it with `outcome`.
    fn report_and_probe(
        d: &mut FailureDetector,
        img: &MetadataImage,
        reporter: BrokerId,
        outcome: ProbeOutcome,
        at: Instant,
    ) {
        let epoch = img.brokers[&reporter].broker_epoch;
        if d.report(img, reporter, epoch, 3, 30, at) == ReportAction::Probe {
            d.probe_done(3, 30, at, outcome, at);
        }
    }

    #[test]
    fn refused_probe_after_one_report_fences_at_once() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        assert_eq!(d.report(&img, 1, 10, 3, 30, t0), ReportAction::Probe);
        // Nothing is decided while the probe is out.
        assert!(d.decide(&img, |_| Some(t0), t0).is_empty());
        d.probe_done(3, 30, t0, ProbeOutcome::Refused, t0);
        let t1 = t0 + Duration::from_millis(5);
        assert_eq!(
            d.decide(&img, |_| Some(t0), t1),
            vec![FastFence {
                broker_id: 3,
                broker_epoch: 30,
                reason: FastFenceReason::Refused
            }]
        );
        // Once per incarnation.
        assert_eq!(d.report(&img, 2, 20, 3, 30, t1), ReportAction::None);
        assert!(d.decide(&img, |_| Some(t0), t1).is_empty());
    }

    #[test]
    fn one_peer_reports_node_still_heartbeating_no_fence() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        // Broker 1 lost its link to 3; the controller's probe gets no answer either (say
        // the same partition), but 3 heartbeats.
        report_and_probe(&mut d, &img, 1, ProbeOutcome::NoAnswer, t0);
        for ms in [0, 500, 1000, 2500, 3900] {
            let now = t0 + Duration::from_millis(ms);
            assert!(
                d.decide(&img, |_| Some(now - Duration::from_millis(100)), now)
                    .is_empty()
            );
        }
    }

    #[test]
    fn one_peer_and_silent_heartbeats_is_not_enough_with_three_brokers() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::NoAnswer, t0);
        let later = t0 + Duration::from_millis(3500);
        assert!(d.decide(&img, |_| Some(t0), later).is_empty());
    }

    #[test]
    fn two_peers_no_answer_and_silent_heartbeats_fence() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::NoAnswer, t0);
        report_and_probe(&mut d, &img, 2, ProbeOutcome::NoAnswer, t0);
        // Heartbeats not yet silent for 1.5 intervals: wait.
        let soon = t0 + Duration::from_millis(2000);
        assert!(d.decide(&img, |_| Some(t0), soon).is_empty());
        // Both peers keep reporting (reports are kept fresh) and heartbeats stay away.
        let later = t0 + Duration::from_millis(3100);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::NoAnswer, later);
        report_and_probe(&mut d, &img, 2, ProbeOutcome::NoAnswer, later);
        assert_eq!(
            d.decide(&img, |_| Some(t0), later),
            vec![FastFence {
                broker_id: 3,
                broker_epoch: 30,
                reason: FastFenceReason::Unreachable
            }]
        );
    }

    #[test]
    fn two_peers_but_the_controller_connects_no_fence() {
        // A paused process: peers' fetches time out, heartbeats stop, but its kernel still
        // completes the controller's handshake. The session timeout decides.
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::Connected, t0);
        report_and_probe(&mut d, &img, 2, ProbeOutcome::Connected, t0);
        let later = t0 + Duration::from_millis(3500);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::Connected, later);
        assert!(d.decide(&img, |_| Some(t0), later).is_empty());
    }

    #[test]
    fn a_probe_that_still_connects_then_a_refusal_fences() {
        // The report came while the killed process was still being torn down.
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        assert_eq!(d.report(&img, 1, 10, 3, 30, t0), ReportAction::Probe);
        let t1 = t0 + REPROBE_DELAY;
        assert_eq!(
            d.probe_done(3, 30, t0, ProbeOutcome::Connected, t1),
            ReportAction::Probe
        );
        assert!(d.decide(&img, |_| Some(t0), t1).is_empty());
        assert_eq!(
            d.probe_done(3, 30, t1, ProbeOutcome::Refused, t1),
            ReportAction::None
        );
        assert_eq!(d.decide(&img, |_| Some(t0), t1).len(), 1);
    }

    #[test]
    fn heartbeat_clears_the_suspicion_and_a_late_probe_is_ignored() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        assert_eq!(d.report(&img, 1, 10, 3, 30, t0), ReportAction::Probe);
        d.heartbeat(3, 30);
        d.probe_done(3, 30, t0, ProbeOutcome::Refused, t0);
        assert!(d.decide(&img, |_| Some(t0), t0).is_empty());
    }

    #[test]
    fn stale_reports_are_ignored() {
        let t0 = Instant::now();
        let img = image(&[(1, 10, false), (2, 20, true), (3, 30, false)]);
        let mut d = FailureDetector::new(HB);
        // A fenced reporter, a stale reporter epoch, a stale target epoch, self-report.
        assert_eq!(d.report(&img, 2, 20, 3, 30, t0), ReportAction::None);
        assert_eq!(d.report(&img, 1, 9, 3, 30, t0), ReportAction::None);
        assert_eq!(d.report(&img, 1, 10, 3, 29, t0), ReportAction::None);
        assert_eq!(d.report(&img, 3, 30, 3, 30, t0), ReportAction::None);
        assert_eq!(d.report(&img, 1, 10, 7, 1, t0), ReportAction::None);
    }

    #[test]
    fn refused_report_goes_stale_after_the_window() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::Refused, t0);
        let much_later = t0 + Duration::from_secs(10);
        assert!(d.decide(&img, |_| Some(t0), much_later).is_empty());
    }

    #[test]
    fn a_probe_is_shared_by_reports_while_in_flight_or_fresh() {
        let t0 = Instant::now();
        let img = three();
        let mut d = FailureDetector::new(HB);
        assert_eq!(d.report(&img, 1, 10, 3, 30, t0), ReportAction::Probe);
        assert_eq!(d.report(&img, 2, 20, 3, 30, t0), ReportAction::None);
        // A probe that connects is repeated (the process may be on its way out) ...
        let mut at = t0;
        for _ in 0..REPROBES {
            let next = at + REPROBE_DELAY;
            assert_eq!(
                d.probe_done(3, 30, at, ProbeOutcome::Connected, next),
                ReportAction::Probe
            );
            // ... and reports meanwhile share it.
            assert_eq!(d.report(&img, 1, 10, 3, 30, next), ReportAction::None);
            at = next;
        }
        let last = at + REPROBE_DELAY;
        assert_eq!(
            d.probe_done(3, 30, at, ProbeOutcome::Connected, last),
            ReportAction::None
        );
        assert_eq!(d.report(&img, 1, 10, 3, 30, last), ReportAction::None);
        let later = at + PROBE_FRESH;
        assert_eq!(d.report(&img, 1, 10, 3, 30, later), ReportAction::Probe);
        assert!(d.decide(&img, |_| Some(later), later).is_empty());
    }

    #[test]
    fn a_heartbeat_after_an_early_fence_turns_early_fencing_off_for_that_incarnation() {
        let t0 = Instant::now();
        let mut img = three();
        let mut d = FailureDetector::new(HB);
        report_and_probe(&mut d, &img, 1, ProbeOutcome::Refused, t0);
        assert_eq!(d.decide(&img, |_| Some(t0), t0).len(), 1);
        img.brokers.get_mut(&3).expect("broker").fenced = true;
        // It was alive after all (e.g. a firewall rejecting the controller): it heartbeats
        // and is unfenced; further refusals no longer fence it early.
        d.heartbeat(3, 30);
        img.brokers.get_mut(&3).expect("broker").fenced = false;
        let t1 = t0 + Duration::from_secs(1);
        assert!(d.decide(&img, |_| Some(t1), t1).is_empty());
        assert_eq!(d.report(&img, 1, 10, 3, 30, t1), ReportAction::None);
        // A new incarnation starts with a clean slate.
        let img2 = image(&[(1, 10, false), (2, 20, false), (3, 31, false)]);
        assert!(d.decide(&img2, |_| Some(t1), t1).is_empty());
        assert_eq!(d.report(&img2, 1, 10, 3, 31, t1), ReportAction::Probe);
    }
}
