"""kafka-python (pure Python client): acks='all' producer, group-less assign() consumer."""

import json
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

N = 300
PARTITIONS = 3


def consume(consumer, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        assert time.monotonic() < deadline, "consumed %d of %d records within %ss" % (len(out), n, timeout)
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(recs)
    return out


def test_json_round_trip_acks_all(fjord, topic):
    """Default producer settings (idempotent in kafka-python 3) with acks='all'."""
    # Phase 1: create a 3-partition topic with the kafka-python admin client.
    admin = KafkaAdminClient(bootstrap_servers=fjord.bootstrap, client_id="pytest-admin", request_timeout_ms=10000)
    try:
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()

    # Phase 2: produce JSON records with acks='all' to explicit partitions.
    producer = KafkaProducer(
        bootstrap_servers=fjord.bootstrap,
        acks="all",
        linger_ms=5,
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
        request_timeout_ms=10000,
    )
    sent = {}
    futures = []
    for i in range(N):
        value = {"i": i, "text": "record %d" % i, "nested": {"list": list(range(i % 5))}}
        futures.append((value, producer.send(topic, key="k%d" % i, value=value, partition=i % PARTITIONS)))
    for value, fut in futures:
        md = fut.get(timeout=30)
        assert (md.partition, md.offset) not in sent, "offset acknowledged twice"
        sent[(md.partition, md.offset)] = value
    producer.flush(30)
    producer.close(timeout=10)

    # Phase 3: read back with no group (assign + earliest), no commits.
    consumer = KafkaConsumer(
        bootstrap_servers=fjord.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        value_deserializer=json.loads,
        request_timeout_ms=15000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        records = consume(consumer, N)
        got = {(r.partition, r.offset): r.value for r in records}
        assert got == sent
        assert all(r.key == ("k%d" % r.value["i"]).encode() for r in records)
        ends = consumer.end_offsets(tps)
        for tp in tps:
            assert ends[tp] == sum(1 for (p, _) in sent if p == tp.partition), "end offset of %s" % (tp,)
    finally:
        consumer.close()


def test_gzip_and_auto_created_topic(fjord, topic):
    """A non-idempotent producer, gzip batches, and a topic auto-created on first use."""
    # The topic does not exist: the broker auto-creates it on Metadata/Produce.
    producer = KafkaProducer(
        bootstrap_servers=fjord.bootstrap,
        acks="all",
        enable_idempotence=False,
        compression_type="gzip",
        linger_ms=5,
        request_timeout_ms=10000,
    )
    values = [("gzip value %d " % i).encode() * 20 for i in range(100)]
    offsets = [producer.send(topic, value=v).get(timeout=30).offset for v in values]
    producer.close(timeout=10)
    assert offsets == list(range(100))

    consumer = KafkaConsumer(
        bootstrap_servers=fjord.bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        records = consume(consumer, 100)
        assert [r.value for r in records] == values
    finally:
        consumer.close()


def test_default_idempotent_producer(fjord, topic):
    # kafka-python 3 (like the Java client since 3.0) enables idempotence by default:
    # InitProducerId, then sequence-numbered batches.
    producer = KafkaProducer(bootstrap_servers=fjord.bootstrap, request_timeout_ms=10000, max_block_ms=10000)
    try:
        md = producer.send(topic, value=b"idempotent").get(timeout=20)
        assert md.offset == 0
    finally:
        producer.close(timeout=5)
