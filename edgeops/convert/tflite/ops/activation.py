"""Activations: Relu, Clip, LeakyRelu, PRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, Gelu, Erf, Elu,
Selu, Celu, Softplus, Softsign, Mish, ThresholdedRelu, Softmax and LogSoftmax.

All but the softmaxes are layout-agnostic and keep their input's layout, so they run channels-last
between convolutions; a per-channel PRelu slope is laid out like its input. Where TFLite has a
builtin the node becomes that one op (RELU6 and RELU_N1_TO_1 for the matching Clip bounds, which
the writer may then fuse into the op before); the rest are short chains of builtins that every
LiteRT and tflite-runtime >= 2.14 interpreter runs. Softmax and LogSoftmax work on the last stored
axis, bringing the softmax axis there if it is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context, identity
from ..registry import converter
from .elementwise import F32, I32, I64, NARROW_INTS, check_types, const_like, emit, like, operand, source


def _float_only(node: Any, ctx: Context) -> str | None:
    return check_types(node, ctx, {F32})


def _out(ctx: Context, node: Any, perm: tuple[int, ...]) -> int:
    return ctx.output(node.output[0], perm)


def _scaled(ctx: Context, t: int, value: float, hint: str = "scaled") -> int:
    """``t * value`` (``t`` itself when ``value`` is 1)."""
    return t if value == 1.0 else emit(ctx, "MUL", [t, const_like(ctx, value, t)], like(ctx, t, hint))


def _chain(ctx: Context, code: str, inputs: list[int], hint: str = "tmp") -> int:
    """One op into a new tensor of its inputs' broadcast shape, typed like its last input."""
    shape = tuple(np.broadcast_shapes(*(ctx.w.tensors[t].shape for t in inputs)))
    return emit(ctx, code, inputs, like(ctx, inputs[-1], hint, shape=shape))


# ---- ReLU family --------------------------------------------------------------------------------
@converter("Relu", tflite=("RELU", "MAXIMUM"), check=lambda node, ctx: check_types(
    node, ctx, {F32, I32, I64} | NARROW_INTS),
           notes="fused into the op before it where possible; integer inputs as MAXIMUM with 0")
def convert_relu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    if ctx.w.tensors[src].dtype == F32:
        emit(ctx, "RELU", [src], _out(ctx, node, perm))
    else:
        emit(ctx, "MAXIMUM", [src, const_like(ctx, 0, src)], ctx.output(node.output[0], perm, ctx.w.tensors[src].dtype))


_CLIP_OPS = {(0.0, np.inf): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, 1.0): "RELU_0_TO_1"}


def _clip_bound(ctx: Context, node: Any, index: int, attr: str, default: float) -> Any:
    """A Clip bound: a float (``default`` = none), or the name of a value computed at run time."""
    if ctx.opset < 11:
        return float(ctx.attr(node, attr, default))
    name = node.input[index] if len(node.input) > index else ""
    if not name:
        return default
    return float(ctx.const_array(name).reshape(())) if ctx.is_const(name) else name


@converter("Clip", tflite=("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "MAXIMUM", "MINIMUM"),
           check=lambda node, ctx: check_types(node, ctx, {F32, I32, I64} | NARROW_INTS),
           notes="[0, 6] is RELU6, [-1, 1] RELU_N1_TO_1, [0, 1] RELU_0_TO_1, [0, inf) RELU; other bounds (constant "
                 "or computed, min > max included) MAXIMUM/MINIMUM; float32 and integers")
def convert_clip(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    lo, hi = _clip_bound(ctx, node, 1, "min", -np.inf), _clip_bound(ctx, node, 2, "max", np.inf)
    src, perm = source(ctx, x)
    dtype = ctx.w.tensors[src].dtype
    if dtype == F32 and (lo, hi) in _CLIP_OPS:
        emit(ctx, _CLIP_OPS[(lo, hi)], [src], ctx.output(y, perm))
        return
    steps = [(code, b) for code, b, none in (("MAXIMUM", lo, -np.inf), ("MINIMUM", hi, np.inf)) if b != none]
    if not steps:
        ctx.alias(y, x)
        return
    for i, (code, bound) in enumerate(steps):
        if isinstance(bound, str):
            b = operand(ctx, bound, ctx.rank(y), perm, dtype)
        else:
            b = const_like(ctx, _saturate(bound, dtype), src)
        dst = ctx.output(y, perm, dtype) if i == len(steps) - 1 else like(ctx, src, f"{y}/{code.lower()}")
        src = emit(ctx, code, [src, b], dst)


def _saturate(value: float, dtype: np.dtype) -> float:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(np.clip(value, info.min, info.max))
    return value


@converter("LeakyRelu", tflite="LEAKY_RELU", check=_float_only, notes="any alpha (default 0.01)")
def convert_leaky_relu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    ctx.op("LEAKY_RELU", [src], [_out(ctx, node, perm)], "LeakyReluOptions", alpha=float(ctx.attr(node, "alpha", 0.01)))


@converter("PRelu", tflite=("PRELU", "LEAKY_RELU"), check=_float_only,
           notes="slope broadcast numpy-style and laid out like the input (a per-channel [C, 1, 1] slope works "
                 "channels-last), constant or computed; one shared constant slope is LEAKY_RELU")
def convert_prelu(node: Any, ctx: Context) -> None:
    x, slope = node.input[0], node.input[1]
    src, perm = source(ctx, x)
    s = ctx.const(slope)
    if s is not None and s.size > 0 and np.all(s == s.flat[0]):
        ctx.op("LEAKY_RELU", [src], [_out(ctx, node, perm)], "LeakyReluOptions", alpha=float(s.flat[0]))
        return
    emit(ctx, "PRELU", [src, operand(ctx, slope, ctx.rank(x), perm, F32)], _out(ctx, node, perm))


@converter("ThresholdedRelu", tflite=("GREATER", "SELECT_V2"), check=_float_only,
           notes="x where x > alpha (default 1), else 0")
def convert_thresholded_relu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    mask = emit(ctx, "GREATER", [src, const_like(ctx, float(ctx.attr(node, "alpha", 1.0)), src)],
                like(ctx, src, "above", np.bool_))
    emit(ctx, "SELECT_V2", [mask, src, const_like(ctx, 0.0, src)], _out(ctx, node, perm))


# ---- sigmoid family -----------------------------------------------------------------------------
@converter("Sigmoid", tflite="LOGISTIC", check=_float_only, notes="keeps the input's layout")
def convert_sigmoid(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    emit(ctx, "LOGISTIC", [src], _out(ctx, node, perm))


@converter("Tanh", tflite="TANH", check=_float_only, notes="keeps the input's layout")
def convert_tanh(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    emit(ctx, "TANH", [src], _out(ctx, node, perm))


@converter("HardSigmoid", tflite=("ADD", "RELU6", "MUL", "RELU_0_TO_1"), check=_float_only,
           notes="alpha = 1/6 (PyTorch's) as ADD with a fused RELU6 and MUL; other alpha, beta as MUL, ADD, "
                 "RELU_0_TO_1")
def convert_hard_sigmoid(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    alpha, beta = float(ctx.attr(node, "alpha", 0.2)), float(ctx.attr(node, "beta", 0.5))
    y = node.output[0]
    if np.isclose(alpha, 1 / 6, rtol=1e-6, atol=0):  # relu6(x + 6 beta) / 6
        shifted = _chain(ctx, "ADD", [src, const_like(ctx, beta / alpha, src)], f"{y}/shifted")
        clipped = _chain(ctx, "RELU6", [shifted], f"{y}/relu6")
        emit(ctx, "MUL", [clipped, const_like(ctx, alpha, src)], _out(ctx, node, perm))
        return
    lin = _scaled(ctx, src, alpha, f"{y}/ax")
    if beta != 0.0:
        lin = _chain(ctx, "ADD", [lin, const_like(ctx, beta, src)], f"{y}/ax_b")
    emit(ctx, "RELU_0_TO_1", [lin], _out(ctx, node, perm))


@converter("HardSwish", tflite="HARD_SWISH", check=_float_only, notes="keeps the input's layout")
def convert_hard_swish(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    emit(ctx, "HARD_SWISH", [src], _out(ctx, node, perm))


# ---- GELU and erf -------------------------------------------------------------------------------
def _check_gelu(node: Any, ctx: Context) -> str | None:
    approximate = ctx.attr(node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        return f"approximate={approximate!r} (ONNX defines 'none' and 'tanh')"
    return _float_only(node, ctx)


@converter("Gelu", tflite="GELU", check=_check_gelu, notes="approximate 'none' (erf) and 'tanh'")
def convert_gelu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    ctx.op("GELU", [src], [_out(ctx, node, perm)], "GeluOptions",
           approximate=ctx.attr(node, "approximate", "none") == "tanh")


_ERF_SMALL = 0.02  # below this |x|, erf(x) = 2/sqrt(pi) (x - x^3/3) to float precision


@converter("Erf", tflite=("GELU", "DIV", "ABS", "LESS", "SELECT_V2", "MUL", "SUB"), check=_float_only,
           notes="no TFLite builtin: erf(x) = sqrt(2) GELU(sqrt(2) x) / x - 1, with a Taylor series where abs(x) < 0.02 "
                 "(about 1e-7 absolute error)")
def convert_erf(node: Any, ctx: Context) -> None:
    x, perm = source(ctx, node.input[0])
    y = node.output[0]
    gelu = like(ctx, x, f"{y}/gelu")
    ctx.op("GELU", [_scaled(ctx, x, float(np.sqrt(2.0)), f"{y}/z")], [gelu], "GeluOptions", approximate=False)
    ratio = _chain(ctx, "DIV", [_scaled(ctx, gelu, float(np.sqrt(2.0))), x], f"{y}/ratio")  # 2 Phi(sqrt(2) x)
    big = _chain(ctx, "SUB", [ratio, const_like(ctx, 1.0, x)], f"{y}/big")
    x2 = _chain(ctx, "MUL", [x, x], f"{y}/x2")
    poly = _chain(ctx, "SUB", [const_like(ctx, 1.0, x), _scaled(ctx, x2, 1 / 3)], f"{y}/poly")
    small = _scaled(ctx, _chain(ctx, "MUL", [x, poly], f"{y}/taylor"), float(2 / np.sqrt(np.pi)), f"{y}/small")
    near0 = emit(ctx, "LESS", [_chain(ctx, "ABS", [x], f"{y}/abs"), const_like(ctx, _ERF_SMALL, x)],
                 like(ctx, x, f"{y}/near0", np.bool_))
    emit(ctx, "SELECT_V2", [near0, small, big], _out(ctx, node, perm))


# ---- ELU family ---------------------------------------------------------------------------------
def _elu(ctx: Context, node: Any, src: int, perm: tuple[int, ...], alpha: float, scale: float) -> None:
    """``scale * elu_alpha(x)`` = scale * alpha * ELU(x) + scale * (1 - alpha) * RELU(x)."""
    y = node.output[0]
    if alpha == 1.0:
        if scale == 1.0:
            emit(ctx, "ELU", [src], _out(ctx, node, perm))
        else:
            emit(ctx, "MUL", [_chain(ctx, "ELU", [src], f"{y}/elu"), const_like(ctx, scale, src)], _out(ctx, node, perm))
        return
    neg = _scaled(ctx, _chain(ctx, "ELU", [src], f"{y}/elu"), scale * alpha, f"{y}/elu_scaled")
    pos = _scaled(ctx, _chain(ctx, "RELU", [src], f"{y}/relu"), scale * (1.0 - alpha), f"{y}/relu_scaled")
    emit(ctx, "ADD", [neg, pos], _out(ctx, node, perm))


@converter("Elu", tflite=("ELU", "RELU", "MUL", "ADD"), check=_float_only,
           notes="alpha 1 is ELU; any other alpha as alpha * ELU(x) + (1 - alpha) * RELU(x)")
def convert_elu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    _elu(ctx, node, src, perm, float(ctx.attr(node, "alpha", 1.0)), 1.0)


@converter("Selu", tflite=("ELU", "RELU", "MUL", "ADD"), check=_float_only, notes="any alpha and gamma")
def convert_selu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    _elu(ctx, node, src, perm, float(ctx.attr(node, "alpha", 1.67326319217681884765625)),
         float(ctx.attr(node, "gamma", 1.05070102214813232421875)))


@converter("Celu", tflite=("MUL", "ELU"), check=_float_only, notes="alpha * ELU(x / alpha)")
def convert_celu(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    alpha = float(ctx.attr(node, "alpha", 1.0))
    if alpha == 1.0:
        emit(ctx, "ELU", [src], _out(ctx, node, perm))
        return
    elu = _chain(ctx, "ELU", [_scaled(ctx, src, 1.0 / alpha)], f"{node.output[0]}/elu")
    emit(ctx, "MUL", [elu, const_like(ctx, alpha, src)], _out(ctx, node, perm))


# ---- softplus family ----------------------------------------------------------------------------
_LOG1P_SMALL = 1e-3  # below this u, log(1 + u) = u (1 - u / 2) to float precision (1 + u would round)


def _softplus(ctx: Context, src: int, y: str, out: int | None = None) -> int:
    """log(1 + exp(x)) without overflow: relu(x) + log1p(exp(-|x|)), into ``out`` if given."""
    u = _chain(ctx, "EXP", [_chain(ctx, "NEG", [_chain(ctx, "ABS", [src], f"{y}/abs")], f"{y}/neg_abs")], f"{y}/u")
    log1p = _chain(ctx, "LOG", [_chain(ctx, "ADD", [u, const_like(ctx, 1.0, src)], f"{y}/1p")], f"{y}/log")
    series = _chain(ctx, "ADD", [_scaled(ctx, u, -0.5, f"{y}/half_u"), const_like(ctx, 1.0, src)], f"{y}/1_half_u")
    series = _chain(ctx, "MUL", [u, series], f"{y}/series")
    small = emit(ctx, "LESS", [u, const_like(ctx, _LOG1P_SMALL, src)], like(ctx, src, f"{y}/small", np.bool_))
    log1p = _chain(ctx, "SELECT_V2", [small, series, log1p], f"{y}/log1p")
    relu = _chain(ctx, "RELU", [src], f"{y}/relu")
    return emit(ctx, "ADD", [relu, log1p], like(ctx, src, f"{y}/softplus") if out is None else out)


@converter("Softplus", tflite=("ABS", "NEG", "EXP", "ADD", "LOG", "LESS", "MUL", "SELECT_V2", "RELU"),
           check=_float_only, notes="relu(x) + log1p(exp(-abs(x))): no overflow, full precision for very negative x")
def convert_softplus(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    _softplus(ctx, src, node.output[0], _out(ctx, node, perm))


@converter("Mish", tflite=("ABS", "NEG", "EXP", "ADD", "LOG", "LESS", "MUL", "SELECT_V2", "RELU", "TANH"),
           check=_float_only, notes="x * tanh(softplus(x)), softplus as for Softplus")
def convert_mish(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    t = _chain(ctx, "TANH", [_softplus(ctx, src, node.output[0])], f"{node.output[0]}/tanh")
    emit(ctx, "MUL", [src, t], _out(ctx, node, perm))


@converter("Softsign", tflite=("ABS", "ADD", "DIV"), check=_float_only, notes="x / (1 + abs(x))")
def convert_softsign(node: Any, ctx: Context) -> None:
    src, perm = source(ctx, node.input[0])
    y = node.output[0]
    den = _chain(ctx, "ADD", [_chain(ctx, "ABS", [src], f"{y}/abs"), const_like(ctx, 1.0, src)], f"{y}/den")
    emit(ctx, "DIV", [src, den], _out(ctx, node, perm))


# ---- softmax ------------------------------------------------------------------------------------
@converter("Softmax", tflite=("SOFTMAX", "TRANSPOSE", "RESHAPE"), check=_float_only,
           notes="any axis (opset < 13: the 2-D coercion of the old definition)")
def convert_softmax(node: Any, ctx: Context) -> None:
    _softmax(ctx, node, "SOFTMAX", "SoftmaxOptions", beta=1.0)


@converter("LogSoftmax", tflite=("LOG_SOFTMAX", "TRANSPOSE", "RESHAPE"), check=_float_only,
           notes="any axis (opset < 13: the 2-D coercion of the old definition)")
def convert_log_softmax(node: Any, ctx: Context) -> None:
    _softmax(ctx, node, "LOG_SOFTMAX", "LogSoftmaxOptions")


def _softmax(ctx: Context, node: Any, code: str, options_type: str, **options: Any) -> None:
    x, y = node.input[0], node.output[0]
    shape = ctx.shape(x)
    r = len(shape)
    axis = int(ctx.attr(node, "axis", -1 if ctx.opset >= 13 else 1)) % max(r, 1)
    if ctx.opset < 13 and axis != r - 1:  # old definition: softmax over the flattened [axis:] block
        src = ctx.onnx_layout(x)
        flat = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        a = ctx.reshape(src, flat, hint=f"{x}/2d")
        b = ctx.tmp(flat, np.float32, f"{y}/2d")
        ctx.op(code, [a], [b], options_type, **options)
        ctx.reshape(b, shape, ctx.output(y))
        return
    perm = ctx.layout(x) if not ctx.is_const(x) else identity(r)
    if perm[-1] != axis:  # bring the axis last, keeping the rest of the layout
        perm = tuple(p for p in perm if p != axis) + (axis,)
    ctx.op(code, [ctx.get(x, perm)], [ctx.output(y, perm)], options_type, **options)
