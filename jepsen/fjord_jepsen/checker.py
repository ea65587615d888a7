"""Checks a queue-workload history for the anomalies of Jepsen's Kafka test.

The model: each key names a topic-partition, a log where every offset holds
at most one value; values are unique across the run. From every ok send
(its ack) and every ok poll (its records) the checker builds, per key, the
*version order*: offset -> values observed there. A correct log has exactly
one value per offset and one position per value, and every consumer reads a
key in increasing offset order without jumping over an offset that exists.

Definitions (jepsen/README.md has the long form):

- duplicate: one value observed at two positions (key, offset).
- retry-duplicate: the same, for a value sent by a producer without
  idempotence ("idempotent": false in the send) and all positions in the
  key it was sent to. A retried send whose first attempt was written after
  all is Kafka's at-least-once contract without idempotence, so it is
  reported but allowed (ALLOWED_BY_KAFKA).
- inconsistent-offsets: one (key, offset) observed with two values.
- lost-write: an acked send at offset o never read, while some poll read
  offset o or a later one of that key (readers reached or passed it; a
  reader at o itself found another value there).
- unseen: an acked send never read and not a lost-write.
- G1a: a poll read a value whose send definitely failed.
- nonmonotonic-send: a process's successive ok sends to one key got
  offsets that do not increase.
- poll-skip / nonmonotonic-poll: a process's successive reads of one key,
  with no positions reset between, jump over a known offset / do not move
  forward.
- unexpected: a poll read a value no send carried, or carried to another key.

Positions reset on assign, subscribe, rebalance and crash ops of the
process, and on an indeterminate (info) poll: that poll may have advanced
the consumer past records the history never saw. Offsets that no op
observed (transaction markers, compacted records) are not skips.

The check is two passes over the history: one to build the version order
and the per-value facts, one to replay each process's consumer positions
against it. Both are linear apart from a bisect per read.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .history import HistoryError, Op
from .txn_checker import TXN_ALLOWED_BY_KAFKA, TXN_ANOMALIES, check_txn, has_txn_ops

ANOMALIES = (
    "duplicate",
    "retry-duplicate",
    "inconsistent-offsets",
    "lost-write",
    "unseen",
    "G1a",
    "nonmonotonic-send",
    "poll-skip",
    "nonmonotonic-poll",
    "unexpected",
)

# Reported but never forbidden: what Kafka's contract permits.
ALLOWED_BY_KAFKA = ("retry-duplicate",) + TXN_ALLOWED_BY_KAFKA

# Every anomaly a check may report: the queue workload's, then the transactional workload's
# (txn_checker), checked only when the history has transactional ops.
ALL_ANOMALIES = ANOMALIES + TXN_ANOMALIES

# Ops after which a process's consumer may legitimately read from anywhere.
POSITION_RESET_FS = frozenset({"assign", "subscribe", "rebalance", "crash"})

# How many skipped offsets a poll-skip example lists (the count is exact).
_SKIPPED_LISTED = 10


@dataclass
class Result:
    """The verdict. `anomalies` maps every name in ANOMALIES to its examples
    (all of them, in history order); `counts` to how many there are.
    `valid` is false when any anomaly not in `allowed` occurred."""

    valid: bool
    anomalies: dict[str, list[dict]]
    counts: dict[str, int]
    stats: dict[str, Any]
    allowed: list[str] = field(default_factory=list)

    @property
    def forbidden(self) -> list[str]:
        """Names of the anomalies that make the history invalid."""
        return [n for n in ALL_ANOMALIES if self.counts.get(n) and n not in self.allowed]

    def to_dict(self, max_examples: Optional[int] = None) -> dict:
        return {
            "valid": self.valid,
            "forbidden": self.forbidden,
            "allowed": list(self.allowed),
            "counts": dict(self.counts),
            "anomalies": {
                name: (examples if max_examples is None else examples[:max_examples])
                for name, examples in self.anomalies.items()
            },
            "stats": self.stats,
        }


@dataclass
class _Ack:
    key: str
    offset: int
    op: Op


class _VersionOrder:
    """Per key, offset -> value -> indices of the ops that observed it; and
    the reverse, value -> (key, offset) -> op indices."""

    def __init__(self) -> None:
        self.by_offset: dict[str, dict[int, dict[Any, list[int]]]] = defaultdict(dict)
        self.positions: dict[Any, dict[tuple[str, int], list[int]]] = defaultdict(dict)
        self._sorted: dict[str, list[int]] = {}

    def observe(self, key: str, offset: int, value: Any, op_index: int) -> None:
        self.by_offset[key].setdefault(offset, {}).setdefault(value, []).append(op_index)
        self.positions[value].setdefault((key, offset), []).append(op_index)

    def known_offsets(self, key: str) -> list[int]:
        offsets = self._sorted.get(key)
        if offsets is None:
            offsets = sorted(self.by_offset.get(key, {}))
            self._sorted[key] = offsets
        return offsets

    def between(self, key: str, lo: int, hi: int) -> list[int]:
        """Known offsets strictly between lo and hi."""
        offsets = self.known_offsets(key)
        return offsets[bisect.bisect_right(offsets, lo) : bisect.bisect_left(offsets, hi)]

    def values_at(self, key: str, offset: int) -> list[Any]:
        return list(self.by_offset.get(key, {}).get(offset, {}))


class _Builder:
    """Pass one: op counts, send outcomes, reads and the version order."""

    def __init__(self) -> None:
        self.op_counts: dict[str, dict[str, int]] = defaultdict(
            lambda: {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        )
        self.sent_key: dict[Any, str] = {}  # value -> key of any send op naming it
        self.invoked: dict[Any, Op] = {}
        self.completed: dict[Any, Op] = {}
        self.acked: dict[Any, _Ack] = {}
        self.failed: dict[Any, Op] = {}
        self.indeterminate: dict[Any, Op] = {}
        # value -> [(key, offset, poll op)] for every time a poll returned it
        self.reads: dict[Any, list[tuple[str, int, Op]]] = defaultdict(list)
        self.max_read_offset: dict[str, int] = {}
        self.records_read = 0
        self.versions = _VersionOrder()
        self.nonmonotonic_send: list[dict] = []
        self._last_send: dict[tuple[Any, str], _Ack] = {}
        self.faults: list[Op] = []

    def add(self, op: Op) -> None:
        if op.is_nemesis:
            self.faults.append(op)
            return
        self.op_counts[op.f][op.type] += 1
        if op.f == "send":
            self._send(op)
        elif op.f == "poll" and op.type == "ok":
            self._poll(op)

    def _send(self, op: Op) -> None:
        key, value = op.value["key"], op.value["value"]
        if op.type == "invoke":
            if value in self.invoked:
                raise HistoryError(
                    f"value {value} sent twice (ops {self.invoked[value].index} and "
                    f"{op.index}); the workload must send unique values"
                )
            self.invoked[value] = op
        else:
            if value in self.completed:
                raise HistoryError(
                    f"send of value {value} completed twice (ops "
                    f"{self.completed[value].index} and {op.index})"
                )
            self.completed[value] = op
        self.sent_key.setdefault(value, key)
        if op.type == "ok":
            ack = _Ack(key, op.value["offset"], op)
            self.acked[value] = ack
            self.versions.observe(key, ack.offset, value, op.index)
            self._check_send_order(value, ack)
        elif op.type == "fail":
            self.failed[value] = op
        elif op.type == "info":
            self.indeterminate[value] = op

    def _check_send_order(self, value: Any, ack: _Ack) -> None:
        # A process is sequential, so its later send began after the earlier
        # one was acknowledged: a log that only appends gives it a higher
        # offset, whatever happened to the client in between.
        slot = (ack.op.process, ack.key)
        prev = self._last_send.get(slot)
        if prev is not None and ack.offset <= prev.offset:
            self.nonmonotonic_send.append(
                {
                    "process": ack.op.process,
                    "key": ack.key,
                    "prev_offset": prev.offset,
                    "prev_value": prev.op.value["value"],
                    "prev_op": prev.op.index,
                    "offset": ack.offset,
                    "value": value,
                    "op": ack.op.index,
                    "time": ack.op.time,
                }
            )
        self._last_send[slot] = ack

    def _poll(self, op: Op) -> None:
        for key, records in op.value.items():
            for offset, value in records:
                self.records_read += 1
                self.reads[value].append((key, offset, op))
                self.versions.observe(key, offset, value, op.index)
                if offset > self.max_read_offset.get(key, offset - 1):
                    self.max_read_offset[key] = offset


def _duplicates(b: _Builder) -> tuple[list[dict], list[dict]]:
    """(duplicates, retry-duplicates): values observed at more than one
    position; those of non-idempotent sends within their own key are
    retry-duplicates."""
    dups, retries = [], []
    for value, positions in b.versions.positions.items():
        if len(positions) > 1:
            example = {
                "value": value,
                "positions": [
                    {"key": k, "offset": o, "ops": ops} for (k, o), ops in positions.items()
                ],
            }
            invoke = b.invoked.get(value)
            retried = (
                invoke is not None
                and invoke.value.get("idempotent") is False
                and all(k == invoke.value["key"] for k, _ in positions)
            )
            (retries if retried else dups).append(example)
    return dups, retries


def _inconsistent_offsets(b: _Builder) -> list[dict]:
    out = []
    for key, offsets in b.versions.by_offset.items():
        for offset in sorted(offsets):
            values = offsets[offset]
            if len(values) > 1:
                out.append(
                    {
                        "key": key,
                        "offset": offset,
                        "values": [{"value": v, "ops": ops} for v, ops in values.items()],
                    }
                )
    return out


def _lost_and_unseen(b: _Builder) -> tuple[list[dict], list[dict]]:
    lost, unseen = [], []
    for value, ack in b.acked.items():
        if value in b.reads:
            continue
        example = {
            "key": ack.key,
            "value": value,
            "offset": ack.offset,
            "process": ack.op.process,
            "op": ack.op.index,
            "time": ack.op.time,
        }
        max_read = b.max_read_offset.get(ack.key)
        # At o itself a reader found some other value: lost as well (and an
        # inconsistent offset). Jepsen's bound is likewise inclusive.
        if max_read is not None and max_read >= ack.offset:
            example["max_read_offset"] = max_read
            # What readers found at the lost offset, if anything.
            example["read_at_offset"] = [
                v for v in b.versions.values_at(ack.key, ack.offset) if v != value
            ]
            lost.append(example)
        else:
            example["max_read_offset"] = max_read
            unseen.append(example)
    return lost, unseen


def _aborted_reads(b: _Builder) -> list[dict]:
    out = []
    for value, reads in b.reads.items():
        failed = b.failed.get(value)
        if failed is None:
            continue
        out.append(
            {
                "value": value,
                "key": failed.value["key"],
                "send_op": failed.index,
                "send_error": failed.error,
                "reads": [
                    {"key": k, "offset": o, "op": op.index, "process": op.process}
                    for k, o, op in reads
                ],
            }
        )
    return out


def _unexpected(b: _Builder) -> list[dict]:
    out = []
    for value, reads in b.reads.items():
        sent_key = b.sent_key.get(value)
        wrong = [(k, o, op) for k, o, op in reads if k != sent_key]
        if not wrong:
            continue
        out.append(
            {
                "value": value,
                # None: no send ever carried this value.
                "sent_key": sent_key,
                "reads": [
                    {"key": k, "offset": o, "op": op.index, "process": op.process}
                    for k, o, op in wrong
                ],
            }
        )
    return out


def _replay_positions(history: Iterable[Op], versions: _VersionOrder) -> tuple[list, list]:
    """Pass two: per process and key, the offset of the last record read;
    each read must move forward and not jump a known offset."""
    skips, nonmonotonic = [], []
    # process -> key -> (offset, op index of the read)
    positions: dict[Any, dict[str, tuple[int, int]]] = defaultdict(dict)
    for op in history:
        if op.is_nemesis:
            continue
        if op.f in POSITION_RESET_FS or (op.f == "poll" and op.type == "info"):
            positions.pop(op.process, None)
            continue
        if op.f != "poll" or op.type != "ok":
            continue
        pos = positions[op.process]
        for key, records in op.value.items():
            for i, (offset, value) in enumerate(records):
                prev = pos.get(key)
                pos[key] = (offset, op.index)
                if prev is None:
                    continue
                prev_offset, prev_op = prev
                base = {
                    "process": op.process,
                    "key": key,
                    "prev_offset": prev_offset,
                    "prev_op": prev_op,
                    "offset": offset,
                    "value": value,
                    "op": op.index,
                    "time": op.time,
                    "within_poll": prev_op == op.index,
                }
                if offset <= prev_offset:
                    nonmonotonic.append(base)
                    continue
                skipped = versions.between(key, prev_offset, offset)
                if skipped:
                    base["skipped_count"] = len(skipped)
                    base["skipped"] = [
                        {"offset": o, "values": versions.values_at(key, o)}
                        for o in skipped[:_SKIPPED_LISTED]
                    ]
                    skips.append(base)
    return skips, nonmonotonic


def _stats(history: list[Op], b: _Builder) -> dict:
    never_completed = [v for v in b.invoked if v not in b.completed]
    acked_offsets: dict[str, list[int]] = defaultdict(list)
    for ack in b.acked.values():
        acked_offsets[ack.key].append(ack.offset)
    keys = {}
    for key in sorted(set(b.versions.by_offset) | set(acked_offsets)):
        acked = acked_offsets.get(key, [])
        keys[key] = {
            "acknowledged": len(acked),
            "max_acked_offset": max(acked) if acked else None,
            "max_read_offset": b.max_read_offset.get(key),
            "known_offsets": len(b.versions.by_offset.get(key, {})),
        }
    return {
        "ops": {f: dict(types) for f, types in sorted(b.op_counts.items())},
        "sends": {
            "attempted": len(b.invoked),
            "acknowledged": len(b.acked),
            "failed": len(b.failed),
            "indeterminate": len(b.indeterminate),
            # indeterminate sends that some poll returned: they were written
            "indeterminate_read": sum(1 for v in b.indeterminate if v in b.reads),
            "never_completed": len(never_completed),
        },
        "reads": {
            "records_read": b.records_read,
            "values_read": len(b.reads),
            "acknowledged_read": sum(1 for v in b.acked if v in b.reads),
        },
        "keys": keys,
        "nemesis_ops": len(b.faults),
        "time": {
            "first": history[0].time if history else None,
            "last": history[-1].time if history else None,
        },
    }


def check(history: list[Op], allowed: Iterable[str] = ()) -> Result:
    """Checks a history (ops in real-time order): the queue anomalies, and the
    transactional ones (txn_checker) when it has `txn` or `txn-poll` ops,
    whose names then appear in `anomalies`/`counts`. Anomalies named in
    `allowed` are still reported but do not make the result invalid, e.g.
    `unseen` for a run that ended without final reads.

    Raises HistoryError if a value was sent twice, which the analysis
    cannot interpret."""
    allowed = sorted(set(allowed) | set(ALLOWED_BY_KAFKA))
    unknown = [a for a in allowed if a not in ALL_ANOMALIES]
    if unknown:
        raise ValueError(f"unknown anomaly names {unknown}; known: {list(ALL_ANOMALIES)}")

    b = _Builder()
    for op in history:
        b.add(op)
    lost, unseen = _lost_and_unseen(b)
    skips, nonmonotonic_polls = _replay_positions(history, b.versions)
    duplicates, retry_duplicates = _duplicates(b)
    anomalies = {
        "duplicate": duplicates,
        "retry-duplicate": retry_duplicates,
        "inconsistent-offsets": _inconsistent_offsets(b),
        "lost-write": lost,
        "unseen": unseen,
        "G1a": _aborted_reads(b),
        "nonmonotonic-send": b.nonmonotonic_send,
        "poll-skip": skips,
        "nonmonotonic-poll": nonmonotonic_polls,
        "unexpected": _unexpected(b),
    }
    txn_stats = None
    if has_txn_ops(history):
        txn_anomalies, txn_stats = check_txn(history)
        anomalies.update(txn_anomalies)
    counts = {name: len(examples) for name, examples in anomalies.items()}
    valid = not any(counts[n] for n in anomalies if n not in allowed)
    stats = _stats(history, b)
    if txn_stats is not None:
        stats["txn"] = txn_stats
    stats["faults"] = [
        {"index": op.index, "time": op.time, "f": op.f, "value": op.value} for op in b.faults
    ]
    return Result(valid=valid, anomalies=anomalies, counts=counts, stats=stats, allowed=allowed)
