"""Client quotas against one Fjord node, set with `fjord quota` and
enforced on confluent-kafka (librdkafka) clients: a producer saturating
against producer_byte_rate, and a consumer against consumer_byte_rate,
are held within 10 % of the rate (bytes counted when the client receives
them, over the span after the first bursts); quotas survive a restart;
`fjord quota list/remove` show and drop them."""

import os
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import FAST_BROKER_CONFIG, FjordNode, _finish, _node_name

import pytest

TIMEOUT = 30
RATE = 1024 * 1024  # 1 MiB/s
VALUE = b"x" * 10_000
# Kafka's quota is a rate over quota.window.num samples of 1 s, and a
# first burst of (num - 1) windows' worth passes unthrottled; a saturating
# client then cycles between a burst and a throttled trickle about every
# num seconds (Apache Kafka 4.1.1 does the same with this client). With
# num = 3 the cycle is short against the measured span, so the average
# over it converges; the default (11) is checked in bench/quota.
WINDOW_NUM = int(os.environ.get("QUOTA_WINDOW_NUM", "3"))
# Measured after the first bursts, over this many seconds.
WARMUP_S = float(os.environ.get("QUOTA_WARMUP_S", "4"))
# 16 s: a span that ends mid-burst is off by up to one burst (num - 1
# windows' worth); over 10 s that was +11 % once in CI, over 16 s it is
# at most ~7 %.
MEASURE_S = float(os.environ.get("QUOTA_MEASURE_S", "16"))


@pytest.fixture
def node(request, tmp_path):
    config = dict(FAST_BROKER_CONFIG, quota_window_num=WINDOW_NUM)
    node = FjordNode(tmp_path, _node_name(request), broker_config=config)
    node.start()
    yield node
    _finish(node)


def cli_ok(node, *args):
    r = node.cli(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def create_topic(node, topic):
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(TIMEOUT)


class Timeline:
    """Bytes as the client sees them arrive (acknowledged or consumed),
    stamped when they arrive: a message produced before the measured span
    but acknowledged inside it counts, as the quota saw it then."""

    def __init__(self):
        self.start = time.monotonic()
        self.events = []

    def add(self, nbytes):
        self.events.append((time.monotonic() - self.start, nbytes))

    def rate(self, begin, end):
        return sum(n for t, n in self.events if begin <= t < end) / (end - begin)


def saturated_rate(producer, topic):
    """Produce as fast as the client may; the rate acknowledged over
    [WARMUP_S, WARMUP_S + MEASURE_S)."""
    timeline = Timeline()

    def on_delivery(err, msg):
        if err is None:
            timeline.add(len(msg.value()))

    end = WARMUP_S + MEASURE_S
    while time.monotonic() - timeline.start < end:
        try:
            producer.produce(topic, VALUE, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.purge()
    producer.flush(TIMEOUT)
    return timeline.rate(WARMUP_S, end)


def producer(node, client_id):
    return Producer(
        {
            "bootstrap.servers": node.bootstrap,
            "client.id": client_id,
            "linger.ms": 5,
            # The Java client's batch.size: a produce request is a small
            # part of one second's quota (librdkafka's 1 MB default would
            # be a whole second of it).
            "batch.size": 16384,
            "queue.buffering.max.kbytes": 1024,
        }
    )


def test_producer_held_at_byte_rate_and_quota_survives_restart(node):
    topic = "quota-produce"
    create_topic(node, topic)
    cli_ok(node, "quota", "set", "--client-id", "slow", "--config", "producer_byte_rate=%d" % RATE)
    out = cli_ok(node, "quota", "list")
    assert "slow" in out and "producer_byte_rate" in out, out

    rate = saturated_rate(producer(node, "slow"), topic)
    print("quota-limited producer: %.0f B/s against %d B/s" % (rate, RATE))
    assert abs(rate - RATE) <= 0.1 * RATE, rate

    # Survives a restart, and applies to the (user, client) the default
    # user falls back to: another client id is not limited.
    node.restart()
    out = cli_ok(node, "quota", "list", "--client-id", "slow")
    assert "producer_byte_rate" in out and "1048576" in out, out
    again = saturated_rate(producer(node, "slow"), topic)
    print("after restart: %.0f B/s" % again)
    assert abs(again - RATE) <= 0.1 * RATE, again

    cli_ok(node, "quota", "remove", "--client-id", "slow")
    assert "slow" not in cli_ok(node, "quota", "list")


def test_consumer_held_at_byte_rate(node):
    topic = "quota-fetch"
    create_topic(node, topic)
    # 30 MiB to read (more than the span can take), unthrottled.
    p = producer(node, "filler")
    for _ in range(30 * 1024 * 1024 // len(VALUE)):
        while True:
            try:
                p.produce(topic, VALUE)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0

    cli_ok(node, "quota", "set", "--user-default", "--config", "consumer_byte_rate=%d" % RATE)
    c = Consumer(
        {
            "bootstrap.servers": node.bootstrap,
            "group.id": "quota-consumer",
            "client.id": "reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # As the producer's batches: one fetch is a small part of a
            # second's quota.
            "max.partition.fetch.bytes": 65536,
            "fetch.max.bytes": 65536,
            "message.max.bytes": 65536,
            # Count what the broker lets through, not librdkafka's read-ahead:
            # its default queue (64 MiB) would hold the warm-up burst and
            # hand it to the measured span.
            "queued.max.messages.kbytes": 256,
        }
    )
    c.subscribe([topic])
    timeline = Timeline()
    try:
        while time.monotonic() - timeline.start < WARMUP_S + MEASURE_S:
            msg = c.poll(0.1)
            if msg is not None and not msg.error():
                timeline.add(len(msg.value()))
    finally:
        c.close()
    rate = timeline.rate(WARMUP_S, WARMUP_S + MEASURE_S)
    print("quota-limited consumer: %.0f B/s against %d B/s" % (rate, RATE))
    assert abs(rate - RATE) <= 0.1 * RATE, rate


def test_cli_refuses_bad_quotas(node):
    r = node.cli("quota", "set", "--user", "alice", "--config", "producer_byte_rate=1.5")
    assert r.returncode != 0 and "Long" in r.stderr, r.stderr
    r = node.cli("quota", "set", "--user", "alice", "--config", "no_such_quota=1")
    assert r.returncode != 0 and "Invalid configuration key" in r.stderr, r.stderr
    cli_ok(node, "quota", "set", "--user", "alice", "--client-default", "--config", "request_percentage=50")
    out = cli_ok(node, "quota", "list", "--user", "alice")
    assert "<default>" in out and "request_percentage" in out, out
