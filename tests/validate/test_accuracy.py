"""Accuracy on labels: intervals, label forms, and regression mode on a small regression model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.validate import validate
from edgeops.validate.metrics import bootstrap_mean_ci, paired_bootstrap_drop, wilson


@pytest.mark.parametrize("k, n, expected", [
    pytest.param(0, 10, (0.0, 0.2775), id="none-right"),
    pytest.param(10, 10, (0.7225, 1.0), id="all-right"),
    pytest.param(50, 100, (0.4038, 0.5962), id="half"),
])
def test_wilson_interval(k, n, expected):
    assert wilson(k, n) == pytest.approx(expected, abs=1e-4)


def test_paired_bootstrap_is_fixed_and_matches_resampling_indices():
    rng = np.random.default_rng(1)
    ref = rng.random(400) < 0.95
    cand = ref & (rng.random(400) < 0.97)  # the candidate loses about 3 % of the right answers
    lo, hi = paired_bootstrap_drop(ref, cand)
    assert (lo, hi) == paired_bootstrap_drop(ref, cand)  # fixed seed
    drop = (ref.mean() - cand.mean()) * 100
    assert lo < drop < hi
    d = (ref.astype(float) - cand.astype(float)) * 100
    naive = bootstrap_mean_ci(d)  # resampling indices gives the same interval, up to resampling noise
    assert lo == pytest.approx(naive[0], abs=0.5) and hi == pytest.approx(naive[1], abs=0.5)


@pytest.mark.parametrize("form", ["indices", "one-hot", "float-indices"])
def test_class_labels_in_any_common_form(examples, digits, form):
    y = digits["labels"]
    labels = {"indices": y, "one-hot": np.eye(10, dtype=np.float32)[y], "float-indices": y.astype(np.float32)}[form]
    task = "classification" if form == "float-indices" else "auto"  # float labels read as targets unless told
    report = validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz",
                      labels=labels, task=task, latency=False)
    assert report.accuracy["task"] == "classification"
    assert report.accuracy["reference"] == pytest.approx(0.9694, abs=1e-4)


@pytest.fixture
def regression_pair(make_onnx):
    """y = x @ w + b ([N, 4] -> [N, 1]) and a candidate with slightly different weights."""
    from onnx import TensorProto as T
    from onnx import helper

    w = np.array([[0.5], [-1.0], [2.0], [0.25]], np.float32)

    def model(weights, name):
        return make_onnx([helper.make_node("Gemm", ["x", "w", "b"], ["y"])],
                         [("x", T.FLOAT, ["N", 4])], [("y", T.FLOAT, ["N", 1])],
                         [("w", weights), ("b", np.array([0.1], np.float32))], name=name)

    return model(w, "reference"), model(w * 1.05, "candidate")


def test_regression_mode_reports_mae_and_its_difference(regression_pair):
    ref, cand = regression_pair
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    truth = x @ np.array([0.5, -1.0, 2.0, 0.25]) + 0.1
    target = (truth + rng.normal(scale=0.1, size=300))[:, None]  # float labels: regression
    report = validate(ref, cand, {"x": x}, labels=target, latency=False)
    acc = report.accuracy
    assert acc["task"] == "regression" and acc["metric"] == "mae" and acc["output"] == "y"
    expected_ref = np.abs(truth[:, None] - target).mean()
    assert acc["reference"] == pytest.approx(expected_ref, rel=1e-4)
    assert acc["candidate"] > acc["reference"]
    assert acc["difference"] == pytest.approx(acc["candidate"] - acc["reference"])
    lo, hi = acc["ci95"]
    assert lo < acc["difference"] < hi
    assert acc["drop_points"] is None and report.outputs["y"]["top1_agreement"] is None
