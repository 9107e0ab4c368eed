"""BatchNormalization, InstanceNormalization, LayerNormalization in the input's own layout.

A BatchNormalization right after a Conv never gets here (graph preparation folds it into the
Conv's weights); a standalone one in inference mode is ``x * a + b`` with per-channel constants
``a = scale / sqrt(var + eps)``, ``b = B - mean * a``, shaped to broadcast in the layout ``x`` is
stored in (MUL + ADD). Instance and layer normalization compute their statistics at run time:
MEAN over the normalized axes (wherever the layout keeps them), SUB, MUL, MEAN, ADD epsilon,
RSQRT, then the affine part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context
from ..registry import converter


def _float_only(node: Any, ctx: Context) -> str | None:
    dtype = ctx.dtype(node.output[0])
    return None if dtype == np.float32 else f"{dtype} normalization (only float32 is converted)"


def _channel_constant(ctx: Context, x: str, values: np.ndarray, hint: str) -> int:
    """Per-channel ``values`` ([C], or [C, ...] for an old non-spatial BatchNormalization) laid out to
    broadcast against ``x`` in its stored layout."""
    rank = ctx.rank(x)
    a = values.astype(np.float32)
    a = a.reshape((1, a.shape[0]) + (1,) * (rank - 2)) if a.ndim == 1 else a.reshape((1, *a.shape))
    a = a.reshape(a.shape + (1,) * (rank - a.ndim))
    return ctx.constant(np.transpose(a, ctx.layout(x)), hint)


def _binary(ctx: Context, code: str, a: int, b: int, out: int) -> int:
    ctx.op(code, [a, b], [out], f"{code.title()}Options", fusedActivationFunction=0)
    return out


# ---- BatchNormalization --------------------------------------------------------------------------


def _check_batchnorm(node: Any, ctx: Context) -> str | None:
    if ctx.attr(node, "training_mode", 0) or any(node.output[1:]):
        return "training mode (batch statistics; export the model in eval mode)"
    if not all(ctx.is_const(i) for i in node.input[1:5]):
        return "scale, bias, mean or variance computed at run time"
    if ctx.rank(node.input[0]) < 2:
        return "an input without a channel axis"
    return _float_only(node, ctx)


@converter("BatchNormalization", tflite=("MUL", "ADD"), check=_check_batchnorm,
           notes="inference mode: one MUL and one ADD with per-channel constants (after a Conv it is folded "
                 "into the Conv); training_mode refused")
def convert_batchnorm(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    scale, bias, mean, var = (ctx.const_array(i).astype(np.float64) for i in node.input[1:5])
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    a = scale / np.sqrt(var + eps)
    b = bias - mean * a
    name, perm = node.name or y, ctx.layout(x)
    scaled = ctx.tmp(ctx.w.tensors[ctx.get(x)].shape, np.float32, f"{y}/scaled")
    _binary(ctx, "MUL", ctx.get(x), _channel_constant(ctx, x, a, f"{name}/scale"), scaled)
    _binary(ctx, "ADD", scaled, _channel_constant(ctx, x, b, f"{name}/offset"), ctx.output(y, perm))


# ---- Instance and layer normalization -----------------------------------------------------------


def _standardize(ctx: Context, x: str, axes: list[int], eps: float, hint: str,
                 mean_out: int | None = None, inv_out: int | None = None) -> tuple[int, int]:
    """(x - mean, 1 / sqrt(var + eps)) over ONNX ``axes`` of ``x``, in its stored layout; the mean
    and the inverse deviation are written to ``mean_out``/``inv_out`` when given."""
    perm, src = ctx.layout(x), ctx.get(x)
    shape = ctx.w.tensors[src].shape
    stored = sorted(perm.index(a) for a in axes)
    reduced = tuple(1 if i in stored else d for i, d in enumerate(shape))
    axes_t = ctx.constant(np.array(stored, np.int32))
    mean = mean_out if mean_out is not None else ctx.tmp(reduced, np.float32, f"{hint}/mean")
    ctx.op("MEAN", [src, axes_t], [mean], "ReducerOptions", keepDims=True)
    centered = _binary(ctx, "SUB", src, mean, ctx.tmp(shape, np.float32, f"{hint}/centered"))
    squared = _binary(ctx, "MUL", centered, centered, ctx.tmp(shape, np.float32, f"{hint}/squared"))
    var = ctx.tmp(reduced, np.float32, f"{hint}/var")
    ctx.op("MEAN", [squared, axes_t], [var], "ReducerOptions", keepDims=True)
    var_eps = _binary(ctx, "ADD", var, ctx.constant(np.array(eps, np.float32)),
                      ctx.tmp(reduced, np.float32, f"{hint}/var_eps"))
    inv = inv_out if inv_out is not None else ctx.tmp(reduced, np.float32, f"{hint}/inv_std")
    ctx.op("RSQRT", [var_eps], [inv])
    return centered, inv


def _check_instancenorm(node: Any, ctx: Context) -> str | None:
    if not all(ctx.is_const(i) for i in node.input[1:3]):
        return "scale or bias computed at run time"
    if ctx.rank(node.input[0]) < 3:
        return "an input without spatial axes"
    return _float_only(node, ctx)


@converter("InstanceNormalization", tflite=("MEAN", "SUB", "MUL", "ADD", "RSQRT"), check=_check_instancenorm,
           notes="any rank >= 3, in the input's layout; constant scale and bias")
def convert_instancenorm(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    name, rank = node.name or y, ctx.rank(x)
    centered, inv = _standardize(ctx, x, list(range(2, rank)), float(ctx.attr(node, "epsilon", 1e-5)), name)
    scale = _channel_constant(ctx, x, ctx.const_array(node.input[1]), f"{name}/scale")
    inv_scaled = _binary(ctx, "MUL", inv, scale, ctx.tmp(_per_channel(ctx, x), np.float32, f"{name}/factor"))
    normed = _binary(ctx, "MUL", centered, inv_scaled, ctx.tmp(ctx.w.tensors[centered].shape, np.float32,
                                                                 f"{name}/normed"))
    bias = _channel_constant(ctx, x, ctx.const_array(node.input[2]), f"{name}/bias")
    _binary(ctx, "ADD", normed, bias, ctx.output(y, ctx.layout(x)))


def _per_channel(ctx: Context, x: str) -> tuple[int, ...]:
    """The stored shape of ``x`` with its spatial axes reduced to 1 (N and C kept)."""
    shape, perm = ctx.shape(x), ctx.layout(x)
    return tuple(shape[p] if p < 2 else 1 for p in perm)


def _check_layernorm(node: Any, ctx: Context) -> str | None:
    return _float_only(node, ctx)


@converter("LayerNormalization", tflite=("MEAN", "SUB", "MUL", "ADD", "RSQRT"), check=_check_layernorm,
           notes="any axis, in the input's layout; scale and bias constant or computed; the Mean and "
                 "InvStdDev outputs too")
def convert_layernorm(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    name, rank = node.name or y, ctx.rank(x)
    axis = int(ctx.attr(node, "axis", -1)) % rank
    perm = ctx.layout(x)
    mean_name, inv_name = (list(node.output[1:3]) + ["", ""])[:2]  # the optional Mean and InvStdDev outputs
    centered, inv = _standardize(ctx, x, list(range(axis, rank)), float(ctx.attr(node, "epsilon", 1e-5)), name,
                                 ctx.output(mean_name, perm) if mean_name else None,
                                 ctx.output(inv_name, perm) if inv_name else None)
    shape = ctx.w.tensors[centered].shape
    has_bias = len(node.input) > 2 and node.input[2]
    normed = _binary(ctx, "MUL", centered, inv, ctx.tmp(shape, np.float32, f"{name}/normed"))
    scaled = ctx.output(y, perm) if not has_bias else ctx.tmp(shape, np.float32, f"{name}/scaled")
    _binary(ctx, "MUL", normed, ctx.broadcast_operand(node.input[1], rank, perm), scaled)
    if has_bias:
        _binary(ctx, "ADD", scaled, ctx.broadcast_operand(node.input[2], rank, perm), ctx.output(y, perm))
