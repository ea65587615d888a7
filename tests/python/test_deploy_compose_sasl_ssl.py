"""deploy/compose/docker-compose.sasl-ssl.yml for real: certificates and the admin password
from deploy/compose/sasl-ssl-setup, three containers of the image scripts/build-image makes
from the test binary, fjord-init setting User:admin's SCRAM-SHA-512 credential, then
confluent-kafka on the host over SASL_SSL as the admin: a topic with 3 replicas, acks=all
produce, consume back. A wrong password is refused; a SCRAM user the admin did not grant
anything sees no topic (the authorizer is on).

Its own project name and host ports (29191-29193, 29741-29743), so it runs beside
test_deploy_compose_cluster.py's cluster.
"""

import os
import subprocess
import time
import uuid

import pytest

from conftest import REPO, fjord_bin
from test_deploy import COMPOSE, compose_commands, docker, docker_available
from test_deploy_compose_cluster import IMAGE, port_taken

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

NODES = 3
COMPOSE_FILE = COMPOSE / "docker-compose.sasl-ssl.yml"
BOOTSTRAP = ",".join(f"localhost:{29190 + n}" for n in range(1, NODES + 1))
HOST_PORTS = [29190 + n for n in range(1, NODES + 1)] + [29740 + n for n in range(1, NODES + 1)]


class SecureCluster:
    def __init__(self, tool, project, secrets):
        self.tool = tool
        self.project = project
        self.secrets = secrets

    def compose(self, *args, timeout=120):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FJORD_") and k != "RUST_LOG"}
        env["FJORD_IMAGE"] = IMAGE
        env["FJORD_SECRETS_DIR"] = str(self.secrets)
        r = subprocess.run(
            self.tool + ["-p", self.project, "-f", str(COMPOSE_FILE), *args],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        assert r.returncode == 0, f"{' '.join(self.tool)} {' '.join(args)}: {r.stderr}"
        return r.stdout

    def container(self, service: str) -> str:
        out = docker(
            "ps", "-aq",
            "-f", f"label=com.docker.compose.project={self.project}",
            "-f", f"label=com.docker.compose.service={service}",
        ).stdout.split()
        assert len(out) == 1, f"{service}: containers {out}"
        return out[0]

    def inspect(self, service: str, fmt: str) -> str:
        return docker("inspect", "-f", fmt, self.container(service)).stdout.strip()

    def logs(self) -> str:
        return "\n".join(
            f"--- {s} ---\n" + docker("logs", "--tail", "30", self.container(s), check=False).stderr
            for s in [f"fjord-{n}" for n in range(1, NODES + 1)] + ["fjord-init"]
        )

    def admin_password(self) -> str:
        line = (self.secrets / "admin.env").read_text().strip()
        assert line.startswith("FJORD_ADMIN_PASSWORD=")
        return line.split("=", 1)[1]

    def client_config(self, user: str, password: str) -> dict:
        return {
            "bootstrap.servers": BOOTSTRAP,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password,
            "ssl.ca.location": str(self.secrets / "ca.pem"),
        }


@pytest.fixture
def secure_cluster(tmp_path):
    if not docker_available():
        pytest.fail("no Docker daemon reachable (`docker info` fails): scripts/test starts dockerd as root; otherwise start a Docker engine")
    tools = compose_commands()
    if not tools:
        pytest.fail("neither `docker compose` nor docker-compose is installed")
    taken = [p for p in HOST_PORTS if port_taken(p)]
    if taken:
        pytest.fail(f"host ports {taken} are in use (a sasl-ssl compose cluster already runs?)")
    r = subprocess.run(
        [str(REPO / "scripts" / "build-image"), "--binary", str(fjord_bin()), "--tag", IMAGE],
        capture_output=True, text=True, timeout=90,
    )
    assert r.returncode == 0, f"scripts/build-image: {r.stdout}{r.stderr}"
    secrets = tmp_path / "sasl-ssl"
    r = subprocess.run(
        [str(COMPOSE / "sasl-ssl-setup"), "--dir", str(secrets)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, f"sasl-ssl-setup: {r.stdout}{r.stderr}"
    c = SecureCluster(tools[0], f"fjordsecpytest{uuid.uuid4().hex[:6]}", secrets)
    try:
        started = time.monotonic()
        # Returns once fjord-1 is healthy and fjord-init was started (depends_on).
        c.compose("up", "-d", timeout=150)
        deadline = started + 120
        while time.monotonic() < deadline:
            healthy = all(c.inspect(f"fjord-{n}", "{{.State.Health.Status}}") == "healthy" for n in range(1, NODES + 1))
            init = c.inspect("fjord-init", "{{.State.Status}} {{.State.ExitCode}}")
            if healthy and init == "exited 0":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"cluster not healthy or fjord-init not done after 120 s\n{c.logs()}")
        print(f"sasl-ssl compose cluster healthy and admin created {time.monotonic() - started:.1f}s after `up -d`")
        yield c
    finally:
        try:
            c.compose("down", "-v", "-t", "5")
        except AssertionError as e:
            print(e)


def test_sasl_ssl_compose_cluster_serves_the_scram_admin_and_refuses_others(secure_cluster):
    c = secure_cluster
    admin_conf = c.client_config("admin", c.admin_password())
    admin = AdminClient(admin_conf)
    brokers = admin.list_topics(timeout=20).brokers
    assert {b.id: (b.host, b.port) for b in brokers.values()} == {
        n: ("localhost", 29190 + n) for n in range(1, NODES + 1)
    }

    topic = f"secure-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[topic].result(30)
    described = admin.list_topics(topic, timeout=15).topics[topic]
    assert all(len(p.replicas) == 3 for p in described.partitions.values())

    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or msg.value())

    producer = Producer({**admin_conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(200):
        producer.produce(topic, value=f"v{i}".encode(), key=str(i).encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(acked) == 200 and not errors, errors[:3]

    # Through a group (the group coordinator's ACL checks pass for a super user).
    consumer = Consumer({**admin_conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 60
    while len(seen) < 200 and time.monotonic() < deadline:
        for m in consumer.consume(500, 1.0):
            if not m.error():
                seen.add(m.value())
    consumer.close()
    assert seen == set(acked)

    # A wrong password: SASL authentication fails (librdkafka reports _AUTHENTICATION), the
    # client gets no metadata.
    reported = []
    wrong = AdminClient({**c.client_config("admin", "not-the-password"), "error_cb": reported.append})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=10)
    wrong.poll(1)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in reported), reported

    # A SCRAM user without ACLs authenticates but sees no topic.
    alter = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bob-secret")]
    )
    for f in alter.values():
        f.result(15)
    time.sleep(1)  # the credential reaches every broker's image
    bob = AdminClient(c.client_config("bob", "bob-secret"))
    md = bob.list_topics(timeout=15)
    assert len(md.brokers) == NODES, "bob authenticated"
    assert topic not in md.topics, md.topics
    assert topic in admin.list_topics(timeout=15).topics
