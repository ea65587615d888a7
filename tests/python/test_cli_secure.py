"""`fjord --command-config FILE` against secured listeners with the authorizer on.

SASL_SSL: alice (super user, PLAIN from the users file) bootstraps admin's SCRAM-SHA-512
credential with `fjord user add`; admin (super user) then runs topic create/list, acl add/list,
user add/list and quota set/list over SASL_SSL with SCRAM-SHA-512 (the client checks the server's
signature). A wrong password fails with the broker's SASL_AUTHENTICATION_FAILED and a non-zero
exit; a command config naming a missing CA file fails before connecting.

SSL with client_auth=required: alice's certificate maps to User:alice (super user), who runs the
same commands; bob's certificate maps to User:bob, who has no ACLs: he sees no topic and cannot add
ACLs (CLUSTER_AUTHORIZATION_FAILED) until alice grants him DESCRIBE on the topic.

All commands are the real `fjord` binary against a real node; no PLAINTEXT listener is used by
the CLI (the node has one only for the harness to see it ready).
"""

import subprocess

import pytest

from conftest import _finish, _node_name, fjord_bin, until
from test_sasl import USERS, SaslNode
from test_ssl import RULES, SslNode, gen_certs, mtls_settings

ADMIN, ADMIN_PASSWORD = "admin", "admin-scram-secret"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    gen_certs(out, "--node", "n1", "--client", "Alice", "--client", "bob")
    return out


def fjord(props, *args, bootstrap, input=None, timeout=60):
    """Runs `fjord ARGS --command-config props` against `bootstrap` (no PLAINTEXT anywhere)."""
    return subprocess.run(
        [str(fjord_bin()), *args, "--bootstrap-server", bootstrap, "--command-config", str(props)],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def ok(result):
    assert result.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (result.returncode, result.stdout, result.stderr)
    return result.stdout


def write_props(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sasl_node(request, tmp_path, certs, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    n = SaslNode(tmp_path, _node_name(request), certs)
    n.broker_config.update(authorizer_enable=True, super_users="User:alice;User:admin")
    n.start()
    yield n
    _finish(n)


def scram_props(tmp_path, certs, password=ADMIN_PASSWORD, name="admin.properties"):
    # Kafka-style: PEM truststore and the JAAS line, continued over lines.
    return write_props(
        tmp_path / name,
        [
            "# Kafka client properties, as for kafka-topics.sh --command-config",
            "security.protocol=SASL_SSL",
            "ssl.truststore.type=PEM",
            "ssl.truststore.location=%s" % (certs / "ca.pem"),
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\",
            '    username="%s" password="%s";' % (ADMIN, password),
        ],
    )


def test_sasl_ssl_scram_super_user_runs_admin_commands(sasl_node, tmp_path, certs, topic):
    bootstrap = sasl_node.sasl_ssl_bootstrap
    # librdkafka-style keys, PLAIN: the bootstrap admin from the users file.
    alice = write_props(
        tmp_path / "alice.properties",
        [
            "security.protocol=sasl_ssl",
            "ssl.ca.location=%s" % (certs / "ca.pem"),
            "sasl.mechanism=PLAIN",
            "sasl.username=alice",
            "sasl.password=%s" % USERS["alice"],
            "client.id=ignored-with-a-warning",
        ],
    )
    r = fjord(alice, "user", "add", ADMIN, "--mechanism", "SCRAM-SHA-512", "--password-stdin", bootstrap=bootstrap, input=ADMIN_PASSWORD + "\n")
    ok(r)
    assert "ignoring unknown key client.id" in r.stderr

    admin = scram_props(tmp_path, certs)
    # The credential reaches the gateway through the metadata log.
    until(lambda: fjord(admin, "topic", "list", bootstrap=bootstrap).returncode == 0, "admin's SCRAM login works")
    ok(fjord(admin, "topic", "create", topic, "--partitions", "2", "--replication-factor", "1", bootstrap=bootstrap))
    assert topic in ok(fjord(admin, "topic", "list", bootstrap=bootstrap))
    ok(fjord(admin, "acl", "add", "--allow-principal", "User:carol", "--operation", "READ", "--topic", topic, bootstrap=bootstrap))
    acls = ok(fjord(admin, "acl", "list", "--topic", topic, bootstrap=bootstrap))
    assert "User:carol" in acls and "READ" in acls.upper()
    r = fjord(admin, "user", "add", "carol", "--mechanism", "SCRAM-SHA-256", "--password-stdin", bootstrap=bootstrap, input="carol-secret\n")
    ok(r)
    users = ok(fjord(admin, "user", "list", bootstrap=bootstrap))
    assert "carol" in users and "admin" in users and "SCRAM-SHA-512" in users
    ok(fjord(admin, "quota", "set", "--user", "carol", "--config", "producer_byte_rate=1048576", bootstrap=bootstrap))
    quotas = ok(fjord(admin, "quota", "list", "--user", "carol", bootstrap=bootstrap))
    assert "producer_byte_rate" in quotas and "1048576" in quotas
    assert "principal=User:admin" in sasl_node.log()

    # A wrong password: the broker's refusal, non-zero exit, no retry storm.
    wrong = fjord(scram_props(tmp_path, certs, "not-it", "wrong.properties"), "topic", "list", bootstrap=bootstrap)
    assert wrong.returncode != 0
    assert "SASL_AUTHENTICATION_FAILED" in wrong.stderr, wrong.stderr
    assert "SCRAM-SHA-512 authentication as admin" in wrong.stderr, wrong.stderr

    # SCRAM over SASL_PLAINTEXT works the same way.
    plain = write_props(
        tmp_path / "sasl-plaintext.properties",
        ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512",
         "sasl.username=%s" % ADMIN, "sasl.password=%s" % ADMIN_PASSWORD],
    )
    assert topic in ok(fjord(plain, "topic", "list", bootstrap=sasl_node.sasl_bootstrap))


def test_bad_command_configs_fail_clearly(tmp_path, certs):
    # Nothing listens: the file is checked before any connection.
    missing_ca = write_props(
        tmp_path / "missing-ca.properties",
        ["security.protocol=SSL", "ssl.truststore.location=%s" % (tmp_path / "nope.pem")],
    )
    r = fjord(missing_ca, "topic", "list", bootstrap="127.0.0.1:1")
    assert r.returncode != 0
    assert "nope.pem" in r.stderr and "no such file" in r.stderr, r.stderr
    r = fjord(tmp_path / "absent.properties", "topic", "list", bootstrap="127.0.0.1:1")
    assert r.returncode != 0 and "absent.properties" in r.stderr, r.stderr
    bad = write_props(tmp_path / "bad.properties", ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=GSSAPI"])
    r = fjord(bad, "topic", "list", bootstrap="127.0.0.1:1")
    assert r.returncode != 0 and "GSSAPI" in r.stderr, r.stderr


@pytest.fixture
def ssl_node(request, tmp_path, certs, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    n = SslNode(tmp_path, _node_name(request), mtls_settings(certs))
    n.broker_config.update(authorizer_enable=True, super_users="User:alice")
    n.start()
    yield n
    _finish(n)


def mtls_props(tmp_path, certs, client, hostname_check=True):
    lines = [
        "security.protocol=SSL",
        "ssl.truststore.location=%s" % (certs / "ca.pem"),
        "ssl.keystore.type=PEM",
        "ssl.keystore.location=%s" % (certs / ("client-%s.pem" % client)),
        "ssl.key.location=%s" % (certs / ("client-%s.key" % client)),
    ]
    if not hostname_check:
        lines.append("ssl.endpoint.identification.algorithm=")
    return write_props(tmp_path / ("%s.properties" % client), lines)


def test_mtls_principals_admin_commands_and_refusals(ssl_node, tmp_path, certs, topic):
    assert RULES  # alice and bob come from the certificates' CNs through these rules
    bootstrap = ssl_node.ssl_bootstrap
    alice = mtls_props(tmp_path, certs, "Alice")
    bob = mtls_props(tmp_path, certs, "bob", hostname_check=False)

    ok(fjord(alice, "topic", "create", topic, "--partitions", "1", "--replication-factor", "1", bootstrap=bootstrap))
    assert topic in ok(fjord(alice, "topic", "list", bootstrap=bootstrap))
    r = fjord(alice, "user", "add", "dave", "--mechanism", "SCRAM-SHA-512", "--password-stdin", bootstrap=bootstrap, input="dave-secret\n")
    ok(r)
    assert "dave" in ok(fjord(alice, "user", "list", bootstrap=bootstrap))
    ok(fjord(alice, "quota", "set", "--client-id", "slow", "--config", "consumer_byte_rate=2048", bootstrap=bootstrap))
    assert "2048" in ok(fjord(alice, "quota", "list", bootstrap=bootstrap))

    # bob: authenticated by his certificate, authorized for nothing.
    assert topic not in ok(fjord(bob, "topic", "list", bootstrap=bootstrap))
    refused = fjord(bob, "acl", "add", "--allow-principal", "User:bob", "--operation", "ALL", "--cluster", bootstrap=bootstrap)
    assert refused.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr

    ok(fjord(alice, "acl", "add", "--allow-principal", "User:bob", "--operation", "DESCRIBE", "--topic", topic, bootstrap=bootstrap))
    assert "User:bob" in ok(fjord(alice, "acl", "list", bootstrap=bootstrap))
    until(lambda: topic in fjord(bob, "topic", "list", bootstrap=bootstrap).stdout, "bob sees the topic once granted")

    lines = [l for l in ssl_node.log().splitlines() if "serving connection" in l and 'security_protocol="SSL"' in l]
    assert any("principal=User:alice" in l for l in lines) and any("principal=User:bob" in l for l in lines)

    # Without a client certificate the broker refuses the TLS handshake.
    anon = write_props(tmp_path / "anon.properties", ["security.protocol=SSL", "ssl.ca.location=%s" % (certs / "ca.pem")])
    r = fjord(anon, "topic", "list", bootstrap=bootstrap, timeout=60)
    assert r.returncode != 0, r.stdout


def test_hostname_verification_follows_endpoint_identification(ssl_node, tmp_path, certs):
    # A name that reaches the listener but is not among the certificate's SANs
    # (localhost, 127.0.0.1, n1): this machine's host name, when it resolves to 127.0.0.1.
    import socket

    name = socket.gethostname()
    try:
        addr = socket.gethostbyname(name)
    except OSError:
        addr = None
    if addr != "127.0.0.1" or name in ("localhost", "n1"):
        pytest.skip("host name %r does not resolve to 127.0.0.1" % name)
    bootstrap = "%s:%d" % (name, ssl_node.ssl_port)
    checked = fjord(mtls_props(tmp_path, certs, "Alice"), "topic", "list", bootstrap=bootstrap)
    assert checked.returncode != 0 and "TLS handshake" in checked.stderr, checked.stderr
    assert "NotValidForName" in checked.stderr or "not valid for" in checked.stderr.lower(), checked.stderr
    unchecked = mtls_props(tmp_path, certs, "Alice", hostname_check=False)
    # The broker advertises 127.0.0.1, which the certificate names; only the bootstrap is unchecked.
    ok(fjord(unchecked, "topic", "list", bootstrap=bootstrap))
