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


@pytest.mark.parametrize("lo, hi, ok", [(-0.01, 0.015, True), (-0.02, 0.06, None), (0.03, 0.12, False)],
                         ids=["shown-small", "undecided", "shown-too-large"])
def test_the_ab_accuracy_gate_waits_until_the_interval_decides(lo, hi, ok):
    gates = [parse_gate("accuracy_drop_ci_upper<=2pt")]
    row = check(gates, {"accuracy_drop_ci_upper": hi, "accuracy_drop_ci_lower": lo},
                deciding=("accuracy_drop_ci_upper",))[0]
    assert row["ok"] is ok and row["decides"] and row["value"] == hi
    plain = check(gates, {"accuracy_drop_ci_upper": hi, "accuracy_drop_ci_lower": lo})[0]
    assert plain["ok"] is (hi <= 0.02) and "decides" not in plain  # outside an A/B split: a plain threshold


def test_shadow_agreement_is_judged_only_over_enough_samples():
    gates = parse_gates(["shadow_agreement>=0.95", "shadow_samples>=50"], defaults=False)
    few = check(gates, {"shadow_agreement": 0.5, "shadow_samples": 10}, deciding=("shadow_samples",))
    assert [r["ok"] for r in few] == [None, None]  # too few samples: a wait, not a halt
    many = check(gates, {"shadow_agreement": 0.5, "shadow_samples": 80}, deciding=("shadow_samples",))
    assert [r["ok"] for r in many] == [False, True]


def test_shadow_blocks_add_up_over_the_soak_window():
    from edgeops.fleet.rollout_gates import measure

    def row(n, a):
        return {"payload": {"shadow": {"enabled": True, "count": n, "agreement": a}}, "count": n}

    values = measure({"d1": [row(10, 1.0), row(30, 0.5)], "d2": [row(5, 1.0)]}, {}, offline=0, flash_failed=None)
    assert values["shadow_samples"] == 5 and values["shadow_agreement"] == pytest.approx((10 + 15) / 40)
