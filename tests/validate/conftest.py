"""Candidates made here from the committed digits models with onnxruntime.quantization, and a broken one.

Built once per session in a temporary folder: a static int8 QDQ CNN (calibrated on
``digits_cnn_calib.npz``), a dynamic int8 MLP, and a CNN with half of ``conv2``'s
output channels zeroed, which no gate should let through.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


class NpzReader:
    """onnxruntime's CalibrationDataReader protocol over one array: one sample per call."""

    def __init__(self, name: str, samples: np.ndarray):
        self._it = iter([{name: samples[i:i + 1]} for i in range(len(samples))])

    def get_next(self):
        return next(self._it, None)


@pytest.fixture(scope="session")
def cnn_int8(examples, tmp_path_factory):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    out = tmp_path_factory.mktemp("cnn") / "digits_cnn_int8.onnx"
    calib = np.load(examples / "digits_cnn_calib.npz")["image"]
    quantize_static(str(examples / "digits_cnn.onnx"), str(out), NpzReader("image", calib),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


@pytest.fixture(scope="session")
def mlp_dynamic(examples, tmp_path_factory):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path_factory.mktemp("mlp") / "digits_mlp_dynamic.onnx"
    quantize_dynamic(str(examples / "digits_mlp.onnx"), str(out), weight_type=QuantType.QInt8)
    return out


@pytest.fixture(scope="session")
def cnn_broken(examples, tmp_path_factory):
    """The CNN with the first half of conv2's output channels zeroed."""
    from onnx import numpy_helper

    model = onnx.load(str(examples / "digits_cnn.onnx"))
    for init in model.graph.initializer:
        if init.name == "conv2.weight":
            w = numpy_helper.to_array(init).copy()
            w[: w.shape[0] // 2] = 0
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    out = tmp_path_factory.mktemp("broken") / "digits_cnn_broken.onnx"
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="session")
def cnn_paths(examples):
    return {"model": examples / "digits_cnn.onnx", "data": examples / "digits_cnn_test.npz",
            "labels": examples / "digits_test_labels.npy"}
