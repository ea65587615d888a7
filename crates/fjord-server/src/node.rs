//! Starting and stopping one node: controller, broker, Kafka listener.
//!
//! Start order: controller (so metadata exists), broker (register, open
//! logs), then the Kafka listener. Stop order is the reverse: stop
//! accepting and drain connections, then stop the broker (flush and close
//! every log), then the controller.

use std::net::SocketAddr;
use std::sync::Arc;

use fjord_broker::Broker;
use fjord_controller::Controller;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("controller failed to start")]
    Controller(#[source] fjord_controller::ControllerError),
    #[error("broker failed to start")]
    Broker(#[source] fjord_broker::BrokerError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("Kafka listener failed")]
    Gateway(#[source] fjord_gateway::GatewayError),
}

/// A started node, for callers that need its address before it finishes.
pub struct RunningNode {
    pub kafka_addr: SocketAddr,
    pub broker: Arc<Broker>,
    controller: Controller,
    gateway: tokio::task::JoinHandle<Result<(), fjord_gateway::GatewayError>>,
    gateway_shutdown: CancellationToken,
}

/// Start a node and return once it serves Kafka clients.
pub async fn start(config: Config) -> Result<RunningNode, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let controller = Controller::start(config.controller.clone())
        .await
        .map_err(ServerError::Controller)?;
    let broker = Broker::start(config.broker.clone(), controller.clone())
        .await
        .map_err(ServerError::Broker)?;
    let addr = config.gateway.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let kafka_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let gateway_shutdown = CancellationToken::new();
    let gateway = tokio::spawn(fjord_gateway::serve(
        listener,
        broker.clone(),
        config.gateway.clone(),
        gateway_shutdown.clone(),
    ));
    tracing::info!(node_id = config.node_id, %kafka_addr, cluster_id = %broker.metadata().cluster_id, "fjord node ready");
    Ok(RunningNode {
        kafka_addr,
        broker,
        controller,
        gateway,
        gateway_shutdown,
    })
}

impl RunningNode {
    /// Graceful stop: drain connections, close logs, stop the controller.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.gateway_shutdown.cancel();
        let served = self.gateway.await;
        self.broker.shutdown().await;
        if let Err(err) = self.controller.shutdown().await {
            tracing::warn!(%err, "controller shutdown");
        }
        tracing::info!("fjord node stopped");
        match served {
            Ok(result) => result.map_err(ServerError::Gateway),
            Err(join) => {
                tracing::error!(%join, "Kafka listener task failed");
                Ok(())
            }
        }
    }
}

/// Run a node until `shutdown` fires (or the listener fails), then stop it
/// gracefully. This is what `main`, tests and a simulator call.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let node = start(config).await?;
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    node.stop().await
}
