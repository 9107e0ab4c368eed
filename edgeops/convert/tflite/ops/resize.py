"""Resize and Upsample -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR, or a GATHER per axis for nearest.

TFLite resizes the two middle axes of a 4-D tensor (H, W of NHWC), with three coordinate rules
(``alignCorners``, ``halfPixelCenters`` or neither), while ONNX has six coordinate transformation
modes, five nearest rounding modes and scales that need not equal output/input. Rather than a
table of which combinations agree, ``plan`` computes, for the node's static sizes and scales, the
source pixel ONNX reads for every output pixel of each axis (twice: in float32 as onnxruntime does
and in float64 as onnx's reference does) and the one each TFLite rule reads (the kernel's float32
arithmetic, checked against LiteRT in the tests), and picks the rule that reads the same pixels
(nearest) or the same coordinates (linear). So half_pixel + round_prefer_floor is a TFLite resize for
integer up- and downsampling, but not for a 4 -> 3 downsample, where ties are broken the other way.

A nearest resize no rule matches (or of another rank, or of more than two axes) becomes one GATHER
per resized axis with the source indices ONNX reads: exact for every mode. Linear resizes no rule
matches, cubic, tf_crop_and_resize and antialiased downsampling are refused.

The two resized axes are placed in the middle of the stored tensor: NCHW data stored NHWC (as a
convolution leaves it) is resized in place, with no transpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import Context, channels_last, identity
from ..registry import Unsupported, converter

_RULES = ((False, False), (True, False), (False, True))  # (alignCorners, halfPixelCenters)


@dataclass(frozen=True)
class Plan:
    code: str  # RESIZE_NEAREST_NEIGHBOR | RESIZE_BILINEAR | GATHER
    perm: tuple[int, ...] | None  # the layout to resize in (the resized axes at stored 1, 2); None: as stored
    align_corners: bool = False
    half_pixel: bool = False
    gathers: tuple[tuple[int, np.ndarray], ...] = ()  # GATHER: (ONNX axis, source index per output pixel)


# ---- what ONNX asks for ----------------------------------------------------------------------
def _onnx_coords(x: np.ndarray, n_in: int, n_out: int, scale: Any, mode: str) -> np.ndarray:
    """The source coordinate of output pixels ``x`` (``x`` and ``scale`` of the dtype to compute in)."""
    half = x.dtype.type(0.5)
    if mode in ("half_pixel", "pytorch_half_pixel"):
        c = (x + half) / scale - half
        return c if mode == "half_pixel" or n_out > 1 else np.zeros_like(x)
    if mode == "half_pixel_symmetric":
        adjustment = x.dtype.type(n_out) / (scale * x.dtype.type(n_in))
        offset = x.dtype.type(n_in) / 2 * (1 - adjustment)
        return offset + (x + half) / scale - half
    if mode == "align_corners":  # onnx's reference divides by the unrounded scale * n_in, onnxruntime by n_out
        length = scale * x.dtype.type(n_in) if x.dtype == np.float64 else x.dtype.type(n_out)
        return np.zeros_like(x) if length == 1 else x * x.dtype.type(n_in - 1) / (length - 1)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    raise Unsupported(f"coordinate_transformation_mode={mode!r}")


def _onnx_nearest(c: np.ndarray, rounding: str, downsample: bool) -> np.ndarray:
    if rounding == "simple":  # opset < 11 and Upsample (onnxruntime's rule for them)
        rounding = "ceil" if downsample else "floor"
    if rounding == "round_prefer_floor":
        return np.where(c == np.floor(c) + 0.5, np.floor(c), np.floor(c + 0.5))
    if rounding == "round_prefer_ceil":
        return np.floor(c + 0.5)
    if rounding in ("floor", "ceil"):
        return getattr(np, rounding)(c)
    raise Unsupported(f"nearest_mode={rounding!r}")


# ---- what TFLite does ---------------------------------------------------------------------------
def _tflite_scale(n_in: int, n_out: int, align: bool) -> np.float32:
    if align and n_out > 1:
        return np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_in) / np.float32(n_out)


def _tflite_nearest(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """reference_ops::GetNearestNeighbor, in float32."""
    x = np.arange(n_out, dtype=np.float32)
    v = (x + np.float32(0.5 if half else 0.0)) * _tflite_scale(n_in, n_out, align)
    idx = np.minimum(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) if align else np.floor(v), n_in - 1)
    return np.maximum(idx, 0) if half else idx


def _tflite_linear(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """The (clamped) source coordinate of ResizeBilinear's output pixels, in float32."""
    x = np.arange(n_out, dtype=np.float32)
    s = _tflite_scale(n_in, n_out, align)
    v = (x + np.float32(0.5)) * s - np.float32(0.5) if half else x * s
    return np.clip(v, 0, n_in - 1)


def _onnx_source(n_in: int, n_out: int, scale: float, attrs: dict[str, Any], dtype: Any) -> np.ndarray:
    """The source pixel (nearest) or clamped source coordinate (linear) of each output pixel, per ONNX."""
    x = np.arange(n_out, dtype=dtype)
    with np.errstate(all="ignore"):
        c = _onnx_coords(x, n_in, n_out, dtype(scale), attrs["ctm"])
        if attrs["mode"] == "nearest":
            c = _onnx_nearest(c, attrs["nearest_mode"], scale < 1)
    return np.clip(c, 0, n_in - 1)


def _matches(n_in: int, n_out: int, scale: float, attrs: dict[str, Any], align: bool, half: bool) -> bool:
    """Does TFLite's rule (align, half) read what ONNX reads on this axis, in both precisions?"""
    nearest = attrs["mode"] == "nearest"
    have = (_tflite_nearest if nearest else _tflite_linear)(n_in, n_out, align, half)
    for dtype in (np.float32, np.float64):
        want = _onnx_source(n_in, n_out, scale, attrs, dtype)
        if not (np.array_equal(want, have) if nearest else np.allclose(want, have, rtol=0, atol=1e-4)):
            return False
    return True


# ---- the node -------------------------------------------------------------------------------------
def _attrs(node: Any, ctx: Context) -> dict[str, Any]:
    old = node.op_type == "Upsample" or ctx.opset < 11
    mode = ctx.attr(node, "mode", "nearest")
    return {"mode": "linear" if mode == "bilinear" else mode,
            "ctm": ctx.attr(node, "coordinate_transformation_mode", "asymmetric" if old else "half_pixel"),
            "nearest_mode": "simple" if old else ctx.attr(node, "nearest_mode", "round_prefer_floor")}


def _scales(node: Any, ctx: Context) -> list[float]:
    """The per-axis scale ONNX uses in its coordinate transformation."""
    in_shape = ctx.shape(node.input[0])
    r = len(in_shape)
    if node.op_type == "Upsample" and ctx.opset < 9:
        return [float(s) for s in ctx.attr(node, "scales")]
    idx_scales, idx_sizes = (1, None) if node.op_type == "Upsample" or ctx.opset < 11 else (2, 3)
    axes = [int(a) % r for a in ctx.attr(node, "axes", list(range(r)))]
    scales, sizes = _const_input(ctx, node, idx_scales), _const_input(ctx, node, idx_sizes)
    result = [1.0] * r
    if scales is not None and scales.size:
        for a, s in zip(axes, scales.tolist()):
            result[a] = float(s)
        return result
    if sizes is None:
        raise Unsupported("neither scales nor sizes given", "unsupported-attribute")
    ratios = [sizes[i] / in_shape[a] for i, a in enumerate(axes)]
    policy = ctx.attr(node, "keep_aspect_ratio_policy", "stretch")
    common = min(ratios) if policy == "not_larger" else max(ratios)
    for i, a in enumerate(axes):  # not_larger/not_smaller: one scale, each size rounded from it
        result[a] = ratios[i] if policy == "stretch" else common
    return result


def _const_input(ctx: Context, node: Any, index: int | None) -> np.ndarray | None:
    if index is None or len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None:
        raise Unsupported("scales or sizes computed at run time (TFLite needs them constant)", "dynamic-shape")
    return value


def plan(node: Any, ctx: Context) -> Plan:
    """How to run ``node`` in TFLite, or Unsupported with the reason."""
    x, y = node.input[0], node.output[0]
    in_shape, out_shape = ctx.shape(x), ctx.shape(y)
    attrs = _attrs(node, ctx)
    if attrs["mode"] not in ("nearest", "linear"):
        raise Unsupported(f"mode={attrs['mode']!r} (TFLite has nearest and bilinear)")
    if attrs["ctm"] == "tf_crop_and_resize":
        raise Unsupported("coordinate_transformation_mode='tf_crop_and_resize'")
    if ctx.dtype(x) != np.float32:
        raise Unsupported(f"Resize of {ctx.dtype(x)} tensors")
    if 0 in in_shape or 0 in out_shape:
        raise Unsupported("an empty tensor (a zero dimension)")
    scales = _scales(node, ctx)
    if ctx.attr(node, "antialias", 0) and attrs["mode"] == "linear" and any(s < 1 for s in scales):
        raise Unsupported("antialiased downsampling")
    moving = [a for a in range(len(in_shape)) if in_shape[a] != out_shape[a] or scales[a] != 1.0]
    if len(in_shape) == 4 and len(moving) <= 2:
        spatial = sorted(moving + [a for a in (2, 3, 1, 0) if a not in moving][: 2 - len(moving)])
        perm = channels_last(4) if spatial == [2, 3] else _perm_with(spatial)
        for align, half in _RULES:
            if all(_matches(in_shape[a], out_shape[a], scales[a], attrs, align, half) for a in perm[1:3]):
                code = "RESIZE_NEAREST_NEIGHBOR" if attrs["mode"] == "nearest" else "RESIZE_BILINEAR"
                return Plan(code, perm, align, half)
    what = attrs["ctm"] + (f" + {attrs['nearest_mode']}" if attrs["mode"] == "nearest" else "")
    at = ", ".join(f"{scales[a]:.4g}" for a in moving)
    if attrs["mode"] == "nearest":  # any rank, any rule: a GATHER of the source indices per resized axis
        gathers = []
        for a in moving:
            idx = [_onnx_source(in_shape[a], out_shape[a], scales[a], attrs, t) for t in (np.float32, np.float64)]
            if not np.array_equal(idx[0], idx[1]):
                raise Unsupported(f"nearest resize with {what} at scale {at}: onnxruntime and the ONNX reference "
                                  "pick different source pixels")
            gathers.append((a, idx[0].astype(np.int32)))
        return Plan("GATHER", None, gathers=tuple(gathers))
    if len(in_shape) != 4 or len(moving) > 2:
        raise Unsupported(f"linear resize of {len(moving)} axes of a {len(in_shape)}-D tensor "
                          "(TFLite resizes two axes of a 4-D one)")
    raise Unsupported(f"linear resize with {what} at scale {at} samples other source coordinates than any "
                      "TFLite rule (align_corners, half_pixel_centers or neither)")


def _perm_with(spatial: list[int]) -> tuple[int, ...]:
    rest = [a for a in range(4) if a not in spatial]
    return (rest[0], spatial[0], spatial[1], rest[1])


def _check_resize(node: Any, ctx: Context) -> str | None:
    plan(node, ctx)
    return None


@converter("Resize", "Upsample", tflite=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "GATHER"),
           check=_check_resize,
           notes="nearest and (bi)linear; RESIZE_* (in place on NHWC-stored data) where a TFLite rule reads the same "
                 "source pixels for the node's sizes (checked per node, e.g. half_pixel + round_prefer_floor for "
                 "integer upsampling, asymmetric + floor, align_corners), else nearest as a GATHER per axis (any "
                 "mode, any rank); scales or sizes, axes, keep_aspect_ratio_policy; cubic, tf_crop_and_resize, "
                 "antialiased downsampling and other linear cases are refused")
def convert_resize(node: Any, ctx: Context) -> None:
    p = plan(node, ctx)
    x, y = node.input[0], node.output[0]
    out_shape = ctx.shape(y)
    if p.perm is None:
        _gather(ctx, x, y, p.gathers)
        return
    size = np.array([out_shape[p.perm[1]], out_shape[p.perm[2]]], np.int32)
    options = "ResizeNearestNeighborOptions" if p.code == "RESIZE_NEAREST_NEIGHBOR" else "ResizeBilinearOptions"
    ctx.op(p.code, [ctx.get(x, p.perm), ctx.constant(size)], [ctx.output(y, p.perm)], options,
           alignCorners=p.align_corners, halfPixelCenters=p.half_pixel)


def _gather(ctx: Context, x: str, y: str, gathers: tuple[tuple[int, np.ndarray], ...]) -> None:
    """Nearest resize as one GATHER per resized axis, in the layout ``x`` is stored in."""
    perm = identity(ctx.rank(x)) if ctx.is_const(x) else ctx.layout(x)
    src, stored = ctx.get(x, perm), [ctx.shape(x)[a] for a in perm]
    for k, (axis, idx) in enumerate(gathers):
        i = perm.index(axis)
        stored[i] = len(idx)
        out = ctx.output(y, perm) if k == len(gathers) - 1 else ctx.tmp(stored, np.float32, f"{y}/axis{axis}")
        ctx.op("GATHER", [src, ctx.constant(idx)], [out], "GatherOptions", axis=i, batchDims=0)
        src = out
