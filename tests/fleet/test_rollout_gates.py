"""The gate parser (no eval), stage parsing and sticky buckets: no broker needed."""

from __future__ import annotations

import pytest

from edgeops.errors import UsageError
from edgeops.fleet.rollout import bucket, parse_stages, stage_of
from edgeops.fleet.rollout_gates import DEFAULT_GATES, check, parse_gate, parse_gates


@pytest.mark.parametrize("text, metric, op, threshold", [
    ("p95_ratio<=1.2", "p95_ratio", "<=", 1.2), (" error_rate < 1% ", "error_rate", "<", 0.01),
    ("accuracy_drop_ci_upper<=1pt", "accuracy_drop_ci_upper", "<=", 0.01), ("shadow_agreement>=0.99", "shadow_agreement", ">=", 0.99),
    ("offline==0", "offline", "==", 0.0)])
def test_a_gate_reads_metric_operator_and_number(text, metric, op, threshold):
    g = parse_gate(text)
    assert (g.metric, g.op) == (metric, op) and g.threshold == pytest.approx(threshold)


@pytest.mark.parametrize("text", ["p95_ratio", "nope<=1", "p95_ratio<=__import__('os')", "p95_ratio=<1", "p95_ratio<=1 km"])
def test_a_bad_gate_is_a_clear_error(text):
    with pytest.raises(UsageError, match="gate"):
        parse_gate(text)


def test_given_gates_replace_their_defaults_and_keep_the_rest():
    gates = parse_gates(["p95_ratio<=1.2,offline<=1"])
    assert len(gates) == len(DEFAULT_GATES)
    assert [g.threshold for g in gates if g.metric == "p95_ratio"] == [1.2]
    rows = check(gates, {"p95_ratio": 1.3, "offline": 0.0})
    assert {r["metric"]: r["ok"] for r in rows}["p95_ratio"] is False and {r["metric"]: r["ok"] for r in rows}["psi_out"] is None


def test_stages_and_sticky_buckets():
    assert parse_stages("1,10,50") == [1.0, 10.0, 50.0, 100.0]
    assert parse_stages("canary,stable") == ["canary", "stable"]
    with pytest.raises(UsageError):
        parse_stages("50,10")
    b = [bucket("r1", f"d{i}") for i in range(2000)]
    assert b == [bucket("r1", f"d{i}") for i in range(2000)] and all(0 <= x < 100 for x in b)
    assert 0.44 < sum(x < 50 for x in b) / 2000 < 0.56  # spread evenly
    assert stage_of([1.0, 10.0, 100.0], 5.0, {}) == 1 and stage_of(["canary", "stable"], 0.0, {"ring": "canary"}) == 0
    assert stage_of(["canary", "stable"], 0.0, {}) == 1
