"""LSTM and GRU as torch exports them (and as onnx.helper writes the variants torch does not) run in
LiteRT with onnxruntime's numbers; what the unrolled graph cannot express is refused with a reason."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import helper

from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, export, graph_model, node_model, onnx

torch = pytest.importorskip("torch")

T, B, F, H = 5, 2, 6, 8  # steps, batch, features, hidden


class Net(torch.nn.Module):
    def __init__(self, kind, batch_first, layers, bidirectional, with_state):
        super().__init__()
        cls = torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU
        self.rnn = cls(F, H, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
        self.kind, self.with_state = kind, with_state

    def forward(self, x, h0=None, c0=None):
        if not self.with_state:
            return self.rnn(x)
        return self.rnn(x, (h0, c0) if self.kind == "LSTM" else h0)


def torch_export(tmp_path, kind, batch_first, layers, bidirectional, with_state, dynamo=False):
    torch.manual_seed(0)
    net = Net(kind, batch_first, layers, bidirectional, with_state).eval()
    states = layers * (2 if bidirectional else 1)
    x = torch.randn((B, T, F) if batch_first else (T, B, F))
    args, names = (x,), ["x"]
    if with_state:
        args += (torch.randn(states, B, H),)
        names.append("h0")
        if kind == "LSTM":
            args += (torch.randn(states, B, H),)
            names.append("c0")
    path = tmp_path / "rnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, str(path), input_names=names, dynamo=dynamo, opset_version=17)
    model = onnx.load(str(path))
    assert sum(n.op_type == kind for n in model.graph.node) == layers
    return model, {n: a.numpy() for n, a in zip(names, args)}


CASES = [  # layers, bidirectional
    pytest.param(1, False, id="1-layer"),
    pytest.param(2, False, id="2-layers"),
    pytest.param(2, True, id="2-layers-bidirectional"),
]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq-first", "batch-first"])
@pytest.mark.parametrize("layers, bidirectional", CASES)
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_rnn(tmp_path, kind, batch_first, layers, bidirectional, with_state):
    model, feeds = torch_export(tmp_path, kind, batch_first, layers, bidirectional, with_state)
    exported = assert_parity(model, feeds, rtol=1e-4, atol=1e-5)
    assert kind not in str(exported.ops) and exported.ops.get("FULLY_CONNECTED", 0) >= layers


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_dynamo_export(tmp_path, kind):
    model, feeds = torch_export(tmp_path, kind, True, 2, True, True, dynamo=True)
    assert_parity(model, feeds, rtol=1e-4, atol=1e-5)


def test_torch_rnn_runs_twice_with_the_same_answer(tmp_path):
    """No state carries over between invocations (UNIDIRECTIONAL_SEQUENCE_LSTM's variable tensors would)."""
    from .conftest import run_tflite

    model, feeds = torch_export(tmp_path, "LSTM", True, 1, False, False)
    data = export(model).data
    first = run_tflite(data, feeds)
    np.testing.assert_array_equal(first[next(iter(first))], run_tflite(data, feeds)[next(iter(first))])


# ---- variants torch does not write -----------------------------------------------------------------


def weights(rng, kind, dirs, gates_bias=True):
    g = 4 if kind == "LSTM" else 3
    w = {"W": rng.standard_normal((dirs, g * H, F)).astype(np.float32) * 0.5,
         "R": rng.standard_normal((dirs, g * H, H)).astype(np.float32) * 0.5}
    if gates_bias:
        w["B"] = rng.standard_normal((dirs, 2 * g * H)).astype(np.float32) * 0.5
    return w


def rnn_model(rng, kind, extra, layout, direction):
    dirs = 2 if direction == "bidirectional" else 1
    st = (B, dirs, H) if layout else (dirs, B, H)
    inputs = {"x": [B, T, F] if layout else [T, B, F], "h0": list(st)}
    names = ["x", "W", "R", "B", "", "h0"]
    if kind == "LSTM":
        inputs["c0"] = list(st)
        names.append("c0")
    outs = {"y": [B, T, dirs, H] if layout else [T, dirs, B, H], "y_h": list(st)}
    if kind == "LSTM":
        outs["y_c"] = list(st)
    node = helper.make_node(kind, names, list(outs), hidden_size=H, direction=direction, layout=layout, **extra)
    return graph_model([node], inputs, outs, weights(np.random.default_rng(1), kind, dirs), opset=14), inputs


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("kind, extra", [("LSTM", {}), ("GRU", {"linear_before_reset": 0}),
                                         ("GRU", {"linear_before_reset": 1})],
                         ids=["LSTM", "GRU-reset-first", "GRU-linear-first"])
def test_onnx_rnn_variants(rng, kind, extra, layout, direction):
    """layout=1 (batch-first) is checked against the layout=0 model on transposed data: onnxruntime has
    no batch-first kernel."""
    from .conftest import run_onnx, run_tflite

    m, inputs = rnn_model(rng, kind, extra, layout, direction)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in inputs.items()}
    if not layout:
        assert_parity(m, feeds, rtol=1e-4, atol=1e-5)
        return
    twin, _ = rnn_model(rng, kind, extra, 0, direction)
    want = run_onnx(twin, {"x": feeds["x"].transpose(1, 0, 2),
                           **{k: v.transpose(1, 0, 2) for k, v in feeds.items() if k != "x"}})
    got = run_tflite(export(m).data, feeds)
    np.testing.assert_allclose(got["y"], want["y"].transpose(2, 0, 1, 3), rtol=1e-4, atol=1e-5)
    for name in want:
        if name != "y":
            np.testing.assert_allclose(got[name], want[name].transpose(1, 0, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_only_the_last_state_without_bias(rng, kind):
    """Y unused (""), no B, no initial state: the outputs asked for only."""
    node = helper.make_node(kind, ["x", "W", "R"], ["", "y_h"], hidden_size=H)
    m = graph_model([node], {"x": [T, B, F]}, {"y_h": [1, B, H]}, weights(rng, kind, 1, gates_bias=False))
    exported = assert_parity(m, {"x": rng.standard_normal((T, B, F)).astype(np.float32)}, rtol=1e-4, atol=1e-5)
    assert "PACK" not in exported.ops


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_lstm_peepholes(rng, with_state):
    names = ["x", "W", "R", "B", "", "h0" if with_state else "", "c0" if with_state else "", "P"]
    inputs = {"x": [T, B, F], **({"h0": [1, B, H], "c0": [1, B, H]} if with_state else {})}
    node = helper.make_node("LSTM", names, ["y", "y_h", "y_c"], hidden_size=H)
    m = graph_model([node], inputs, {"y": [T, 1, B, H], "y_h": [1, B, H], "y_c": [1, B, H]},
                    {**weights(rng, "LSTM", 1), "P": rng.standard_normal((1, 3 * H)).astype(np.float32)})
    assert_parity(m, {k: rng.standard_normal(v).astype(np.float32) for k, v in inputs.items()}, rtol=1e-4, atol=1e-5)


def test_full_sequence_lens_accepted(rng):
    node = helper.make_node("GRU", ["x", "W", "R", "B", "lens"], ["y"], hidden_size=H)
    m = graph_model([node], {"x": [T, B, F]}, {"y": [T, 1, B, H]},
                    {**weights(rng, "GRU", 1), "lens": np.full((B,), T, np.int32)})
    assert_parity(m, {"x": rng.standard_normal((T, B, F)).astype(np.float32)}, rtol=1e-4, atol=1e-5)


# ---- refused, with the reason ------------------------------------------------------------------


@pytest.mark.parametrize("attrs, extra_inits, reason", [
    ({"activations": ["Tanh", "Tanh", "Tanh"]}, {}, "activations"),
    ({"clip": 3.0}, {}, "clip"),
    ({"input_forget": 1}, {}, "input_forget"),
    ({}, {"lens": np.array([T, T - 2], np.int32)}, "sequence_lens"),
], ids=["activations", "clip", "input-forget", "short-sequence"])
def test_unsupported_lstm_is_refused_with_a_reason(rng, attrs, extra_inits, reason):
    names = ["x", "W", "R", "B", "lens" if "lens" in extra_inits else ""]
    node = helper.make_node("LSTM", names, ["y"], hidden_size=H, name="lstm0", **attrs)
    m = graph_model([node], {"x": [T, B, F]}, {"y": [T, 1, B, H]}, {**weights(rng, "LSTM", 1), **extra_inits})
    with pytest.raises(UnsupportedOpsError) as err:
        export(m)
    assert "lstm0 [LSTM]" in str(err.value) and reason in str(err.value)


def test_weights_computed_at_run_time_are_refused(rng):
    w = weights(rng, "GRU", 1)
    m = node_model("GRU", {"x": [T, B, F], "W": list(w["W"].shape)}, {"y": None}, {"R": w["R"]}, hidden_size=H)
    with pytest.raises(UnsupportedOpsError, match="weights computed at run time"):
        export(m)
