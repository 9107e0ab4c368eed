"""The small zoo models whose ops the kernels cover (the 1-D keyword spotter, the digits CNN and MLP
from torch, the tf2onnx- and paddle2onnx-style CNNs), converted to int8 and compiled to C, give exactly
TFLite Micro's outputs. About 15 s for the five (building them imports torch; $EDGEOPS_ZOO_DIR caches them
as in tests/zoo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

for _module in ("onnx", "onnxruntime", "ai_edge_litert", "ai_edge_quantizer", "torch", "tflite_micro"):
    pytest.importorskip(_module)

from harness import assert_close_to_litert, compile_model, tflm_run  # noqa: E402

ZOO = ["kws_dscnn1d", "digits_cnn", "digits_mlp_torch", "tf2onnx_cnn", "paddle_mobilenet"]


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory) -> Path:
    return Path(os.environ["EDGEOPS_ZOO_DIR"]) if os.environ.get("EDGEOPS_ZOO_DIR") \
        else tmp_path_factory.mktemp("zoo")


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_is_bit_exact_with_tflite_micro(name, zoo_root, tmp_path, kernels):
    from benchmarks.zoo import build as zb
    from edgeops.convert import convert

    entry = next(e for e in zb.entries() if e.name == name)
    folder = zb.build(entry, zoo_root)
    tfl = tmp_path / "model.tflite"
    convert(folder / "model.onnx", tfl, target="cortex-m", quantize="int8", calibration=str(folder / "calib.npz"),
            int8_io=True, profile=False)
    data = tfl.read_bytes()
    compiled, _ = compile_model(data, tmp_path, objects=kernels)
    rng = np.random.default_rng(0)
    for i in range(8):
        xs = [rng.integers(-128, 128, size=n).astype(np.int8) for n in compiled.in_sizes]
        tflm = tflm_run(data, xs)
        for ours, theirs in zip(compiled(*xs, fill=0xFF * (i % 2)), tflm):
            np.testing.assert_array_equal(ours, np.asarray(theirs).ravel(), err_msg=f"{name} sample {i}")
        assert_close_to_litert(tflm, data, xs)
