"""Client quotas against one Fjord node, set with `fjord quota` and
enforced on confluent-kafka (librdkafka) clients: a producer saturating
against producer_byte_rate, and a consumer against consumer_byte_rate,
are held within 10 % of the rate (measured by the client over the steady
part, after the first window); quotas survive a restart; `fjord quota
list/remove` show and drop them."""

import os
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import FAST_BROKER_CONFIG, FjordNode, _finish, _node_name

import pytest

TIMEOUT = 30
RATE = 1024 * 1024  # 1 MiB/s
VALUE = b"x" * 10_000
# Measured after the first quota window (10 s of samples fill first: a
# burst up to rate * 10 s passes unthrottled), over this many seconds.
WARMUP_S = float(os.environ.get("QUOTA_WARMUP_S", "12"))
MEASURE_S = float(os.environ.get("QUOTA_MEASURE_S", "10"))


@pytest.fixture
def node(request, tmp_path):
    node = FjordNode(tmp_path, _node_name(request), broker_config=dict(FAST_BROKER_CONFIG))
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


def saturate(producer, topic, seconds):
    """Produce as fast as the client may for `seconds`; bytes acknowledged."""
    acked = [0]

    def on_delivery(err, msg):
        if err is None:
            acked[0] += len(msg.value())

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            producer.produce(topic, VALUE, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.poll(0)
    return acked[0]


def steady_rate(producer, topic):
    saturate(producer, topic, WARMUP_S)
    before = time.monotonic()
    acked = saturate(producer, topic, MEASURE_S)
    return acked / (time.monotonic() - before)


def producer(node, client_id):
    return Producer(
        {
            "bootstrap.servers": node.bootstrap,
            "client.id": client_id,
            "linger.ms": 5,
            "queue.buffering.max.kbytes": 4096,
        }
    )


def test_producer_held_at_byte_rate_and_quota_survives_restart(node):
    topic = "quota-produce"
    create_topic(node, topic)
    cli_ok(node, "quota", "set", "--client-id", "slow", "--config", "producer_byte_rate=%d" % RATE)
    out = cli_ok(node, "quota", "list")
    assert "slow" in out and "producer_byte_rate" in out, out

    rate = steady_rate(producer(node, "slow"), topic)
    print("quota-limited producer: %.0f B/s against %d B/s" % (rate, RATE))
    assert abs(rate - RATE) <= 0.1 * RATE, rate

    # Survives a restart, and applies to the (user, client) the default
    # user falls back to: another client id is not limited.
    node.restart()
    out = cli_ok(node, "quota", "list", "--client-id", "slow")
    assert "producer_byte_rate" in out and "1048576" in out, out
    again = steady_rate(producer(node, "slow"), topic)
    assert abs(again - RATE) <= 0.1 * RATE, again

    cli_ok(node, "quota", "remove", "--client-id", "slow")
    assert "slow" not in cli_ok(node, "quota", "list")


def test_consumer_held_at_byte_rate(node):
    topic = "quota-fetch"
    create_topic(node, topic)
    # 40 MiB to read, unthrottled.
    p = producer(node, "filler")
    for _ in range(40 * 1024 * 1024 // len(VALUE)):
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
        }
    )
    c.subscribe([topic])
    received, start, counted_from, counted = 0, time.monotonic(), None, 0
    try:
        while time.monotonic() - start < WARMUP_S + MEASURE_S:
            msg = c.poll(0.1)
            if msg is None or msg.error():
                continue
            received += len(msg.value())
            if time.monotonic() - start >= WARMUP_S:
                if counted_from is None:
                    counted_from = time.monotonic()
                counted += len(msg.value())
    finally:
        c.close()
    rate = counted / (time.monotonic() - counted_from)
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
