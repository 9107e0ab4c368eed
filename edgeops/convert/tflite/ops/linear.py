"""Gemm and MatMul -> FULLY_CONNECTED (constant weights) or BATCH_MATMUL."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import converter


def _check_gemm(node: Any, ctx: Context) -> str | None:
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if c is not None and not ctx.is_const(c):
        return "a bias computed at run time"
    return None


@converter("Gemm", tflite=("FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE"), check=_check_gemm,
           notes="alpha, beta, transA, transB; bias [N], [1, N] or scalar")
def convert_gemm(node: Any, ctx: Context) -> None:
    a_name, b_name = node.input[0], node.input[1]
    alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
    trans_a, trans_b = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
    y = node.output[0]
    m, n = ctx.shape(y)
    c = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    a = ctx.onnx_layout(a_name) if not ctx.is_const(a_name) else ctx.constant(ctx.const(a_name).astype(np.float32))
    if trans_a:
        k = ctx.shape(a_name)[0]
        at = ctx.tmp((m, k), np.float32, f"{a_name}/T")
        ctx.op("TRANSPOSE", [a, ctx.constant(np.array([1, 0], np.int32))], [at], "TransposeOptions")
        a = at
    bias = None
    full_c = None
    if c is not None:
        cb = np.broadcast_to(c.astype(np.float32) * beta, (m, n))
        if np.all(cb == cb[:1]):
            bias = cb[0].copy()
        else:
            full_c = cb.copy()
    out = ctx.output(y, identity(2)) if full_c is None else ctx.tmp((m, n), np.float32, f"{y}/mm")
    name = node.name or y
    if ctx.is_const(b_name):
        w = ctx.const(b_name).astype(np.float32)
        w = (w if trans_b else w.T) * alpha  # FULLY_CONNECTED weights are [out, in]
        ins = [a, ctx.constant(w, f"{name}/weight")]
        ins.append(ctx.constant(bias, f"{name}/bias") if bias is not None else -1)
        ctx.op("FULLY_CONNECTED", ins, [out], "FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False)
    else:
        b = ctx.onnx_layout(b_name)
        mm = ctx.tmp((m, n), np.float32, f"{y}/bmm") if (alpha != 1.0 or bias is not None) else out
        ctx.op("BATCH_MATMUL", [a, b], [mm], "BatchMatMulOptions", adjX=False, adjY=bool(trans_b))
        if alpha != 1.0:
            scaled = ctx.tmp((m, n), np.float32, f"{y}/alpha") if bias is not None else out
            ctx.op("MUL", [mm, ctx.constant(np.array(alpha, np.float32))], [scaled], "MulOptions",
                   fusedActivationFunction=0)
            mm = scaled
        if bias is not None:
            ctx.op("ADD", [mm, ctx.constant(bias, f"{name}/bias")], [out], "AddOptions", fusedActivationFunction=0)
    if full_c is not None:
        ctx.op("ADD", [out, ctx.constant(full_c, f"{name}/c")], [ctx.output(y, identity(2))], "AddOptions",
               fusedActivationFunction=0)


@converter("MatMul", tflite=("FULLY_CONNECTED", "BATCH_MATMUL"), notes="constant 2-D right operand: FULLY_CONNECTED")
def convert_matmul(node: Any, ctx: Context) -> None:
    a_name, b_name, y = node.input[0], node.input[1], node.output[0]
    out_shape = ctx.shape(y)
    if ctx.is_const(b_name) and ctx.const(b_name).ndim == 2 and not ctx.is_const(a_name) and ctx.rank(a_name) >= 2:
        w = ctx.const(b_name).astype(np.float32).T
        ctx.op("FULLY_CONNECTED", [ctx.onnx_layout(a_name), ctx.constant(w, f"{node.name or y}/weight"), -1],
               [ctx.output(y)], "FullyConnectedOptions", fusedActivationFunction=0,
               keepNumDims=len(out_shape) > 2)
        return
    a = _as_rank(ctx, a_name, max(2, len(out_shape)))
    b = _as_rank(ctx, b_name, max(2, len(out_shape)))
    if len(out_shape) < 2:  # a 1-D operand: compute with its dim kept, then drop it
        full = _full_shape(ctx, a_name, b_name)
        tmp = ctx.tmp(full, np.float32, f"{y}/mm")
        ctx.op("BATCH_MATMUL", [a, b], [tmp], "BatchMatMulOptions", adjX=False, adjY=False)
        ctx.op("RESHAPE", [tmp, ctx.constant(np.array(out_shape or (1,), np.int32))], [ctx.output(y)],
               "ReshapeOptions", newShape=list(out_shape))
        return
    if ctx.rank(a_name) == 1 or ctx.rank(b_name) == 1:
        full = _full_shape(ctx, a_name, b_name)
        tmp = ctx.tmp(full, np.float32, f"{y}/mm")
        ctx.op("BATCH_MATMUL", [a, b], [tmp], "BatchMatMulOptions", adjX=False, adjY=False)
        ctx.op("RESHAPE", [tmp, ctx.constant(np.array(out_shape, np.int32))], [ctx.output(y)], "ReshapeOptions",
               newShape=list(out_shape))
        return
    ctx.op("BATCH_MATMUL", [a, b], [ctx.output(y)], "BatchMatMulOptions", adjX=False, adjY=False)


def _full_shape(ctx: Context, a_name: str, b_name: str) -> tuple[int, ...]:
    sa, sb = list(ctx.shape(a_name)), list(ctx.shape(b_name))
    if len(sa) == 1:
        sa = [1, sa[0]]
    if len(sb) == 1:
        sb = [sb[0], 1]
    batch = np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    return (*batch, sa[-2], sb[-1])


def _as_rank(ctx: Context, name: str, rank: int) -> int:
    """An operand of BATCH_MATMUL in ONNX layout; a 1-D one becomes [1, K] (left) or [K, 1] (right)."""
    shape = ctx.shape(name)
    if ctx.is_const(name):
        a = ctx.const(name).astype(np.float32)
        if a.ndim == 1:
            a = a[None, :] if name else a
        return ctx.constant(a, name)
    if len(shape) >= 2:
        return ctx.onnx_layout(name)
    src = ctx.onnx_layout(name)
    new = (1, shape[0])
    out = ctx.tmp(new, np.float32, f"{name}/2d")
    ctx.op("RESHAPE", [src, ctx.constant(np.array(new, np.int32))], [out], "ReshapeOptions", newShape=list(new))
    return out
