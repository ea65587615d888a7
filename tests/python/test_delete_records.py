"""DeleteRecords through confluent-kafka's AdminClient.delete_records (librdkafka's
rd_kafka_DeleteRecords): the low watermark comes back, the earliest offset moves, a consumer
positioned below it resets to it, and an offset past the high watermark fails with
OFFSET_OUT_OF_RANGE."""

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_confluent_kafka import consume, consumer, produce_all


def test_delete_records_moves_the_log_start(fjord, topic):
    admin = AdminClient({"bootstrap.servers": fjord.bootstrap})
    futs = admin.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1, config={"segment.bytes": "1024"})],
        operation_timeout=10,
    )
    futs[topic].result(timeout=30)
    produce_all(fjord.bootstrap, topic, [(p, None, b"v%03d" % i, None) for p in (0, 1) for i in range(50)])

    # Partition 0 below 20, partition 1 below its high watermark (OFFSET_END, -1).
    futs = admin.delete_records(
        [TopicPartition(topic, 0, 20), TopicPartition(topic, 1, -1)], operation_timeout=10, request_timeout=30
    )
    lows = {tp.partition: fut.result(timeout=30).low_watermark for tp, fut in futs.items()}
    assert lows == {0: 20, 1: 50}

    c = consumer(fjord.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (20, 50)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (50, 50)
        # Below the log start: OFFSET_OUT_OF_RANGE, and auto.offset.reset=earliest goes to 20.
        c.assign([TopicPartition(topic, 0, 5)])
        msgs = consume(c, 30)
        assert [m.offset() for m in msgs] == list(range(20, 50))
        assert msgs[0].value() == b"v020"
    finally:
        c.close()

    # Past the high watermark: OFFSET_OUT_OF_RANGE, nothing moves.
    futs = admin.delete_records([TopicPartition(topic, 0, 51)], operation_timeout=10, request_timeout=30)
    (fut,) = futs.values()
    try:
        fut.result(timeout=30)
        raise AssertionError("deleting past the high watermark succeeded")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, e
    c = consumer(fjord.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (20, 50)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert consume(c, 1)[0].offset() == 20
    finally:
        c.close()
