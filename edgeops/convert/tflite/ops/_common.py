"""Helpers shared by the op converters: layout-keeping unary ops, explicit padding, attribute tuples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity


def unary(ctx: Context, node: Any, code: str, options_type: str | None = None, **options: Any) -> None:
    """A layout-agnostic one-input op: the output keeps the input's layout."""
    x = node.input[0]
    perm = ctx.layout(x) if not ctx.is_const(x) else identity(ctx.rank(x))
    src = ctx.get(x, perm)
    ctx.op(code, [src], [ctx.output(node.output[0], perm)], options_type, **options)


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
