"""A fault-suite history: one `Op` per line of a JSON-lines file.

The runner appends ops in real-time order (`time`, seconds since the run
started); the checker relies on file order being that order. Loading
validates the shape of every op the checker interprets (`send`, `poll`,
positions resets) so that the checker itself never meets a malformed value:
a bad line is a `HistoryError` naming the line, never a crash halfway
through a check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

OP_TYPES = frozenset({"invoke", "ok", "fail", "info"})
NEMESIS = "nemesis"

Process = Union[int, str]


class HistoryError(ValueError):
    """The history cannot be checked: unreadable file, bad JSON or an op
    whose shape does not match the format (see jepsen/README.md)."""

    def __init__(self, message: str, line: Optional[int] = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class Op:
    """One event of the history: an invocation or a completion of a client
    operation, or a nemesis action (process "nemesis", type "info")."""

    index: int
    time: float
    process: Process
    type: str
    f: str
    value: Any = None
    error: Optional[str] = None

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def to_dict(self) -> dict:
        d = {
            "index": self.index,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
        }
        if self.error is not None:
            d["error"] = self.error
        return d


def _is_int(x: Any) -> bool:
    # JSON true/false decode to bool, which is an int subclass in Python.
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and not isinstance(x, bool)


def _check_send_value(op: Op) -> None:
    v = op.value
    if op.type == "invoke" and v is None:
        raise ValueError("send invoke needs a value {key, value}")
    if not isinstance(v, dict):
        raise ValueError(f"send value must be an object, got {type(v).__name__}")
    if not isinstance(v.get("key"), str):
        raise ValueError("send value needs a string 'key'")
    if not _is_int(v.get("value")):
        raise ValueError("send value needs an integer 'value'")
    if op.type == "ok" and not _is_int(v.get("offset")):
        raise ValueError("ok send needs an integer 'offset'")
    if not isinstance(v.get("idempotent", True), bool):
        raise ValueError("send 'idempotent' must be true or false")


def _check_poll_value(op: Op) -> None:
    if op.type != "ok":
        return  # invoke/fail/info polls carry no records
    v = op.value
    if not isinstance(v, dict):
        raise ValueError("ok poll value must be an object {key: [[offset, value], ...]}")
    for key, records in v.items():
        if not isinstance(records, list):
            raise ValueError(f"poll records of key {key!r} must be a list")
        for rec in records:
            if (
                not isinstance(rec, list)
                or len(rec) != 2
                or not _is_int(rec[0])
                # Read values are ints when the workload decoded them; a
                # string is kept so a garbled record is reported as an
                # unexpected value rather than refused.
                or not (_is_int(rec[1]) or isinstance(rec[1], str))
            ):
                raise ValueError(f"poll record {rec!r} of key {key!r} must be [offset, value]")


def _check_key_list(op: Op) -> None:
    if op.type == "invoke" and op.value is None:
        return
    if op.value is not None and not (
        isinstance(op.value, list) and all(isinstance(k, str) for k in op.value)
    ):
        raise ValueError(f"{op.f} value must be a list of strings")


def _check_rebalance_value(op: Op) -> None:
    v = op.value
    if v is None:
        return
    if not isinstance(v, dict):
        raise ValueError("rebalance value must be an object {revoked, assigned}")
    for field in ("revoked", "assigned"):
        ks = v.get(field, [])
        if not (isinstance(ks, list) and all(isinstance(k, str) for k in ks)):
            raise ValueError(f"rebalance '{field}' must be a list of strings")


def _check_records(records: Any, what: str) -> None:
    if not isinstance(records, dict):
        raise ValueError(f"{what} must be an object {{key: [[offset, value], ...]}}")
    for key, recs in records.items():
        if not isinstance(recs, list):
            raise ValueError(f"{what} of key {key!r} must be a list")
        for rec in recs:
            if (not isinstance(rec, list) or len(rec) != 2 or not _is_int(rec[0])
                    or not (_is_int(rec[1]) or isinstance(rec[1], str))):
                raise ValueError(f"record {rec!r} of key {key!r} must be [offset, value]")


def _check_txn_value(op: Op) -> None:
    """`txn`: {txn_id, sends: [{key, value, offset?, source?}], reads?, offsets?,
    commit_requested?} (the transactional workload)."""
    v = op.value
    if not isinstance(v, dict) or not isinstance(v.get("txn_id"), str):
        raise ValueError("txn value must be an object with a string 'txn_id'")
    sends = v.get("sends")
    if not isinstance(sends, list):
        raise ValueError("txn value needs a list 'sends'")
    for send in sends:
        if (not isinstance(send, dict) or not isinstance(send.get("key"), str)
                or not _is_int(send.get("value"))):
            raise ValueError(f"txn send {send!r} needs a string 'key' and an integer 'value'")
        if send.get("offset") is not None and not _is_int(send["offset"]):
            raise ValueError(f"txn send {send!r}: 'offset' must be an integer")
    if v.get("reads") is not None:
        _check_records(v["reads"], "txn reads")
    requested = v.get("commit_requested")
    if requested is not None and not _is_number(requested):
        raise ValueError("txn 'commit_requested' must be a time in seconds")


def _check_txn_poll_value(op: Op) -> None:
    """`txn-poll`: {isolation, records (ok only), max?}."""
    v = op.value
    if op.type == "invoke" and v is None:
        return
    if not isinstance(v, dict):
        raise ValueError("txn-poll value must be an object {isolation, records}")
    if v.get("isolation") not in ("read_committed", "read_uncommitted"):
        raise ValueError("txn-poll 'isolation' must be read_committed or read_uncommitted")
    if op.type == "ok":
        _check_records(v.get("records"), "txn-poll records")
    if v.get("max") is not None and not _is_int(v["max"]):
        raise ValueError("txn-poll 'max' must be an integer")


_VALUE_CHECKS = {
    "send": _check_send_value,
    "poll": _check_poll_value,
    "assign": _check_key_list,
    "subscribe": _check_key_list,
    "rebalance": _check_rebalance_value,
    "txn": _check_txn_value,
    "txn-poll": _check_txn_poll_value,
}


def op_from_dict(d: Any, line: Optional[int] = None) -> Op:
    """Builds a validated `Op` from one decoded JSON object."""
    if not isinstance(d, dict):
        raise HistoryError("an op must be a JSON object", line)
    for field in ("index", "time", "process", "type", "f"):
        if field not in d:
            raise HistoryError(f"missing field '{field}'", line)
    if not _is_int(d["index"]):
        raise HistoryError("'index' must be an integer", line)
    if not _is_number(d["time"]):
        raise HistoryError("'time' must be a number", line)
    process = d["process"]
    if not (_is_int(process) or isinstance(process, str)):
        raise HistoryError("'process' must be an integer or \"nemesis\"", line)
    if d["type"] not in OP_TYPES:
        raise HistoryError(f"'type' must be one of {sorted(OP_TYPES)}, got {d['type']!r}", line)
    if not isinstance(d["f"], str) or not d["f"]:
        raise HistoryError("'f' must be a non-empty string", line)
    error = d.get("error")
    if error is not None and not isinstance(error, str):
        error = json.dumps(error)  # keep structured errors readable, not refused
    op = Op(
        index=d["index"],
        time=float(d["time"]),
        process=process,
        type=d["type"],
        f=d["f"],
        value=d.get("value"),
        error=error,
    )
    if not op.is_nemesis:
        check = _VALUE_CHECKS.get(op.f)
        if check is not None:
            try:
                check(op)
            except ValueError as e:
                raise HistoryError(str(e), line) from None
    return op


def parse_history(lines: Iterable[str]) -> list[Op]:
    """Parses JSON lines (blank lines skipped) into ops, in file order."""
    ops = []
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise HistoryError(f"invalid JSON: {e.msg}", lineno) from None
        ops.append(op_from_dict(d, lineno))
    return ops


def load_history(path: str) -> list[Op]:
    """Reads a history file; raises `HistoryError` if it cannot be read or
    any line is malformed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_history(fh)
    except OSError as e:
        raise HistoryError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise HistoryError(f"{path} is not UTF-8: {e.reason}") from None


def dumps_op(op: Op) -> str:
    return json.dumps(op.to_dict(), separators=(",", ":"))


def dump_history(history: Iterable[Op], path: str) -> None:
    """Writes ops as JSON lines, the format `load_history` reads."""
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(dumps_op(op))
            fh.write("\n")
