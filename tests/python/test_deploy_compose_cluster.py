"""deploy/compose/docker-compose.yml for real: three containers of the image that
scripts/build-image makes from the test binary, clients on the host through the EXTERNAL
ports, a client inside the compose network through INTERNAL, one node SIGKILLed by
`docker kill` while an acks=all producer runs, and every acknowledged record read back.

Skipped without Docker and docker-compose / `docker compose`, or when the compose file's
host ports (29091-29093, 29641-29643) are taken (e.g. a cluster of it already runs).
"""

import os
import socket
import subprocess
import time
import uuid

import pytest

from conftest import REPO, fjord_bin
from test_deploy import COMPOSE_FILES, compose_commands, docker, docker_available

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

IMAGE = "fjord:pytest"
NODES = 3
BOOTSTRAP = ",".join(f"localhost:{29090 + n}" for n in range(1, NODES + 1))
HOST_PORTS = [29090 + n for n in range(1, NODES + 1)] + [29640 + n for n in range(1, NODES + 1)]


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class ComposeCluster:
    def __init__(self, tool, project):
        self.tool = tool
        self.project = project
        self.file = COMPOSE_FILES[NODES]

    def compose(self, *args, timeout=120):
        # The file's defaults, whatever the caller's environment says; only the image differs.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FJORD_") and k != "RUST_LOG"}
        env["FJORD_IMAGE"] = IMAGE
        r = subprocess.run(
            self.tool + ["-p", self.project, "-f", str(self.file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        assert r.returncode == 0, f"{' '.join(self.tool)} {' '.join(args)}: {r.stderr}"
        return r.stdout

    def container(self, n: int) -> str:
        """By the labels both compose versions set (the names differ between them)."""
        out = docker(
            "ps", "-aq",
            "-f", f"label=com.docker.compose.project={self.project}",
            "-f", f"label=com.docker.compose.service=fjord-{n}",
        ).stdout.split()
        assert len(out) == 1, f"fjord-{n}: containers {out}"
        return out[0]

    def health(self, n: int) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.container(n)).stdout.strip()

    def logs(self) -> str:
        return "\n".join(
            f"--- fjord-{n} ---\n" + docker("logs", "--tail", "40", self.container(n), check=False).stderr
            for n in range(1, NODES + 1)
        )


@pytest.fixture
def cluster():
    if not docker_available():
        pytest.fail("no Docker daemon reachable (`docker info` fails): scripts/test starts dockerd as root; otherwise start a Docker engine")
    tools = compose_commands()
    if not tools:
        pytest.fail("neither `docker compose` nor docker-compose is installed (Debian: apt-get install docker-compose; scripts/test does it as root)")
    taken = [p for p in HOST_PORTS if port_taken(p)]
    if taken:
        pytest.fail(f"host ports {taken} are in use (a compose cluster already runs?)")
    r = subprocess.run(
        [str(REPO / "scripts" / "build-image"), "--binary", str(fjord_bin()), "--tag", IMAGE],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, f"scripts/build-image: {r.stdout}{r.stderr}"
    c = ComposeCluster(tools[0], f"fjordpytest{uuid.uuid4().hex[:6]}")
    try:
        started = time.monotonic()
        c.compose("up", "-d")
        deadline = started + 90
        while time.monotonic() < deadline:
            if all(c.health(n) == "healthy" for n in range(1, NODES + 1)):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"not all nodes healthy after 90 s\n{c.logs()}")
        print(f"compose cluster healthy {time.monotonic() - started:.1f}s after `up -d`")
        yield c
    finally:
        try:
            c.compose("down", "-v", "-t", "5")
        except AssertionError as e:
            print(e)


def test_compose_cluster_keeps_acked_records_when_a_node_is_killed(cluster):
    # Host clients see every broker at its EXTERNAL address.
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    brokers = admin.list_topics(timeout=15).brokers
    assert {b.id: (b.host, b.port) for b in brokers.values()} == {
        n: ("localhost", 29090 + n) for n in range(1, NODES + 1)
    }
    topic = f"deploy-{uuid.uuid4().hex[:6]}"
    # Replication factor 3 and min.insync.replicas 2 are the cluster's defaults (fjord.toml).
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(30)
    described = admin.list_topics(topic, timeout=15).topics[topic]
    assert all(len(p.replicas) == 3 for p in described.partitions.values())

    # A client inside the compose network sees the INTERNAL addresses.
    inside = docker(
        "run", "--rm", "--network", f"{cluster.project}_default", IMAGE,
        "topic", "describe", topic, "-b", "fjord-1:9092",
        check=False, timeout=60,
    )
    assert inside.returncode == 0, inside.stderr
    status = docker(
        "run", "--rm", "--network", f"{cluster.project}_default", IMAGE,
        "cluster", "status", "-b", "fjord-1:9092", timeout=60,
    ).stdout
    for n in range(1, NODES + 1):
        assert f"fjord-{n}:9092" in status, status

    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True,
         "delivery.timeout.ms": 60000, "linger.ms": 5}
    )

    def produce(start, count):
        for i in range(start, start + count):
            producer.produce(topic, value=f"v{i}".encode(), key=str(i).encode(), on_delivery=on_delivery)
            producer.poll(0)
            time.sleep(0.005)

    produce(0, 300)
    assert producer.flush(30) == 0
    before_kill = len(acked)
    assert before_kill == 300, errors

    killed = time.monotonic()
    docker("kill", "-s", "KILL", cluster.container(2))
    produce(300, 300)
    remaining = producer.flush(70)
    print(f"600 records acked by {time.monotonic() - killed:.1f}s after the SIGKILL")
    assert remaining == 0 and not errors, f"{remaining} unflushed, errors {errors[:3]}\n{cluster.logs()}"
    assert len(acked) == 600

    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": f"check-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < len(acked) and time.monotonic() < deadline:
        for m in consumer.consume(500, 1.0):
            if not m.error():
                seen[m.value().decode()] = (m.partition(), m.offset())
    consumer.close()
    missing = [v for v in acked if seen.get(v) != acked[v]]
    assert not missing, f"{len(missing)} acknowledged records missing or moved, e.g. {missing[:5]}"
