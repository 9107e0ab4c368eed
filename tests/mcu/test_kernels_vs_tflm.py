"""Each kernel, through a one-op int8 model compiled to C, gives exactly TFLite Micro's output on random
tensors, for every padding, stride, dilation, fused activation and layout case the op takes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite_micro")

from harness import assert_close_to_litert, compile_model, tflm_run  # noqa: E402
from oneop import Spec, bias, build, weights  # noqa: E402

SAME, VALID = 0, 1
ACTS = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}
TRIALS = 4


def assert_bit_exact(data: bytes, tmp_path, kernels, seed: int = 0, litert: bool = True) -> None:
    """Our C gives TFLite Micro's outputs exactly; TFLite Micro gives LiteRT's (``litert``: where LiteRT
    runs the model at all)."""
    compiled, _ = compile_model(data, tmp_path, objects=kernels)
    rng = np.random.default_rng(seed)
    for _ in range(TRIALS):
        xs = [rng.integers(-128, 128, size=n).astype(np.int8) for n in compiled.in_sizes]
        ours = compiled(*xs)
        theirs = tflm_run(data, xs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, np.asarray(b).ravel())
        if litert:
            assert_close_to_litert(theirs, data, xs)


def conv_case(rng, *, padding, stride, dilation, act, in_shape=(1, 9, 7, 6), k=(3, 3), out_c=5, per_channel=True,
              groups=1, with_bias=True):
    n, h, w, c = in_shape
    eff = [(k[i] - 1) * dilation + 1 for i in range(2)]
    out_hw = [(s + stride - 1) // stride if padding == SAME else (s + stride - e) // stride
              for s, e in zip((h, w), eff)]
    fshape = (out_c, *k, c // groups)
    scales = rng.uniform(0.002, 0.02, out_c) if per_channel else 0.01
    return build("CONV_2D", [Spec(in_shape, 0.05, 7), Spec(fshape, scales, 0, weights(rng, fshape)),
                             Spec((out_c,), None, 0, bias(rng, out_c), np.int32) if with_bias else None],
                 [Spec((n, *out_hw, out_c), 0.08, -6)], "Conv2DOptions", padding=padding, strideW=stride,
                 strideH=stride, dilationWFactor=dilation, dilationHFactor=dilation, fusedActivationFunction=act)


@pytest.mark.parametrize("act", ACTS, ids=list(ACTS))
@pytest.mark.parametrize("dilation", [1, 2], ids=["dil1", "dil2"])
@pytest.mark.parametrize("stride", [1, 2], ids=["stride1", "stride2"])
@pytest.mark.parametrize("padding", [SAME, VALID], ids=["same", "valid"])
def test_conv_2d(tmp_path, kernels, padding, stride, dilation, act):
    rng = np.random.default_rng(10 * stride + dilation)
    data = conv_case(rng, padding=padding, stride=stride, dilation=dilation, act=ACTS[act])
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("case", ["per_tensor", "no_bias", "grouped", "1x1_batch2", "5x3_kernel"])
def test_conv_2d_forms(tmp_path, kernels, case):
    rng = np.random.default_rng(3)
    kw = {"per_tensor": dict(per_channel=False), "no_bias": dict(with_bias=False),
          "grouped": dict(groups=2, out_c=4), "1x1_batch2": dict(in_shape=(2, 5, 5, 6), k=(1, 1)),
          "5x3_kernel": dict(k=(5, 3))}[case]
    # LiteRT's int8 CONV_2D refuses an omitted bias ("Tensor at index 2 was optional but was expected"); TFLM takes it
    assert_bit_exact(conv_case(rng, padding=SAME, stride=1, dilation=1, act=0, **kw), tmp_path, kernels,
                     litert=case != "no_bias")


@pytest.mark.parametrize("act", ["none", "relu6"])
@pytest.mark.parametrize("multiplier", [1, 2], ids=["mult1", "mult2"])
@pytest.mark.parametrize("dilation", [1, 2], ids=["dil1", "dil2"])
@pytest.mark.parametrize("stride", [1, 2], ids=["stride1", "stride2"])
@pytest.mark.parametrize("padding", [SAME, VALID], ids=["same", "valid"])
def test_depthwise_conv_2d(tmp_path, kernels, padding, stride, dilation, multiplier, act):
    rng = np.random.default_rng(stride + 3 * dilation + 7 * multiplier)
    n, h, w, c = 1, 8, 9, 4
    oc = c * multiplier
    eff = 2 * dilation + 1
    out_hw = [(s + stride - 1) // stride if padding == SAME else (s + stride - eff) // stride for s in (h, w)]
    fshape = (1, 3, 3, oc)
    data = build("DEPTHWISE_CONV_2D", [Spec((n, h, w, c), 0.04, -3),
                                       Spec(fshape, rng.uniform(0.002, 0.02, oc), 0, weights(rng, fshape), axis=3),
                                       Spec((oc,), None, 0, bias(rng, oc), np.int32)],
                 [Spec((n, *out_hw, oc), 0.06, 4)], "DepthwiseConv2DOptions", padding=padding, strideW=stride,
                 strideH=stride, depthMultiplier=multiplier, dilationWFactor=dilation, dilationHFactor=dilation,
                 fusedActivationFunction=ACTS[act])
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("act", ACTS, ids=list(ACTS))
@pytest.mark.parametrize("form", ["per_tensor", "per_channel", "no_bias", "batch3"])
def test_fully_connected(tmp_path, kernels, form, act):
    rng = np.random.default_rng(len(form))
    batches = 3 if form == "batch3" else 1
    units, depth = 7, 20
    scales = rng.uniform(0.002, 0.02, units) if form == "per_channel" else 0.01
    data = build("FULLY_CONNECTED", [Spec((batches, depth), 0.05, 9), Spec((units, depth), scales, 0,
                                                                              weights(rng, (units, depth))),
                                     None if form == "no_bias" else Spec((units,), None, 0, bias(rng, units), np.int32)],
                 [Spec((batches, units), 0.1, -11)], "FullyConnectedOptions", fusedActivationFunction=ACTS[act])
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
@pytest.mark.parametrize("window", [(2, 2, 2), (3, 3, 2), (3, 2, 1)], ids=["2x2s2", "3x3s2", "3x2s1"])
@pytest.mark.parametrize("padding", [SAME, VALID], ids=["same", "valid"])
@pytest.mark.parametrize("code", ["AVERAGE_POOL_2D", "MAX_POOL_2D"], ids=["avg", "max"])
def test_pools(tmp_path, kernels, code, padding, window, act):
    kh, kw, s = window
    n, h, w, c = 1, 7, 8, 3
    out_hw = [(x + s - 1) // s if padding == SAME else (x + s - k) // s for x, k in ((h, kh), (w, kw))]
    data = build(code, [Spec((n, h, w, c), 0.05, -4)], [Spec((n, *out_hw, c), 0.05, -4)], "Pool2DOptions",
                 padding=padding, strideW=s, strideH=s, filterWidth=kw, filterHeight=kh,
                 fusedActivationFunction=ACTS[act])
    assert_bit_exact(data, tmp_path, kernels)


SHAPES = {"same": ((2, 3, 4, 5), (2, 3, 4, 5)), "channel": ((2, 3, 4, 5), (5,)), "row": ((1, 3, 4, 5), (1, 3, 1, 5)),
          "both": ((3, 1, 5), (1, 4, 1)), "scalar": ((2, 6), (1,))}


@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
@pytest.mark.parametrize("shapes", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("code", ["ADD", "MUL"])
def test_add_and_mul_with_broadcasting(tmp_path, kernels, code, shapes, act):
    a, b = SHAPES[shapes]
    out = tuple(np.broadcast_shapes(a, b))
    data = build(code, [Spec(a, 0.04, 5), Spec(b, 0.07, -20)], [Spec(out, 0.09 if code == "ADD" else 0.2, -3)],
                 "AddOptions" if code == "ADD" else "MulOptions", fusedActivationFunction=ACTS[act])
    assert_bit_exact(data, tmp_path, kernels)


def test_add_with_a_constant_operand(tmp_path, kernels):
    rng = np.random.default_rng(5)
    data = build("ADD", [Spec((1, 4, 4, 3), 0.04, 5), Spec((3,), 0.02, 1, weights(rng, (3,)))],
                 [Spec((1, 4, 4, 3), 0.05, 0)], "AddOptions", fusedActivationFunction=0)
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("axes, keep", [([1, 2], True), ([1, 2], False), ([3], True), ([0, 2], False), ([-1], False)],
                         ids=["hw-keep", "hw", "c-keep", "n-w", "last"])
@pytest.mark.parametrize("quant", ["rescaled", "same"])
def test_mean(tmp_path, kernels, axes, keep, quant):
    shape = (2, 5, 4, 6)
    reduced = {a % 4 for a in axes}
    out = tuple(1 if d in reduced else s for d, s in enumerate(shape)) if keep else \
        tuple(s for d, s in enumerate(shape) if d not in reduced)
    oq = (0.05, 3) if quant == "same" else (0.02, -7)
    data = build("MEAN", [Spec(shape, 0.05, 3), Spec((len(axes),), None, None, np.array(axes, np.int32), np.int32)],
                 [Spec(out, *oq)], "ReducerOptions", keepDims=keep)
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("pads", [[[0, 0], [1, 1], [2, 0], [0, 0]], [[0, 0], [0, 0], [0, 0], [1, 2]],
                                  [[1, 0], [0, 3], [0, 0], [0, 0]]], ids=["hw", "channels", "batch-and-h"])
def test_pad(tmp_path, kernels, pads):
    shape = (1, 3, 4, 2)
    out = tuple(s + a + b for s, (a, b) in zip(shape, pads))
    data = build("PAD", [Spec(shape, 0.05, -9), Spec((4, 2), None, None, np.array(pads, np.int32), np.int32)],
                 [Spec(out, 0.05, -9)])
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_concatenation(tmp_path, kernels, axis):
    shapes = [(2, 3, 2, 4), (2, 3, 2, 4), (2, 3, 2, 4)]
    ax = axis % 4
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    data = build("CONCATENATION", [Spec(s, 0.05, 2) for s in shapes], [Spec(tuple(out), 0.05, 2)],
                 "ConcatenationOptions", axis=axis, fusedActivationFunction=0)
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("perm", [[0, 3, 1, 2], [0, 2, 3, 1], [2, 1, 0]], ids=["nhwc-nchw", "nchw-nhwc", "3d"])
def test_transpose(tmp_path, kernels, perm):
    shape = (2, 3, 4, 5)[: len(perm)]
    data = build("TRANSPOSE", [Spec(shape, 0.05, 2), Spec((len(perm),), None, None, np.array(perm, np.int32), np.int32)],
                 [Spec(tuple(shape[a] for a in perm), 0.05, 2)])
    assert_bit_exact(data, tmp_path, kernels)


@pytest.mark.parametrize("beta, scale, shape", [(1.0, 0.1, (1, 10)), (1.0, 0.02, (3, 7)), (0.5, 0.3, (2, 2, 12)),
                                                (1.0, 1.0, (1, 40))], ids=["typical", "fine", "beta-half", "coarse"])
def test_softmax(tmp_path, kernels, beta, scale, shape):
    data = build("SOFTMAX", [Spec(shape, scale, 11)], [Spec(shape, 1 / 256, -128)], "SoftmaxOptions", beta=beta)
    assert_bit_exact(data, tmp_path, kernels)


LUTS = {
    "logistic": ("LOGISTIC", (0.08, 5), (1 / 256, -128)),
    "logistic-wide": ("LOGISTIC", (0.5, -100), (1 / 256, -128)),
    "tanh": ("TANH", (0.04, -7), (1 / 128, 0)),
    "tanh-wide": ("TANH", (0.3, 20), (1 / 128, 0)),
    "hard-swish": ("HARD_SWISH", (0.05, 3), (0.03, -20)),
    "hard-swish-wide": ("HARD_SWISH", (0.1, -100), (0.02, -128)),
    "quantize": ("QUANTIZE", (0.05, 3), (0.02, -9)),
    "relu": ("RELU", (0.05, 3), (0.03, -128)),
    "relu6": ("RELU6", (0.05, 3), (0.05, 3)),
    # TFLite Micro's RELU6 clamps in the input's quantization and ignores the output's; LiteRT rescales
    "relu6-rescaled": ("RELU6", (0.05, 3), (0.025, -128)),
}


@pytest.mark.parametrize("case", LUTS, ids=list(LUTS))
def test_table_ops_on_every_int8_value(tmp_path, kernels, case):
    code, (si, zi), (so, zo) = LUTS[case]
    data = build(code, [Spec((1, 256), si, zi)], [Spec((1, 256), so, zo)])
    compiled, _ = compile_model(data, tmp_path, objects=kernels)
    x = np.arange(-128, 128, dtype=np.int8)
    theirs = tflm_run(data, [x])
    np.testing.assert_array_equal(compiled(x)[0], np.asarray(theirs[0]).ravel())
    if case != "relu6-rescaled":
        assert_close_to_litert(theirs, data, [x])


def test_two_inputs_two_outputs(tmp_path, kernels):
    """Several inputs and outputs: the indexed API."""
    from oneop import quant

    from edgeops.convert.tflite.writer import ModelWriter

    w = ModelWriter()
    a = w.tensor("a", (1, 8), np.int8)
    b = w.tensor("b", (1, 8), np.int8)
    s = w.tensor("sum", (1, 8), np.int8)
    p = w.tensor("prod", (1, 8), np.int8)
    for i, (sc, zp) in zip((a, b, s, p), ((0.05, 1), (0.04, -2), (0.08, 3), (0.1, -5))):
        w.tensors[i].quantization = quant(sc, zp)
    w.op("ADD", [a, b], [s], "AddOptions", fusedActivationFunction=0)
    w.op("MUL", [a, s], [p], "MulOptions", fusedActivationFunction=0)
    w.inputs, w.outputs = [a, b], [s, p]
    data = w.serialize(["a", "b"], ["sum", "prod"])
    compiled, result = compile_model(data, tmp_path, objects=kernels)
    assert not compiled.single
    header = (tmp_path / "net_model.h").read_text()
    assert "#define NET_NUM_INPUTS 2" in header and "NET_OUTPUT_ZERO_POINT_1 -5" in header
    assert_bit_exact(data, tmp_path, kernels)
