"""MaxPool, AveragePool and the global pools export to TFLite and agree with onnxruntime: every
padding mode, asymmetric pads, ceil_mode, count_include_pad, dilations, 1-D and 3-D; argmax outputs are
refused with the node's name and the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert.tflite import export
from edgeops.errors import UnsupportedOpsError

from .conftest import TensorProto, graph_model, helper, node_model, onnx, run_onnx, run_tflite
from .test_ops_conv import parity

POOL = {  # id: (input shape, attributes, TFLite ops that must (or, with "-", must not) appear)
    "2x2-stride-2": ((1, 3, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}, ["-PAD", "-PADV2"]),
    "3x3-stride-1-pads-1-is-same": ((1, 3, 7, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, ["-PAD", "-PADV2"]),
    "3x3-stride-2-pads-1": ((2, 3, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, []),
    "asymmetric-pads": ((1, 2, 7, 9), {"kernel_shape": [3, 2], "pads": [0, 1, 2, 1]}, []),
    "strides-wider-than-kernel": ((1, 2, 9, 9), {"kernel_shape": [2, 2], "strides": [3, 3]}, []),
    "same-upper": ((1, 3, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, []),
    "same-lower": ((1, 3, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, []),
    "valid": ((1, 3, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}, []),
    "ceil-mode": ((1, 3, 7, 8), {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, []),
    "ceil-mode-pads": ((1, 3, 8, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                      "ceil_mode": 1}, []),
    "ceil-mode-last-window-on-pad-dropped": ((1, 2, 5, 6), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                            "pads": [1, 1, 2, 2], "ceil_mode": 1}, []),
    "1d": ((1, 3, 12), {"kernel_shape": [3], "strides": [2]}, []),
    "1d-pads-ceil-mode": ((2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1}, []),
    "1d-same-lower": ((1, 3, 10), {"kernel_shape": [4], "strides": [3], "auto_pad": "SAME_LOWER"}, []),
    "3d": ((1, 2, 6, 7, 8), {"kernel_shape": [2, 3, 2], "strides": [2, 2, 2]}, []),
    "3d-pads": ((2, 3, 5, 6, 7), {"kernel_shape": [3, 3, 3], "strides": [2, 1, 2], "pads": [1, 0, 1, 2, 1, 1]}, []),
    "3d-same-upper-ceil": ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 3], "strides": [2, 2, 2],
                                             "auto_pad": "SAME_UPPER"}, []),
    "3d-ceil-mode": ((1, 2, 7, 6, 5), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2], "ceil_mode": 1}, []),
    "dilations": ((1, 3, 9, 8), {"kernel_shape": [2, 3], "dilations": [2, 2]}, ["STRIDED_SLICE"]),
    "dilations-strides-pads": ((1, 2, 9, 10), {"kernel_shape": [3, 2], "dilations": [2, 3], "strides": [2, 1],
                                               "pads": [2, 1, 1, 1]}, []),
    "dilations-ceil-mode": ((1, 2, 8, 9), {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [2, 2],
                                           "ceil_mode": 1}, []),
    "1d-dilations": ((2, 3, 11), {"kernel_shape": [3], "dilations": [2], "pads": [1, 1]}, []),
    "3d-dilations": ((1, 2, 6, 7, 8), {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 3], "strides": [1, 2, 1]}, []),
}


@pytest.mark.parametrize("x_shape, attrs, ops", POOL.values(), ids=POOL.keys())
@pytest.mark.parametrize("op, count_include_pad", [("MaxPool", None), ("AveragePool", 0), ("AveragePool", 1)],
                         ids=["max", "average", "average-count-include-pad"])
def test_pool_matches_onnxruntime(op, count_include_pad, x_shape, attrs, ops):
    if count_include_pad is not None:
        attrs = {**attrs, "count_include_pad": count_include_pad}
        ops = [o for o in ops if o != "-PAD" or not count_include_pad]
    model = node_model(op, {"x": x_shape}, {"y": None}, opset=22, **attrs)
    exported = parity(model, {"x": np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)})
    for o in ops:
        assert (o[1:] not in exported.ops) if o.startswith("-") else (o in exported.ops), exported.ops


def test_average_pool_excluding_explicit_pads_is_corrected_by_a_constant_divisor_map():
    model = node_model("AveragePool", {"x": (1, 2, 6, 6)}, {"y": None}, kernel_shape=[3, 3], pads=[1, 2, 2, 0])
    exported = parity(model, {"x": np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)})
    assert exported.ops["PAD"] == 1 and exported.ops["MUL"] == 1


def test_max_pool_pads_with_the_lowest_value_so_all_negative_windows_stay_negative():
    model = node_model("MaxPool", {"x": (1, 1, 4, 4)}, {"y": None}, kernel_shape=[3, 3], pads=[2, 2, 0, 1])
    parity(model, {"x": -1000 - np.random.default_rng(2).random((1, 1, 4, 4)).astype(np.float32)})


@pytest.mark.parametrize("dilation", [1, 2], ids=["plain", "dilated"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_integer_max_pool_with_explicit_pads(dtype, dilation):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("MaxPool", ["x"], ["y"], name="maxpool0", kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 1, 1], dilations=[dilation, dilation])
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", elem, (1, 2, 7, 7))],
                          [helper.make_tensor_value_info("y", elem, None)])
    model = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, info.max, (1, 2, 7, 7), endpoint=True).astype(dtype)
    got = run_tflite(export(model).data, {"x": x})["y"]
    np.testing.assert_array_equal(got, run_onnx(model, {"x": x})["y"])


@pytest.mark.parametrize("dilation", [1, 2], ids=["plain", "dilated"])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_a_relu_after_a_pool_is_still_applied(op, dilation):
    nodes = [helper.make_node(op, ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], dilations=[dilation] * 2),
             helper.make_node("Relu", ["p"], ["y"])]
    model = onnx.shape_inference.infer_shapes(graph_model(nodes, {"x": (1, 3, 6, 6)}, {"y": None}, opset=19))
    exported = parity(model, {"x": np.random.default_rng(4).standard_normal((1, 3, 6, 6)).astype(np.float32)})
    if dilation == 1:
        assert "RELU" not in exported.ops  # fused into the pool


@pytest.mark.parametrize("shape", [(1, 3, 7), (2, 3, 5, 6), (1, 2, 3, 4, 5)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_matches_onnxruntime(op, shape):
    model = node_model(op, {"x": shape}, {"y": None})
    parity(model, {"x": np.random.default_rng(5).standard_normal(shape).astype(np.float32)})


REFUSED = {
    "argmax-indices": ("MaxPool", (1, 1, 8, 8), {"kernel_shape": [2, 2]}, ["y", "i"], "Indices output"),
    "4d": ("AveragePool", (1, 1, 3, 3, 3, 3), {"kernel_shape": [2, 2, 2, 2]}, ["y"], "4-D pooling"),
    "ceil-mode-shape-before-opset-22": ("AveragePool", (1, 1, 5, 6), {"kernel_shape": [3, 3], "strides": [2, 2],
                                        "pads": [1, 1, 2, 2], "ceil_mode": 1}, ["y"], "where runtimes compute"),
}


@pytest.mark.parametrize("op, shape, attrs, outputs, reason", REFUSED.values(), ids=REFUSED.keys())
def test_unsupported_pools_are_refused_with_the_node_and_the_reason(op, shape, attrs, outputs, reason):
    node = helper.make_node(op, ["x"], outputs, name="pool0", **attrs)
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT if o == "y" else TensorProto.INT64, None)
            for o in outputs]
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], outs)
    model = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    assert f"pool0 [{op}]" in str(info.value) and reason in str(info.value), str(info.value)
