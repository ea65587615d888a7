"""kcat (Debian's build, librdkafka 2.0) over SASL_SSL with SCRAM-SHA-512 and over mutual TLS:
metadata, then a produce/consume round trip; the broker logs the principal each one got
(User:carol from SCRAM, User:alice from the client certificate's CN).

librdkafka 2.0 only starts SASL when ApiVersions lists SaslHandshake v0 (Kafka 4.1 does), and its
SCRAM client-final repeats its own nonce (Kafka accepts a nonce that ends with the server's);
Fjord lists 0-1 and answers a v0 handshake UNSUPPORTED_VERSION, then closes (checked raw here)."""

import socket
import struct

import pytest

from conftest import _finish, _node_name
from test_kcat import kcat, _kcat_installed  # noqa: F401 (autouse fixture)
from test_sasl import SaslNode, is_closed, kstring, read_frame, wait_for
from test_sasl import request as raw_request
from test_sasl_scram import PASSWORD, USER, create_scram_user
from test_ssl import SslNode, gen_certs, mtls_settings

LINES = ["secure kcat line %d" % i for i in range(50)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    gen_certs(out, "--node", "n1", "--client", "Alice")
    return out


def _started(node, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    node.start()
    return node


def round_trip(conf, topic):
    x = [a for k, v in conf.items() for a in ("-X", "%s=%s" % (k, v))]
    kcat(*x, "-t", topic, "-P", "-p", "0", "-X", "acks=all", input="\n".join(LINES) + "\n")
    out = kcat(*x, "-t", topic, "-C", "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == LINES
    assert topic in kcat(*x, "-L")


def test_kcat_sasl_ssl_scram_sha_512(request, tmp_path, certs, monkeypatch, topic):
    node = _started(SaslNode(tmp_path, _node_name(request), certs), monkeypatch)
    try:
        create_scram_user(node)
        r = node.cli("topic", "create", topic, "--partitions", "1", "--replication-factor", "1")
        assert r.returncode == 0, r.stderr
        conf = {
            "bootstrap.servers": node.sasl_ssl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": USER,
            "sasl.password": PASSWORD,
            "ssl.ca.location": certs / "ca.pem",
        }
        round_trip(conf, topic)
        wait_for("carol's authentication", lambda: "principal=User:%s" % USER in node.log())

        # A SaslHandshake v0 (unframed tokens would follow) is refused, not misread.
        with socket.create_connection(("127.0.0.1", node.sasl_port), timeout=10) as s:
            s.sendall(raw_request(17, 0, 7, kstring(b"PLAIN")))
            frame = read_frame(s)
            assert frame is not None, "closed before the SaslHandshake v0 response"
            assert struct.unpack(">ih", frame[:6]) == (7, 35)  # UNSUPPORTED_VERSION
            assert is_closed(s)
    finally:
        _finish(node)


def test_kcat_mtls(request, tmp_path, certs, monkeypatch, topic):
    node = _started(SslNode(tmp_path, _node_name(request), mtls_settings(certs)), monkeypatch)
    try:
        r = node.cli("topic", "create", topic, "--partitions", "1", "--replication-factor", "1")
        assert r.returncode == 0, r.stderr
        conf = {
            "bootstrap.servers": node.ssl_bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": certs / "ca.pem",
            "ssl.certificate.location": certs / "client-Alice.pem",
            "ssl.key.location": certs / "client-Alice.key",
        }
        round_trip(conf, topic)
        ssl_lines = [l for l in node.log().splitlines() if "serving connection" in l and 'security_protocol="SSL"' in l]
        assert ssl_lines and all("principal=User:alice" in l for l in ssl_lines), ssl_lines[:3]
    finally:
        _finish(node)
