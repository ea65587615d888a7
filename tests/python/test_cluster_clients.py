"""kafka-python and confluent-kafka against a 3-node Fjord cluster while the
partition leader is SIGKILLed: every acknowledged record is read back, in
offset order, and the clients find the new leader by themselves.

Three `fjord server --config` processes on loopback (combined controller +
broker), with short failure-detection timeouts so a test takes seconds.
"""

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from conftest import FjordNode, _node_name, _toml_value, free_port, metadata_broker_count

# Shorter than Kafka's defaults (9 s / 2 s) so failover fits a test.
CLUSTER_TIMINGS = {
    "broker_session_timeout_ms": 2500,
    "broker_heartbeat_interval_ms": 500,
    "election_timeout_ms": [500, 1000],
    "heartbeat_interval_ms": 100,
}


class ClusterNode(FjordNode):
    """One combined-mode voter of a 3-node cluster (`fjord server --config`)."""

    def __init__(self, tmp: Path, name: str, node_id: int, rpc_ports: dict):
        super().__init__(tmp, name, broker_config={})
        self.node_id = node_id
        self.rpc_ports = rpc_ports
        self.controller_port = rpc_ports[node_id]

    def write_config(self) -> Path:
        voters = ["%d@127.0.0.1:%d" % (i, p) for i, p in sorted(self.rpc_ports.items())]
        lines = [
            "node_id = %d" % self.node_id,
            "data_dir = %s" % _toml_value(self.data_dir),
            "kafka_addr = %s" % _toml_value(self.bootstrap),
            "rpc_addr = %s" % _toml_value("127.0.0.1:%d" % self.controller_port),
            "http_addr = %s" % _toml_value("127.0.0.1:0"),
            "",
            "[controller]",
            "voters = [%s]" % ", ".join(_toml_value(v) for v in voters),
        ]
        for key, value in CLUSTER_TIMINGS.items():
            if isinstance(value, list):
                lines.append("%s = [%s]" % (key, ", ".join(map(str, value))))
            else:
                lines.append("%s = %s" % (key, _toml_value(value)))
        lines += [
            "",
            "[broker]",
            "default_replication_factor = 3",
            "offsets_topic_replication_factor = 3",
            "min_insync_replicas = 2",
            "replica_lag_time_max_ms = 5000",
        ]
        path = self.tmp / "fjord.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture
def cluster(tmp_path, request):
    rpc_ports = {i: free_port() for i in (1, 2, 3)}
    nodes = []
    for i in (1, 2, 3):
        d = tmp_path / ("node-%d" % i)
        d.mkdir()
        nodes.append(ClusterNode(d, "%s-n%d" % (_node_name(request), i), i, rpc_ports))
    for n in nodes:
        n.spawn()  # one node alone has no quorum: start all, then wait
    try:
        wait_for(
            lambda: all(metadata_broker_count("127.0.0.1", n.port) == 3 for n in nodes),
            60,
            "three brokers in every node's Metadata",
        )
        yield nodes
    finally:
        for n in nodes:
            n.kill()


def bootstrap(nodes):
    return ",".join(n.bootstrap for n in nodes)


def create_topic(nodes, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=3, config={"min.insync.replicas": "2"})]
    )
    fs[name].result(30)


def leader_of(nodes, topic, partition, alive):
    """The leader id of `topic`-`partition` as a live node's Metadata says."""
    admin = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in alive)})
    md = admin.list_topics(topic, timeout=10)
    return md.topics[topic].partitions[partition].leader


def read_all(nodes, topic, partitions, expected):
    """Every record of `topic` as {(partition, offset): value}, read with assign."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(nodes),
            "group.id": "check-%s" % uuid.uuid4().hex[:6],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        for m in consumer.consume(500, 1.0):
            if m.error():
                continue
            seen[(m.partition(), m.offset())] = m.value().decode()
    consumer.close()
    return seen


def check_acked(acked, seen):
    """Every acknowledged value is there at the offset it was acknowledged at, and
    per partition the offsets have no gaps."""
    by_value = {v: k for k, v in seen.items()}
    for value, (partition, offset) in acked.items():
        assert seen.get((partition, offset)) == value, "acked %s at %s-%s missing" % (value, partition, offset)
        assert by_value[value] == (partition, offset)
    for p in {p for p, _ in seen}:
        offsets = sorted(o for q, o in seen if q == p)
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "gap in partition %d" % p


def test_confluent_kafka_survives_leader_sigkill(cluster):
    topic = "failover-ck-%s" % uuid.uuid4().hex[:6]
    create_topic(cluster, topic, 3)
    victim_id = leader_of(cluster, topic, 0, cluster)
    victim = cluster[victim_id - 1]
    survivors = [n for n in cluster if n is not victim]

    acked = {}
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            failed.append(err)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        }
    )
    for i in range(600):
        producer.produce(topic, value=("v%05d" % i).encode(), partition=i % 3, on_delivery=on_delivery)
        producer.poll(0)
        if i == 200:
            producer.flush(30)
            victim.kill()
            killed_at = time.monotonic()
        time.sleep(0.002)
    assert producer.flush(60) == 0
    assert not failed, failed[:3]
    assert len(acked) == 600
    # The partition the victim led moved to a survivor.
    new_leader = leader_of(cluster, topic, 0, survivors)
    assert new_leader in (n.node_id for n in survivors)
    print("confluent-kafka: all 600 acknowledged %.1f s after the leader was killed" % (time.monotonic() - killed_at))
    check_acked(acked, read_all(survivors, topic, 3, 600))


def test_kafka_python_survives_leader_sigkill(cluster):
    topic = "failover-kp-%s" % uuid.uuid4().hex[:6]
    create_topic(cluster, topic, 2)
    victim = cluster[leader_of(cluster, topic, 1, cluster) - 1]
    survivors = [n for n in cluster if n is not victim]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap(cluster),
        acks="all",
        retries=20,
        retry_backoff_ms=200,
        request_timeout_ms=10000,
        max_block_ms=30000,
    )
    acked = {}
    for i in range(300):
        value = "k%05d" % i
        future = producer.send(topic, value=value.encode(), partition=i % 2)
        if i == 100:
            producer.flush(30)
            victim.kill()
        try:
            md = future.get(timeout=60)
            acked[value] = (md.partition, md.offset)
        except Exception as e:  # an error is allowed; a lost acknowledged record is not
            print("send %s failed: %r" % (value, e))
    producer.close(10)
    assert len(acked) >= 250, "too few acknowledged: %d" % len(acked)
    seen = read_all(survivors, topic, 2, len(acked))
    check_acked(acked, seen)
