"""Activations export to TFLite and match onnxruntime: every op and attribute variant, the Clip bounds
that become one builtin, per-channel PRelu and activations between convolutions (channels-last, no
transposes), and the variants TFLite cannot express refused by name with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, export, graph_model, helper, node_model

SHAPE = (2, 3, 4, 5)


def _x(rng, shape=SHAPE, scale=4.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x.flat[:4] = [0.0, -1e-3, 1e-3, 50.0][: x.size]  # zero, tiny values and a large one
    return x


# id, op, attributes, opset, emitted op that must be there
CASES = [
    ("relu", "Relu", {}, 17, "RELU"),
    ("sigmoid", "Sigmoid", {}, 17, "LOGISTIC"),
    ("tanh", "Tanh", {}, 17, "TANH"),
    ("leaky_relu_default", "LeakyRelu", {}, 17, "LEAKY_RELU"),
    ("leaky_relu_alpha", "LeakyRelu", {"alpha": 0.2}, 17, "LEAKY_RELU"),
    ("hard_sigmoid_default", "HardSigmoid", {}, 17, "RELU_0_TO_1"),
    ("hard_sigmoid_pytorch", "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 17, "MUL"),
    ("hard_sigmoid_odd", "HardSigmoid", {"alpha": 0.3, "beta": 0.0}, 17, "RELU_0_TO_1"),
    ("hard_swish", "HardSwish", {}, 17, "HARD_SWISH"),
    ("gelu_exact", "Gelu", {}, 20, "GELU"),
    ("gelu_tanh", "Gelu", {"approximate": "tanh"}, 20, "GELU"),
    ("erf", "Erf", {}, 17, "GELU"),
    ("elu", "Elu", {}, 17, "ELU"),
    ("elu_alpha", "Elu", {"alpha": 0.5}, 17, "ELU"),
    ("selu", "Selu", {}, 17, "ELU"),
    ("celu", "Celu", {"alpha": 2.0}, 17, "ELU"),
    ("softplus", "Softplus", {}, 17, "LOG"),
    ("mish", "Mish", {}, 18, "TANH"),
    ("softsign", "Softsign", {}, 17, "DIV"),
    ("thresholded_relu", "ThresholdedRelu", {"alpha": 0.5}, 17, "SELECT_V2"),
    ("softmax_last", "Softmax", {}, 17, "SOFTMAX"),
    ("softmax_axis1", "Softmax", {"axis": 1}, 17, "SOFTMAX"),
    ("softmax_opset11_coerced", "Softmax", {"axis": 1}, 11, "SOFTMAX"),
    ("log_softmax_last", "LogSoftmax", {}, 17, "LOG_SOFTMAX"),
    ("log_softmax_axis0", "LogSoftmax", {"axis": 0}, 17, "LOG_SOFTMAX"),
]


@pytest.mark.parametrize("op, attrs, opset, emitted", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_activation_matches_onnxruntime(rng, op, attrs, opset, emitted):
    x = _x(rng, scale=1.0 if "softmax" in op.lower() else 4.0)
    model = node_model(op, {"x": SHAPE}, {"y": None}, opset=opset, **attrs)
    exported = assert_parity(model, {"x": x})
    assert emitted in exported.ops


@pytest.mark.parametrize("op, attrs, opset", [c[1:4] for c in CASES if "softmax" not in c[0]],
                         ids=[c[0] for c in CASES if "softmax" not in c[0]])
def test_activation_of_rank5(rng, op, attrs, opset):
    shape = (1, 2, 3, 4, 5)
    assert_parity(node_model(op, {"x": shape}, {"y": None}, opset=opset, **attrs), {"x": _x(rng, shape)})


def test_erf_is_accurate_near_zero_and_in_the_tails():
    x = np.concatenate([np.linspace(-6, 6, 1201), [0.0, 1e-6, -1e-6, 0.0199, 0.0201, 1e-30]]).astype(np.float32)
    assert_parity(node_model("Erf", {"x": x.shape}, {"y": None}), {"x": x}, rtol=1e-4, atol=1e-6)


def test_softplus_and_mish_do_not_overflow_or_lose_tiny_values():
    x = np.array([-100, -30, -17, -10, -5, 0, 5, 30, 100, 1e4], np.float32)
    assert_parity(node_model("Softplus", {"x": x.shape}, {"y": None}), {"x": x}, rtol=1e-4, atol=1e-12)
    assert_parity(node_model("Mish", {"x": x.shape}, {"y": None}, opset=18), {"x": x}, rtol=1e-4, atol=1e-10)


# ---- Clip -------------------------------------------------------------------------------------------
CLIP = [  # id, min, max, the one op it becomes (or None: MAXIMUM and/or MINIMUM)
    ("relu6", 0.0, 6.0, "RELU6"),
    ("relu_n1_to_1", -1.0, 1.0, "RELU_N1_TO_1"),
    ("relu_0_to_1", 0.0, 1.0, "RELU_0_TO_1"),
    ("relu", 0.0, None, "RELU"),
    ("both", -0.5, 2.5, None),
    ("min_only", 0.25, None, None),
    ("max_only", None, 0.75, None),
    ("min_greater_than_max", 2.0, 1.0, None),
]


def _clip_model(lo, hi, opset):
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        return node_model("Clip", {"x": SHAPE}, {"y": None}, opset=opset, **attrs)
    inits = {k: np.array(v, np.float32) for k, v in (("min", lo), ("max", hi)) if v is not None}
    names = ["x", "min" if lo is not None else "", "max" if hi is not None else ""]
    node = helper.make_node("Clip", names, ["y"], name="clip0")
    return graph_model([node], {"x": SHAPE}, {"y": SHAPE}, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 13], ids=["attributes", "inputs"])
@pytest.mark.parametrize("lo, hi, single", [c[1:] for c in CLIP], ids=[c[0] for c in CLIP])
def test_clip_bounds(rng, opset, lo, hi, single):
    if opset < 11 and lo is not None and hi is not None and lo > hi:
        pytest.skip("onnxruntime refuses Clip-6 with min > max")
    exported = assert_parity(_clip_model(lo, hi, opset), {"x": _x(rng)})
    if single:
        assert set(exported.ops) == {single}
    else:
        assert set(exported.ops) <= {"MAXIMUM", "MINIMUM"}


def test_clip_without_bounds_is_a_copy(rng):
    assert_parity(_clip_model(None, None, 13), {"x": _x(rng)})


def test_clip_with_bounds_computed_at_run_time(rng):
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip0")
    model = graph_model([node], {"x": SHAPE, "lo": [], "hi": []}, {"y": SHAPE}, opset=13)
    assert_parity(model, {"x": _x(rng), "lo": np.array(-1.5, np.float32), "hi": np.array(2.0, np.float32)})


def test_clip_of_int32_values(rng):
    x = rng.integers(-100, 100, SHAPE).astype(np.int32)
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip0")
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", 6, SHAPE)],
                          [helper.make_tensor_value_info("y", 6, SHAPE)],
                          [helper.make_tensor("lo", 6, [], [-10]), helper.make_tensor("hi", 6, [], [20])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    assert_parity(model, {"x": x})


# ---- PRelu ------------------------------------------------------------------------------------------
PRELU = [  # id, input shape, slope
    ("per_channel", (2, 3, 4, 5), np.array([0.1, -0.2, 0.3], np.float32).reshape(3, 1, 1)),
    ("full", (2, 3, 4, 5), None),
    ("last_axis", (2, 3, 4, 5), np.linspace(-1, 1, 5, dtype=np.float32)),
    ("shared", (2, 3, 4, 5), np.array([0.25], np.float32)),
    ("rank5", (1, 2, 3, 4, 5), np.array([0.1, 0.2], np.float32).reshape(2, 1, 1, 1)),
    ("rank2", (4, 6), np.linspace(0, 1, 6, dtype=np.float32)),
]


@pytest.mark.parametrize("shape, slope", [c[1:] for c in PRELU], ids=[c[0] for c in PRELU])
def test_prelu(rng, shape, slope):
    slope = rng.uniform(-1, 1, shape[1:]).astype(np.float32) if slope is None else slope
    model = node_model("PRelu", {"x": shape}, {"y": None}, {"slope": slope})
    exported = assert_parity(model, {"x": _x(rng, shape)})
    assert ("LEAKY_RELU" in exported.ops) == (slope.size == 1)


def test_prelu_with_a_slope_computed_at_run_time(rng):
    node = helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu0")
    model = graph_model([node], {"x": SHAPE, "slope": [5]}, {"y": SHAPE})
    assert_parity(model, {"x": _x(rng), "slope": rng.uniform(0, 1, 5).astype(np.float32)})


# ---- between convolutions: the activation runs channels-last ----------------------------------------
def _conv_act_conv(act_nodes, inits=None, opset=17):
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5
    w2 = rng.standard_normal((2, 4, 1, 1)).astype(np.float32) * 0.5
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]), *act_nodes,
             helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2")]
    return graph_model(nodes, {"x": (1, 3, 6, 6)}, {"y": (1, 2, 6, 6)}, {"w1": w1, "w2": w2, **(inits or {})}, opset)


LAYOUT = [
    ("prelu_per_channel", [helper.make_node("PRelu", ["a", "s"], ["b"], name="act")],
     {"s": np.array([0.1, -0.3, 0.5, 2.0], np.float32).reshape(4, 1, 1)}, 17),
    ("hard_swish", [helper.make_node("HardSwish", ["a"], ["b"], name="act")], {}, 17),
    ("clip_relu6", [helper.make_node("Clip", ["a", "lo", "hi"], ["b"], name="act")],
     {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}, 17),
    ("gelu", [helper.make_node("Gelu", ["a"], ["b"], name="act")], {}, 20),
    ("softplus", [helper.make_node("Softplus", ["a"], ["b"], name="act")], {}, 17),
    ("leaky_relu", [helper.make_node("LeakyRelu", ["a"], ["b"], name="act", alpha=0.1)], {}, 17),
]


@pytest.mark.parametrize("nodes, inits, opset", [c[1:] for c in LAYOUT], ids=[c[0] for c in LAYOUT])
def test_activation_between_convs_needs_no_transpose(rng, nodes, inits, opset):
    model = _conv_act_conv(nodes, inits, opset)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    exported = assert_parity(model, {"x": x}, channels_last_io=False)
    assert exported.ops.get("TRANSPOSE", 0) <= 2  # only at the NCHW input and output
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    exported = export(model, channels_last_io=True)
    assert "TRANSPOSE" not in exported.ops
    from .conftest import run_onnx, run_tflite

    want = run_onnx(model, {"x": x})["y"].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(run_tflite(exported.data, {"x": x_nhwc})["y"], want, rtol=1e-4, atol=1e-5)


def test_relu6_after_conv_is_fused_into_it(rng):
    nodes = [helper.make_node("Clip", ["a", "lo", "hi"], ["b"], name="act")]
    model = _conv_act_conv(nodes, {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    exported = assert_parity(model, {"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32)})
    assert "RELU6" not in exported.ops


# ---- refused variants -------------------------------------------------------------------------------
def test_an_unknown_gelu_approximation_is_refused_by_name():
    model = node_model("Gelu", {"x": SHAPE}, {"y": SHAPE}, opset=20, approximate="fast")
    with pytest.raises(UnsupportedOpsError) as err:
        export(model)
    assert err.value.problems == [("gelu0", "Gelu", "approximate='fast' (ONNX defines 'none' and 'tanh')")]
    assert "gelu0 [Gelu]" in str(err.value)
