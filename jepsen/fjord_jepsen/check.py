"""CLI: check a history file and write its report.

    python3 -m fjord_jepsen.check HISTORY.jsonl --out DIR [--allow unseen]

Exit codes: 0 the history is valid, 1 a forbidden anomaly occurred, 2 the
history could not be read or interpreted (the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .checker import ALL_ANOMALIES, check
from .history import HistoryError, load_history
from .report import write_report

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m fjord_jepsen.check",
        description="Check a Fjord fault-suite history (JSON lines) for queue anomalies.",
    )
    p.add_argument("history", help="history file, one JSON op per line")
    p.add_argument("--out", required=True, help="directory for report.md and result.json")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        choices=ALL_ANOMALIES,
        metavar="ANOMALY",
        help="report this anomaly but do not fail on it (repeatable), e.g. "
        "'unseen' for a run without final reads",
    )
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        history = load_history(args.history)
        result = check(history, allowed=args.allow)
    except HistoryError as e:
        print(f"fjord_jepsen.check: {args.history}: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    md_path, _ = write_report(result, history, args.out)
    if result.valid:
        print(f"valid: {len(history)} ops; report in {md_path}")
        return EXIT_VALID
    summary = ", ".join(f"{n} ({result.counts[n]})" for n in result.forbidden)
    print(f"INVALID: {summary}; report in {md_path}")
    return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
