"""Transactions (KIP-98/447) with confluent-kafka (librdkafka) and kafka-python on one node:
commit and abort as a read_committed and a read_uncommitted consumer see them, consume-transform-
produce with offsets committed in the transaction, fencing of an older producer of the same
transactional id, and the coordinator aborting a transaction whose producer went away.
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 30


def create_topics(bootstrap, *topics, partitions=2):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics], operation_timeout=10
    )
    for f in futures.values():
        f.result(timeout=TIMEOUT)


def read_all(bootstrap, topic, isolation, partitions=2, expect=None, wait=6.0):
    """Every record value of the topic as `isolation` reads it (stops early at `expect` records)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "read-" + uuid.uuid4().hex[:6],
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (expect is None or len(got) < expect):
        m = c.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        got.append(m.value().decode())
    c.close()
    return got


def txn_producer(bootstrap, transactional_id, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5, **extra})
    p.init_transactions(TIMEOUT)
    return p


def test_committed_records_are_read_aborted_ones_only_uncommitted(fjord, topic):
    create_topics(fjord.bootstrap, topic)
    p = txn_producer(fjord.bootstrap, "tx-" + topic)
    for batch, end in (("c1", p.commit_transaction), ("a1", p.abort_transaction), ("c2", p.commit_transaction)):
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, value=("%s-%d" % (batch, i)).encode(), partition=i % 2)
        p.flush()
        end(TIMEOUT)
    committed = read_all(fjord.bootstrap, topic, "read_committed", expect=20)
    assert sorted(committed) == sorted(["c1-%d" % i for i in range(10)] + ["c2-%d" % i for i in range(10)])
    uncommitted = read_all(fjord.bootstrap, topic, "read_uncommitted", expect=30)
    assert len(uncommitted) == 30 and sum(v.startswith("a1-") for v in uncommitted) == 10


def test_open_transaction_holds_back_read_committed_until_commit(fjord, topic):
    create_topics(fjord.bootstrap, topic, partitions=1)
    plain = Producer({"bootstrap.servers": fjord.bootstrap})
    p = txn_producer(fjord.bootstrap, "tx-" + topic)
    p.begin_transaction()
    p.produce(topic, value=b"in-txn", partition=0)
    p.flush()
    plain.produce(topic, value=b"after", partition=0)
    plain.flush()
    # The open transaction's first offset is the last stable offset: nothing after it is read.
    assert read_all(fjord.bootstrap, topic, "read_committed", partitions=1, wait=3) == []
    assert read_all(fjord.bootstrap, topic, "read_uncommitted", partitions=1, expect=2) == ["in-txn", "after"]
    p.commit_transaction(TIMEOUT)
    assert read_all(fjord.bootstrap, topic, "read_committed", partitions=1, expect=2) == ["in-txn", "after"]


def test_consume_transform_produce_commits_offsets_in_the_transaction(fjord, topic):
    src, dst, group = topic + "-src", topic + "-dst", "g-" + topic
    create_topics(fjord.bootstrap, src, dst, partitions=1)
    plain = Producer({"bootstrap.servers": fjord.bootstrap})
    for i in range(50):
        plain.produce(src, value=b"%d" % i)
    plain.flush()
    consumer = Consumer(
        {
            "bootstrap.servers": fjord.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(src, 0)])
    p = txn_producer(fjord.bootstrap, "ctp-" + topic)

    def step(n, end):
        msgs = []
        deadline = time.monotonic() + TIMEOUT
        while len(msgs) < n and time.monotonic() < deadline:
            msgs += consumer.consume(n - len(msgs), 0.5)
        assert len(msgs) == n
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, value=b"x" + m.value())
        p.send_offsets_to_transaction(consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), TIMEOUT)
        end(TIMEOUT)

    def committed():
        return consumer.committed([TopicPartition(src, 0)], TIMEOUT)[0].offset

    step(20, p.commit_transaction)
    assert committed() == 20
    step(10, p.abort_transaction)
    # The aborted transaction's offsets are dropped: the group stays at 20.
    assert committed() == 20
    consumer.seek(TopicPartition(src, 0, 20))
    step(30, p.commit_transaction)
    assert committed() == 50
    consumer.close()
    out = read_all(fjord.bootstrap, dst, "read_committed", partitions=1, expect=50)
    assert sorted(out, key=lambda v: int(v[1:])) == ["x%d" % i for i in range(50)]


def test_a_newer_producer_fences_the_older_one(fjord, topic):
    create_topics(fjord.bootstrap, topic, partitions=1)
    old = txn_producer(fjord.bootstrap, "fence-" + topic)
    old.begin_transaction()
    old.produce(topic, value=b"zombie", partition=0)
    old.flush()
    new = txn_producer(fjord.bootstrap, "fence-" + topic)  # aborts the old one's transaction
    new.begin_transaction()
    new.produce(topic, value=b"new", partition=0)
    new.commit_transaction(TIMEOUT)
    with pytest.raises(KafkaException) as err:
        old.commit_transaction(TIMEOUT)
    assert err.value.args[0].fatal() or err.value.args[0].code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ), err.value
    assert read_all(fjord.bootstrap, topic, "read_committed", partitions=1, expect=1) == ["new"]


def test_the_coordinator_aborts_a_transaction_whose_producer_went_away(fjord, topic):
    create_topics(fjord.bootstrap, topic, partitions=1)
    p = txn_producer(fjord.bootstrap, "gone-" + topic, **{"transaction.timeout.ms": 5000})
    p.begin_transaction()
    p.produce(topic, value=b"never", partition=0)
    p.flush()
    del p  # no EndTxn: the coordinator's timeout aborts it
    plain = Producer({"bootstrap.servers": fjord.bootstrap})
    plain.produce(topic, value=b"later", partition=0)
    plain.flush()
    # Still open: the producer's handle went away without ending it, so the
    # last stable offset holds "later" back until the coordinator's timeout.
    assert read_all(fjord.bootstrap, topic, "read_committed", partitions=1, wait=0.5) == []
    got = read_all(fjord.bootstrap, topic, "read_committed", partitions=1, expect=1, wait=20)
    assert got == ["later"]


def test_kafka_python_transactional_producer(fjord, topic):
    from kafka import KafkaConsumer, KafkaProducer

    create_topics(fjord.bootstrap, topic)
    p = KafkaProducer(bootstrap_servers=fjord.bootstrap, transactional_id="kp-" + topic)
    p.init_transactions()
    p.begin_transaction()
    for i in range(6):
        p.send(topic, value=b"c-%d" % i, partition=i % 2)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(6):
        p.send(topic, value=b"a-%d" % i, partition=i % 2)
    p.flush()  # sent, so the abort has records to mark
    p.abort_transaction()
    p.close()
    c = KafkaConsumer(
        bootstrap_servers=fjord.bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        consumer_timeout_ms=4000,
    )
    c.assign([__import__("kafka").TopicPartition(topic, p) for p in range(2)])
    got = sorted(m.value.decode() for m in c)
    c.close()
    assert got == sorted("c-%d" % i for i in range(6))
    assert len(read_all(fjord.bootstrap, topic, "read_uncommitted", expect=12)) == 12


def test_aiokafka_transactional_producer(fjord, topic):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition

    create_topics(fjord.bootstrap, topic)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=fjord.bootstrap, transactional_id="aio-" + topic)
        await p.start()
        try:
            async with p.transaction():
                for i in range(6):
                    await p.send_and_wait(topic, b"c-%d" % i, partition=i % 2)
            await p.begin_transaction()
            for i in range(6):
                await p.send_and_wait(topic, b"a-%d" % i, partition=i % 2)
            await p.abort_transaction()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=fjord.bootstrap, isolation_level="read_committed")
        await c.start()
        try:
            c.assign([AioTopicPartition(topic, p) for p in range(2)])
            await c.seek_to_beginning()
            got = []
            deadline = time.monotonic() + 10
            while len(got) < 6 and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=500)).values():
                    got += [r.value.decode() for r in records]
            return got
        finally:
            await c.stop()

    got = asyncio.run(run())
    assert sorted(got) == sorted("c-%d" % i for i in range(6))
    assert len(read_all(fjord.bootstrap, topic, "read_uncommitted", expect=12)) == 12
