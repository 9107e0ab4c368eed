"""Shape and data-movement ops convert and agree with onnxruntime: Reshape, Flatten, Squeeze, Unsqueeze,
Transpose, Concat, Split, Slice, Pad, Gather, Expand, Tile, Cast, Shape/Size; on NHWC-stored
convolution outputs they run in place (no TRANSPOSE), and unsupported variants are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeops.convert.tflite import export
from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, graph_model, node_model, onnx, run_tflite

I64_MAX = np.iinfo(np.int64).max


def i64(*values):
    return np.array(values, np.int64)


def conv_around(nodes, extra=None, tail=True, c=4, mid_c=None):
    """x [1, 1, 6, 6] -> Conv (c channels, 'a', stored NHWC) -> ``nodes`` (reading 'a', writing 'm')
    -> a 1x1 Conv to one channel 'y' (``tail``) or 'm' as the output. One input and output channel,
    so the only layout changes an ideal export has are RESHAPEs: any TRANSPOSE is one too many."""
    g = np.random.default_rng(1)
    inits = {"w": g.standard_normal((c, 1, 3, 3)).astype(np.float32), **(extra or {})}
    all_nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]), *nodes]
    if tail:
        inits["w2"] = g.standard_normal((1, mid_c or c, 1, 1)).astype(np.float32)
        all_nodes.append(helper.make_node("Conv", ["m", "w2"], ["y"]))
    return graph_model(all_nodes, {"x": [1, 1, 6, 6]}, {"y" if tail else "m": None}, inits, opset=18)


def x6(rng):
    return {"x": rng.standard_normal((1, 1, 6, 6)).astype(np.float32)}


# ---- Reshape, Flatten, Squeeze, Unsqueeze -------------------------------------------------------
@pytest.mark.parametrize("shape, target, attrs", [
    ((2, 3, 4), [6, 4], {}),
    ((2, 3, 4), [-1, 2], {}),
    ((2, 3, 4), [0, -1], {}),
    ((2, 3, 4), [4, 0, 2], {}),
    ((2, 3, 4), [4, 6], {"allowzero": 1}),
    ((2, 3, 4), [-1], {}),
    ((1, 1), [], {}),
], ids=["merge", "minus-one", "zero-copies-a-dim", "zero-in-the-middle", "allowzero", "to-1d", "to-scalar"])
def test_reshape(rng, shape, target, attrs):
    model = node_model("Reshape", {"x": shape}, {"y": None}, {"shape": i64(*target)}, opset=14, **attrs)
    assert_parity(model, {"x": rng.standard_normal(shape).astype(np.float32)})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(rng, axis):
    model = node_model("Flatten", {"x": (2, 3, 4, 5)}, {"y": None}, axis=axis)
    assert_parity(model, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)})


@pytest.mark.parametrize("op, shape, axes, opset", [
    ("Squeeze", (1, 3, 1, 4), [0, 2], 11),
    ("Squeeze", (1, 3, 1, 4), [-2], 13),
    ("Squeeze", (1, 3, 1, 4), None, 13),
    ("Unsqueeze", (3, 4), [0, 3], 11),
    ("Unsqueeze", (3, 4), [-1, 1], 13),
], ids=["squeeze-attr", "squeeze-input-negative", "squeeze-all", "unsqueeze-attr", "unsqueeze-input"])
def test_squeeze_unsqueeze(rng, op, shape, axes, opset):
    if axes is None:
        model = node_model(op, {"x": shape}, {"y": None}, opset=opset)
    elif opset < 13:
        model = node_model(op, {"x": shape}, {"y": None}, opset=opset, axes=axes)
    else:
        model = node_model(op, {"x": shape}, {"y": None}, {"axes": i64(*axes)}, opset=opset)
    assert_parity(model, {"x": rng.standard_normal(shape).astype(np.float32)})


def test_reshape_of_an_nhwc_tensor_merging_adjacent_axes_moves_no_data(rng):
    # [1, C, H, W] stored NHWC -> [1, C, H*W] -> [1, H*W, C]: the token layout of a vision transformer
    nodes = [helper.make_node("Reshape", ["a", "s"], ["r"]), helper.make_node("Transpose", ["r"], ["m"], perm=[0, 2, 1])]
    exported = assert_parity(conv_around(nodes, {"s": i64(1, 4, 36)}, tail=False), x6(rng))
    assert "TRANSPOSE" not in exported.ops


def test_flatten_of_an_nhwc_tensor_reads_it_in_onnx_order(rng):
    exported = assert_parity(conv_around([helper.make_node("Flatten", ["a"], ["m"])], tail=False), x6(rng))
    assert exported.ops["TRANSPOSE"] == 1


# ---- Transpose --------------------------------------------------------------------------------------
@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1], [1, 2, 0]], ids=["default", "021", "201", "120"])
def test_transpose(rng, perm):
    attrs = {} if perm is None else {"perm": perm}
    model = node_model("Transpose", {"x": (2, 3, 4)}, {"y": None}, **attrs)
    assert_parity(model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})


def test_transpose_to_nhwc_of_a_conv_output_is_free(rng):
    model = conv_around([helper.make_node("Transpose", ["a"], ["m"], perm=[0, 2, 3, 1])], tail=False)
    exported = assert_parity(model, x6(rng))
    assert "TRANSPOSE" not in exported.ops and exported.outputs[0][1] == (1, 6, 6, 4)


def test_transposes_between_convs_compose(rng):
    nodes = [helper.make_node("Transpose", ["a"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("Transpose", ["t"], ["m"], perm=[0, 1, 3, 2])]
    exported = assert_parity(conv_around(nodes), x6(rng))
    assert "TRANSPOSE" not in exported.ops  # the two cancel out: nothing is emitted


# ---- Concat, Split ------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_with_a_constant_operand(rng, axis):
    shape = (2, 3, 4)
    const_shape = list(shape)
    const_shape[axis] = 1
    k = rng.standard_normal(const_shape).astype(np.float32)
    model = node_model("Concat", {"a": shape, "b": shape}, {"y": None}, {"k": k}, axis=axis)
    feeds = {n: rng.standard_normal(shape).astype(np.float32) for n in "ab"}
    assert_parity(model, feeds)


def test_concat_of_conv_outputs_on_channels_runs_in_nhwc(rng):
    k = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Concat", ["a", "k", "r"], ["m"], axis=1)]
    g = np.random.default_rng(2)
    model = conv_around(nodes, {"k": k}, tail=False)
    model.graph.initializer.append(numpy_helper.from_array(g.standard_normal((1, 10, 1, 1)).astype(np.float32), "w2"))
    model.graph.node.append(helper.make_node("Conv", ["m", "w2"], ["y"]))
    model.graph.output[0].name = "y"
    exported = assert_parity(model, x6(rng))
    assert "TRANSPOSE" not in exported.ops


def test_concat_of_operands_in_different_layouts(rng):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "x2"], ["y"], axis=1)]
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    model = graph_model(nodes, {"x": [1, 1, 6, 6], "x2": [1, 2, 6, 6]}, {"y": None}, {"w": w})
    assert_parity(model, {"x": rng.standard_normal((1, 1, 6, 6)).astype(np.float32),
                          "x2": rng.standard_normal((1, 2, 6, 6)).astype(np.float32)})


@pytest.mark.parametrize("shape, axis, split, opset, n_out", [
    ((6, 4), 0, None, 11, 3),
    ((6, 4), 1, [1, 3], 11, 2),
    ((6, 4), -1, [3, 1], 13, 2),
    ((7, 4), 0, None, 18, 3),
    ((2, 6, 3), 1, None, 13, 2),
], ids=["equal-attr", "sizes-attr", "sizes-input", "num-outputs-uneven", "equal-3d"])
def test_split(rng, shape, axis, split, opset, n_out):
    outs = {f"y{i}": None for i in range(n_out)}
    attrs = {"axis": axis}
    inits = {}
    if split is not None and opset < 13:
        attrs["split"] = split
    elif split is not None:
        inits["split"] = i64(*split)
    if opset >= 18 and split is None:
        attrs["num_outputs"] = n_out
    model = node_model("Split", {"x": shape}, outs, inits, opset=opset, **attrs)
    exported = assert_parity(model, {"x": rng.standard_normal(shape).astype(np.float32)})
    assert set(exported.ops) <= {"SPLIT", "SPLIT_V"}


def test_split_of_a_conv_output_on_channels(rng):
    nodes = [helper.make_node("Split", ["a", "sizes"], ["s0", "s1"], axis=1),
             helper.make_node("Concat", ["s1", "s0"], ["m"], axis=1)]
    exported = assert_parity(conv_around(nodes, {"sizes": i64(1, 3)}), x6(rng))
    assert "TRANSPOSE" not in exported.ops and "SPLIT_V" in exported.ops


# ---- Slice ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([1, 0], [3, 4], None, None),
    ([-3], [-1], [2], None),
    ([1], [I64_MAX], [1], None),
    ([0, 1], [5, 5], [0, 2], [2, 2]),
    ([-1], [-I64_MAX], [2], [-1]),
    ([3], [0], [2], [-2]),
    ([10], [-10], [1], [-1]),
    ([-100], [100], [-1], None),
], ids=["basic", "negative-indices", "int64-max-end", "steps", "reverse-all", "negative-step-2",
        "reverse-out-of-range", "clamped"])
def test_slice(rng, starts, ends, axes, steps):
    inits = {"starts": i64(*starts), "ends": i64(*ends)}
    if axes is not None or steps is not None:
        inits["axes"] = i64(*(axes if axes is not None else range(len(starts))))
    if steps is not None:
        inits["steps"] = i64(*steps)
    model = node_model("Slice", {"x": (4, 5, 6)}, {"y": None}, inits)
    assert_parity(model, {"x": rng.standard_normal((4, 5, 6)).astype(np.float32)})


def test_slice_opset9_attributes(rng):
    model = node_model("Slice", {"x": (4, 5)}, {"y": None}, opset=9, starts=[1, -3], ends=[3, 1000], axes=[0, 1])
    assert_parity(model, {"x": rng.standard_normal((4, 5)).astype(np.float32)})


@pytest.mark.parametrize("axes, starts, ends, mid_c", [([1], [1], [3], 2), ([2, 3], [1, 0], [5, -1], 4)],
                         ids=["channels", "hw"])
def test_slice_of_a_conv_output_runs_in_nhwc(rng, axes, starts, ends, mid_c):
    node = helper.make_node("Slice", ["a", "st", "en", "ax"], ["m"])
    model = conv_around([node], {"st": i64(*starts), "en": i64(*ends), "ax": i64(*axes)}, mid_c=mid_c)
    exported = assert_parity(model, x6(rng))
    assert "TRANSPOSE" not in exported.ops


# ---- Pad -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, pads, value, opset", [
    ("constant", [0, 1, 2, 0, 2, 1], None, 13),
    ("constant", [1, 0, 0, 0, 2, 3], 1.5, 13),
    ("constant", [0, -1, 2, 0, 1, -2], None, 13),
    ("reflect", [0, 2, 1, 0, 1, 2], None, 13),
    ("edge", [1, 2, 0, 0, 3, 1], None, 13),
    ("wrap", [0, 2, 1, 0, 3, 2], None, 19),
    ("constant", [0, 1, 2, 0, 2, 1], 0.5, 10),
], ids=["zeros", "value", "negative-crops", "reflect", "edge", "wrap", "opset10-attribute"])
def test_pad(rng, mode, pads, value, opset):
    if opset < 11:
        model = node_model("Pad", {"x": (2, 4, 5)}, {"y": None}, opset=opset, mode=mode, pads=pads, value=value)
    else:
        inits = {"pads": i64(*pads)}
        if value is not None:
            inits["value"] = np.array(value, np.float32)
        model = node_model("Pad", {"x": (2, 4, 5)}, {"y": None}, inits, opset=opset, mode=mode)
    assert_parity(model, {"x": rng.standard_normal((2, 4, 5)).astype(np.float32)})


def test_pad_with_axes(rng):
    inits = {"pads": i64(1, 2, 3, 0), "value": np.array(2.0, np.float32), "axes": i64(-1, 1)}
    model = node_model("Pad", {"x": (2, 4, 5)}, {"y": None}, inits, opset=18)
    assert_parity(model, {"x": rng.standard_normal((2, 4, 5)).astype(np.float32)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_of_a_conv_output_runs_in_nhwc(rng, mode):
    node = helper.make_node("Pad", ["a", "pads"], ["m"], mode=mode)
    exported = assert_parity(conv_around([node], {"pads": i64(0, 0, 1, 2, 0, 0, 2, 1)}), x6(rng))
    assert "TRANSPOSE" not in exported.ops


# ---- Gather, Expand, Tile, Cast, Shape, Size ------------------------------------------------------------------
@pytest.mark.parametrize("axis, indices", [
    (0, np.array(1)), (1, np.array([2, 0, 2])), (2, np.array([[0, 1], [3, -1]])), (-1, np.array([-4, 3])),
], ids=["scalar", "1d-repeats", "2d-negative", "negative-axis"])
def test_gather_constant_indices(rng, axis, indices):
    model = node_model("Gather", {"x": (3, 4, 4)}, {"y": None}, {"idx": indices.astype(np.int64)}, axis=axis)
    assert_parity(model, {"x": rng.standard_normal((3, 4, 4)).astype(np.float32)})


def test_gather_run_time_indices_from_a_constant_table(rng):
    # an embedding lookup: constant table, indices fed at run time (negative ones wrap like ONNX)
    table = rng.standard_normal((10, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], "t",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2, 3])],
                          [numpy_helper.from_array(table, "table")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert_parity(model, {"ids": np.array([[0, 9], [-1, 4]], np.int64)})


def test_gather_on_channels_of_a_conv_output(rng):
    node = helper.make_node("Gather", ["a", "idx"], ["m"], axis=1)
    exported = assert_parity(conv_around([node], {"idx": i64(3, 0, 0, 2, 1)}, mid_c=5), x6(rng))
    assert "TRANSPOSE" not in exported.ops


@pytest.mark.parametrize("shape, target", [((3, 1), [2, 3, 4]), ((1, 3, 1), [2, 3, 4]), ((2, 3), [2, 3])],
                         ids=["new-axes", "size-1-axes", "unchanged"])
def test_expand(rng, shape, target):
    model = node_model("Expand", {"x": shape}, {"y": None}, {"shape": i64(*target)})
    assert_parity(model, {"x": rng.standard_normal(shape).astype(np.float32)})


def test_tile(rng):
    model = node_model("Tile", {"x": (2, 3)}, {"y": None}, {"repeats": i64(2, 3)})
    assert_parity(model, {"x": rng.standard_normal((2, 3)).astype(np.float32)})


def test_cast_float_to_int_and_back(rng):
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32), helper.make_node("Cast", ["i"], ["y"], to=1)]
    model = graph_model(nodes, {"x": [2, 5]}, {"y": [2, 5]})
    exported = assert_parity(model, {"x": (rng.standard_normal((2, 5)) * 5).astype(np.float32)})
    assert exported.ops == {"CAST": 2}


def test_shape_and_size_outputs_are_constants(rng):
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1), helper.make_node("Size", ["x"], ["n"]),
             helper.make_node("Relu", ["x"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                          [helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
                           helper.make_tensor_value_info("n", TensorProto.INT64, []),
                           helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])])
    exported = export(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    got = run_tflite(exported.data, {"x": np.ones((2, 3, 4), np.float32)})
    assert got["s"].tolist() == [3, 4] and got["n"].shape == () and int(got["n"]) == 24


# ---- refusals --------------------------------------------------------------------------------------------------
def refusal(model):
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    return info.value


@pytest.mark.parametrize("model, reason", [
    (lambda: node_model("Pad", {"x": (2, 4)}, {"y": None}, {"pads": i64(0, -1, 0, 1)}, mode="edge"),
     "negative pads in edge mode"),
    (lambda: node_model("Pad", {"x": (2, 4)}, {"y": None}, {"pads": i64(0, 4, 0, 0)}, mode="reflect"),
     "reflect pads as large as the dimension"),
    (lambda: node_model("Slice", {"x": (4, 5)}, {"y": None}, {"starts": i64(3), "ends": i64(1), "axes": i64(0)}),
     "an empty result"),
    (lambda: node_model("Tile", {"x": (2, 3)}, {"y": None}, {"repeats": i64(0, 1)}), "an empty result"),
], ids=["pad-edge-negative", "pad-reflect-too-wide", "slice-empty", "tile-empty"])
def test_refused_variants_name_the_node_and_reason(model, reason):
    err = refusal(model())
    (name, op, why), = err.problems
    assert reason in why and name.endswith("0") and name in str(err) and reason in str(err)


def test_a_cast_to_double_is_refused():
    g = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE, name="to_double")], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2])])
    err = refusal(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert err.problems[0][:2] == ("to_double", "Cast") and "float64" in err.problems[0][2]


def test_run_time_slice_starts_are_refused():
    g = helper.make_graph([helper.make_node("Slice", ["x", "s", "e"], ["y"], name="cut")], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                           helper.make_tensor_value_info("s", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(i64(3), "e")])
    err = refusal(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert err.problems[0][0] == "cut" and "computed at run time" in err.problems[0][2]


def test_every_refused_node_is_reported_together():
    nodes = [helper.make_node("Pad", ["x", "p"], ["a"], mode="edge", name="pad_a"),
             helper.make_node("Pad", ["a", "p2"], ["y"], mode="reflect", name="pad_b")]
    model = graph_model(nodes, {"x": [2, 4]}, {"y": None}, {"p": i64(0, -1, 0, 0), "p2": i64(0, 9, 0, 0)})
    err = refusal(onnx.shape_inference.infer_shapes(model))
    assert [p[0] for p in err.problems] == ["pad_a", "pad_b"]
