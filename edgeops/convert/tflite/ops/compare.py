"""Comparisons and selection: Greater, Less, GreaterOrEqual, LessOrEqual, Equal (bool results) and
Where (TFLite SELECT_V2).

torch's dynamo exporter writes Softplus as ``Where(x > 20, x, log1p(exp(x)))``, so a YOLO-style
detector needs both (zoo, issue 12). Every op here broadcasts numpy-style in any rank and keeps the
layout of its operands, like the arithmetic in ``elementwise.py`` (whose helpers it uses): a
comparison of a channels-last conv output with a constant stays channels-last. Integers compare in
the type they are stored in (int32, int64); int8, int16 and uint8 go through int32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context
from ..registry import converter
from .elementwise import F32, I32, I64, NARROW_INTS, TENSOR_TYPES, emit, layout_of, operand, stored_dtype

BOOL = np.dtype(np.bool_)
_COMPARE = {"Greater": "GREATER", "Less": "LESS", "GreaterOrEqual": "GREATER_EQUAL", "LessOrEqual": "LESS_EQUAL",
            "Equal": "EQUAL"}


def _typed(node: Any, ctx: Context, names: list[str]) -> str | None:
    for name in names:
        dt = ctx.dtype(name)
        if dt not in TENSOR_TYPES and not ctx.is_const(name):
            return f"{dt} input {name!r} (TFLite has no such tensor type)"
    return None


def _work(ctx: Context, names: list[str]) -> np.dtype:
    """The type operands are compared or selected in: float32, bool, int64 if one is stored so, else int32."""
    types = {ctx.dtype(n) for n in names}
    if F32 in types or any(t.kind == "f" for t in types):
        return F32
    if types == {BOOL}:
        return BOOL
    return I64 if any(stored_dtype(ctx, n) == I64 for n in names if not ctx.is_const(n)) else I32


def _check_compare(node: Any, ctx: Context) -> str | None:
    reason = _typed(node, ctx, list(node.input))
    if reason is None and _work(ctx, list(node.input)) == BOOL and node.op_type != "Equal":
        return f"bool operands of {node.op_type} (TFLite compares bool for Equal only)"
    if reason is None and any(ctx.dtype(n).kind == "f" and ctx.dtype(n) != F32 for n in node.input
                              if not ctx.is_const(n)):
        return f"{next(ctx.dtype(n) for n in node.input if ctx.dtype(n).kind == 'f')} operands (float32 only)"
    return reason


def convert_compare(node: Any, ctx: Context) -> None:
    names, y = list(node.input), node.output[0]
    rank = ctx.rank(y)
    perm = layout_of(ctx, names, rank)
    work = _work(ctx, names)
    a, b = (operand(ctx, n, rank, perm, work) for n in names)
    emit(ctx, _COMPARE[node.op_type], [a, b], ctx.output(y, perm, BOOL))


for _op, _code in _COMPARE.items():
    converter(_op, tflite=(_code, "CAST"), check=_check_compare,
              notes="numpy broadcasting in any rank, constant or computed operands in any layout; float32, int32, "
                    "int64, int8/int16/uint8 via int32" + ("; bool" if _op == "Equal" else ""))(convert_compare)


def _check_where(node: Any, ctx: Context) -> str | None:
    reason = _typed(node, ctx, list(node.input))
    if reason is None and ctx.dtype(node.input[0]) != BOOL:
        return f"a {ctx.dtype(node.input[0])} condition (ONNX requires bool)"
    out = ctx.dtype(node.output[0])
    if reason is None and out not in {F32, I32, I64, BOOL} | NARROW_INTS:
        return f"{out} values (TFLite selects float32, integers and bool)"
    return reason


@converter("Where", tflite="SELECT_V2", check=_check_where,
           notes="numpy broadcasting of condition and both values in any rank and layout; float32, integers, bool")
def convert_where(node: Any, ctx: Context) -> None:
    cond, names, y = node.input[0], list(node.input[1:]), node.output[0]
    rank = ctx.rank(y)
    perm = layout_of(ctx, list(node.input), rank)
    out_dtype = ctx.dtype(y)
    work = out_dtype if out_dtype in NARROW_INTS else _work(ctx, names)
    inputs = [operand(ctx, cond, rank, perm, BOOL)] + [operand(ctx, n, rank, perm, work) for n in names]
    emit(ctx, "SELECT_V2", inputs, ctx.output(y, perm, work))
