"""Checks the transactional workload's ops (`txn`, `txn-poll`) after Jepsen's Kafka checker.

The model. Keys name topic-partitions, logs where each offset holds at most one value. A `txn`
op is one transaction: its sends (key, value, offset once the delivery report gave one) and,
for consume-transform-produce (CTP) transactions, the records it read and the offsets it sent
to the transaction. Its type says whether it committed: `ok` yes, `fail` certainly not (its
commit was never requested, or it was aborted), `info` unknown, as is a transaction that never
completed. A `txn-poll` op is one poll with its isolation level. (key, value) pairs are unique
across the transactional workload, so every record read has at most one writer.

A transaction is *possibly committed* when ok, info or incomplete, and *committed* when ok or
when a read_committed poll read one of its values (Jepsen's must-have-committed). Offsets of
*committed data* are those of committed transactions' values (from sends or reads) and those
read under read_committed; other known offsets may hold aborted records or control records,
which read_committed readers skip legitimately.

Anomalies (TXN_ANOMALIES; jepsen/README.md has the long form):

- aborted-read (G1a): a read_committed poll read a value of a `fail` transaction.
- intermediate-read (G1b): a read_committed poll whose last record of a key is a value of
  transaction T that is not T's last write to that key, although T's next write there follows
  at once (every offset between is T's): no other transaction could have held the last stable
  offset between them. Polls that returned their maximum number of records are not judged
  (the client cut them, not the broker).
- precommitted-read: a read_committed poll returned a value before its transaction's commit
  was requested (wall-clock times: all processes share one host's monotonic clock).
- txn-lost-write: a value of an ok transaction that the final read_committed reader did not
  read, though it read that key completely, up to the high watermark taken when it started.
- txn-unseen: a value of an ok transaction read by nobody, in a key the final reader did not
  complete (or without a final reader).
- txn-duplicate: one value at two offsets of a key, in committed data.
- reprocessed: one input record read by two ok CTP transactions (exactly-once processing
  broken: both wrote their output and committed their offsets).
- unprocessed: an input record of an ok transaction below the CTP group's final committed
  offset that no possibly committed CTP transaction read (the group moved past it).
- txn-inconsistent-offsets: one offset of a key observed holding two values.
- txn-unexpected: a poll read a value no transaction sent to that key.
- txn-nonmonotonic-send: sends of one transactional.id to a key, in order, got offsets that do
  not increase (within a transaction or across its successive transactions).
- int-send-skip: a transaction's successive sends to a key were not adjacent (another
  transaction's record between). Normal: transactions' writes interleave. Allowed.
- txn-poll-skip / txn-nonmonotonic-poll: a process's successive reads of a key (within one
  poll or across polls, no position reset between) jump over an offset of committed data
  (read_uncommitted: any known offset) / do not move forward. Resets: assign, subscribe,
  rebalance, seek, crash, and an info poll.
- G0 / G1c: cycles in the dependency graph of committed transactions, with ww edges between
  successive writers of a key in offset order and wr edges from a transaction's writes to the
  CTP transaction that read them. G0 (ww edges only) is allowed: in Kafka's model writes of
  concurrent transactions interleave per partition, so write cycles are normal (Jepsen allows
  them too). G1c (a cycle with a wr edge) is forbidden.

`info` transactions are never lost and a read of one is never an aborted read.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Optional

from .history import HistoryError, Op

TXN_ANOMALIES = (
    "aborted-read",
    "intermediate-read",
    "precommitted-read",
    "txn-lost-write",
    "txn-unseen",
    "txn-duplicate",
    "reprocessed",
    "unprocessed",
    "txn-inconsistent-offsets",
    "txn-unexpected",
    "txn-nonmonotonic-send",
    "int-send-skip",
    "txn-poll-skip",
    "txn-nonmonotonic-poll",
    "G0",
    "G1c",
)

# Reported, never forbidden: what Kafka's transactional model permits.
TXN_ALLOWED_BY_KAFKA = ("int-send-skip", "G0")

TXN_FS = frozenset({"txn", "txn-poll"})
POSITION_RESET_FS = frozenset({"assign", "subscribe", "rebalance", "crash", "seek"})

_LISTED = 10          # skipped offsets / cycle members listed in one example
_ADJACENT_SCAN = 1000  # widest gap intermediate-read inspects


@dataclass
class Txn:
    """One transaction: its invocation and (if any) completion."""

    invoke: Op
    complete: Optional[Op] = None
    sends: list[dict] = field(default_factory=list)
    reads: dict[str, list] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return self.invoke.index

    @property
    def type(self) -> Optional[str]:
        return self.complete.type if self.complete is not None else None

    @property
    def txn_id(self) -> str:
        return self.invoke.value["txn_id"]

    @property
    def possibly_committed(self) -> bool:
        return self.type != "fail"

    @property
    def commit_requested(self) -> Optional[float]:
        if self.complete is None:
            return None
        return self.complete.value.get("commit_requested")

    @property
    def is_ctp(self) -> bool:
        return bool(self.reads) or "reads" in self.invoke.value

    def brief(self) -> dict:
        return {"op": self.index, "process": self.invoke.process, "txn_id": self.txn_id,
                "type": self.type or "incomplete",
                "completed_op": self.complete.index if self.complete else None}


@dataclass
class _Poll:
    op: Op
    isolation: str
    records: dict[str, list]
    max: Optional[int]

    @property
    def committed(self) -> bool:
        return self.isolation == "read_committed"


class _Model:
    """Pass one: transactions, polls, writers and the version order."""

    def __init__(self, history: list[Op]):
        self.txns: list[Txn] = []
        self.polls: list[_Poll] = []
        self.writer: dict[tuple[str, Any], Txn] = {}
        self.send_offset: dict[tuple[str, Any], int] = {}
        self.first_offset: dict[tuple[str, Any], int] = {}  # lowest offset observed
        # key -> offset -> value -> op indices
        self.by_offset: dict[str, dict[int, dict[Any, list[int]]]] = defaultdict(dict)
        self.final_process = None
        self.final_targets: dict[str, int] = {}
        self.final_complete: set[str] = set()
        self.group_offsets: Optional[dict[str, int]] = None
        pending: dict[Any, Txn] = {}
        for op in history:
            if op.is_nemesis:
                continue
            if op.f == "txn":
                self._txn(op, pending)
            elif op.f == "txn-poll" and op.type == "ok":
                v = op.value
                self.polls.append(_Poll(op, v.get("isolation", "read_uncommitted"),
                                        v.get("records") or {}, v.get("max")))
            elif op.f == "txn-final-read-targets":
                self.final_process = op.process
                self.final_targets = dict(op.value or {})
            elif op.f in ("txn-final-read-complete", "txn-final-read-incomplete"):
                self.final_complete = set(op.value or [])
            elif op.f == "txn-group-offsets" and isinstance(op.value, dict):
                if op.value.get("offsets") is not None:
                    self.group_offsets = dict(op.value["offsets"])
        self.txns.extend(pending.values())
        self.txns.sort(key=lambda t: t.index)
        for txn in self.txns:
            for send in txn.sends:
                self._add_send(txn, send)
        for poll in self.polls:
            for key, records in poll.records.items():
                for offset, value in records:
                    self._observe(key, offset, value, poll.op.index)
        # A value read under read_committed proves its transaction committed.
        self.committed_proven: set[int] = set()
        for poll in self.polls:
            if not poll.committed:
                continue
            for key, records in poll.records.items():
                for _offset, value in records:
                    w = self.writer.get((key, value))
                    if w is not None and w.possibly_committed:
                        self.committed_proven.add(w.index)
        self._committed_offsets: dict[str, list[int]] = {}

    def _txn(self, op: Op, pending: dict[Any, Txn]) -> None:
        if op.type == "invoke":
            if op.process in pending:
                raise HistoryError(f"process {op.process} invoked txn op {op.index} while op "
                                   f"{pending[op.process].index} was still open")
            pending[op.process] = Txn(op, sends=list(op.value["sends"]),
                                      reads=dict(op.value.get("reads") or {}))
            return
        txn = pending.pop(op.process, None)
        if txn is None:
            raise HistoryError(f"txn completion op {op.index} without an invocation")
        txn.complete = op
        if op.value and op.value.get("sends") is not None:
            txn.sends = list(op.value["sends"])
        self.txns.append(txn)

    def _add_send(self, txn: Txn, send: dict) -> None:
        kv = (send["key"], send["value"])
        other = self.writer.get(kv)
        if other is not None and other is not txn:
            raise HistoryError(f"value {kv[1]} sent to {kv[0]} by two transactions (ops "
                               f"{other.index} and {txn.index}); values must be unique")
        self.writer[kv] = txn
        if send.get("offset") is not None:
            self.send_offset[kv] = send["offset"]
            self._observe(kv[0], send["offset"], kv[1], txn.index)

    def _observe(self, key: str, offset: int, value: Any, op_index: int) -> None:
        self.by_offset[key].setdefault(offset, {}).setdefault(value, []).append(op_index)
        kv = (key, value)
        if offset < self.first_offset.get(kv, offset + 1):
            self.first_offset[kv] = offset

    def committed(self, txn: Optional[Txn]) -> bool:
        return txn is not None and (txn.type == "ok" or txn.index in self.committed_proven)

    def offset_of(self, key: str, value: Any) -> Optional[int]:
        """The value's offset: from its send, else the lowest offset it was read at."""
        o = self.send_offset.get((key, value))
        return o if o is not None else self.first_offset.get((key, value))

    def committed_offsets(self, key: str) -> list[int]:
        """Sorted offsets known to hold committed data."""
        out = self._committed_offsets.get(key)
        if out is None:
            offsets = set()
            for offset, values in self.by_offset.get(key, {}).items():
                if any(self.committed(self.writer.get((key, v))) for v in values):
                    offsets.add(offset)
            for poll in self.polls:
                if poll.committed:
                    offsets.update(o for o, _ in poll.records.get(key, []))
            out = self._committed_offsets[key] = sorted(offsets)
        return out

    def known_offsets(self, key: str) -> list[int]:
        return sorted(self.by_offset.get(key, {}))

    def writers_at(self, key: str, offset: int) -> set[int]:
        return {w.index if w else -1 for w in
                (self.writer.get((key, v)) for v in self.by_offset.get(key, {}).get(offset, {}))}


def _between(offsets: list[int], lo: int, hi: int) -> list[int]:
    return offsets[bisect.bisect_right(offsets, lo): bisect.bisect_left(offsets, hi)]


def _read_example(poll: _Poll, key: str, offset: int, value: Any, writer: Optional[Txn]) -> dict:
    return {"key": key, "offset": offset, "value": value, "op": poll.op.index,
            "process": poll.op.process, "isolation": poll.isolation, "time": poll.op.time,
            "writer": writer.brief() if writer else None}


def _reads(m: _Model) -> dict[str, list]:
    aborted, precommitted, unexpected = [], [], []
    for poll in m.polls:
        for key, records in poll.records.items():
            for offset, value in records:
                w = m.writer.get((key, value))
                if w is None:
                    unexpected.append(_read_example(poll, key, offset, value, None))
                    continue
                if not poll.committed:
                    continue
                if w.type == "fail":
                    ex = _read_example(poll, key, offset, value, w)
                    ex["writer_error"] = w.complete.error
                    aborted.append(ex)
                elif w.commit_requested is not None and poll.op.time < w.commit_requested:
                    ex = _read_example(poll, key, offset, value, w)
                    ex["commit_requested"] = w.commit_requested
                    precommitted.append(ex)
    return {"aborted-read": aborted, "precommitted-read": precommitted,
            "txn-unexpected": unexpected}


def _intermediate_reads(m: _Model) -> list[dict]:
    out = []
    for poll in m.polls:
        if not poll.committed:
            continue
        total = sum(len(r) for r in poll.records.values())
        if poll.max is not None and total >= poll.max:
            continue
        for key, records in poll.records.items():
            if not records:
                continue
            offset, value = records[-1]
            w = m.writer.get((key, value))
            if w is None or w.type == "fail":
                continue
            mine = [s["value"] for s in w.sends if s["key"] == key]
            if value not in mine or mine.index(value) == len(mine) - 1:
                continue
            nxt = mine[mine.index(value) + 1]
            nxt_offset = m.offset_of(key, nxt)
            if nxt_offset is None or nxt_offset <= offset or nxt_offset - offset > _ADJACENT_SCAN:
                continue
            if all(m.writers_at(key, o) == {w.index} for o in range(offset + 1, nxt_offset)):
                ex = _read_example(poll, key, offset, value, w)
                ex["next_write"] = {"value": nxt, "offset": nxt_offset}
                out.append(ex)
    return out


def _lost_and_unseen(m: _Model) -> tuple[list, list]:
    read_by_final: set[tuple[str, Any]] = set()
    read_by_any: set[tuple[str, Any]] = set()
    for poll in m.polls:
        for key, records in poll.records.items():
            for _o, value in records:
                read_by_any.add((key, value))
                if poll.op.process == m.final_process and poll.committed:
                    read_by_final.add((key, value))
    lost, unseen = [], []
    for txn in m.txns:
        if txn.type != "ok":
            continue
        for send in txn.sends:
            kv = (send["key"], send["value"])
            if kv in read_by_final:
                continue
            ex = {"key": kv[0], "value": kv[1], "offset": m.offset_of(*kv),
                  "writer": txn.brief(), "time": txn.complete.time,
                  "final_target": m.final_targets.get(kv[0]),
                  "read_by_others": kv in read_by_any}
            if kv[0] in m.final_complete:
                lost.append(ex)
            elif kv not in read_by_any:
                unseen.append(ex)
    return lost, unseen


def _duplicates_and_inconsistent(m: _Model) -> tuple[list, list]:
    positions: dict[tuple[str, Any], set[int]] = defaultdict(set)
    for txn in m.txns:
        if m.committed(txn):
            for send in txn.sends:
                if send.get("offset") is not None:
                    positions[(send["key"], send["value"])].add(send["offset"])
    for poll in m.polls:
        if poll.committed:
            for key, records in poll.records.items():
                for offset, value in records:
                    positions[(key, value)].add(offset)
    dups = [{"key": k, "value": v, "offsets": sorted(offs),
             "writer": (m.writer[(k, v)].brief() if (k, v) in m.writer else None)}
            for (k, v), offs in positions.items() if len(offs) > 1]
    inconsistent = []
    for key, offsets in m.by_offset.items():
        for offset in sorted(offsets):
            if len(offsets[offset]) > 1:
                inconsistent.append({"key": key, "offset": offset, "values": [
                    {"value": v, "ops": ops} for v, ops in offsets[offset].items()]})
    return dups, inconsistent


def _processing(m: _Model) -> tuple[list, list]:
    readers: dict[tuple[str, Any], list[Txn]] = defaultdict(list)
    for txn in m.txns:
        if not txn.is_ctp:
            continue
        for key, records in txn.reads.items():
            for _o, value in records:
                readers[(key, value)].append(txn)
    reprocessed = []
    for (key, value), txns in readers.items():
        ok = [t for t in txns if t.type == "ok"]
        if len(ok) > 1:
            reprocessed.append({"key": key, "value": value, "readers": [t.brief() for t in ok],
                                "time": ok[1].invoke.time})
    unprocessed = []
    for key, committed_offset in (m.group_offsets or {}).items():
        for txn in m.txns:
            if txn.type != "ok" or txn.is_ctp:
                continue
            for send in txn.sends:
                if send["key"] != key:
                    continue
                offset = m.offset_of(key, send["value"])
                if offset is None or offset >= committed_offset:
                    continue
                if not any(t.possibly_committed for t in readers.get((key, send["value"]), [])):
                    unprocessed.append({"key": key, "value": send["value"], "offset": offset,
                                        "group_offset": committed_offset,
                                        "writer": txn.brief()})
    return reprocessed, unprocessed


def _sends(m: _Model) -> tuple[list, list]:
    nonmonotonic, skips = [], []
    last: dict[tuple[str, str], tuple[int, Txn, Any]] = {}
    for txn in m.txns:
        prev_in_txn: dict[str, tuple[int, Any]] = {}
        for send in txn.sends:
            offset = send.get("offset")
            if offset is None:
                continue
            key, value = send["key"], send["value"]
            slot = (txn.txn_id, key)
            before = last.get(slot)
            if before is not None and offset <= before[0]:
                nonmonotonic.append({"txn_id": txn.txn_id, "key": key, "prev_offset": before[0],
                                     "prev_value": before[2], "prev_txn": before[1].index,
                                     "offset": offset, "value": value, "txn": txn.index,
                                     "time": txn.invoke.time})
            last[slot] = (offset, txn, value)
            p = prev_in_txn.get(key)
            if p is not None and offset > p[0]:
                between = [o for o in _between(m.known_offsets(key), p[0], offset)
                           if m.writers_at(key, o) != {txn.index}]
                if between:
                    skips.append({"txn_id": txn.txn_id, "txn": txn.index, "key": key,
                                  "values": [p[1], value], "offsets": [p[0], offset],
                                  "skipped": between[:_LISTED]})
            prev_in_txn[key] = (offset, value)
    return nonmonotonic, skips


def _replay_positions(history: list[Op], m: _Model) -> tuple[list, list]:
    skips, nonmonotonic = [], []
    positions: dict[Any, dict[str, tuple[int, int]]] = defaultdict(dict)
    for op in history:
        if op.is_nemesis:
            continue
        if op.f in POSITION_RESET_FS or (op.f == "txn-poll" and op.type == "info"):
            positions.pop(op.process, None)
            continue
        if op.f != "txn-poll" or op.type != "ok":
            continue
        committed = op.value.get("isolation") == "read_committed"
        pos = positions[op.process]
        for key, records in (op.value.get("records") or {}).items():
            for offset, value in records:
                prev = pos.get(key)
                pos[key] = (offset, op.index)
                if prev is None:
                    continue
                base = {"process": op.process, "key": key, "prev_offset": prev[0],
                        "prev_op": prev[1], "offset": offset, "value": value, "op": op.index,
                        "time": op.time, "within_poll": prev[1] == op.index}
                if offset <= prev[0]:
                    nonmonotonic.append(base)
                    continue
                offsets = m.committed_offsets(key) if committed else m.known_offsets(key)
                skipped = _between(offsets, prev[0], offset)
                if skipped:
                    base["skipped_count"] = len(skipped)
                    base["skipped"] = skipped[:_LISTED]
                    skips.append(base)
    return skips, nonmonotonic


def _tarjan(nodes: list[int], edges: dict[int, dict[int, str]]) -> list[list[int]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, {})))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges.get(w, {}))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    out.append(sorted(scc))
    return out


def _path(edges: dict[int, dict[int, str]], members: set[int], src: int, dst: int) -> list[int]:
    """Shortest path src -> dst inside `members` (BFS)."""
    prev = {src: None}
    queue = deque([src])
    while queue:
        v = queue.popleft()
        if v == dst:
            break
        for w in edges.get(v, {}):
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    path, v = [], dst
    while v is not None:
        path.append(v)
        v = prev.get(v)
    return path[::-1]


def _cycles(m: _Model) -> tuple[list, list, dict]:
    nodes = [t for t in m.txns if m.committed(t)]
    by_index = {t.index: t for t in nodes}
    edges: dict[int, dict[int, str]] = defaultdict(dict)

    def add(a: int, b: int, kind: str) -> None:
        if a != b and edges[a].get(b) != "wr":
            edges[a][b] = kind

    writes: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for t in nodes:
        for send in t.sends:
            offset = m.offset_of(send["key"], send["value"])
            if offset is not None:
                writes[send["key"]].append((offset, t.index))
    for key, ws in writes.items():
        ws.sort()
        for (_o1, a), (_o2, b) in zip(ws, ws[1:]):
            add(a, b, "ww")
    for t in nodes:
        for key, records in t.reads.items():
            for _o, value in records:
                w = m.writer.get((key, value))
                if w is not None and w.index in by_index:
                    add(w.index, t.index, "wr")
    g0, g1c = [], []
    for scc in _tarjan([t.index for t in nodes], edges):
        members = set(scc)
        inner = [(a, b, kind) for a in scc for b, kind in edges[a].items() if b in members]
        wr = [(a, b) for a, b, kind in inner if kind == "wr"]
        a, b = wr[0] if wr else inner[0][:2]
        cycle = [a] + _path(edges, members, b, a)
        steps = [{"from": x, "to": y, "edge": edges[x][y]} for x, y in zip(cycle, cycle[1:])]
        example = {"size": len(scc), "cycle": steps[:_LISTED],
                   "txns": [by_index[x].brief() for x in cycle[:-1][:_LISTED]],
                   "time": max(by_index[x].invoke.time for x in cycle)}
        (g1c if wr else g0).append(example)
    stats = {"nodes": len(nodes), "ww_edges": sum(1 for e in edges.values()
                                                   for k in e.values() if k == "ww"),
             "wr_edges": sum(1 for e in edges.values() for k in e.values() if k == "wr")}
    return g0, g1c, stats


def _stats(m: _Model) -> dict:
    txns: dict[str, dict[str, int]] = {}
    for t in m.txns:
        role = "ctp" if t.is_ctp else "producer"
        row = txns.setdefault(role, {"ok": 0, "fail": 0, "info": 0, "incomplete": 0})
        row[t.type or "incomplete"] += 1
    polls = {}
    for p in m.polls:
        row = polls.setdefault(p.isolation, {"polls": 0, "records": 0})
        row["polls"] += 1
        row["records"] += sum(len(r) for r in p.records.values())
    sends_ok = sum(len(t.sends) for t in m.txns if t.type == "ok")
    return {"txns": txns, "polls": polls, "committed_sends": sends_ok,
            "info_proven_committed": sum(1 for t in m.txns if t.type != "ok"
                                         and t.index in m.committed_proven),
            "final_read": {"targets": m.final_targets, "complete": sorted(m.final_complete)},
            "group_offsets": m.group_offsets}


def has_txn_ops(history: list[Op]) -> bool:
    return any(op.f in TXN_FS for op in history)


def check_txn(history: list[Op]) -> tuple[dict[str, list[dict]], dict]:
    """The transactional anomalies of a history: (name -> examples for every name in
    TXN_ANOMALIES, stats). Raises HistoryError if the ops cannot be interpreted."""
    m = _Model(history)
    anomalies: dict[str, list[dict]] = {name: [] for name in TXN_ANOMALIES}
    anomalies.update(_reads(m))
    anomalies["intermediate-read"] = _intermediate_reads(m)
    anomalies["txn-lost-write"], anomalies["txn-unseen"] = _lost_and_unseen(m)
    anomalies["txn-duplicate"], anomalies["txn-inconsistent-offsets"] = \
        _duplicates_and_inconsistent(m)
    anomalies["reprocessed"], anomalies["unprocessed"] = _processing(m)
    anomalies["txn-nonmonotonic-send"], anomalies["int-send-skip"] = _sends(m)
    anomalies["txn-poll-skip"], anomalies["txn-nonmonotonic-poll"] = _replay_positions(history, m)
    anomalies["G0"], anomalies["G1c"], graph = _cycles(m)
    stats = _stats(m)
    stats["graph"] = graph
    return anomalies, stats
