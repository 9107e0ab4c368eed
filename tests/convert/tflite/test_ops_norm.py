"""BatchNormalization, InstanceNormalization and LayerNormalization export to TFLite and agree with
onnxruntime, in the ONNX layout and in the channels-last layout a convolution leaves behind;
training-mode batch normalization is refused with the node's name and the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert.tflite import export
from edgeops.errors import UnsupportedOpsError

from .conftest import TensorProto, graph_model, helper, node_model, onnx
from .test_ops_conv import parity


def _after_conv(op, x_shape, inits, **attrs):
    """Conv -> Relu -> ``op``: the normalized value is stored channels-last (and a BatchNormalization
    is not directly after the Conv, so it is not folded into it)."""
    rng = np.random.default_rng(7)
    c = x_shape[1]
    names = ["r", *inits]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1] * (2 * (len(x_shape) - 2))),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node(op, names, ["y"], name="norm0", **attrs)]
    inits = {"cw": rng.standard_normal((c, c) + (3,) * (len(x_shape) - 2)).astype(np.float32) * 0.5, **inits}
    return onnx.shape_inference.infer_shapes(graph_model(nodes, {"x": x_shape}, {"y": None}, inits))


def _bn_params(c, seed=0):
    rng = np.random.default_rng(seed)
    return {"s": rng.uniform(0.5, 1.5, c).astype(np.float32), "b": rng.standard_normal(c).astype(np.float32),
            "m": rng.standard_normal(c).astype(np.float32), "v": rng.uniform(0.2, 2.0, c).astype(np.float32)}


@pytest.mark.parametrize("shape, after_conv, epsilon", [
    ((2, 3, 5, 6), False, 1e-5), ((2, 4, 5, 6), True, 1e-3), ((3, 5), False, 1e-5), ((2, 3, 7), True, 1e-5),
    ((1, 2, 3, 4, 5), False, 1e-2),
], ids=["nchw", "channels-last", "2d", "1d-channels-last", "3d"])
def test_batch_normalization_is_a_per_channel_mul_and_add(shape, after_conv, epsilon):
    params = _bn_params(shape[1])
    if after_conv:
        model = _after_conv("BatchNormalization", shape, params, epsilon=epsilon)
    else:
        model = node_model("BatchNormalization", {"x": shape}, {"y": None}, params, epsilon=epsilon)
    exported = parity(model, {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)})
    assert exported.ops["MUL"] == 1 and exported.ops["ADD"] == 1
    assert exported.ops.get("TRANSPOSE", 0) == (2 if after_conv else 0)  # at the model's edges only


@pytest.mark.parametrize("shape, after_conv", [((2, 3, 7), False), ((2, 3, 5, 6), False), ((1, 4, 5, 6), True),
                                               ((1, 2, 3, 4, 5), False)],
                         ids=["1d", "2d", "2d-channels-last", "3d"])
def test_instance_normalization_matches_onnxruntime(shape, after_conv):
    rng = np.random.default_rng(2)
    params = {"s": rng.uniform(0.5, 1.5, shape[1]).astype(np.float32),
              "b": rng.standard_normal(shape[1]).astype(np.float32)}
    if after_conv:
        model = _after_conv("InstanceNormalization", shape, params, epsilon=1e-3)
    else:
        model = node_model("InstanceNormalization", {"x": shape}, {"y": None}, params, epsilon=1e-3)
    parity(model, {"x": rng.standard_normal(shape).astype(np.float32) * 3 + 1})


LAYER_NORM = {  # id: (input shape, axis, scale and bias as graph inputs, bias, the node reads a channels-last value)
    "last-axis": ((2, 5, 16), -1, False, True, False),
    "last-two-axes": ((2, 5, 16), -2, False, True, False),
    "no-bias": ((3, 8), -1, False, False, False),
    "runtime-scale-and-bias": ((2, 3, 8), -1, True, True, False),
    "axis-1-of-nchw-channels-last": ((1, 4, 5, 6), 1, False, True, True),
    "last-axis-of-nchw-channels-last": ((1, 4, 5, 6), -1, False, True, True),
}


@pytest.mark.parametrize("shape, axis, runtime, bias, after_conv", LAYER_NORM.values(), ids=LAYER_NORM.keys())
def test_layer_normalization_matches_onnxruntime(shape, axis, runtime, bias, after_conv):
    rng = np.random.default_rng(3)
    norm_shape = shape[axis % len(shape):]
    params = {"s": rng.uniform(0.5, 1.5, norm_shape).astype(np.float32)}
    if bias:
        params["b"] = rng.standard_normal(norm_shape).astype(np.float32)
    feeds = {"x": rng.standard_normal(shape).astype(np.float32) * 2 + 0.5}
    if after_conv:
        model = _after_conv("LayerNormalization", shape, params, axis=axis, epsilon=1e-4)
    elif runtime:
        model = node_model("LayerNormalization", {"x": shape, **{k: v.shape for k, v in params.items()}},
                           {"y": None}, axis=axis)
        feeds.update(params)
    else:
        model = node_model("LayerNormalization", {"x": shape}, {"y": None}, params, axis=axis)
    parity(model, feeds)


def test_layer_normalization_also_gives_its_mean_and_inverse_deviation():
    rng = np.random.default_rng(4)
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv"], name="ln0", axis=1)
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 3, 4))],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "mean", "inv")],
                          [onnx.numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), n)
                           for n in ("s", "b")])
    model = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    exported = parity(model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})
    assert dict(exported.outputs)["mean"] == (2, 1, 1)


REFUSED = {
    "training-mode": ({"training_mode": 1}, True, "training mode"),
    "runtime-statistics": ({}, False, "computed at run time"),
}


@pytest.mark.parametrize("attrs, constant, reason", REFUSED.values(), ids=REFUSED.keys())
def test_unsupported_batch_normalization_is_refused_with_the_node_and_the_reason(attrs, constant, reason):
    params = _bn_params(3)
    outputs = ["y", "running_mean", "running_var"] if attrs.get("training_mode") else ["y"]
    node = helper.make_node("BatchNormalization", ["x", *params], outputs, name="bn0", **attrs)
    inputs = {"x": (2, 3, 4, 4)} if constant else {"x": (2, 3, 4, 4), **{k: (3,) for k in params}}
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                          [onnx.numpy_helper.from_array(v, k) for k, v in params.items()] if constant else [])
    model = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]))
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    assert "bn0 [BatchNormalization]" in str(info.value) and reason in str(info.value), str(info.value)
