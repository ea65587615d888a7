"""The cluster under test: deploy/compose's 5-node file, driven through docker-compose.

Nodes are the compose services fjord-1..fjord-N; the harness reaches each node's Kafka EXTERNAL
listener and HTTP port on the host (ports 29090+N and 29640+N, as the compose file publishes
them). Containers are found by service name, so the compose project name is free.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPOSE_5 = REPO / "deploy" / "compose" / "docker-compose.5.yml"
KAFKA_PORT_BASE = 29090
HTTP_PORT_BASE = 29640


class ClusterError(Exception):
    pass


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) if present, else docker-compose (v1)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ClusterError("neither `docker compose` nor docker-compose is installed "
                       "(apt-get install docker-compose)")


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def run(cmd: list[str], timeout: float = 120, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class Node:
    node_id: int
    service: str
    container: str = ""

    @property
    def kafka_port(self) -> int:
        return KAFKA_PORT_BASE + self.node_id

    @property
    def http_port(self) -> int:
        return HTTP_PORT_BASE + self.node_id


class Cluster:
    def __init__(self, project: str, env: dict[str, str], nodes: int = 5,
                 compose_file: Path = COMPOSE_5):
        self.project = project
        self.compose_file = compose_file
        # The compose file takes the image and the broker settings from these variables.
        self.env = {**os.environ, **env}
        self.nodes = [Node(i, f"fjord-{i}") for i in range(1, nodes + 1)]
        self._compose = compose_command()

    # ------------------------------------------------------------------ compose
    def compose(self, *args: str, timeout: float = 180, check: bool = True):
        cmd = [*self._compose, "-p", self.project, "-f", str(self.compose_file), *args]
        return run(cmd, timeout=timeout, check=check, env=self.env)

    def check_ports_free(self) -> None:
        """Fails clearly when another cluster (say a compose cluster left running) holds
        the published ports, instead of a half-started project."""
        for node in self.nodes:
            for port in (node.kafka_port, node.http_port):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError as err:
                        raise ClusterError(
                            f"port {port} ({node.service}) is in use: {err}; is another Fjord "
                            "compose cluster running? (docker ps)") from err

    def up(self) -> None:
        self.check_ports_free()
        self.compose("up", "-d")
        for node in self.nodes:
            cid = self.compose("ps", "-q", node.service).stdout.strip()
            if not cid:
                raise ClusterError(f"no container for {node.service}")
            node.container = cid

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", timeout=300, check=False)

    def logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            out = run(["docker", "logs", "--timestamps", node.container or node.service],
                      check=False, timeout=60)
            (dest / f"{node.service}.log").write_text(out.stdout + out.stderr)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.kafka_port}" for n in self.nodes)

    # ------------------------------------------------------------------ state
    def inspect(self, node: Node) -> dict:
        out = run(["docker", "inspect", node.container])
        return json.loads(out.stdout)[0]

    def pid(self, node: Node) -> int:
        return int(self.inspect(node)["State"]["Pid"])

    def ip(self, node: Node) -> str:
        networks = self.inspect(node)["NetworkSettings"]["Networks"]
        for net in networks.values():
            if net.get("IPAddress"):
                return net["IPAddress"]
        raise ClusterError(f"{node.service} has no IP address")

    def running(self, node: Node) -> bool:
        return bool(self.inspect(node)["State"]["Running"])

    def exit_code(self, node: Node) -> int:
        return int(self.inspect(node)["State"]["ExitCode"])

    def http_get(self, node: Node, path: str, timeout: float = 2.0) -> tuple[int, str]:
        url = f"http://127.0.0.1:{node.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
        except OSError as err:
            return 0, str(err)

    def ready(self, node: Node) -> bool:
        return self.http_get(node, "/readyz")[0] == 200

    def wait_ready(self, timeout: float = 120) -> float:
        """Waits until every node answers /readyz with 200; returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if all(self.ready(n) for n in self.nodes):
                return time.monotonic() - t0
            time.sleep(0.5)
        states = {n.service: self.http_get(n, "/readyz") for n in self.nodes}
        raise ClusterError(f"cluster not ready after {timeout:.0f}s: {states}")

    def controller_leader(self) -> Node | None:
        """The node whose /metrics says it leads the controller quorum, if any answers."""
        for node in self.nodes:
            status, body = self.http_get(node, "/metrics", timeout=1.0)
            if status != 200:
                continue
            for line in body.splitlines():
                if line.startswith("fjord_controller_is_leader") and line.split()[-1] in ("1", "1.0"):
                    return node
        return None
