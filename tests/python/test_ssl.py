"""SSL listeners with real clients: confluent-kafka (librdkafka) and kafka-python produce, consume
in a group and use the admin API over TLS with a client certificate (ssl.client.auth=required);
without a certificate they are refused; the principal comes from the certificate through
ssl.principal.mapping.rules; a certificate replaced on disk is served to new connections without a
restart (and a broken replacement keeps the old one); a plaintext client on the SSL port is closed
while a silent one does not hold up anybody else.

Certificates come from scripts/gen-certs. The node also has a PLAINTEXT listener, which the
harness uses to see it ready.
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import FAST_BROKER_CONFIG, REPO, FjordNode, _finish, _node_name, _toml_value, reserve_port, wait_for

GEN_CERTS = REPO / "scripts" / "gen-certs"
RULES = "RULE:^CN=(.*?),OU=clients,.*$/$1/L,DEFAULT"


def gen_certs(out: Path, *args):
    subprocess.run([str(GEN_CERTS), "--dir", str(out), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    gen_certs(out, "--node", "n1", "--client", "Alice", "--client", "bob")
    return out


class SslNode(FjordNode):
    """A node with a PLAINTEXT and an SSL listener; `ssl` holds its [ssl] settings."""

    def __init__(self, tmp, name, ssl_settings):
        super().__init__(tmp, name, broker_config=dict(FAST_BROKER_CONFIG))
        self._ssl_lease = reserve_port()
        self.ssl_port = self._ssl_lease.port
        self.ssl = ssl_settings

    @property
    def ssl_bootstrap(self):
        return "127.0.0.1:%d" % self.ssl_port

    def write_config(self):
        lines = [
            "node_id = 1",
            "data_dir = %s" % _toml_value(self.data_dir),
            "listeners = [%s, %s]"
            % (_toml_value("PLAINTEXT://" + self.bootstrap), _toml_value("SECURE://" + self.ssl_bootstrap)),
            'listener_security_protocol_map = ["PLAINTEXT:PLAINTEXT", "SECURE:SSL"]',
            "rpc_addr = %s" % _toml_value("127.0.0.1:%d" % self.controller_port),
            'http_addr = "127.0.0.1:0"',
            "[controller]",
            "[broker]",
        ]
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in sorted(self.broker_config.items())]
        lines.append("[ssl]")
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in sorted(self.ssl.items())]
        path = self.tmp / "fjord.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def mtls_settings(certs: Path, keystore_dir: Path = None):
    keystore_dir = keystore_dir or certs
    return {
        "keystore_location": keystore_dir / "node-n1.pem",
        "key_location": keystore_dir / "node-n1.key",
        "truststore_location": certs / "ca.pem",
        "client_auth": "required",
        "principal_mapping_rules": RULES,
        "reload_interval_ms": 300,
    }


@pytest.fixture
def node(request, tmp_path, certs, monkeypatch):
    # The connection's debug line names each connection's principal.
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    n = SslNode(tmp_path, _node_name(request), mtls_settings(certs))
    n.start()
    yield n
    _finish(n)


def rdkafka_ssl(node, certs, client="Alice"):
    conf = {
        "bootstrap.servers": node.ssl_bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": str(certs / "ca.pem"),
    }
    if client:
        conf["ssl.certificate.location"] = str(certs / ("client-%s.pem" % client))
        conf["ssl.key.location"] = str(certs / ("client-%s.key" % client))
    return conf


def test_confluent_kafka_over_mtls_produce_group_consume_admin(node, certs, topic):
    conf = rdkafka_ssl(node, certs)
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    assert topic in admin.list_topics(timeout=10).topics

    p = Producer(dict(conf, acks="all"))
    for i in range(300):
        p.produce(topic, value=b"v%d" % i, partition=i % 3)
    assert p.flush(30) == 0

    c = Consumer(dict(conf, **{"group.id": "g-ssl", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 300 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.commit(asynchronous=False)
    c.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(300))

    # The principal from the certificate: CN=Alice,OU=clients,O=Fjord mapped by the rule, lower-cased.
    wait_for("the principal in the log", lambda: 'principal=User:alice' in node.log())
    ssl_lines = [l for l in node.log().splitlines() if 'serving connection' in l and 'security_protocol="SSL"' in l]
    assert ssl_lines and all("principal=User:alice" in l for l in ssl_lines), ssl_lines[:3]


def test_kafka_python_over_mtls(node, certs, topic):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic as KNewTopic

    conf = dict(
        bootstrap_servers=node.ssl_bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(certs / "ca.pem"),
        ssl_certfile=str(certs / "client-bob.pem"),
        ssl_keyfile=str(certs / "client-bob.key"),
    )
    admin = KafkaAdminClient(**conf)
    admin.create_topics([KNewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    p = KafkaProducer(acks="all", **conf)
    for i in range(100):
        p.send(topic, value=b"k%d" % i)
    p.flush(30)
    p.close()
    c = KafkaConsumer(topic, group_id="g-kp-ssl", auto_offset_reset="earliest", consumer_timeout_ms=15000, **conf)
    got = [m.value for m in c]
    c.commit()
    c.close()
    assert sorted(got) == sorted(b"k%d" % i for i in range(100))
    wait_for("bob's principal", lambda: "principal=User:bob" in node.log())


def test_aiokafka_over_mtls_produce_group_consume(node, certs, topic):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    context = create_ssl_context(
        cafile=str(certs / "ca.pem"),
        certfile=str(certs / "client-bob.pem"),
        keyfile=str(certs / "client-bob.key"),
    )
    conf = dict(bootstrap_servers=node.ssl_bootstrap, security_protocol="SSL", ssl_context=context)
    expected = sorted(b"a%d" % i for i in range(100))

    async def run():
        admin = AIOKafkaAdminClient(**conf)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
            assert topic in await admin.list_topics()
        finally:
            await admin.close()
        p = AIOKafkaProducer(acks="all", **conf)
        await p.start()
        try:
            for i in range(100):
                await p.send(topic, value=b"a%d" % i)
            await p.flush()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, group_id="g-aio-ssl", auto_offset_reset="earliest", enable_auto_commit=False, **conf)
        await c.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < 100 and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=1000)).values():
                    got.extend(m.value for m in msgs)
            await c.commit()
        finally:
            await c.stop()
        return got

    assert sorted(asyncio.run(run())) == expected
    ssl_lines = [l for l in node.log().splitlines() if "serving connection" in l and 'security_protocol="SSL"' in l]
    assert ssl_lines and all("principal=User:bob" in l for l in ssl_lines), ssl_lines[:3]


def test_a_client_without_a_certificate_is_refused(node, certs, topic):
    admin = AdminClient(dict(rdkafka_ssl(node, certs, client=None), **{"socket.timeout.ms": 3000}))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=node.ssl_bootstrap,
            security_protocol="SSL",
            ssl_cafile=str(certs / "ca.pem"),
            max_block_ms=5000,
        )
    assert "failed authentication (SSL handshake failed)" in node.log()


def api_versions_frame():
    client_id = b"raw"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def server_cert(node, certs):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "client-Alice.pem"), str(certs / "client-Alice.key"))
    with socket.create_connection(("127.0.0.1", node.ssl_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def test_plaintext_client_on_the_ssl_port_is_closed_and_a_silent_one_delays_nobody(node, certs):
    # A client that connects and says nothing holds only its own slot.
    silent = [socket.create_connection(("127.0.0.1", node.ssl_port), timeout=5) for _ in range(5)]
    start = time.monotonic()
    assert server_cert(node, certs)
    assert time.monotonic() - start < 2.0
    # A plaintext Kafka request to the SSL port: the connection is closed, not left hanging.
    with socket.create_connection(("127.0.0.1", node.ssl_port), timeout=5) as s:
        s.sendall(api_versions_frame())
        s.settimeout(5)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        # At most a TLS alert, never a Kafka response.
        assert not data or data[0] == 0x15, data[:16]
    for s in silent:
        s.close()
    # The plaintext listener answers as before.
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(api_versions_frame())
        assert len(s.recv(4)) == 4


def test_a_certificate_replaced_on_disk_is_used_by_new_connections(request, tmp_path, certs, monkeypatch):
    live = tmp_path / "live"
    live.mkdir()
    for f in ("node-n1.pem", "node-n1.key"):
        shutil.copy(certs / f, live / f)
    n = SslNode(tmp_path, _node_name(request), mtls_settings(certs, keystore_dir=live))
    n.start()
    try:
        before = server_cert(n, certs)
        # A new certificate from the same CA, written over the live files.
        fresh = tmp_path / "fresh"
        gen_certs(fresh, "--ca-dir", str(certs), "--node", "n1")
        for f in ("node-n1.key", "node-n1.pem"):
            shutil.copy(fresh / f, live / (f + ".tmp"))
            os.replace(live / (f + ".tmp"), live / f)
        wait_for("the new certificate", lambda: server_cert(n, certs) == _der(fresh))
        assert before != server_cert(n, certs)
        assert "SSL certificates reloaded" in n.log()
        # A broken replacement: the error is logged and the last good certificate stays.
        (live / "node-n1.pem").write_text("not a certificate\n")
        wait_for("the reload error", lambda: "do not load; keeping the previous ones" in n.log())
        assert server_cert(n, certs) == _der(fresh)
    finally:
        _finish(n)


def _der(dir_: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert((dir_ / "node-n1.pem").read_text())


def test_requested_client_auth_anonymous_without_certificate_and_unmapped_subjects_refused(
    request, tmp_path, certs, monkeypatch
):
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    settings = dict(mtls_settings(certs), client_auth="requested", principal_mapping_rules="RULE:^CN=Alice,.*$/alice/")
    n = SslNode(tmp_path, _node_name(request), settings)
    n.start()
    try:
        # No certificate: served as User:ANONYMOUS.
        md = AdminClient(rdkafka_ssl(n, certs, client=None)).list_topics(timeout=10)
        assert md.brokers
        wait_for("an anonymous SSL connection", lambda: 'security_protocol="SSL" principal=User:ANONYMOUS' in n.log())
        # A certificate the rules map: its name.
        assert AdminClient(rdkafka_ssl(n, certs, client="Alice")).list_topics(timeout=10).brokers
        wait_for("alice", lambda: "principal=User:alice" in n.log())
        # A valid certificate no rule applies to: refused, as Kafka fails its authentication.
        with pytest.raises(KafkaException):
            AdminClient(dict(rdkafka_ssl(n, certs, client="bob"), **{"socket.timeout.ms": 3000})).list_topics(timeout=5)
        assert "no principal for the client certificate" in n.log()
        assert "principal=User:CN=bob" not in n.log()
    finally:
        _finish(n)
