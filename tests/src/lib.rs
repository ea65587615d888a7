//! End-to-end test helpers: start real `fjord` processes and talk to them with real clients.
//!
//! * [`FjordNode`] runs `fjord dev` on a temporary data dir and a free loopback port, waits
//!   (by polling) until it answers a Kafka Metadata request, and on drop kills it and fails the
//!   test if its log contains a panic.
//! * [`FjordCluster`] (module `cluster`) runs N `fjord server --config` processes forming one
//!   cluster, with per-node kill -9, stop, SIGSTOP/SIGCONT and restart, and waits for
//!   conditions on leaders and ISRs.
//! * [`KafkaConn`] is a tiny blocking Kafka protocol client for raw requests and malformed input.
//! * The `rdkafka` helpers build producers/consumers the way the tests use them (no consumer
//!   group: consumers only `assign()`).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

mod cluster;
pub mod http;
pub mod ports;
pub mod procfs;
pub mod produce_loop;
pub use cluster::{ClusterOptions, FjordCluster, PartitionState, partition_state};
pub use ports::{PortLease, reserve_port, reserve_ports};

/// How long a node gets to answer Metadata after being spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval for every wait-for-condition loop.
pub const POLL: Duration = Duration::from_millis(50);

static NODE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Path of the `fjord` binary: `$FJORD_BIN`, else next to the test executable
/// (`target/debug/deps/<test>` -> `target/debug/fjord`).
pub fn fjord_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FJORD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("fjord")
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound and released): only for addresses
/// that must refuse connections. Nodes get theirs from [`reserve_port`].
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn log_dir() -> PathBuf {
    let dir = std::env::var_os("FJORD_E2E_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("fjord-e2e-logs"));
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

fn test_name() -> String {
    let t = std::thread::current();
    let name = t.name().unwrap_or("node");
    let name = if name == "main" { "node" } else { name };
    name.replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` every [`POLL`] until it returns `Some`, or fails with `what` after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// How a [`FjordNode`] process is started.
#[derive(Clone, Debug)]
enum Launch {
    /// `fjord dev --data-dir D --kafka-addr A`: a single node.
    Dev,
    /// `fjord server --config FILE`: a cluster member (see [`FjordCluster`]).
    Server { config: PathBuf },
}

/// One `fjord` process on a temp data dir and a free loopback port: `fjord dev` (controller +
/// broker) from [`FjordNode::start`], or a cluster member of a [`FjordCluster`].
pub struct FjordNode {
    child: Option<Child>,
    data_root: tempfile::TempDir,
    port: u16,
    /// The HTTP port (`/healthz`, `/readyz`, `/metrics`, `/shutdown`).
    http_port: u16,
    log_path: PathBuf,
    starts: usize,
    launch: Launch,
    /// How many brokers this node's Metadata must list before it counts as ready.
    ready_brokers: usize,
    /// SIGSTOPped and not yet SIGCONTed.
    stopped: bool,
    /// Keeps this node's ports ours across restarts (see [`ports`]).
    _ports: Vec<PortLease>,
}

impl FjordNode {
    /// Starts a fresh node and waits until it answers Metadata with itself as a broker.
    pub fn start() -> Self {
        let data_root = tempfile::Builder::new()
            .prefix("fjord-e2e-")
            .tempdir()
            .expect("create temp data dir");
        let n = NODE_COUNTER.fetch_add(1, Ordering::SeqCst);
        let log_path = log_dir().join(format!("{}-{}-{n}.log", test_name(), std::process::id()));
        let (kafka, http) = (reserve_port(), reserve_port());
        let mut node = FjordNode {
            child: None,
            data_root,
            port: kafka.port(),
            http_port: http.port(),
            log_path,
            starts: 0,
            launch: Launch::Dev,
            ready_brokers: 1,
            stopped: false,
            _ports: vec![kafka, http],
        };
        node.spawn_and_wait();
        node
    }

    /// A cluster member that runs `fjord server --config <data root>/fjord.toml`, the file
    /// `config(data_dir)` returns. `ports` are the node's leases, held as long as it lives. Not
    /// started: see [`FjordNode::spawn`].
    pub(crate) fn server(
        name: &str,
        kafka_port: u16,
        http_port: u16,
        ports: Vec<PortLease>,
        ready_brokers: usize,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        let data_root = tempfile::Builder::new()
            .prefix("fjord-e2e-")
            .tempdir()
            .expect("create temp data dir");
        let n = NODE_COUNTER.fetch_add(1, Ordering::SeqCst);
        let log_path = log_dir().join(format!(
            "{}-{name}-{}-{n}.log",
            test_name(),
            std::process::id()
        ));
        let config_path = data_root.path().join("fjord.toml");
        let text = config(&data_root.path().join("data"));
        std::fs::write(&config_path, text).expect("write node config");
        FjordNode {
            child: None,
            data_root,
            port: kafka_port,
            http_port,
            log_path,
            starts: 0,
            launch: Launch::Server {
                config: config_path,
            },
            ready_brokers,
            stopped: false,
            _ports: ports,
        }
    }

    /// `127.0.0.1:PORT` of the Kafka listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` of the HTTP port.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// `GET path` on the node's HTTP port: `(status, body)`.
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http::get(&self.http_addr(), path, Duration::from_secs(10))
    }

    /// The `--data-dir` passed to the node (does not exist before the first start).
    pub fn data_dir(&self) -> PathBuf {
        self.data_root.path().join("data")
    }

    /// The node's stderr/stdout log (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn spawn_and_wait(&mut self) {
        self.spawn()
            .unwrap_or_else(|e| panic!("spawning fjord: {e:#}"));
        if let Err(e) = self.wait_ready() {
            self.kill_quietly();
            panic!(
                "fjord node {} did not become ready: {e:#}\n--- {} (last 80 lines) ---\n{}",
                self.bootstrap(),
                self.log_path.display(),
                tail(&self.log_path, 80)
            );
        }
    }

    /// Starts the process without waiting for it to serve.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = fjord_bin();
        if !bin.exists() {
            bail!(
                "fjord binary not found at {} (run `cargo build --workspace --bins` or set FJORD_BIN)",
                bin.display()
            );
        }
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let mut cmd = Command::new(&bin);
        match &self.launch {
            Launch::Dev => {
                cmd.arg("dev")
                    .arg("--data-dir")
                    .arg(self.data_dir())
                    .arg("--kafka-addr")
                    .arg(self.bootstrap())
                    .arg("--http-addr")
                    .arg(self.http_addr());
            }
            Launch::Server { config } => {
                cmd.arg("server").arg("--config").arg(config);
            }
        }
        writeln!(
            log,
            "=== fjord-e2e: start #{} of {:?} ===",
            self.starts, cmd
        )?;
        cmd.env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawn {}", bin.display()))?,
        );
        Ok(())
    }

    /// Polls until the node answers a Metadata request listing the brokers it waits for (itself,
    /// for a single node; the whole cluster for a cluster member).
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.wait_ready_within(START_TIMEOUT)
    }

    /// [`FjordNode::wait_ready`] with another deadline (a node with many partitions).
    pub fn wait_ready_within(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.bootstrap();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("fjord exited during startup with {status}");
            }
            let last_err = match probe_metadata(&addr) {
                Ok(md) if md.brokers.len() >= self.ready_brokers => return Ok(()),
                Ok(md) => format!(
                    "Metadata lists {} of {} brokers",
                    md.brokers.len(),
                    self.ready_brokers
                ),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("no Metadata answer within {timeout:?}; last: {last_err}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    /// Sends `signal` (a `kill` signal name such as `STOP`) to the running process.
    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("node is not running").to_string();
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{signal} {pid} failed");
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing answers).
    pub fn sigstop(&mut self) {
        self.signal("STOP");
        self.stopped = true;
    }

    /// SIGCONT after [`FjordNode::sigstop`].
    pub fn sigcont(&mut self) {
        self.signal("CONT");
        self.stopped = false;
    }

    /// Whether the node is SIGSTOPped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn kill_quietly(&mut self) {
        self.kill9();
    }

    /// SIGTERM and wait for exit (panics if it takes longer than [`STOP_TIMEOUT`]).
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_within(STOP_TIMEOUT)
    }

    /// [`FjordNode::stop`] with another deadline (a node with many partitions to close).
    pub fn stop_within(&mut self, timeout: Duration) -> ExitStatus {
        if self.stopped {
            self.sigcont();
        }
        let mut child = self.child.take().expect("node is not running");
        let pid = child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "fjord did not exit within {timeout:?} after SIGTERM\n--- {} ---\n{}",
                    self.log_path.display(),
                    tail(&self.log_path, 60)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts the node again on the same data dir and port (stopping it first if running).
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop();
        }
        self.child = None;
        self.spawn_and_wait();
    }

    /// Runs `fjord ARGS...` (admin CLI) against this node with `stdin` and a deadline.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(&self.bootstrap(), args, stdin, Duration::from_secs(30))
    }

    /// Panics if the node log shows a panic or an abort.
    fn check_log(&self) {
        let log = self.log();
        let hit = ["panicked", "memory allocation of", "fatal runtime error"]
            .iter()
            .filter_map(|m| log.find(m))
            .min();
        if let Some(pos) = hit {
            let start = log[..pos].rfind('\n').map_or(0, |p| p + 1);
            let excerpt: String = log[start..].lines().take(30).collect::<Vec<_>>().join("\n");
            panic!(
                "fjord node log {} shows a panic or abort:\n{excerpt}",
                self.log_path.display()
            );
        }
    }
}

impl Drop for FjordNode {
    fn drop(&mut self) {
        // A node that exited on its own (crash, abort) fails the test even if the client side
        // did not notice.
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        self.kill_quietly();
        if let Some(status) = exited
            && !std::thread::panicking()
        {
            panic!(
                "fjord node {} exited on its own with {status}\n--- {} (last 60 lines) ---\n{}",
                self.bootstrap(),
                self.log_path.display(),
                tail(&self.log_path, 60)
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "--- fjord node {} log {} (last 60 lines) ---\n{}",
                self.bootstrap(),
                self.log_path.display(),
                tail(&self.log_path, 60)
            );
        } else {
            self.check_log();
        }
    }
}

/// Runs the `fjord` CLI pointed at `bootstrap` (via `FJORD_BOOTSTRAP`, which works for every
/// subcommand whatever the position of `-b`), feeding `stdin`, killing it after `timeout`.
pub fn run_cli(bootstrap: &str, args: &[&str], stdin: Option<&str>, timeout: Duration) -> Output {
    let mut cmd = Command::new(fjord_bin());
    cmd.args(args)
        .env("FJORD_BOOTSTRAP", bootstrap)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn fjord cli");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input.as_bytes()).expect("write cli stdin");
        drop(si);
    }
    let pid = child.id();
    // Read stdout/stderr on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait cli") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = t_err.join().unwrap_or_default();
            panic!(
                "`FJORD_BOOTSTRAP={bootstrap} fjord {}` (pid {pid}) did not finish within {timeout:?}; stderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(POLL);
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Asserts a CLI run succeeded and returns its stdout.
pub fn cli_ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "`fjord {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Raw Kafka protocol connection
// ---------------------------------------------------------------------------------------------

/// A blocking Kafka protocol connection for raw requests and malformed input.
pub struct KafkaConn {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaConn {
    pub fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Self> {
        let sa = addr
            .to_socket_addrs()?
            .next()
            .context("address resolves to nothing")?;
        let stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(KafkaConn {
            stream,
            next_correlation_id: 1,
        })
    }

    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Writes bytes as they are (no length prefix).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes a size-prefixed frame.
    pub fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = i32::try_from(payload.len()).expect("frame too large");
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(payload);
        self.send_raw(&buf)
    }

    /// Reads one size-prefixed frame; `Ok(None)` when the peer closed the connection
    /// (EOF or reset) before a frame started.
    pub fn read_frame(&mut self) -> io::Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let len = i32::from_be_bytes(len);
        if !(0..=64 * 1024 * 1024).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response frame length {len}"),
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Bytes::from(body)))
    }

    /// Encodes a request frame body (header + request) for `api_key`/`version`.
    pub fn encode_request<R: Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> anyhow::Result<(i32, BytesMut)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown key"))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("fjord-e2e")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, key.request_header_version(version))?;
        req.encode(&mut buf, version)?;
        Ok((correlation_id, buf))
    }

    /// Sends `req` at `version` and decodes the matching response.
    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> anyhow::Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown key"))?;
        let (correlation_id, buf) = self.encode_request(version, req)?;
        self.send_frame(&buf)?;
        let mut frame = self
            .read_frame()?
            .with_context(|| format!("connection closed before {key:?} v{version} response"))?;
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id mismatch: sent {correlation_id}, got {}",
                header.correlation_id
            );
        }
        let resp = R::Response::decode(&mut frame, version)
            .with_context(|| format!("decode {key:?} v{version} response"))?;
        Ok(resp)
    }

    /// ApiVersions v0 (understood by every broker), as a map key -> (min, max).
    pub fn api_versions(&mut self) -> anyhow::Result<HashMap<i16, (i16, i16)>> {
        let resp: ApiVersionsResponse = self.request(0, &ApiVersionsRequest::default())?;
        if resp.error_code != 0 {
            bail!("ApiVersions error code {}", resp.error_code);
        }
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    /// Highest version of `R` both the broker and kafka-protocol support.
    pub fn best_version<R: Request>(&mut self) -> anyhow::Result<i16> {
        let versions = self.api_versions()?;
        let (min, max) = *versions
            .get(&R::KEY)
            .with_context(|| format!("broker does not advertise api key {}", R::KEY))?;
        let v = max.min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            bail!("no common version for api key {}", R::KEY);
        }
        Ok(v)
    }

    /// A Metadata request for all topics at the best common version.
    pub fn metadata(&mut self) -> anyhow::Result<MetadataResponse> {
        let v = self.best_version::<MetadataRequest>()?.max(1);
        let req = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        self.request(v, &req)
    }
}

/// Connects, negotiates and asks for Metadata (used for readiness).
pub fn probe_metadata(addr: &str) -> anyhow::Result<MetadataResponse> {
    let mut conn = KafkaConn::connect(addr, Duration::from_secs(2))?;
    conn.metadata()
}

// ---------------------------------------------------------------------------------------------
// rdkafka helpers
// ---------------------------------------------------------------------------------------------

/// Base client config: bootstrap plus short timeouts so failures surface quickly.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "fjord-e2e")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "2000");
    c
}

/// A producer with `acks`, `compression.type` and `linger.ms=5`; no idempotence.
pub fn producer(bootstrap: &str, acks: &str, compression: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("acks", acks)
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "10000")
        .create()
        .expect("create producer")
}

/// A consumer that only uses `assign()`: never subscribes, never commits. librdkafka needs a
/// `group.id` for `assign()`, so one is set, which makes it look up a group coordinator in the
/// background; fetching does not depend on that lookup.
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", "fjord-e2e-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create consumer")
}

/// Assigns `partitions` of `topic` starting at `offset`.
pub fn assign_from(c: &BaseConsumer, topic: &str, partitions: &[i32], offset: Offset) {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, offset)
            .expect("add partition");
    }
    c.assign(&tpl).expect("assign");
}

/// Commits `offsets` (partition, next offset to read) of `topic` for `c`'s group, synchronously.
pub fn commit_offsets(c: &BaseConsumer, topic: &str, offsets: &[(i32, i64)]) {
    let mut tpl = TopicPartitionList::new();
    for &(p, offset) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))
            .expect("add partition");
    }
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
}

/// Polls until `n` messages arrived. Non-fatal client errors (e.g. about the group
/// coordinator) are collected and reported if the deadline passes; fatal ones fail at once.
pub fn consume_n(
    c: &BaseConsumer,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(n);
    let mut errors: Vec<String> = Vec::new();
    while out.len() < n {
        if Instant::now() >= deadline {
            bail!(
                "consumed {} of {n} messages within {timeout:?}; client errors: {errors:?}",
                out.len()
            );
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_))) => {
                bail!("fatal consumer error after {} messages: {e}", out.len())
            }
            Some(Err(e)) => {
                let e = e.to_string();
                if !errors.contains(&e) {
                    eprintln!("consumer error (non-fatal): {e}");
                    errors.push(e);
                }
            }
        }
    }
    Ok(out)
}

/// Polls for `quiet` and fails if any message arrives (used after consuming everything).
pub fn expect_no_more(c: &BaseConsumer, quiet: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            None | Some(Err(_)) => {}
            Some(Ok(m)) => bail!(
                "unexpected extra message at {}/{} offset {}",
                m.topic(),
                m.partition(),
                m.offset()
            ),
        }
    }
    Ok(())
}

/// Creates a topic with the rdkafka admin client (CreateTopics) and waits until Metadata
/// shows every partition with a leader.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap)
        .create()
        .expect("create admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = admin
        .create_topics([&topic], &opts)
        .await
        .expect("CreateTopics request");
    for r in res {
        if let Err((t, e)) = r {
            panic!("CreateTopics {t}: {e}");
        }
    }
    wait_for_topic(bootstrap, name, partitions);
}

/// Waits until Metadata lists `name` with `partitions` partitions, each with a leader.
pub fn wait_for_topic(bootstrap: &str, name: &str, partitions: i32) {
    wait_for(
        Duration::from_secs(20),
        &format!("topic {name} with {partitions} led partitions"),
        || {
            let md = probe_metadata(bootstrap).ok()?;
            let t = md
                .topics
                .iter()
                .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(name))?;
            let ok = t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader_id.0 >= 0);
            ok.then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Runs an async test body with a hard deadline.
pub async fn bounded<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test exceeded its {limit:?} time bound"),
    }
}

/// A unique topic name for a test.
pub fn topic_name(prefix: &str) -> String {
    let n = NODE_COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}
