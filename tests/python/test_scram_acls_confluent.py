"""ACLs for a SCRAM-SHA-512 principal over SASL_SSL, through confluent-kafka (librdkafka).

The node has the authorizer on, super_users = User:alice and no PLAINTEXT back door for the
clients: alice authenticates with PLAIN (users file) and creates carol's SCRAM-SHA-512 credential
with AlterUserScramCredentials. carol (User:carol) authenticates with SCRAM-SHA-512: without ACLs
she sees no topic, her produce fails with TOPIC_AUTHORIZATION_FAILED and her group is refused;
once alice grants her READ/WRITE/DESCRIBE on the topic and READ on the group, her already open
producer, consumer and admin client work without reconnecting.
"""


import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import _finish, _node_name, produce_one, until
from test_sasl import USERS, SaslNode, certs, wait_for  # noqa: F401 (certs is a fixture)

TIMEOUT = 30
CAROL, CAROL_PASSWORD = "carol", "carol-scram-secret"


@pytest.fixture
def node(request, tmp_path, certs, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,openraft=warn,fjord_gateway::connection=debug")
    n = SaslNode(tmp_path, _node_name(request), certs)
    n.broker_config.update(authorizer_enable=True, super_users="User:alice")
    n.start()
    yield n
    _finish(n)


def alice(node):
    """The super user, PLAIN over SASL_SSL."""
    return {
        "bootstrap.servers": node.sasl_ssl_bootstrap,
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(node.certs / "ca.pem"),
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": USERS["alice"],
    }


def carol(node):
    return {
        "bootstrap.servers": node.sasl_ssl_bootstrap,
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(node.certs / "ca.pem"),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": CAROL,
        "sasl.password": CAROL_PASSWORD,
        "topic.metadata.refresh.interval.ms": 500,
    }


def grant(principal, rtype, name, op):
    return AclBinding(rtype, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)


def produce(producer, topic):
    return produce_one(producer, topic, b"granted", TIMEOUT)


def test_scram_principal_refused_until_granted_without_reconnecting(node, topic):
    group = "g-" + topic
    su = AdminClient(alice(node))
    upsert = UserScramCredentialUpsertion(CAROL, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), CAROL_PASSWORD.encode())
    for f in su.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT).values():
        f.result(TIMEOUT)
    su.create_topics([NewTopic(topic, 1, 1)], request_timeout=TIMEOUT)[topic].result(TIMEOUT)

    # Without ACLs: no topic visible, produce and the group refused.
    admin = AdminClient(carol(node))
    wait_for("carol's SCRAM credential", lambda: _lists(admin) is not None)
    assert topic not in _lists(admin)
    wait_for("carol's authentication", lambda: "principal=User:carol" in node.log())
    producer = Producer(dict(carol(node), acks="all"))
    assert produce(producer, topic).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer = Consumer(dict(carol(node), **{"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])

    def refused():
        msg = consumer.poll(0.5)
        return (
            msg is not None
            and msg.error() is not None
            and msg.error().code() in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)
            and msg.error()
        )

    until(refused, "carol's consumer is refused")

    # alice grants carol the topic and the group.
    bindings = [grant("User:carol", ResourceType.TOPIC, topic, op) for op in (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)]
    bindings.append(grant("User:carol", ResourceType.GROUP, group, AclOperation.READ))
    for f in su.create_acls(bindings, request_timeout=TIMEOUT).values():
        f.result(TIMEOUT)

    # The same clients now work.
    until(lambda: topic in (_lists(admin) or ()), "carol sees the topic")
    until(lambda: produce(producer, topic) is None, "carol's producer works after the grant")
    for _ in range(9):
        assert produce(producer, topic) is None
    got = []

    def consumed():
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
        return len(got) >= 10

    until(consumed, "carol's consumer reads in its group", timeout=40)
    assert set(got) == {b"granted"}
    consumer.commit(asynchronous=False)
    consumer.close()


def _lists(admin):
    """The topic names carol's admin client sees, None while it cannot authenticate."""
    try:
        return set(admin.list_topics(timeout=5).topics)
    except KafkaException:
        return None
