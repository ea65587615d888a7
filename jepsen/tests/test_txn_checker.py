"""The transactional checker against hand-made histories: a clean one with every legitimate
oddity (aborted and indeterminate transactions, read_committed readers skipping aborted
records, rewinds after a seek), then one history per anomaly, then info semantics, malformed
ops and the report."""

import json

import pytest

from fjord_jepsen import HistoryError, Op, check
from fjord_jepsen.history import op_from_dict
from fjord_jepsen.report import write_report
from fjord_jepsen.txn_checker import TXN_ANOMALIES

IN0, IN1, OUT0 = "jepsen-txn-0", "jepsen-txn-1", "jepsen-txn-out-0"


class T:
    """Builds a transactional history; times advance by 0.1 s per op."""

    def __init__(self):
        self.ops = []

    @property
    def now(self):
        return round(len(self.ops) * 0.1, 3)

    def _op(self, process, type_, f, value, error=None):
        op = Op(len(self.ops), self.now, process, type_, f, value, error)
        self.ops.append(op)
        return op

    def invoke(self, p, sends, reads=None, txn_id=None):
        value = {"txn_id": txn_id or f"tid-{p}", "sends": [{"key": k, "value": v}
                                                          for k, v, _o in sends]}
        if reads is not None:
            value["reads"] = reads
        self._op(p, "invoke", "txn", value)
        return value

    def complete(self, p, invoke, sends, type_, commit_requested="auto", error=None):
        if commit_requested == "auto":
            commit_requested = None if type_ == "fail" else self.now
        done = dict(invoke, commit_requested=commit_requested, sends=[
            {"key": k, "value": v, **({} if o is None else {"offset": o})} for k, v, o in sends])
        self._op(p, type_, "txn", done, error)
        return self

    def txn(self, p, type_, sends, reads=None, txn_id=None, error=None):
        """One transaction: sends [(key, value, offset or None)], reads {key: [[o, v]...]}."""
        invoke = self.invoke(p, sends, reads, txn_id)
        return self.complete(p, invoke, sends, type_, error=error)

    def poll(self, p, records, isolation="read_committed", max=500):
        self._op(p, "invoke", "txn-poll", {"isolation": isolation})
        self._op(p, "ok", "txn-poll", {"isolation": isolation, "records": records, "max": max})
        return self

    def reset(self, p, f="seek"):
        self._op(p, "info", f, {})
        return self

    def final(self, p, targets, records, complete=None):
        self._op(p, "info", "txn-final-read-targets", targets)
        self.poll(p, records)
        keys = sorted(targets) if complete is None else complete
        self._op(p, "info", "txn-final-read-complete", keys)
        return self

    def group_offsets(self, p, offsets):
        self._op(p, "info", "txn-group-offsets", {"group": "g", "offsets": offsets})
        return self


def chk(ops):
    """Checks a history without final reads: values nobody read are `txn-unseen`, allowed."""
    return check(ops, allowed=["txn-unseen"])


def flagged(result):
    """The transactional anomalies that make the result invalid, with their counts."""
    return {n: c for n, c in result.counts.items()
            if c and n in TXN_ANOMALIES and n not in result.allowed}


def only(result, name):
    """The result flags `name` (forbidden) and no other transactional anomaly."""
    assert flagged(result) == {name: result.counts[name]}, flagged(result)
    assert not result.valid and result.forbidden == [name]
    return result.anomalies[name]


def clean_history():
    h = T()
    h._op("nemesis", "info", "kill", ["fjord-2"])
    # Producer 0: committed 1, 2 (offsets 0, 1 of in-0) and 3 (in-1@0); aborted 4 (in-0@2);
    # committed 5 (in-0@4: 3 is its commit marker, never read).
    h.txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1), (IN1, 3, 0)])
    h.txn(0, "fail", [(IN0, 4, 2)], error="aborted on purpose")
    h.txn(0, "ok", [(IN0, 5, 5)])
    # Producer 1: its commit unconfirmed and never read: maybe aborted, so not lost.
    h.txn(1, "info", [(IN0, 6, None)], error="commit unconfirmed")
    # A reader with read_committed skips the aborted record at 2.
    h.poll(2, {IN0: [[0, 1], [1, 2]]})
    h.poll(2, {IN0: [[5, 5]], IN1: [[0, 3]]})
    # A read_uncommitted reader sees the aborted record; that is fine.
    h.poll(3, {IN0: [[0, 1], [1, 2], [2, 4]]}, isolation="read_uncommitted")
    # Consume-transform-produce: the first attempt aborts, the consumer seeks back and the
    # second commits the output and the offsets.
    h.poll(4, {IN0: [[0, 1], [1, 2]]})
    h.txn(4, "fail", [(OUT0, 100, 0), (OUT0, 101, 1)],
          reads={IN0: [[0, 1], [1, 2]]}, error="aborted on purpose")
    h.reset(4, "seek")
    h.poll(4, {IN0: [[0, 1], [1, 2], [5, 5]]})
    h.txn(4, "ok", [(OUT0, 102, 3), (OUT0, 103, 4), (OUT0, 104, 5)],
          reads={IN0: [[0, 1], [1, 2], [5, 5]]})
    h._op("nemesis", "info", "restart", ["fjord-2"])
    h.final(9, {IN0: 7, IN1: 2, OUT0: 7},
            {IN0: [[0, 1], [1, 2], [5, 5]], IN1: [[0, 3]],
             OUT0: [[3, 102], [4, 103], [5, 104]]})
    h.group_offsets(9, {IN0: 6})
    return h


def test_clean_history_is_valid():
    result = check(clean_history().ops)
    assert result.valid, {n: result.anomalies[n] for n in flagged(result)}
    assert flagged(result) == {}
    txn = result.stats["txn"]
    assert txn["txns"] == {"producer": {"ok": 2, "fail": 1, "info": 1, "incomplete": 0},
                           "ctp": {"ok": 1, "fail": 1, "info": 0, "incomplete": 0}}
    assert txn["final_read"]["complete"] == [IN0, IN1, OUT0]
    assert txn["graph"]["nodes"] == 3 and txn["graph"]["wr_edges"] == 2


def test_queue_only_history_has_no_transactional_results():
    h = T()
    h._op(0, "invoke", "send", {"key": "jepsen-0", "value": 1})
    h._op(0, "ok", "send", {"key": "jepsen-0", "value": 1, "offset": 0})
    h._op(1, "invoke", "poll", None)
    h._op(1, "ok", "poll", {"jepsen-0": [[0, 1]]})
    result = check(h.ops)
    assert result.valid and "txn" not in result.stats
    assert not any(n in result.counts for n in TXN_ANOMALIES)


def test_aborted_read():
    h = T().txn(0, "fail", [(IN0, 1, 0)], error="aborted on purpose")
    h.poll(1, {IN0: [[0, 1]]})
    [bad] = only(chk(h.ops), "aborted-read")
    assert (bad["key"], bad["value"], bad["writer"]["type"]) == (IN0, 1, "fail")
    # Under read_uncommitted the same read is allowed.
    h = T().txn(0, "fail", [(IN0, 1, 0)]).poll(1, {IN0: [[0, 1]]}, isolation="read_uncommitted")
    assert chk(h.ops).valid


def test_a_read_of_an_info_transaction_is_not_an_aborted_read_and_proves_it_committed():
    h = T().txn(0, "info", [(IN0, 1, None), (IN0, 2, None)])
    h.poll(1, {IN0: [[0, 1], [1, 2]]})
    result = chk(h.ops)
    assert result.valid and flagged(result) == {}
    assert result.stats["txn"]["info_proven_committed"] == 1


def test_an_unread_info_transaction_is_never_lost():
    h = T().txn(0, "info", [(IN0, 1, 0)])
    h.final(9, {IN0: 1}, {})
    assert chk(h.ops).valid


def test_intermediate_read():
    h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1)])
    h.poll(1, {IN0: [[0, 1]]})
    h.final(9, {IN0: 3}, {IN0: [[0, 1], [1, 2]]})
    [bad] = only(chk(h.ops), "intermediate-read")
    assert bad["value"] == 1 and bad["next_write"] == {"value": 2, "offset": 1}


def test_a_poll_cut_at_its_maximum_or_held_by_another_transaction_is_no_intermediate_read():
    # The client cut the poll: it returned as many records as it may.
    h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1)])
    h.poll(1, {IN0: [[0, 1]]}, max=1)
    assert chk(h.ops).valid
    # Another transaction's record lies between: it may have held the last stable offset.
    h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 3, 2)]).txn(1, "ok", [(IN0, 2, 1)])
    h.poll(2, {IN0: [[0, 1]]})
    result = chk(h.ops)
    assert result.valid, flagged(result)
    assert result.counts["int-send-skip"] == 1 and result.counts["G0"] == 1


def test_precommitted_read():
    h = T()
    invoke = h.invoke(0, [(IN0, 1, 0)])
    h.poll(1, {IN0: [[0, 1]]})  # returned at 0.2 s
    h.complete(0, invoke, [(IN0, 1, 0)], "ok", commit_requested=0.25)
    [bad] = only(chk(h.ops), "precommitted-read")
    assert bad["commit_requested"] == 0.25 and bad["time"] < 0.25
    # Read after the commit was requested: fine, even before the commit returned.
    h = T()
    invoke = h.invoke(0, [(IN0, 1, 0)])
    h.poll(1, {IN0: [[0, 1]]})
    h.complete(0, invoke, [(IN0, 1, 0)], "ok", commit_requested=0.15)
    assert chk(h.ops).valid


def test_lost_write_and_unseen():
    h = T().txn(0, "ok", [(IN0, 1, 0)]).txn(0, "ok", [(IN0, 2, 1), (IN1, 3, 0)])
    # The final reader read in-0 completely without 2, and never finished in-1.
    h.final(9, {IN0: 3, IN1: 2}, {IN0: [[0, 1]]}, complete=[IN0])
    result = check(h.ops)
    assert flagged(result) == {"txn-lost-write": 1, "txn-unseen": 1}
    [lost] = result.anomalies["txn-lost-write"]
    assert (lost["key"], lost["value"], lost["offset"], lost["final_target"]) == (IN0, 2, 1, 3)
    assert result.anomalies["txn-unseen"][0]["value"] == 3
    assert not check(h.ops, allowed=["txn-unseen", "txn-lost-write"]).forbidden


def test_duplicate_in_committed_data():
    h = T().txn(0, "ok", [(IN0, 1, 0)])
    h.final(9, {IN0: 2}, {IN0: [[0, 1], [1, 1]]})
    [dup] = only(chk(h.ops), "txn-duplicate")
    assert dup["offsets"] == [0, 1]


def test_reprocessed_input():
    h = T().txn(0, "ok", [(IN0, 1, 0)])
    h.txn(1, "ok", [(OUT0, 10, 0)], reads={IN0: [[0, 1]]})
    h.txn(2, "ok", [(OUT0, 11, 1)], reads={IN0: [[0, 1]]})
    [bad] = only(chk(h.ops), "reprocessed")
    assert bad["value"] == 1 and len(bad["readers"]) == 2
    # An aborted second attempt is no reprocessing.
    h = T().txn(0, "ok", [(IN0, 1, 0)])
    h.txn(1, "fail", [(OUT0, 10, 0)], reads={IN0: [[0, 1]]})
    h.txn(2, "ok", [(OUT0, 11, 1)], reads={IN0: [[0, 1]]})
    assert chk(h.ops).valid


def test_unprocessed_input():
    h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1)])
    h.txn(1, "ok", [(OUT0, 10, 0)], reads={IN0: [[1, 2]]})
    h.group_offsets(9, {IN0: 2})
    [bad] = only(chk(h.ops), "unprocessed")
    assert (bad["value"], bad["offset"], bad["group_offset"]) == (1, 0, 2)


def test_poll_skip_over_committed_data_but_not_over_aborted_records():
    h = T().txn(0, "ok", [(IN0, 1, 0)]).txn(0, "ok", [(IN0, 2, 1)]).txn(0, "ok", [(IN0, 3, 2)])
    h.poll(1, {IN0: [[0, 1]]}).poll(1, {IN0: [[2, 3]]})
    h.final(9, {IN0: 3}, {IN0: [[0, 1], [1, 2], [2, 3]]})
    [skip] = only(chk(h.ops), "txn-poll-skip")
    assert skip["skipped"] == [1] and not skip["within_poll"]
    h = T().txn(0, "ok", [(IN0, 1, 0)]).txn(0, "fail", [(IN0, 2, 1)])
    h.txn(0, "ok", [(IN0, 3, 3)])
    h.poll(1, {IN0: [[0, 1], [3, 3]]})
    assert chk(h.ops).valid


def test_nonmonotonic_poll_and_resets():
    h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1)])
    h.poll(1, {IN0: [[0, 1], [1, 2]]}).poll(1, {IN0: [[1, 2]]})
    [bad] = only(chk(h.ops), "txn-nonmonotonic-poll")
    assert (bad["prev_offset"], bad["offset"]) == (1, 1)
    for reset in ("seek", "rebalance", "crash", "assign", "subscribe"):
        h = T().txn(0, "ok", [(IN0, 1, 0), (IN0, 2, 1)])
        h.poll(1, {IN0: [[0, 1], [1, 2]]}).reset(1, reset).poll(1, {IN0: [[0, 1], [1, 2]]})
        assert chk(h.ops).valid, reset


def test_nonmonotonic_send():
    h = T().txn(0, "ok", [(IN0, 1, 5)]).txn(0, "ok", [(IN0, 2, 4)])
    h.poll(1, {IN0: [[4, 2], [5, 1]]})
    result = chk(h.ops)
    assert result.counts["txn-nonmonotonic-send"] == 1
    [bad] = result.anomalies["txn-nonmonotonic-send"]
    assert (bad["prev_offset"], bad["offset"]) == (5, 4)


def test_g1c_cycle_with_a_wr_edge():
    # P writes a@0 and b@1; C reads a@0 (wr P -> C) and wrote b@0, before P's b@1 (ww C -> P).
    h = T()
    h.txn(0, "ok", [("a", 1, 0), ("b", 2, 1)])
    h.txn(1, "ok", [("b", 3, 0)], reads={"a": [[0, 1]]})
    [cycle] = only(chk(h.ops), "G1c")
    assert {step["edge"] for step in cycle["cycle"]} == {"wr", "ww"}
    assert cycle["size"] == 2


def test_g0_write_cycle_is_reported_and_allowed():
    h = T().txn(0, "ok", [("a", 1, 0), ("b", 2, 1)]).txn(1, "ok", [("a", 3, 1), ("b", 4, 0)])
    result = chk(h.ops)
    assert result.valid and result.counts["G0"] == 1 and "G0" in result.allowed


def test_aborted_transactions_are_not_in_the_graph():
    h = T().txn(0, "ok", [("a", 1, 0), ("b", 2, 1)]).txn(1, "fail", [("a", 3, 1), ("b", 4, 0)])
    assert chk(h.ops).counts["G0"] == 0


def test_unexpected_and_inconsistent_offsets():
    h = T().txn(0, "ok", [(IN0, 1, 0)]).poll(1, {IN0: [[0, 1], [1, 99]]})
    result = chk(h.ops)
    assert flagged(result) == {"txn-unexpected": 1}
    h = T().txn(0, "ok", [(IN0, 1, 0)]).txn(1, "info", [(IN0, 2, None)])
    h.poll(2, {IN0: [[0, 2]]})
    assert "txn-inconsistent-offsets" in flagged(chk(h.ops))


def test_one_value_sent_by_two_transactions_cannot_be_checked():
    h = T().txn(0, "ok", [(IN0, 1, 0)]).txn(1, "ok", [(IN0, 1, 1)])
    with pytest.raises(HistoryError, match="two transactions"):
        check(h.ops)


@pytest.mark.parametrize("value", [
    {"sends": []},
    {"txn_id": "t", "sends": [{"key": "k"}]},
    {"txn_id": "t", "sends": [], "reads": {"k": [[0]]}},
])
def test_malformed_txn_ops_are_refused(value):
    with pytest.raises(HistoryError):
        op_from_dict({"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "txn",
                      "value": value}, line=1)
    with pytest.raises(HistoryError):
        op_from_dict({"index": 0, "time": 0, "process": 0, "type": "ok", "f": "txn-poll",
                      "value": {"isolation": "snapshot", "records": {}}}, line=1)


def test_report_has_the_transactional_section(tmp_path):
    h = clean_history()
    h.txn(5, "fail", [(IN1, 7, 1)]).poll(6, {IN1: [[1, 7]]})
    result = check(h.ops)
    md_path, json_path = write_report(result, h.ops, str(tmp_path))
    md = open(md_path).read()
    assert "Verdict: INVALID** — aborted-read (1)" in md
    assert "Transactional workload:" in md and "### aborted-read (1)" in md
    assert "| producer | 2 | 2 | 1 | 0 |" in md
    data = json.load(open(json_path))
    assert data["counts"]["aborted-read"] == 1 and data["stats"]["txn"]["txns"]["ctp"]["ok"] == 1


def test_a_commit_acknowledged_at_the_offsets_of_an_aborted_transaction():
    # The second transaction's sends were acknowledged at offsets that hold the first one's
    # (aborted) records: a read_uncommitted reader shows it, read_committed readers skip them.
    h = T().txn(0, "fail", [(OUT0, 1, None)], error="purged")
    h.txn(0, "ok", [(OUT0, 2, 0)]).txn(0, "ok", [(OUT0, 3, 2)])
    h.poll(1, {OUT0: [[0, 1], [2, 3]]}, isolation="read_uncommitted")
    h.final(9, {OUT0: 3}, {OUT0: [[2, 3]]})
    result = check(h.ops)
    assert flagged(result) == {"txn-lost-write": 1, "txn-inconsistent-offsets": 1}
    [bad] = result.anomalies["txn-inconsistent-offsets"]
    assert sorted(v["value"] for v in bad["values"]) == [1, 2]
