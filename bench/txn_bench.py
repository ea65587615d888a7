"""Transactional produce against a running node (Fjord or Kafka), with confluent-kafka.

Prints, from one run against one node, so the ratios compare like with like:
  * produce throughput of 1 KiB records, acks=all, idempotent, one partition, without
    transactions (the baseline), then inside transactions of 100 and of 10,000 records:
    msgs/s, MB/s and the fraction of the baseline;
  * commit-to-visibility latency: from commit_transaction() returning to a read_committed
    consumer's first sight of the transaction's last record (p50, p99, max), for small
    transactions (10 records) sent one after another.

  python bench/txn_bench.py BOOTSTRAP [--seconds S] [--rounds R] [--latency-txns N]

`bench/transactions` builds a release fjord, starts it and runs this.
"""

import argparse
import statistics
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

VALUE = b"x" * 1024


def create_topic(bootstrap, name, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def producer(bootstrap, transactional_id=None):
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 1 << 20,
        "queue.buffering.max.messages": 1_000_000,
    }
    if transactional_id:
        config["transactional.id"] = transactional_id
    p = Producer(config)
    if transactional_id:
        p.init_transactions(30)
    return p


def send(p, topic, value, **kw):
    while True:
        try:
            p.produce(topic, value, **kw)
            return
        except BufferError:
            p.poll(0.001)  # the queue is full: let deliveries drain it


def throughput(bootstrap, topic, seconds, per_txn):
    """Records per second over `seconds` of sends; `per_txn` None: no transactions."""
    p = producer(bootstrap, None if per_txn is None else "bench-" + uuid.uuid4().hex[:8])
    sent = 0
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        if per_txn is not None:
            p.begin_transaction()
        for _ in range(per_txn or 1000):
            send(p, topic, VALUE)
            sent += 1
        if per_txn is not None:
            p.commit_transaction(60)  # flushes the transaction's records first
        else:
            p.poll(0)
    p.flush(60)
    return sent / (time.monotonic() - start), sent


def visibility_latency(bootstrap, topic, transactions):
    """Per transaction, ms from commit_transaction() returning to a read_committed consumer
    seeing its last record; and how many were seen."""
    seen = {}
    ready, stop = threading.Event(), threading.Event()

    def consume():
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "lat-" + uuid.uuid4().hex[:6],
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                "enable.auto.commit": False,
            }
        )
        c.assign([TopicPartition(topic, 0, 0)])
        c.poll(0.5)
        ready.set()
        while not stop.is_set():
            m = c.poll(0.05)
            if m is not None and not m.error() and m.key():
                seen.setdefault(m.key().decode(), time.monotonic())
        c.close()

    reader = threading.Thread(target=consume)
    reader.start()
    ready.wait(30)
    p = producer(bootstrap, "lat-" + uuid.uuid4().hex[:8])
    committed = {}
    for i in range(transactions):
        p.begin_transaction()
        for j in range(10):
            last = j == 9
            send(p, topic, b"v", key=("%d" % i).encode() if last else None, partition=0)
        p.commit_transaction(30)
        committed["%d" % i] = time.monotonic()
        time.sleep(0.02)
    deadline = time.monotonic() + 30
    while len(seen) < transactions and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    reader.join()
    return sorted((seen[k] - committed[k]) * 1000 for k in committed if k in seen)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--latency-txns", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # Rounds alternate the three runs, so drift on a noisy machine (other load, page cache
    # growth) hits each alike; each row is the median of its rounds.
    configs = (("no transaction", None), ("100 records/transaction", 100), ("10,000 records/transaction", 10_000))
    rates = {name: [] for name, _ in configs}
    sent = {name: 0 for name, _ in configs}
    for _ in range(args.rounds):
        for name, per_txn in configs:
            topic = "bench-txn-" + uuid.uuid4().hex[:6]
            create_topic(args.bootstrap, topic)
            rate, n = throughput(args.bootstrap, topic, args.seconds, per_txn)
            rates[name].append(rate)
            sent[name] += n
    base = statistics.median(rates["no transaction"])
    print("%-30s %12s %9s %9s %10s  (median of %d rounds of %gs)" % (
        "1 KiB, acks=all, idempotent", "msgs/s", "MB/s", "vs none", "records", args.rounds, args.seconds))
    for name, _ in configs:
        rate = statistics.median(rates[name])
        print("%-30s %12.0f %9.1f %9.2f %10d" % (name, rate, rate * len(VALUE) / 1e6, rate / base, sent[name]))
    topic = "bench-lat-" + uuid.uuid4().hex[:6]
    create_topic(args.bootstrap, topic)
    lat = visibility_latency(args.bootstrap, topic, args.latency_txns)
    if len(lat) >= 2:
        q = statistics.quantiles(lat, n=100, method="inclusive")
        print(
            "commit -> read_committed visibility, %d of %d transactions of 10 records: "
            "min %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (len(lat), args.latency_txns, lat[0], q[49], q[98], lat[-1])
        )
    else:
        print("commit -> read_committed visibility: %d of %d transactions seen" % (len(lat), args.latency_txns))


if __name__ == "__main__":
    main()
