"""SCRAM-SHA-512 (and -256) with real clients over SASL_SSL and SASL_PLAINTEXT.

NEEDS THE wt-scram MERGE: the user's credentials are created with AlterUserScramCredentials (key
51), which the wt-scram branch serves and publishes into the broker's ScramCredentialStore. Until
then the alteration fails and these tests FAIL (on purpose: they are not skipped).

The user is created over the PLAINTEXT listener (no ACLs in this node), then confluent-kafka,
kafka-python and aiokafka authenticate with SCRAM-SHA-512: admin, produce, consume in a group; a
wrong password fails with Kafka's SCRAM message.
"""

import socket
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from test_sasl import certs, is_closed, node, sasl_authenticate, sasl_handshake, wait_for  # noqa: F401 (fixtures)

USER, PASSWORD = "carol", "carol-scram-secret"


def create_scram_user(node, mechanism=ScramMechanism.SCRAM_SHA_512):
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    upsert = UserScramCredentialUpsertion(USER, ScramCredentialInfo(mechanism, 4096), PASSWORD.encode())
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(timeout=30)
    # The broker learns the credential from the metadata log.
    time.sleep(0.5)


def scram_conf(node, protocol, mechanism="SCRAM-SHA-512", password=PASSWORD):
    conf = {
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": USER,
        "sasl.password": password,
    }
    if protocol == "sasl_ssl":
        conf["bootstrap.servers"] = node.sasl_ssl_bootstrap
        conf["ssl.ca.location"] = str(node.certs / "ca.pem")
    else:
        conf["bootstrap.servers"] = node.sasl_bootstrap
    return conf


@pytest.mark.parametrize("protocol", ["sasl_ssl", "sasl_plaintext"])
def test_confluent_kafka_scram_sha_512(node, topic, protocol):
    create_scram_user(node)
    conf = scram_conf(node, protocol)
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    p = Producer(dict(conf, acks="all"))
    for i in range(200):
        p.produce(topic, value=b"s%d" % i)
    assert p.flush(30) == 0
    c = Consumer(dict(conf, **{"group.id": "g-scram-" + protocol, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 200 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted(b"s%d" % i for i in range(200))
    wait_for("carol's authentication", lambda: "principal=User:carol" in node.log())


def test_kafka_python_and_aiokafka_scram_sha_512(node, topic):
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin import NewTopic as AioNewTopic
    from aiokafka.helpers import create_ssl_context
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic as KpNewTopic

    create_scram_user(node)
    conf = dict(
        bootstrap_servers=node.sasl_ssl_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=str(node.certs / "ca.pem"),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=USER,
        sasl_plain_password=PASSWORD,
    )
    admin = KafkaAdminClient(**conf)
    admin.create_topics([KpNewTopic(topic, num_partitions=2, replication_factor=1)])
    assert topic in admin.list_topics()
    admin.close()
    p = KafkaProducer(acks="all", **conf)
    for i in range(50):
        p.send(topic, value=b"k%d" % i)
    p.flush(30)
    p.close()
    c = KafkaConsumer(topic, group_id="g-kp-scram", auto_offset_reset="earliest", consumer_timeout_ms=15000, **conf)
    assert sorted(m.value for m in c) == sorted(b"k%d" % i for i in range(50))
    c.close()

    async def run():
        aconf = dict(conf)
        aconf.pop("ssl_cafile")
        aconf["ssl_context"] = create_ssl_context(cafile=str(node.certs / "ca.pem"))
        admin = AIOKafkaAdminClient(**aconf)
        await admin.start()
        try:
            await admin.create_topics([AioNewTopic(topic + "-aio", num_partitions=1, replication_factor=1)])
            assert {topic, topic + "-aio"} <= set(await admin.list_topics())
        finally:
            await admin.close()
        c = AIOKafkaConsumer(topic, group_id="g-aio-scram", auto_offset_reset="earliest", **aconf)
        await c.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < 50 and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=1000)).values():
                    got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return got

    assert sorted(asyncio.run(run())) == sorted(b"k%d" % i for i in range(50))


def test_wrong_scram_password_fails_with_kafkas_message(node):
    create_scram_user(node)
    admin = AdminClient(dict(scram_conf(node, "sasl_plaintext", password="wrong"), **{"socket.timeout.ms": 3000}))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    # The raw exchange: client-first, then a client-final with a bad proof.
    with socket.create_connection(("127.0.0.1", node.sasl_port), timeout=10) as s:
        assert sasl_handshake(s, b"SCRAM-SHA-512")[0] == 0
        error, _, server_first, _ = sasl_authenticate(s, b"n,,n=carol,r=abcdefgh")
        assert error == 0 and server_first.startswith(b"r=abcdefgh")
        nonce = server_first.split(b",")[0][2:]
        error, message, _, _ = sasl_authenticate(s, b"c=biws,r=" + nonce + b",p=" + b"A" * 88, correlation_id=3)
        assert error == 58
        assert message == (
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
        )
        assert is_closed(s)
