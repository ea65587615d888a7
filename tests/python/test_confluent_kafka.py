"""confluent-kafka (librdkafka): acks=all, every compression codec, headers, assign() only."""

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def produce_all(bootstrap, topic, records, **conf):
    """records: list of (partition, key, value, headers). Returns {(partition, offset): record}."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False, **conf})
    acked, errors = {}, []

    def on_delivery(rec):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                acked[(msg.partition(), msg.offset())] = rec

        return cb

    for rec in records:
        part, key, value, headers = rec
        kwargs = {"partition": part} if part is not None else {}
        p.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery(rec), **kwargs)
        p.poll(0)
    left = p.flush(30)
    assert left == 0, "%d records not delivered within 30s" % left
    assert not errors, "delivery errors: %s" % errors[:5]
    assert len(acked) == len(records), "every record acknowledged at a distinct offset"
    return acked


def consumer(bootstrap):
    # confluent-kafka insists on a group.id; we never subscribe or commit, only assign().
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "pytest-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )


def consume(c, n, timeout=30.0):
    """Polls until n messages; non-fatal errors (e.g. group coordinator lookups) are reported
    only if the deadline passes."""
    deadline = time.monotonic() + timeout
    out, errors = [], []
    while len(out) < n:
        assert time.monotonic() < deadline, "consumed %d of %d records within %ss; errors: %s" % (
            len(out),
            n,
            timeout,
            errors[:10],
        )
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().fatal():
                pytest.fail("fatal consumer error: %s" % msg.error())
            if msg.error().code() != KafkaError._PARTITION_EOF and str(msg.error()) not in errors:
                errors.append(str(msg.error()))
            continue
        out.append(msg)
    return out


def test_json_round_trip_headers_partitions(fjord, topic):
    admin = AdminClient({"bootstrap.servers": fjord.bootstrap})
    futs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], operation_timeout=10)
    futs[topic].result(timeout=30)

    records = [
        (i % 3, ("k%d" % i).encode(), json.dumps({"i": i, "v": "x" * (i % 40)}).encode(), [("idx", str(i).encode()), ("n", None)])
        for i in range(300)
    ]
    acked = produce_all(fjord.bootstrap, topic, records)

    c = consumer(fjord.bootstrap)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
        msgs = consume(c, len(records))
        for m in msgs:
            part, key, value, headers = acked[(m.partition(), m.offset())]
            assert m.partition() == part
            assert m.key() == key
            assert json.loads(m.value()) == json.loads(value)
            assert m.headers() == headers
        for part in range(3):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            assert (lo, hi) == (0, sum(1 for (p, _) in acked if p == part))
    finally:
        c.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compressed_round_trip(fjord, topic, codec):
    # Auto-created topic (1 partition); values compress well and batch under linger.ms.
    records = [(0, None, json.dumps({"codec": codec, "i": i, "pad": "abcd" * 100}).encode(), None) for i in range(200)]
    acked = produce_all(fjord.bootstrap, topic, records, **{"compression.type": codec})
    assert sorted(o for (_, o) in acked) == list(range(200))

    c = consumer(fjord.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs = consume(c, 200)
        assert [m.value() for m in msgs] == [acked[(0, o)][2] for o in range(200)]
    finally:
        c.close()


def test_a_client_cannot_produce_to_internal_topics(fjord, topic):
    """Kafka refuses appends to __consumer_offsets and __transaction_state from clients
    (INVALID_TOPIC_EXCEPTION): bytes there would be loaded as group or transaction state."""
    group = "g-" + topic
    conf = {"bootstrap.servers": fjord.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    # A committed offset makes the coordinator create __consumer_offsets.
    produce_all(fjord.bootstrap, topic, [(0, b"k", b"v", None)])
    c = Consumer(conf)
    c.subscribe([topic])
    (first,) = consume(c, 1)
    c.commit(message=first, asynchronous=False)
    c.close()
    errors = []
    p = Producer({"bootstrap.servers": fjord.bootstrap})
    p.produce("__consumer_offsets", b"garbage", key=b"k", partition=0, on_delivery=lambda e, _m: errors.append(e))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.TOPIC_EXCEPTION, errors[0]
    # The group's state is untouched: a new member resumes after the commit.
    produce_all(fjord.bootstrap, topic, [(0, b"k2", b"v2", None)])
    c = Consumer(conf)
    c.subscribe([topic])
    assert [m.value() for m in consume(c, 1)] == [b"v2"]
    c.close()
