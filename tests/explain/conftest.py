"""Tiny ONNX models whose explanations are known: which features and pixels they read, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_ort

pytestmark = needs_ort

FEATURES = 6
SAMPLES = 200


def linear_classifier(make_onnx, weights: np.ndarray, name: str, shape: list, bias: float = 0.0):
    """probabilities = softmax([z, -z]) with z = flatten(x) @ weights + bias, over input x of ``shape``."""
    from onnx import TensorProto as T
    from onnx import helper

    w = np.stack([weights, -weights], axis=1).astype(np.float32)
    b = np.array([bias, -bias], np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    return make_onnx(nodes, [("x", T.FLOAT, shape)], [("probabilities", T.FLOAT, [shape[0], 2])],
                     [("w", w), ("b", b)], name=name)


@pytest.fixture(scope="module")
def table():
    """200 samples of 6 uniform features; the label is whether feature 3 is above 0.5."""
    rng = np.random.default_rng(7)
    x = rng.random((SAMPLES, FEATURES)).astype(np.float32)
    return x, (x[:, 3] <= 0.5).astype(np.int64)


@pytest.fixture
def feature3(make_onnx):
    """A classifier that reads feature 3 only (class 0 when it is above 0.5)."""
    w = np.zeros(FEATURES, np.float32)
    w[3] = 8.0
    return linear_classifier(make_onnx, w, "feature3", ["N", FEATURES], bias=-4.0)


@pytest.fixture
def data_files(tmp_path, table):
    x, y = table
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy"


@pytest.fixture
def quadrant(make_onnx, tmp_path):
    """An 8x8 one-channel image classifier that reads the top-left 4x4 quadrant only; 40 random images."""
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, :4, :4] = 1.0
    model = linear_classifier(make_onnx, mask.ravel() * 0.5, "quadrant", ["N", 1, 8, 8], bias=-4.0)
    images = np.random.default_rng(3).random((40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "images.npz", x=images)
    return model, tmp_path / "images.npz"


@pytest.fixture
def duplicate_pair(make_onnx, tmp_path):
    """Feature 5 carries a copy of feature 0. The reference reads both; the candidate has input 0 zeroed and
    reads its copy twice as hard, so both give the same outputs on this data (the accuracy gate cannot tell
    them apart) while what they look at has moved."""
    rng = np.random.default_rng(11)
    x = rng.random((300, FEATURES)).astype(np.float32)
    x[:, 5] = x[:, 0]
    ref_w = np.array([3.0, 2.5, 2.0, 1.5, 1.0, 3.0], np.float32)
    cand_w = ref_w.copy()
    cand_w[5] += cand_w[0]
    cand_w[0] = 0.0
    bias = -float(ref_w.sum()) / 2
    ref = linear_classifier(make_onnx, ref_w, "reference", ["N", FEATURES], bias=bias)
    cand = linear_classifier(make_onnx, cand_w, "candidate", ["N", FEATURES], bias=bias)
    logits = x @ ref_w + bias
    y = (logits <= 0).astype(np.int64)
    np.save(tmp_path / "dup.npy", x)
    np.save(tmp_path / "dup_labels.npy", y)
    return ref, cand, tmp_path / "dup.npy", tmp_path / "dup_labels.npy"
