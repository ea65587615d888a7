"""The queue workload (after Jepsen's Kafka workload), run by separate client processes.

Keys are the partitions of one topic ("jepsen-<p>"); every value is a unique integer. Producer
processes send one value at a time with acks=all (half of them idempotent) and wait for the
outcome; consumer processes poll, either with a manual assignment of every partition or
subscribed as members of one consumer group. Each process writes its own history file
(JSON lines, times in seconds since the run started on the shared monotonic clock); the runner
merges them.

Outcomes: `ok` when the broker acknowledged (send) or returned records (poll); `fail` only when
the operation certainly did not happen (the client refused it before sending); everything else,
timeouts and errors after the request may have reached a broker, is `info` (indeterminate).
Like Jepsen, a process that saw an indeterminate outcome continues under a new process id.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

TOPIC = "jepsen"


def key_of(partition: int) -> str:
    return f"{TOPIC}-{partition}"


class HistoryLog:
    """One process's history, appended as JSON lines (flushed per op: a crash loses nothing)."""

    def __init__(self, path: Path, start: float):
        self.start = start
        self.file = open(path, "a", buffering=1)

    def write(self, type_: str, f: str, value, process="nemesis", error: str | None = None):
        op = {"time": round(time.monotonic() - self.start, 6), "process": process,
              "type": type_, "f": f, "value": value}
        if error:
            op["error"] = error
        self.file.write(json.dumps(op) + "\n")

    def close(self):
        self.file.close()


@dataclass
class WorkerSpec:
    worker: int              # 0-based worker number
    workers: int             # how many workers there are (for fresh process ids)
    role: str                # "producer" | "assign" | "subscribe" | "final", or a
                             # txn_workload role: "txn-producer" | "txn-ctp" | "txn-reader" |
                             # "txn-final"
    bootstrap: str
    partitions: int
    start: float             # shared time.monotonic() origin
    stop_at: float           # time.monotonic() when to stop (final reader: deadline)
    history: str             # this worker's history file
    idempotent: bool = True
    seed: int = 0
    options: dict = field(default_factory=dict)


def run_worker(spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    # The client library's own log lines (librdkafka writes them to stderr) go to a file
    # beside the history, not into the runner's output.
    client_log = os.open(Path(spec.history).with_suffix(".client.log"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(client_log, 2)
    # The runner sends SIGUSR1 to a worker that overstays the run before killing it: the
    # stacks of its threads land in the client log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    log = HistoryLog(Path(spec.history), spec.start)
    try:
        if spec.role.startswith("txn-"):
            from . import txn_workload

            txn_workload.run(spec, log)
        else:
            {"producer": _produce, "assign": _consume, "subscribe": _consume,
             "final": _final_read}[spec.role](spec, log)
    finally:
        log.close()


class _Process:
    """The worker's current Jepsen process id; bumped after an indeterminate outcome."""

    def __init__(self, spec: WorkerSpec):
        self.id = spec.worker
        self.step = spec.workers

    def bump(self) -> None:
        self.id += self.step


def _common(spec: WorkerSpec) -> dict:
    return {"bootstrap.servers": spec.bootstrap, "client.id": f"jepsen-{spec.worker}",
            "socket.connection.setup.timeout.ms": 3000, "topic.metadata.refresh.interval.ms": 2000,
            "reconnect.backoff.max.ms": 1000}


# ---------------------------------------------------------------------------- producers

def _new_producer(spec: WorkerSpec):
    from confluent_kafka import Producer

    return Producer({**_common(spec), "acks": "all", "enable.idempotence": spec.idempotent,
                     "message.timeout.ms": 10000, "request.timeout.ms": 5000,
                     "retry.backoff.ms": 100, "linger.ms": 0,
                     **({} if spec.idempotent else {"max.in.flight.requests.per.connection": 1})})


def _produce(spec: WorkerSpec, log: HistoryLog) -> None:
    from confluent_kafka import KafkaException

    rng = random.Random(spec.seed)
    proc = _Process(spec)
    producer = _new_producer(spec)
    counter = 0
    while time.monotonic() < spec.stop_at:
        partition = rng.randrange(spec.partitions)
        value = spec.worker * 10_000_000 + counter
        counter += 1
        op = {"key": key_of(partition), "value": value, "idempotent": spec.idempotent}
        log.write("invoke", "send", op, proc.id)
        outcome: dict = {}

        def delivered(err, msg, outcome=outcome):
            outcome["err"] = err
            outcome["offset"] = None if msg is None else msg.offset()

        try:
            producer.produce(TOPIC, value=str(value).encode(), partition=partition,
                             on_delivery=delivered)
        except (BufferError, KafkaException) as err:
            # Refused by the client before anything was sent: certainly not written.
            log.write("fail", "send", op, proc.id, error=str(err))
            continue
        producer.flush(15.0)
        if "err" not in outcome:
            log.write("info", "send", op, proc.id, error="no outcome within 15 s")
        elif outcome["err"] is None:
            log.write("ok", "send", {**op, "offset": outcome["offset"]}, proc.id)
            continue
        else:
            log.write("info", "send", op, proc.id, error=str(outcome["err"]))
        proc.bump()
        err = outcome.get("err")
        if err is None or err.fatal():
            # A stuck queue or a fatal idempotence error: start over with a new client.
            log.write("info", "crash", None, proc.id, error="producer recreated")
            producer = _new_producer(spec)
    producer.flush(15.0)


# ---------------------------------------------------------------------------- consumers

def _new_consumer(spec: WorkerSpec, log: HistoryLog, proc: _Process):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    group = "jepsen-subscribe" if spec.role == "subscribe" else f"jepsen-assign-{spec.worker}"
    consumer = Consumer({**_common(spec), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": spec.role == "subscribe",
                         "auto.commit.interval.ms": 1000, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 60000,
                         "enable.partition.eof": False})
    if spec.role == "subscribe":
        def assigned(_consumer, partitions):
            log.write("info", "rebalance", {"revoked": [], "assigned": sorted(
                key_of(tp.partition) for tp in partitions)}, proc.id)

        def revoked(_consumer, partitions):
            log.write("info", "rebalance", {"revoked": sorted(
                key_of(tp.partition) for tp in partitions), "assigned": []}, proc.id)

        log.write("invoke", "subscribe", [TOPIC], proc.id)
        consumer.subscribe([TOPIC], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        log.write("ok", "subscribe", [TOPIC], proc.id)
    else:
        keys = [key_of(p) for p in range(spec.partitions)]
        log.write("invoke", "assign", keys, proc.id)
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
        log.write("ok", "assign", keys, proc.id)
    return consumer


def _poll_once(consumer, log: HistoryLog, proc: _Process, timeout: float = 1.0):
    """One poll op; returns the records read per partition."""
    log.write("invoke", "poll", None, proc.id)
    messages = consumer.consume(num_messages=500, timeout=timeout)
    records: dict[str, list] = {}
    by_partition: dict[int, int] = {}
    errors = []
    for msg in messages:
        if msg.error():
            errors.append(str(msg.error()))
            continue
        records.setdefault(key_of(msg.partition()), []).append([msg.offset(), int(msg.value())])
        by_partition[msg.partition()] = msg.offset()
    log.write("ok", "poll", records, proc.id, error="; ".join(errors) or None)
    return by_partition


def _consume(spec: WorkerSpec, log: HistoryLog) -> None:
    proc = _Process(spec)
    consumer = _new_consumer(spec, log, proc)
    while time.monotonic() < spec.stop_at:
        try:
            _poll_once(consumer, log, proc)
        except Exception as err:  # noqa: BLE001 - any client failure: record, start over
            log.write("info", "poll", None, proc.id, error=f"{type(err).__name__}: {err}")
            proc.bump()
            log.write("info", "crash", None, proc.id, error=traceback.format_exc(limit=1))
            try:
                consumer.close()
            except Exception:  # noqa: BLE001
                pass
            consumer = _new_consumer(spec, log, proc)
    consumer.close()


def _final_read(spec: WorkerSpec, log: HistoryLog) -> None:
    """Reads every partition from the start up to its high watermark at the time of the read."""
    from confluent_kafka import TopicPartition

    proc = _Process(spec)
    consumer = _new_consumer(spec, log, proc)
    ends: dict[int, int] = {}
    for p in range(spec.partitions):
        while p not in ends and time.monotonic() < spec.stop_at:
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5)
                ends[p] = high
            except Exception as err:  # noqa: BLE001 - the cluster may still be settling
                log.write("info", "watermark", {"key": key_of(p)}, proc.id, error=str(err))
                time.sleep(1)
    log.write("info", "final-read-targets", {key_of(p): h for p, h in ends.items()}, proc.id)
    done = {p for p, h in ends.items() if h == 0}
    while len(done) < spec.partitions and time.monotonic() < spec.stop_at:
        for p, offset in _poll_once(consumer, log, proc).items():
            if offset + 1 >= ends.get(p, 0):
                done.add(p)
    complete = len(done) == spec.partitions
    log.write("info", "final-read-complete" if complete else "final-read-incomplete",
              sorted(key_of(p) for p in done), proc.id)
    consumer.close()
