"""Exactly once on a 3-node cluster with confluent-kafka: a consume-transform-produce loop
(read_committed consumer, transactional producer, offsets sent to the transaction) copies a
topic while the leader of an output partition and then the transaction coordinator are
SIGKILLed (each restarted before the next kill). The output, read with read_committed, holds
every input record exactly once.
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from test_cluster_clients import bootstrap, cluster, create_topic, leader_of, wait_for  # noqa: F401

RECORDS = 600
PARTITIONS = 3
TXN_PARTITIONS = 50  # transaction.state.log.num.partitions


def java_hash(s: str) -> int:
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_of(nodes, transactional_id, alive):
    """The leader of the id's `__transaction_state` partition (Kafka's partitionFor)."""
    partition = abs(java_hash(transactional_id)) % TXN_PARTITIONS
    return leader_of(nodes, "__transaction_state", partition, alive)


class Pipeline:
    """The copy loop; rebuilt from the committed offsets whenever a transaction fails."""

    def __init__(self, nodes, src, dst, group, transactional_id):
        self.nodes, self.src, self.dst, self.group, self.tid = nodes, src, dst, group, transactional_id
        self.consumer = self.producer = None
        self.committed_txns = 0
        self.restarts = 0
        self.start()

    def start(self):
        if self.consumer is not None:
            self.consumer.close()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap(self.nodes),
                "group.id": self.group,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(self.src, p) for p in range(PARTITIONS)])
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap(self.nodes),
                "transactional.id": self.tid,
                "linger.ms": 5,
                "transaction.timeout.ms": 10000,
            }
        )
        self.producer.init_transactions(60)

    def done(self):
        committed = self.consumer.committed([TopicPartition(self.src, p) for p in range(PARTITIONS)], 10)
        return sum(max(tp.offset, 0) for tp in committed) >= RECORDS

    def step(self):
        msgs = [m for m in self.consumer.consume(50, 0.5) if not m.error()]
        if not msgs:
            return
        try:
            self.producer.begin_transaction()
            for m in msgs:
                self.producer.produce(self.dst, value=b"x" + m.value(), partition=m.partition())
            positions = self.consumer.position(self.consumer.assignment())
            self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(), 30)
            self.producer.commit_transaction(30)
            self.committed_txns += 1
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                try:
                    self.producer.abort_transaction(30)
                except KafkaException:
                    pass
            # Start over from the committed offsets with a fresh producer (which fences and
            # aborts whatever the old one left open).
            self.restarts += 1
            self.start()


def test_exactly_once_while_leader_and_coordinator_are_killed(cluster):
    src, dst = "src-" + uuid.uuid4().hex[:6], "dst-" + uuid.uuid4().hex[:6]
    create_topic(cluster, src, PARTITIONS)
    create_topic(cluster, dst, PARTITIONS)
    p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(RECORDS):
        p.produce(src, value=b"%d" % i, partition=i % PARTITIONS)
    assert p.flush(60) == 0
    tid = "eos-" + src
    pipeline = Pipeline(cluster, src, dst, "g-" + src, tid)

    def run_until(fraction, timeout=120):
        deadline = time.monotonic() + timeout
        while not pipeline.done() if fraction >= 1 else pipeline.committed_txns < fraction:
            assert time.monotonic() < deadline, "pipeline stalled"
            pipeline.step()

    def kill_and_restart(node_id):
        victim = cluster[node_id - 1]
        victim.kill()
        survivors = [n for n in cluster if n is not victim]
        for _ in range(5):
            pipeline.step()
        victim.start()
        wait_for(lambda: all(AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=5).brokers
                             for n in cluster), 60, "the restarted node")
        return survivors

    run_until(3)
    kill_and_restart(leader_of(cluster, dst, 0, cluster))
    run_until(pipeline.committed_txns + 3)
    kill_and_restart(coordinator_of(cluster, tid, cluster))
    run_until(1)
    pipeline.consumer.close()

    reader = Consumer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "group.id": "check-" + src,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    reader.assign([TopicPartition(dst, p, 0) for p in range(PARTITIONS)])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < RECORDS and time.monotonic() < deadline:
        seen += [m.value().decode() for m in reader.consume(500, 1.0) if not m.error()]
    # Anything past RECORDS would be a duplicate: read a little longer.
    seen += [m.value().decode() for m in reader.consume(500, 2.0) if not m.error()]
    reader.close()
    missing = sorted(set("x%d" % i for i in range(RECORDS)) - set(seen))
    duplicates = sorted(v for v in set(seen) if seen.count(v) > 1)
    assert not missing, "lost: %s" % missing[:20]
    assert not duplicates, "duplicated: %s" % duplicates[:20]
    assert len(seen) == RECORDS
    print("transactions committed %d, pipeline restarts %d" % (pipeline.committed_txns, pipeline.restarts))
