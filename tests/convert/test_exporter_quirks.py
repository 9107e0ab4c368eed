"""Graphs the model zoo found that broke convert, each rebuilt small: the converted model opens and runs.

- fp16 of a CRNN (conv stack, bidirectional LSTM, classifier): onnxruntime segfaulted opening the result
  (a batch Transpose into a MatMul, which onnxruntime fuses; the LSTMs were fp16 too).
- fp16 of a DB text detector (nearest upsampling): "Inferred elem type differs: (1) vs (10)" on Resize's scales.
- int8/dynamic of skl2onnx models: the default opset imported twice ("Failed to find proper ai.onnx domain"),
  and the MLP's [1, N] intercepts ("The truth value of an array ... is ambiguous").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgeops.convert  # noqa: E402

RNG = np.random.default_rng(0)


def save(nodes, inputs, outputs, inits, path, opsets=(("", 17),)):
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def weight(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.3, name)


def run(path, feeds):
    """The model's outputs in onnxruntime with its default optimizations (ORT_ENABLE_ALL), as users open it."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def batch_transpose_into_matmul(path):
    """The CRNN's tail: the LSTM's [T, 2, N, H] output reshaped to [T, N, 2H] -> Transpose [1, 0, 2] -> MatMul
    with the classifier (a Relu instead of the Reshape gets the Transpose moved ahead of it and no crash)."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0, 2], name="to_batch_first"),
             helper.make_node("MatMul", ["t", "w"], ["y"], name="classifier")]
    return save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 2, 1, 64])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 37])],
                [weight("w", 128, 37), numpy_helper.from_array(np.array([32, 1, 128]), "shape")], path)


def test_fp16_of_a_batch_transpose_into_matmul_does_not_crash_onnxruntime(tmp_path):
    """Regression (zoo CRNN, ONNX fp16): onnxruntime's MatmulTransposeFusion turned the fp16 Transpose [1, 0, 2]
    + MatMul into a FusedMatMul that segfaulted while the session was created, in convert's own check.
    In a child process, so that the bug, should it come back, fails this test and not the test run."""
    src = batch_transpose_into_matmul(tmp_path / "crnn_tail.onnx")
    out = tmp_path / "crnn_tail_fp16.onnx"
    code = textwrap.dedent(f"""
        import numpy as np, onnxruntime as ort, edgeops.convert
        edgeops.convert.convert({str(src)!r}, {str(out)!r}, quantize="fp16")
        x = np.random.default_rng(1).random((32, 2, 1, 64), dtype=np.float32)
        ort.InferenceSession({str(out)!r}, providers=["CPUExecutionProvider"]).run(None, {{"x": x}})
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    kept = {n.name: n for n in onnx.load(str(out)).graph.node}
    assert "to_batch_first" in kept and kept["classifier"].op_type == "MatMul"
    x = RNG.random((32, 2, 1, 64), dtype=np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], run(src, {"x": x})[0], rtol=2e-2, atol=2e-2)


def test_fp16_keeps_recurrent_ops_float32(tmp_path):
    """Regression (zoo CRNN, ONNX fp16): the bidirectional LSTM went fp16; onnxruntime's CPU LSTM is float32
    only, and fp16 states carry their rounding from step to step. Its weights stay float32 now."""
    torch = pytest.importorskip("torch")

    class Recognizer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(16, 8, bidirectional=True, batch_first=True)
            self.fc = torch.nn.Linear(16, 5)

        def forward(self, x):
            return torch.log_softmax(self.fc(self.rnn(x)[0]), -1)

    torch.manual_seed(0)
    src, out = tmp_path / "lstm.onnx", tmp_path / "lstm_fp16.onnx"
    torch.onnx.export(Recognizer().eval(), torch.rand(1, 12, 16), str(src), input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)
    edgeops.convert.convert(src, out, quantize="fp16")
    model = onnx.load(str(out))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    lstm = next(n for n in model.graph.node if n.op_type == "LSTM")
    assert [inits[w] for w in lstm.input[1:3]] == [TensorProto.FLOAT] * 2
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)  # the Linear is fp16
    x = RNG.random((1, 12, 16), dtype=np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], run(src, {"x": x})[0], rtol=1e-2, atol=1e-2)


def test_fp16_of_a_resize_with_constant_scales_is_a_valid_model(tmp_path):
    """Regression (zoo DB text detector, ONNX fp16): "Inferred elem type differs: (1) vs (10)". Resize's scales,
    a Constant folded by onnxruntime's optimizer with its value_info kept, were declared fp16 and cast back
    to float while the initializer stayed float32."""
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Constant", [], ["scales"], value=scales),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest")]
    src = save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])], [weight("w", 4, 3, 3, 3)],
               tmp_path / "upsample.onnx")
    out = tmp_path / "upsample_fp16.onnx"
    edgeops.convert.convert(src, out, quantize="fp16")
    onnx.checker.check_model(str(out), full_check=True)
    x = RNG.random((1, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], run(src, {"x": x})[0], rtol=1e-2, atol=1e-2)


def calibration(path, name, shape):
    np.savez(path, **{name: RNG.random((20, *shape), dtype=np.float32)})
    return str(path)


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_a_default_opset_imported_twice_is_merged(tmp_path, mode):
    """Regression (zoo skl2onnx models): skl2onnx imports ("", 17) twice; onnxruntime.quantization stopped
    with "Failed to find proper ai.onnx domain". A MatMul beside an ai.onnx.ml op, as in a pipeline."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Normalizer", ["m"], ["y"], domain="ai.onnx.ml", norm="L1")]
    src = save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], [weight("w", 8, 4)],
               tmp_path / "twice.onnx", opsets=(("ai.onnx.ml", 1), ("", 17), ("", 17)))
    out = tmp_path / f"twice_{mode}.onnx"
    report = edgeops.convert.convert(src, out, quantize=mode,
                                     calibration=calibration(tmp_path / "c.npz", "x", (8,)) if mode == "int8" else None)
    assert report.nodes_quantized >= 1
    assert [(o.domain, o.version) for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [("", 17)]


def test_the_higher_of_two_imports_of_a_domain_is_kept():
    model = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1), helper.make_opsetid("ai.onnx", 17)])
    from edgeops.convert.graph import merge_opset_imports

    assert merge_opset_imports(model) == ["ai.onnx"]
    assert sorted((o.domain, o.version) for o in model.opset_import) == [("ai.onnx", 17), ("ai.onnx.ml", 1)]


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_a_gemm_bias_of_shape_1_by_n_quantizes(tmp_path, mode):
    """Regression (zoo sk_mlp, ONNX int8): skl2onnx writes an MLP's intercepts as [1, N]; onnxruntime fuses
    MatMul + Add into a Gemm with that bias, and per-channel static int8 failed with "The truth value of an
    array with more than one element is ambiguous"."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["y"])]
    src = save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
               [weight("w1", 16, 32), weight("b1", 1, 32), weight("w2", 32, 10), weight("b2", 1, 10)],
               tmp_path / "mlp.onnx")
    out = tmp_path / f"mlp_{mode}.onnx"
    report = edgeops.convert.convert(src, out, quantize=mode, per_channel=True,
                                     calibration=calibration(tmp_path / "c.npz", "x", (16,)) if mode == "int8" else None)
    assert report.nodes_quantized >= 2
    x = RNG.random((8, 16), dtype=np.float32)
    got, want = run(out, {"x": x})[0], run(src, {"x": x})[0]
    cosine = float(np.sum(got * want) / np.linalg.norm(got) / np.linalg.norm(want))
    assert cosine > 0.99, cosine
