"""The example models export to TFLite and agree with onnxruntime (the issue's 1e-4 bar)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import assert_parity, onnx


@pytest.mark.parametrize("name, key", [("digits_mlp", "pixels"), ("digits_cnn", "image")])
def test_digits_models_match_onnxruntime(examples, name, key):
    model = onnx.load(examples / f"{name}.onnx")
    x = np.load(examples / f"{name}_test.npz")[key][:1].astype(np.float32)
    exported = assert_parity(model, {key: x}, rtol=1e-4, atol=1e-6)
    assert exported.inputs[0] == (key, x.shape)  # drop-in: same name, shape and layout
    assert exported.outputs[0][0] == "probabilities"


def test_a_conv_chain_carries_no_transposes_between_convs(examples):
    exported = assert_parity(onnx.load(examples / "digits_cnn.onnx"),
                             {"image": np.load(examples / "digits_cnn_test.npz")["image"][:1]})
    # the 1-channel input needs only a RESHAPE, and the NHWC -> NCHW transpose before Flatten is
    # folded into the classifier's weights
    assert "TRANSPOSE" not in exported.ops and exported.ops["CONV_2D"] == 2


def test_the_committed_fp32_export_is_what_the_exporter_writes_today(examples):
    """examples/models/digits_cnn.tflite is what the device-side tests run in tflite-runtime; keep it current."""
    from edgeops.convert.tflite import export

    fresh = export(onnx.load(examples / "digits_cnn.onnx")).data
    assert fresh == (examples / "digits_cnn.tflite").read_bytes(), "re-run python examples/digits/export_tflite.py"
