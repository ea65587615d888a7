//! Starting and stopping one node: gRPC server, controller, broker, Kafka
//! listener.
//!
//! Start order: bind the HTTP port first (`/healthz` answers from then on,
//! `/readyz` says what is still missing), then bind the node-to-node gRPC
//! listener and serve the controller's Raft service and the broker's
//! replica service on it
//! *before* waiting for the quorum (the other voters cannot elect anyone
//! until this node answers votes; the replica service answers UNAVAILABLE
//! until the broker exists), then wait until the controller follows a
//! leader, then the broker (register, open logs, start fetchers), then
//! serve Kafka clients (every Kafka listener is bound just before the broker
//! registers, so that a listener advertised with port 0 advertises its bound
//! port). A controller-only node runs no broker and no Kafka listener; a
//! broker-only node runs its controller as a Raft learner.
//!
//! Stop order is Kafka's: the broker's controlled shutdown (leaderships move
//! away) while clients are still served, then stop accepting Kafka
//! connections and drain them, close the broker (flush and close every log),
//! stop the controller, then the gRPC server (the broker's controlled
//! shutdown and the quorum's hand-over still need it), and last the HTTP
//! port (a `GET /shutdown` is answered once the controlled shutdown is done).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_broker::Broker;
use fjord_controller::Controller;
use fjord_gateway::{ListenerConfig, NamedListener};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{HttpServer, NodeStatus};

/// How long the gRPC server may take to finish in-flight calls (replica
/// long polls, Raft appends) after it stopped accepting.
const RPC_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("cannot load the SSL listeners' certificates")]
    Tls(#[source] fjord_gateway::tls::TlsError),
    #[error("cannot read {path} ([rpc_ssl])")]
    RpcTls {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Kafka listeners failed")]
    Gateway(#[source] fjord_gateway::GatewayError),
    #[error("node-to-node gRPC server failed")]
    Rpc(#[source] tonic::transport::Error),
    /// The broker's only log directory failed (Kafka: "Shutdown broker
    /// because all log dirs in … have failed"): the node stopped.
    #[error("log directory {path} failed ({operation}{tp}): {error}; the node stopped")]
    LogDirFailed {
        path: std::path::PathBuf,
        operation: fjord_broker::log_dir_failure::LogOperation,
        /// `" on <topic-partition>"`, or empty.
        tp: String,
        error: String,
    },
}

/// The Kafka side of a node with the broker role.
struct KafkaSide {
    /// Every Kafka listener with the address it is bound to, in configured order.
    listeners: Vec<ListenerConfig>,
    broker: Arc<Broker>,
    gateway: JoinHandle<Result<(), fjord_gateway::GatewayError>>,
    gateway_shutdown: CancellationToken,
}

/// A started node, for callers that need its addresses.
pub struct RunningNode {
    /// Where the gRPC server listens (the bound address, also when the
    /// config asked for port 0).
    pub rpc_addr: SocketAddr,
    controller: Controller,
    kafka: Option<KafkaSide>,
    rpc_server: JoinHandle<Result<(), tonic::transport::Error>>,
    rpc_shutdown: CancellationToken,
    /// What the HTTP endpoints report; `GET /shutdown` fires its stop request.
    status: Arc<NodeStatus>,
    http: Option<HttpServer>,
}

/// Binds `addr`, naming it in the error.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serves `routes` on `listener` until `shutdown` fires; over mutual TLS
/// when `tls` is enabled.
fn spawn_rpc_server(
    listener: TcpListener,
    routes: tonic::service::Routes,
    tls: &fjord_rpc::PeerTls,
    shutdown: CancellationToken,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, ServerError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls.server_config() {
        server = server.tls_config(tls).map_err(ServerError::Rpc)?;
    }
    Ok(tokio::spawn(
        server
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()),
    ))
}

/// The node-to-node TLS settings with their PEM files read.
fn peer_tls(config: &Config) -> Result<fjord_rpc::PeerTls, ServerError> {
    let Some(tls) = &config.rpc_tls else {
        return Ok(fjord_rpc::PeerTls::plaintext());
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServerError::RpcTls {
            path: path.to_owned(),
            source,
        })
    };
    Ok(fjord_rpc::PeerTls::mutual(
        read(&tls.keystore_location)?,
        read(&tls.key_location)?,
        read(&tls.truststore_location)?,
    ))
}

/// Start a node and return once it serves (Kafka clients, for a broker).
pub async fn start(mut config: Config) -> Result<RunningNode, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let status = Arc::new(NodeStatus::new(config.node_id, config.is_broker));
    let http = start_http(&config, &status).await?;
    let peer_tls = peer_tls(&config)?;
    config.controller.peer_tls = peer_tls.clone();
    config.replication.peer_tls = peer_tls.clone();
    let (rpc_listener, rpc_addr) = bind(config.rpc_listen).await?;
    config.resolve_rpc_port(rpc_addr);
    let rpc_shutdown = CancellationToken::new();

    // The gRPC server must answer before the quorum can form, and before
    // the broker exists: the replica service says UNAVAILABLE until
    // `broker_tx` carries the broker.
    let controller = Controller::open(config.controller.clone())
        .await
        .map_err(ServerError::Controller)?;
    status.controller_started(controller.clone());
    let (broker_tx, broker_rx) = watch::channel(None);
    let mut routes = tonic::service::Routes::new(controller.rpc_service());
    if config.is_broker {
        routes = routes.add_service(fjord_broker::replication::replica_service(broker_rx));
    }
    let rpc_server = match spawn_rpc_server(rpc_listener, routes, &peer_tls, rpc_shutdown.clone()) {
        Ok(server) => server,
        Err(err) => {
            if let Err(err) = controller.shutdown().await {
                tracing::warn!(%err, "controller shutdown");
            }
            return Err(err);
        }
    };
    tracing::info!(node_id = config.node_id, %rpc_addr, advertised = %config.advertised_rpc_addr, mutual_tls = peer_tls.is_enabled(), "node-to-node gRPC server listening");
    if let Err(err) = controller.ready().await {
        stop_controller_and_rpc(&controller, rpc_server, &rpc_shutdown).await;
        return Err(ServerError::Controller(err));
    }

    let kafka = if config.is_broker {
        let broker_started = |broker: &Arc<Broker>| {
            broker_tx.send_replace(Some(broker.clone()));
            status.broker_started(broker.clone());
        };
        match start_kafka_side(&config, &controller, broker_started).await {
            Ok(kafka) => {
                status.kafka_serving();
                Some(kafka)
            }
            Err(err) => {
                stop_controller_and_rpc(&controller, rpc_server, &rpc_shutdown).await;
                return Err(err);
            }
        }
    } else {
        None
    };
    let cluster_id = controller.image().borrow().cluster_id.clone();
    // NAME://bound-address per Kafka listener, as Kafka logs them.
    let kafka_listeners = kafka.as_ref().map_or_else(String::new, |k| {
        k.listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, l.listen))
            .collect::<Vec<_>>()
            .join(",")
    });
    tracing::info!(
        node_id = config.node_id,
        %kafka_listeners,
        %rpc_addr,
        %cluster_id,
        controller = config.is_controller,
        broker = config.is_broker,
        "fjord node ready"
    );
    Ok(RunningNode {
        rpc_addr,
        controller,
        kafka,
        rpc_server,
        rpc_shutdown,
        status,
        http,
    })
}

/// Binds the HTTP port (unless `http_addr` turned it off).
async fn start_http(
    config: &Config,
    status: &Arc<NodeStatus>,
) -> Result<Option<HttpServer>, ServerError> {
    let Some(addr) = config.http_listen else {
        return Ok(None);
    };
    let server = crate::http::start(addr, status.clone())
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    tracing::info!(node_id = config.node_id, http_addr = %server.addr, "HTTP server listening (/healthz, /readyz, /metrics, /shutdown)");
    Ok(Some(server))
}

/// Binds every Kafka listener first (so an advertised port 0 can become
/// that listener's bound port before the broker registers it; early clients
/// wait in the accept backlog), then starts the broker (handed to
/// `broker_started` at once: the replica service and `/readyz` need it) and
/// serves once the controller has unfenced it.
async fn start_kafka_side(
    config: &Config,
    controller: &Controller,
    broker_started: impl FnOnce(&Arc<Broker>),
) -> Result<KafkaSide, ServerError> {
    let mut broker_config = config.broker.clone();
    // The PEM files load before anything binds: a bad certificate stops startup.
    let tls = match &config.gateway.tls {
        Some(tls)
            if config
                .gateway
                .listeners
                .iter()
                .any(|l| l.security_protocol.uses_tls()) =>
        {
            Some(fjord_gateway::tls::TlsServer::load(tls.clone()).map_err(ServerError::Tls)?)
        }
        _ => None,
    };
    let mut sockets = Vec::with_capacity(config.gateway.listeners.len());
    let mut listeners = Vec::with_capacity(config.gateway.listeners.len());
    for configured in &config.gateway.listeners {
        let (listener, addr) = bind(configured.listen).await?;
        if let Some(advertised) = broker_config
            .advertised_listeners
            .iter_mut()
            .find(|a| a.name == configured.name)
            && advertised.port == 0
        {
            advertised.port = addr.port();
        }
        sockets.push(NamedListener {
            name: configured.name.clone(),
            listener,
            tls: tls
                .clone()
                .filter(|_| configured.security_protocol.uses_tls()),
        });
        listeners.push(ListenerConfig {
            name: configured.name.clone(),
            listen: addr,
            security_protocol: configured.security_protocol,
        });
    }
    let broker = Broker::start_with_replication(
        broker_config,
        config.replication.clone(),
        controller.clone(),
    )
    .await
    .map_err(ServerError::Broker)?;
    broker_started(&broker);
    // Clients wait in the accept backlog until the controller unfences this broker
    // (at once for a new broker; after its first heartbeat for a restarted one), as
    // Kafka enables request processing only then.
    broker.wait_unfenced().await;
    let gateway_shutdown = CancellationToken::new();
    let gateway = tokio::spawn(fjord_gateway::serve_listeners(
        sockets,
        Arc::new(fjord_gateway::Services::of(&broker)),
        config.gateway.clone(),
        gateway_shutdown.clone(),
    ));
    Ok(KafkaSide {
        listeners,
        broker,
        gateway,
        gateway_shutdown,
    })
}

/// Controller, then the gRPC server (bounded drain).
async fn stop_controller_and_rpc(
    controller: &Controller,
    mut rpc_server: JoinHandle<Result<(), tonic::transport::Error>>,
    rpc_shutdown: &CancellationToken,
) -> Option<tonic::transport::Error> {
    if let Err(err) = controller.shutdown().await {
        tracing::warn!(%err, "controller shutdown");
    }
    rpc_shutdown.cancel();
    match tokio::time::timeout(RPC_DRAIN_TIMEOUT, &mut rpc_server).await {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(err))) => Some(err),
        Ok(Err(join)) => {
            tracing::error!(%join, "gRPC server task failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                "gRPC server calls did not finish within {RPC_DRAIN_TIMEOUT:?}; aborting them"
            );
            rpc_server.abort();
            None
        }
    }
}

impl RunningNode {
    /// The first Kafka listener's bound address (`None` on a controller-only
    /// node).
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka_listeners().first().map(|l| l.listen)
    }

    /// Every Kafka listener's name and bound address (empty on a
    /// controller-only node).
    pub fn kafka_listeners(&self) -> &[ListenerConfig] {
        self.kafka
            .as_ref()
            .map(|k| k.listeners.as_slice())
            .unwrap_or(&[])
    }

    /// The HTTP port's bound address (`None` when `http_addr` is off).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr)
    }

    /// Fires when `GET /shutdown` asked this node to stop.
    pub fn stop_requested(&self) -> CancellationToken {
        self.status.stop_requested().clone()
    }

    /// The broker (`None` on a controller-only node).
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.kafka.as_ref().map(|k| &k.broker)
    }

    /// Graceful stop in Kafka's order: controlled shutdown (leaderships
    /// move away) while clients are still served, so they learn the new
    /// leaders from this node's answers instead of from broken connections;
    /// then drain the Kafka connections, close the broker's logs, stop the
    /// controller, then the gRPC server, last the HTTP port.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.status.stopping();
        let mut served = Ok(());
        if let Some(kafka) = self.kafka {
            kafka.broker.controlled_shutdown().await;
            kafka.gateway_shutdown.cancel();
            served = match kafka.gateway.await {
                Ok(result) => result.map_err(ServerError::Gateway),
                Err(join) => {
                    tracing::error!(%join, "Kafka listener task failed");
                    Ok(())
                }
            };
            kafka.broker.close().await;
        }
        self.status.controlled_shutdown_finished();
        let rpc =
            stop_controller_and_rpc(&self.controller, self.rpc_server, &self.rpc_shutdown).await;
        if let Some(http) = self.http {
            http.stop().await;
        }
        tracing::info!("fjord node stopped");
        served?;
        match rpc {
            Some(err) => Err(ServerError::Rpc(err)),
            None => Ok(()),
        }
    }
}

/// Run a node until `shutdown` fires, then stop it gracefully. This is what `main`, tests and a simulator call.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    // A start can wait long (the broker registers only once the controller
    // quorum has a leader); a stop signal meanwhile ends it. What it spawned
    // so far ends with the process.
    let node = tokio::select! {
        started = start(config) => started?,
        _ = shutdown.cancelled() => {
            tracing::info!("stop requested while starting: exiting");
            return Ok(());
        }
    };
    let stop_requested = node.stop_requested();
    // A log directory failure stops the node too, best effort (the stop's
    // bounds apply), and makes it exit non-zero.
    let log_dir_failure = node.broker().map(|b| b.log_dir_failure().clone());
    let log_dir_failed = log_dir_failure
        .as_ref()
        .map(|f| f.halted())
        .unwrap_or_default();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = stop_requested.cancelled() => {}
        _ = log_dir_failed.cancelled() => {}
    }
    tracing::info!("shutting down");
    let stopped = node.stop().await;
    if let Some(failure) = &log_dir_failure
        && let Some(failed) = failure.first_failure()
    {
        return Err(ServerError::LogDirFailed {
            path: failure.log_dir().to_path_buf(),
            operation: failed.operation,
            tp: failed
                .tp
                .as_ref()
                .map_or_else(String::new, |tp| format!(" on {tp}")),
            error: failed.error.clone(),
        });
    }
    stopped
}
