//! The node's HTTP port: probes, metrics and a stop hook for container
//! orchestrators.
//!
//! - `GET /healthz`: 200 `ok` while the process runs (liveness).
//! - `GET /readyz`: 200 `ready` when [`NodeStatus::readiness`] holds, else
//!   503 naming the condition that fails.
//! - `GET /metrics`: Prometheus text format 0.0.4 ([`scrape`]).
//! - `GET /shutdown`: starts the same graceful stop as SIGTERM and answers
//!   once the broker's controlled shutdown finished (bounded by
//!   [`SHUTDOWN_ANSWER_TIMEOUT`]), for a Kubernetes `preStop` hook.
//!
//! The server is bound first thing at start-up, so `/healthz` answers (and
//! `/readyz` says why not) while the node is still joining its quorum.

mod scrape;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use status::{NodeStatus, NotReady};

/// How long `GET /shutdown` waits for the controlled shutdown before it
/// answers anyway (the stop goes on). Kubernetes' default grace period is
/// 30 s; the broker's own controlled-shutdown bound is shorter.
pub const SHUTDOWN_ANSWER_TIMEOUT: Duration = Duration::from_secs(25);

/// How long in-flight HTTP requests may take after the node stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running HTTP server; dropping it stops it.
pub struct HttpServer {
    /// The bound address (also when the config asked for port 0).
    pub addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
    shutdown: DropGuard,
}

/// Binds `addr` and serves the endpoints over `status`.
pub async fn start(addr: SocketAddr, status: Arc<NodeStatus>) -> std::io::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/shutdown", get(shutdown))
        .with_state(status);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    Ok(HttpServer {
        addr,
        task,
        shutdown: shutdown.drop_guard(),
    })
}

impl HttpServer {
    /// Stop accepting and let in-flight requests (a `/shutdown` waiting for
    /// its answer) finish, within [`DRAIN_TIMEOUT`].
    pub async fn stop(self) {
        let HttpServer {
            mut task, shutdown, ..
        } = self;
        drop(shutdown);
        match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(%err, "HTTP server failed"),
            Ok(Err(join)) => tracing::error!(%join, "HTTP server task failed"),
            Err(_) => {
                tracing::debug!("HTTP requests still open after {DRAIN_TIMEOUT:?}; aborting them");
                task.abort();
            }
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(status): State<Arc<NodeStatus>>) -> (StatusCode, String) {
    match status.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(status): State<Arc<NodeStatus>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            fjord_metrics::exposition::CONTENT_TYPE,
        )],
        scrape::render(&status).await,
    )
}

async fn shutdown(State(status): State<Arc<NodeStatus>>) -> (StatusCode, String) {
    tracing::info!("stop requested over HTTP (GET /shutdown)");
    status.stop_requested().cancel();
    let done = status.controlled_shutdown_done();
    match tokio::time::timeout(SHUTDOWN_ANSWER_TIMEOUT, done.cancelled()).await {
        Ok(()) => (StatusCode::OK, "controlled shutdown finished\n".into()),
        Err(_) => (
            StatusCode::OK,
            format!(
                "controlled shutdown still running after {SHUTDOWN_ANSWER_TIMEOUT:?}; the node keeps stopping\n"
            ),
        ),
    }
}
