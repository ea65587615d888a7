"""confluent-kafka (librdkafka) consumer groups: members sharing a topic's partitions, a member
leaving (eager and cooperative-sticky), a static member restarting, committed offsets surviving a
node restart, and a member that stops heartbeating being removed after its session timeout.

Records are identified by (partition, offset). Every consumer commits synchronously what it
processed before it polls again (and in its revoke callback), so across every rebalance no record
may be lost or processed twice.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
# FJORD_TEST_RDKAFKA_DEBUG=cgrp (a librdkafka `debug` value) logs the members' group protocol.
RDKAFKA_DEBUG = {"debug": os.environ["FJORD_TEST_RDKAFKA_DEBUG"]} if os.environ.get("FJORD_TEST_RDKAFKA_DEBUG") else {}


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=10)[
        topic
    ].result(timeout=30)


def produce_n(bootstrap, topic, n, partitions):
    """n records round-robin over the partitions; returns {(partition, offset): value}."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=i % partitions, on_delivery=cb)
        p.poll(0)
    assert p.flush(30) == 0, "records not delivered within 30s"
    assert not errors, errors[:5]
    assert len(acked) == n
    return acked


class ContinuousProducer(threading.Thread):
    """Produces to random partitions at about `rate` records/s until stop()."""

    def __init__(self, bootstrap, topic, rate=150):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.acked = {}  # (partition, offset) -> value
        self.errors = []
        self.unflushed = None
        self._halt = threading.Event()

    def run(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 2})

        def cb(err, msg):
            if err is not None:
                self.errors.append(str(err))
            else:
                self.acked[(msg.partition(), msg.offset())] = msg.value()

        i = 0
        while not self._halt.is_set():
            p.produce(self.topic, value=b"c%d" % i, on_delivery=cb)
            i += 1
            p.poll(1.0 / self.rate)
        self.unflushed = p.flush(30)

    def stop(self):
        self._halt.set()
        self.join(60)
        assert not self.is_alive(), "producer thread did not finish"
        assert self.unflushed == 0, "%s records not delivered" % self.unflushed
        assert not self.errors, "delivery errors: %s" % self.errors[:5]
        return self.acked


class Ledger:
    """Which member processed which record; duplicates and commit trouble, for the asserts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.processed = {}  # (partition, offset) -> member name
        self.duplicates = []
        self.errors = []  # consumer errors and failed commits (diagnostics)
        self.uncommitted_on_revoke = []

    def record(self, key, name):
        with self.lock:
            if key in self.processed:
                self.duplicates.append((key, self.processed[key], name))
            else:
                self.processed[key] = name

    def snapshot(self):
        with self.lock:
            return dict(self.processed)


class Member(threading.Thread):
    """One group member: a librdkafka consumer polled by its own thread (like an application
    instance). Each batch is processed, then committed synchronously before the next poll; the
    revoke callback commits what is still pending. close() makes the thread close the consumer."""

    def __init__(self, ledger, bootstrap, topic, group, name, batch=200, limit=None, **conf):
        super().__init__(daemon=True, name=name)
        self.ledger, self.topic, self.batch = ledger, topic, batch
        self.events = []  # ("assign"|"revoke"|"lost", [partitions], monotonic time)
        self.pending = {}  # partition -> next offset, processed but not yet committed
        self.current = []  # the assignment after the last poll
        self.closed = False
        self.failure = None
        self.limit = limit  # stop processing (and polling) once the ledger holds this many records
        self._close = threading.Event()
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "heartbeat.interval.ms": 1000,
                **RDKAFKA_DEBUG,
                **conf,
            }
        )
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.start()

    def _on_assign(self, _c, parts):
        self.events.append(("assign", sorted(p.partition for p in parts), time.monotonic()))

    def _on_revoke(self, _c, parts):
        revoked = {p.partition for p in parts}
        self.events.append(("revoke", sorted(revoked), time.monotonic()))
        self.commit_pending(revoked)
        for p in revoked:
            if p in self.pending:
                self.ledger.uncommitted_on_revoke.append((self.name, p, self.pending.pop(p)))

    def _on_lost(self, _c, parts):
        lost = {p.partition for p in parts}
        self.events.append(("lost", sorted(lost), time.monotonic()))
        for p in lost:
            if p in self.pending:
                self.ledger.uncommitted_on_revoke.append((self.name, p, self.pending.pop(p)))

    def assignment(self):
        return list(self.current)

    def run(self):
        try:
            while not self._close.is_set():
                self.poll()
            self.c.close()
            self.current = []
        except BaseException as e:  # reported by check()
            self.failure = e

    def poll(self):
        n = self.batch
        if self.limit is not None:
            n = min(n, self.limit - len(self.ledger.processed))
        if n <= 0:
            self._close.wait(0.02)
            return
        for m in self.c.consume(num_messages=n, timeout=0.05):
            if m.error():
                if m.error().fatal():
                    raise AssertionError("%s: fatal consumer error %s" % (self.name, m.error()))
                self.ledger.errors.append("%s: %s" % (self.name, m.error()))
                continue
            self.ledger.record((m.partition(), m.offset()), self.name)
            self.pending[m.partition()] = m.offset() + 1
        self.commit_pending()
        self.current = sorted(tp.partition for tp in self.c.assignment())

    def commit_pending(self, only=None):
        parts = [TopicPartition(self.topic, p, o) for p, o in self.pending.items() if only is None or p in only]
        if not parts:
            return
        try:
            res = self.c.commit(offsets=parts, asynchronous=False)
        except KafkaException as e:
            self.ledger.errors.append("%s: commit %s: %s" % (self.name, [(p.partition, p.offset) for p in parts], e))
            return
        for tp in res:
            if tp.error is not None:
                self.ledger.errors.append("%s: commit %d@%d: %s" % (self.name, tp.partition, tp.offset, tp.error))
            elif self.pending.get(tp.partition) == tp.offset:
                del self.pending[tp.partition]

    def check(self):
        if self.failure is not None:
            raise AssertionError("member %s failed: %r" % (self.name, self.failure)) from self.failure

    def close(self, timeout=30):
        """Closes the consumer (from its thread) and waits for that."""
        self._close.set()
        self.join(timeout)
        assert not self.is_alive(), "%s: close() did not finish within %ss" % (self.name, timeout)
        self.closed = True
        self.check()


def poll_until(members, cond, timeout, what):
    """Waits (the members poll in their threads) until cond() holds."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.check()
        if cond():
            return
        if time.monotonic() > deadline:
            state = {m.name: (m.assignment() if not m.closed else "closed", m.events[-6:]) for m in members}
            pytest.fail("%s: not within %ss; members: %s; errors: %s" % (what, timeout, state, members[0].ledger.errors[-10:]))
        time.sleep(0.02)


def poll_for(members, seconds):
    """Lets the members keep processing for `seconds` (for checks that something does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m in members:
            m.check()
        time.sleep(0.05)


def balanced(members, per_member, partitions=PARTITIONS):
    def cond():
        live = [m for m in members if not m.closed]
        assignments = [m.assignment() for m in live]
        owned = [p for a in assignments for p in a]
        return all(len(a) == per_member for a in assignments) and sorted(owned) == list(range(partitions))

    return cond


def processed_by(ledger, name):
    return sum(1 for who in ledger.snapshot().values() if who == name)


def progressed(ledger, members, at_least):
    """Every live member processed at least `at_least` more records than at the time of the call."""
    base = {m.name: processed_by(ledger, m.name) for m in members}
    return lambda: all(processed_by(ledger, m.name) >= base[m.name] + at_least for m in members if not m.closed)


def drain_and_check(members, ledger, acked, timeout=30):
    """Polls until every acknowledged record is processed, then asserts exactly-once."""
    poll_until(members, lambda: set(acked) <= set(ledger.snapshot()), timeout, "every produced record processed")
    poll_for(members, 1.0)  # a late duplicate would show up here
    processed = ledger.snapshot()
    missing = sorted(set(acked) - set(processed))
    extra = sorted(set(processed) - set(acked))
    assert not ledger.duplicates, "records processed twice ((partition, offset), first, second): %s; uncommitted on revoke: %s" % (
        ledger.duplicates[:20],
        ledger.uncommitted_on_revoke,
    )
    assert not missing, "records never processed: %s" % missing[:20]
    assert not extra, "processed records nobody produced: %s" % extra[:20]


def rebalance_events(member, since):
    return [e for e in member.events if e[2] >= since]


@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_three_members_share_and_one_leaves(fjord_fast, topic, strategy):
    create_topic(fjord_fast.bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    producer = ContinuousProducer(fjord_fast.bootstrap, topic)
    producer.start()
    members = []
    try:
        conf = {"partition.assignment.strategy": strategy, "session.timeout.ms": 10000}
        members = [Member(ledger, fjord_fast.bootstrap, topic, "share-group", "m%d" % i, **conf) for i in range(3)]
        poll_until(members, balanced(members, 2), 60, "three members with 2 partitions each")
        poll_until(members, progressed(ledger, members, 20), 30, "each member processing records")

        # m2 closes: it commits in its revoke callback and sends LeaveGroup; m0 and m1 take over.
        leaver = members[2]
        its_partitions = leaver.assignment()
        left_at = time.monotonic()
        leaver.close()
        assert leaver.events[-1][0] == "revoke", "close() revokes the assignment: %s" % leaver.events[-3:]
        poll_until(members, balanced(members, 3), 30, "m0 and m1 with 3 partitions each after m2 left")
        taken_over = time.monotonic() - left_at
        # A LeaveGroup rebalance must not wait for m2's session timeout (10 s).
        assert taken_over < 8, "takeover took %.1fs: the leave was not noticed before the session timeout" % taken_over
        now_owned = set(members[0].assignment()) | set(members[1].assignment())
        assert set(its_partitions) <= now_owned
        poll_until(members, progressed(ledger, members, 20), 30, "m0 and m1 processing records")
        if strategy == "cooperative-sticky":
            # Incremental: m0 and m1 kept the partitions they had (no revoke after m2 left).
            for m in members[:2]:
                revokes = [e for e in rebalance_events(m, left_at) if e[0] != "assign"]
                assert not revokes, "%s revoked partitions in a cooperative rebalance: %s" % (m.name, revokes)

        acked = producer.stop()
        assert len(acked) > 100
        drain_and_check(members, ledger, acked)
        assert processed_by(ledger, "m2") > 0
    finally:
        if producer.is_alive():
            producer._halt.set()
        for m in members:
            m.close()


def test_static_member_restart_keeps_its_partitions(fjord_fast, topic):
    create_topic(fjord_fast.bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    producer = ContinuousProducer(fjord_fast.bootstrap, topic)
    producer.start()
    members = []
    try:
        conf = {"session.timeout.ms": 30000}
        members = [
            Member(ledger, fjord_fast.bootstrap, topic, "static-group", "s%d" % i, **{"group.instance.id": "static-%d" % i, **conf})
            for i in range(3)
        ]
        poll_until(members, balanced(members, 2), 60, "three static members with 2 partitions each")
        poll_until(members, progressed(ledger, members, 20), 30, "each member processing records")
        before = {m.name: m.assignment() for m in members}

        # s2 restarts: a static member's close() sends no LeaveGroup; its successor (same
        # group.instance.id) rejoins well within session.timeout.ms and gets the same partitions
        # back, without the other members rebalancing.
        old = members[2]
        restarted_at = time.monotonic()
        old.close()
        # The broker still counts it a member (it sent no LeaveGroup).
        admin = AdminClient({"bootstrap.servers": fjord_fast.bootstrap})
        desc = admin.describe_consumer_groups(["static-group"], request_timeout=10)["static-group"].result(timeout=15)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert sorted(m.group_instance_id for m in desc.members) == ["static-0", "static-1", "static-2"], desc.members
        new = Member(ledger, fjord_fast.bootstrap, topic, "static-group", "s2-restarted", **{"group.instance.id": "static-2", **conf})
        members.append(new)
        poll_until(members, lambda: new.assignment() == before["s2"], 30, "the restarted static member gets %s" % before["s2"])
        elapsed = time.monotonic() - restarted_at
        assert elapsed < 20, "the static member got its partitions back only after %.1fs" % elapsed
        # A rebalance would reach s0/s1 through a heartbeat (interval 1 s): give it 3 intervals.
        poll_until(members, progressed(ledger, [new], 20), 30, "the restarted member processing records")
        poll_for(members, 3.0)
        for m in members[:2]:
            assert m.assignment() == before[m.name], "%s's assignment changed" % m.name
            events = rebalance_events(m, restarted_at)
            assert not events, "%s rebalanced when a static member restarted: %s" % (m.name, events)
        assert [e[:2] for e in new.events] == [("assign", before["s2"])], new.events

        acked = producer.stop()
        drain_and_check(members, ledger, acked)
    finally:
        if producer.is_alive():
            producer._halt.set()
        for m in members:
            m.close()


def committed(bootstrap, group, topic, partitions, timeout=30):
    """The group's committed offsets (OffsetFetch from a consumer that does not join), retried
    while the coordinator loads after a restart."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return _committed(consumer, topic, partitions, timeout)
    finally:
        consumer.close()


def _committed(consumer, topic, partitions, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            res = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=5)
            bad = [tp for tp in res if tp.error is not None]
            if not bad:
                return {tp.partition: tp.offset for tp in res}
            last = bad
        except KafkaException as e:
            last = e
        assert time.monotonic() < deadline, "committed offsets not readable within %ss: %s" % (timeout, last)
        time.sleep(0.1)


def test_committed_offsets_survive_node_restart(fjord_fast, topic):
    partitions, n = 3, 90
    create_topic(fjord_fast.bootstrap, topic, partitions)
    acked = produce_n(fjord_fast.bootstrap, topic, n, partitions)
    group = "restart-group"

    # A member processes (and commits) part of the records, then leaves.
    ledger = Ledger()
    a = Member(ledger, fjord_fast.bootstrap, topic, group, "before", batch=10, limit=40)
    try:
        poll_until([a], lambda: len(ledger.snapshot()) >= 40, 60, "40 records processed")
    finally:
        a.close()
    assert not a.pending, "uncommitted after close: %s" % a.pending
    first = ledger.snapshot()
    assert len(first) == 40
    expected = {p: 1 + max((o for (q, o) in first if q == p), default=-1) for p in range(partitions)}
    expected = {p: (o if o > 0 else -1001) for p, o in expected.items()}  # -1001: OFFSET_INVALID (none)

    fjord_fast.restart()

    # The group and its offsets were rebuilt from __consumer_offsets.
    admin = AdminClient({"bootstrap.servers": fjord_fast.bootstrap})
    deadline = time.monotonic() + 30
    while True:
        try:
            listed = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
            groups = {g.group_id: g for g in listed.valid}
            if group in groups:
                break
            last = sorted(groups)
        except KafkaException as e:
            last = e
        assert time.monotonic() < deadline, "group %s not listed after restart: %s" % (group, last)
        time.sleep(0.2)
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert desc.state == ConsumerGroupState.EMPTY, desc.state
    assert not desc.members

    assert committed(fjord_fast.bootstrap, group, topic, partitions) == expected

    # A new member resumes from them: it processes exactly the records the first one did not.
    b = Member(ledger, fjord_fast.bootstrap, topic, group, "after")
    try:
        poll_until([b], lambda: set(acked) <= set(ledger.snapshot()), 60, "the rest processed after restart")
        poll_for([b], 1.0)
        assert not ledger.duplicates, "re-read after restart: %s" % ledger.duplicates[:20]
        assert sorted(k for k, who in ledger.snapshot().items() if who == "after") == sorted(set(acked) - set(first))
    finally:
        b.close()
    assert not b.pending, "uncommitted after close: %s" % b.pending
    assert committed(fjord_fast.bootstrap, group, topic, partitions) == {
        p: sum(1 for (q, _) in acked if q == p) for p in range(partitions)
    }


# A group member in its own process, printing its assignment (a JSON list) whenever it changes.
MEMBER_SCRIPTS = {
    "kafka-python": """
import json, sys
from kafka import KafkaConsumer
bootstrap, topic, group = sys.argv[1:4]
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                  auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)
last = None
while True:
    c.poll(timeout_ms=100)
    a = sorted(tp.partition for tp in c.assignment())
    if a != last:
        print(json.dumps(a), flush=True)
        last = a
""",
    "librdkafka": """
import json, sys
from confluent_kafka import Consumer
bootstrap, topic, group = sys.argv[1:4]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
c.subscribe([topic])
last = None
while True:
    c.poll(0.1)
    a = sorted(tp.partition for tp in c.assignment())
    if a != last:
        print(json.dumps(a), flush=True)
        last = a
""",
}

SESSION_TIMEOUT = 6.0


@pytest.mark.parametrize(
    "client,sig", [("kafka-python", signal.SIGSTOP), ("librdkafka", signal.SIGKILL)], ids=["kafka-python-sigstop", "librdkafka-sigkill"]
)
def test_member_that_stops_heartbeating_is_removed(fjord_fast, topic, client, sig):
    create_topic(fjord_fast.bootstrap, topic, PARTITIONS)
    group = "timeout-group"
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER_SCRIPTS[client], fjord_fast.bootstrap, topic, group],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(l)) for l in proc.stdout], daemon=True).start()
    remote = {"assignment": None}

    def remote_has(n):
        def cond():
            while not lines.empty():
                remote["assignment"] = lines.get()
            assert proc.poll() is None, "the %s member exited (%s)" % (client, proc.returncode)
            return remote["assignment"] is not None and len(remote["assignment"]) == n

        return cond

    ledger = Ledger()
    members = []
    try:
        # The other-process member first owns everything, then shares with ours.
        deadline = time.monotonic() + 60
        while not remote_has(PARTITIONS)():
            assert time.monotonic() < deadline, "the %s member never owned all partitions: %s" % (client, remote)
            time.sleep(0.05)
        local = Member(ledger, fjord_fast.bootstrap, topic, group, "local", **{"session.timeout.ms": 6000})
        members.append(local)
        poll_until(members, lambda: len(local.assignment()) == 3 and remote_has(3)(), 60, "3 partitions each")
        assert sorted(local.assignment() + remote["assignment"]) == list(range(PARTITIONS))

        # The other member stops heartbeating (frozen, or killed without a LeaveGroup).
        proc.send_signal(sig)
        stopped_at = time.monotonic()
        poll_until(members, lambda: local.assignment() == list(range(PARTITIONS)), SESSION_TIMEOUT + 30, "local owns all partitions")
        elapsed = time.monotonic() - stopped_at
        # Its last heartbeat was at most one interval (1 s) before the signal.
        assert elapsed >= SESSION_TIMEOUT - 1.5, "removed after %.1fs, before its %.0fs session timeout" % (elapsed, SESSION_TIMEOUT)

        admin = AdminClient({"bootstrap.servers": fjord_fast.bootstrap})
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert [m.client_id for m in desc.members] == ["local"], desc.members
        assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == list(range(PARTITIONS))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for m in members:
            m.close()
