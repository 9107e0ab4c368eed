"""Reductions convert and agree with onnxruntime: every Reduce* op, axes as attribute or input,
keepdims, noop_with_empty_axes; over H, W of a convolution output they need no transpose."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeops.convert.tflite import export
from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, graph_model, node_model

OPS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
AXES_AS_INPUT_SINCE = {"ReduceSum": 13}  # the others: 18


def reduce_model(op, shape, axes, keepdims, opset, **attrs):
    if axes is not None and opset < AXES_AS_INPUT_SINCE.get(op, 18):
        return node_model(op, {"x": shape}, {"y": None}, opset=opset, axes=axes, keepdims=keepdims, **attrs)
    inits = {} if axes is None else {"axes": np.array(axes, np.int64)}
    return node_model(op, {"x": shape}, {"y": None}, inits, opset=opset, keepdims=keepdims, **attrs)


def positive(rng, shape):  # LogSum and Prod want values near 1
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes, keepdims, opset", [
    ([1], 1, 13), ([0, 2], 0, 13), ([-1], 1, 18), (None, 0, 13), (None, 1, 18),
], ids=["one-axis-attr", "two-axes-dropped", "negative-axis-input", "all-axes", "all-axes-kept-opset18"])
def test_reduce(rng, op, axes, keepdims, opset):
    model = reduce_model(op, (2, 3, 4), axes, keepdims, opset)
    assert_parity(model, {"x": positive(rng, (2, 3, 4))})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_empty_axes_with_noop_is_identity(rng, op):
    model = node_model(op, {"x": (2, 3)}, {"y": None}, {"axes": np.zeros(0, np.int64)}, opset=18,
                       noop_with_empty_axes=1)
    exported = assert_parity(model, {"x": rng.standard_normal((2, 3)).astype(np.float32)})
    assert set(exported.ops) <= {"RESHAPE"}  # a copy of the input: nothing is computed


def test_log_sum_exp_of_large_values_does_not_overflow(rng):
    model = reduce_model("ReduceLogSumExp", (2, 5), [1], 0, 13)
    assert_parity(model, {"x": (rng.standard_normal((2, 5)) * 10 + 100).astype(np.float32)})


def conv_then(node, tail_channels, inits=None):
    """x [1, 1, 6, 6] -> Conv (4 channels, stored NHWC) -> ``node`` -> 'm' -> 1x1 Conv -> 'y' (or 'm' is 'y')."""
    g = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]), node]
    inits = {"w": g.standard_normal((4, 1, 3, 3)).astype(np.float32), **(inits or {})}
    if tail_channels:
        nodes.append(helper.make_node("Conv", ["m", "w2"], ["y"]))
        inits["w2"] = g.standard_normal((1, tail_channels, 1, 1)).astype(np.float32)
    return graph_model(nodes, {"x": [1, 1, 6, 6]}, {"y" if tail_channels else "m": None}, inits, opset=13)


@pytest.mark.parametrize("op, axes, keepdims, tail", [
    ("ReduceMean", [2, 3], 1, 4), ("ReduceMax", [1], 1, 1), ("ReduceSum", [2, 3], 0, None), ("ReduceL2", [2], 1, 4),
], ids=["mean-hw-kept", "max-channels", "sum-hw-dropped", "l2-h"])
def test_reduce_of_a_conv_output_needs_no_transpose(rng, op, axes, keepdims, tail):
    if op in AXES_AS_INPUT_SINCE:
        node, inits = helper.make_node(op, ["a", "axes"], ["m"], keepdims=keepdims), {"axes": np.array(axes, np.int64)}
    else:
        node, inits = helper.make_node(op, ["a"], ["m"], axes=axes, keepdims=keepdims), {}
    exported = assert_parity(conv_then(node, tail, inits), {"x": rng.standard_normal((1, 1, 6, 6)).astype(np.float32)})
    assert "TRANSPOSE" not in exported.ops


def test_integer_max_and_sum(rng):
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32),
             helper.make_node("ReduceMax", ["i"], ["m"], axes=[1], keepdims=0),
             helper.make_node("ReduceSum", ["i", "ax"], ["s"], keepdims=0),
             helper.make_node("Add", ["m", "s"], ["t"]), helper.make_node("Cast", ["t"], ["y"], to=1)]
    model = graph_model(nodes, {"x": [3, 4]}, {"y": [3]}, {"ax": np.array([1], np.int64)}, opset=13)
    assert_parity(model, {"x": (rng.standard_normal((3, 4)) * 10).astype(np.float32)})


def test_refusals_name_the_node_and_reason():
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32),
             helper.make_node("ReduceMean", ["i"], ["m"], axes=[1], name="int_mean"),
             helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="dyn_sum")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                       helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("m", TensorProto.INT32, None),
                           helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(UnsupportedOpsError) as info:
        export(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    problems = {name: why for name, _, why in info.value.problems}
    assert "int32" in problems["int_mean"] and "run time" in problems["dyn_sum"]


def test_reduce_of_an_empty_tensor_is_a_constant():
    g = helper.make_graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 3])],
                          [numpy_helper.from_array(np.array([1], np.int64), "axes")])
    exported = export(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert exported.outputs == [("y", (2, 1, 3))]
