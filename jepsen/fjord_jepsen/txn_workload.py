"""The transactional workload (after Jepsen's Kafka workload), run beside the queue workload.

Topics: `jepsen-txn` (the input) and `jepsen-txn-out`; keys name their partitions
("jepsen-txn-3", "jepsen-txn-out-3"). Roles, each a separate process with its own history file:

- `txn-producer`: a transactional producer (its own transactional.id) that sends 1 to 4 unique
  integers to random partitions of `jepsen-txn` in one transaction, then commits it or, about
  one time in five, aborts it on purpose.
- `txn-ctp`: consume-transform-produce. A read_committed consumer of `jepsen-txn` in the group
  `jepsen-ctp` (subscribed, no auto-commit) polls; inside one transaction its producer writes
  one new unique value per record read to the same partition number of `jepsen-txn-out` (the
  send names its source record) and sends the consumer's next offsets with
  send_offsets_to_transaction; about one transaction in ten is aborted on purpose. After an
  abort the consumer seeks back to the group's committed offsets, so every input record is
  processed again by a later transaction.
- `txn-reader`: a read_committed consumer with a manual assignment of every partition of both
  topics, polling all the time (it catches reads of aborted or not yet committed data);
  `txn-reader-uncommitted` the same with read_uncommitted: it sees aborted records too, so the
  offsets they hold are known (a committed send acknowledged at an offset that holds another
  value shows as txn-inconsistent-offsets).
- `txn-final`: after the run, reads both topics with read_committed from offset 0 up to the
  high watermarks, and records the group `jepsen-ctp`'s committed offsets.

Ops (jepsen/README.md has the format): `txn` (invoke at begin_transaction; `ok` committed,
`fail` certainly not committed, `info` indeterminate), `txn-poll` (records read with the
isolation level), and `rebalance` / `seek` / `crash` position resets.

Errors follow confluent-kafka's transactional rules: an error that `txn_requires_abort()` is
answered with abort_transaction; a fatal one (the producer was fenced or lost its state) with a
new producer under the same transactional.id, whose init_transactions fences the old one and
aborts what it left open; a retriable error of commit_transaction is retried. A transaction
whose commit was never requested cannot commit, so it is `fail` whatever else went wrong; one
whose commit was requested and not confirmed is `info` (also when commit_transaction asked for
an abort and the abort was not confirmed), and the process continues under a new process id, as
Jepsen does.
"""

from __future__ import annotations

import random
import time
import traceback

from .workload import HistoryLog, WorkerSpec, _common, _Process

TOPIC_IN = "jepsen-txn"
TOPIC_OUT = "jepsen-txn-out"
GROUP = "jepsen-ctp"
# How many records one poll may return; recorded with the poll, so the checker knows when a
# poll was cut short by it.
POLL_MAX = 500
TXN_TIMEOUT_MS = 10000
ABORT_PRODUCER = 0.2
ABORT_CTP = 0.1


def key_of(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def run(spec: WorkerSpec, log: HistoryLog) -> None:
    {"txn-producer": _produce, "txn-ctp": _ctp, "txn-reader": _reader,
     "txn-reader-uncommitted": _reader, "txn-final": _final_read}[spec.role](spec, log)


class _CommitUnknown(Exception):
    """commit_transaction was called and did not confirm: the outcome is indeterminate."""


class _Txn:
    """A transactional producer under one transactional.id, recreated after a fatal error."""

    def __init__(self, spec: WorkerSpec, log: HistoryLog, proc: _Process, txn_id: str):
        self.spec, self.log, self.proc, self.txn_id = spec, log, proc, txn_id
        self.producer = None
        self.offsets: dict[int, tuple[str, int | None]] = {}
        self.recreate(initial=True)

    def recreate(self, initial: bool = False) -> None:
        from confluent_kafka import KafkaException, Producer

        if not initial:
            self.log.write("info", "crash", {"txn_id": self.txn_id}, self.proc.id,
                           error="producer recreated")
        while time.monotonic() < self.spec.stop_at + 30:
            self.producer = Producer({
                **_common(self.spec), "transactional.id": self.txn_id,
                "transaction.timeout.ms": TXN_TIMEOUT_MS, "message.timeout.ms": 9000,
                "request.timeout.ms": 5000, "retry.backoff.ms": 100, "linger.ms": 0})
            try:
                self.producer.init_transactions(20)
                return
            except KafkaException as err:
                self.log.write("info", "init-transactions", {"txn_id": self.txn_id},
                               self.proc.id, error=str(err.args[0]))
                time.sleep(0.5)
        raise RuntimeError("init_transactions never succeeded")

    def produce(self, topic: str, partition: int, value: int, slot: int) -> None:
        def delivered(err, msg, slot=slot):
            self.offsets[slot] = (str(err) if err else None,
                                  None if err or msg is None else msg.offset())

        self.producer.produce(topic, value=str(value).encode(), partition=partition,
                              on_delivery=delivered)

    def abort(self) -> bool:
        """Aborts the open transaction; true when the coordinator confirmed the abort. A
        producer that cannot abort is replaced (its successor's init_transactions aborts the
        transaction, unless the coordinator had already taken a commit)."""
        from confluent_kafka import KafkaException

        for _ in range(3):
            try:
                self.producer.abort_transaction(15)
                return True
            except KafkaException as err:
                if err.args[0].fatal() or not err.args[0].retriable():
                    break
        self.recreate()
        return False

    def commit(self) -> None:
        """Commits; raises _CommitUnknown when the outcome is not known, KafkaException with
        txn_requires_abort when the transaction must be (and then was not yet) aborted."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 20
        while True:
            try:
                self.producer.commit_transaction(10)
                return
            except KafkaException as err:
                e = err.args[0]
                if e.txn_requires_abort():
                    raise
                if e.fatal() or not e.retriable() or time.monotonic() > deadline:
                    raise _CommitUnknown(str(e)) from err


def _run_txn(txn: _Txn, log: HistoryLog, proc: _Process, invoke: dict, body,
             abort: bool) -> str:
    """Runs one transaction: begin, `body()` (produce, send offsets), then commit or abort.
    Logs the invoke and the completion; returns "ok", "fail" or "info"."""
    from confluent_kafka import KafkaException

    txn.offsets = {}
    log.write("invoke", "txn", invoke, proc.id)
    done = dict(invoke)
    commit_requested = None

    def complete(type_: str, error: str | None) -> str:
        sends = []
        for i, send in enumerate(invoke["sends"]):
            err, offset = txn.offsets.get(i, (None, None))
            sends.append({**send, **({} if offset is None else {"offset": offset}),
                          **({"error": err} if err else {})})
        log.write(type_, "txn", {**done, "sends": sends, "commit_requested": commit_requested},
                  proc.id, error=error)
        return type_

    try:
        txn.producer.begin_transaction()
        body()
        # Flush first, so the delivery reports (offsets) are in even for an abort.
        txn.producer.flush(10)
        if abort:
            txn.abort()
            return complete("fail", "aborted on purpose")
        commit_requested = round(time.monotonic() - log.start, 6)
        txn.commit()
        return complete("ok", None)
    except _CommitUnknown as err:
        complete("info", f"commit unconfirmed: {err}")
        proc.bump()
        txn.recreate()
        return "info"
    except KafkaException as err:
        e = err.args[0]
        if e.fatal():
            # Fenced or lost its producer state: nothing of this transaction can commit unless
            # its commit was requested.
            result = complete("info" if commit_requested is not None else "fail", str(e))
            if result == "info":
                proc.bump()
            txn.recreate()
            return result
        # Abortable. Before the commit was requested nothing can commit; after it (the commit
        # failed its flush, say), only a confirmed abort says the coordinator took no commit.
        confirmed = txn.abort()
        if commit_requested is None or confirmed:
            return complete("fail", str(e))
        complete("info", f"{e}; and the abort was not confirmed")
        proc.bump()
        return "info"
    except Exception as err:  # noqa: BLE001 - BufferError and the like: before any commit
        result = complete("fail" if commit_requested is None else "info",
                          f"{type(err).__name__}: {err}")
        if result == "info":
            proc.bump()
        txn.recreate()
        return result


# ---------------------------------------------------------------------------- producers

def _produce(spec: WorkerSpec, log: HistoryLog) -> None:
    rng = random.Random(spec.seed)
    proc = _Process(spec)
    txn = _Txn(spec, log, proc, f"jepsen-txn-{spec.worker}")
    counter = 0
    while time.monotonic() < spec.stop_at:
        sends = []
        for _ in range(rng.randint(1, 4)):
            partition = rng.randrange(spec.partitions)
            sends.append({"key": key_of(TOPIC_IN, partition),
                          "value": spec.worker * 10_000_000 + counter})
            counter += 1

        def body(sends=sends):
            for i, send in enumerate(sends):
                txn.produce(TOPIC_IN, int(send["key"].rsplit("-", 1)[1]), send["value"], i)

        _run_txn(txn, log, proc, {"txn_id": txn.txn_id, "sends": sends}, body,
                 abort=rng.random() < ABORT_PRODUCER)


# ---------------------------------------------------------------------------- consumers

def _poll(consumer, log: HistoryLog, proc: _Process, timeout: float = 1.0,
          isolation: str = "read_committed"):
    """One poll op; returns its records per key, [[offset, value], ...]."""
    log.write("invoke", "txn-poll", {"isolation": isolation}, proc.id)
    messages = consumer.consume(num_messages=POLL_MAX, timeout=timeout)
    records: dict[str, list] = {}
    errors = []
    for msg in messages:
        if msg.error():
            errors.append(str(msg.error()))
            continue
        records.setdefault(key_of(msg.topic(), msg.partition()), []).append(
            [msg.offset(), int(msg.value())])
    log.write("ok", "txn-poll", {"isolation": isolation, "records": records,
                                 "max": POLL_MAX}, proc.id, error="; ".join(errors) or None)
    return records


def _consumer_conf(spec: WorkerSpec, group: str, isolation: str = "read_committed") -> dict:
    return {**_common(spec), "group.id": group, "auto.offset.reset": "earliest",
            "isolation.level": isolation, "enable.auto.commit": False,
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 60000, "enable.partition.eof": False}


def _new_ctp_consumer(spec: WorkerSpec, log: HistoryLog, proc: _Process):
    from confluent_kafka import Consumer

    consumer = Consumer(_consumer_conf(spec, GROUP))

    def assigned(_consumer, partitions):
        log.write("info", "rebalance", {"revoked": [], "assigned": sorted(
            key_of(tp.topic, tp.partition) for tp in partitions)}, proc.id)

    def revoked(_consumer, partitions):
        log.write("info", "rebalance", {"revoked": sorted(
            key_of(tp.topic, tp.partition) for tp in partitions), "assigned": []}, proc.id)

    log.write("invoke", "subscribe", [TOPIC_IN], proc.id)
    consumer.subscribe([TOPIC_IN], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
    log.write("ok", "subscribe", [TOPIC_IN], proc.id)
    return consumer


def _rewind(consumer, log: HistoryLog, proc: _Process) -> None:
    """Back to the group's committed offsets, after a transaction that did not commit."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    assignment = consumer.assignment()
    committed = consumer.committed(assignment, timeout=10)
    positions = {}
    for tp in committed:
        offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        positions[key_of(tp.topic, tp.partition)] = tp.offset
    log.write("info", "seek", positions, proc.id)


def _ctp(spec: WorkerSpec, log: HistoryLog) -> None:
    rng = random.Random(spec.seed)
    proc = _Process(spec)
    txn = _Txn(spec, log, proc, f"jepsen-ctp-{spec.worker}")
    consumer = _new_ctp_consumer(spec, log, proc)
    counter = 0
    while time.monotonic() < spec.stop_at:
        try:
            # A short poll: many small transactions rather than a few big ones.
            records = _poll(consumer, log, proc, timeout=0.2)
            if not records:
                continue
            sends, offsets = [], {}
            for key, recs in sorted(records.items()):
                partition = int(key.rsplit("-", 1)[1])
                for offset, value in recs:
                    sends.append({"key": key_of(TOPIC_OUT, partition),
                                  "value": spec.worker * 10_000_000 + counter,
                                  "source": [key, value]})
                    counter += 1
                offsets[key] = recs[-1][0] + 1
            invoke = {"txn_id": txn.txn_id, "sends": sends, "reads": records,
                      "offsets": offsets, "group": GROUP}

            def body(sends=sends, offsets=offsets):
                from confluent_kafka import TopicPartition

                for i, send in enumerate(sends):
                    txn.produce(TOPIC_OUT, int(send["key"].rsplit("-", 1)[1]), send["value"], i)
                txn.producer.send_offsets_to_transaction(
                    [TopicPartition(TOPIC_IN, int(k.rsplit("-", 1)[1]), o)
                     for k, o in offsets.items()],
                    consumer.consumer_group_metadata(), 15)

            outcome = _run_txn(txn, log, proc, invoke, body, abort=rng.random() < ABORT_CTP)
            if outcome != "ok":
                _rewind(consumer, log, proc)
        except Exception as err:  # noqa: BLE001 - any client failure: record, start over
            proc.bump()
            log.write("info", "crash", None, proc.id,
                      error=f"{type(err).__name__}: {err}; {traceback.format_exc(limit=1)}")
            try:
                consumer.close()
            except Exception:  # noqa: BLE001
                pass
            consumer = _new_ctp_consumer(spec, log, proc)
    consumer.close()


def _all_partitions(spec: WorkerSpec):
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    return [TopicPartition(t, p, OFFSET_BEGINNING) for t in (TOPIC_IN, TOPIC_OUT)
            for p in range(spec.partitions)]


def _isolation(spec: WorkerSpec) -> str:
    return "read_uncommitted" if spec.role == "txn-reader-uncommitted" else "read_committed"


def _new_reader(spec: WorkerSpec, log: HistoryLog, proc: _Process):
    from confluent_kafka import Consumer

    consumer = Consumer(_consumer_conf(spec, f"jepsen-txn-reader-{spec.worker}",
                                       _isolation(spec)))
    tps = _all_partitions(spec)
    keys = [key_of(tp.topic, tp.partition) for tp in tps]
    log.write("invoke", "assign", keys, proc.id)
    consumer.assign(tps)
    log.write("ok", "assign", keys, proc.id)
    return consumer, tps


def _reader(spec: WorkerSpec, log: HistoryLog) -> None:
    proc = _Process(spec)
    consumer, _ = _new_reader(spec, log, proc)
    while time.monotonic() < spec.stop_at:
        try:
            _poll(consumer, log, proc, timeout=0.5, isolation=_isolation(spec))
        except Exception as err:  # noqa: BLE001
            log.write("info", "txn-poll", {"isolation": _isolation(spec)}, proc.id,
                      error=f"{type(err).__name__}: {err}")
            proc.bump()
            log.write("info", "crash", None, proc.id, error="consumer recreated")
            try:
                consumer.close()
            except Exception:  # noqa: BLE001
                pass
            consumer, _ = _new_reader(spec, log, proc)
    consumer.close()


def _final_read(spec: WorkerSpec, log: HistoryLog) -> None:
    """Reads both topics from offset 0 until each partition's position reaches the high
    watermark taken at the start (control records are never returned, so positions, not the
    last offset read, tell when a partition is done); then the group's committed offsets."""
    from confluent_kafka import Consumer, TopicPartition

    proc = _Process(spec)
    consumer, tps = _new_reader(spec, log, proc)
    ends: dict[str, int] = {}
    for tp in tps:
        key = key_of(tp.topic, tp.partition)
        while key not in ends and time.monotonic() < spec.stop_at:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=5)
                ends[key] = high
            except Exception as err:  # noqa: BLE001 - the cluster may still be settling
                log.write("info", "watermark", {"key": key}, proc.id, error=str(err))
                time.sleep(1)
    log.write("info", "txn-final-read-targets", ends, proc.id)
    done = {k for k, h in ends.items() if h == 0}
    while len(done) < len(tps) and time.monotonic() < spec.stop_at:
        _poll(consumer, log, proc)
        pending = [tp for tp in tps if key_of(tp.topic, tp.partition) not in done]
        for tp in consumer.position([TopicPartition(tp.topic, tp.partition) for tp in pending]):
            key = key_of(tp.topic, tp.partition)
            if tp.offset >= 0 and tp.offset >= ends.get(key, 0):
                done.add(key)
    complete = len(done) == len(tps)
    log.write("info", "txn-final-read-complete" if complete else "txn-final-read-incomplete",
              sorted(done), proc.id)
    consumer.close()
    group = Consumer(_consumer_conf(spec, GROUP))
    try:
        committed = group.committed([TopicPartition(TOPIC_IN, p)
                                     for p in range(spec.partitions)], timeout=10)
        log.write("info", "txn-group-offsets", {"group": GROUP, "offsets": {
            key_of(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}},
            proc.id)
    except Exception as err:  # noqa: BLE001
        log.write("info", "txn-group-offsets", {"group": GROUP, "offsets": None}, proc.id,
                  error=str(err))
    finally:
        group.close()
