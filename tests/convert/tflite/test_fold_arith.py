"""Constant arithmetic folds away (``tflite/arith.py``): division by a constant becomes a multiplication,
per-channel Mul/Add after a conv or a fully-connected layer go into its weights and bias, constant
chains merge, Add of zero and Mul by one disappear; and what must not fold stays, with parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeops.convert import graph
from edgeops.errors import ModelFormatError

from .conftest import assert_parity, graph_model, onnx


def f32(rng, *shape, low=None):
    a = rng.standard_normal(shape).astype(np.float32)
    return a if low is None else (np.abs(a) + low).astype(np.float32)


@pytest.fixture(params=["ort-optimizer", "ort-skipped"])
def optimizer(request, monkeypatch):
    """Each fold with onnxruntime's optimizer (which folds some of these itself) and without it (an opset
    newer than the installed onnxruntime): the TFLite graph is the same either way."""
    if request.param == "ort-skipped":
        def skipped(src, dst, threads=None):
            raise ModelFormatError("onnxruntime cannot load the model to optimize it: test")
        monkeypatch.setattr(graph, "optimize", skipped)
    return request.param


def conv_then(rng, tail, channels=8, group=1, extra_outputs=None):
    """x [1, 4, 8, 8] -> Conv (3x3, pads 1) -> ``tail`` nodes reading "c" and writing "y"."""
    cin = 4
    inits = {"W": f32(rng, channels, cin // group, 3, 3), "B": f32(rng, channels)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], group=group)]
    consts = {}
    for node, values in tail:
        nodes.append(node)
        consts.update(values)
    outputs = {"y": None, **(extra_outputs or {})}
    m = graph_model(nodes, {"x": [1, cin, 8, 8]}, outputs, {**inits, **consts})
    return onnx.shape_inference.infer_shapes(m), {"x": f32(rng, 1, cin, 8, 8)}


# ---- division by a constant ------------------------------------------------------------------


@pytest.mark.parametrize("divisor", [6.0, 0.1, 3.0], ids=["six", "tenth", "three"])
def test_div_by_constant_becomes_mul(rng, divisor):
    m = graph_model([helper.make_node("Div", ["x", "d"], ["y"])], {"x": [2, 16]}, {"y": [2, 16]},
                    {"d": np.array(divisor, np.float32)})
    exported = assert_parity(m, {"x": f32(rng, 2, 16) * 100}, rtol=3e-7, atol=0)
    assert exported.ops == {"MUL": 1} and exported.folded == {"div_to_mul": 1}


def test_div_by_power_of_two_is_exact(rng):
    from .conftest import run_onnx, run_tflite

    m = graph_model([helper.make_node("Div", ["x", "d"], ["y"])], {"x": [3, 5]}, {"y": [3, 5]},
                    {"d": np.array([[4.0, 0.5, -8.0, 1 / 64, 2.0 ** 20]], np.float32)})
    feeds = {"x": f32(rng, 3, 5) * 1e3}
    exported = assert_parity(m, feeds)
    assert exported.ops == {"MUL": 1}
    np.testing.assert_array_equal(run_tflite(exported.data, feeds)["y"], run_onnx(m, feeds)["y"])


@pytest.mark.parametrize("divisor", [[2.0, 0.0, 1.0], [2.0, 3e38, 1.0]], ids=["a-zero", "huge"])
def test_div_by_zero_or_huge_constant_stays_div(rng, divisor):
    m = graph_model([helper.make_node("Div", ["x", "d"], ["y"])], {"x": [2, 3]}, {"y": [2, 3]},
                    {"d": np.array(divisor, np.float32)})
    with np.errstate(divide="ignore", invalid="ignore"):
        exported = assert_parity(m, {"x": f32(rng, 2, 3)})
    assert exported.ops == {"DIV": 1} and exported.folded == {}


def test_integer_div_by_constant_stays_div(rng):
    g = helper.make_graph([helper.make_node("Div", ["x", "d"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.INT32, [6])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [6])],
                          [onnx.numpy_helper.from_array(np.array(3, np.int32), "d")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    exported = assert_parity(m, {"x": np.array([-7, -3, 0, 2, 7, 9], np.int32)})
    assert exported.ops == {"DIV": 1}


def test_conv_divided_by_constant_is_one_conv(rng):
    """onnxruntime folds a Mul after a Conv but not a Div: DIV -> MUL -> into the kernel."""
    m, feeds = conv_then(rng, [(helper.make_node("Div", ["c", "d"], ["y"]), {"d": np.array(6.0, np.float32)})])
    exported = assert_parity(m, feeds)
    assert exported.ops == {"TRANSPOSE": 2, "CONV_2D": 1}
    assert exported.folded == {"div_to_mul": 1, "into_weights": 1}


# ---- per-channel Mul/Add into a conv or a fully-connected layer ---------------------------------


@pytest.mark.parametrize("group", [1, 4], ids=["conv", "depthwise"])
def test_conv_mul_add_fold_into_the_kernel(rng, optimizer, group):
    tail = [(helper.make_node("Mul", ["c", "s"], ["m"]), {"s": f32(rng, 1, 8, 1, 1)}),
            (helper.make_node("Add", ["m", "b"], ["a"]), {"b": f32(rng, 8, 1, 1)}),
            (helper.make_node("Relu", ["a"], ["y"]), {})]
    m, feeds = conv_then(rng, tail, group=group)
    exported = assert_parity(m, feeds)
    code = "CONV_2D" if group == 1 else "DEPTHWISE_CONV_2D"
    assert exported.ops == {"TRANSPOSE": 2, code: 1}
    if optimizer == "ort-skipped":
        assert exported.folded == {"into_weights": 2}


def test_conv_batchnorm_folds_when_onnxruntime_does_not(rng, optimizer):
    bn = {"g": f32(rng, 8), "beta": f32(rng, 8), "mean": f32(rng, 8), "var": f32(rng, 8, low=0.5)}
    tail = [(helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["y"]), bn)]
    m, feeds = conv_then(rng, tail)
    exported = assert_parity(m, feeds)
    assert exported.ops == {"TRANSPOSE": 2, "CONV_2D": 1}


def test_conv_scaled_after_sub_and_scalar_mul(rng, optimizer):
    tail = [(helper.make_node("Sub", ["c", "mu"], ["s"]), {"mu": f32(rng, 1, 8, 1, 1)}),
            (helper.make_node("Mul", ["s", "k"], ["y"]), {"k": np.array(0.25, np.float32)})]
    m, feeds = conv_then(rng, tail)
    exported = assert_parity(m, feeds)
    assert exported.ops == {"TRANSPOSE": 2, "CONV_2D": 1}


@pytest.mark.parametrize("scale_shape", [(16,), (1, 16), ()], ids=["per-feature", "row", "scalar"])
def test_gemm_mul_add_fold_into_fully_connected(rng, optimizer, scale_shape):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["g"], transB=1),
             helper.make_node("Mul", ["g", "s"], ["m"]), helper.make_node("Add", ["b", "m"], ["y"])]
    m = graph_model(nodes, {"x": [3, 10]}, {"y": [3, 16]},
                    {"W": f32(rng, 16, 10), "B": f32(rng, 16), "s": f32(rng, *scale_shape), "b": f32(rng, 16)})
    exported = assert_parity(m, {"x": f32(rng, 3, 10)})
    assert exported.ops == {"FULLY_CONNECTED": 1}


def test_gemm_batchnorm_folds_into_fully_connected(rng):
    """BatchNorm after a fully-connected layer (onnxruntime folds it into a Conv only) is MUL + ADD, then nothing."""
    bn = {"g": f32(rng, 16), "beta": f32(rng, 16), "mean": f32(rng, 16), "var": f32(rng, 16, low=0.5)}
    nodes = [helper.make_node("Gemm", ["x", "W"], ["g0"]),
             helper.make_node("BatchNormalization", ["g0", "g", "beta", "mean", "var"], ["y"])]
    m = graph_model(nodes, {"x": [4, 10]}, {"y": [4, 16]}, {"W": f32(rng, 10, 16), **bn})
    exported = assert_parity(m, {"x": f32(rng, 4, 10)})
    assert exported.ops == {"FULLY_CONNECTED": 1} and exported.folded == {"into_weights": 2}


def test_matmul_3d_scale_and_bias_fold_into_fully_connected(rng, optimizer):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Div", ["mm", "t"], ["d"]),
             helper.make_node("Add", ["d", "b"], ["y"])]
    m = graph_model(nodes, {"x": [2, 5, 8]}, {"y": [2, 5, 6]},
                    {"W": f32(rng, 8, 6), "t": np.array(8.0, np.float32), "b": f32(rng, 1, 1, 6)})
    exported = assert_parity(m, {"x": f32(rng, 2, 5, 8)})
    assert "MUL" not in exported.ops and "ADD" not in exported.ops and "DIV" not in exported.ops


# ---- chains, neutral constants ------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_constant_chain_merges_into_one_op(rng, optimizer, op):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node(op, ["r", "a"], ["t"]),
             helper.make_node(op, ["b", "t"], ["u"]), helper.make_node(op, ["u", "c"], ["y"])]
    m = graph_model(nodes, {"x": [2, 3, 4]}, {"y": [2, 3, 4]},
                    {"a": f32(rng, 4), "b": np.array(1.5, np.float32), "c": f32(rng, 3, 1)})
    exported = assert_parity(m, {"x": f32(rng, 2, 3, 4)})
    assert exported.ops == {"RELU": 1, op.upper(): 1}


def test_div_then_sub_merge_with_mul_and_add(rng, optimizer):
    nodes = [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Div", ["t", "six"], ["d"]),
             helper.make_node("Mul", ["d", "k"], ["m"]), helper.make_node("Sub", ["m", "h"], ["s"]),
             helper.make_node("Add", ["s", "h"], ["y"])]
    m = graph_model(nodes, {"x": [4, 8]}, {"y": [4, 8]},
                    {"six": np.array(6.0, np.float32), "k": f32(rng, 8), "h": np.array(0.5, np.float32)})
    exported = assert_parity(m, {"x": f32(rng, 4, 8)})
    assert exported.ops == {"TANH": 1, "MUL": 1}  # the Add and Sub of 0.5 merge into an ADD of 0, removed


@pytest.mark.parametrize("op,value", [("Add", 0.0), ("Mul", 1.0), ("Sub", 0.0), ("Div", 1.0)])
def test_neutral_constant_removed(rng, optimizer, op, value):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node(op, ["s", "n"], ["t"]),
             helper.make_node("Tanh", ["t"], ["y"])]
    m = graph_model(nodes, {"x": [2, 6]}, {"y": [2, 6]}, {"n": np.full((6,), value, np.float32)})
    exported = assert_parity(m, {"x": f32(rng, 2, 6)})
    assert exported.ops == {"LOGISTIC": 1, "TANH": 1}


def test_neutral_constant_that_broadcasts_stays(rng):
    """Adding zeros of shape [3, 6] to x [6] makes a [3, 6] tensor: not an identity."""
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Add", ["s", "z"], ["y"])]
    m = graph_model(nodes, {"x": [6]}, {"y": [3, 6]}, {"z": np.zeros((3, 6), np.float32)})
    exported = assert_parity(m, {"x": f32(rng, 6)})
    assert exported.ops.get("ADD") == 1


# ---- what must not fold ---------------------------------------------------------------------------


def test_per_position_mul_after_conv_stays(rng, optimizer):
    """A constant that varies over H and W (an attention map, a positional mask) is not per channel."""
    tail = [(helper.make_node("Mul", ["c", "p"], ["y"]), {"p": f32(rng, 1, 1, 8, 8)})]
    m, feeds = conv_then(rng, tail)
    exported = assert_parity(m, feeds)
    assert exported.ops.get("MUL") == 1 and exported.ops.get("CONV_2D") == 1
    assert "into_weights" not in exported.folded


def test_per_channel_and_position_mul_after_conv_stays(rng, optimizer):
    tail = [(helper.make_node("Mul", ["c", "p"], ["y"]), {"p": f32(rng, 8, 8, 1)})]
    m, feeds = conv_then(rng, tail)
    exported = assert_parity(m, feeds)
    assert exported.ops.get("MUL") == 1


def test_conv_with_two_readers_is_not_folded(rng, optimizer):
    """The conv result is scaled for one branch and used raw by another: folding would change both."""
    tail = [(helper.make_node("Div", ["c", "d"], ["y"]), {"d": f32(rng, 1, 8, 1, 1, low=0.5)}),
            (helper.make_node("Relu", ["c"], ["r"]), {})]
    m, feeds = conv_then(rng, tail, extra_outputs={"r": None})
    exported = assert_parity(m, feeds)
    assert exported.ops.get("MUL") == 1 and exported.ops.get("CONV_2D") == 1


def test_conv_output_that_is_a_graph_output_is_not_folded(rng, optimizer):
    tail = [(helper.make_node("Mul", ["c", "s"], ["y"]), {"s": f32(rng, 1, 8, 1, 1)})]
    m, feeds = conv_then(rng, tail, extra_outputs={"c": None})
    exported = assert_parity(m, feeds)
    assert exported.ops.get("MUL") == 1


def test_relu_between_conv_and_mul_is_not_crossed(rng, optimizer):
    tail = [(helper.make_node("Relu", ["c"], ["r"]), {}),
            (helper.make_node("Mul", ["r", "s"], ["y"]), {"s": f32(rng, 1, 8, 1, 1)})]
    m, feeds = conv_then(rng, tail)
    exported = assert_parity(m, feeds)
    assert exported.ops.get("MUL") == 1


# ---- the report -------------------------------------------------------------------------------------


def test_convert_json_reports_the_folds(tmp_path, rng):
    from click.testing import CliRunner

    from edgeops.cli import cli

    tail = [(helper.make_node("Div", ["c", "d"], ["h"]), {"d": np.array(6.0, np.float32)}),
            (helper.make_node("Mul", ["h", "k"], ["y"]), {"k": np.array(0.5, np.float32)})]
    m, _ = conv_then(rng, tail)
    onnx.save(m, tmp_path / "m.onnx")
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.tflite"),
                                      "--format", "tflite", "--quantize", "none", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ops_before"] == {"Conv": 1, "Div": 1, "Mul": 1}
    assert report["ops_after"] == {"TRANSPOSE": 2, "CONV_2D": 1}
    assert report["extra"]["folded"] == {"div_to_mul": 1, "into_weights": 1, "merged": 1}
    assert report["extra"]["ops_before_folding"] == 5
