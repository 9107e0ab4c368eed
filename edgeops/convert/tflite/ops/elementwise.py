"""Elementwise math: Add, Sub, Mul, Div, Pow, Max, Min, Sum, Mean with numpy broadcasting; the unary
math ops (Exp, Log, Sqrt, Abs, Neg, Reciprocal, Floor, Ceil, Round, Sin, Cos, Sign); and the
aliases Identity and Dropout.

Every op here is layout-agnostic. The result takes the layout of a full-rank non-constant operand,
preferring a permuted (channels-last) one, so a residual Add of a graph input and a conv output
stays channels-last; every other operand is laid out to match (``operand``): a constant is
reshaped and transposed at export time, a lower-rank value gets one RESHAPE (a TRANSPOSE only
where its non-1 axes change order).

Integers: int32 and int64 values are computed in the type they are stored in (TFLite has int32
and int64 ADD, SUB, MUL, MAXIMUM, MINIMUM, and int32 DIV, which truncates like ONNX); int8,
int16 and uint8 arithmetic goes through int32 with a CAST each side, because TFLite's 8- and
16-bit ADD/MUL kernels are quantized-only (and crash on plain integers).

The helpers ``operand``, ``emit``, ``const_like`` and ``like`` are shared with ``activation.py`` and
``compare.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import converter

F32: np.dtype = np.dtype(np.float32)
I32: np.dtype = np.dtype(np.int32)
I64: np.dtype = np.dtype(np.int64)
NARROW_INTS: set[np.dtype] = {np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint8)}
TENSOR_TYPES: set[np.dtype] = {F32, I32, I64, np.dtype(np.bool_)} | NARROW_INTS

OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
           "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions", "POW": "PowOptions",
           "LESS": "LessOptions", "GREATER": "GreaterOptions", "SELECT_V2": "SelectV2Options",
           "TILE": "TileOptions", "LESS_EQUAL": "LessEqualOptions", "GREATER_EQUAL": "GreaterEqualOptions",
           "EQUAL": "EqualOptions"}
FUSABLE = {"ADD", "SUB", "MUL", "DIV"}  # their options carry a fused activation, written as NONE
BROADCASTING = FUSABLE | {"MAXIMUM", "MINIMUM", "POW", "PRELU", "SELECT_V2", "LESS", "GREATER", "LESS_EQUAL",
                          "GREATER_EQUAL", "EQUAL"}


# ---- helpers (also used by activation.py) -----------------------------------------------------
def emit(ctx: Context, code: str, inputs: list[int], out: int) -> int:
    """Add TFLite op ``code`` (with its options table, if it has one) and return ``out``.

    A broadcasting op of rank > 4 runs on merged axes instead (a RESHAPE each side): tflite-runtime
    2.14's MUL, DIV, SUB, MAXIMUM, MINIMUM, POW, PRELU, LESS, GREATER and SELECT_V2 kernels crash
    on broadcasts beyond 4-D, a scalar operand included."""
    options = {"fusedActivationFunction": 0} if code in FUSABLE else {}
    shape = ctx.w.tensors[out].shape
    if code in BROADCASTING and len(shape) > 4 and any(ctx.w.tensors[t].shape != shape for t in inputs):
        inputs, low = _low_rank(ctx, inputs, shape)
        if low is not None:
            merged = ctx.tmp(low, ctx.w.tensors[out].dtype, "merged")
            ctx.op(code, inputs, [merged], OPTIONS.get(code), **options)
            return ctx.reshape(merged, shape, out)
    ctx.op(code, inputs, [out], OPTIONS.get(code), **options)
    return out


def _low_rank(ctx: Context, inputs: list[int], shape: tuple[int, ...]) -> tuple[list[int], tuple[int, ...] | None]:
    """``inputs`` reshaped so that runs of axes along which the same inputs broadcast become one axis,
    and the merged output shape; where more than 4 axes remain, the inputs tiled to ``shape`` and None."""
    shapes = [ctx.w.tensors[t].shape for t in inputs]
    padded = [(1,) * (len(shape) - len(s)) + s if s else (1,) * len(shape) for s in shapes]
    groups: list[tuple[tuple[bool, ...], list[int]]] = []
    for axis, size in enumerate(shape):
        if size == 1:
            continue
        kind = tuple(p[axis] == size for p in padded)
        if groups and groups[-1][0] == kind:
            groups[-1][1].append(axis)
        else:
            groups.append((kind, [axis]))
    if len(groups) > 4:
        return [_tile(ctx, t, p, shape) for t, p in zip(inputs, padded)], None
    low = tuple(int(np.prod([shape[a] for a in axes])) for _, axes in groups)
    merged = []
    for t, s, p in zip(inputs, shapes, padded):
        target = tuple(int(np.prod([p[a] for a in axes])) for _, axes in groups)
        merged.append(t if not s or s == target else ctx.reshape(t, target, hint="merged"))
    return merged, low


def _tile(ctx: Context, t: int, padded: tuple[int, ...], shape: tuple[int, ...]) -> int:
    if ctx.w.tensors[t].shape == shape:
        return t
    if ctx.w.tensors[t].shape != padded:
        t = ctx.reshape(t, padded, hint="padded")
    multiples = np.array([o // i for o, i in zip(shape, padded)], np.int32)
    return emit(ctx, "TILE", [t, ctx.constant(multiples)], like(ctx, t, "tiled", shape=shape))


def like(ctx: Context, t: int, hint: str = "tmp", dtype: Any = None,
         shape: tuple[int, ...] | None = None) -> int:
    """A new tensor with the stored shape and type of tensor ``t`` (unless given)."""
    src = ctx.w.tensors[t]
    return ctx.tmp(src.shape if shape is None else shape, src.dtype if dtype is None else dtype, hint)


def const_like(ctx: Context, value: float, t: int) -> int:
    """A scalar constant of tensor ``t``'s type (broadcasts in any layout)."""
    return ctx.constant(np.array(value, ctx.w.tensors[t].dtype))


def source(ctx: Context, name: str) -> tuple[int, tuple[int, ...]]:
    """The tensor of a one-input op's input and its layout (a constant in ONNX layout)."""
    perm = identity(ctx.rank(name)) if ctx.is_const(name) else ctx.layout(name)
    return ctx.get(name, perm), perm


def layout_of(ctx: Context, names: list[str], rank: int) -> tuple[int, ...]:
    """The layout of an elementwise result: a permuted full-rank operand's, else the first one's."""
    perms = [ctx.layout(n) for n in names if n and not ctx.is_const(n) and ctx.rank(n) == rank]
    return next((p for p in perms if p != identity(rank)), perms[0] if perms else identity(rank))


def operand(ctx: Context, name: str, rank: int, perm: tuple[int, ...], dtype: Any) -> int:
    """``name`` ready for an elementwise op whose result has ``rank`` and layout ``perm``: leading
    1s added (numpy broadcasting), laid out like the result, of type ``dtype``."""
    if ctx.is_const(name):
        a = np.asarray(ctx.const(name))
        a = a.reshape((1,) * (rank - a.ndim) + a.shape)
        a = a.reshape(()) if a.size == 1 else np.transpose(a, perm)  # a scalar broadcasts in any layout
        return ctx.constant(a, name, dtype)
    shape, r = ctx.shape(name), ctx.rank(name)
    if r == rank:
        t = ctx.get(name, perm)
    else:
        padded = (1,) * (rank - r) + shape
        target = tuple(padded[p] for p in perm)
        stored_order = [p for p in ctx.layout(name) if shape[p] != 1]
        if stored_order == [p - (rank - r) for p in perm if padded[p] != 1]:  # the bytes are in order already
            t = ctx.reshape(ctx.get(name), target, hint=f"{name}/r")
        else:
            t = ctx.broadcast_operand(name, rank, perm)
    return cast(ctx, t, dtype)


def cast(ctx: Context, t: int, dtype: Any, out: int | None = None) -> int:
    """Tensor ``t`` as ``dtype`` (a CAST where it is another type), written into ``out`` if given."""
    if ctx.w.tensors[t].dtype == np.dtype(dtype) and out is None:
        return t
    return emit(ctx, "CAST", [t], like(ctx, t, "cast", dtype) if out is None else out)


def stored_dtype(ctx: Context, name: str) -> np.dtype:
    """The type value ``name`` is stored in (an ONNX int64 may be stored as int32 by its producer)."""
    if ctx.is_const(name) or name not in ctx.values:
        return ctx.dtype(name)
    return ctx.w.tensors[ctx.values[name].tensor].dtype


def work_dtype(ctx: Context, node: Any, names: list[str]) -> np.dtype:
    """The type an elementwise node computes in: float32, int32, or int64 if an operand is stored so."""
    out = ctx.dtype(node.output[0])
    if out.kind == "f":
        return F32
    if out in NARROW_INTS or out == I32:
        return I32
    return I64 if any(stored_dtype(ctx, n) == I64 for n in names if not ctx.is_const(n)) else I32


def finish(ctx: Context, code: str, inputs: list[int], y: str, perm: tuple[int, ...], work: Any) -> None:
    """The node's last op, writing ONNX value ``y`` (through a CAST when ``y`` is an 8/16-bit integer)."""
    out_dtype = ctx.dtype(y) if ctx.dtype(y) in NARROW_INTS else work
    out = ctx.output(y, perm, out_dtype)
    if np.dtype(out_dtype) == np.dtype(work):
        emit(ctx, code, inputs, out)
    else:
        shape = ctx.w.tensors[out].shape
        cast(ctx, emit(ctx, code, inputs, ctx.tmp(shape, work, f"{y}/{work}")), out_dtype, out)


def check_types(node: Any, ctx: Context, allowed: set[np.dtype], what: str = "") -> str | None:
    """Refuse a node whose inputs or output are of a type outside ``allowed``."""
    for name in [*node.input, node.output[0]]:
        if not name:
            continue
        dt = ctx.dtype(name)
        if dt not in TENSOR_TYPES and not ctx.is_const(name):
            return f"{dt} input {name!r} (TFLite has no such tensor type)"
    dt = ctx.dtype(node.output[0])
    if dt not in allowed:
        return f"{dt} {what or node.op_type} (TFLite computes it for {', '.join(sorted(d.name for d in allowed))})"
    return None


# ---- binary and n-ary ops -----------------------------------------------------------------------
_BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM", "Sum": "ADD",
           "Mean": "ADD"}
_ARITH_TYPES: set[np.dtype] = {F32, I32, I64} | NARROW_INTS


def _check_binary(node: Any, ctx: Context) -> str | None:
    allowed = {"Div": _ARITH_TYPES - {I64}, "Sum": {F32}, "Mean": {F32}}.get(node.op_type, _ARITH_TYPES)
    return check_types(node, ctx, allowed, f"{node.op_type} arithmetic")


def convert_binary(node: Any, ctx: Context) -> None:
    nary(ctx, node, _BINARY[node.op_type], list(node.input))


def convert_nary(node: Any, ctx: Context) -> None:
    names = [n for n in node.input if n]
    y = node.output[0]
    if len(names) == 1 and ctx.shape(names[0]) == ctx.shape(y):
        ctx.alias(y, names[0])
        return
    if node.op_type != "Mean":
        nary(ctx, node, _BINARY[node.op_type], names)
        return
    total = nary(ctx, node, "ADD", names, last=False)
    assert total is not None  # last=False returns the running sum instead of writing the output
    scale = ctx.constant(np.array(1.0 / len(names), np.float32))
    finish(ctx, "MUL", [total, scale], y, layout_of(ctx, names, ctx.rank(y)), F32)


_BROADCAST_NOTE = "numpy broadcasting in any rank (above 4-D on merged axes), constant or computed operands in any layout"
for _op in ("Add", "Sub", "Mul", "Div"):
    converter(_op, tflite=(_BINARY[_op], "CAST"), check=_check_binary,
              notes=f"{_BROADCAST_NOTE}; float32, int32{', int64' if _op != 'Div' else ''}, int8/int16/uint8 via "
                    "int32" + ("; integers truncate like ONNX" if _op == "Div" else ""))(convert_binary)
for _op in ("Max", "Min"):
    converter(_op, tflite=_BINARY[_op], check=_check_binary,
              notes=f"any number of inputs, {_BROADCAST_NOTE}; float32 and integers")(convert_nary)
converter("Sum", tflite="ADD", check=_check_binary, notes=f"any number of inputs, {_BROADCAST_NOTE}")(convert_nary)
converter("Mean", tflite=("ADD", "MUL"), check=_check_binary,
          notes=f"any number of inputs (their sum times 1/n), {_BROADCAST_NOTE}")(convert_nary)


def nary(ctx: Context, node: Any, code: str, names: list[str], last: bool = True) -> int | None:
    """``code`` folded left over ``names``, broadcasting; writes the node's output unless ``last`` is False
    (then returns the running result)."""
    y = node.output[0]
    rank = ctx.rank(y)
    perm = layout_of(ctx, names, rank)
    work = work_dtype(ctx, node, names)
    if code in ("MAXIMUM", "MINIMUM") and ctx.dtype(y) in NARROW_INTS:
        work = ctx.dtype(y)  # MAXIMUM and MINIMUM take plain 8/16-bit integers
    ts = [operand(ctx, n, rank, perm, work) for n in names]
    acc = ts[0]
    for i, t in enumerate(ts[1:], 2):
        if i == len(ts) and last:
            finish(ctx, code, [acc, t], y, perm, work)
            return None
        shape = tuple(np.broadcast_shapes(ctx.w.tensors[acc].shape, ctx.w.tensors[t].shape))
        acc = emit(ctx, code, [acc, t], ctx.tmp(shape, work, f"{y}/{i}"))
    return acc


# ---- Pow ------------------------------------------------------------------------------------------
def _check_pow(node: Any, ctx: Context) -> str | None:
    reason = check_types(node, ctx, {F32, I32}, "Pow")
    e = node.input[1]
    if reason is None and ctx.dtype(e) not in {F32, I32, I64} and not ctx.is_const(e):
        return f"{ctx.dtype(e)} exponent computed at run time"
    if reason is None and ctx.dtype(e).kind in "iu" and ctx.dtype(node.input[0]) == I32 and ctx.is_const(e) \
            and np.any(ctx.const_array(e) < 0):
        return "a negative integer exponent of an int32 base (TFLite's int32 POW refuses it)"
    return reason


@converter("Pow", tflite=("MUL", "SQRT", "DIV", "POW", "CAST"), check=_check_pow,
           notes="a constant exponent of 2 is MUL, 0.5 SQRT, -1 DIV, 1 nothing; else POW with numpy broadcasting; "
                 "float32, or int32 with non-negative exponents; a float exponent of an int32 base via CAST")
def convert_pow(node: Any, ctx: Context) -> None:
    x, e, y = node.input[0], node.input[1], node.output[0]
    rank = ctx.rank(y)
    perm = layout_of(ctx, [x, e], rank)
    exponent = ctx.const(e)
    if (exponent is not None and exponent.size == 1 and ctx.dtype(y) == F32 and ctx.shape(x) == ctx.shape(y)
            and float(exponent.reshape(())) in (0.5, 1.0, 2.0, -1.0)):
        value = float(exponent.reshape(()))
        src = ctx.get(x, perm)
        if value == 1.0:
            ctx.alias(y, x)
        elif value == 0.5:
            emit(ctx, "SQRT", [src], ctx.output(y, perm))
        elif value == 2.0:
            emit(ctx, "MUL", [src, src], ctx.output(y, perm))
        else:
            emit(ctx, "DIV", [const_like(ctx, 1.0, src), src], ctx.output(y, perm))
        return
    work = F32 if F32 in (ctx.dtype(x), ctx.dtype(e)) else I32
    a, b = (operand(ctx, n, rank, perm, work) for n in (x, e))
    out = ctx.output(y, perm, ctx.dtype(y))
    out_shape = ctx.w.tensors[out].shape
    if ctx.dtype(y) == work:
        emit(ctx, "POW", [a, b], out)
    else:  # an int32 base with a float exponent: computed in float, truncated like ONNX's reference
        cast(ctx, emit(ctx, "POW", [a, b], ctx.tmp(out_shape, work, f"{y}/f")), ctx.dtype(y), out)


# ---- unary math ---------------------------------------------------------------------------------
_UNARY = {"Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT", "Abs": "ABS", "Neg": "NEG", "Floor": "FLOOR", "Ceil": "CEIL",
          "Round": "ROUND", "Sin": "SIN", "Cos": "COS", "Sign": "SIGN"}
_INT_UNARY = {"Abs", "Neg", "Sign"}


def _check_unary(node: Any, ctx: Context) -> str | None:
    return check_types(node, ctx, {F32, I32} if node.op_type in _INT_UNARY else {F32})


def convert_unary(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    emit(ctx, _UNARY[node.op_type], [src], ctx.output(node.output[0], perm, ctx.w.tensors[src].dtype))


for _op, _code in _UNARY.items():
    converter(_op, tflite=_code, check=_check_unary,
              notes="keeps the input's layout; float32" + (", int32" if _op in _INT_UNARY else "")
              + ("; halves round to even, as in ONNX" if _op == "Round" else ""))(convert_unary)


@converter("Reciprocal", tflite="DIV", check=lambda node, ctx: check_types(node, ctx, {F32}),
           notes="DIV of 1 by the input, in the input's layout")
def convert_reciprocal(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    emit(ctx, "DIV", [const_like(ctx, 1.0, src), src], ctx.output(node.output[0], perm))


# ---- aliases --------------------------------------------------------------------------------------
@converter("Identity", tflite=(), notes="no op: the output is the input (a graph output gets a RESHAPE copy)")
def convert_identity(node: Any, ctx: Context) -> None:
    ctx.alias(node.output[0], node.input[0])


def _check_dropout(node: Any, ctx: Context) -> str | None:
    if ctx.opset < 7 and not ctx.attr(node, "is_test", 0):
        return "training-mode Dropout (is_test=0) drops at random"
    training = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if training is None:
        return None
    if not ctx.is_const(training):
        return "training_mode computed at run time"
    ratio = node.input[1] if len(node.input) > 1 and node.input[1] else None
    if ratio is not None and not ctx.is_const(ratio):
        return "ratio computed at run time in training mode"
    if bool(ctx.const_array(training)) and (ratio is None or float(ctx.const_array(ratio)) != 0.0):
        return "training-mode Dropout with a non-zero ratio drops at random"
    return None


@converter("Dropout", tflite=(), check=_check_dropout,
           notes="inference mode (or a zero ratio): no op; the optional mask output is a constant all-true tensor")
def convert_dropout(node: Any, ctx: Context) -> None:
    ctx.alias(node.output[0], node.input[0])
    if len(node.output) > 1 and node.output[1]:
        mask = node.output[1]  # bool from opset 10, the input's type before
        ctx.consts[mask] = np.ones(ctx.shape(node.input[0]), ctx.dtype(mask) if ctx.opset < 10 else np.bool_)
