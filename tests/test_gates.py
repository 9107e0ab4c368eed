"""The one gate rule (edgeops._gates): pass only on a finite number within the limit; the bench gates follow it.

Regression guard: ``edgeops bench`` wrote its gates as ``value > limit`` (fail when above),
so a NaN p95 or mean (a benchmark that measured nothing) passed ``--max-p95-ms``.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from edgeops._gates import at_least, at_most, bench_failures, finite, shown

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("value, expected", [
    pytest.param(0, True, id="zero"),
    pytest.param(-2.5, True, id="negative"),
    pytest.param(np.float32(1.5), True, id="numpy-float32"),
    pytest.param(np.int64(3), True, id="numpy-int"),
    pytest.param(Decimal("1.5"), True, id="decimal"),
    pytest.param(NAN, False, id="nan"),
    pytest.param(np.float32("nan"), False, id="numpy-nan"),
    pytest.param(INF, False, id="inf"),
    pytest.param(-INF, False, id="minus-inf"),
    pytest.param(None, False, id="none"),
    pytest.param(True, False, id="bool"),
    pytest.param("1", False, id="text"),
])
def test_finite_means_a_real_number_that_is_not_nan_or_infinite(value, expected):
    assert finite(value) is expected


@pytest.mark.parametrize("check, value, limit, expected", [
    pytest.param(at_most, 1.0, 1.0, True, id="at-most-at-the-limit"),
    pytest.param(at_most, 0.5, 1.0, True, id="at-most-below"),
    pytest.param(at_most, 1.5, 1.0, False, id="at-most-above"),
    pytest.param(at_most, NAN, 1.0, False, id="at-most-nan"),
    pytest.param(at_most, -INF, 1.0, False, id="at-most-minus-inf"),
    pytest.param(at_most, None, 1.0, False, id="at-most-none"),
    pytest.param(at_least, 1.0, 1.0, True, id="at-least-at-the-limit"),
    pytest.param(at_least, 1.5, 1.0, True, id="at-least-above"),
    pytest.param(at_least, 0.5, 1.0, False, id="at-least-below"),
    pytest.param(at_least, NAN, 1.0, False, id="at-least-nan"),
    pytest.param(at_least, INF, 1.0, False, id="at-least-inf"),
    pytest.param(at_least, None, 1.0, False, id="at-least-none"),
])
def test_a_value_passes_only_if_finite_and_within_the_limit(check, value, limit, expected):
    assert check(value, limit) is expected


@pytest.mark.parametrize("value, text", [(0.12345, "0.123"), (2, "2.000"), (NAN, "nan"), (-INF, "-inf"),
                                         (None, "None")], ids=["number", "integer", "nan", "minus-inf", "none"])
def test_failure_lines_show_what_is_not_a_number_as_it_is(value, text):
    assert shown(value, 3) == text


def row(p95=1.0, mean=1.0, rss=50.0, model="m.onnx"):
    return {"model": model, "latency_ms": {"p95": p95, "mean": mean}, "peak_rss_mb": rss}


GATES = {"max_p95_ms": 5.0, "max_mean_ms": 4.0, "max_rss_mb": 100.0}


def test_bench_rows_within_every_gate_pass():
    assert bench_failures([row(p95=5.0, mean=4.0, rss=100.0)], **GATES) == []


@pytest.mark.parametrize("field, value, line", [
    pytest.param("p95", 5.5, "m.onnx: p95 5.500 ms > 5 ms", id="p95-above"),
    pytest.param("mean", 4.25, "m.onnx: mean 4.250 ms > 4 ms", id="mean-above"),
    pytest.param("rss", 100.25, "m.onnx: peak RSS 100.2 MB > 100 MB", id="rss-above"),
    pytest.param("p95", NAN, "m.onnx: p95 is nan (not measured), so it cannot be shown to be <= 5 ms", id="p95-nan"),
    pytest.param("mean", NAN, "m.onnx: mean is nan (not measured), so it cannot be shown to be <= 4 ms",
                 id="mean-nan"),
    pytest.param("rss", NAN, "m.onnx: peak RSS is nan (not measured), so it cannot be shown to be <= 100 MB",
                 id="rss-nan"),
    pytest.param("p95", INF, "m.onnx: p95 is inf (not measured), so it cannot be shown to be <= 5 ms", id="p95-inf"),
    pytest.param("rss", None, "m.onnx: peak RSS is None (not measured), so it cannot be shown to be <= 100 MB",
                 id="rss-unmeasured"),
])
def test_each_bench_gate_fails_above_its_limit_and_on_a_value_that_is_not_a_number(field, value, line):
    assert bench_failures([row(**{field: value})], **GATES) == [line]


def test_bench_gates_that_are_off_check_nothing():
    assert bench_failures([row(p95=NAN, mean=NAN, rss=None)]) == []


def test_bench_gates_report_every_model_and_every_gate_missed():
    rows = [row(model="a.onnx"), row(p95=9.0, mean=NAN, model="b.onnx")]
    assert bench_failures(rows, **GATES) == [
        "b.onnx: p95 9.000 ms > 5 ms",
        "b.onnx: mean is nan (not measured), so it cannot be shown to be <= 4 ms",
    ]
