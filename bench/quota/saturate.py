"""A librdkafka producer saturating against producer_byte_rate, against any
broker (Fjord or Apache Kafka, see bench/KAFKA.md), with the broker's own
quota windows (Kafka's defaults: 11 x 1 s).

    bench/quota/saturate.py BOOTSTRAP [SECONDS] [RATE]

Sets the quota with `fjord quota set` ($FJORD_BIN, default `fjord` on PATH)
on a fresh client id, produces 10 KB messages in 16 KB batches for
SECONDS (100), and prints the acknowledged rate as a percentage of the
quota over the whole run, after the first 12 s, and over 10 s spans every
5 s (bytes are counted when their acknowledgement arrives)."""

import os
import subprocess
import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 1024 * 1024
    tag = uuid.uuid4().hex[:8]
    topic, client_id = "quota-bench-" + tag, "quota-bench-" + tag
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    subprocess.run(
        [os.environ.get("FJORD_BIN", "fjord"), "quota", "set", "-b", bootstrap, "--client-id", client_id,
         "--config", "producer_byte_rate=%d" % rate],
        check=True, capture_output=True,
    )
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                         "batch.size": 16384, "queue.buffering.max.kbytes": 1024})
    events, start = [], time.monotonic()

    def on_delivery(err, msg):
        if err is None:
            events.append((time.monotonic() - start, len(msg.value())))

    value = b"x" * 10_000
    while time.monotonic() - start < seconds:
        try:
            producer.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.purge()
    producer.flush(5)

    def pct(begin, end):
        return 100.0 * sum(n for t, n in events if begin <= t < end) / (end - begin) / rate

    spans = " ".join("%.0f" % pct(b, b + 10) for b in range(12, int(seconds) - 9, 5))
    print("whole %.1f%%  after 12 s %.1f%%  10 s spans: %s" % (pct(0, seconds), pct(12, seconds), spans))


if __name__ == "__main__":
    main()
