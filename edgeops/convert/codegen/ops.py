"""One emitter per TFLite operator: it checks the op is one the kernels compute as TFLite Micro does,
bakes its parameters (computed as TFLite's ``Prepare`` computes them) into constants, and returns the
C statement that calls the kernel. ``REGISTRY`` maps the op name to its emitter; an emitter raises
:class:`Unsupported` with the reason when the op has a form the kernels do not take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import fixedpoint as fx
from .model import Graph, Operator, Tensor

SAME, VALID = 0, 1
ALIASES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # no code: the output shares its input's bytes


# Blob mode: the values an image's int32 arrays may hold, checked on the device before the blob is used, so
# that no blob can make a kernel shift by 32 or more (shifts; a SOFTMAX whose exp table sums to zero or less)
# or overflow its int32 accumulator (biases, "c"). Each entry: (lo, hi) for every element, and optionally
# (lo, hi) for the first one (exp(0) must count: its table entry is at least 2^12).
BLOB_RANGES: dict[str, tuple[tuple[int, int], tuple[int, int] | None]] = {
    "shift": ((-31, 31), None),
    "c": ((-(1 << 30), 1 << 30), None),
    "exp": ((0, (1 << 31) - 1), (1 << 12, (1 << 31) - 1)),
}


class Unsupported(Exception):
    """The op, in the form the model has it, has no kernel here; the message says why."""


class Context:
    """What emitters share: constant declarations and the C expression of each tensor's buffer."""

    def __init__(self, graph: Graph, pointers: dict[int, str], blob: bool = False):
        self.graph = graph
        self.pointers = pointers
        self.decls: list[str] = []
        self._consts: dict[int, str] = {}
        self._n = 0
        # blob mode (CODEGEN.md, "Constants in a blob"): array data goes into one little-endian blob the
        # function reads through a pointer; arrays and structs become locals of the function
        self.blob_mode = blob
        self.blob = bytearray()
        self.locals: list[str] = []  # blob mode: declarations inside the function, in order
        self.layout: list[str] = []  # blob mode: what the graph hash covers instead of the array data
        self.arrays: list[tuple[str, str, int, int]] = []  # blob mode: (name, ctype, offset, count)
        self.ranges: list[tuple[int, int, int, int]] = []  # blob mode: int32 arrays checked (offset, count, lo, hi)

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def array(self, ctype: str, values: Any, hint: str, data: bool = True) -> str:
        """A constant array; ``data=False`` marks one that is part of the graph's shape (never in a blob)."""
        vals = [int(v) for v in np.asarray(values).ravel()] if ctype != "float" else list(values)
        name = self.name(hint)
        if self.blob_mode and data:
            np_type = {"int8_t": "<i1", "int32_t": "<i4", "float": "<f4"}[ctype]
            off = len(self.blob)
            self.blob += np.asarray(vals, np_type).tobytes()
            self.blob += bytes(-len(self.blob) % 4)  # every array starts 4-byte aligned
            self.locals.append(f"const {ctype} *{name} = (const {ctype} *)(const void *)(blob + {off});")
            self.layout.append(f"{ctype} {name}[{len(vals)}] @ {off}")
            self.arrays.append((name, ctype, off, len(vals)))
            if hint in BLOB_RANGES and ctype == "int32_t":
                every, first = BLOB_RANGES[hint]
                self.ranges.append((off, len(vals), *every))
                if first is not None:
                    self.ranges.append((off, 1, *first))
            return name
        body = ",\n".join("  " + ", ".join(_literal(v, ctype) for v in vals[i:i + 16]) for i in range(0, len(vals), 16))
        self.decls.append(f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n{body or '  0'}\n}};")
        return name

    def struct(self, ctype: str, fields: list[Any], hint: str = "p") -> str:
        name = self.name(hint)
        init = f"{ctype} {name} = {{{', '.join(_field(f) for f in fields)}}};"
        if self.blob_mode:  # it may point into the blob: a local, initialised at each call (C99)
            self.locals.append("const " + init)
            self.layout.append(init)
        else:
            self.decls.append("static const " + init)
        return name

    def ptr(self, index: int) -> str:
        """The C expression of tensor ``index``'s data (a constant is declared on first use)."""
        t = self.graph.tensors[index]
        if t.data is not None:
            if index not in self._consts:
                ctype = {"int8": "int8_t", "int32": "int32_t"}.get(t.dtype)
                if ctype is None:
                    raise Unsupported(f"constant {t.name!r} is {t.dtype}")
                self._consts[index] = self.array(ctype, t.data, "c")
            return self._consts[index]
        return self.pointers[index]


def _literal(v: Any, ctype: str) -> str:
    if ctype == "int32_t" and v == fx.INT32_MIN:
        return "INT32_MIN"
    return str(v)


def _field(f: Any) -> str:
    if isinstance(f, float):
        return float_literal(f)
    if isinstance(f, (list, tuple)):
        return "{" + ", ".join(_field(x) for x in f) + "}"
    return str(f)


def float_literal(f: float) -> str:
    """An exact C float literal of the float32 value ``f`` (hexadecimal, C99)."""
    v = float(np.float32(f))
    return "0.0f" if v == 0 else f"{v.hex()}f"


Emitter = Callable[[Graph, Operator, Context], str]
REGISTRY: dict[str, Emitter] = {}


def register(*codes: str) -> Callable[[Emitter], Emitter]:
    def wrap(fn: Emitter) -> Emitter:
        for code in codes:
            REGISTRY[code] = fn
        return fn
    return wrap


def _int8(g: Graph, *indices: int) -> list[Tensor]:
    out = []
    for i in indices:
        t = g.tensors[i]
        if t.dtype != "int8":
            raise Unsupported(f"tensor {t.name!r} is {t.dtype}; the kernels take int8 (quantize the model to int8)")
        if len(t.scale) > 1:
            raise Unsupported(f"tensor {t.name!r} is quantized per channel where the kernel takes one scale")
        if not len(t.scale):
            raise Unsupported(f"tensor {t.name!r} has no quantization parameters")
        out.append(t)
    return out


def _act(op: Operator, out: Tensor) -> tuple[int, int]:
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (0, 1, 2, 3):
        raise Unsupported(f"fused activation {act} (only NONE, RELU, RELU_N1_TO_1, RELU6)")
    s, z = out.q
    return fx.activation_range(act, s, z)


def _padding(padding: int, size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """(padding before, output size), as TFLite's ComputePaddingHeightWidth."""
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride if padding == SAME else (size + stride - eff) // stride
    return max((out - 1) * stride + eff - size, 0) // 2, out


def _channel_multipliers(inp: Tensor, filt: Tensor, out: Tensor, channels: int, ctx: Context) -> tuple[str, str]:
    if len(filt.zero_point) and np.any(filt.zero_point != 0):
        raise Unsupported(f"filter {filt.name!r} has a nonzero zero point (int8 weights are symmetric)")
    scales = filt.scale if len(filt.scale) > 1 else np.repeat(filt.scale, channels)
    if len(scales) != channels:
        raise Unsupported(f"filter {filt.name!r} has {len(filt.scale)} scales for {channels} output channels")
    pairs = [fx.quantize_multiplier(float(inp.scale[0]) * float(s) / float(out.scale[0])) for s in scales]
    return ctx.array("int32_t", [m for m, _ in pairs], "mult"), ctx.array("int32_t", [s for _, s in pairs], "shift")


def _bias(op: Operator, g: Graph, ctx: Context) -> str:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return "0"
    b = g.tensors[op.inputs[2]]
    if b.dtype != "int32" or b.data is None:
        raise Unsupported(f"bias {b.name!r} is {'not constant' if b.data is None else b.dtype}; int32 expected")
    return ctx.ptr(op.inputs[2])


def _filter(g: Graph, op: Operator) -> Tensor:
    f = g.tensors[op.inputs[1]]
    if f.dtype != "int8" or f.data is None:
        raise Unsupported(f"filter {f.name!r} must be a constant int8 tensor (it is {f.dtype}"
                          f"{', computed at run time' if f.data is None else ''})")
    return f


@register("CONV_2D", "DEPTHWISE_CONV_2D")
def conv(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    f = _filter(g, op)
    o = op.options
    if len(inp.shape) != 4 or len(f.shape) != 4:
        raise Unsupported("input and filter must be 4-D (NHWC)")
    n, h, w, c = inp.shape
    _, oh, ow, oc = out.shape
    kh, kw = f.shape[1], f.shape[2]
    sh, sw = int(o.strideH), int(o.strideW)
    dh, dw = int(o.dilationHFactor or 1), int(o.dilationWFactor or 1)
    pad_h, out_h = _padding(int(o.padding), h, kh, sh, dh)
    pad_w, out_w = _padding(int(o.padding), w, kw, sw, dw)
    if (out_h, out_w) != (oh, ow):
        raise Unsupported(f"output shape {list(out.shape)} does not follow from the input, filter and padding")
    depthwise = op.code == "DEPTHWISE_CONV_2D"
    if depthwise and (f.shape[0] != 1 or oc % c):
        raise Unsupported(f"depthwise filter {list(f.shape)} for {c} input channels")
    if not depthwise and (c % f.shape[3] or oc % (c // f.shape[3])):
        raise Unsupported(f"filter {list(f.shape)} does not divide {c} input channels into groups")
    act_min, act_max = _act(op, out)
    mult, shift = _channel_multipliers(inp, f, out, oc, ctx)
    bias = _bias(op, g, ctx)
    p = ctx.struct("eo_conv_params", [n, h, w, c, oh, ow, oc, kh, kw, f.shape[3], oc // c if depthwise else 1,
                                      sh, sw, dh, dw, pad_h, pad_w, -inp.q[1], out.q[1], act_min, act_max, mult, shift])
    fn = "eo_depthwise_conv_s8" if depthwise else "eo_conv_s8"
    return f"{fn}(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {bias}, {ctx.ptr(op.outputs[0])});"


@register("FULLY_CONNECTED")
def fully_connected(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    f = _filter(g, op)
    o = op.options
    if o is not None and int(getattr(o, "weightsFormat", 0) or 0) != 0:
        raise Unsupported("shuffled weights format")
    if len(f.shape) != 2 or inp.size % f.shape[1]:
        raise Unsupported(f"filter {list(f.shape)} does not fit input {list(inp.shape)}")
    units, depth = f.shape
    if out.size != inp.size // depth * units:
        raise Unsupported(f"output {list(out.shape)} does not fit input {list(inp.shape)} and filter {list(f.shape)}")
    act_min, act_max = _act(op, out)
    per_channel = len(f.scale) > 1
    if per_channel:
        mult, shift = _channel_multipliers(inp, f, out, units, ctx)
    else:
        m, s = fx.quantize_multiplier(float(inp.scale[0]) * float(f.scale[0]) / float(out.scale[0]))
        mult, shift = ctx.array("int32_t", [m], "mult"), ctx.array("int32_t", [s], "shift")
    fz = int(f.zero_point[0]) if len(f.zero_point) else 0
    p = ctx.struct("eo_fc_params", [inp.size // depth, depth, units, -inp.q[1], -fz, out.q[1], act_min, act_max,
                                    int(per_channel), mult, shift])
    return (f"eo_fully_connected_s8(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {_bias(op, g, ctx)}, "
            f"{ctx.ptr(op.outputs[0])});")


@register("AVERAGE_POOL_2D", "MAX_POOL_2D")
def pool(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    if inp.q != out.q:
        raise Unsupported("input and output are quantized differently (TFLite Micro's pools do not rescale)")
    o = op.options
    n, h, w, c = inp.shape
    kh, kw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    pad_h, oh = _padding(int(o.padding), h, kh, sh, 1)
    pad_w, ow = _padding(int(o.padding), w, kw, sw, 1)
    if (n, oh, ow, c) != tuple(out.shape):
        raise Unsupported(f"output shape {list(out.shape)} does not follow from the input and the window")
    act_min, act_max = _act(op, out)
    p = ctx.struct("eo_pool_params", [n, h, w, c, oh, ow, kh, kw, sh, sw, pad_h, pad_w, act_min, act_max])
    fn = "eo_avg_pool_s8" if op.code == "AVERAGE_POOL_2D" else "eo_max_pool_s8"
    return f"{fn}(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"


def _broadcast(a: Tensor, b: Tensor, out: Tensor) -> list[Any]:
    shape = list(out.shape) or [1]
    if len(shape) > 6:
        raise Unsupported("more than 6 dimensions")
    try:
        if tuple(np.broadcast_shapes(a.shape, b.shape)) != tuple(out.shape):
            raise Unsupported(f"output {list(out.shape)} is not the broadcast of {list(a.shape)} and {list(b.shape)}")
    except ValueError as exc:
        raise Unsupported(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from exc

    def strides(t: Tensor) -> list[int]:
        dims = [1] * (len(shape) - len(t.shape)) + list(t.shape)
        st, acc = [0] * len(shape), 1
        for d in range(len(shape) - 1, -1, -1):
            st[d] = acc if dims[d] == shape[d] and dims[d] != 1 else 0
            acc *= dims[d]
        return st

    pad = [0] * (6 - len(shape))
    return [len(shape), shape + [1] * (6 - len(shape)), strides(a) + pad, strides(b) + pad]


@register("ADD")
def add(g: Graph, op: Operator, ctx: Context) -> str:
    a, b, out = _int8(g, op.inputs[0], op.inputs[1], op.outputs[0])
    act_min, act_max = _act(op, out)
    left_shift = 20
    twice_max = 2 * float(max(np.float32(a.scale[0]), np.float32(b.scale[0])))
    m1 = fx.quantize_multiplier(float(a.scale[0]) / twice_max)
    m2 = fx.quantize_multiplier(float(b.scale[0]) / twice_max)
    mo = fx.quantize_multiplier(twice_max / ((1 << left_shift) * float(out.scale[0])))
    p = ctx.struct("eo_add_params", [-a.q[1], -b.q[1], out.q[1], left_shift, *m1, *m2, *mo, act_min, act_max])
    br = ctx.struct("eo_broadcast", _broadcast(a, b, out), "bc")
    return f"eo_add_s8(&{p}, &{br}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {ctx.ptr(op.outputs[0])});"


@register("MUL")
def mul(g: Graph, op: Operator, ctx: Context) -> str:
    a, b, out = _int8(g, op.inputs[0], op.inputs[1], op.outputs[0])
    act_min, act_max = _act(op, out)
    m = fx.quantize_multiplier(float(a.scale[0]) * float(b.scale[0]) / float(out.scale[0]))
    p = ctx.struct("eo_mul_params", [-a.q[1], -b.q[1], out.q[1], *m, act_min, act_max])
    br = ctx.struct("eo_broadcast", _broadcast(a, b, out), "bc")
    return f"eo_mul_s8(&{p}, &{br}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {ctx.ptr(op.outputs[0])});"


@register("MEAN")
def mean(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    axes_t = g.tensors[op.inputs[1]]
    if axes_t.data is None:
        raise Unsupported("the axes are computed at run time")
    rank = len(inp.shape)
    axes = sorted({int(a) % rank for a in np.asarray(axes_t.data).ravel()})
    if rank > 6:
        raise Unsupported("more than 6 dimensions")
    strides = [int(np.prod(inp.shape[d + 1:], dtype=np.int64)) for d in range(rank)]
    kept = [d for d in range(rank) if d not in axes]
    count = int(np.prod([inp.shape[d] for d in axes], dtype=np.int64))
    if out.size != inp.size // max(count, 1):
        raise Unsupported(f"output {list(out.shape)} does not fit the reduction")
    (si, zi), (so, zo) = inp.q, out.q
    multiplier, shift = fx.mean_multiplier(si, so, count)
    def six(v: list[int]) -> list[int]:
        return v + [0] * (6 - len(v))

    p = ctx.struct("eo_mean_params", [len(kept), six([inp.shape[d] for d in kept]), six([strides[d] for d in kept]),
                                      len(axes), six([inp.shape[d] for d in axes]), six([strides[d] for d in axes]),
                                      count, zi, zo, multiplier, shift])
    return f"eo_mean_s8(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"


@register("PAD", "PADV2")
def pad(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    if inp.q != out.q:
        raise Unsupported("input and output are quantized differently")
    pads_t = g.tensors[op.inputs[1]]
    if pads_t.data is None:
        raise Unsupported("the paddings are computed at run time")
    pads = np.asarray(pads_t.data).reshape(-1, 2)
    if len(pads) != len(inp.shape) or len(pads) > 6 or np.any(pads < 0):
        raise Unsupported(f"paddings {pads.tolist()} for a {len(inp.shape)}-D input")
    value = out.q[1]
    if op.code == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        v = g.tensors[op.inputs[2]]
        if v.data is None or v.dtype != "int8":
            raise Unsupported("the pad value must be a constant int8")
        value = int(np.asarray(v.data).ravel()[0])
    six = [0] * (6 - len(pads))
    p = ctx.struct("eo_pad_params", [len(pads), list(inp.shape) + six, [int(x) for x in pads[:, 0]] + six,
                                     [int(x) for x in pads[:, 1]] + six, value])
    return f"eo_pad_s8(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"


@register("TRANSPOSE")
def transpose(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    if inp.q != out.q:
        raise Unsupported("input and output are quantized differently")
    perm_t = g.tensors[op.inputs[1]]
    if perm_t.data is None:
        raise Unsupported("the permutation is computed at run time")
    rank = len(inp.shape)
    perm = [int(a) % max(rank, 1) for a in np.asarray(perm_t.data).ravel()]
    if sorted(perm) != list(range(rank)) or rank > 6 or tuple(out.shape) != tuple(inp.shape[a] for a in perm):
        raise Unsupported(f"permutation {perm} of a {rank}-D input")
    strides = [int(np.prod(inp.shape[d + 1:], dtype=np.int64)) for d in range(rank)]
    six = [0] * (6 - rank)
    p = ctx.struct("eo_transpose_params", [rank, [inp.shape[a] for a in perm] + six, [strides[a] for a in perm] + six])
    return f"eo_transpose_s8(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"


@register("CONCATENATION")
def concatenation(g: Graph, op: Operator, ctx: Context) -> str:
    out = _int8(g, op.outputs[0])[0]
    ins = _int8(g, *op.inputs)
    if any(t.q != out.q for t in ins):
        raise Unsupported("inputs quantized differently from the output (TFLite Micro copies the bytes)")
    if int(getattr(op.options, "fusedActivationFunction", 0) or 0):
        raise Unsupported("a fused activation on CONCATENATION")
    axis = int(op.options.axis) % max(len(out.shape), 1)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    blocks = [int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins]
    ptrs = ctx.name("ins")
    sizes = ctx.array("int32_t", blocks, "blocks", data=False)
    return (f"{{ const int8_t *const {ptrs}[{len(ins)}] = {{{', '.join(ctx.ptr(i) for i in op.inputs)}}}; "
            f"eo_concat_s8({len(ins)}, {ptrs}, {sizes}, {outer}, {ctx.ptr(op.outputs[0])}); }}")


@register("SOFTMAX")
def softmax(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    if out.q[1] != -128:
        raise Unsupported(f"output zero point {out.q[1]} (TFLite Micro's int8 softmax takes -128)")
    depth = inp.shape[-1] if inp.shape else 1
    table, diff_min = fx.softmax_params(float(np.float32(op.options.beta)), inp.q[0])
    name = ctx.array("int32_t", table, "exp")
    p = ctx.struct("eo_softmax_params", [inp.size // depth, depth, diff_min, name])
    return f"eo_softmax_s8(&{p}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"


def _relu_table(inp: Tensor, out: Tensor, lo: float, hi: float | None) -> np.ndarray:
    (si, zi), (so, zo) = inp.q, out.q
    m, s = fx.quantize_multiplier(float(si) / float(so))
    qmin = max(-128, zo + int(fx.round_half_away(float(np.float32(lo) / np.float32(so)))))
    qmax = 127 if hi is None else min(127, zo + int(fx.round_half_away(float(np.float32(hi) / np.float32(so)))))
    return np.array([max(qmin, min(qmax, zo + fx.mbqm(v - zi, m, s))) for v in range(-128, 128)], np.int8)


@register("LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE", "RELU", "RELU6")
def lookup(g: Graph, op: Operator, ctx: Context) -> str:
    inp, out = _int8(g, op.inputs[0], op.outputs[0])
    (si, zi), (so, zo) = inp.q, out.q
    if op.code == "LOGISTIC":
        if (zo, so) != (-128, 1.0 / 256):
            raise Unsupported(f"output quantization ({so}, {zo}); TFLite Micro takes scale 1/256, zero point -128")
        table = fx.logistic_table(si, zi)
    elif op.code == "TANH":
        if (zo, so) != (0, 1.0 / 128):
            raise Unsupported(f"output quantization ({so}, {zo}); TFLite Micro takes scale 1/128, zero point 0")
        table = fx.tanh_table(si, zi)
    elif op.code == "HARD_SWISH":
        table = fx.hard_swish_table(si, zi, so, zo)
    elif op.code == "QUANTIZE":
        table = fx.requantize_table(si, zi, so, zo)
    elif op.code == "RELU":
        table = _relu_table(inp, out, 0.0, None)
    else:  # TFLite Micro's RELU6 clamps in the input's quantization and does not rescale
        six = min(max(int(fx.round_half_away(float(np.float32(6.0) / np.float32(si)))) + zi, -128), 127)
        table = np.clip(np.arange(-128, 128), zi, six).astype(np.int8)
    name = ctx.array("int8_t", table, "lut")
    return f"eo_lut_s8({name}, {inp.size}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});"
