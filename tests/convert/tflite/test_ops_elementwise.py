"""Elementwise math exports to TFLite and matches onnxruntime: numpy broadcasting with constant and
computed operands of any rank, operands in different layouts (channels-last after a conv, NCHW from
the graph input), integer arithmetic, Pow's special exponents, n-ary Max/Min/Sum/Mean, the unary
math ops, Identity/Dropout, and the variants TFLite cannot express refused by name with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, export, graph_model, node_model, run_onnx, run_tflite

SHAPE = (2, 3, 4, 5)


def typed_model(nodes, inputs, outputs, initializers=None, opset=17):
    """Like ``graph_model`` with typed I/O: ``inputs``/``outputs`` map a name to (numpy dtype, shape)."""
    def info(name, dtype, shape):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

    g = helper.make_graph(nodes, "t", [info(n, *v) for n, v in inputs.items()], [info(n, *v) for n, v in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _binary(op, a_shape, b, opset=17):
    """``op(a, b)``: ``b`` is a shape (a second graph input) or an array (a constant)."""
    node = helper.make_node(op, ["a", "b"], ["y"], name=f"{op.lower()}0")
    inputs = {"a": a_shape} if isinstance(b, np.ndarray) else {"a": a_shape, "b": b}
    b_shape = b.shape if isinstance(b, np.ndarray) else b
    out = tuple(np.broadcast_shapes(a_shape, b_shape))
    return graph_model([node], inputs, {"y": out}, {"b": b} if isinstance(b, np.ndarray) else None, opset)


def _feeds(rng, model, positive=False):
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name not in inits:
            shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            v = rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape) if not positive else rng.uniform(0.5, 2, shape)
            feeds[vi.name] = np.asarray(v, np.float32)
    return feeds


# ---- broadcasting -----------------------------------------------------------------------------------
BROADCAST = [  # id, a shape, b (shape: computed; array: constant)
    ("same_shape", SHAPE, SHAPE),
    ("scalar_const", SHAPE, np.array(1.5, np.float32)),
    ("last_axis_const", SHAPE, np.linspace(1, 2, 5, dtype=np.float32)),
    ("bias_like_const", SHAPE, np.linspace(1, 2, 3, dtype=np.float32).reshape(3, 1, 1)),
    ("full_const", SHAPE, np.linspace(1, 2, 120, dtype=np.float32).reshape(SHAPE)),
    ("lower_rank_computed", SHAPE, (4, 5)),
    ("vector_computed", SHAPE, (5,)),
    ("bias_like_computed", SHAPE, (3, 1, 1)),
    ("both_broadcast", (2, 1, 4, 1), (1, 3, 1, 5)),
    ("lower_rank_first", (5,), SHAPE),
    ("rank5", (2, 1, 3, 4, 5), (3, 1, 5)),
    ("rank6", (2, 1, 2, 1, 3, 4), (2, 1, 3, 1)),
    ("rank5_alternating", (2, 1, 3, 1, 2), (1, 2, 1, 3, 1)),  # 5 unmergeable axes: tiled
    ("rank5_scalar_const", (2, 1, 3, 4, 5), np.array(0.5, np.float32)),
    ("scalar_computed", SHAPE, ()),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("a_shape, b", [c[1:] for c in BROADCAST], ids=[c[0] for c in BROADCAST])
def test_binary_broadcasting(rng, op, a_shape, b):
    model = _binary(op, a_shape, b)
    exported = assert_parity(model, _feeds(rng, model))
    folded = {"Sub": "ADD", "Div": "MUL"}  # by a constant: ADD of -c, MUL by 1/c (tflite/arith.py)
    assert (folded.get(op, op.upper()) if isinstance(b, np.ndarray) else op.upper()) in exported.ops


def test_a_constant_first_operand(rng):
    node = helper.make_node("Sub", ["one", "x"], ["y"], name="sub0")
    model = graph_model([node], {"x": SHAPE}, {"y": SHAPE}, {"one": np.array([1.0], np.float32)})
    assert_parity(model, _feeds(rng, model))


# ---- layouts: operands stored channels-last after a conv --------------------------------------------
def _conv(name, x, out, c_in=3, c_out=3):
    w = np.random.default_rng(len(name)).standard_normal((c_out, c_in, 3, 3)).astype(np.float32) * 0.3
    return helper.make_node("Conv", [x, f"{name}_w"], [out], name=name, pads=[1, 1, 1, 1]), {f"{name}_w": w}


def _conv_op_conv(op_node, extra_inputs=None, inits=None):
    """x -> conv1 -> a; ``op_node`` makes b from a; b -> conv2 -> y (all 3 channels, 6x6)."""
    c1, w1 = _conv("conv1", "x", "a")
    c2, w2 = _conv("conv2", "b", "y")
    return graph_model([c1, op_node, c2], {"x": (1, 3, 6, 6), **(extra_inputs or {})}, {"y": (1, 3, 6, 6)},
                       {**w1, **w2, **(inits or {})})


LAYOUT = [  # id, node making b from a, extra graph inputs, initializers, TRANSPOSEs beyond x and y's two
    ("bias_like_const", helper.make_node("Add", ["a", "bias"], ["b"], name="op"), {},
     {"bias": np.array([1.0, -2.0, 3.0], np.float32).reshape(3, 1, 1)}, 0),
    ("scale_computed_c11", helper.make_node("Mul", ["a", "s"], ["b"], name="op"), {"s": (3, 1, 1)}, {}, 0),
    ("scale_computed_1c11", helper.make_node("Mul", ["s", "a"], ["b"], name="op"), {"s": (1, 3, 1, 1)}, {}, 0),
    ("row_computed", helper.make_node("Sub", ["a", "s"], ["b"], name="op"), {"s": (6,)}, {}, 0),
    ("plane_computed_chw", helper.make_node("Div", ["a", "s"], ["b"], name="op"), {"s": (3, 6, 1)}, {}, 1),
    ("max_of_three", helper.make_node("Max", ["a", "s", "bias"], ["b"], name="op"), {"s": (6,)},
     {"bias": np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1, 1)}, 0),
    ("mean_with_nchw_input", helper.make_node("Mean", ["a", "s"], ["b"], name="op"), {"s": (1, 3, 6, 6)}, {}, 1),
]


@pytest.mark.parametrize("node, extra, inits, transposes", [c[1:] for c in LAYOUT], ids=[c[0] for c in LAYOUT])
def test_elementwise_between_convs(rng, node, extra, inits, transposes):
    model = _conv_op_conv(node, extra, inits)
    exported = assert_parity(model, _feeds(rng, model, positive=True))
    # a computed operand is reshaped into the conv's channels-last layout; only one whose non-1 axes
    # change order (C, H, 1 -> H, 1, C) or a full NCHW one needs a TRANSPOSE
    assert exported.ops.get("TRANSPOSE", 0) == 2 + transposes


def test_residual_add_of_input_and_conv_stays_channels_last(rng):
    c1, w1 = _conv("conv1", "x", "a")
    c2, w2 = _conv("conv2", "b", "y")
    model = graph_model([c1, helper.make_node("Add", ["x", "a"], ["b"], name="residual"), c2],
                        {"x": (1, 3, 6, 6)}, {"y": (1, 3, 6, 6)}, {**w1, **w2})
    exported = assert_parity(model, _feeds(rng, model))
    assert exported.ops["TRANSPOSE"] == 2  # x to NHWC once (shared by conv1 and the Add), y back to NCHW


def test_two_computed_operands_in_different_layouts(rng):
    c1, w1 = _conv("conv1", "x", "a")
    model = graph_model([c1, helper.make_node("Mul", ["z", "a"], ["y"], name="mul")],
                        {"x": (1, 3, 6, 6), "z": (1, 3, 6, 6)}, {"y": (1, 3, 6, 6)}, w1)
    assert_parity(model, _feeds(rng, model))


# ---- integers ---------------------------------------------------------------------------------------
INTS = [  # id, op, dtype
    *[(f"{op.lower()}_int32", op, np.int32) for op in ("Add", "Sub", "Mul", "Div", "Max", "Min")],
    *[(f"{op.lower()}_int64", op, np.int64) for op in ("Add", "Sub", "Mul", "Max", "Min")],
    *[(f"{op.lower()}_{np.dtype(t).name}", op, t) for op in ("Add", "Mul", "Div") for t in (np.int8, np.int16, np.uint8)],
    ("max_int8", "Max", np.int8), ("min_uint8", "Min", np.uint8),  # onnxruntime has no int16 Max/Min
]


@pytest.mark.parametrize("op, dtype", [c[1:] for c in INTS], ids=[c[0] for c in INTS])
def test_integer_arithmetic(rng, op, dtype):
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -50), min(info.max, 50)
    a = rng.integers(lo, hi, SHAPE).astype(dtype)
    b = rng.integers(1, hi, (4, 5)).astype(dtype)
    if info.min < 0:
        b *= rng.choice(np.array([-1, 1], dtype), (4, 5))
    c = np.array([[3]], dtype)  # a constant operand in the same type
    nodes = [helper.make_node(op, ["a", "b"], ["t"], name="op0"), helper.make_node(op, ["t", "c"], ["y"], name="op1")]
    model = typed_model(nodes, {"a": (dtype, SHAPE), "b": (dtype, (4, 5))}, {"y": (dtype, SHAPE)}, {"c": c}, opset=14)
    assert_parity(model, {"a": a, "b": b}, rtol=0, atol=0)


def test_int8_addition_wraps_around_like_onnx():
    model = typed_model([helper.make_node("Add", ["a", "b"], ["y"], name="add0")],
                        {"a": (np.int8, (3,)), "b": (np.int8, (3,))}, {"y": (np.int8, (3,))}, opset=14)
    assert_parity(model, {"a": np.array([100, -100, 1], np.int8), "b": np.array([100, -100, 2], np.int8)}, atol=0)


# ---- Pow --------------------------------------------------------------------------------------------
POW = [  # id, exponent, the op it becomes
    ("square", 2.0, "MUL"), ("sqrt", 0.5, "SQRT"), ("reciprocal", -1.0, "DIV"), ("one", 1.0, None),
    ("cube", 3.0, "POW"), ("fractional", 1.7, "POW"),
]


@pytest.mark.parametrize("exponent, emitted", [c[1:] for c in POW], ids=[c[0] for c in POW])
def test_pow_constant_exponent(rng, exponent, emitted):
    model = _binary("Pow", SHAPE, np.array(exponent, np.float32))
    positive = exponent not in (2.0, 3.0, -1.0)
    exported = assert_parity(model, _feeds(rng, model, positive=positive))
    if emitted:
        assert emitted in exported.ops and "POW" not in exported.ops or emitted == "POW"


@pytest.mark.parametrize("b", [(5,), SHAPE, np.linspace(0.5, 2, 5, dtype=np.float32)],
                         ids=["computed_vector", "computed_full", "const_vector"])
def test_pow_tensor_exponent(rng, b):
    model = _binary("Pow", SHAPE, b)
    assert_parity(model, _feeds(rng, model, positive=True))


def test_pow_rank5_broadcast(rng):
    model = _binary("Pow", (2, 1, 3, 4, 5), (3, 1, 5))
    exported = assert_parity(model, _feeds(rng, model, positive=True))
    assert "RESHAPE" in exported.ops  # run on merged axes: POW broadcasts only up to 4-D in tflite-runtime 2.14


def test_pow_of_int32_by_int64_and_by_float():
    x = np.array([1, 2, 3, 4], np.int32)
    for e_type, e in ((np.int64, np.array([2, 3, 0, 1], np.int64)), (np.float32, np.array([2, 0.5, 1.5, 3], np.float32))):
        model = typed_model([helper.make_node("Pow", ["x", "e"], ["y"], name="pow0")],
                            {"x": (np.int32, (4,)), "e": (e_type, (4,))}, {"y": (np.int32, (4,))}, opset=15)
        assert_parity(model, {"x": x, "e": e}, atol=0)


# ---- n-ary ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[SHAPE], [SHAPE, SHAPE], [SHAPE, (5,), (3, 1, 1)], [(4, 1), (1, 5), (3, 1, 1), ()]],
                         ids=["one", "two", "three_broadcast", "four_mutual"])
def test_nary(rng, op, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    out = tuple(np.broadcast_shapes(*shapes))
    model = graph_model([helper.make_node(op, names, ["y"], name="op0")], dict(zip(names, shapes)), {"y": out})
    assert_parity(model, _feeds(rng, model))


# ---- unary math -------------------------------------------------------------------------------------
UNARY = ["Exp", "Log", "Sqrt", "Abs", "Neg", "Floor", "Ceil", "Round", "Sin", "Cos", "Sign", "Reciprocal"]


@pytest.mark.parametrize("op", UNARY)
def test_unary(rng, op):
    x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -0.5, -2.5, 0.0]  # Round: halves go to even
    if op in ("Log", "Sqrt"):
        x = np.abs(x) + 0.1
    if op == "Reciprocal":
        x[x == 0] = 1.0
    assert_parity(node_model(op, {"x": SHAPE}, {"y": None}), {"x": x})


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign"])
def test_unary_int32(rng, op):
    model = typed_model([helper.make_node(op, ["x"], ["y"], name="op0")], {"x": (np.int32, SHAPE)},
                        {"y": (np.int32, SHAPE)}, opset=13)
    assert_parity(model, {"x": rng.integers(-9, 9, SHAPE).astype(np.int32)}, atol=0)


def test_unary_after_conv_keeps_channels_last(rng):
    model = _conv_op_conv(helper.make_node("Exp", ["a"], ["b"], name="op"))
    x = _feeds(rng, model)["x"]
    exported = assert_parity(model, {"x": x})
    assert exported.ops.get("TRANSPOSE", 0) == 2


# ---- Identity and Dropout -----------------------------------------------------------------------------
def test_identity_as_graph_output(rng):
    model = node_model("Identity", {"x": SHAPE}, {"y": SHAPE})
    assert_parity(model, _feeds(rng, model))


@pytest.mark.parametrize("opset", [7, 10, 13])
def test_inference_dropout_with_mask(rng, opset):
    node = helper.make_node("Dropout", ["x"], ["y", "mask"], name="dropout0")
    mask_type = np.bool_ if opset >= 10 else np.float32
    model = typed_model([node, helper.make_node("Relu", ["y"], ["z"], name="relu0")], {"x": (np.float32, SHAPE)},
                        {"z": (np.float32, SHAPE), "mask": (mask_type, SHAPE)}, opset=opset)
    feeds = {"x": rng.standard_normal(SHAPE).astype(np.float32)}
    got = run_tflite(export(model).data, feeds)
    np.testing.assert_allclose(got["z"], run_onnx(model, feeds)["z"])
    # nothing is dropped: the mask is all ones, as onnx's reference has it (onnxruntime says zeros before opset 12)
    assert got["mask"].dtype == mask_type and np.all(got["mask"] == 1)


# ---- refused variants, reported by node name with a reason -----------------------------------------------
def test_refused_variants_are_listed_together():
    nodes = [
        helper.make_node("Div", ["i", "i"], ["q"], name="int64_div"),
        helper.make_node("Pow", ["i", "i"], ["p"], name="int64_pow"),
        helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="train_dropout"),
        helper.make_node("Pow", ["j", "minus_one"], ["r"], name="int32_inverse"),
    ]
    model = typed_model(nodes, {"i": (np.int64, (3,)), "x": (np.float32, (3,)), "j": (np.int32, (3,))},
                        {"q": (np.int64, (3,)), "p": (np.int64, (3,)), "y": (np.float32, (3,)), "r": (np.int32, (3,))},
                        {"ratio": np.array(0.5, np.float32), "training": np.array(True),
                         "minus_one": np.array(-1, np.int64)}, opset=15)
    with pytest.raises(UnsupportedOpsError) as err:
        export(model)
    assert err.value.problems == [
        ("int64_div", "Div", "int64 Div arithmetic (TFLite computes it for float32, int16, int32, int8, uint8)"),
        ("int64_pow", "Pow", "int64 Pow (TFLite computes it for float32, int32)"),
        ("train_dropout", "Dropout", "training-mode Dropout with a non-zero ratio drops at random"),
        ("int32_inverse", "Pow", "a negative integer exponent of an int32 base (TFLite's int32 POW refuses it)"),
    ]
    assert "int64_div [Div]" in str(err.value)


def test_a_training_dropout_with_zero_ratio_is_a_copy(rng):
    node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="dropout0")
    model = graph_model([node], {"x": SHAPE}, {"y": SHAPE},
                        {"ratio": np.array(0.0, np.float32), "training": np.array(True)}, opset=15)
    assert_parity(model, _feeds(rng, model))
