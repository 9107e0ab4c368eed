"""Conv and ConvTranspose export to TFLite and agree with onnxruntime: every padding mode, strides,
dilations, depthwise and grouped, 1-D and 3-D, with and without bias, a fused Relu, a MobileNet-style block;
the variants TFLite cannot run are refused with the node's name and the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert.tflite import export
from edgeops.convert.tflite.catalog import load_all
from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, graph_model, helper, node_model, onnx, run_onnx


def parity(model, feeds, **kwargs):
    """``assert_parity`` (LiteRT with its default XNNPACK delegate), then the same check on LiteRT's
    built-in kernels, which some ops (TRANSPOSE_CONV) implement separately."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    exported = assert_parity(model, feeds, **kwargs)
    runner = Interpreter(model_content=exported.data,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    got = runner.get_signature_runner()(**feeds)
    for name, want in run_onnx(model, feeds).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-5, err_msg=f"{name} (built-in kernels)")
    return exported


def conv_model(op, x_shape, w_shape, bias=True, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    inits = {"w": rng.standard_normal(w_shape).astype(np.float32)}
    if bias:
        group = attrs.get("group", 1)
        out_c = w_shape[0] if op == "Conv" else w_shape[1] * group
        inits["b"] = rng.standard_normal(out_c).astype(np.float32)
    model = node_model(op, {"x": x_shape}, {"y": None}, inits, **attrs)
    return model, {"x": rng.standard_normal(x_shape).astype(np.float32)}


CONV = {  # id: (x shape, w shape, attributes, TFLite ops that must (or, with "-", must not) appear)
    "3x3-no-pads": ((1, 3, 9, 9), (4, 3, 3, 3), {}, ["CONV_2D", "-PAD"]),
    "3x3-pads-1-is-same": ((1, 3, 9, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}, ["-PAD"]),
    "5x5-pads-1-explicit": ((1, 3, 9, 9), (4, 3, 5, 5), {"pads": [1, 1, 1, 1]}, ["PAD"]),
    "asymmetric-pads": ((1, 3, 8, 9), (4, 3, 3, 3), {"pads": [0, 1, 2, 1]}, ["PAD"]),
    "stride-2-pads-1": ((1, 3, 8, 8), (4, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, ["PAD"]),
    "stride-2-same-pads": ((1, 3, 8, 8), (4, 3, 3, 3), {"pads": [0, 0, 1, 1], "strides": [2, 2]}, ["-PAD"]),
    "strides-2x1": ((1, 3, 9, 8), (4, 3, 3, 3), {"strides": [2, 1]}, []),
    "same-upper-odd": ((1, 3, 9, 9), (4, 3, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, ["-PAD"]),
    "same-upper-even": ((1, 3, 8, 8), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, ["-PAD"]),
    "same-lower": ((1, 3, 8, 8), (4, 3, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, ["PAD"]),
    "valid": ((1, 3, 8, 8), (4, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 2]}, ["-PAD"]),
    "dilation-2-pads-2": ((1, 3, 10, 10), (4, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, ["-PAD"]),
    "dilation-2x3-asymmetric-pads": ((1, 2, 11, 12), (3, 2, 3, 2), {"dilations": [2, 3], "pads": [1, 2, 3, 0]}, ["PAD"]),
    "no-bias": ((2, 3, 6, 6), (5, 3, 1, 1), {"bias": False}, []),
    "depthwise": ((1, 4, 8, 8), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}, ["DEPTHWISE_CONV_2D", "-SPLIT"]),
    "depthwise-multiplier-3": ((1, 2, 7, 7), (6, 1, 3, 3), {"group": 2, "strides": [2, 2]}, ["DEPTHWISE_CONV_2D"]),
    "depthwise-same-lower-no-bias": ((1, 3, 8, 8), (3, 1, 3, 3), {"group": 3, "auto_pad": "SAME_LOWER",
                                                                   "strides": [2, 2], "bias": False}, ["PAD"]),
    "grouped-2": ((1, 4, 7, 7), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, ["CONV_2D", "-SPLIT"]),
    "grouped-3-strided": ((1, 6, 9, 9), (3, 2, 3, 3), {"group": 3, "strides": [2, 2]}, []),
    "single-input-channel": ((1, 1, 6, 6), (4, 1, 3, 3), {}, ["CONV_2D"]),
    "1d": ((1, 3, 12), (4, 3, 3), {}, ["CONV_2D"]),
    "1d-pads-stride-dilation": ((2, 3, 15), (4, 3, 3), {"pads": [2, 1], "strides": [2], "dilations": [2]}, []),
    "1d-same-upper": ((1, 3, 10), (4, 3, 4), {"auto_pad": "SAME_UPPER", "strides": [3]}, []),
    "1d-same-lower": ((1, 3, 10), (4, 3, 4), {"auto_pad": "SAME_LOWER"}, []),
    "1d-depthwise": ((1, 4, 10), (8, 1, 3), {"group": 4, "pads": [1, 1]}, ["DEPTHWISE_CONV_2D"]),
    "1d-grouped": ((1, 4, 10), (4, 2, 3), {"group": 2, "bias": False}, []),
    "3d": ((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), {}, ["CONV_3D", "-PAD"]),
    "3d-pads-1-is-same": ((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}, ["-PAD"]),
    "3d-asymmetric-pads-strides": ((2, 2, 6, 5, 7), (4, 2, 3, 2, 3), {"pads": [0, 1, 2, 1, 0, 1],
                                                                       "strides": [2, 1, 2]}, ["PAD"]),
    "3d-same-lower-no-bias": ((1, 2, 7, 7, 7), (3, 2, 2, 3, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 2, 2],
                                                                   "bias": False}, []),
    "3d-dilations": ((1, 2, 7, 8, 9), (3, 2, 3, 3, 3), {"dilations": [1, 2, 3], "pads": [1, 2, 3, 1, 2, 3]}, []),
}


@pytest.mark.parametrize("x_shape, w_shape, attrs, ops", CONV.values(), ids=CONV.keys())
def test_conv_matches_onnxruntime(x_shape, w_shape, attrs, ops):
    attrs = dict(attrs)
    model, feeds = conv_model("Conv", x_shape, w_shape, bias=attrs.pop("bias", True), **attrs)
    exported = parity(model, feeds)
    _assert_ops(exported, ops)


def _assert_ops(exported, ops):
    for op in ops:
        if op.startswith("-"):
            assert op[1:] not in exported.ops, exported.ops
        else:
            assert op in exported.ops, exported.ops


CONV_TRANSPOSE = {  # id: (x shape, w shape [C_in, C_out / group, kH, kW], attributes, ops)
    "3x3": ((1, 2, 4, 4), (2, 3, 3, 3), {}, ["TRANSPOSE_CONV", "-SLICE"]),
    "stride-2": ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2]}, ["-SLICE"]),
    "stride-2-output-padding": ((1, 2, 4, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_padding": [1, 0]}, []),
    "k4-stride-2-pads-1-is-same": ((1, 2, 4, 4), (2, 3, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                                   ["-SLICE"]),
    "pads-crop": ((1, 2, 4, 4), (2, 3, 3, 3), {"pads": [1, 2, 0, 1]}, ["SLICE"]),
    "stride-3x2-pads": ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "pads": [1, 2, 1, 2]}, []),
    "output-shape": ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}, []),
    "output-shape-smaller": ((1, 2, 4, 4), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [8, 8],
                                                            "auto_pad": "SAME_UPPER"}, []),
    "same-upper": ((1, 2, 3, 3), (2, 2, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, []),
    "same-lower": ((1, 2, 3, 3), (2, 2, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, []),
    "same-upper-kernel-4": ((1, 2, 5, 5), (2, 2, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, []),
    "dilations-2": ((1, 2, 4, 4), (2, 2, 3, 3), {"dilations": [2, 2]}, []),
    "dilations-stride-pads": ((1, 2, 4, 4), (2, 2, 2, 3), {"dilations": [2, 1], "strides": [2, 2],
                                                             "pads": [1, 1, 1, 0]}, []),
    "no-bias": ((2, 3, 4, 4), (3, 2, 2, 2), {"strides": [2, 2], "bias": False}, []),
    "group-2": ((1, 4, 4, 4), (4, 3, 3, 3), {"group": 2, "strides": [2, 2]}, ["SPLIT", "CONCATENATION"]),
    "depthwise-like": ((1, 3, 4, 4), (3, 1, 4, 4), {"group": 3, "strides": [2, 2], "pads": [1, 1, 1, 1]}, []),
    "1d": ((1, 2, 5), (2, 3, 3), {"strides": [2]}, []),
    "1d-pads-output-padding": ((1, 2, 5), (2, 3, 4), {"strides": [3], "pads": [1, 2], "output_padding": [2]}, []),
    "3d": ((1, 2, 3, 4, 5), (2, 3, 3, 3, 3), {}, ["CONV_3D_TRANSPOSE", "-SLICE"]),
    "3d-strides-output-padding": ((1, 2, 3, 4, 3), (2, 3, 2, 3, 3), {"strides": [2, 2, 3],
                                                                      "output_padding": [1, 0, 2]}, []),
    "3d-pads-dilations": ((2, 2, 3, 3, 4), (2, 2, 3, 2, 3), {"strides": [2, 1, 2], "pads": [1, 0, 2, 1, 1, 0],
                                                              "dilations": [2, 2, 1], "bias": False}, ["SLICE"]),
    "3d-same-upper": ((1, 2, 3, 4, 5), (2, 2, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2, 2]}, []),
}


@pytest.mark.parametrize("x_shape, w_shape, attrs, ops", CONV_TRANSPOSE.values(), ids=CONV_TRANSPOSE.keys())
def test_conv_transpose_matches_onnxruntime(x_shape, w_shape, attrs, ops):
    attrs = dict(attrs)
    model, feeds = conv_model("ConvTranspose", x_shape, w_shape, bias=attrs.pop("bias", True), **attrs)
    exported = parity(model, feeds)
    _assert_ops(exported, ops)


@pytest.mark.parametrize("op, group, spatial", [
    ("Conv", 1, 2), ("Conv", 2, 2), ("Conv", 4, 2), ("Conv", 1, 3), ("ConvTranspose", 1, 2), ("ConvTranspose", 1, 3),
    pytest.param("ConvTranspose", 2, 2),  # regression: a Relu was once fused into CONCATENATION
], ids=["conv", "grouped", "depthwise", "conv-3d", "transpose", "transpose-3d", "grouped-transpose"])
def test_a_relu_after_a_convolution_is_fused_and_still_applied(op, group, spatial):
    rng = np.random.default_rng(1)
    w_shape = ((8, 4 // group) if op == "Conv" else (4, 8 // group)) + (3,) * spatial
    x_shape = (1, 4) + (6,) * spatial
    nodes = [helper.make_node(op, ["x", "w", "b"], ["c"], group=group, pads=[1] * (2 * spatial)),
             helper.make_node("Relu", ["c"], ["y"])]
    model = graph_model(nodes, {"x": x_shape}, {"y": None},
                        {"w": rng.standard_normal(w_shape).astype(np.float32),
                         "b": rng.standard_normal(8).astype(np.float32)})
    exported = parity(onnx.shape_inference.infer_shapes(model), {"x": rng.standard_normal(x_shape).astype(np.float32)})
    if op == "Conv" and spatial == 2:
        assert "RELU" not in exported.ops, exported.ops  # fused into the convolution


def _bn(rng, name, c):
    return {f"{name}_s": rng.uniform(0.5, 1.5, c).astype(np.float32), f"{name}_b": rng.standard_normal(c).astype(
        np.float32), f"{name}_m": rng.standard_normal(c).astype(np.float32),
        f"{name}_v": rng.uniform(0.5, 2, c).astype(np.float32)}


@pytest.mark.parametrize("activation", ["Relu", "HardSwish"])
def test_a_mobilenet_block_matches_onnxruntime(activation):
    """Conv-BN-act stem, an inverted residual (pointwise expand, depthwise, pointwise project) and a residual Add."""
    # Regression: this skipped ("no converter in this tree") whenever the registry had not been loaded
    # yet, which is whenever this file runs first: both cases silently never ran.
    assert activation in load_all()
    rng = np.random.default_rng(2)
    c, e = 8, 24
    inits = {"stem_w": rng.standard_normal((c, 3, 3, 3)).astype(np.float32) * 0.3,
             "exp_w": rng.standard_normal((e, c, 1, 1)).astype(np.float32) * 0.3,
             "dw_w": rng.standard_normal((e, 1, 3, 3)).astype(np.float32) * 0.3,
             "dw_b": rng.standard_normal(e).astype(np.float32),
             "proj_w": rng.standard_normal((c, e, 1, 1)).astype(np.float32) * 0.3,
             **_bn(rng, "bn0", c), **_bn(rng, "bn1", e), **_bn(rng, "bn2", c)}

    def bn(x, name, y):
        return helper.make_node("BatchNormalization", [x, f"{name}_s", f"{name}_b", f"{name}_m", f"{name}_v"], [y])

    nodes = [
        helper.make_node("Conv", ["x", "stem_w"], ["s0"], strides=[2, 2], pads=[1, 1, 1, 1]),
        bn("s0", "bn0", "s1"), helper.make_node(activation, ["s1"], ["s2"]),
        helper.make_node("Conv", ["s2", "exp_w"], ["e0"]), bn("e0", "bn1", "e1"),
        helper.make_node(activation, ["e1"], ["e2"]),
        helper.make_node("Conv", ["e2", "dw_w", "dw_b"], ["d0"], group=e, pads=[1, 1, 1, 1]),
        helper.make_node(activation, ["d0"], ["d1"]),
        helper.make_node("Conv", ["d1", "proj_w"], ["p0"]), bn("p0", "bn2", "p1"),
        helper.make_node("Add", ["p1", "s2"], ["y"]),
    ]
    model = onnx.shape_inference.infer_shapes(graph_model(nodes, {"x": (1, 3, 16, 16)}, {"y": None}, inits))
    exported = parity(model, {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}, rtol=1e-4, atol=1e-4)
    assert exported.ops["CONV_2D"] == 3 and exported.ops["DEPTHWISE_CONV_2D"] == 1
    assert exported.ops.get("TRANSPOSE", 0) <= 2  # only at the NCHW edges
    if activation == "Relu":  # every BatchNormalization folded into its Conv, every Relu fused into one
        assert "MUL" not in exported.ops and "RELU" not in exported.ops and exported.ops["ADD"] == 1, exported.ops


REFUSED = {
    "conv-4d": ("Conv", (1, 2, 3, 3, 3, 3), (3, 2, 2, 2, 2, 2), {}, "4-D convolution"),
    "conv-3d-grouped": ("Conv", (1, 4, 4, 4, 4), (4, 2, 3, 3, 3), {"group": 2}, "grouped 3-D convolution"),
    "conv-runtime-weights": ("Conv", (1, 2, 4, 4), None, {}, "weights computed at run time"),
    "conv-transpose-3d-grouped": ("ConvTranspose", (1, 2, 4, 4, 4), (1, 3, 3, 3, 3), {"group": 2},
                                  "grouped 3-D transpose convolution"),
    "conv-transpose-output-shape-too-large": ("ConvTranspose", (1, 2, 3, 3), (2, 2, 3, 3),
                                              {"strides": [2, 2], "output_shape": [12, 12]}, "past the transpose"),
}


@pytest.mark.parametrize("op, x_shape, w_shape, attrs, reason", REFUSED.values(), ids=REFUSED.keys())
def test_unsupported_variants_are_refused_with_the_node_and_the_reason(op, x_shape, w_shape, attrs, reason):
    if w_shape is None:  # weights as a graph input
        model = node_model(op, {"x": x_shape, "w": (3, x_shape[1], 3, 3)}, {"y": None}, **attrs)
    else:
        model, _ = conv_model(op, x_shape, w_shape, **attrs)
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    message = str(info.value)
    assert f"{op.lower()}0 [{op}]" in message and reason in message, message
