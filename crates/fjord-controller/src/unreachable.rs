//! The I/O around [`crate::failure_detector`]: brokers' unreachability reports (served
//! by the leader, forwarded to it like heartbeats), the controller's probe of a
//! suspect's port, and the early `FenceBroker` writes.

use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

use fjord_rpc::UnreachableReport as ReportProto;
use fjord_rpc::unreachable_reply;
use fjord_types::BrokerId;
use tokio::net::TcpStream;

use crate::command::MetadataCommand;
use crate::controller::Controller;
use crate::controller::ControllerError;
use crate::controller::Forward;
use crate::controller::call_leader;
use crate::controller::leader_hint;
use crate::failure_detector::ProbeOutcome;
use crate::failure_detector::REPROBE_DELAY;
use crate::failure_detector::ReportAction;
use crate::image::MetadataImage;
use crate::liveness::UnreachableReport;

/// Probes waiting for the liveness task; more are dropped (the suspect is reported again).
pub(crate) const PROBE_QUEUE: usize = 64;
/// One probe's TCP connect may take this long. A refusal comes back within a round trip;
/// a live but busy node's kernel completes the handshake without the process, so only a
/// host that is gone or cut off runs into it.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The listener probed: the broker's gRPC port (the broker crate's `REPLICATION_LISTENER`,
/// which followers fetch from).
const PROBED_LISTENER: &str = "REPLICATION";
/// The longest pause between attempts to reach the controller leader with a report.
const REPORT_RETRY_CAP: Duration = Duration::from_millis(100);
/// How long one forwarded report may wait for the leader.
const FORWARDED_REPORT_ATTEMPT: Duration = Duration::from_millis(800);

/// A probe to run: connect to `addr`, on behalf of the suspicion started at `started`.
#[derive(Clone, Debug)]
pub(crate) struct ProbeRequest {
    broker_id: BrokerId,
    broker_epoch: i64,
    started: Instant,
    addr: String,
    /// Wait this long before connecting (a re-probe).
    delay: Duration,
}

/// What a probe found.
#[derive(Clone, Debug)]
pub(crate) struct ProbeDone {
    request: ProbeRequest,
    outcome: ProbeOutcome,
}

/// `host:port` of `broker_id`'s probed listener.
fn probe_address(image: &MetadataImage, broker_id: BrokerId) -> Option<String> {
    image
        .brokers
        .get(&broker_id)?
        .listeners
        .iter()
        .find(|l| l.name == PROBED_LISTENER)
        .map(|l| format!("{}:{}", l.host, l.port))
}

/// One TCP connect (no bytes sent): the answer of the suspect's kernel.
pub(crate) async fn run_probe(request: ProbeRequest) -> ProbeDone {
    if !request.delay.is_zero() {
        tokio::time::sleep(request.delay).await;
    }
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, connect(&request.addr)).await {
        Ok(Ok(_stream)) => ProbeOutcome::Connected,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        Ok(Err(_)) | Err(_) => ProbeOutcome::NoAnswer,
    };
    ProbeDone { request, outcome }
}

async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    // A literal address needs no resolver; a name is resolved and its first address used.
    match addr.parse::<SocketAddr>() {
        Ok(sa) => TcpStream::connect(sa).await,
        Err(_) => TcpStream::connect(addr).await,
    }
}

impl Controller {
    /// A broker cannot reach another one; handled by the leader's failure detector
    /// (forwarded like [`Controller::heartbeat`]). Idempotent: brokers send it again while
    /// their fetches keep failing.
    pub async fn report_unreachable(
        &self,
        report: UnreachableReport,
    ) -> Result<(), ControllerError> {
        // Retried every 100 ms at most: when the dead broker was also the controller
        // leader, the report must reach the new one as soon as it is elected.
        self.on_leader_retrying_within(
            REPORT_RETRY_CAP,
            || self.report_unreachable_local(report),
            |to| forward_report(to, report),
        )
        .await
    }

    pub(crate) async fn report_unreachable_local(
        &self,
        report: UnreachableReport,
    ) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader_id(),
            });
        }
        if !self.fast_fencing() {
            return Ok(());
        }
        let image = self.committed_image();
        let now = Instant::now();
        let action = self.liveness().report_unreachable(&image, &report, now);
        if action == ReportAction::Probe {
            let (broker_id, broker_epoch) = (report.broker_id, report.broker_epoch);
            let Some(addr) = probe_address(&image, broker_id) else {
                // Nothing to probe (no gRPC listener registered): treat as no answer, so
                // only the several-peers rule can apply.
                self.liveness().probe_done(
                    broker_id,
                    broker_epoch,
                    now,
                    ProbeOutcome::NoAnswer,
                    now,
                );
                return Ok(());
            };
            // Debug: a follower that stops fetching (its leader changed) also breaks a
            // stream; only fences are news.
            tracing::debug!(
                broker_id,
                broker_epoch,
                reporter = report.reporter_id,
                %addr,
                "broker reported unreachable: probing it"
            );
            let request = ProbeRequest {
                broker_id,
                broker_epoch,
                started: now,
                addr,
                delay: Duration::ZERO,
            };
            self.send_probe(request);
        }
        Ok(())
    }

    fn send_probe(&self, request: ProbeRequest) {
        let (broker_id, broker_epoch, started) =
            (request.broker_id, request.broker_epoch, request.started);
        if self.probe_sender().try_send(request).is_err() {
            tracing::warn!(broker_id, "probe queue full; the next report probes again");
            // Settle the suspicion's probe as inconclusive; no re-probe from here.
            let _ = self.liveness().probe_done(
                broker_id,
                broker_epoch,
                started,
                ProbeOutcome::NoAnswer,
                started,
            );
        }
    }

    /// A probe came back: record it, probe again if it was not decisive, and fence
    /// whoever the rule says.
    pub(crate) async fn probe_done(&self, done: ProbeDone) {
        let ProbeDone { request, outcome } = done;
        let (broker_id, broker_epoch) = (request.broker_id, request.broker_epoch);
        tracing::debug!(
            broker_id,
            broker_epoch,
            ?outcome,
            "probe of a reported broker"
        );
        let now = Instant::now();
        let again =
            self.liveness()
                .probe_done(broker_id, broker_epoch, request.started, outcome, now);
        if again == ReportAction::Probe {
            self.send_probe(ProbeRequest {
                started: now,
                delay: REPROBE_DELAY,
                ..request
            });
        }
        if self.is_leader() {
            let image = self.committed_image();
            self.fence_early(&image, Instant::now()).await;
        }
    }

    /// Write `FenceBroker` for every broker the failure detector gives up on now.
    pub(crate) async fn fence_early(&self, image: &MetadataImage, now: Instant) {
        if !self.fast_fencing() {
            return;
        }
        let fences = self.liveness().fast_fences(image, now);
        for f in fences {
            let cmd = MetadataCommand::FenceBroker {
                broker_id: f.broker_id,
                broker_epoch: f.broker_epoch,
            };
            match self.write_local(cmd).await {
                Ok(resp) => tracing::info!(
                    broker_id = f.broker_id,
                    broker_epoch = f.broker_epoch,
                    reason = f.reason.as_str(),
                    ?resp,
                    "broker fenced before its session timeout"
                ),
                Err(e) => tracing::warn!(
                    broker_id = f.broker_id,
                    broker_epoch = f.broker_epoch,
                    error = %e,
                    "early FenceBroker failed; the session timeout still applies"
                ),
            }
        }
    }
}

async fn forward_report(to: Forward, report: UnreachableReport) -> Result<(), ControllerError> {
    let Forward {
        mut client,
        leader,
        addr,
        remaining,
    } = to;
    let call = client.report_unreachable(ReportProto {
        reporter_id: report.reporter_id,
        reporter_epoch: report.reporter_epoch,
        broker_id: report.broker_id,
        broker_epoch: report.broker_epoch,
    });
    let timed_out = ControllerError::RemoteFailed {
        leader,
        message: "unreachability report timed out".to_owned(),
    };
    let attempt = remaining.min(FORWARDED_REPORT_ATTEMPT);
    let reply = call_leader(leader, addr, attempt, call, timed_out).await?;
    match reply.outcome {
        Some(unreachable_reply::Outcome::Accepted(_)) => Ok(()),
        Some(unreachable_reply::Outcome::NotLeader(l)) => Err(ControllerError::NotLeader {
            leader: leader_hint(l),
        }),
        Some(unreachable_reply::Outcome::Failed(message)) => {
            Err(ControllerError::RemoteFailed { leader, message })
        }
        None => Err(ControllerError::BadReply {
            leader,
            reason: "empty ReportUnreachable reply".to_owned(),
        }),
    }
}
