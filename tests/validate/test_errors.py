"""Data and options that do not fit are one clear edgeops error, never a traceback."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeops.errors import DataError, UsageError
from edgeops.validate import Gates, validate


def test_labels_count_mismatch_is_a_data_error(examples, digits):
    with pytest.raises(DataError, match="360 samples but there are 359 labels"):
        validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz",
                 labels=digits["labels"][:-1], latency=False)


@pytest.mark.parametrize("data, labels, words", [
    pytest.param({"wrong": np.zeros((4, 64), np.float32), "other": np.zeros((4, 64), np.float32)}, None,
                 "no array for reference input(s) 'pixels'", id="missing-input"),
    pytest.param({"pixels": np.zeros((4, 64), np.float32)}, np.array([0, 1, 2, 12]),
                 "labels run from 0 to 12, but output 'probabilities' scores 10 classes", id="label-out-of-range"),
    pytest.param({"pixels": np.zeros((4, 64), np.float32)}, np.array([0.5, 1, 2, 3]),
                 "not class indices", id="fractional-class-labels"),
    pytest.param({"pixels": np.zeros((4, 8, 8), np.float32)}, None, "does not fit data of shape", id="wrong-rank"),
    pytest.param("missing.npz", None, "not found", id="missing-file"),
])
def test_data_that_does_not_fit(examples, data, labels, words):
    with pytest.raises(DataError, match=re.escape(words)):
        validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", data, labels=labels,
                 task="classification", latency=False)


@pytest.mark.parametrize("kwargs, words", [
    pytest.param({"gates": Gates(min_agreement=97)}, "fraction between 0 and 1", id="agreement-in-percent"),
    pytest.param({"gates": Gates(min_cosine=2)}, "between -1 and 1", id="cosine-out-of-range"),
    pytest.param({"task": "pose"}, "task must be one of", id="unknown-task"),  # not segmentation: that one is coming
    pytest.param({"max_samples": 0}, "max_samples must be a positive integer", id="no-samples"),
    pytest.param({"gates": Gates(max_accuracy_drop=1)}, "needs labels", id="accuracy-gate-without-labels"),
    pytest.param({"gates": Gates(max_p95_ms=5), "latency": False}, "needs the latency run", id="p95-without-latency"),
])
def test_bad_options_are_usage_errors(examples, kwargs, words):
    with pytest.raises(UsageError, match=words):
        validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz",
                 **{"latency": False, **kwargs})


def test_agreement_gate_on_a_model_without_class_scores_is_a_usage_error(make_onnx):
    from onnx import TensorProto as T
    from onnx import helper

    model = make_onnx([helper.make_node("Identity", ["x"], ["y"])], [("x", T.FLOAT, ["N", 1])],
                      [("y", T.FLOAT, ["N", 1])], name="identity")
    with pytest.raises(UsageError, match="agreement gate needs an output of class scores"):
        validate(model, model, {"x": np.ones((5, 1), np.float32)}, gates=Gates(min_agreement=0.9), latency=False)
