"""Helpers shared by the op converters: padding, unary ops, layout choice for elementwise ops."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import Unsupported


def unary(ctx: Context, node: Any, code: str, options_type: str | None = None, **options: Any) -> None:
    """A layout-agnostic one-input op: the output keeps the input's layout."""
    x = node.input[0]
    perm = ctx.layout(x) if not ctx.is_const(x) else identity(ctx.rank(x))
    src = ctx.get(x, perm)
    ctx.op(code, [src], [ctx.output(node.output[0], perm)], options_type, **options)


def elementwise_layout(ctx: Context, names: list[str], rank: int) -> tuple[int, ...]:
    """The layout of an elementwise result: that of the first full-rank non-constant operand."""
    for n in names:
        if n and not ctx.is_const(n) and ctx.rank(n) == rank:
            return ctx.layout(n)
    return identity(rank)


def conv_padding(ctx: Context, node: Any, in_hw: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                 dilations: tuple[int, ...]) -> tuple[str, list[int] | None]:
    """("SAME" | "VALID", explicit [begin..., end...] pads or None) for a conv or pool node.

    TFLite SAME puts the odd pixel at the end, like ONNX SAME_UPPER; anything else that is not
    all zeros becomes an explicit PAD before a VALID op."""
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    n = len(in_hw)
    same = []
    for i in range(n):
        eff = (kernel[i] - 1) * dilations[i] + 1
        out = -(-in_hw[i] // strides[i])
        total = max((out - 1) * strides[i] + eff - in_hw[i], 0)
        same.append((total // 2, total - total // 2))
    if auto_pad == "VALID":
        return "VALID", None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [b for b, _ in same] + [e for _, e in same]
        if auto_pad == "SAME_LOWER":
            pads = [e for _, e in same] + [b for b, _ in same]
    else:
        pads = list(ctx.attr(node, "pads", [0] * (2 * n)))
    if not any(pads):
        return "VALID", None
    if pads == [b for b, _ in same] + [e for _, e in same]:
        return "SAME", None
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads", "unsupported-attribute")
    return "VALID", pads


def pad_nhwc(ctx: Context, tensor: int, shape: tuple[int, ...], pads: list[int], value: float = 0.0,
             hint: str = "pad") -> tuple[int, tuple[int, ...]]:
    """An explicit PAD (PADV2 for a non-zero value) of a channels-last tensor on its spatial axes."""
    n = len(pads) // 2
    paddings = np.zeros((len(shape), 2), np.int32)
    for i in range(n):
        paddings[1 + i] = (pads[i], pads[i + n])
    out_shape = tuple(int(d + paddings[k].sum()) for k, d in enumerate(shape))
    out = ctx.tmp(out_shape, np.float32, hint)
    if value == 0.0:
        ctx.op("PAD", [tensor, ctx.constant(paddings)], [out], "PadOptions")
    else:
        ctx.op("PADV2", [tensor, ctx.constant(paddings), ctx.constant(np.array(value, np.float32))], [out],
               "PadV2Options")
    return out, out_shape


def ints(value: Any, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if value else (default,) * n
