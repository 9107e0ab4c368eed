"""Gemm and MatMul export to TFLite and agree with onnxruntime: alpha, beta, transposes, every bias
shape, weights constant (FULLY_CONNECTED) or computed (BATCH_MATMUL), batched and broadcast
products, 1-D operands on either side, a fused Relu; integer products are refused."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert.tflite import export
from edgeops.errors import UnsupportedOpsError

from .conftest import TensorProto, graph_model, helper, onnx
from .test_ops_conv import parity

M, K, N = 3, 5, 4

GEMM = {  # id: (attributes, C shape or None, B computed at run time, C computed at run time)
    "plain": ({}, None, False, False),
    "bias-n": ({}, (N,), False, False),
    "bias-1xn": ({}, (1, N), False, False),
    "bias-mxn": ({}, (M, N), False, False),
    "bias-mx1": ({}, (M, 1), False, False),
    "bias-scalar": ({}, (), False, False),
    "trans-a": ({"transA": 1}, (N,), False, False),
    "trans-b": ({"transB": 1}, (N,), False, False),
    "alpha-beta": ({"alpha": 0.5, "beta": 2.0}, (1, N), False, False),
    "beta-0": ({"beta": 0.0}, (N,), False, False),
    "all-attributes": ({"alpha": 0.25, "beta": 0.35, "transA": 1, "transB": 1}, (M, N), False, False),
    "runtime-b": ({}, None, True, False),
    "runtime-b-trans-b-alpha-bias": ({"transB": 1, "alpha": 1.5}, (N,), True, False),
    "runtime-b-bias-mxn": ({"beta": 0.5}, (M, N), True, False),
    "runtime-c": ({"beta": 0.5}, (M, N), False, True),
    "runtime-c-broadcast": ({}, (N,), False, True),
}


@pytest.mark.parametrize("attrs, c_shape, runtime_b, runtime_c", GEMM.values(), ids=GEMM.keys())
def test_gemm_matches_onnxruntime(attrs, c_shape, runtime_b, runtime_c):
    rng = np.random.default_rng(0)
    a_shape = (K, M) if attrs.get("transA") else (M, K)
    b_shape = (N, K) if attrs.get("transB") else (K, N)
    values = {"a": rng.standard_normal(a_shape), "b": rng.standard_normal(b_shape)}
    if c_shape is not None:
        values["c"] = rng.standard_normal(c_shape)
    values = {k: v.astype(np.float32) for k, v in values.items()}
    runtime = {"a", *(["b"] if runtime_b else []), *(["c"] if runtime_c else [])}
    node = helper.make_node("Gemm", list(values), ["y"], name="gemm0", **attrs)
    model = graph_model([node], {k: values[k].shape for k in values if k in runtime}, {"y": (M, N)},
                        {k: v for k, v in values.items() if k not in runtime}, opset=13)
    exported = parity(model, {k: values[k] for k in runtime})
    assert ("BATCH_MATMUL" if runtime_b else "FULLY_CONNECTED") in exported.ops


def test_a_relu_after_gemm_is_fused_into_fully_connected():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["y"])]
    model = graph_model(nodes, {"x": (2, 8)}, {"y": (2, 6)},
                        {"w": rng.standard_normal((6, 8)).astype(np.float32),
                         "b": rng.standard_normal(6).astype(np.float32)})
    exported = parity(model, {"x": rng.standard_normal((2, 8)).astype(np.float32)})
    assert exported.ops == {"FULLY_CONNECTED": 1}


MATMUL = {  # id: (A shape, B shape, which operands are constant, the TFLite op that computes it)
    "2d-constant-weight": ((3, 4), (4, 5), "b", "FULLY_CONNECTED"),
    "3d-constant-weight": ((2, 3, 4), (4, 5), "b", "FULLY_CONNECTED"),
    "4d-constant-weight": ((2, 2, 3, 4), (4, 5), "b", "FULLY_CONNECTED"),
    "1d-left-constant-weight": ((4,), (4, 5), "b", "FULLY_CONNECTED"),
    "2d": ((3, 4), (4, 5), "", "BATCH_MATMUL"),
    "3d": ((2, 3, 4), (2, 4, 5), "", "BATCH_MATMUL"),
    "4d": ((1, 2, 3, 4), (1, 2, 4, 3), "", "BATCH_MATMUL"),
    "broadcast": ((3, 1, 3, 4), (1, 2, 4, 2), "", "BATCH_MATMUL"),
    "broadcast-rank": ((2, 3, 3, 4), (4, 2), "", "BATCH_MATMUL"),
    "3d-constant-b": ((2, 3, 4), (2, 4, 5), "b", "BATCH_MATMUL"),
    "constant-a": ((3, 4), (2, 4, 5), "a", "BATCH_MATMUL"),
    "1d-left": ((4,), (2, 4, 3), "", "BATCH_MATMUL"),
    "1d-right": ((1, 2, 4, 3), (3,), "", "BATCH_MATMUL"),  # onnx's test_matmul_4d_1d (an XNNPACK error once)
    "1d-right-constant": ((2, 4, 3), (3,), "b", "BATCH_MATMUL"),
    "1d-both": ((3,), (3,), "", "BATCH_MATMUL"),
}


@pytest.mark.parametrize("a_shape, b_shape, constant, code", MATMUL.values(), ids=MATMUL.keys())
def test_matmul_matches_onnxruntime(a_shape, b_shape, constant, code):
    rng = np.random.default_rng(2)
    values = {"a": rng.standard_normal(a_shape).astype(np.float32),
              "b": rng.standard_normal(b_shape).astype(np.float32)}
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="matmul0")
    inits = {k: v for k, v in values.items() if k in constant}
    model = graph_model([node], {k: v.shape for k, v in values.items() if k not in constant}, {"y": None}, inits)
    model = onnx.shape_inference.infer_shapes(model)
    exported = parity(model, {k: v for k, v in values.items() if k not in constant})
    assert code in exported.ops, exported.ops


def test_matmul_after_a_convolution_reads_the_onnx_layout():
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("MatMul", ["c", "w"], ["y"])]
    model = graph_model(nodes, {"x": (1, 2, 4, 6)}, {"y": None},
                        {"cw": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
                         "w": rng.standard_normal((6, 5)).astype(np.float32)})
    parity(onnx.shape_inference.infer_shapes(model), {"x": rng.standard_normal((1, 2, 4, 6)).astype(np.float32)})


def test_integer_matmul_is_refused_with_the_node_and_the_reason():
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="int0")
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info(n, TensorProto.INT32, (2, 2)) for n in "ab"],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, (2, 2))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    assert "int0 [MatMul]" in str(info.value) and "int32" in str(info.value), str(info.value)

