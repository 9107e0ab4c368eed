"""``edgeops convert --format tflite|c``: the TFLite path end to end through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

import edgeops  # noqa: E402
from edgeops.errors import UnsupportedOpsError, UsageError  # noqa: E402


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeops", "convert", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name, key", [("digits_cnn", "image"), ("digits_mlp", "pixels")])
def test_fp32_tflite_is_a_drop_in_for_the_onnx_model(tmp_path, examples, name, key):
    out = tmp_path / f"{name}.tflite"
    report = edgeops.convert(examples / f"{name}.onnx", out, quantize="none")
    assert report.format == "tflite" and report.size_after == out.stat().st_size
    ref, got = edgeops.load(examples / f"{name}.onnx"), edgeops.load(out)
    assert [(s.name, s.dtype) for s in got.inputs] == [(s.name, s.dtype) for s in ref.inputs]
    assert got.inputs[0].shape[1:] == ref.inputs[0].shape[1:]
    x = np.load(examples / f"{name}_test.npz")[key][:5]
    for i in range(5):
        want = ref.run(x[i:i + 1])["probabilities"]
        have = got.run(x[i:i + 1])["probabilities"]
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6)


def test_cli_json_report_for_tflite(tmp_path, examples):
    out = tmp_path / "m.tflite"
    proc = cli(examples / "digits_cnn.onnx", "-o", out, "--quantize", "none", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["format"] == "tflite" and d["ops_before"]["Conv"] == 2 and d["ops_after"]["CONV_2D"] == 2
    assert out.read_bytes()[4:8] == b"TFL3"


def test_unsupported_nodes_are_all_listed_and_nothing_is_written(tmp_path, make_onnx):
    from onnx import helper

    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Hardmax", ["a"], ["b"], name="hm1"),
             helper.make_node("Hardmax", ["b"], ["y"], name="hm2")]
    src = make_onnx(nodes, [("x", 1, [1, 4])], [("y", 1, [1, 4])], name="hardmax")
    out = tmp_path / "hardmax.tflite"
    with pytest.raises(UnsupportedOpsError) as err:
        edgeops.convert(src, out, quantize="none")
    assert [p[:2] for p in err.value.problems] == [("hm1", "Hardmax"), ("hm2", "Hardmax")]
    assert not out.exists()
    proc = cli(src, "-o", out, "--quantize", "none")
    assert proc.returncode == 2 and "hm1 [Hardmax]" in proc.stderr and "hm2 [Hardmax]" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_channels_last_io(tmp_path, examples):
    out = tmp_path / "nhwc.tflite"
    edgeops.convert(examples / "digits_cnn.onnx", out, quantize="none", channels_last=True)
    m = edgeops.load(out)
    assert m.inputs[0].shape[1:] == (8, 8, 1)
    x = np.load(examples / "digits_cnn_test.npz")["image"][:1]
    want = edgeops.load(examples / "digits_cnn.onnx").run(x)["probabilities"]
    np.testing.assert_allclose(m.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))["probabilities"], want,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    pytest.param({"output": "m.tflite", "exclude_nodes": ["conv1"]}, "TFLite output with --quantize int8",
                 id="exclude-nodes-not-int8"),
    pytest.param({"output": "m.tflite", "exclude_op_types": ["Conv"]}, "applies to ONNX", id="exclude-op-types"),
    pytest.param({"output": "m.onnx", "channels_last": True}, "apply to --format tflite", id="channels-last-onnx"),
    pytest.param({"output": "m.tflite", "int8_io": True, "quantize": "dynamic"}, "needs --quantize int8", id="int8-io"),
    pytest.param({"output": "m.c", "quantize": "dynamic", "target": "cortex-m"}, "int8", id="cortex-m-dynamic"),
    pytest.param({"output": "m.h", "format": "c", "quantize": "int8", "target": "cortex-m"}, "NAME.c", id="c-needs-dot-c"),
    pytest.param({"output": "m.tflite", "target": "jetson-orin"}, "takes onnx", id="jetson-tflite"),
])
def test_impossible_tflite_requests_fail_before_any_output(tmp_path, examples, kwargs, words):
    kwargs = dict(kwargs)
    out = tmp_path / kwargs.pop("output")
    kwargs.setdefault("quantize", "none")
    with pytest.raises(UsageError, match=words):
        edgeops.convert(examples / "digits_cnn.onnx", out, **kwargs)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("mode", ["int8", "dynamic", "fp16", "none"])
def test_converting_to_tflite_keeps_litert_quiet_on_stderr(tmp_path, mode):
    """Regression: LiteRT's C++ 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.' reached stderr
    from ai-edge-quantizer's calibration and the XNNPACK plan, which redirected only Python's sys.stderr."""
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / "examples" / "models"
    args = ["--quantize", mode] + (["--calibration", str(models / "digits_cnn_calib.npz")] if mode == "int8" else [])
    proc = subprocess.run([sys.executable, "-m", "edgeops", "convert", str(models / "digits_cnn.onnx"),
                           "-o", str(tmp_path / "m.tflite"), *args, "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "XNNPACK" not in proc.stderr, proc.stderr
