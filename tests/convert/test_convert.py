"""edgeops.convert: quantize for a target, keep accuracy, shrink, never leave an invalid or unwanted file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edgeops  # noqa: E402
import edgeops.convert  # noqa: E402
from edgeops.errors import DataError, UsageError  # noqa: E402


def accuracy(path, x, labels):
    return float(np.mean(edgeops.load(path).run(x)["probabilities"].argmax(1) == labels))


CASES = [
    # model, data key, mode, calibration, min size ratio
    pytest.param("digits_cnn", "image", "int8", True, 2.5, id="cnn-int8"),
    pytest.param("digits_mlp", "pixels", "int8", True, 2.5, id="mlp-int8"),
    pytest.param("digits_mlp", "pixels", "dynamic", False, 2.5, id="mlp-dynamic"),
    pytest.param("digits_cnn", "image", "fp16", False, 1.5, id="cnn-fp16"),
    pytest.param("digits_cnn", "image", "none", False, 0.9, id="cnn-optimize-only"),
]


@pytest.mark.parametrize("name, key, mode, calibrate, min_ratio", CASES)
def test_converted_models_keep_accuracy_and_shrink(tmp_path, examples, digits, name, key, mode, calibrate, min_ratio):
    out = tmp_path / f"{name}_{mode}.onnx"
    report = edgeops.convert(examples / f"{name}.onnx", out, quantize=mode,
                             calibration=str(examples / f"{name}_calib.npz") if calibrate else None)
    d = report.to_dict()
    assert d["quantize"] == mode and out.is_file()
    assert d["size_after"] == out.stat().st_size
    assert d["size_ratio"] >= min_ratio
    before = accuracy(examples / f"{name}.onnx", digits[key], digits["labels"])
    after = accuracy(out, digits[key], digits["labels"])
    assert before - after <= 0.005, f"accuracy {before:.4f} -> {after:.4f}"
    if mode in ("int8", "dynamic"):
        assert d["nodes_quantized"] >= 2
        assert set(d["ops_after"]) - set(d["ops_before"])  # new quantization ops appear
    onnx.checker.check_model(str(out), full_check=True)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".edgeops-")]  # no temp files left


def test_static_int8_writes_a_reference_profile_that_guardrails_read(tmp_path, examples):
    out = tmp_path / "cnn8.onnx"
    report = edgeops.convert(examples / "digits_cnn.onnx", out, calibration=str(examples / "digits_cnn_calib.npz"))
    assert report.quantize == "int8"  # chosen because calibration data was given
    profile = json.loads((tmp_path / "cnn8.profile.json").read_text())
    assert profile["inputs"]["image"]["min"] >= 0 and profile["inputs"]["image"]["max"] <= 1
    model = edgeops.load(out, guardrails=tmp_path / "cnn8.profile.json")
    assert model.guardrails is not None


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibration_methods(tmp_path, examples, digits, method):
    out = tmp_path / "m.onnx"
    edgeops.convert(examples / "digits_cnn.onnx", out, quantize="int8", calibration_method=method,
                    calibration=str(examples / "digits_cnn_calib.npz"), profile=False)
    assert accuracy(out, digits["image"], digits["labels"]) > 0.95


def test_per_tensor_and_per_channel_weights(tmp_path, examples):
    sizes = {}
    for per_channel in (True, False):
        out = tmp_path / f"pc{per_channel}.onnx"
        edgeops.convert(examples / "digits_cnn.onnx", out, quantize="int8", per_channel=per_channel,
                        calibration=str(examples / "digits_cnn_calib.npz"), profile=False)
        scale = next(i for i in onnx.load(str(out)).graph.initializer if i.name == "conv2.weight/s")
        sizes[per_channel] = list(scale.dims)
    assert sizes == {True: [16], False: []}


def test_excluded_nodes_and_op_types_stay_float(tmp_path, examples):
    out = tmp_path / "ex.onnx"
    report = edgeops.convert(examples / "digits_cnn.onnx", out, quantize="int8", exclude_op_types=["Gemm"],
                             calibration=str(examples / "digits_cnn_calib.npz"), profile=False)
    model = onnx.load(str(out))
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert not any(i in produced_by_dq for i in gemm.input[1:])  # weights stay float
    assert report.op_types_excluded == ["Gemm"]


def conv_bn_model(path, opset):
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(4, np.float32) * 1.5, "gamma"),
             numpy_helper.from_array(np.full(4, 0.1, np.float32), "beta"),
             numpy_helper.from_array(np.zeros(4, np.float32), "mean"),
             numpy_helper.from_array(np.ones(4, np.float32), "var")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], name="bn"),
             helper.make_node("Relu", ["b"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, ["N", 1, 6, 6])],
                          [helper.make_tensor_value_info("y", T.FLOAT, ["N", 4, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    onnx.save(m, str(path))
    return path


def test_batchnorm_folds_and_an_opset_11_graph_is_upgraded_before_quantizing(tmp_path):
    src = conv_bn_model(tmp_path / "old.onnx", 11)
    x = np.random.default_rng(1).random((20, 1, 6, 6), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    out = tmp_path / "q.onnx"
    report = edgeops.convert(src, out, quantize="int8", calibration=str(tmp_path / "calib.npz"), profile=False)
    assert "opset 11 -> 13" in report.steps
    assert "BatchNormalization" in report.ops_before and "BatchNormalization" not in report.ops_after
    ref, got = edgeops.load(src).run(x)["y"], edgeops.load(out).run(x)["y"]
    assert np.abs(ref - got).max() < 0.05 * np.abs(ref).max()


def test_fixing_dynamic_dims(tmp_path, examples):
    out = tmp_path / "fixed.onnx"
    report = edgeops.convert(examples / "digits_mlp.onnx", out, quantize="none", input_shapes={"pixels": (4, 64)})
    assert edgeops.load(out).inputs[0].shape == (4, 64)
    assert any("pixels fixed to [4, 64]" in s for s in report.steps)
    with pytest.raises(UsageError, match="rank 2, not 3"):
        edgeops.convert(examples / "digits_mlp.onnx", tmp_path / "x.onnx", input_shapes={"pixels": (1, 8, 8)})
    with pytest.raises(UsageError, match="does not have"):
        edgeops.convert(examples / "digits_mlp.onnx", tmp_path / "x.onnx", input_shapes={"image": (1, 64)})


@pytest.mark.parametrize("kwargs, error, words", [
    pytest.param({"target": "cortex-m"}, UsageError, "takes tflite, c models", id="cortex-m-onnx"),
    pytest.param({"target": "jetson-nano", "quantize": "int8"}, UsageError, "does not take int8", id="nano-int8"),
    pytest.param({"quantize": "int8"}, UsageError, "needs --calibration", id="int8-without-data"),
    pytest.param({"quantize": "fp16", "calibration": "c.npz"}, UsageError, "int8 only", id="calibration-unused"),
    pytest.param({"target": "pi9"}, UsageError, "unknown target", id="unknown-target"),
    pytest.param({"exclude_nodes": ["nope"]}, UsageError, "does not have", id="unknown-node"),
    pytest.param({"quantize": "int8", "calibration": "missing.npz"}, DataError, "not found", id="missing-calibration"),
])
def test_impossible_requests_fail_before_any_output(tmp_path, examples, kwargs, error, words):
    out = tmp_path / "out.onnx"
    with pytest.raises(error, match=words):
        edgeops.convert(examples / "digits_cnn.onnx", out, **kwargs)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_calibration_data_of_the_wrong_shape(tmp_path, examples):
    np.savez(tmp_path / "bad.npz", image=np.zeros((10, 1, 6, 6), np.float32))
    with pytest.raises(DataError, match="samples of shape"):
        edgeops.convert(examples / "digits_cnn.onnx", tmp_path / "o.onnx", calibration=str(tmp_path / "bad.npz"))
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("target, mode", [("jetson-orin", "fp16"), ("rpi4", "dynamic"), ("generic-cpu", "dynamic")])
def test_targets_choose_defaults(tmp_path, examples, target, mode):
    report = edgeops.convert(examples / "digits_mlp.onnx", tmp_path / "o.onnx", target=target)
    assert report.quantize == mode


def test_corrupt_source_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(edgeops.ModelFormatError, match=f"^{re.escape(str(bad))}: not a valid ONNX model: corrupt: "
                       ".* re-export the model or check the copy$"):
        edgeops.convert(bad, tmp_path / "o.onnx")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeops", "convert", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name, words", [
    pytest.param("digits_mlp.tflite", "is a TFLite model", id="tflite"),
    pytest.param("archive.onnx", "is a zip archive", id="zip-named-onnx"),
])
def test_a_source_that_is_not_onnx_is_named_for_what_it_is(tmp_path, examples, name, words):
    """Regression: a .tflite source was "Error parsing message with type 'onnx.ModelProto': Wire format was corrupt"."""
    src = examples / name if (examples / name).exists() else tmp_path / name
    if not src.exists():
        src.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    proc = cli(src, "-o", tmp_path / "out.onnx")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"error: {src} {words}; edgeops convert takes an ONNX model (.onnx): " \
                          "convert the ONNX model it came from\n"
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("output", ["out.pb", "noext", "out.ONNX.bak"])
def test_an_output_extension_that_names_no_format_needs_format(tmp_path, examples, output):
    """Regression: -o out.pb and -o noext silently wrote ONNX although the format follows the extension."""
    proc = cli(examples / "digits_mlp.onnx", "-o", tmp_path / output)
    assert proc.returncode == 2
    assert proc.stderr == (f"error: cannot tell the output format from '{tmp_path / output}': name it .onnx, "
                           ".tflite or .c, or give --format onnx|tflite|c\n")
    assert list(tmp_path.iterdir()) == []
    proc = cli(examples / "digits_mlp.onnx", "-o", tmp_path / output, "--format", "onnx", "--quantize", "none")
    assert proc.returncode == 0, proc.stderr
    onnx.checker.check_model(str(tmp_path / output))


def test_the_symbolic_shape_fallback_is_a_note_not_a_step(tmp_path, examples, monkeypatch):
    """Regression: "symbolic shape inference failed; used onnx shape inference" was printed like a
    warning for a routine fallback; it is a note in --json and with -v."""
    from click.testing import CliRunner
    from onnxruntime.quantization import shape_inference

    from edgeops.cli import cli as edgeops_cli
    from edgeops.convert.quantize import SYMBOLIC_FALLBACK

    real = shape_inference.quant_pre_process

    def no_symbolic(src, dst, skip_symbolic_shape=False, **kwargs):
        if not skip_symbolic_shape:
            raise RuntimeError("symbolic shape inference cannot handle this model")
        return real(src, dst, skip_symbolic_shape=skip_symbolic_shape, **kwargs)

    monkeypatch.setattr(shape_inference, "quant_pre_process", no_symbolic)
    args = ["convert", str(examples / "digits_mlp.onnx"), "-o", str(tmp_path / "d.onnx"), "--quantize", "dynamic"]
    plain = CliRunner().invoke(edgeops_cli, args)
    assert plain.exit_code == 0, plain.output
    assert "shape inference" not in plain.output and "note:" not in plain.output
    verbose = CliRunner().invoke(edgeops_cli, [*args, "-v"])
    assert f"note: {SYMBOLIC_FALLBACK}" in " ".join(verbose.stdout.split())
    report = json.loads(CliRunner().invoke(edgeops_cli, [*args, "--json"]).stdout)
    assert report["notes"] == [SYMBOLIC_FALLBACK] and SYMBOLIC_FALLBACK not in report["steps"]


def test_from_sklearn(tmp_path, digits):
    pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    x, y = digits["pixels"], digits["labels"]
    clf = LogisticRegression(max_iter=500).fit(x, y)
    out = tmp_path / "lr.onnx"
    edgeops.convert.from_sklearn(clf, out, quantize="none")
    model = edgeops.load(out)
    outputs = model.run(x)
    labels = next(v for v in outputs.values() if v.ndim == 1)
    np.testing.assert_array_equal(labels, clf.predict(x))


def test_from_torch(tmp_path, digits):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    out = tmp_path / "t.onnx"
    edgeops.convert.from_torch(net, torch.zeros(1, 64), out, input_names=["pixels"], output_names=["logits"],
                               quantize="none")
    got = edgeops.load(out).run(digits["pixels"][:5])["logits"]
    with torch.no_grad():
        want = net(torch.from_numpy(digits["pixels"][:5])).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_json_and_exit_codes(tmp_path, examples):
    out = tmp_path / "c.onnx"
    proc = subprocess.run([sys.executable, "-m", "edgeops", "convert", str(examples / "digits_mlp.onnx"), "-o", str(out),
                           "--quantize", "dynamic", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["size_ratio"] > 2 and d["ops_before"]["Gemm"] == 2 and "MatMulInteger" in d["ops_after"]
    bad = subprocess.run([sys.executable, "-m", "edgeops", "convert", str(examples / "digits_mlp.onnx"), "-o",
                          str(tmp_path / "x.onnx"), "--target", "cortex-m"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_unnamed_nodes_can_be_excluded_by_their_output_name(tmp_path, examples):
    names = [n.name for n in onnx.load(str(examples / "digits_cnn.onnx")).graph.node]
    assert not any(names)  # the example graph leaves node names empty, as many exporters do
    out = tmp_path / "x.onnx"
    edgeops.convert(examples / "digits_cnn.onnx", out, quantize="int8", exclude_nodes=["conv2"],
                    calibration=str(examples / "digits_cnn_calib.npz"), profile=False)
    nodes = onnx.load(str(out)).graph.node
    conv1, conv2 = (next(n for n in nodes if n.name == name) for name in ("conv1", "conv2"))
    assert conv2.input[1] == "conv2.weight"  # float weight, no DequantizeLinear
    assert conv1.input[1] == "conv1.weight/dq"  # the other conv is quantized


def test_mobilenet_style_net_int8(tmp_path, examples):
    src = examples / "digits_mobilenet.onnx"
    out = tmp_path / "mb8.onnx"
    report = edgeops.convert(src, out, quantize="int8", calibration=str(examples / "digits_mobilenet_calib.npz"))
    assert report.ops_before["BatchNormalization"] == 13 and "BatchNormalization" not in report.ops_after
    assert any("7-bit" in s for s in report.steps)  # x86 target: no U8S8 saturation
    x = np.load(examples / "digits_mobilenet_test.npz")["image"]
    labels = np.load(examples / "digits_test_labels.npy")
    assert accuracy(src, x, labels) - accuracy(out, x, labels) <= 0.005
    assert report.to_dict()["size_ratio"] > 1.5


def test_validation_gates_refuse_to_write_a_failing_model_unless_forced(tmp_path, examples):
    from edgeops.errors import CheckFailed
    from edgeops.validate import Gates

    out = tmp_path / "strict.onnx"
    kwargs = dict(quantize="int8", calibration=str(examples / "digits_cnn_calib.npz"),
                  validate=str(examples / "digits_cnn_test.npz"), labels=str(examples / "digits_test_labels.npy"))
    with pytest.raises(CheckFailed, match="nothing written"):
        edgeops.convert(examples / "digits_cnn.onnx", out, gates=Gates(min_cosine=0.999999), **kwargs)
    assert not out.exists() and not (tmp_path / "strict.profile.json").exists()
    report = edgeops.convert(examples / "digits_cnn.onnx", out, gates=Gates(min_cosine=0.999999), force=True, **kwargs)
    assert out.exists() and report.validation["passed"] is False
    ok = edgeops.convert(examples / "digits_cnn.onnx", tmp_path / "ok.onnx",
                         gates=Gates(max_accuracy_drop=1.0, min_agreement=0.97), **kwargs)
    assert ok.validation["passed"] and ok.validation["accuracy"]["drop_points"] <= 1.0


def test_cli_convert_validate_exit_1_on_a_failed_gate(tmp_path, examples):
    args = [sys.executable, "-m", "edgeops", "convert", str(examples / "digits_cnn.onnx"), "-o", str(tmp_path / "c.onnx"),
            "--calibration", str(examples / "digits_cnn_calib.npz"), "--validate", str(examples / "digits_cnn_test.npz"),
            "--labels", str(examples / "digits_test_labels.npy")]
    proc = subprocess.run(args + ["--min-cosine", "0.999999"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: converted model failed validation")
    assert not (tmp_path / "c.onnx").exists()
    proc = subprocess.run(args + ["--max-accuracy-drop", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.onnx").exists() and (tmp_path / "c.profile.json").exists()


def _fused_ops(path, tmp_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "session-optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


@pytest.mark.parametrize("name, fused", [
    pytest.param("digits_cnn", {"QLinearConv": 2, "QGemm": 1}, id="cnn"),
    pytest.param("digits_mlp", {"QGemm": 2}, id="mlp"),
])
def test_int8_outputs_are_float_and_onnxruntime_still_fuses_every_layer(tmp_path, examples, name, fused):
    """Regression: dropping the Q/DQ rounding before the Softmax once also dropped the pair between
    the MLP's two Gemms, and dropping int8 weight zero points stopped onnxruntime's QGemm fusion."""
    out = tmp_path / "q.onnx"
    edgeops.convert(examples / f"{name}.onnx", out, quantize="int8", calibration=str(examples / f"{name}_calib.npz"),
                    profile=False)
    model = onnx.load(out)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producer["probabilities"] == "Softmax" and producer["logits"] == "Gemm"
    assert [o.domain for o in model.opset_import] == [""] and not model.metadata_props
    ops = _fused_ops(out, tmp_path)
    assert {k: ops.count(k) for k in fused} == fused
    assert "DequantizeLinear" not in ops  # nothing left to dequantize: QGemm writes the float logits


def test_json_stdout_stays_clean_with_the_chatty_calibrators(tmp_path, examples):
    """Regression: onnxruntime's entropy calibrator prints progress to stdout, which broke --json."""
    out = tmp_path / "e.onnx"
    proc = subprocess.run([sys.executable, "-m", "edgeops", "convert", str(examples / "digits_mlp.onnx"), "-o", str(out),
                           "--quantize", "int8", "--calibration", str(examples / "digits_mlp_calib.npz"),
                           "--calibration-method", "entropy", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["quantize"] == "int8"
