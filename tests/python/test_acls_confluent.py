"""ACLs against one Fjord node with the authorizer on, through confluent-kafka
(librdkafka): every PLAINTEXT client is User:ANONYMOUS, as in Kafka.

One node walks through the phases, restarting with other `[broker]`
settings: authorizer off (make topics), on without ACLs (everything
refused, no topic visible), super.users (everything allowed; grant
ANONYMOUS ALTER on the cluster), on again (the grant survived the restart;
topic grants take effect on open clients; DENY beats ALLOW; prefixed
patterns; DescribeAcls/DeleteAcls)."""


from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from conftest import FAST_BROKER_CONFIG, FjordNode, _finish, _node_name, produce_one, until

import pytest

TIMEOUT = 30
ANON = "User:ANONYMOUS"


@pytest.fixture
def node(request, tmp_path):
    node = FjordNode(tmp_path, _node_name(request), broker_config=dict(FAST_BROKER_CONFIG))
    node.start()
    yield node
    _finish(node)


def reconfigure(node, **settings):
    node.broker_config.update(settings)
    node.restart()


def acl(name, op, perm=AclPermissionType.ALLOW, rtype=ResourceType.TOPIC, pattern=ResourcePatternType.LITERAL):
    return AclBinding(rtype, name, pattern, ANON, "*", op, perm)


def create_acls(admin, bindings):
    for f in admin.create_acls(bindings, request_timeout=TIMEOUT).values():
        f.result(TIMEOUT)


def test_acls_end_to_end(node, topic):
    other, prefixed = topic + "-other", "pre-" + topic
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    fs = admin.create_topics([NewTopic(t, 1, 1) for t in (topic, other, prefixed)], request_timeout=TIMEOUT)
    for f in fs.values():
        f.result(TIMEOUT)
    # Without an authorizer the ACL apis answer SECURITY_DISABLED, as Kafka.
    with pytest.raises(KafkaException) as e:
        create_acls(admin, [acl(topic, AclOperation.READ)])
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED

    # Phase: authorizer on, no ACLs.
    reconfigure(node, authorizer_enable=True)
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    assert admin.list_topics(timeout=TIMEOUT).topics == {}, "no topic is visible"
    producer = Producer({"bootstrap.servers": node.bootstrap, "topic.metadata.refresh.interval.ms": 500})
    assert produce_one(producer, topic, timeout=TIMEOUT).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    fs = admin.create_topics([NewTopic("new-" + topic, 1, 1)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        fs["new-" + topic].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        create_acls(admin, [acl(topic, AclOperation.READ)])
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    def group_refused():
        msg = consumer.poll(0.5)
        return msg is not None and msg.error() is not None and msg.error().code() in (
            KafkaError.GROUP_AUTHORIZATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
        ) and msg.error()
    err = until(group_refused, "the consumer is refused")
    consumer.close()

    # Phase: ANONYMOUS is a super user: everything is allowed. Grant it
    # ALTER on the cluster, which must survive the next restart.
    reconfigure(node, super_users="User:admin;User:ANONYMOUS")
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    assert topic in admin.list_topics(timeout=TIMEOUT).topics
    create_acls(admin, [acl("kafka-cluster", AclOperation.ALTER, rtype=ResourceType.BROKER)])

    # Phase: not a super user any more; the cluster grant is still there.
    reconfigure(node, super_users="")
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    listed = admin.describe_acls(
        AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY),
        request_timeout=TIMEOUT,
    ).result(TIMEOUT)
    assert [(b.restype, b.name, b.operation) for b in listed] == [
        (ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER)
    ]
    producer = Producer({"bootstrap.servers": node.bootstrap, "topic.metadata.refresh.interval.ms": 500})
    assert produce_one(producer, topic, timeout=TIMEOUT).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert topic not in admin.list_topics(timeout=TIMEOUT).topics

    # A grant works for the clients already connected.
    create_acls(admin, [acl(topic, AclOperation.WRITE)])
    assert topic in admin.list_topics(timeout=TIMEOUT).topics, "WRITE implies DESCRIBE"
    until(lambda: produce_one(producer, topic, timeout=TIMEOUT) is None, "produce works after the grant")
    assert other not in admin.list_topics(timeout=TIMEOUT).topics

    # DENY beats ALLOW, and deleting it allows again.
    deny = acl(topic, AclOperation.WRITE, perm=AclPermissionType.DENY)
    create_acls(admin, [deny])
    assert produce_one(producer, topic, timeout=TIMEOUT).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    deny_filter = AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ANON, "*", AclOperation.WRITE, AclPermissionType.DENY
    )
    deleted = admin.delete_acls([deny_filter], request_timeout=TIMEOUT)[deny_filter].result(TIMEOUT)
    assert [(b.name, b.permission_type) for b in deleted] == [(topic, AclPermissionType.DENY)]
    until(lambda: produce_one(producer, topic, timeout=TIMEOUT) is None, "produce works once the DENY is gone")

    # Prefixed patterns: every topic that starts with the prefix, no other.
    create_acls(admin, [acl("pre-", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED)])
    until(lambda: produce_one(producer, prefixed, timeout=TIMEOUT) is None, "prefixed grant")
    assert produce_one(producer, other, timeout=TIMEOUT).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Consuming in a group needs READ on the topic and on the group.
    group = "g2-" + topic
    create_acls(admin, [acl(topic, AclOperation.READ), acl(group, AclOperation.READ, rtype=ResourceType.GROUP)])
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    def consumed():
        msg = consumer.poll(0.5)
        assert msg is None or msg.error() is None, msg.error()
        return msg
    msg = until(consumed, "consumer reads in its group", timeout=30)
    assert msg.topic() == topic
    # OffsetFetch answers the topics the principal may not describe with
    # TOPIC_AUTHORIZATION_FAILED, the others with their offsets.
    consumer.commit(msg, asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(other, 0)], timeout=TIMEOUT)
    assert committed[0].error is None and committed[0].offset == msg.offset() + 1, committed
    assert committed[1].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, committed
    consumer.close()
    producer.flush(TIMEOUT)


def test_fjord_acl_command(node, topic):
    """`fjord acl add/list/remove` against a node whose authorizer allows
    resources without ACLs (allow.everyone.if.no.acl.found)."""
    reconfigure(node, authorizer_enable=True, allow_everyone_if_no_acl_found=True)
    r = node.cli("topic", "create", topic, "--partitions", "1", "--replication-factor", "1")
    assert r.returncode == 0, r.stderr
    r = node.cli("produce", topic, input="a\n")
    assert r.returncode == 0, r.stderr

    # The cluster has no ACL, so ANONYMOUS may add the first one.
    r = node.cli("acl", "add", "--allow-principal", ANON, "--operation", "Alter", "--cluster")
    assert r.returncode == 0, r.stderr
    r = node.cli("acl", "add", "--deny-principal", ANON, "--operation", "Write", "--topic", topic)
    assert r.returncode == 0, r.stderr
    r = node.cli("produce", topic, input="b\n")
    assert r.returncode != 0 and "TOPIC_AUTHORIZATION_FAILED" in r.stderr, (r.stdout, r.stderr)

    r = node.cli("acl", "list")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert ["CLUSTER", "kafka-cluster", "LITERAL", ANON, "*", "ALTER", "ALLOW"] in rows, r.stdout
    assert ["TOPIC", topic, "LITERAL", ANON, "*", "WRITE", "DENY"] in rows, r.stdout
    r = node.cli("acl", "list", "--topic", topic)
    assert len(r.stdout.splitlines()) == 2, r.stdout

    r = node.cli("acl", "remove", "--deny-principal", ANON, "--operation", "Write", "--topic", topic)
    assert r.returncode == 0 and "Removed 1 ACL(s)" in r.stdout, (r.stdout, r.stderr)
    r = node.cli("produce", topic, input="c\n")
    assert r.returncode == 0, r.stderr
    # Removing every ACL of the cluster (no principal, no operation: any).
    r = node.cli("acl", "remove", "--cluster")
    assert r.returncode == 0 and "Removed 1 ACL(s)" in r.stdout, (r.stdout, r.stderr)
