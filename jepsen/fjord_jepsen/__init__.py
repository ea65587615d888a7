"""Fjord's Jepsen-style fault suite: the history format and its checker.

Modules:
- history: the `Op` record and JSON-lines load/dump (`load_history`,
  `dump_history`), validating each op's shape (`HistoryError`).
- checker: `check(history) -> Result`, the queue-workload anomalies of
  Jepsen's Kafka test (duplicate, lost-write, poll-skip, ...), and the
  transactional ones when the history has `txn`/`txn-poll` ops.
- txn_checker: the transactional workload's anomalies (aborted-read,
  intermediate-read, precommitted-read, txn-lost-write, reprocessed, G0,
  G1c, ...), called by `check`.
- report: `write_report(result, history, out_dir)` -> report.md, result.json.
- workload, txn_workload, nemesis, cluster, runner: the run itself (they
  need confluent-kafka and Docker; the checker does not).
- check: the CLI, `python3 -m fjord_jepsen.check HISTORY.jsonl --out DIR`.

Standard library only, so the checker runs anywhere the history lands.
"""

from .checker import ALL_ANOMALIES, ANOMALIES, Result, check
from .history import HistoryError, Op, dump_history, load_history
from .report import write_report

__all__ = [
    "ALL_ANOMALIES",
    "ANOMALIES",
    "HistoryError",
    "Op",
    "Result",
    "check",
    "dump_history",
    "load_history",
    "write_report",
]
