"""Conv -> CONV_2D / DEPTHWISE_CONV_2D / CONV_3D; ConvTranspose -> TRANSPOSE_CONV / CONV_3D_TRANSPOSE.

Inputs are taken channels-last and outputs stay channels-last. 1-D convolutions run as 2-D ones
on an H of 1, a RESHAPE each side. Kernels: CONV_2D and TRANSPOSE_CONV want OHWI,
DEPTHWISE_CONV_2D [1, kH, kW, C * multiplier], CONV_3D [kD, kH, kW, I, O] and CONV_3D_TRANSPOSE
[kD, kH, kW, O, I].

Padding: ONNX pads (explicit, SAME_UPPER, SAME_LOWER) are resolved to [begin..., end...] first
(pool.py shares these helpers); TFLite's SAME is used where its pads are the same, anything else is
an explicit PAD before a VALID op. A grouped convolution (1 < group < C_in) is one CONV_2D whose
kernel has C_in / group input channels (LiteRT and tflite-runtime 2.14 run those, with and without
XNNPACK); a grouped transpose convolution is a SPLIT, one TRANSPOSE_CONV per group and a
CONCATENATION. A transpose convolution with pads TFLite's SAME does not produce is computed
unpadded (VALID) and cropped with a SLICE; its dilations are folded into the kernel (zeros between
the taps), TFLite's transpose convolutions having none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, channels_last
from ..registry import Unsupported, converter
from ._common import ints, pad_nhwc

# ---- window geometry (pool.py uses it too) ----------------------------------------------------


def window(ctx: Context, node: Any, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(strides, dilations) of a conv node with ``n`` spatial axes; a 1-D one's as 2-D, with H = 1."""
    s, d = ints(ctx.attr(node, "strides"), n, 1), ints(ctx.attr(node, "dilations"), n, 1)
    return ((1, *s), (1, *d)) if n == 1 else (s, d)


def onnx_pads(ctx: Context, node: Any, sizes: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
              dilations: tuple[int, ...]) -> list[int]:
    """The node's pads as [begin..., end...] over its ``len(sizes)`` spatial axes, auto_pad resolved."""
    n = len(sizes)
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [0] * (2 * n)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            total = same_total(sizes[i], kernel[i], strides[i], dilations[i])
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        return begin + end
    pads = [int(p) for p in ctx.attr(node, "pads", [0] * (2 * n))]
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads")
    return pads


def same_total(size: int, kernel: int, stride: int, dilation: int) -> int:
    """The total padding of TFLite's (and ONNX's SAME_*) SAME on one axis."""
    out = -(-size // stride)
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def tflite_padding(sizes: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                   dilations: tuple[int, ...], pads: list[int]) -> tuple[str, list[int] | None]:
    """("SAME" | "VALID", pads still to apply explicitly or None) for pads [begin..., end...]."""
    if not any(pads):
        return "VALID", None
    same = [same_total(sizes[i], kernel[i], strides[i], dilations[i]) for i in range(len(sizes))]
    if pads == [t // 2 for t in same] + [t - t // 2 for t in same]:
        return "SAME", None
    return "VALID", pads


def channels_last_input(ctx: Context, x: str) -> tuple[int, tuple[int, ...]]:
    """Input ``x`` channels-last (a 1-D NCW input as N1WC, 4-D) and that shape."""
    shape = ctx.shape(x)
    src = ctx.nhwc(x)
    if len(shape) > 3:
        return src, (shape[0], *shape[2:], shape[1])
    nhwc = (shape[0], 1, shape[2], shape[1])
    return ctx.reshape(src, nhwc, hint=f"{x}/h1"), nhwc


def channels_last_output(ctx: Context, y: str) -> tuple[int, tuple[int, ...]]:
    """The channels-last tensor a converter writes ``y`` into (a 1-D one 4-D: see :func:`finish`)."""
    shape = ctx.shape(y)
    if len(shape) > 3:
        return ctx.output(y, channels_last(len(shape))), (shape[0], *shape[2:], shape[1])
    nhwc = (shape[0], 1, shape[2], shape[1])
    return ctx.tmp(nhwc, ctx.dtype(y), f"{y}/h1"), nhwc


def finish(ctx: Context, y: str, dst: int) -> None:
    """For a 1-D ``y``, reshape the N1WC result ``dst`` into ``y`` (stored NWC)."""
    if ctx.rank(y) == 3:
        out = ctx.output(y, channels_last(3))
        ctx.reshape(dst, ctx.w.tensors[out].shape, out)


def pad_enum(name: str) -> int:
    from ..writer import schema

    return getattr(schema().Padding, name)




def _check_weights(node: Any, ctx: Context, what: str) -> str | None:
    rank = ctx.rank(node.input[0])
    if rank not in (3, 4, 5):
        return f"{rank - 2}-D {what} (TFLite has 2-D and 3-D ones; 1-D runs as 2-D)"
    if ctx.dtype(node.output[0]) != np.float32:
        return f"{ctx.dtype(node.output[0])} {what} (only float32 is converted)"
    if not ctx.is_const(node.input[1]):
        return "weights computed at run time (TFLite needs constant weights)"
    if len(node.input) > 2 and node.input[2] and not ctx.is_const(node.input[2]):
        return "bias computed at run time"
    kernel = ctx.attr(node, "kernel_shape")
    if kernel is not None and tuple(kernel) != ctx.shape(node.input[1])[2:]:
        return "kernel_shape differs from the weights"
    if rank == 5 and int(ctx.attr(node, "group", 1)) != 1:
        return f"grouped 3-D {what} (TFLite's 3-D convolutions have no groups)"
    return None


def _weights(ctx: Context, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """The float32 weights (1-D kernels get kH = 1) and the bias (zeros when there is none)."""
    w = ctx.const_array(node.input[1]).astype(np.float32)
    if w.ndim == 3:
        w = w[:, :, None, :]
    b = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    out_c = ctx.shape(node.output[0])[1]
    return w, np.zeros(out_c, np.float32) if b is None else b.astype(np.float32)


# ---- Conv ----------------------------------------------------------------------------------------


def _check_conv(node: Any, ctx: Context) -> str | None:
    return _check_weights(node, ctx, "convolution")


@converter("Conv", tflite=("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "PAD"), check=_check_conv,
           notes="1-D (as 2-D), 2-D and 3-D; strides, dilations, every auto_pad and explicit pads (SAME where "
                 "TFLite's SAME matches, else PAD); depthwise with any multiplier; grouped 2-D as one CONV_2D "
                 "with a C_in / group kernel")
def convert_conv(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    w, b = _weights(ctx, node)
    n = ctx.rank(x) - 2
    strides, dilations = window(ctx, node, n)
    src, nhwc_in = channels_last_input(ctx, x)
    pads = onnx_pads(ctx, node, ctx.shape(x)[2:], ctx.shape(node.input[1])[2:], strides[-n:], dilations[-n:])
    pads = [0, pads[0], 0, pads[1]] if n == 1 else pads
    padding, explicit = tflite_padding(nhwc_in[1:-1], w.shape[2:], strides, dilations, pads)
    if explicit is not None:
        src, nhwc_in = pad_nhwc(ctx, src, nhwc_in, explicit, hint=f"{node.name}/pad")
    dst, _ = channels_last_output(ctx, y)
    options = dict(padding=pad_enum(padding), fusedActivationFunction=0,
                   **_axis_options(strides, "stride{}"), **_axis_options(dilations, "dilation{}Factor"))
    group, c_in = int(ctx.attr(node, "group", 1)), nhwc_in[-1]
    if n == 3:
        code, kernel, options_type = "CONV_3D", w.transpose(2, 3, 4, 1, 0), "Conv3DOptions"
    elif group > 1 and group == c_in and w.shape[1] == 1:
        code, kernel, options_type = "DEPTHWISE_CONV_2D", w.transpose(1, 2, 3, 0), "DepthwiseConv2DOptions"
        options["depthMultiplier"] = w.shape[0] // c_in
    else:  # CONV_2D runs grouped convolutions itself: its kernel's I is C_in / group
        code, kernel, options_type = "CONV_2D", w.transpose(0, 2, 3, 1), "Conv2DOptions"
    name = node.name or y
    ctx.op(code, [src, ctx.constant(kernel, f"{name}/weight"), ctx.constant(b, f"{name}/bias")], [dst],
           options_type, **options)
    finish(ctx, y, dst)


def _axis_options(values: tuple[int, ...], field: str) -> dict[str, int]:
    """{strideH: .., strideW: ..} (and D for 3-D) from per-axis ``values``."""
    return {field.format(axis): v for axis, v in zip("DHW"[-len(values):], values)}


# ---- ConvTranspose -------------------------------------------------------------------------------


def _check_conv_transpose(node: Any, ctx: Context) -> str | None:
    reason = _check_weights(node, ctx, "transpose convolution")
    if reason is None:
        _transpose_plan(node, ctx)  # raises Unsupported
    return reason


def _transpose_plan(node: Any, ctx: Context) -> tuple[str, tuple[int, ...], list[int]]:
    """(TFLite padding, the spatial size the TFLite op computes, what to crop off its start per axis).

    TFLite derives the input size back from the output size it is given (and checks it), so the
    computed size must be one of the sizes a conv of the input would shrink back to: with VALID,
    the full (in - 1) * stride + kernel plus less than a stride; with SAME, ceil(out / stride) = in."""
    sizes, k = ctx.shape(node.input[0])[2:], ctx.shape(node.input[1])[2:]
    out = ctx.shape(node.output[0])[2:]
    n = len(sizes)
    s, d = ints(ctx.attr(node, "strides"), n, 1), ints(ctx.attr(node, "dilations"), n, 1)
    k = tuple((k[i] - 1) * d[i] + 1 for i in range(n))
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        extra = ints(ctx.attr(node, "output_padding"), n, 0)
        total = [s[i] * (sizes[i] - 1) + extra[i] + k[i] - out[i] for i in range(n)]
        begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
    elif auto_pad == "VALID":
        begin = [0] * n
    else:
        begin = [int(p) for p in (ctx.attr(node, "pads") or [0] * (2 * n))[:n]]
    if n == 1:
        sizes, k, s, out, begin, n = (1, *sizes), (1, *k), (1, *s), (1, *out), [0, *begin], 2
    full = [(sizes[i] - 1) * s[i] + k[i] for i in range(n)]
    if n == 2 and any(begin) and all(-(-out[i] // s[i]) == sizes[i] and full[i] >= out[i]
                                     and begin[i] == (full[i] - out[i]) // 2 for i in range(n)):
        return "SAME", tuple(out), [0] * n
    if any(b < 0 for b in begin):
        raise Unsupported("output_shape larger than the transpose convolution (negative pads)")
    computed = tuple(max(full[i], begin[i] + out[i]) for i in range(n))
    if any(computed[i] >= full[i] + s[i] for i in range(n)):
        raise Unsupported("output_shape extends a stride or more past the transpose convolution")
    return "VALID", computed, begin


@converter("ConvTranspose", tflite=("TRANSPOSE_CONV", "CONV_3D_TRANSPOSE", "SLICE", "SPLIT", "CONCATENATION"),
           check=_check_conv_transpose,
           notes="1-D (as 2-D), 2-D and 3-D; strides, pads, auto_pad, output_padding, output_shape (SAME where "
                 "TFLite's SAME matches, else VALID and a SLICE); dilations folded into the kernel; 2-D groups as "
                 "SPLIT + one TRANSPOSE_CONV per group")
def convert_conv_transpose(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    w, b = _weights(ctx, node)
    n, group = ctx.rank(x) - 2, int(ctx.attr(node, "group", 1))
    strides, dilations = window(ctx, node, n)
    if any(d != 1 for d in dilations):  # TFLite's transpose convolutions have none: zeros between the taps
        dilated = np.zeros((*w.shape[:2], *((k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations))), np.float32)
        taps = (slice(None), slice(None), *(slice(None, None, d) for d in dilations))
        dilated[taps] = w
        w = dilated
    padding, computed, begin = _transpose_plan(node, ctx)
    src, nhwc_in = channels_last_input(ctx, x)
    dst, nhwc_out = channels_last_output(ctx, y)
    full_shape = (nhwc_out[0], *computed, nhwc_out[-1])
    full = dst if full_shape == nhwc_out else ctx.tmp(full_shape, np.float32, f"{y}/full")
    name = node.name or y
    shape, bias = ctx.constant(np.array(full_shape, np.int32), f"{name}/shape"), ctx.constant(b, f"{name}/bias")
    if n == 3:  # ONNX [C_in, C_out, kD, kH, kW] -> [kD, kH, kW, C_out, C_in]
        ctx.op("CONV_3D_TRANSPOSE", [shape, ctx.constant(w.transpose(2, 3, 4, 1, 0), f"{name}/weight"), src, bias],
               [full], "Conv3DOptions", padding=pad_enum(padding), fusedActivationFunction=0,
               **_axis_options(strides, "stride{}"), **_axis_options((1, 1, 1), "dilation{}Factor"))
    else:  # ONNX [C_in, C_out / group, kH, kW] -> [C_out, kH, kW, C_in] per group
        options = dict(padding=pad_enum(padding), fusedActivationFunction=0, **_axis_options(strides, "stride{}"))
        kernels = [g.transpose(1, 2, 3, 0) for g in np.split(w, group)]
        if group == 1:
            ctx.op("TRANSPOSE_CONV", [shape, ctx.constant(kernels[0], f"{name}/weight"), src, bias], [full],
                   "TransposeConvOptions", **options)
        else:
            _grouped(ctx, name, src, nhwc_in, kernels, np.split(b, group), full, full_shape, options)
    if full != dst:
        ctx.op("SLICE", [full, ctx.constant(np.array([0, *begin, 0], np.int32)),
                         ctx.constant(np.array(nhwc_out, np.int32))], [dst], "SliceOptions")
    finish(ctx, y, dst)


def _grouped(ctx: Context, name: str, src: int, nhwc_in: tuple[int, ...], kernels: list[np.ndarray],
             biases: list[np.ndarray], dst: int, nhwc_out: tuple[int, ...], options: dict[str, Any]) -> None:
    """A grouped TRANSPOSE_CONV: SPLIT the channels, one op per group, CONCATENATION of the results."""
    group = len(kernels)
    parts = [ctx.tmp((*nhwc_in[:3], nhwc_in[3] // group), np.float32, f"{name}/in{g}") for g in range(group)]
    ctx.op("SPLIT", [ctx.constant(np.array(3, np.int32)), src], parts, "SplitOptions", numSplits=group)
    outs = []
    for g in range(group):
        o = ctx.tmp((*nhwc_out[:3], nhwc_out[3] // group), np.float32, f"{name}/out{g}")
        kernel, bias = ctx.constant(kernels[g], f"{name}/weight{g}"), ctx.constant(biases[g], f"{name}/bias{g}")
        shape = ctx.constant(np.array(ctx.w.tensors[o].shape, np.int32), f"{name}/shape")
        ctx.op("TRANSPOSE_CONV", [shape, kernel, parts[g], bias], [o], "TransposeConvOptions", **options)
        outs.append(o)
    ctx.op("CONCATENATION", outs, [dst], "ConcatenationOptions", axis=3, fusedActivationFunction=0)
