"""Static int8 models that LiteRT once could not calibrate or run (bugs the model zoo found, issue 12):
each is built here small, quantized to int8 with calibration, run in LiteRT, and compared with the
float model."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import graph_model, run_onnx, run_tflite

pytest.importorskip("ai_edge_quantizer")

from onnx import helper  # noqa: E402

from edgeops.convert.tflite import export  # noqa: E402
from edgeops.convert.tflite.quantize import quantize  # noqa: E402


def int8_close_to_float(model, shape, samples=16, seed=0):
    """Quantize ``model`` (one float input ``x``) to static int8, run it in LiteRT; returns the worst
    cosine similarity between its outputs and onnxruntime's over ``samples`` inputs."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(samples)]
    data, _ = quantize(export(model, for_int8=True).data, "int8", calibration=[{"x": x} for x in xs])
    worst = 1.0
    for x in xs[:4]:
        want, got = run_onnx(model, {"x": x}), run_tflite(data, {"x": x})
        for name, w in want.items():
            g = np.asarray(got[name], np.float64).ravel()
            w = np.asarray(w, np.float64).ravel()
            worst = min(worst, float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w) + 1e-12)))
    return worst


# ---- CRNN: calibration failed with "Tensor data is null. Run allocate_tensors() first" ----------------
def conv_lstm(hidden=8, steps=6):
    """Conv -> [B, C, 1, T] -> [T, B, C] -> bidirectional LSTM without initial states, like a CRNN."""
    rng = np.random.default_rng(1)
    c = 4
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("ReduceMean", ["relu"], ["pooled"], axes=[2], keepdims=0),  # [B, C, T]
        helper.make_node("Transpose", ["pooled"], ["seq"], perm=[2, 0, 1]),  # [T, B, C]
        helper.make_node("LSTM", ["seq", "W", "R", "B"], ["y"], hidden_size=hidden, direction="bidirectional"),
    ]
    inits = {"w": rng.standard_normal((c, 1, 3, 3)).astype(np.float32) * 0.5,
             "b": rng.standard_normal(c).astype(np.float32) * 0.1,
             "W": rng.standard_normal((2, 4 * hidden, c)).astype(np.float32) * 0.5,
             "R": rng.standard_normal((2, 4 * hidden, hidden)).astype(np.float32) * 0.5,
             "B": rng.standard_normal((2, 8 * hidden)).astype(np.float32) * 0.1}
    return graph_model(nodes, {"x": [1, 1, 4, steps]}, {"y": [steps, 2, 1, hidden]}, inits, opset=13)


def test_crnn_conv_lstm_calibrates_and_runs_in_int8():
    """Bug: with no initial cell state the first step's forget gate was computed and read by nobody;
    XNNPACK left that tensor unallocated and ai-edge-quantizer's calibration failed reading it."""
    model = conv_lstm()
    assert int8_close_to_float(model, (1, 1, 4, 6)) > 0.98


def test_no_dead_ops_in_the_exported_lstm():
    exported = export(conv_lstm(steps=3))
    # per direction and step: LOGISTIC for i and o, and f only where a cell state came before
    assert exported.ops["LOGISTIC"] == 2 * (3 * 3 - 1)


def test_an_unread_split_output_does_not_stop_calibration():
    node = helper.make_node("Split", ["x"], ["a", "unused"], axis=1, num_outputs=2)
    model = graph_model([node, helper.make_node("Relu", ["a"], ["y"])], {"x": [1, 8]}, {"y": [1, 4]}, opset=18)
    assert int8_close_to_float(model, (1, 8)) > 0.98


# ---- ViT: "div.cc data[i] != zero_point", an int8 DIV whose divisor rounds to its zero point -----------
def transformer_block(dim=16, tokens=8, gelu="dynamo"):
    """LayerNormalization -> one-head self-attention (scaled by a constant) -> residual -> LayerNorm ->
    MLP with the erf GELU as torch's dynamo exporter writes it, x * ((1 + erf(x / sqrt(2))) * 0.5)."""
    rng = np.random.default_rng(2)
    w = {k: (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32) for k in ("wq", "wk", "wv", "w1", "w2")}
    consts = {"gamma": np.ones(dim, np.float32), "beta": np.zeros(dim, np.float32),
              "scale": np.array(dim ** -0.5, np.float32), "sqrt2": np.array(2 ** 0.5, np.float32),
              "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}
    mk = helper.make_node
    nodes = [mk("LayerNormalization", ["x", "gamma", "beta"], ["n1"], axis=-1),
             *(mk("MatMul", ["n1", k], [k[1]]) for k in ("wq", "wk", "wv")),
             mk("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), mk("MatMul", ["q", "kt"], ["qk"]),
             mk("Mul", ["qk", "scale"], ["logits"]), mk("Softmax", ["logits"], ["p"], axis=-1),
             mk("MatMul", ["p", "v"], ["att"]), mk("Add", ["x", "att"], ["r1"]),
             mk("LayerNormalization", ["r1", "gamma", "beta"], ["n2"], axis=-1),
             mk("MatMul", ["n2", "w1"], ["h"]), mk("Div", ["h", "sqrt2"], ["hs"]), mk("Erf", ["hs"], ["e"]),
             mk("Add", ["e", "one"], ["e1"])]
    if gelu == "dynamo":
        nodes += [mk("Mul", ["e1", "half"], ["e2"]), mk("Mul", ["h", "e2"], ["g"])]
    else:  # the Erf alone, not a GELU: its own DIV by x stays in the graph
        nodes += [mk("Mul", ["e1", "e"], ["g"])]
    nodes += [mk("MatMul", ["g", "w2"], ["m"]), mk("Add", ["r1", "m"], ["y"])]
    return graph_model(nodes, {"x": [1, tokens, dim]}, {"y": [1, tokens, dim]}, {**w, **consts}, opset=17)


def test_vit_block_with_layernorm_attention_and_gelu_runs_in_int8():
    """Bug: the dynamo form of GELU was not fused, and Erf's chain divides by x."""
    model = transformer_block()
    assert "DIV" not in export(model).ops  # one GELU kernel
    assert int8_close_to_float(model, (1, 8, 16)) > 0.97


def test_a_division_by_a_computed_value_stays_float_in_int8():
    """Bug: an Erf that is no GELU keeps its DIV by x; x rounds to the zero point, LiteRT stopped."""
    model = transformer_block(gelu="erf")
    assert "DIV" in export(model).ops
    assert int8_close_to_float(model, (1, 8, 16)) > 0.97
