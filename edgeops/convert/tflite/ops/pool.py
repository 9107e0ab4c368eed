"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on channels-last tensors.

MAX_POOL_2D and AVERAGE_POOL_2D only know SAME and VALID, and TFLite's SAME average leaves the
padding out of the divisor. Every ONNX window is resolved to explicit [begin..., end...] pads
first (auto_pad, and ceil_mode as extra end padding that yields exactly the output ONNX infers);
then TFLite's SAME is used where it pads (and, for AveragePool, divides) the same way, and
otherwise the input is padded explicitly (PADV2 with the type's lowest value for MaxPool, PAD
with zeros for AveragePool) before a VALID pool. An AveragePool whose ONNX divisor is not the
whole window (count_include_pad=0 with pads, or a ceil_mode window that runs off the end) is then
multiplied by a constant window-size / divisor map. 1-D pools run as 2-D ones with H = 1, 3-D
ones as a 2-D pool over H, W and another over D (max and average both separate by axis).

TFLite pools have no dilation: a dilated pool is computed one axis at a time from a STRIDED_SLICE
per tap (kernel taps per axis, not per window), combined with MAXIMUM or ADD, the average scaled by
a constant 1 / divisor map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import Context, channels_last
from ..registry import Unsupported, converter
from ._common import ints
from .conv import onnx_pads, pad_enum, tflite_padding

_MAX_TYPES = {"float32", "int8", "uint8", "int16"}


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a pool: input and output size, window, stride, ONNX pads at each end."""
    size: int
    out: int
    kernel: int = 1
    stride: int = 1
    begin: int = 0
    end: int = 0
    dilation: int = 1

    @property
    def window(self) -> int:
        return (self.kernel - 1) * self.dilation + 1


def _check_pool(node: Any, ctx: Context) -> str | None:
    rank = ctx.rank(node.input[0])
    if rank not in (3, 4, 5):
        return f"{rank - 2}-D pooling (1-D, 2-D and 3-D run as 2-D pools)"
    if len(node.output) > 1 and node.output[1]:
        return "MaxPool's Indices output (TFLite has no pooling with argmax)"
    dtype = ctx.dtype(node.output[0])
    if dtype.name not in (_MAX_TYPES if node.op_type == "MaxPool" else {"float32"}):
        return f"{dtype} {node.op_type}"
    axes = _axes(node, ctx)
    if not _dilated(axes):
        for _, (h, w) in _stages(ctx.shape(node.input[0]), axes):
            _plan(node, ctx, h, w)
    return None


def _axes(node: Any, ctx: Context) -> list[Axis]:
    """The node's spatial axes, auto_pad resolved; refuses a ceil_mode size the graph got wrong."""
    sizes, out = ctx.shape(node.input[0])[2:], ctx.shape(node.output[0])[2:]
    n = len(sizes)
    kernel = tuple(int(k) for k in ctx.attr(node, "kernel_shape"))
    strides, dilations = ints(ctx.attr(node, "strides"), n, 1), ints(ctx.attr(node, "dilations"), n, 1)
    pads = onnx_pads(ctx, node, sizes, kernel, strides, dilations)
    axes = [Axis(sizes[i], out[i], kernel[i], strides[i], pads[i], pads[n + i], dilations[i]) for i in range(n)]
    if ctx.attr(node, "ceil_mode", 0):
        for a in axes:
            _check_ceil_size(a)
    return axes


def _check_ceil_size(a: Axis) -> None:
    """ceil_mode drops a last window that would start in the end padding; onnx's shape inference
    before opset 22 does not, and then the graph's shapes are not what runtimes compute."""
    size = -(-(a.size + a.begin + a.end - a.window) // a.stride) + 1
    if (size - 1) * a.stride >= a.size + a.begin:
        size -= 1
    if size != a.out:
        raise Unsupported(f"ceil_mode: the graph says {a.out} windows where runtimes compute {size} (the last one "
                          "would start in the padding; onnx's shape inference drops it from opset 22 on)")


def _stages(shape: tuple[int, ...], axes: list[Axis]) -> list[tuple[tuple[int, ...], tuple[Axis, Axis]]]:
    """The 2-D pools that make up an N-D one: (NHWC input shape, (H axis, W axis)) each. 1-D pools on
    an H of 1; 3-D ones pool H, W on [N * D, H, W, C], then D on [N, D, OH * OW, C] (max and
    average both separate this way, the average divisor being a product over the axes)."""
    n, c = shape[0], shape[1]
    if len(axes) == 1:
        return [((n, 1, axes[0].size, c), (Axis(1, 1), axes[0]))]
    if len(axes) == 2:
        return [((n, axes[0].size, axes[1].size, c), (axes[0], axes[1]))]
    d, h, w = axes
    flat = h.out * w.out
    return [((n * d.size, h.size, w.size, c), (h, w)), ((n, d.size, flat, c), (d, Axis(flat, flat)))]


def _plan(node: Any, ctx: Context, h: Axis, w: Axis) -> tuple[str, list[int] | None, np.ndarray | None]:
    """(TFLite padding, pads to apply explicitly or None, the AveragePool correction map or None)."""
    axes = (h, w)
    end = [0, 0]
    for i, a in enumerate(axes):  # the end padding that makes a VALID pool produce ONNX's output size
        low = (a.out - 1) * a.stride + a.kernel - a.size - a.begin
        end[i] = min(max(a.end, low), low + a.stride - 1)
        if end[i] < 0:
            raise Unsupported("pads that crop the input")
    padded = [h.begin, w.begin, *end]
    sizes, kernel, strides = (h.size, w.size), (h.kernel, w.kernel), (h.stride, w.stride)
    padding, explicit = tflite_padding(sizes, kernel, strides, (1, 1), padded)
    if node.op_type == "MaxPool":
        return padding, explicit, None
    include = bool(ctx.attr(node, "count_include_pad", 0))
    divisor = [_divisors(a, include) for a in axes]
    if padding == "SAME" and all(np.array_equal(divisor[i], _divisors(a, False)) for i, a in enumerate(axes)):
        return padding, None, None  # TFLite's SAME divides by the in-bounds count, like ONNX here
    correction = h.kernel * w.kernel / np.outer(divisor[0], divisor[1]).astype(np.float64)
    return "VALID", padded if any(padded) else None, None if np.allclose(correction, 1.0) else correction


def _divisors(a: Axis, include_pad: bool) -> np.ndarray:
    """How many elements ONNX averages over in each window along one axis: the in-bounds ones, and
    the padding too with count_include_pad (the ceil_mode overhang never counts)."""
    low, high = (-a.begin, a.size + a.end) if include_pad else (0, a.size)
    taps = (np.arange(a.out) * a.stride - a.begin)[:, None] + np.arange(a.kernel) * a.dilation
    return ((taps >= low) & (taps < high)).sum(axis=1)


_POOL_NOTES = ("1-D, 2-D, and 3-D as two 2-D pools; strides, every auto_pad, explicit and asymmetric pads, ceil_mode "
               "(SAME where TFLite's matches, else {pad} + VALID){extra}; dilations as a STRIDED_SLICE per tap and "
               "{combine}")


@converter("MaxPool", tflite=("MAX_POOL_2D", "PADV2", "RESHAPE", "STRIDED_SLICE", "MAXIMUM"), check=_check_pool,
           notes=_POOL_NOTES.format(pad="PADV2 with the lowest value", extra="; float32, int8, uint8",
                                    combine="MAXIMUM; no Indices output"))
@converter("AveragePool", tflite=("AVERAGE_POOL_2D", "PAD", "MUL", "RESHAPE", "STRIDED_SLICE", "ADD"),
           check=_check_pool,
           notes=_POOL_NOTES.format(pad="PAD", extra=", count_include_pad 0 and 1 (a constant divisor correction "
                                    "where TFLite's divisor differs)", combine="ADD"))
def convert_pool(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    rank, dtype = ctx.rank(x), ctx.dtype(y)
    src, axes = ctx.nhwc(x), _axes(node, ctx)
    if _dilated(axes):
        _tap_pool(ctx, node, src, axes)
        return
    stages = _stages(ctx.shape(x), axes)
    for i, (nhwc, (h, w)) in enumerate(stages):
        if ctx.w.tensors[src].shape != nhwc:
            src = ctx.reshape(src, nhwc, hint=f"{x}/{i}")
        last = i == len(stages) - 1
        out_shape = (nhwc[0], h.out, w.out, nhwc[3])
        dst = ctx.output(y, channels_last(4)) if last and rank == 4 else ctx.tmp(out_shape, dtype, f"{y}/{i}")
        _pool(ctx, node, src, nhwc, h, w, dst)
        src = dst
    if rank != 4:
        out = ctx.output(y, channels_last(rank))
        ctx.reshape(src, ctx.w.tensors[out].shape, out)


def _pool(ctx: Context, node: Any, src: int, nhwc: tuple[int, ...], h: Axis, w: Axis, dst: int) -> None:
    """One 2-D pool of the NHWC tensor ``src`` into ``dst``."""
    is_max = node.op_type == "MaxPool"
    padding, explicit, correction = _plan(node, ctx, h, w)
    dtype = np.dtype(ctx.w.tensors[src].dtype)
    if explicit is not None:
        low = np.finfo(dtype).min if dtype.kind == "f" else np.iinfo(dtype).min
        src, nhwc = _pad(ctx, src, nhwc, explicit, low if is_max else 0, dtype, f"{node.name}/pad")
    pooled = dst if correction is None else ctx.tmp(ctx.w.tensors[dst].shape, np.float32, f"{node.name}/sum")
    ctx.op("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [src], [pooled], "Pool2DOptions",
           padding=pad_enum(padding), strideH=h.stride, strideW=w.stride, filterHeight=h.kernel,
           filterWidth=w.kernel, fusedActivationFunction=0)
    if correction is not None:
        factor = ctx.constant(correction.reshape(1, *correction.shape, 1).astype(np.float32), f"{node.name}/divisor")
        ctx.op("MUL", [pooled, factor], [dst], "MulOptions", fusedActivationFunction=0)


def _pad(ctx: Context, src: int, shape: tuple[int, ...], pads: list[int], value: float, dtype: np.dtype,
         hint: str) -> tuple[int, tuple[int, ...]]:
    """PAD (zeros) or PADV2 (``value``) of a channels-last tensor by [begin..., end...] on its spatial axes."""
    n = len(pads) // 2
    paddings = np.array([[0, 0], *zip(pads[:n], pads[n:]), [0, 0]], np.int32)
    shape = tuple(int(d + p.sum()) for d, p in zip(shape, paddings))
    out = ctx.tmp(shape, dtype, hint)
    if value == 0:
        ctx.op("PAD", [src, ctx.constant(paddings)], [out], "PadOptions")
    else:
        ctx.op("PADV2", [src, ctx.constant(paddings), ctx.constant(np.array(value, dtype))], [out], "PadV2Options")
    return out, shape


# ---- dilated pools -------------------------------------------------------------------------------


def _dilated(axes: list[Axis]) -> bool:
    return any(a.dilation != 1 and a.kernel > 1 for a in axes)


def _tap_pool(ctx: Context, node: Any, src: int, axes: list[Axis]) -> None:
    """A dilated pool, one axis at a time: a STRIDED_SLICE per tap of the (padded) input, combined
    with MAXIMUM or ADD; an average is then scaled by a constant 1 / divisor map."""
    y, is_max = node.output[0], node.op_type == "MaxPool"
    rank, dtype = ctx.rank(y), np.dtype(ctx.dtype(y))
    shape = ctx.w.tensors[src].shape
    end = [max((a.out - 1) * a.stride + a.window - a.size - a.begin, 0) for a in axes]
    if any(a.begin for a in axes) or any(end):
        low = np.finfo(dtype).min if dtype.kind == "f" else np.iinfo(dtype).min
        src, shape = _pad(ctx, src, shape, [a.begin for a in axes] + end, low if is_max else 0, dtype,
                          f"{node.name}/pad")
    active = [i for i, a in enumerate(axes) if a.kernel > 1 or a.stride > 1 or shape[1 + i] != a.out]
    out = ctx.output(y, channels_last(rank))
    for i in active:
        shape = tuple(axes[i].out if k == 1 + i else d for k, d in enumerate(shape))
        target = out if i == active[-1] and is_max else ctx.tmp(shape, dtype, f"{y}/axis{i}")
        src = _pool_axis(ctx, src, 1 + i, axes[i], "MAXIMUM" if is_max else "ADD", target)
    if not is_max:
        include = bool(ctx.attr(node, "count_include_pad", 0))
        divisor = np.ones((1,) * rank)
        for i, a in enumerate(axes):
            divisor = divisor * _divisors(a, include).reshape([-1 if k == 1 + i else 1 for k in range(rank)])
        ctx.op("MUL", [src, ctx.constant((1.0 / divisor).astype(np.float32), f"{node.name}/divisor")], [out],
               "MulOptions", fusedActivationFunction=0)


def _pool_axis(ctx: Context, src: int, axis: int, a: Axis, code: str, dst: int) -> int:
    """``dst`` = the MAXIMUM (or sum, ADD) of the ``a.kernel`` taps of ``src`` along stored ``axis``."""
    shape, dtype = ctx.w.tensors[dst].shape, ctx.w.tensors[dst].dtype
    taps = [dst] if a.kernel == 1 else [ctx.tmp(shape, dtype, f"{ctx.w.tensors[dst].name}/tap{j}")
                                        for j in range(a.kernel)]
    for j, tap in enumerate(taps):
        begin, stop, step = [0] * len(shape), list(ctx.w.tensors[src].shape), [1] * len(shape)
        begin[axis], stop[axis], step[axis] = j * a.dilation, j * a.dilation + (a.out - 1) * a.stride + 1, a.stride
        ctx.op("STRIDED_SLICE", [src, *(ctx.constant(np.array(v, np.int32)) for v in (begin, stop, step))], [tap],
               "StridedSliceOptions")
    acc = taps[0]
    for j, tap in enumerate(taps[1:], 2):
        out = dst if j == len(taps) else ctx.tmp(shape, dtype, f"{ctx.w.tensors[dst].name}/acc{j}")
        if code == "MAXIMUM":
            ctx.op("MAXIMUM", [acc, tap], [out])
        else:
            ctx.op("ADD", [acc, tap], [out], "AddOptions", fusedActivationFunction=0)
        acc = out
    return dst


@converter("GlobalAveragePool", tflite="MEAN", notes="any rank >= 3; the result stays channels-last")
@converter("GlobalMaxPool", tflite="REDUCE_MAX", notes="any rank >= 3; the result stays channels-last")
def convert_global_pool(node: Any, ctx: Context) -> None:
    x = node.input[0]
    r = ctx.rank(x)
    src = ctx.get(x, channels_last(r))
    axes = np.arange(1, r - 1, dtype=np.int32)
    out = ctx.output(node.output[0], channels_last(r))
    code = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    ctx.op(code, [src, ctx.constant(axes)], [out], "ReducerOptions", keepDims=True)
