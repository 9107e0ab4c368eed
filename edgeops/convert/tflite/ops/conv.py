"""Conv -> CONV_2D / DEPTHWISE_CONV_2D (grouped: SPLIT, one CONV_2D per group, CONCATENATION).

Inputs are taken channels-last and outputs stay channels-last. 1-D convolutions run as 2-D ones on
an H of 1 (a RESHAPE each side). Padding: SAME where TFLite's SAME matches, else an explicit PAD.
Kernels: CONV_2D wants OHWI, DEPTHWISE_CONV_2D wants [1, kH, kW, C*multiplier].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, channels_last
from ..registry import Unsupported, converter
from ._common import conv_padding, ints, pad_nhwc


def _check_conv(node: Any, ctx: Context) -> str | None:
    rank = ctx.rank(node.input[0])
    if rank not in (3, 4):
        return f"{rank - 2}-D convolution (TFLite has 1-D via 2-D and 2-D)"
    if not ctx.is_const(node.input[1]):
        return "weights computed at run time (TFLite needs constant conv weights)"
    if len(node.input) > 2 and node.input[2] and not ctx.is_const(node.input[2]):
        return "bias computed at run time"
    return None


@converter("Conv", tflite=("CONV_2D", "DEPTHWISE_CONV_2D"), check=_check_conv,
           notes="2-D and 1-D; depthwise (any multiplier) and grouped; every auto_pad, asymmetric pads via PAD")
def convert_conv(node: Any, ctx: Context) -> None:
    x, w_name = node.input[0], node.input[1]
    w = ctx.const(w_name).astype(np.float32)
    bias = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    one_d = w.ndim == 3
    if one_d:  # NCW -> N1WC: run as a 2-D conv with H = 1
        w = w[:, :, None, :]
    out_c, in_per_group, kh, kw = w.shape
    n_sp = 2
    strides = ints(ctx.attr(node, "strides"), 1 if one_d else n_sp, 1)
    dilations = ints(ctx.attr(node, "dilations"), 1 if one_d else n_sp, 1)
    if one_d:
        strides, dilations = (1, *strides), (1, *dilations)
    group = int(ctx.attr(node, "group", 1))
    in_shape = ctx.shape(x)
    c_in = in_shape[1]
    src = ctx.nhwc(x)
    nhwc_in = (in_shape[0], *in_shape[2:], c_in)
    if one_d:
        nhwc_in = (in_shape[0], 1, in_shape[2], c_in)
        src = _reshape(ctx, src, nhwc_in, f"{x}/h1")
    kernel_attr = ctx.attr(node, "kernel_shape")
    pads_attr = ctx.attr(node, "pads")
    if one_d and pads_attr:
        node_pads = [0, pads_attr[0], 0, pads_attr[1]]
    else:
        node_pads = None
    padding, pads = _padding(ctx, node, nhwc_in[1:3], (kh, kw), strides, dilations, node_pads, one_d)
    if kernel_attr is not None and tuple(kernel_attr) != tuple(w.shape[2:] if not one_d else w.shape[3:]):
        raise Unsupported("kernel_shape differs from the weights", "unsupported-attribute")
    if pads is not None:
        src, nhwc_in = pad_nhwc(ctx, src, nhwc_in, pads, hint=f"{node.name}/pad")
    b = np.zeros(out_c, np.float32) if bias is None else bias.astype(np.float32)
    out_shape = ctx.shape(node.output[0])
    nhwc_out = (out_shape[0], 1, out_shape[2], out_c) if one_d else (out_shape[0], *out_shape[2:], out_c)
    final = ctx.output(node.output[0], channels_last(len(out_shape)))
    dst = ctx.tmp(nhwc_out, np.float32, f"{node.output[0]}/h1") if one_d else final
    common = dict(padding=_pad_enum(padding), strideH=strides[0], strideW=strides[1],
                  dilationHFactor=dilations[0], dilationWFactor=dilations[1], fusedActivationFunction=0)
    name = node.name or node.output[0]
    if group == 1:
        ctx.op("CONV_2D", [src, ctx.constant(w.transpose(0, 2, 3, 1), f"{name}/weight"),
                           ctx.constant(b, f"{name}/bias")], [dst], "Conv2DOptions", **common)
    elif group == c_in and in_per_group == 1:
        ctx.op("DEPTHWISE_CONV_2D", [src, ctx.constant(w.transpose(1, 2, 3, 0), f"{name}/weight"),
                                     ctx.constant(b, f"{name}/bias")], [dst], "DepthwiseConv2DOptions",
               depthMultiplier=out_c // c_in, **common)
    else:
        _grouped(ctx, name, src, nhwc_in, w, b, group, dst, nhwc_out, common)
    if one_d:
        _reshape_into(ctx, dst, final, ctx.w.tensors[final].shape)


def _grouped(ctx: Context, name: str, src: int, nhwc_in: tuple[int, ...], w: np.ndarray, b: np.ndarray, group: int,
             dst: int, nhwc_out: tuple[int, ...], common: dict[str, Any]) -> None:
    c_in, out_c = nhwc_in[3], w.shape[0]
    gi, go = c_in // group, out_c // group
    parts = [ctx.tmp((*nhwc_in[:3], gi), np.float32, f"{name}/in{g}") for g in range(group)]
    ctx.op("SPLIT", [ctx.constant(np.array(3, np.int32)), src], parts, "SplitOptions", numSplits=group)
    outs = []
    for g in range(group):
        o = ctx.tmp((*nhwc_out[:3], go), np.float32, f"{name}/out{g}")
        ctx.op("CONV_2D", [parts[g], ctx.constant(w[g * go:(g + 1) * go].transpose(0, 2, 3, 1), f"{name}/weight{g}"),
                           ctx.constant(b[g * go:(g + 1) * go], f"{name}/bias{g}")], [o], "Conv2DOptions", **common)
        outs.append(o)
    ctx.op("CONCATENATION", outs, [dst], "ConcatenationOptions", axis=3, fusedActivationFunction=0)


def _padding(ctx: Context, node: Any, hw: tuple[int, ...], k: tuple[int, int], strides: tuple[int, ...],
             dilations: tuple[int, ...], pads_1d: list[int] | None, one_d: bool) -> tuple[str, list[int] | None]:
    if not one_d:
        return conv_padding(ctx, node, hw, k, strides, dilations)
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    if auto_pad != "NOTSET":
        padding, pads = conv_padding(ctx, node, hw[1:], k[1:], strides[1:], dilations[1:])
        return padding, None if pads is None else [0, pads[0], 0, pads[1]]
    pads = pads_1d or [0, 0, 0, 0]
    if not any(pads):
        return "VALID", None
    return "VALID", pads


def _pad_enum(name: str) -> int:
    from ..writer import schema

    return getattr(schema().Padding, name)


def _reshape(ctx: Context, src: int, shape: tuple[int, ...], hint: str) -> int:
    out = ctx.tmp(shape, np.float32, hint)
    _reshape_into(ctx, src, out, shape)
    return out


def _reshape_into(ctx: Context, src: int, dst: int, shape: tuple[int, ...]) -> None:
    ctx.op("RESHAPE", [src, ctx.constant(np.array(shape, np.int32))], [dst], "ReshapeOptions", newShape=list(shape))
