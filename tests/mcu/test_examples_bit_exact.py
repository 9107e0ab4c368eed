"""The example models, converted to int8 and compiled to C, give exactly TFLite Micro's int8 outputs on
the held-out digits, whatever the arena held before; a float-I/O int8 model is compiled with its
QUANTIZE/DEQUANTIZE left to the caller and still matches TFLite Micro's float outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnx")
pytest.importorskip("tflite_micro")

from harness import ROOT, assert_close_to_litert, compile_model, tflm_run  # noqa: E402

MODELS = ROOT / "examples" / "models"
SAMPLES = 40


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite Micro's AffineQuantize: round(x / scale) in float32, plus the zero point, clamped."""
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)).astype(np.int64) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def int8_model(name: str, tmp_path_factory) -> bytes:
    from edgeops.convert import convert

    out = tmp_path_factory.mktemp(name) / f"{name}.tflite"
    convert(MODELS / f"{name}.onnx", out, target="cortex-m", quantize="int8",
            calibration=str(MODELS / f"{name}_calib.npz"), int8_io=True, profile=False)
    return out.read_bytes()


def held_out(name: str) -> np.ndarray:
    """The held-out digits as the model takes them (key ``pixels`` for the MLP, ``image`` otherwise)."""
    return np.load(MODELS / f"{name}_test.npz")["pixels" if "mlp" in name else "image"]


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn", "digits_mobilenet"])
def test_example_model_is_bit_exact_with_tflite_micro(name, tmp_path, tmp_path_factory, kernels):
    from edgeops.convert.codegen.model import read_graph

    data = int8_model(name, tmp_path_factory)
    compiled, result = compile_model(data, tmp_path, objects=kernels)
    g = read_graph(data)
    scale, zp = g.tensors[g.inputs[0]].q
    x = held_out(name)[:SAMPLES]
    agree = 0
    for i, sample in enumerate(x):
        q = quantize(sample, scale, zp)
        ours = compiled(q, fill=0x00 if i % 2 else 0xFF)[0]
        tflm = tflm_run(data, [q])
        theirs = np.asarray(tflm[0]).ravel()
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} sample {i}")
        assert_close_to_litert(tflm, data, [q])
        agree += int(np.argmax(ours) == np.argmax(theirs))
    assert agree == len(x)
    assert result.arena_bytes > 0


def test_float_io_int8_model_leaves_quantize_and_dequantize_to_the_caller(tmp_path, kernels):
    data = (MODELS / "digits_cnn_int8.tflite").read_bytes()
    compiled, result = compile_model(data, tmp_path, objects=kernels)
    assert any("QUANTIZE is left to the caller" in n for n in result.notes)
    header = Path(result.h_path).read_text()
    assert "DEQUANTIZE is left to the caller" in header
    from edgeops.convert.codegen.model import read_graph

    g = read_graph(data)
    (si, zi), (so, zo) = g.tensors[g.inputs[0]].q, g.tensors[g.outputs[0]].q
    for sample in held_out("digits_cnn")[:SAMPLES]:
        ours = compiled(quantize(sample, si, zi))[0]
        theirs = np.asarray(tflm_run(data, [sample[None]])[0]).ravel()  # float in, float out
        np.testing.assert_allclose(np.float32(so) * (ours.astype(np.float32) - zo), theirs, rtol=0, atol=1e-6)
