"""Parity of two models on the same samples: identical models, the TFLite twin, renamed tensors, batching."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.validate import Gates, validate
from tests.conftest import needs_tflite

SENSIBLE = Gates(max_accuracy_drop=1.0, min_agreement=0.97, min_cosine=0.99)


@pytest.mark.parametrize("model, data", [
    pytest.param("digits_mlp.onnx", "digits_mlp_test.npz", id="mlp"),
    pytest.param("digits_cnn.onnx", "digits_cnn_test.npz", id="cnn"),
])
def test_identical_models_give_zero_error_and_full_agreement(examples, model, data):
    report = validate(examples / model, examples / model, examples / data,
                      labels=examples / "digits_test_labels.npy", gates=SENSIBLE, latency=False)
    m = report.outputs["probabilities"]
    assert report.passed and report.failures == []
    assert report.samples == 360
    assert m["max_abs_error"] == 0 and m["mean_abs_error"] == 0 and m["max_rel_error"] == 0
    assert m["cosine"] == pytest.approx(1.0) and m["min_cosine"] == pytest.approx(1.0)
    assert m["top1_agreement"] == 1.0
    acc = report.accuracy
    assert acc["drop_points"] == 0 and acc["ci95"] == [0.0, 0.0]
    assert acc["reference"] == acc["candidate"] > 0.95
    assert report.divergence is None


@needs_tflite
def test_onnx_and_its_tflite_twin_validate(examples):
    report = validate(examples / "digits_mlp.onnx", examples / "digits_mlp.tflite", examples / "digits_mlp_test.npz",
                      labels=examples / "digits_test_labels.npy", gates=SENSIBLE, latency=False)
    m = report.outputs["probabilities"]
    assert report.passed
    assert m["max_abs_error"] < 1e-5 and m["top1_agreement"] == 1.0
    assert report.accuracy["drop_points"] == 0


def _renamed_mlp(examples, tmp_path, *, batch=None):
    """The MLP with its input called ``x`` and its output ``scores``; optionally a fixed batch size."""
    import onnx

    model = onnx.load(str(examples / "digits_mlp.onnx"))
    g = model.graph
    for node in g.node:
        node.input[:] = ["x" if n == "pixels" else n for n in node.input]
        node.output[:] = ["scores" if n == "probabilities" else n for n in node.output]
    g.input[0].name, g.output[0].name = "x", "scores"
    if batch is not None:
        for vi in (g.input[0], g.output[0]):
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    path = tmp_path / f"renamed_{batch}.onnx"
    onnx.save(model, str(path))
    return path


def test_inputs_and_outputs_with_other_names_are_matched_by_position(examples, tmp_path):
    report = validate(examples / "digits_mlp.onnx", _renamed_mlp(examples, tmp_path), examples / "digits_mlp_test.npz",
                      latency=False)
    assert report.outputs["probabilities"]["candidate_output"] == "scores"
    assert report.outputs["probabilities"]["max_abs_error"] == 0
    assert any("by position" in n and "x <- pixels" in n for n in report.notes)
    assert any("probabilities <-> scores" in n for n in report.notes)


@pytest.mark.parametrize("batch, samples", [
    pytest.param(1, 360, id="fixed-batch-1"),
    pytest.param(8, 50, id="fixed-batch-8-padded"),
])
def test_a_fixed_batch_model_is_fed_in_its_batch_size(examples, tmp_path, batch, samples):
    candidate = _renamed_mlp(examples, tmp_path, batch=batch)
    report = validate(examples / "digits_mlp.onnx", candidate, examples / "digits_mlp_test.npz", latency=False,
                      max_samples=samples)
    assert report.samples == samples
    assert report.outputs["probabilities"]["max_abs_error"] < 1e-6


def test_data_given_as_arrays_and_max_samples(examples, digits):
    report = validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", {"pixels": digits["pixels"]},
                      labels=digits["labels"], latency=False, max_samples=50)
    assert report.samples == 50
    assert report.accuracy["reference"] == pytest.approx(
        np.mean(np.argmax(_probs(examples, digits["pixels"][:50]), 1) == digits["labels"][:50]))


def _probs(examples, x):
    import edgeops

    return edgeops.load(examples / "digits_mlp.onnx").run(x)["probabilities"]


def test_loaded_models_are_accepted(examples):
    import edgeops

    ref = edgeops.load(examples / "digits_cnn.onnx")
    report = validate(ref, ref, examples / "digits_cnn_test.npz", latency=False)
    assert report.reference.endswith("digits_cnn.onnx") and report.outputs["probabilities"]["max_abs_error"] == 0


def test_latency_of_both_models_is_measured_and_gated(examples):
    report = validate(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz",
                      gates=Gates(max_p95_ms=1e-6), bench_runs=20, threads=1, diagnose=False)
    lat = report.latency
    for role in ("reference", "candidate"):
        assert 0 < lat[role]["p50"] <= lat[role]["p95"]
        assert lat[role]["mean"] > 0 and lat[role]["peak_rss_mb"] > 0
    assert lat["p50_ratio"] > 0
    assert not report.passed
    assert len(report.failures) == 1 and report.failures[0].startswith("candidate p95 latency")


def test_a_model_without_batch_axis_gets_one_sample_at_a_time(make_onnx):
    from onnx import TensorProto as T
    from onnx import helper

    model = make_onnx([helper.make_node("Softmax", ["x"], ["y"], axis=0)], [("x", T.FLOAT, [4])],
                      [("y", T.FLOAT, [4])], name="no_batch")
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    report = validate(model, model, {"x": x}, labels=x.argmax(axis=1), latency=False)
    assert report.samples == 10
    assert report.outputs["y"]["shape"] == [None, 4] and report.outputs["y"]["top1_agreement"] == 1.0
    assert report.accuracy["reference"] == 1.0
