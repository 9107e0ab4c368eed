"""Reductions: ReduceMean/Max/Min/Sum/Prod -> MEAN, REDUCE_MAX, REDUCE_MIN, SUM, REDUCE_PROD, and the
composite ones (ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp) built from SUM and
unary ops.

The reduced axes are mapped through the input's layout, so a ReduceMean over H, W of an NHWC-stored
tensor needs no transpose; with keepdims the result keeps the input's layout, without it the
remaining axes keep their stored order. Axes come from the attribute (older opsets) or the constant
``axes`` input; empty axes reduce everything unless ``noop_with_empty_axes``. A reduction of an
empty tensor is a constant (0 for a sum, 1 for a product, -inf/+inf for max/min) and is folded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import Unsupported, converter

_CODES = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM",
          "ReduceProd": "REDUCE_PROD", "ReduceL1": "SUM", "ReduceL2": "SUM", "ReduceSumSquare": "SUM",
          "ReduceLogSum": "SUM", "ReduceLogSumExp": "SUM"}
_BEFORE = {"ReduceL1": "ABS", "ReduceL2": "SQUARE", "ReduceSumSquare": "SQUARE"}  # applied to the input
_AFTER = {"ReduceL2": "SQRT", "ReduceLogSum": "LOG"}  # applied to the sum
_INTS = {"ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"}  # also for int32/int64 tensors
_EMPTY = {"ReduceSum": 0.0, "ReduceProd": 1.0, "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceL1": 0.0,
          "ReduceL2": 0.0, "ReduceSumSquare": 0.0, "ReduceLogSum": -np.inf, "ReduceLogSumExp": -np.inf}


def _axes(node: Any, ctx: Context) -> list[int] | None:
    """The reduced ONNX axes, sorted; None when the node is a no-op (empty axes, noop_with_empty_axes)."""
    r = ctx.rank(node.input[0])
    axes = ctx.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = ctx.const(node.input[1])
        if value is None:
            raise Unsupported("axes computed at run time (TFLite needs them constant)", "dynamic-shape")
        axes = value.reshape(-1).tolist()
    if not axes:
        return None if ctx.attr(node, "noop_with_empty_axes", 0) else list(range(r))
    return sorted({int(a) % r for a in axes})


def _check_reduce(node: Any, ctx: Context) -> str | None:
    dtype = ctx.dtype(node.input[0])
    allowed = {"float32"} | ({"int32", "int64"} if node.op_type in _INTS else set())
    if node.op_type in ("ReduceMax", "ReduceMin"):
        allowed |= {"bool", "int8", "uint8"}
    if dtype.name not in allowed:
        return f"{node.op_type} of {dtype} tensors"
    _axes(node, ctx)  # raises for run-time axes
    if 0 in ctx.shape(node.input[0]) and (node.op_type not in _EMPTY or 0 in ctx.shape(node.output[0])):
        return "a reduction of an empty tensor to an empty or undefined result"
    return None


@converter(*_CODES, tflite=("MEAN", "REDUCE_MAX", "REDUCE_MIN", "SUM", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL",
                            "ABS", "SQUARE", "SQRT", "LOG", "EXP"), check=_check_reduce,
           notes="axes as attribute or constant input, keepdims, noop_with_empty_axes; axes mapped through the "
                 "stored layout (no transposes); Max/Min/Sum/Prod also on int32/int64, Max/Min of bool as "
                 "REDUCE_ANY/ALL; L1, L2, SumSquare, LogSum, LogSumExp (max-shifted) composed from SUM")
def convert_reduce(node: Any, ctx: Context) -> None:
    x, y, kind = node.input[0], node.output[0], node.op_type
    axes = _axes(node, ctx)
    if axes is None:
        ctx.alias(y, x)
        return
    if 0 in ctx.shape(x):  # every output element reduces an empty set
        ctx.consts[y] = np.full(ctx.shape(y), _empty_value(kind, ctx.dtype(y)), ctx.dtype(y))
        return
    keep = bool(ctx.attr(node, "keepdims", 1))
    perm = identity(ctx.rank(x)) if ctx.is_const(x) else ctx.layout(x)
    stored_axes = sorted(perm.index(a) for a in axes)
    src = ctx.get(x, perm, ctx.dtype(x) if ctx.is_const(x) else None)
    shape = tuple(ctx.shape(x)[a] for a in perm)
    out_perm = perm if keep else _without(perm, axes)
    out = ctx.output(y, out_perm)
    code = _CODES[kind]
    if ctx.dtype(x) == np.bool_:
        code = "REDUCE_ANY" if kind == "ReduceMax" else "REDUCE_ALL"
    if kind == "ReduceLogSumExp":
        _log_sum_exp(ctx, src, shape, stored_axes, keep, out)
        return
    if kind in _BEFORE:
        src = _unary(ctx, _BEFORE[kind], src, shape, f"{y}/{_BEFORE[kind].lower()}")
    if kind in _AFTER:
        summed = ctx.tmp(ctx.w.tensors[out].shape, np.float32, f"{y}/sum")
        _reduce(ctx, code, src, stored_axes, keep, summed)
        ctx.op(_AFTER[kind], [summed], [out])
        return
    _reduce(ctx, code, src, stored_axes, keep, out)


def _empty_value(kind: str, dtype: np.dtype) -> Any:
    """The reduction of an empty set: the identity of the operation (-inf/+inf: the type's extremes)."""
    value = _EMPTY[kind]
    if dtype == np.bool_:
        return kind == "ReduceMin"  # all() of nothing is True, any() is False
    if dtype.kind in "iu" and np.isinf(value):
        info = np.iinfo(dtype)
        return info.min if value < 0 else info.max
    return value


def _without(perm: tuple[int, ...], axes: list[int]) -> tuple[int, ...]:
    """The layout of the result once ``axes`` are gone: the remaining axes in their stored order."""
    rest = [a for a in range(len(perm)) if a not in axes]
    return tuple(rest.index(a) for a in perm if a in rest)


def _reduce(ctx: Context, code: str, src: int, stored_axes: list[int], keep: bool, out: int) -> None:
    ctx.op(code, [src, ctx.constant(np.array(stored_axes, np.int32))], [out], "ReducerOptions", keepDims=keep)


def _unary(ctx: Context, code: str, src: int, shape: tuple[int, ...], hint: str) -> int:
    out = ctx.tmp(shape, np.float32, hint)
    ctx.op(code, [src], [out])
    return out


def _log_sum_exp(ctx: Context, src: int, shape: tuple[int, ...], stored_axes: list[int], keep: bool, out: int) -> None:
    """log(sum(exp(x - m))) + m with m the max over the axes (no overflow for large inputs)."""
    kept = tuple(1 if i in stored_axes else d for i, d in enumerate(shape))
    m = ctx.tmp(kept, np.float32, "lse/max")
    _reduce(ctx, "REDUCE_MAX", src, stored_axes, True, m)
    shifted = ctx.tmp(shape, np.float32, "lse/shifted")
    ctx.op("SUB", [src, m], [shifted], "SubOptions", fusedActivationFunction=0)
    summed = ctx.tmp(kept, np.float32, "lse/sum")
    _reduce(ctx, "SUM", _unary(ctx, "EXP", shifted, shape, "lse/exp"), stored_axes, True, summed)
    total = out if keep else ctx.tmp(kept, np.float32, "lse/kept")
    ctx.op("ADD", [_unary(ctx, "LOG", summed, kept, "lse/log"), m], [total], "AddOptions", fusedActivationFunction=0)
    if not keep:
        ctx.reshape(total, ctx.w.tensors[out].shape, out)
