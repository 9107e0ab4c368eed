"""Gates pass only on a finite value within the limit: a candidate that outputs NaN fails every gate.

Regression guard: a gate written ``cos < limit`` (fail when below) lets NaN through, since
every comparison with NaN is False, and a candidate whose output is NaN passed
``validate --min-cosine``. Each gate is checked here with NaN and both infinities, at its
limit, and just past it.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from edgeops.validate import Gates, validate

NAN, INF = math.nan, math.inf
ALL = Gates(max_accuracy_drop=1.0, min_agreement=0.97, min_cosine=0.99, max_p95_ms=5.0)
PREFIX = {"drop": "accuracy drop ", "agreement": "top-1 agreement ", "cosine": "cosine similarity ",
          "p95": "candidate p95 latency "}


def measured(drop=0.0, agreement=1.0, cosine=1.0, p95=1.0, nonfinite=0):
    """(outputs, accuracy, latency) as ``validate`` hands them to :meth:`Gates.failures`."""
    outputs = {"probabilities": {"cosine": cosine, "min_cosine": cosine, "top1_agreement": agreement,
                                 "nonfinite": nonfinite}}
    accuracy = {"drop_points": drop, "ci95": [drop, drop], "reference": 0.95, "candidate": 0.95 - drop / 100}
    latency = {"candidate": {"p95": p95}, "reference": {"p95": 1.0}}
    return outputs, accuracy, latency


def test_values_within_every_limit_pass():
    assert ALL.failures(*measured()) == []


@pytest.mark.parametrize("gate", list(PREFIX))
@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "minus-inf"])
def test_a_value_that_is_not_a_finite_number_fails_its_gate(gate, value):
    failures = ALL.failures(*measured(**{gate: value}))
    assert len(failures) == 1, failures
    assert failures[0].startswith(PREFIX[gate] + str(value))


@pytest.mark.parametrize("gate, at_limit, past_limit", [
    pytest.param("drop", 1.0, 1.0001, id="accuracy-drop"),
    pytest.param("agreement", 0.97, 0.9699, id="agreement"),
    pytest.param("cosine", 0.99, 0.98999, id="cosine"),
    pytest.param("p95", 5.0, 5.001, id="p95"),
])
def test_a_value_at_the_limit_passes_and_just_past_it_fails(gate, at_limit, past_limit):
    assert ALL.failures(*measured(**{gate: at_limit})) == []
    failures = ALL.failures(*measured(**{gate: past_limit}))
    assert len(failures) == 1 and failures[0].startswith(PREFIX[gate])


@pytest.mark.parametrize("gate, line", [
    pytest.param("drop", "accuracy drop 3.00 points > 1 allowed (95% CI 3.00..3.00; reference 95.00%, "
                         "candidate 92.00%)", id="accuracy-drop"),
    pytest.param("agreement", "top-1 agreement 0.9000 on 'probabilities' < 0.97 required", id="agreement"),
    pytest.param("cosine", "cosine similarity 0.900000 on 'probabilities' < 0.99 required (worst sample 0.9000)",
                 id="cosine"),
    pytest.param("p95", "candidate p95 latency 9.000 ms > 5 ms allowed (reference 1.000 ms)", id="p95"),
])
def test_each_failure_line_reads_as_the_user_checks_it(gate, line):
    value = {"drop": 3.0, "agreement": 0.9, "cosine": 0.9, "p95": 9.0}[gate]
    assert ALL.failures(*measured(**{gate: value})) == [line]


def test_the_failure_line_counts_the_candidates_nonfinite_values():
    failures = ALL.failures(*measured(cosine=NAN, nonfinite=12))
    assert failures == ["cosine similarity nan on 'probabilities' < 0.99 required (worst sample nan); "
                        "the candidate gave 12 NaN/inf value(s)"]


def test_gates_that_are_off_or_do_not_apply_check_nothing():
    assert Gates().failures(*measured(drop=NAN, agreement=NAN, cosine=NAN, p95=NAN)) == []
    outputs, _, _ = measured(agreement=None)  # not class scores: agreement does not apply to this output
    assert ALL.failures(outputs, None, None) == []


def test_every_gate_is_checked_on_every_output():
    outputs = {"a": measured()[0]["probabilities"], "b": measured(agreement=0.5, cosine=0.5)[0]["probabilities"]}
    failures = Gates(min_agreement=0.97, min_cosine=0.99).failures(outputs, None, None)
    assert [f.split(" on ")[1][:3] for f in failures] == ["'b'", "'b'"]


@pytest.mark.parametrize("gates, words", [
    pytest.param(Gates(min_cosine=NAN), "gate min_cosine must be a number, not nan", id="nan-limit"),
    pytest.param(Gates(max_p95_ms="5"), "gate max_p95_ms must be a number, not '5'", id="text-limit"),
    pytest.param(Gates(max_p95_ms=0), "max p95 latency must be above 0 ms, not 0", id="zero-p95"),
    pytest.param(Gates(max_accuracy_drop=101), "max accuracy drop is in percentage points", id="drop-over-100"),
    pytest.param(Gates(max_accuracy_drop=-100.5), "max accuracy drop is in percentage points", id="drop-under-minus-100"),
    pytest.param(Gates(min_agreement=-0.1), "min agreement is a fraction between 0 and 1, not -0.1",
                 id="negative-agreement"),
    pytest.param(Gates(min_agreement=1.5), "min agreement is a fraction between 0 and 1, not 1.5 (e.g. 0.97 for 97 %)",
                 id="agreement-over-1"),
    pytest.param(Gates(min_cosine=-1.5), "min cosine is between -1 and 1, not -1.5 (e.g. 0.99)", id="cosine-below-minus-1"),
    pytest.param(Gates(min_cosine=1.5), "min cosine is between -1 and 1, not 1.5", id="cosine-over-1"),
])
def test_limits_that_cannot_mean_anything_are_refused(gates, words):
    from edgeops.errors import UsageError

    with pytest.raises(UsageError, match=f"^{re.escape(words)}"):
        gates.check()


def test_given_lists_the_gates_that_are_on():
    assert Gates(min_cosine=0.99, max_p95_ms=5).given() == {"min_cosine": 0.99, "max_p95_ms": 5}
    assert Gates().given() == {}


@pytest.mark.parametrize("gates", [
    pytest.param(Gates(min_agreement=0, min_cosine=-1, max_accuracy_drop=-100, max_p95_ms=1e-9), id="low-ends"),
    pytest.param(Gates(min_agreement=1, min_cosine=1, max_accuracy_drop=100), id="high-ends"),
])
def test_limits_at_the_ends_of_their_range_are_accepted(gates):
    gates.check()


# --- end to end: a candidate that outputs NaN -----------------------------------------------------

@pytest.fixture
def nan_pair(make_onnx):
    """A reference ``y = x`` ([N, 4]) and a candidate ``y = (x - x) / (x - x)``, NaN for every value."""
    from onnx import TensorProto as T
    from onnx import helper

    io = ([("x", T.FLOAT, ["N", 4])], [("y", T.FLOAT, ["N", 4])])
    ref = make_onnx([helper.make_node("Identity", ["x"], ["y"])], *io, name="reference")
    cand = make_onnx([helper.make_node("Sub", ["x", "x"], ["zero"]), helper.make_node("Div", ["zero", "zero"], ["y"])],
                     *io, name="nan_candidate")
    return ref, cand


@pytest.fixture
def scores():
    return np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)


def test_a_candidate_that_outputs_nan_fails_every_parity_gate(nan_pair, scores):
    report = validate(*nan_pair, {"x": scores}, labels=scores.argmax(axis=1), latency=False,
                      gates=Gates(max_accuracy_drop=1.0, min_agreement=0.5, min_cosine=-1.0))
    m = report.outputs["y"]
    assert m["nonfinite"] == 80 and math.isnan(m["cosine"]) and math.isnan(m["max_abs_error"])
    assert not report.passed
    assert [f.split(" ")[0] for f in report.failures] == ["accuracy", "top-1", "cosine"]
    assert report.failures[2].startswith("cosine similarity nan on 'y' < -1 required")  # even the loosest limit


def test_validate_min_cosine_exits_1_on_a_candidate_that_outputs_nan(nan_pair, scores, tmp_path):
    data = tmp_path / "x.npz"
    np.savez(data, x=scores)
    ref, cand = nan_pair
    proc = subprocess.run([sys.executable, "-m", "edgeops", "validate", str(ref), str(cand), "--data", str(data),
                           "--min-cosine", "0.9", "--no-latency", "--no-diagnose", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is False and report["outputs"]["y"]["cosine"] is None  # NaN is written as null
    assert report["failures"] == ["cosine similarity nan on 'y' < 0.9 required (worst sample nan); "
                                  "the candidate gave 80 NaN/inf value(s)"]
    assert proc.stderr.startswith("error: validation failed: cosine similarity nan")
