"""Gemm and MatMul -> FULLY_CONNECTED (constant 2-D weights) or BATCH_MATMUL.

FULLY_CONNECTED wants its weights [out, in], so a constant right operand is transposed (and, for
Gemm, scaled by alpha) at export time; a bias that is the same on every row becomes the op's bias
input, anything else an ADD. A right operand computed at run time is a BATCH_MATMUL (Gemm's transB
as its adj_y). 1-D MatMul operands follow numpy: a left one is a row [1, K], a right one a column
[K, 1], and the axis they add is reshaped away afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import converter


def _check_float(node: Any, ctx: Context) -> str | None:
    dtype = ctx.dtype(node.output[0])
    return None if dtype == np.float32 else f"{dtype} {node.op_type} (only float32 is converted)"


def _operand(ctx: Context, name: str) -> int:
    """A MatMul/Gemm operand in the ONNX layout (float32 if constant)."""
    if ctx.is_const(name):
        return ctx.constant(ctx.const_array(name).astype(np.float32), name)
    return ctx.onnx_layout(name)


def _binary(ctx: Context, code: str, a: int, b: int, out: int) -> int:
    ctx.op(code, [a, b], [out], f"{code.title()}Options", fusedActivationFunction=0)
    return out


# ---- Gemm ----------------------------------------------------------------------------------------


@converter("Gemm", tflite=("FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE", "MUL", "ADD"), check=_check_float,
           notes="alpha, beta, transA, transB; bias C of shape [N], [1, N], [M, 1], [M, N] or scalar, constant or "
                 "computed; constant B: FULLY_CONNECTED (alpha folded), else BATCH_MATMUL")
def convert_gemm(node: Any, ctx: Context) -> None:
    a_name, b_name, y = node.input[0], node.input[1], node.output[0]
    c_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
    trans_a, trans_b = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
    m, n = ctx.shape(y)
    name = node.name or y
    a = _operand(ctx, a_name)
    if trans_a:
        a_t = ctx.tmp((m, ctx.shape(a_name)[0]), np.float32, f"{a_name}/T")
        ctx.op("TRANSPOSE", [a, ctx.constant(np.array([1, 0], np.int32))], [a_t], "TransposeOptions")
        a = a_t
    row_bias, rest = _split_bias(ctx, c_name, beta, m, n)
    out = ctx.output(y, identity(2)) if rest is None else ctx.tmp((m, n), np.float32, f"{y}/mm")
    if ctx.is_const(b_name):
        w = ctx.const_array(b_name).astype(np.float32)
        w = (w if trans_b else w.T) * np.float32(alpha)  # FULLY_CONNECTED weights are [out, in]
        bias = ctx.constant(row_bias, f"{name}/bias") if row_bias is not None else -1
        ctx.op("FULLY_CONNECTED", [a, ctx.constant(w, f"{name}/weight"), bias], [out], "FullyConnectedOptions",
               fusedActivationFunction=0, keepNumDims=False)
    else:
        steps = [s for s in ("alpha" if alpha != 1.0 else "", "bias" if row_bias is not None else "") if s]
        mm = ctx.tmp((m, n), np.float32, f"{y}/bmm") if steps else out
        ctx.op("BATCH_MATMUL", [a, _operand(ctx, b_name)], [mm], "BatchMatMulOptions", adjX=False,
               adjY=bool(trans_b))
        if alpha != 1.0:
            scaled = out if steps[-1] == "alpha" else ctx.tmp((m, n), np.float32, f"{y}/alpha")
            mm = _binary(ctx, "MUL", mm, ctx.constant(np.array(alpha, np.float32)), scaled)
        if row_bias is not None:
            _binary(ctx, "ADD", mm, ctx.constant(row_bias, f"{name}/bias"), out)
    if rest is not None:
        _binary(ctx, "ADD", out, rest, ctx.output(y, identity(2)))


def _split_bias(ctx: Context, c_name: str | None, beta: float, m: int, n: int) -> tuple[np.ndarray | None, int | None]:
    """(beta * C as an [N] bias when it is the same on every row, else None; the tensor to ADD
    after the product otherwise (C broadcast, or C computed at run time and scaled by beta))."""
    if c_name is None or beta == 0.0:
        return None, None
    if ctx.is_const(c_name):
        c = np.broadcast_to(ctx.const_array(c_name).astype(np.float32) * np.float32(beta), (m, n))
        if np.all(c == c[:1]):
            return c[0].copy(), None
        return None, ctx.constant(np.ascontiguousarray(c), f"{c_name}/beta")
    operand = ctx.broadcast_operand(c_name, 2, identity(2))
    if beta == 1.0:
        return None, operand
    return None, _binary(ctx, "MUL", operand, ctx.constant(np.array(beta, np.float32)),
                         ctx.tmp(ctx.w.tensors[operand].shape, np.float32, f"{c_name}/beta"))


# ---- MatMul --------------------------------------------------------------------------------------


@converter("MatMul", tflite=("FULLY_CONNECTED", "BATCH_MATMUL", "RESHAPE"), check=_check_float,
           notes="constant 2-D right operand: FULLY_CONNECTED (keep_num_dims for a rank > 2 left one); else "
                 "BATCH_MATMUL with numpy broadcasting; 1-D operands on either side")
def convert_matmul(node: Any, ctx: Context) -> None:
    a_name, b_name, y = node.input[0], node.input[1], node.output[0]
    out_shape = ctx.shape(y)
    a_shape, b_shape = ctx.shape(a_name), ctx.shape(b_name)
    if ctx.is_const(b_name) and len(b_shape) == 2 and not ctx.is_const(a_name):
        w = ctx.constant(ctx.const_array(b_name).astype(np.float32).T, f"{node.name or y}/weight")
        if len(a_shape) == 1:  # [K] @ [K, N]: a [1, K] row through FULLY_CONNECTED, then [N]
            row = ctx.reshape(ctx.onnx_layout(a_name), (1, a_shape[0]), hint=f"{a_name}/row")
            fc = ctx.tmp((1, b_shape[1]), np.float32, f"{y}/fc")
            ctx.op("FULLY_CONNECTED", [row, w, -1], [fc], "FullyConnectedOptions", fusedActivationFunction=0,
                   keepNumDims=False)
            ctx.reshape(fc, out_shape, ctx.output(y))
            return
        ctx.op("FULLY_CONNECTED", [ctx.onnx_layout(a_name), w, -1], [ctx.output(y)], "FullyConnectedOptions",
               fusedActivationFunction=0, keepNumDims=len(out_shape) > 2)
        return
    a, sa = _matrix(ctx, a_name, left=True)
    b, sb = _matrix(ctx, b_name, left=False)
    full = (*np.broadcast_shapes(sa[:-2], sb[:-2]), sa[-2], sb[-1])
    if full == tuple(out_shape):
        ctx.op("BATCH_MATMUL", [a, b], [ctx.output(y)], "BatchMatMulOptions", adjX=False, adjY=False)
        return
    mm = ctx.tmp(full, np.float32, f"{y}/mm")  # a 1-D operand: drop the axis it gained
    ctx.op("BATCH_MATMUL", [a, b], [mm], "BatchMatMulOptions", adjX=False, adjY=False)
    ctx.reshape(mm, out_shape, ctx.output(y))


def _matrix(ctx: Context, name: str, left: bool) -> tuple[int, tuple[int, ...]]:
    """A BATCH_MATMUL operand in the ONNX layout and its shape: a 1-D one becomes a row [1, K] on
    the left and a column [K, 1] on the right (numpy's matmul rule)."""
    shape = ctx.shape(name)
    if len(shape) >= 2:
        return _operand(ctx, name), tuple(shape)
    new = (1, shape[0]) if left else (shape[0], 1)
    if ctx.is_const(name):
        return ctx.constant(ctx.const_array(name).astype(np.float32).reshape(new), name), new
    return ctx.reshape(ctx.onnx_layout(name), new, hint=f"{name}/{'row' if left else 'col'}"), new
