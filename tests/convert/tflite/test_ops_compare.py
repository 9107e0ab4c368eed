"""Comparisons (Greater, Less, GreaterOrEqual, LessOrEqual, Equal) and Where export to TFLite and
match onnxruntime: numpy broadcasting with constant and computed operands, channels-last operands
after a conv, integers, bool results as graph outputs; and the Softplus that torch's dynamo exporter
writes as Where(x > 20, x, log1p(exp(x))), which stopped the zoo's YOLO-style detector (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, export, graph_model, onnx
from .test_ops_elementwise import typed_model

COMPARE = {"Greater": "GREATER", "Less": "LESS", "GreaterOrEqual": "GREATER_EQUAL", "LessOrEqual": "LESS_EQUAL",
           "Equal": "EQUAL"}
SHAPES = [  # id, a shape, b shape (None: a constant of that shape)
    ("same_shape", (2, 3, 4, 5), (2, 3, 4, 5)),
    ("scalar_const", (2, 3, 4, 5), None),
    ("lower_rank_computed", (2, 3, 4, 5), (4, 5)),
    ("both_broadcast", (2, 1, 4, 1), (1, 3, 1, 5)),
    ("rank5", (2, 1, 3, 4, 5), (3, 1, 5)),
]


def _values(rng, shape, dtype):
    """Small integers (as ``dtype``), so that Equal and the or-equal ops see ties."""
    return rng.integers(-3, 4, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.int8], ids=["f32", "i32", "i64", "i8"])
@pytest.mark.parametrize("a_shape, b_shape", [c[1:] for c in SHAPES], ids=[c[0] for c in SHAPES])
@pytest.mark.parametrize("op", list(COMPARE))
def test_comparison(rng, op, a_shape, b_shape, dtype):
    out = tuple(np.broadcast_shapes(a_shape, b_shape or ()))
    inputs = {"a": (dtype, a_shape)} | ({"b": (dtype, b_shape)} if b_shape else {})
    inits = None if b_shape else {"b": np.array(1, dtype)}
    model = typed_model([helper.make_node(op, ["a", "b"], ["y"])], inputs, {"y": (np.bool_, out)}, inits)
    feeds = {k: _values(rng, s, dtype) for k, (_, s) in inputs.items()}
    exported = assert_parity(model, feeds)
    assert COMPARE[op] in exported.ops


def test_equal_of_bools(rng):
    model = typed_model([helper.make_node("Equal", ["a", "b"], ["y"])], {"a": (np.bool_, (3, 4)), "b": (np.bool_, (4,))},
                        {"y": (np.bool_, (3, 4))})
    assert_parity(model, {"a": rng.random((3, 4)) > 0.5, "b": rng.random(4) > 0.5})


WHERE = [  # id, condition shape, x shape, y shape (None: a scalar constant)
    ("same_shape", (2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)),
    ("scalar_else", (2, 3, 4, 5), (2, 3, 4, 5), None),
    ("broadcast_condition", (4, 5), (2, 3, 4, 5), (3, 1, 1)),
    ("rank5", (2, 1, 3, 1, 5), (1, 4, 1, 2, 5), None),
]


@pytest.mark.parametrize("c_shape, x_shape, y_shape", [c[1:] for c in WHERE], ids=[c[0] for c in WHERE])
def test_where_broadcasting(rng, c_shape, x_shape, y_shape):
    inputs = {"c": (np.bool_, c_shape), "x": (np.float32, x_shape)} | ({"e": (np.float32, y_shape)} if y_shape else {})
    out = tuple(np.broadcast_shapes(c_shape, x_shape, y_shape or ()))
    model = typed_model([helper.make_node("Where", ["c", "x", "e"], ["y"])], inputs, {"y": (np.float32, out)},
                        None if y_shape else {"e": np.array(-1.0, np.float32)})
    feeds = {"c": rng.random(c_shape) > 0.5, "x": rng.standard_normal(x_shape).astype(np.float32)}
    if y_shape:
        feeds["e"] = rng.standard_normal(y_shape).astype(np.float32)
    assert "SELECT_V2" in assert_parity(model, feeds).ops


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_], ids=["i32", "i64", "bool"])
def test_where_of_integers_and_bools(rng, dtype):
    shape = (3, 4)
    model = typed_model([helper.make_node("Where", ["c", "a", "b"], ["y"])],
                        {"c": (np.bool_, shape), "a": (dtype, shape), "b": (dtype, (4,))}, {"y": (dtype, shape)})
    assert_parity(model, {"c": rng.random(shape) > 0.5, "a": _values(rng, shape, dtype),
                          "b": _values(rng, (4,), dtype)})


def test_comparison_and_where_after_a_conv_stay_channels_last(rng):
    """ReLU written as Where(conv > 0, conv, 0) between two convs: no transposes inside the graph."""
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Greater", ["c", "zero"], ["pos"]),
             helper.make_node("Where", ["pos", "c", "zero"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1])]
    model = graph_model(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 8, 8]},
                        {"w": w, "zero": np.array(0.0, np.float32), "w2": w[:, :1].repeat(4, 1)})
    exported = assert_parity(model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)})
    assert exported.ops.get("TRANSPOSE", 0) <= 2  # the I/O boundary only


def dynamo_softplus(threshold=20.0):
    """torch.nn.Softplus as torch.onnx.export(dynamo=True) writes it: where(x > t, x, log1p(exp(x)))."""
    nodes = [helper.make_node("Greater", ["x", "t"], ["big"]), helper.make_node("Softplus", ["x"], ["sp"]),
             helper.make_node("Where", ["big", "x", "sp"], ["y"])]
    return graph_model(nodes, {"x": [2, 8]}, {"y": [2, 8]}, {"t": np.array(threshold, np.float32)}, opset=18)


def test_dynamo_softplus_of_the_yolo_style_detector(rng):
    """Bug: no converter for Greater and Where stopped every TFLite mode of the zoo's YOLO-style detector."""
    x = (rng.standard_normal((2, 8)) * 15).astype(np.float32)
    assert_parity(dynamo_softplus(), {"x": x})


def test_float64_comparison_is_refused_with_a_reason():
    model = typed_model([helper.make_node("Less", ["a", "b"], ["y"])], {"a": (np.float64, (3,)), "b": (np.float64, (3,))},
                        {"y": (np.bool_, (3,))})
    with pytest.raises(UnsupportedOpsError, match="Less"):
        export(onnx.shape_inference.infer_shapes(model))
