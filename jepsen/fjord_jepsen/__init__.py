"""Fjord's Jepsen-style fault suite: the history format and its checker.

Modules:
- history: the `Op` record and JSON-lines load/dump (`load_history`,
  `dump_history`), validating each op's shape (`HistoryError`).
- checker: `check(history) -> Result`, the queue-workload anomalies of
  Jepsen's Kafka test (duplicate, lost-write, poll-skip, ...).
- report: `write_report(result, history, out_dir)` -> report.md, result.json.
- check: the CLI, `python3 -m fjord_jepsen.check HISTORY.jsonl --out DIR`.

Standard library only, so the checker runs anywhere the history lands.
"""

from .checker import ANOMALIES, Result, check
from .history import HistoryError, Op, dump_history, load_history
from .report import write_report

__all__ = [
    "ANOMALIES",
    "HistoryError",
    "Op",
    "Result",
    "check",
    "dump_history",
    "load_history",
    "write_report",
]
