"""Writes a check result for people (report.md) and for tools (result.json).

report.md: the verdict, a count per anomaly, up to ten examples of each
(with the last nemesis fault before it, to relate anomalies to faults), op
and per-key statistics, and the timeline of nemesis faults.
"""

from __future__ import annotations

import bisect
import json
import os
from typing import Any, Optional

from .checker import ALL_ANOMALIES, ANOMALIES, Result
from .txn_checker import TXN_ANOMALIES
from .history import Op

# One line per anomaly for the report; jepsen/README.md has the long form.
DESCRIPTIONS = {
    "duplicate": "one value observed at two different positions (key, offset)",
    "retry-duplicate": "a non-idempotent send written twice in its key by a retry "
    "(Kafka's at-least-once contract: allowed)",
    "inconsistent-offsets": "one offset of a key observed holding two different values",
    "lost-write": "an acknowledged send never read, though readers reached or passed its offset",
    "unseen": "an acknowledged send never read, and no reader read past its offset",
    "G1a": "a poll read a value whose send definitely failed (aborted read)",
    "nonmonotonic-send": "a process's successive sends to one key got non-increasing offsets",
    "poll-skip": "a process's successive reads of a key jumped over a known offset",
    "nonmonotonic-poll": "a process's successive reads of a key did not move forward",
    "unexpected": "a poll read a value that no send carried to that key",
    # The transactional workload (txn_checker).
    "aborted-read": "G1a: a read_committed poll read a value of an aborted transaction",
    "intermediate-read": "G1b: a read_committed poll ended inside a committed transaction's "
    "adjacent writes to a key (read a non-final state of it)",
    "precommitted-read": "a read_committed poll returned a value before its transaction's "
    "commit was requested",
    "txn-lost-write": "a committed transaction's value not read by the final read_committed "
    "reader, which read its key completely",
    "txn-unseen": "a committed transaction's value read by nobody, in a key the final reader "
    "did not complete",
    "txn-duplicate": "one value at two offsets of a key in committed data",
    "reprocessed": "one input record read by two committed consume-transform-produce "
    "transactions (exactly-once processing broken)",
    "unprocessed": "a committed input record below the group's committed offset that no "
    "consume-transform-produce transaction read",
    "txn-inconsistent-offsets": "one offset of a key observed holding two different values",
    "txn-unexpected": "a poll read a value that no transaction sent to that key",
    "txn-nonmonotonic-send": "a transactional.id's successive sends to a key got "
    "non-increasing offsets",
    "int-send-skip": "a transaction's successive sends to a key were not adjacent (writes of "
    "concurrent transactions interleave: allowed)",
    "txn-poll-skip": "a process's successive reads of a key jumped over committed data",
    "txn-nonmonotonic-poll": "a process's successive reads of a key did not move forward",
    "G0": "a write cycle (ww edges only) among committed transactions (Kafka's model "
    "interleaves transactions' writes: allowed)",
    "G1c": "a cycle of ww and wr edges, at least one wr, among committed transactions",
}

REPORT_EXAMPLES = 10
JSON_EXAMPLES = 1000


def _fmt_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("|", "\\|").replace("\n", " ")


class _FaultIndex:
    """Finds the last nemesis op at or before a time."""

    def __init__(self, faults: list[dict]):
        self._faults = sorted(faults, key=lambda f: f["time"])
        self._times = [f["time"] for f in self._faults]

    def before(self, time: float) -> Optional[dict]:
        i = bisect.bisect_right(self._times, time)
        return self._faults[i - 1] if i else None


def _example_lines(example: dict, faults: _FaultIndex) -> list[str]:
    line = "- `" + json.dumps(example, separators=(", ", ": ")) + "`"
    time = example.get("time")
    if isinstance(time, (int, float)):
        last = faults.before(time)
        after = (
            f"last fault before it: {last['f']} {_fmt_value(last['value'])} at {last['time']:.3f} s"
            if last
            else "no fault before it"
        )
        line += f"  \n  at {time:.3f} s; {after}"
    return [line]


def render_markdown(result: Result, history: list[Op]) -> str:
    stats = result.stats
    faults = stats.get("faults", [])
    fault_index = _FaultIndex(faults)
    processes = {op.process for op in history if not op.is_nemesis}
    t = stats.get("time", {})
    lines = ["# Fjord fault-suite check", ""]
    if result.valid:
        verdict = "**Verdict: VALID**"
        if any(result.counts.values()):
            verdict += " (allowed anomalies occurred: " + ", ".join(
                n for n in ALL_ANOMALIES if result.counts.get(n)
            ) + ")"
    else:
        verdict = "**Verdict: INVALID** — " + ", ".join(
            f"{n} ({result.counts[n]})" for n in result.forbidden
        )
    lines += [verdict, ""]
    span = ""
    if t.get("first") is not None:
        span = f", {t['first']:.3f} s to {t['last']:.3f} s"
    lines += [
        f"History: {len(history)} ops by {len(processes)} client processes and "
        f"{stats.get('nemesis_ops', 0)} nemesis ops{span}.",
        "",
        "## Anomalies",
        "",
        "| anomaly | count | forbidden | meaning |",
        "|---|---:|---|---|",
    ]
    def table(names):
        for name in names:
            forbidden = "no (allowed)" if name in result.allowed else "yes"
            count = result.counts.get(name, 0)
            lines.append(f"| {name} | {count} | {forbidden} | {DESCRIPTIONS[name]} |")
        lines.append("")

    table(ANOMALIES)
    if "txn" in stats:
        lines += [
            "Transactional workload:",
            "",
            "| anomaly | count | forbidden | meaning |",
            "|---|---:|---|---|",
        ]
        table(TXN_ANOMALIES)
    for name in ALL_ANOMALIES:
        examples = result.anomalies.get(name, [])
        if not examples:
            continue
        shown = examples[:REPORT_EXAMPLES]
        lines += [f"### {name} ({len(examples)})", "", DESCRIPTIONS[name] + ".", ""]
        if len(examples) > len(shown):
            lines += [f"First {len(shown)} of {len(examples)}:", ""]
        for example in shown:
            lines += _example_lines(example, fault_index)
        lines.append("")

    sends = stats.get("sends", {})
    reads = stats.get("reads", {})
    lines += [
        "## Stats",
        "",
        f"- sends: {sends.get('attempted', 0)} attempted, {sends.get('acknowledged', 0)} "
        f"acknowledged, {sends.get('failed', 0)} failed, {sends.get('indeterminate', 0)} "
        f"indeterminate ({sends.get('indeterminate_read', 0)} of them read, so written), "
        f"{sends.get('never_completed', 0)} never completed",
        f"- reads: {reads.get('records_read', 0)} records, {reads.get('values_read', 0)} "
        f"distinct values, {reads.get('acknowledged_read', 0)} of "
        f"{sends.get('acknowledged', 0)} acknowledged sends read",
        "",
        "| f | invoke | ok | fail | info |",
        "|---|---:|---:|---:|---:|",
    ]
    for f, types in stats.get("ops", {}).items():
        lines.append(
            f"| {f} | {types.get('invoke', 0)} | {types.get('ok', 0)} | "
            f"{types.get('fail', 0)} | {types.get('info', 0)} |"
        )
    keys = stats.get("keys", {})
    if keys:
        lines += [
            "",
            "| key | acknowledged | max acked offset | max read offset | known offsets |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, k in keys.items():
            lines.append(
                f"| {_fmt_value(key)} | {k['acknowledged']} | "
                f"{_fmt_value(k['max_acked_offset'])} | {_fmt_value(k['max_read_offset'])} | "
                f"{k['known_offsets']} |"
            )
    if "txn" in stats:
        lines += _txn_stats_lines(stats["txn"])
    lines += ["", "## Fault timeline", ""]
    if faults:
        lines += ["| time (s) | nemesis op | value |", "|---:|---|---|"]
        for fault in faults:
            lines.append(f"| {fault['time']:.3f} | {fault['f']} | {_fmt_value(fault['value'])} |")
    else:
        lines.append("No nemesis ops in this history.")
    lines.append("")
    return "\n".join(lines)


def _txn_stats_lines(txn: dict) -> list[str]:
    lines = ["", "Transactional workload:", "",
             "| transactions | ok (committed) | fail (aborted) | info | incomplete |",
             "|---|---:|---:|---:|---:|"]
    for role, row in sorted(txn.get("txns", {}).items()):
        lines.append(f"| {role} | {row['ok']} | {row['fail']} | {row['info']} | "
                     f"{row['incomplete']} |")
    lines.append("")
    for isolation, row in sorted(txn.get("polls", {}).items()):
        lines.append(f"- {isolation} polls: {row['polls']}, {row['records']} records")
    final = txn.get("final_read", {})
    graph = txn.get("graph", {})
    lines += [
        f"- values of committed transactions: {txn.get('committed_sends', 0)}; info "
        f"transactions proven committed by a read: {txn.get('info_proven_committed', 0)}",
        f"- final read: {len(final.get('complete', []))} of {len(final.get('targets', {}))} "
        f"keys read completely; group offsets {_fmt_value(txn.get('group_offsets'))}",
        f"- dependency graph: {graph.get('nodes', 0)} committed transactions, "
        f"{graph.get('ww_edges', 0)} ww and {graph.get('wr_edges', 0)} wr edges",
    ]
    return lines


def write_report(
    result: Result,
    history: list[Op],
    out_dir: str,
    json_max_examples: Optional[int] = JSON_EXAMPLES,
) -> tuple[str, str]:
    """Writes out_dir/report.md and out_dir/result.json (creating out_dir);
    returns their paths. result.json keeps the first `json_max_examples`
    examples per anomaly (None: all); its counts are always exact."""
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "report.md")
    json_path = os.path.join(out_dir, "result.json")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(result, history))
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump(result.to_dict(max_examples=json_max_examples), fh, indent=1, default=str)
        fh.write("\n")
    return md_path, json_path
