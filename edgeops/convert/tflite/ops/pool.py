"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on channels-last tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, channels_last
from ..registry import converter
from ._common import conv_padding, ints, pad_nhwc


def _check_pool(node: Any, ctx: Context) -> str | None:
    if ctx.rank(node.input[0]) != 4:
        return "only 2-D pooling (NCHW input)"
    if len(node.output) > 1 and node.output[1]:
        return "MaxPool's Indices output"
    if any(d != 1 for d in ctx.attr(node, "dilations", []) or []):
        return "dilated pooling"
    if ctx.attr(node, "storage_order", 0):
        return "storage_order=1"
    return None


@converter("MaxPool", "AveragePool", tflite=("MAX_POOL_2D", "AVERAGE_POOL_2D"), check=_check_pool,
           notes="2-D; SAME/VALID/explicit pads (MaxPool pads with -inf), ceil_mode")
def convert_pool(node: Any, ctx: Context) -> None:
    x = node.input[0]
    n, c, h, w = ctx.shape(x)
    k = ints(ctx.attr(node, "kernel_shape"), 2, 1)
    s = ints(ctx.attr(node, "strides"), 2, 1)
    src = ctx.nhwc(x)
    padding, pads = conv_padding(ctx, node, (h, w), k, s, (1, 1))
    out_shape = ctx.shape(node.output[0])
    if ctx.attr(node, "ceil_mode", 0) and padding == "VALID":
        pads = list(pads or [0, 0, 0, 0])
        for i, size in enumerate((h, w)):  # extra end padding so the last partial window counts
            need = (out_shape[2 + i] - 1) * s[i] + k[i] - (size + pads[i] + pads[i + 2])
            pads[i + 2] += max(need, 0)
        pads = pads if any(pads) else None
    is_max = node.op_type == "MaxPool"
    nhwc = (n, h, w, c)
    if pads is not None:
        include_pad = ctx.attr(node, "count_include_pad", 0)
        if not is_max and not include_pad:
            from ..registry import Unsupported

            raise Unsupported("AveragePool with explicit pads that exclude the padding (count_include_pad=0)")
        src, nhwc = pad_nhwc(ctx, src, nhwc, pads, value=-3.4e38 if is_max else 0.0, hint=f"{node.name}/pad")
    elif not is_max and padding == "SAME" and ctx.attr(node, "count_include_pad", 0):
        from ..registry import Unsupported

        raise Unsupported("AveragePool with count_include_pad=1 and SAME padding")
    from .conv import _pad_enum

    out = ctx.output(node.output[0], channels_last(4))
    ctx.op("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [src], [out], "Pool2DOptions",
           padding=_pad_enum(padding), strideH=s[0], strideW=s[1], filterHeight=k[0], filterWidth=k[1],
           fusedActivationFunction=0)


@converter("GlobalAveragePool", "GlobalMaxPool", tflite=("MEAN", "REDUCE_MAX"),
           notes="any rank >= 3; the result stays channels-last")
def convert_global_pool(node: Any, ctx: Context) -> None:
    x = node.input[0]
    r = ctx.rank(x)
    src = ctx.get(x, channels_last(r))
    axes = np.arange(1, r - 1, dtype=np.int32)
    out = ctx.output(node.output[0], channels_last(r))
    code = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    ctx.op(code, [src, ctx.constant(axes)], [out], "ReducerOptions", keepDims=True)
