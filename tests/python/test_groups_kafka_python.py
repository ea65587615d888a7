"""kafka-python consumer groups against plain `fjord dev` (Kafka's default 3 s initial rebalance
delay): the seed's consumer (group_id, auto_offset_reset='earliest', enable_auto_commit=False,
consumer.commit() after each message) reads every record exactly once, and a later consumer in
the same group resumes after the committed offsets."""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

PARTITIONS = 3
N = 120
GROUP = "my-group"


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="pytest-admin", request_timeout_ms=10000)
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()


def produce(bootstrap, topic, values):
    """Produces values round-robin over the partitions; returns {(partition, offset): value}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=10000)
    try:
        futs = [(v, producer.send(topic, value=v, partition=i % PARTITIONS)) for i, v in enumerate(values)]
        acked = {}
        for v, f in futs:
            md = f.get(timeout=30)
            acked[(md.partition, md.offset)] = v
        producer.flush(30)
    finally:
        producer.close(timeout=10)
    assert len(acked) == len(values)
    return acked


def group_consumer(bootstrap, topic):
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,  # iteration stops after 0.5 s without a record; we loop with a deadline
        request_timeout_ms=15000,
    )


def read_and_commit_each(consumer, n, timeout):
    """The seed's loop: for msg in consumer: process(msg); consumer.commit(). Returns the
    records read, after n records (or fails at the deadline)."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        assert time.monotonic() < deadline, "read %d of %d records within %ss" % (len(out), n, timeout)
        try:
            msg = next(consumer)
        except StopIteration:
            continue
        out.append(msg)
        consumer.commit()
    return out


def wait_assigned(consumer, partitions, timeout):
    """Polls (returning no record to the caller: asserts none arrives) until the consumer owns
    all partitions and knows its position in each. Returns the records it polled meanwhile."""
    deadline = time.monotonic() + timeout
    got = []
    while True:
        for recs in consumer.poll(timeout_ms=100).values():
            got.extend(recs)
        if len(consumer.assignment()) == partitions:
            return got
        assert time.monotonic() < deadline, "assignment %s after %ss" % (sorted(consumer.assignment()), timeout)


def test_commit_after_each_message_exactly_once_then_resume(fjord, topic):
    create_topic(fjord.bootstrap, topic, PARTITIONS)
    acked = produce(fjord.bootstrap, topic, [b"old-%d" % i for i in range(N)])
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = {tp: sum(1 for (p, _) in acked if p == tp.partition) for tp in tps}

    # 1. The seed's consumer reads every record once, committing after each.
    c1 = group_consumer(fjord.bootstrap, topic)
    try:
        records = read_and_commit_each(c1, N, timeout=60)
        got = [(r.partition, r.offset) for r in records]
        assert len(got) == len(set(got)), "a record was read twice: %s" % sorted(
            k for k in set(got) if got.count(k) > 1
        )
        assert {k: r.value for k, r in zip(got, records)} == acked
        # Nothing more arrives, and the group's committed offsets are the log end offsets.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            extra = [r for recs in c1.poll(timeout_ms=200).values() for r in recs]
            assert not extra, "records read after all %d: %s" % (N, [(r.partition, r.offset) for r in extra])
        for tp in tps:
            assert c1.committed(tp) == ends[tp], "committed offset of %s" % (tp,)
    finally:
        c1.close()

    # 2. A second consumer in the group reads nothing old...
    c2 = group_consumer(fjord.bootstrap, topic)
    try:
        old = wait_assigned(c2, PARTITIONS, timeout=60)
        for tp in tps:
            assert c2.committed(tp) == ends[tp], "committed offset of %s seen by the second consumer" % (tp,)
            assert c2.position(tp) == ends[tp], "the second consumer starts %s at the committed offset" % (tp,)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for recs in c2.poll(timeout_ms=200).values():
                old.extend(recs)
        assert not old, "second consumer re-read %s" % [(r.partition, r.offset, r.value) for r in old]

        # 3. ... and sees exactly the records produced afterwards.
        new = produce(fjord.bootstrap, topic, [b"new-%d" % i for i in range(30)])
        records = read_and_commit_each(c2, len(new), timeout=30)
        assert {(r.partition, r.offset): r.value for r in records} == new
        assert len(records) == len(new)
        assert all(off >= ends[TopicPartition(topic, p)] for (p, off) in new)
    finally:
        c2.close()
