"""Fixtures for Python-client end-to-end tests: a real `fjord dev` node per test.

`fjord` runs `fjord dev` (embedded defaults); `fjord_fast` runs `fjord server --config` with a
generated TOML file whose `[broker]` section sets `group_initial_rebalance_delay_ms = 0` and a few
`__consumer_offsets` partitions, for faster consumer-group tests. Both can `restart()` on the
same data dir and port.

The binary is $FJORD_BIN, else $CARGO_TARGET_DIR/debug/fjord, else
~/.cache/fjord/target/debug/fjord, else <repo>/target/debug/fjord.
"""

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
POLL = 0.05
REPO = Path(__file__).resolve().parents[2]


def fjord_bin() -> Path:
    if os.environ.get("FJORD_BIN"):
        return Path(os.environ["FJORD_BIN"])
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "fjord")
    candidates.append(Path.home() / ".cache" / "fjord" / "target" / "debug" / "fjord")
    candidates.append(REPO / "target" / "debug" / "fjord")
    for c in candidates:
        if c.exists():
            return c
    pytest.fail(
        "fjord binary not found (tried %s); run `cargo build --workspace --bins` or set FJORD_BIN"
        % ", ".join(str(c) for c in candidates)
    )


# Ports that must be known before a node starts come from this range, below Linux's ephemeral
# range (32768-60999) that anyone's bind(0) draws from; concurrent harnesses agree through a
# flock per port (held while the lease object lives). Each language's harness has its own
# sub-range (Rust 21000-24999, Java 26000-26999, Go 27000-27499, Node 27500-27999, the Apache
# Kafka reference 28000-28999): see tests/src/ports.rs.
PYTHON_PORTS = range(25000, 26000)
_next_port = [os.getpid() * 7919]


class PortLease:
    def __init__(self, port: int, lock):
        self.port = port
        self._lock = lock

    def release(self):
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def wait_for(what, cond, timeout=20.0):
    """Poll `cond` every 0.1 s until true; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting for %s" % what)


def until(check, what, timeout=20):
    """Poll `check` every 0.2 s until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def produce_one(producer, topic, value=b"v", timeout=30):
    """Produce one record and flush; the delivery error (None on success)."""
    from confluent_kafka import KafkaException

    errors = []
    try:
        producer.produce(topic, value, on_delivery=lambda err, _msg: errors.append(err))
    except KafkaException as e:
        # librdkafka refuses locally while its metadata says the topic is
        # not authorized (until its next metadata refresh).
        return e.args[0]
    producer.flush(timeout)
    assert len(errors) == 1
    return errors[0]


def _try_take(port: int):
    lock_dir = Path(tempfile.gettempdir()) / "fjord-test-ports"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = open(lock_dir / ("%d.lock" % port), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    except OSError:
        lock.close()
        return None
    return lock


def reserve_port() -> PortLease:
    """A port of PYTHON_PORTS that no other harness holds and nothing listens on."""
    span = len(PYTHON_PORTS)
    for _ in range(span):
        _next_port[0] += 31
        port = PYTHON_PORTS.start + _next_port[0] % span
        lock = _try_take(port)
        if lock is not None:
            return PortLease(port, lock)
    raise RuntimeError("no free port in %r" % (PYTHON_PORTS,))


def free_port() -> int:
    """A leased port, kept for the whole test session (tests that only need a number)."""
    lease = reserve_port()
    _session_leases.append(lease)
    return lease.port


_session_leases = []


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def metadata_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """Sends a Metadata v0 request (all topics) and returns the number of brokers listed."""
    client_id = b"fjord-pytest"
    body = struct.pack(">hhih", 3, 0, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(s, 4))
        resp = _read_exact(s, size)
    (corr, n_brokers) = struct.unpack(">ii", resp[:8])
    if corr != 1:
        raise ValueError("correlation id mismatch")
    return n_brokers


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))  # a TOML basic string
    raise TypeError("unsupported TOML value %r" % (v,))


class FjordNode:
    def __init__(self, tmp: Path, name: str, broker_config=None):
        """broker_config None: `fjord dev`; a dict: `fjord server --config` with those
        `[broker]` settings (single node: node_id 1, an empty [controller] section)."""
        self.tmp = tmp
        self._kafka_lease = reserve_port()
        self.port = self._kafka_lease.port
        self.data_dir = tmp / "data"
        self.broker_config = broker_config
        self._rpc_lease = reserve_port() if broker_config is not None else None
        self.controller_port = self._rpc_lease.port if self._rpc_lease else None
        log_dir = Path(os.environ.get("FJORD_E2E_LOG_DIR", Path(tempfile.gettempdir()) / "fjord-e2e-logs"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / ("py-%s-%d-%s.log" % (name, os.getpid(), uuid.uuid4().hex[:6]))
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return "127.0.0.1:%d" % self.port

    def write_config(self) -> Path:
        """The TOML file for `fjord server --config` (only with broker_config)."""
        lines = [
            "node_id = 1",
            "data_dir = %s" % _toml_value(self.data_dir),
            "kafka_addr = %s" % _toml_value(self.bootstrap),
            "rpc_addr = %s" % _toml_value("127.0.0.1:%d" % self.controller_port),
            "http_addr = %s" % _toml_value("127.0.0.1:0"),
            "",
            "[controller]",
            "",
            "[broker]",
        ]
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in sorted(self.broker_config.items())]
        path = self.tmp / "fjord.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self, bin_path: Path) -> list:
        if self.broker_config is None:
            return [str(bin_path), "dev", "--data-dir", str(self.data_dir), "--kafka-addr", self.bootstrap]
        return [str(bin_path), "server", "--config", str(self.write_config())]

    def start(self):
        self.spawn()
        self.wait_ready()

    def spawn(self):
        """Start the process without waiting (cluster nodes wait for each other)."""
        env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")
        bin_path = fjord_bin()
        with open(self.log_path, "ab") as log:
            log.write(b"=== pytest: start %s on %s ===\n" % (str(bin_path).encode(), self.bootstrap.encode()))
            log.flush()
            self.proc = subprocess.Popen(
                self.command(bin_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = "no attempt"
        while True:
            if self.proc.poll() is not None:
                pytest.fail("fjord exited during startup (%s)\n%s" % (self.proc.returncode, self.tail()))
            try:
                if metadata_broker_count("127.0.0.1", self.port) > 0:
                    return
                last = "Metadata lists no broker"
            except (OSError, ValueError, struct.error) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail("fjord not ready within %ss (last: %s)\n%s" % (START_TIMEOUT, last, self.tail()))
            time.sleep(POLL)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail("fjord did not exit within %ss of SIGTERM\n%s" % (STOP_TIMEOUT, self.tail()))

    def restart(self):
        """Graceful stop (SIGTERM), then start again on the same data dir and port."""
        self.stop()
        assert self.proc.returncode == 0, "fjord exited with %s on SIGTERM\n%s" % (self.proc.returncode, self.tail())
        self.start()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 60) -> str:
        return "--- %s ---\n%s" % (self.log_path, "\n".join(self.log().splitlines()[-n:]))

    def cli(self, *args, input=None, timeout=30):
        """Runs `fjord ARGS` against this node (FJORD_BOOTSTRAP)."""
        return subprocess.run(
            [str(fjord_bin()), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, NO_COLOR="1", FJORD_BOOTSTRAP=self.bootstrap),
        )


def _node_name(request) -> str:
    return request.node.name.replace("/", "_").replace("[", "_").replace("]", "")


def _finish(node: FjordNode):
    """Teardown: kill the node; fail if it exited on its own or its log shows a panic."""
    exited = node.proc.poll() if node.proc else None
    node.kill()
    if exited is not None:
        pytest.fail("fjord node exited on its own with status %s\n%s" % (exited, node.tail()))
    log = node.log()
    hits = [log.find(m) for m in ("panicked", "memory allocation of", "fatal runtime error") if m in log]
    if hits:
        i = min(hits)
        start = log.rfind("\n", 0, i) + 1
        pytest.fail("fjord node log %s shows a panic or abort:\n%s" % (node.log_path, log[start : start + 3000]))


@pytest.fixture
def fjord(request, tmp_path):
    node = FjordNode(tmp_path, _node_name(request))
    node.start()
    yield node
    _finish(node)


# `fjord server --config` settings of the `fjord_fast` fixture.
FAST_BROKER_CONFIG = {
    "group_initial_rebalance_delay_ms": 0,
    "offsets_topic_num_partitions": 4,
    "offsets_topic_replication_factor": 1,  # one node (Kafka's default of 3 needs three)
    "transaction_state_log_replication_factor": 1,
}


@pytest.fixture
def fjord_fast(request, tmp_path):
    """A single node from a generated config: no initial rebalance delay, 4 offsets partitions
    with one replica."""
    node = FjordNode(tmp_path, _node_name(request), broker_config=dict(FAST_BROKER_CONFIG))
    node.start()
    yield node
    _finish(node)


@pytest.fixture
def topic():
    return "py-" + uuid.uuid4().hex[:10]


def pytest_runtest_makereport(item, call):
    # Attach the node log tail to failing tests.
    if call.when == "call" and call.excinfo is not None:
        funcargs = getattr(item, "funcargs", {})
        for name in ("fjord", "fjord_fast"):
            node = funcargs.get(name)
            if isinstance(node, FjordNode):
                item.add_report_section("call", "%s log" % name, node.tail(80))
