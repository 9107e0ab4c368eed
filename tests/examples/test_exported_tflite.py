"""The .tflite files our exporter wrote (examples/digits/export_tflite.py) run in whichever TFLite
runtime this environment has (tflite-runtime 2.14 under numpy<2, LiteRT elsewhere) and agree with
the ONNX models in onnxruntime: fp32 within 1e-4, int8 within 1 accuracy point."""

from __future__ import annotations

import numpy as np
import pytest

import edgeops

from ..conftest import needs_ort, needs_tflite

pytestmark = [needs_ort, needs_tflite]


def predictions(model, x):
    key, out = model.inputs[0].name, model.outputs[0].name
    return np.concatenate([model.run({key: x[i:i + 1]})[out] for i in range(len(x))])


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mobilenet"])
def test_fp32_export_matches_onnxruntime(examples, name):
    x = np.load(examples / f"{name}_test.npz")["image"][:50]
    want = predictions(edgeops.load(examples / f"{name}.onnx"), x)
    model = edgeops.load(examples / f"{name}.tflite")
    assert model.backend in ("litert", "tflite-runtime")
    np.testing.assert_allclose(predictions(model, x), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mobilenet"])
def test_int8_export_keeps_accuracy(examples, name):
    x = np.load(examples / f"{name}_test.npz")["image"]
    labels = np.load(examples / "digits_test_labels.npy")
    ref = np.mean(predictions(edgeops.load(examples / f"{name}.onnx"), x).argmax(1) == labels)
    int8 = edgeops.load(examples / f"{name}_int8.tflite")
    assert int8.inputs[0].dtype == np.float32  # float I/O: a drop-in for the ONNX model
    acc = np.mean(predictions(int8, x).argmax(1) == labels)
    assert ref - acc <= 0.01, f"{name}: {ref:.4f} -> {acc:.4f}"
