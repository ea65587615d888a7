"""The checker against hand-made histories: a clean one that exercises every
legitimate oddity (indeterminate sends, rewinds after a rebalance or an
indeterminate poll, offset gaps), then one history per anomaly that must be
flagged with exactly that anomaly; then the report files and the CLI."""

import json
import os
import subprocess
import sys

import pytest

from fjord_jepsen import ANOMALIES, HistoryError, Op, check, dump_history, load_history
from fjord_jepsen.history import parse_history
from fjord_jepsen.report import write_report

JEPSEN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class H:
    """Builds a history; every call appends an invoke and its completion."""

    def __init__(self):
        self.ops = []

    def _op(self, process, type_, f, value, error=None):
        n = len(self.ops)
        self.ops.append(Op(n, n * 0.1, process, type_, f, value, error))
        return self

    def _pair(self, process, f, invoke_value, type_, value, error=None):
        self._op(process, "invoke", f, invoke_value)
        return self._op(process, type_, f, value, error)

    def send(self, p, key, value, offset):
        kv = {"key": key, "value": value}
        return self._pair(p, "send", kv, "ok", dict(kv, offset=offset))

    def send_fail(self, p, key, value):
        kv = {"key": key, "value": value}
        return self._pair(p, "send", kv, "fail", kv, error="NOT_ENOUGH_REPLICAS")

    def send_info(self, p, key, value):
        kv = {"key": key, "value": value}
        return self._pair(p, "send", kv, "info", kv, error="timeout")

    def poll(self, p, records):
        return self._pair(p, "poll", None, "ok", records)

    def poll_info(self, p):
        return self._pair(p, "poll", None, "info", None, error="disconnected")

    def poll_fail(self, p):
        return self._pair(p, "poll", None, "fail", None, error="coordinator not available")

    def assign(self, p, keys):
        return self._pair(p, "assign", keys, "ok", keys)

    def subscribe(self, p, topics):
        return self._pair(p, "subscribe", topics, "ok", topics)

    def rebalance(self, p, revoked, assigned):
        return self._op(p, "info", "rebalance", {"revoked": revoked, "assigned": assigned})

    def crash(self, p):
        return self._op(p, "info", "crash", None)

    def nemesis(self, f, value):
        return self._op("nemesis", "info", f, value)


def clean_history():
    h = H()
    h.nemesis("start", None)
    # Key t-0: offsets 0, 1, 2 (an indeterminate send that was written), then
    # a gap (3 and 4: e.g. transaction markers) and 5.
    h.send(0, "t-0", 1, 0).send(0, "t-0", 2, 1)
    h.nemesis("kill", ["n2"])
    h.send_info(0, "t-0", 3)  # written at offset 2: read below
    h.send_info(1, "t-0", 4)  # not written: never read, and that is fine
    h.send(1, "t-0", 5, 5)
    h.send_fail(1, "t-0", 6)  # definitely not written, never read
    h.send(1, "t-1", 10, 0).send(1, "t-1", 11, 1)
    h.nemesis("restart", ["n2"])
    # A subscribed consumer; a rebalance rewinds it to an earlier offset.
    h.subscribe(2, ["t"])
    h.poll(2, {"t-0": [[0, 1], [1, 2]]})
    h.poll(2, {"t-0": [[2, 3], [5, 5]], "t-1": [[0, 10]]})
    h.rebalance(2, ["t-0", "t-1"], ["t-0", "t-1"])
    h.poll(2, {"t-0": [[1, 2], [2, 3]]})
    h.poll_fail(2)
    h.poll(2, {"t-1": [[1, 11]], "t-0": []})
    # An indeterminate poll may have moved the consumer unseen: a rewind or a
    # jump after it is allowed.
    h.assign(3, ["t-0"])
    h.poll(3, {"t-0": [[0, 1], [1, 2]]})
    h.poll_info(3)
    h.poll(3, {"t-0": [[0, 1]]})
    h.crash(3)
    h.poll(3, {"t-0": [[5, 5]]})
    h.nemesis("partition", {"n1": ["n2", "n3"]})
    h.nemesis("heal", None)
    # Final reads.
    h.assign(4, ["t-0", "t-1"])
    h.poll(4, {"t-0": [[0, 1], [1, 2], [2, 3], [5, 5]], "t-1": [[0, 10], [1, 11]]})
    h.nemesis("stop", None)
    return h.ops


def only(result, name):
    """Asserts the result flags `name` and nothing else."""
    flagged = {n: c for n, c in result.counts.items() if c}
    assert set(flagged) == {name}, flagged
    assert not result.valid
    assert result.forbidden == [name]
    return result.anomalies[name]


def test_clean_history_is_valid():
    history = clean_history()
    result = check(history)
    assert result.valid, {n: result.anomalies[n] for n in ANOMALIES if result.counts[n]}
    assert all(c == 0 for c in result.counts.values())
    sends = result.stats["sends"]
    assert sends == {
        "attempted": 8,
        "acknowledged": 5,
        "failed": 1,
        "indeterminate": 2,
        "indeterminate_read": 1,
        "never_completed": 0,
    }
    assert result.stats["ops"]["send"] == {"invoke": 8, "ok": 5, "fail": 1, "info": 2}
    assert result.stats["reads"]["values_read"] == 6
    assert result.stats["keys"]["t-0"]["known_offsets"] == 4
    assert [f["f"] for f in result.stats["faults"]] == [
        "start", "kill", "restart", "partition", "heal", "stop",
    ]


def test_duplicate():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 2)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 1], [2, 2]]})
    [dup] = only(check(h.ops), "duplicate")
    assert dup["value"] == 1
    assert sorted(p["offset"] for p in dup["positions"]) == [0, 1]


def test_a_retried_send_without_idempotence_is_an_allowed_retry_duplicate():
    h = H()
    kv = {"key": "k", "value": 1, "idempotent": False}
    h._pair(0, "send", kv, "ok", dict(kv, offset=1))
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 1]]})
    result = check(h.ops)
    assert result.valid and result.counts["retry-duplicate"] == 1
    assert result.counts["duplicate"] == 0 and "retry-duplicate" in result.allowed
    # The same with idempotence on is forbidden.
    h = H()
    kv = {"key": "k", "value": 1, "idempotent": True}
    h._pair(0, "send", kv, "ok", dict(kv, offset=1))
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 1]]})
    assert only(check(h.ops), "duplicate")


def test_duplicate_across_keys():
    h = H().send(0, "a", 1, 0)
    h.assign(1, ["a", "b"]).poll(1, {"a": [[0, 1]], "b": [[0, 1]]})
    result = check(h.ops)
    # Read in a key it was never sent to: both a duplicate and unexpected.
    assert result.counts["duplicate"] == 1 and result.counts["unexpected"] == 1
    assert not result.valid


def test_inconsistent_offsets():
    h = H().send_info(0, "k", 7).send_info(1, "k", 8)
    h.assign(2, ["k"]).poll(2, {"k": [[0, 7]]})
    h.assign(3, ["k"]).poll(3, {"k": [[0, 8]]})
    [bad] = only(check(h.ops), "inconsistent-offsets")
    assert bad["key"] == "k" and bad["offset"] == 0
    assert sorted(v["value"] for v in bad["values"]) == [7, 8]


def test_lost_write():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1).send(0, "k", 3, 2)
    h.nemesis("kill", ["n1"])
    # The reader's positions reset between its reads, so this is not also a
    # poll-skip: only the acked value 2 at offset 1 is missing.
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1]]})
    h.crash(1)
    h.poll(1, {"k": [[2, 3]]})
    [lost] = only(check(h.ops), "lost-write")
    assert (lost["key"], lost["value"], lost["offset"]) == ("k", 2, 1)
    assert lost["max_read_offset"] == 2


def test_lost_write_seen_by_a_continuous_reader_is_also_a_poll_skip():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1).send(0, "k", 3, 2)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [2, 3]]})
    result = check(h.ops)
    flagged = {n for n, c in result.counts.items() if c}
    assert flagged == {"lost-write", "poll-skip"}


def test_unseen_and_allowing_it():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1]]})
    [unseen] = only(check(h.ops), "unseen")
    assert unseen["value"] == 2 and unseen["max_read_offset"] == 0
    allowed = check(h.ops, allowed=["unseen"])
    assert allowed.valid and allowed.counts["unseen"] == 1
    with pytest.raises(ValueError):
        check(h.ops, allowed=["no-such-anomaly"])


def test_aborted_read():
    h = H().send(0, "k", 1, 0).send_fail(0, "k", 9)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 9]]})
    [g1a] = only(check(h.ops), "G1a")
    assert g1a["value"] == 9 and g1a["reads"][0]["offset"] == 1


def test_nonmonotonic_send():
    h = H().send(0, "k", 1, 1).send(0, "k", 2, 0)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 2], [1, 1]]})
    [bad] = only(check(h.ops), "nonmonotonic-send")
    assert (bad["prev_offset"], bad["offset"], bad["process"]) == (1, 0, 0)


def test_poll_skip_across_polls():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1).send(0, "k", 3, 2)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 2], [2, 3]]})
    h.assign(2, ["k"]).poll(2, {"k": [[0, 1]]}).poll(2, {"k": [[2, 3]]})
    [skip] = only(check(h.ops), "poll-skip")
    assert skip["process"] == 2 and not skip["within_poll"]
    assert skip["skipped"] == [{"offset": 1, "values": [2]}]


def test_poll_skip_within_one_poll():
    h = H().send(0, "k", 1, 0).send_info(0, "k", 2).send(0, "k", 3, 5)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [3, 2], [5, 3]]})
    h.assign(2, ["k"]).poll(2, {"k": [[0, 1], [5, 3]]})
    [skip] = only(check(h.ops), "poll-skip")
    assert skip["within_poll"] and skip["skipped_count"] == 1


def test_nonmonotonic_poll():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1).send(0, "k", 3, 2)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 2]]})
    h.poll(1, {"k": [[1, 2], [2, 3]]})
    [bad] = only(check(h.ops), "nonmonotonic-poll")
    assert (bad["prev_offset"], bad["offset"]) == (1, 1)


def test_unexpected_value():
    h = H().send(0, "k", 1, 0)
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [1, 999]]})
    [bad] = only(check(h.ops), "unexpected")
    assert bad["value"] == 999 and bad["sent_key"] is None


def test_value_read_in_another_key_is_unexpected():
    h = H().send_info(0, "a", 1)
    h.assign(1, ["b"]).poll(1, {"b": [[0, 1]]})
    [bad] = only(check(h.ops), "unexpected")
    assert bad["sent_key"] == "a" and bad["reads"][0]["key"] == "b"


def test_a_value_sent_twice_cannot_be_checked():
    h = H().send(0, "k", 1, 0).send(0, "k", 1, 1)
    with pytest.raises(HistoryError, match="sent twice"):
        check(h.ops)


def lost_write_history():
    h = H().send(0, "k", 1, 0).send(0, "k", 2, 1).send(0, "k", 3, 2)
    h.nemesis("kill", ["n1"])
    h.assign(1, ["k"]).poll(1, {"k": [[0, 1], [2, 3]]})
    return h.ops


def test_report_files(tmp_path):
    history = lost_write_history()
    result = check(history)
    md_path, json_path = write_report(result, history, str(tmp_path / "out"))
    md = open(md_path).read()
    assert "INVALID" in md
    assert "### lost-write (1)" in md
    assert "last fault before it: kill" in md
    assert "## Fault timeline" in md and "| kill |" in md
    data = json.load(open(json_path))
    assert data["valid"] is False
    assert data["counts"]["lost-write"] == 1
    assert set(data["forbidden"]) == {"lost-write", "poll-skip"}
    assert data["anomalies"]["lost-write"][0]["value"] == 2


def test_report_of_a_valid_history(tmp_path):
    history = clean_history()
    md_path, json_path = write_report(check(history), history, str(tmp_path))
    assert "**Verdict: VALID**" in open(md_path).read()
    assert json.load(open(json_path))["valid"] is True


def test_history_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "h.jsonl")
    history = clean_history()
    dump_history(history, path)
    assert load_history(path) == history
    bad = [
        ('{"index": 0, "time": 0, "process": 0, "type": "ok", "f": "send", '
         '"value": {"key": "k", "value": 1}}', "offset"),
        ('{"index": 0, "time": 0, "process": 0, "type": "done", "f": "poll"}', "type"),
        ('{"index": 0, "time": 0, "process": 0, "type": "ok", "f": "poll", '
         '"value": {"k": [[0]]}}', "offset, value"),
        ("{not json", "invalid JSON"),
        ('{"time": 0, "process": 0, "type": "ok", "f": "poll"}', "index"),
    ]
    for line, message in bad:
        with pytest.raises(HistoryError, match=message) as e:
            parse_history(["", line])
        assert e.value.line == 2
    with pytest.raises(HistoryError, match="cannot read"):
        load_history(str(tmp_path / "missing.jsonl"))


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "fjord_jepsen.check", *args],
        cwd=JEPSEN_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exit_codes(tmp_path):
    clean = str(tmp_path / "clean.jsonl")
    dump_history(clean_history(), clean)
    r = run_cli(clean, "--out", str(tmp_path / "clean"))
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "clean" / "report.md")

    lost = str(tmp_path / "lost.jsonl")
    dump_history(lost_write_history(), lost)
    r = run_cli(lost, "--out", str(tmp_path / "lost"))
    assert r.returncode == 1, r.stderr
    assert "lost-write" in r.stdout
    assert "lost-write" in open(tmp_path / "lost" / "report.md").read()

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"index": 0}\n')
    r = run_cli(str(garbage), "--out", str(tmp_path / "garbage"))
    assert r.returncode == 2 and "line 1" in r.stderr
    r = run_cli(str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "missing"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_lost_write_overwritten_at_its_offset():
    # The ack said value 1 is at offset 0; readers found 2 there instead.
    h = H().send(0, "k", 1, 0).send_info(1, "k", 2)
    h.assign(2, ["k"]).poll(2, {"k": [[0, 2]]})
    result = check(h.ops)
    assert {n for n, c in result.counts.items() if c} == {"lost-write", "inconsistent-offsets"}
    assert result.anomalies["lost-write"][0]["read_at_offset"] == [2]
