"""``edgeops convert --fix-input sample_rate=16000``: the input becomes a constant, the ``If`` on it
becomes the branch taken, and the model goes to TFLite (which has no If) and to ONNX with the
numbers onnxruntime gives the original model fed the same value."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeops.convert.fix_inputs import fix_inputs, inline_constant_ifs, parse  # noqa: E402
from edgeops.errors import UsageError  # noqa: E402

N = 32


def resampler(sample_rate_shape=()):
    """audio [1, N] float, sample_rate int64: If(sample_rate > 8000) then a 4-tap FIR scaled by
    16000 / sample_rate (Cast and Div of the outer input inside the branch), else a gain of 2 plus a
    constant offset from the branch's own initializer."""
    f = TensorProto.FLOAT
    then = helper.make_graph(
        [helper.make_node("Cast", ["sample_rate"], ["sr_f"], to=f),
         helper.make_node("Div", ["k16", "sr_f"], ["scale"]),
         helper.make_node("Unsqueeze", ["audio", "axes01"], ["a3"]),
         helper.make_node("Conv", ["a3", "fir"], ["filtered"], pads=[0, 3]),
         helper.make_node("Squeeze", ["filtered", "axes0"], ["f2"]),
         helper.make_node("Mul", ["f2", "scale"], ["then_out"])],
        "then", [], [helper.make_tensor_value_info("then_out", f, [1, N])],
        [numpy_helper.from_array(np.array(16000.0, np.float32), "k16"),
         numpy_helper.from_array(np.array([0.1, 0.2, 0.3, 0.4], np.float32).reshape(1, 1, 4), "fir"),
         numpy_helper.from_array(np.array([0], np.int64), "axes0"),
         numpy_helper.from_array(np.array([1], np.int64), "axes01")])
    orelse = helper.make_graph(
        [helper.make_node("Mul", ["audio", "two"], ["g"]), helper.make_node("Add", ["g", "offset"], ["else_out"])],
        "else", [], [helper.make_tensor_value_info("else_out", f, [1, N])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.linspace(-1, 1, N, dtype=np.float32), "offset")])
    nodes = [helper.make_node("Greater", ["sample_rate", "k8000"], ["wide"]),
             helper.make_node("If", ["wide"], ["y"], name="band", then_branch=then, else_branch=orelse),
             helper.make_node("Tanh", ["y"], ["out"])]
    g = helper.make_graph(nodes, "resampler",
                          [helper.make_tensor_value_info("audio", f, [1, N]),
                           helper.make_tensor_value_info("sample_rate", TensorProto.INT64, list(sample_rate_shape))],
                          [helper.make_tensor_value_info("out", f, [1, N])],
                          [numpy_helper.from_array(np.array(8000, np.int64), "k8000")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def ort(model_or_path, feeds):
    import onnxruntime as rt

    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    sess = rt.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0], [i.name for i in sess.get_inputs()]


def cli_convert(tmp_path, out_name, *args):
    from click.testing import CliRunner

    from edgeops.cli import cli

    src = tmp_path / "resampler.onnx"
    onnx.save(resampler(), src)
    result = CliRunner().invoke(cli, ["convert", str(src), "-o", str(tmp_path / out_name), "--quantize", "none",
                                      "--json", *args])
    return result, src


@pytest.fixture
def audio():
    return np.random.default_rng(0).standard_normal((1, N)).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 8000], ids=["then-branch", "else-branch"])
def test_fix_input_to_tflite(tmp_path, audio, rate):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    result, src = cli_convert(tmp_path, "m.tflite", "--fix-input", f"sample_rate={rate}")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ops_before"]["If"] == 1
    assert any("sample_rate fixed to" in s for s in report["steps"])
    runner = Interpreter(model_path=str(tmp_path / "m.tflite")).get_signature_runner()
    want, _ = ort(src, {"audio": audio, "sample_rate": np.array(rate, np.int64)})
    got = runner(audio=audio)
    assert list(got) == ["out"]
    np.testing.assert_allclose(got["out"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rate", [16000, 44100, 8000], ids=["then-16k", "then-44k", "else-8k"])
def test_fix_input_to_onnx(tmp_path, audio, rate):
    result, src = cli_convert(tmp_path, "m.onnx", "--fix-input", f"sample_rate={rate}")
    assert result.exit_code == 0, result.output
    converted = onnx.load(tmp_path / "m.onnx")
    assert "If" not in {n.op_type for n in converted.graph.node}
    want, _ = ort(src, {"audio": audio, "sample_rate": np.array(rate, np.int64)})
    got, inputs = ort(tmp_path / "m.onnx", {"audio": audio})
    assert inputs == ["audio"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_if_on_a_run_time_input_is_refused_with_what_to_do(tmp_path):
    pytest.importorskip("ai_edge_litert")
    result, _ = cli_convert(tmp_path, "m.tflite")
    assert result.exit_code != 0
    assert "band [If]" in result.output and "--fix-input" in result.output
    assert not (tmp_path / "m.tflite").exists()


def test_a_shape_one_input_takes_the_value_in_its_shape(audio):
    model, notes = fix_inputs(resampler(sample_rate_shape=(1,)), {"sample_rate": [16000]})
    assert "If" not in {n.op_type for n in model.graph.node} and notes[0] == "input sample_rate fixed to [16000]"
    want, _ = ort(resampler(), {"audio": audio, "sample_rate": np.array(16000, np.int64)})
    np.testing.assert_allclose(ort(model, {"audio": audio})[0], want, rtol=1e-6)


@pytest.mark.parametrize("specs, message", [
    (["sample_rate"], "NAME=VALUE"),
    (["sample_rate=fast"], "NAME=VALUE"),
    (["=3"], "NAME=VALUE"),
    (["sample_rate=1", "sample_rate=2"], "twice"),
], ids=["no-value", "not-a-number", "no-name", "twice"])
def test_bad_fix_input_syntax(specs, message):
    with pytest.raises(UsageError, match=message):
        parse(specs)


@pytest.mark.parametrize("values, message", [
    ({"rate": [1]}, "not an input of the model"),
    ({"sample_rate": [16000, 8000]}, "do not fill the input's shape"),
    ({"sample_rate": [16000.5]}, "not a whole number"),
], ids=["unknown-input", "too-many-values", "fraction-for-int"])
def test_bad_fix_input_values(values, message):
    with pytest.raises(UsageError, match=message):
        fix_inputs(resampler(), values)


def test_inlined_branch_that_returns_an_outer_value_or_an_initializer():
    """A branch output that no branch node produces (an outer-scope value, a branch initializer) becomes
    an Identity; names inside the branch that clash with the main graph's are renamed."""
    f = TensorProto.FLOAT
    then = helper.make_graph([], "then", [], [helper.make_tensor_value_info("x", f, [3]),
                                              helper.make_tensor_value_info("c", f, [3])],
                             [numpy_helper.from_array(np.array([1, 2, 3], np.float32), "c")])
    orelse = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "else", [],
                               [helper.make_tensor_value_info("t", f, [3]), helper.make_tensor_value_info("t", f, [3])])
    g = helper.make_graph([helper.make_node("If", ["cond"], ["a", "b"], then_branch=then, else_branch=orelse),
                           helper.make_node("Add", ["a", "b"], ["t"])], "m",
                          [helper.make_tensor_value_info("x", f, [3])], [helper.make_tensor_value_info("t", f, [3])],
                          [numpy_helper.from_array(np.array(True), "cond")])
    x = np.array([5, 6, 7], np.float32)
    for cond, want in ((True, x + [1, 2, 3]), (False, -2 * x)):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array(cond), "cond"))
        assert inline_constant_ifs(m) == 1
        onnx.checker.check_model(m)
        np.testing.assert_allclose(ort(m, {"x": x})[0], want)
