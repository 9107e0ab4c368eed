"""Shape and data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice,
Pad, Gather, Expand, Tile, Cast, Shape, Size.

Every value's shape is static here (``prepare`` folded the shape subgraphs), so these ops read their
output shape from ``ctx.shape`` instead of re-deriving it from attributes. Layouts:

* Transpose emits nothing: the output is the input tensor with a composed layout.
* Reshape (and Flatten, Squeeze, Unsqueeze) keeps the input's layout when the stored bytes are
  already in the new order (only size-1 axes move, or the merged/split axes are adjacent in the
  stored tensor, e.g. NHWC [N, C, H, W] -> [N, C, H*W]); otherwise it reads the ONNX layout.
* Concat, Split, Slice, Pad, Gather, Expand, Tile and Cast work on the value as it is stored,
  with their axes mapped through its layout; constant operands are laid out to match.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..context import Context, Value, identity
from ..registry import Unsupported, converter
from ..writer import tensor_type

_SUPPORTED = {"float32", "int32", "int64", "bool", "int8", "uint8", "int16"}


# ---- helpers --------------------------------------------------------------------------------
def _fold(ctx: Context, name: str, value: Any) -> None:
    """``name`` is a known constant (the converter computed it)."""
    a = np.asarray(value)
    ctx.consts[name], ctx.shapes[name], ctx.dtypes[name] = a, tuple(a.shape), a.dtype


def _src(ctx: Context, name: str, perm: tuple[int, ...] | None = None) -> int:
    """``name`` as a TFLite tensor in layout ``perm``; a constant keeps its own dtype (int64 stays int64)."""
    return ctx.get(name, perm, ctx.dtype(name) if ctx.is_const(name) else None)


def _layout(ctx: Context, name: str) -> tuple[int, ...]:
    return identity(ctx.rank(name)) if ctx.is_const(name) else ctx.layout(name)


def _common_layout(ctx: Context, names: list[str], rank: int) -> tuple[int, ...]:
    """The layout most of the non-constant operands are stored in (the first one's on a tie)."""
    perms = [ctx.layout(n) for n in names if not ctx.is_const(n) and ctx.rank(n) == rank]
    return Counter(perms).most_common(1)[0][0] if perms else identity(rank)


def _i32(values: Any) -> np.ndarray:
    return np.asarray(values, np.int64).clip(np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


def _input_const(ctx: Context, node: Any, index: int, what: str) -> np.ndarray | None:
    """Optional input ``index`` of ``node`` as a constant (None if absent); refused if computed at run time."""
    if len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None:
        raise Unsupported(f"{what} computed at run time (TFLite needs it constant here)", "dynamic-shape")
    return value


def _check_dtypes(node: Any, ctx: Context) -> str | None:
    for name in list(node.input[:1]) + list(node.output):
        if name and ctx.dtype(name).name not in _SUPPORTED:
            return f"{ctx.dtype(name)} tensors (TFLite has no such type here)"
    return None


def _check_static(node: Any, ctx: Context) -> str | None:
    """Refuse dtypes TFLite lacks and zero-size results (the TFLite kernels do not take them)."""
    reason = _check_dtypes(node, ctx)
    if reason:
        return reason
    for name in node.output:
        if name and 0 in ctx.shape(name):
            return f"an empty result ({name!r} has shape {list(ctx.shape(name))})"
    return None


# ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------------------
def _groups(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """The non-size-1 axes of both shapes paired into groups of equal size (axes merged or split)."""
    ins = [a for a, d in enumerate(in_shape) if d != 1]
    outs = [a for a, d in enumerate(out_shape) if d != 1]
    groups, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj and i < len(ins):
                gi.append(ins[i])
                pi, i = pi * in_shape[ins[i]], i + 1
            elif pj < pi and j < len(outs):
                gj.append(outs[j])
                pj, j = pj * out_shape[outs[j]], j + 1
            else:
                return None
        groups.append((gi, gj))
    return groups if i == len(ins) and j == len(outs) else None


def reshape_layout(in_shape: tuple[int, ...], perm: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A layout for ``in_shape`` (stored in ``perm``) reshaped to ``out_shape`` that needs no data movement,
    or None. Each group of merged/split axes must sit adjacent and in ONNX order in the stored tensor."""
    if 0 in in_shape or 0 in out_shape:
        return None
    groups = _groups(in_shape, out_shape)
    if groups is None:
        return None
    stored = [a for a in perm if in_shape[a] != 1]
    placed = []
    for gi, gj in groups:
        pos = [stored.index(a) for a in gi]
        if pos != list(range(pos[0], pos[0] + len(pos))):
            return None
        placed.append((pos[0], gj))
    order = [a for _, gj in sorted(placed) for a in gj]
    out = list(range(len(out_shape)))
    for slot, axis in zip([a for a, d in enumerate(out_shape) if d != 1], order):
        out[slot] = axis
    return tuple(out)


def reshape_to(ctx: Context, x: str, y: str) -> None:
    """``y`` is ``x`` with the (static) shape ONNX inferred for ``y``."""
    shape = ctx.shape(y)
    perm = reshape_layout(ctx.shape(x), _layout(ctx, x), shape)
    src = _src(ctx, x) if perm is not None else _src(ctx, x, identity(ctx.rank(x)))
    perm = perm if perm is not None else identity(len(shape))
    stored = tuple(shape[p] for p in perm)
    if not ctx.is_const(x) and ctx.w.tensors[src].shape == stored:  # nothing moves: the same tensor
        ctx.values[y] = Value(src, perm)
        return
    ctx.reshape(src, stored, ctx.output(y, perm))


def _check_reshape(node: Any, ctx: Context) -> str | None:
    reason = _check_dtypes(node, ctx)
    if reason:
        return reason
    if 0 in ctx.shape(node.output[0]) or 0 in ctx.shape(node.input[0]):
        return "an empty tensor (a zero dimension)"
    return None


@converter("Reshape", "Flatten", "Squeeze", "Unsqueeze", tflite="RESHAPE", check=_check_reshape,
           notes="the target shape is static after folding (0, -1, allowzero, axes as attribute or input); "
                 "no data movement when the stored layout already has the new order")
def convert_reshape(node: Any, ctx: Context) -> None:
    reshape_to(ctx, node.input[0], node.output[0])


# ---- Transpose ----------------------------------------------------------------------------
@converter("Transpose", tflite=(), notes="no op: the output is the input with a composed layout "
                                          "(a TRANSPOSE appears only where a reader needs another layout)")
def convert_transpose(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    r = ctx.rank(x)
    t = tuple(int(a) % max(r, 1) for a in (ctx.attr(node, "perm") or reversed(range(r))))
    if ctx.is_const(x):
        _fold(ctx, y, np.transpose(ctx.const_array(x), t))
        return
    v = ctx.values[x]
    ctx.values[y] = Value(v.tensor, tuple(t.index(a) for a in v.perm))


# ---- Concat, Split ------------------------------------------------------------------------------
@converter("Concat", tflite="CONCATENATION", check=_check_static,
           notes="on the axis as stored; operands in another layout (and constants) are laid out to match")
def convert_concat(node: Any, ctx: Context) -> None:
    y = node.output[0]
    rank = ctx.rank(y)
    axis = int(ctx.attr(node, "axis", 0)) % rank
    names = [n for n in node.input if n and ctx.shape(n)[axis] != 0]  # empty operands add nothing
    perm = _common_layout(ctx, names, rank)
    ins = [ctx.get(n, perm, ctx.dtype(y) if ctx.is_const(n) else None) for n in names]
    ctx.op("CONCATENATION", ins, [ctx.output(y, perm)], "ConcatenationOptions", axis=perm.index(axis),
           fusedActivationFunction=0)


@converter("Split", tflite=("SPLIT", "SPLIT_V"), check=_check_static,
           notes="SPLIT for equal parts, SPLIT_V otherwise; split as attribute or input, num_outputs (opset 18)")
def convert_split(node: Any, ctx: Context) -> None:
    x = node.input[0]
    axis = int(ctx.attr(node, "axis", 0)) % ctx.rank(x)
    perm = _layout(ctx, x)
    sizes = [ctx.shape(o)[axis] for o in node.output]
    outs = [ctx.output(o, perm) for o in node.output]
    stored_axis = ctx.constant(np.array(perm.index(axis), np.int32))
    if len(set(sizes)) == 1:
        ctx.op("SPLIT", [stored_axis, _src(ctx, x)], outs, "SplitOptions", numSplits=len(outs))
    else:
        ctx.op("SPLIT_V", [_src(ctx, x), ctx.constant(np.array(sizes, np.int32)), stored_axis], outs,
               "SplitVOptions", numSplits=len(outs))


# ---- Slice ----------------------------------------------------------------------------------------
def _slice_args(node: Any, ctx: Context) -> tuple[list[int], list[int], list[int], list[bool]]:
    """Per ONNX axis: begin, end, stride and whether the slice runs (backwards) through index 0."""
    shape = ctx.shape(node.input[0])
    r = len(shape)
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts"), ctx.attr(node, "ends")
        axes, steps = ctx.attr(node, "axes"), None
    else:
        starts, ends = _input_const(ctx, node, 1, "starts"), _input_const(ctx, node, 2, "ends")
        axes, steps = _input_const(ctx, node, 3, "axes"), _input_const(ctx, node, 4, "steps")
    if starts is None or ends is None:
        raise Unsupported("a Slice without starts or ends")
    axis_list = list(range(len(starts))) if axes is None or len(axes) == 0 else [int(a) % r for a in axes]
    step_list = [1] * len(starts) if steps is None else [int(s) for s in steps]
    begin, end, stride, to_front = [0] * r, list(shape), [1] * r, [False] * r
    for a, s, e, st in zip(axis_list, starts, ends, step_list):
        if st == 0:
            raise Unsupported("a zero step")
        b, e2, st = slice(int(s), int(e), st).indices(shape[a])
        begin[a], end[a], stride[a], to_front[a] = b, e2, st, st < 0 and e2 < 0
    return begin, end, stride, to_front


def _check_slice(node: Any, ctx: Context) -> str | None:
    _slice_args(node, ctx)  # raises for run-time starts/ends and zero steps
    return _check_static(node, ctx)


@converter("Slice", tflite="STRIDED_SLICE", check=_check_slice,
           notes="starts/ends/axes/steps as constants: negative and out-of-range indices, INT64 max, "
                 "negative steps; sliced in the value's stored layout")
def convert_slice(node: Any, ctx: Context) -> None:
    x = node.input[0]
    begin, end, stride, to_front = _slice_args(node, ctx)
    perm = _layout(ctx, x)
    end_mask = sum(1 << i for i, a in enumerate(perm) if to_front[a])
    ctx.op("STRIDED_SLICE", [_src(ctx, x), ctx.constant(_i32([begin[a] for a in perm])),
                             ctx.constant(_i32([end[a] if not to_front[a] else 0 for a in perm])),
                             ctx.constant(_i32([stride[a] for a in perm]))],
           [ctx.output(node.output[0], perm)], "StridedSliceOptions", endMask=end_mask)


# ---- Pad ---------------------------------------------------------------------------------------------
def _pad_args(node: Any, ctx: Context) -> tuple[np.ndarray, str, Any]:
    """(pads as an [rank, 2] array of (begin, end) per ONNX axis, mode, constant value)."""
    r = ctx.rank(node.input[0])
    mode = ctx.attr(node, "mode", "constant")
    if ctx.opset < 11:
        pads, value, axes = np.array(ctx.attr(node, "pads"), np.int64), ctx.attr(node, "value", 0.0), None
    else:
        given = _input_const(ctx, node, 1, "pads")
        if given is None:
            raise Unsupported("a Pad without pads")
        pads, value, axes = given, _input_const(ctx, node, 2, "constant_value"), _input_const(ctx, node, 3, "axes")
    axis_list = list(range(r)) if axes is None else [int(a) % r for a in axes]
    n = len(axis_list)
    full = np.zeros((r, 2), np.int64)
    for i, a in enumerate(axis_list):
        full[a] = (int(pads[i]), int(pads[i + n]))
    value = 0 if value is None or np.size(value) == 0 else np.asarray(value).reshape(-1)[0]
    return full, mode, value


def _check_pad(node: Any, ctx: Context) -> str | None:
    reason = _check_static(node, ctx)
    if reason:
        return reason
    pads, mode, _ = _pad_args(node, ctx)
    shape = ctx.shape(node.input[0])
    if mode not in ("constant", "reflect", "edge", "wrap"):
        return f"mode={mode!r}"
    if mode != "constant" and (pads < 0).any():
        return f"negative pads in {mode} mode"
    if mode == "reflect" and any(max(p) >= d for p, d in zip(pads.tolist(), shape) if max(p) > 0):
        return "reflect pads as large as the dimension"
    if mode in ("edge", "wrap") and any(max(p) > 0 and d == 0 for p, d in zip(pads.tolist(), shape)):
        return f"{mode} padding of an empty axis"
    return None


@converter("Pad", tflite=("PAD", "PADV2", "MIRROR_PAD", "GATHER", "STRIDED_SLICE"), check=_check_pad,
           notes="constant (PAD/PADV2; negative pads crop), reflect (MIRROR_PAD), edge and wrap (GATHER of "
                 "the border indices); pads as attribute or input, axes (opset 18); in the stored layout")
def convert_pad(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    pads, mode, value = _pad_args(node, ctx)
    if not pads.any():
        ctx.alias(y, x)
        return
    perm, shape = _layout(ctx, x), ctx.shape(x)
    src, stored = _src(ctx, x), [shape[a] for a in perm]
    if mode in ("edge", "wrap"):
        _pad_by_gather(ctx, src, stored, perm, pads, mode, y)
        return
    if (pads < 0).any():  # crop first (a STRIDED_SLICE), then pad what is positive
        cut = -np.minimum(pads, 0)[list(perm)]  # (begin, end) elements removed per stored axis
        begin, end = cut[:, 0], np.array(stored) - cut[:, 1]
        cropped = ctx.tmp(end - begin, ctx.dtype(x), f"{y}/crop")
        ctx.op("STRIDED_SLICE", [src, ctx.constant(_i32(begin)), ctx.constant(_i32(end)),
                                 ctx.constant(_i32([1] * len(stored)))], [cropped], "StridedSliceOptions")
        src, pads = cropped, np.maximum(pads, 0)
    paddings = ctx.constant(_i32(pads[list(perm)]))
    out = ctx.output(y, perm)
    if mode == "reflect":
        ctx.op("MIRROR_PAD", [src, paddings], [out], "MirrorPadOptions", mode=0)  # 0: REFLECT
    elif value == 0:
        ctx.op("PAD", [src, paddings], [out], "PadOptions")
    else:
        ctx.op("PADV2", [src, paddings, ctx.constant(np.array(value), dtype=ctx.dtype(x))], [out], "PadV2Options")


def _pad_by_gather(ctx: Context, src: int, stored: list[int], perm: tuple[int, ...], pads: np.ndarray, mode: str,
                   y: str) -> None:
    """Edge/wrap padding: per padded axis, a GATHER of the indices [-begin, size + end) clamped or wrapped."""
    axes = [i for i, a in enumerate(perm) if pads[a].any()]
    for k, i in enumerate(axes):
        b, e = (int(p) for p in pads[perm[i]])
        idx = np.arange(-b, stored[i] + e)
        idx = np.clip(idx, 0, stored[i] - 1) if mode == "edge" else idx % stored[i]
        stored = stored[:i] + [len(idx)] + stored[i + 1:]
        out = ctx.output(y, perm) if k == len(axes) - 1 else ctx.tmp(stored, ctx.dtype(y), f"{y}/{mode}{i}")
        ctx.op("GATHER", [src, ctx.constant(idx.astype(np.int32))], [out], "GatherOptions", axis=i, batchDims=0)
        src = out


# ---- Gather, Expand, Tile, Cast ------------------------------------------------------------------
def _check_gather(node: Any, ctx: Context) -> str | None:
    reason = _check_static(node, ctx)
    if reason:
        return reason
    idx = ctx.const(node.input[1])
    dim = ctx.shape(node.input[0])[int(ctx.attr(node, "axis", 0)) % ctx.rank(node.input[0])]
    if idx is not None and idx.size and (idx.min() < -dim or idx.max() >= dim):
        return f"indices out of range for a dimension of {dim}"
    return None


def _without_axis(perm: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return tuple(p - (p > axis) for p in perm if p != axis)


@converter("Gather", tflite=("GATHER", "FLOOR_MOD", "STRIDED_SLICE"), check=_check_gather,
           notes="any axis, in the data's stored layout; negative indices (constant ones folded, run-time ones "
                 "wrapped with FLOOR_MOD); a scalar constant index is a STRIDED_SLICE")
def convert_gather(node: Any, ctx: Context) -> None:
    data, ind, y = node.input[0], node.input[1], node.output[0]
    r = ctx.rank(data)
    axis = int(ctx.attr(node, "axis", 0)) % r
    dim = ctx.shape(data)[axis]
    if ctx.is_const(data) and ctx.is_const(ind):
        _fold(ctx, y, np.take(ctx.const_array(data), ctx.const_array(ind), axis=axis))
        return
    k = len(ctx.shape(ind))
    perm = _layout(ctx, data)
    a = perm.index(axis)
    if ctx.is_const(ind) and k == 0:  # one index: a slice that drops the axis
        i = int(ctx.const_array(ind)) % dim
        begin, end = [0] * r, [ctx.shape(data)[p] for p in perm]
        begin[a], end[a] = i, i + 1
        ctx.op("STRIDED_SLICE", [_src(ctx, data), ctx.constant(_i32(begin)), ctx.constant(_i32(end)),
                                 ctx.constant(_i32([1] * r))], [ctx.output(y, _without_axis(perm, axis))],
               "StridedSliceOptions", shrinkAxisMask=1 << a)
        return
    if ctx.is_const(ind):
        idx = ctx.const_array(ind).astype(np.int64)
        indices = ctx.constant(np.where(idx < 0, idx + dim, idx).astype(np.int32), ind)
    else:
        raw = ctx.onnx_layout(ind)
        indices = ctx.tmp(ctx.shape(ind), ctx.dtype(ind), f"{ind}/wrapped")
        ctx.op("FLOOR_MOD", [raw, ctx.constant(np.array(dim), dtype=ctx.dtype(ind))], [indices])
    moved = [d if d < axis else d + k - 1 for d in perm]
    out_perm = tuple(moved[:a]) + tuple(range(axis, axis + k)) + tuple(moved[a + 1:])
    ctx.op("GATHER", [_src(ctx, data), indices], [ctx.output(y, out_perm)], "GatherOptions", axis=a, batchDims=0)


@converter("Expand", tflite=("TILE", "RESHAPE"), check=_check_static,
           notes="the target shape is static; a TILE of the size-1 axes (BROADCAST_TO needs newer runtimes), "
                 "in the input's stored layout")
def convert_expand(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    shape = ctx.shape(y)
    if ctx.is_const(x):
        _fold(ctx, y, np.broadcast_to(ctx.const_array(x), shape).copy())
        return
    perm = ctx.layout(x) if ctx.rank(x) == len(shape) else identity(len(shape))
    src = ctx.broadcast_operand(x, len(shape), perm)  # leading 1s added, laid out like the output
    have, stored = ctx.w.tensors[src].shape, tuple(shape[p] for p in perm)
    if have == stored:
        ctx.values[y] = Value(src, perm)
        return
    ctx.op("TILE", [src, ctx.constant(_i32([s // h for s, h in zip(stored, have)]))], [ctx.output(y, perm)],
           "TileOptions")


@converter("Tile", tflite="TILE", check=_check_static, notes="constant repeats, in the input's stored layout")
def convert_tile(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    repeats = _input_const(ctx, node, 1, "repeats")
    if repeats is None:
        raise Unsupported("a Tile without repeats")
    if ctx.is_const(x):
        _fold(ctx, y, np.tile(ctx.const_array(x), repeats))
        return
    perm = ctx.layout(x)
    ctx.op("TILE", [_src(ctx, x), ctx.constant(_i32([repeats[a] for a in perm]))], [ctx.output(y, perm)],
           "TileOptions")


def _check_cast(node: Any, ctx: Context) -> str | None:
    for name in (node.input[0], node.output[0]):
        if ctx.dtype(name).name not in _SUPPORTED | {"float16"}:
            return f"a cast involving {ctx.dtype(name)} (TFLite has no such type here)"
    return None


@converter("Cast", tflite="CAST", check=_check_cast,
           notes="between float32, float16 (in), int8/16/32/64, uint8 and bool")
def convert_cast(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    if ctx.is_const(x):
        _fold(ctx, y, ctx.const_array(x).astype(ctx.dtype(y)))
        return
    perm = ctx.layout(x)
    ctx.op("CAST", [_src(ctx, x)], [ctx.output(y, perm)], "CastOptions",
           inDataType=tensor_type(ctx.dtype(x)), outDataType=tensor_type(ctx.dtype(y)))


# ---- Shape, Size ----------------------------------------------------------------------------------
@converter("Shape", "Size", tflite=(), notes="folded to a constant (every shape is static); start/end")
def convert_shape(node: Any, ctx: Context) -> None:
    shape = ctx.shape(node.input[0])
    if node.op_type == "Size":
        value = np.array(int(np.prod(shape)), np.int64)
    else:
        start, end = int(ctx.attr(node, "start", 0)), ctx.attr(node, "end")
        value = np.array(shape[start:None if end is None else int(end)], np.int64)
    _fold(ctx, node.output[0], value)
