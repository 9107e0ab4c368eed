"""LSTM and GRU -> an unrolled graph of FULLY_CONNECTED, ADD, MUL, SUB, LOGISTIC and TANH.

TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM keeps its states in *variable* tensors: they start at zero,
carry over from one ``invoke`` to the next and cannot be graph inputs, so an ONNX LSTM with an
initial state, or one run twice, would not give the ONNX answer; and TFLite has no GRU kernel at
all. Every sequence length here is static, so both become one step per time step, from builtins
that LiteRT and tflite-runtime 2.14 run (with and without XNNPACK):

* the input projection of all time steps is one FULLY_CONNECTED over ``[T * B, I]`` with the
  biases that only add (LSTM: ``Wb + Rb``; GRU: ``Wb``, and ``Rb`` of the update and reset gates,
  and of the hidden gate unless ``linear_before_reset``), cut into steps with one UNPACK;
* each step: a FULLY_CONNECTED of the previous hidden state by ``R``, an ADD, a SPLIT into the
  gates (ONNX order: LSTM i, o, f, c; GRU z, r, h), LOGISTIC/TANH (peepholes a MUL and an ADD
  before them), and the state update with MUL, ADD and SUB. Where the initial state is absent or
  zero, the first step skips the terms it zeroes;
* ``reverse`` runs the steps from the last to the first; ``bidirectional`` is both, and Y is PACKed
  in ONNX's order (``[T, D, B, H]``, or ``[B, T, D, H]`` for ``layout=1``).

Refused, with the reason: activations other than the defaults (LSTM Sigmoid/Tanh/Tanh, GRU
Sigmoid/Tanh), ``clip``, ``input_forget``, ``sequence_lens`` that are not all the full length,
weights or peepholes computed at run time, and anything but float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context
from ..registry import converter

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3}


def _inputs(node: Any) -> list[str]:
    return list(node.input) + [""] * (8 - len(node.input))


def _check(node: Any, ctx: Context) -> str | None:
    x, w, r, b, seq_lens, h0 = _inputs(node)[:6]
    if ctx.dtype(x) != np.float32:
        return f"{ctx.dtype(x)} {node.op_type} (only float32 is converted)"
    if not all(ctx.is_const(n) for n in (w, r) + ((b,) if b else ())):
        return "weights computed at run time (W, R and B must be constants)"
    directions = 2 if ctx.attr(node, "direction", "forward") == "bidirectional" else 1
    acts = ctx.attr(node, "activations")
    if acts is not None and [a.decode() if isinstance(a, bytes) else a for a in acts] != \
            _DEFAULT_ACTS[node.op_type] * directions:
        return f"activations {acts} (only the defaults, {'/'.join(_DEFAULT_ACTS[node.op_type])}, are converted)"
    if ctx.attr(node, "clip") is not None:
        return "clip (cell clipping is not converted)"
    if ctx.attr(node, "input_forget", 0):
        return "input_forget=1 (coupled input and forget gates are not converted)"
    if node.op_type == "LSTM" and _inputs(node)[7] and not ctx.is_const(_inputs(node)[7]):
        return "peephole weights P computed at run time"
    if ctx.rank(x) != 3:
        return f"an input of rank {ctx.rank(x)} (LSTM/GRU take [T, B, I] or [B, T, I])"
    if seq_lens:
        lens = ctx.const(seq_lens)
        steps = ctx.shape(x)[1 if ctx.attr(node, "layout", 0) else 0]
        if lens is None or np.any(lens != steps):
            return "sequence_lens shorter than the sequence (give sequences of full length)"
    return None


class _Step:
    """Emit the small ops of one time step; tensors are [B, n] float32."""

    def __init__(self, ctx: Context, name: str):
        self.ctx, self.name = ctx, name

    def new(self, shape: tuple[int, ...], hint: str) -> int:
        return self.ctx.tmp(shape, np.float32, f"{self.name}/{hint}")

    def binary(self, code: str, a: int, b: int, hint: str) -> int:
        shape = np.broadcast_shapes(self.ctx.w.tensors[a].shape, self.ctx.w.tensors[b].shape)
        out = self.new(tuple(shape), hint)
        self.ctx.op(code, [a, b], [out], f"{code.title()}Options", fusedActivationFunction=0)
        return out

    def unary(self, code: str, a: int, hint: str) -> int:
        out = self.new(self.ctx.w.tensors[a].shape, hint)
        self.ctx.op(code, [a], [out])
        return out

    def fc(self, x: int, weights: np.ndarray, bias: np.ndarray | None, hint: str) -> int:
        """x [N, in] @ weights [out, in].T (+ bias)."""
        ctx = self.ctx
        out = self.new((ctx.w.tensors[x].shape[0], weights.shape[0]), hint)
        b = ctx.constant(bias.astype(np.float32), f"{self.name}/{hint}/bias") if bias is not None else -1
        ctx.op("FULLY_CONNECTED", [x, ctx.constant(weights.astype(np.float32), f"{self.name}/{hint}/weight"), b],
               [out], "FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False)
        return out

    def split(self, x: int, parts: int, hint: str) -> list[int]:
        n, width = self.ctx.w.tensors[x].shape
        outs = [self.new((n, width // parts), f"{hint}{k}") for k in range(parts)]
        self.ctx.op("SPLIT", [self.ctx.constant(np.array(1, np.int32)), x], outs, "SplitOptions", numSplits=parts)
        return outs

    def pieces(self, x: int, axis: int, hint: str) -> list[int]:
        """``x`` cut along ``axis`` into its slices (the axis dropped)."""
        shape = self.ctx.w.tensors[x].shape
        rest = tuple(d for i, d in enumerate(shape) if i != axis)
        if shape[axis] == 1:
            return [self.ctx.reshape(x, rest, hint=f"{self.name}/{hint}")]
        outs = [self.new(rest, f"{hint}{k}") for k in range(shape[axis])]
        self.ctx.op("UNPACK", [x], outs, "UnpackOptions", num=shape[axis], axis=axis)
        return outs

    def stack(self, parts: list[int], axis: int, out: int) -> int:
        """``parts`` stacked along a new ``axis`` into ``out``."""
        if len(parts) == 1:
            return self.ctx.reshape(parts[0], self.ctx.w.tensors[out].shape, out)
        self.ctx.op("PACK", parts, [out], "PackOptions", valuesCount=len(parts), axis=axis)
        return out


def _state(ctx: Context, name: str, directions: int, layout: int, step: _Step) -> list[int | None]:
    """An initial state [D, B, H] (layout 1: [B, D, H]) per direction; None where absent or zero."""
    if not name:
        return [None] * directions
    if ctx.is_const(name):
        a = ctx.const_array(name).astype(np.float32)
        a = np.moveaxis(a, 1, 0) if layout else a
        return [None if not np.any(a[d]) else ctx.constant(a[d], f"{name}/{d}") for d in range(directions)]
    return list(step.pieces(ctx.onnx_layout(name), layout, f"{name}/dir"))


def _projections(ctx: Context, x: str, weights: np.ndarray, bias: np.ndarray, layout: int,
                 step: _Step, d: int) -> list[int]:
    """X projected by ``weights`` [G*H, I] (+ ``bias``) for every time step: T tensors [B, G*H]."""
    shape = ctx.shape(x)
    flat = ctx.reshape(ctx.onnx_layout(x), (shape[0] * shape[1], shape[2]), hint=f"{x}/flat")
    proj = step.fc(flat, weights, bias, f"x{d}")
    seq = ctx.reshape(proj, (shape[0], shape[1], weights.shape[0]), hint=f"{step.name}/xproj{d}")
    return step.pieces(seq, 1 if layout else 0, f"x{d}/t")


def _lstm_direction(step: _Step, xs: list[int], r: np.ndarray, h: int | None, c: int | None,
                    order: list[int], peep: np.ndarray | None) -> tuple[dict[int, int], int, int]:
    """One direction's steps; returns (hidden state by time step, last hidden, last cell).
    ``peep``: the peephole weights [3H] (i, o, f) or None."""
    ctx, hs = step.ctx, {}
    hidden = r.shape[1]

    def peephole(pre: int, k: int, cell: int | None, hint: str) -> int:
        if peep is None or cell is None:
            return pre
        weight = ctx.constant(peep[k * hidden:(k + 1) * hidden])
        return step.binary("ADD", pre, step.binary("MUL", cell, weight, f"p{hint}"), f"{hint}+p")

    for t in order:
        gates = xs[t] if h is None else step.binary("ADD", xs[t], step.fc(h, r, None, f"rec{t}"), f"gates{t}")
        i, o, f, g = step.split(gates, 4, f"g{t}/")
        i = step.unary("LOGISTIC", peephole(i, 0, c, f"i{t}"), f"i{t}")
        g = step.unary("TANH", g, f"c~{t}")
        ig = step.binary("MUL", i, g, f"ig{t}")
        if c is None:  # a zero cell state: the forget gate multiplies nothing, so it is not computed
            c = ig
        else:
            f = step.unary("LOGISTIC", peephole(f, 2, c, f"f{t}"), f"f{t}")
            c = step.binary("ADD", step.binary("MUL", f, c, f"fc{t}"), ig, f"c{t}")
        o = step.unary("LOGISTIC", peephole(o, 1, c, f"o{t}"), f"o{t}")
        h = step.binary("MUL", o, step.unary("TANH", c, f"tanh_c{t}"), f"h{t}")
        hs[t] = h
    assert h is not None and c is not None  # a sequence has at least one step, and each sets both
    return hs, h, c


def _gru_direction(step: _Step, xs: list[int], r: np.ndarray, rb: np.ndarray, h: int | None,
                   order: list[int], linear_before_reset: bool, hidden: int) -> tuple[dict[int, int], int]:
    ctx, hs = step.ctx, {}
    for t in order:
        xz, xr, xh = step.split(xs[t], 3, f"x{t}/")
        if h is None:  # H = 0: the recurrent terms are the recurrent bias of the hidden gate at most
            z, rr = step.unary("LOGISTIC", xz, f"z{t}"), step.unary("LOGISTIC", xr, f"r{t}")
            pre = xh
            if linear_before_reset and np.any(rb[2 * hidden:]):
                pre = step.binary("ADD", xh, step.binary("MUL", rr, ctx.constant(rb[2 * hidden:]), f"rh{t}"), f"hp{t}")
            hn = step.unary("TANH", pre, f"h~{t}")
            h = step.binary("SUB", hn, step.binary("MUL", z, hn, f"zh{t}"), f"h{t}")
        else:
            if linear_before_reset:
                rz, rr_, rh = step.split(step.fc(h, r, _rec_bias(rb, hidden), f"rec{t}"), 3,
                                         f"rec{t}/")
                z = step.unary("LOGISTIC", step.binary("ADD", xz, rz, f"zs{t}"), f"z{t}")
                rr = step.unary("LOGISTIC", step.binary("ADD", xr, rr_, f"rs{t}"), f"r{t}")
                pre = step.binary("ADD", xh, step.binary("MUL", rr, rh, f"rh{t}"), f"hp{t}")
            else:
                rz, rr_ = step.split(step.fc(h, r[:2 * hidden], None, f"rec{t}"), 2, f"rec{t}/")
                z = step.unary("LOGISTIC", step.binary("ADD", xz, rz, f"zs{t}"), f"z{t}")
                rr = step.unary("LOGISTIC", step.binary("ADD", xr, rr_, f"rs{t}"), f"r{t}")
                reset = step.binary("MUL", rr, h, f"rH{t}")
                pre = step.binary("ADD", xh, step.fc(reset, r[2 * hidden:], None, f"rech{t}"), f"hp{t}")
            hn = step.unary("TANH", pre, f"h~{t}")
            # H = (1 - z) * h~ + z * H = h~ + z * (H - h~)
            h = step.binary("ADD", hn, step.binary("MUL", z, step.binary("SUB", h, hn, f"d{t}"), f"zd{t}"), f"h{t}")
        hs[t] = h
    assert h is not None  # a sequence has at least one step
    return hs, h


def _rec_bias(rb: np.ndarray, hidden: int) -> np.ndarray:
    """The recurrent FULLY_CONNECTED's bias with linear_before_reset: Rbh only (Rbz, Rbr are in the input's)."""
    out = np.zeros(3 * hidden, np.float32)
    out[2 * hidden:] = rb[2 * hidden:]
    return out


@converter("LSTM", "GRU", tflite=("FULLY_CONNECTED", "UNPACK", "SPLIT", "ADD", "MUL", "SUB", "LOGISTIC", "TANH",
                                   "PACK", "RESHAPE"), check=_check,
           notes="unrolled over the static sequence length; forward, reverse, bidirectional; layout 0 and 1; "
                 "initial states given or not; peepholes; GRU linear_before_reset 0 and 1; default activations "
                 "only, no clip, input_forget or short sequence_lens")
def convert_recurrent(node: Any, ctx: Context) -> None:
    kind = node.op_type
    x, w_name, r_name, b_name, _, h0_name = _inputs(node)[:6]
    c0_name = _inputs(node)[6] if kind == "LSTM" else ""
    layout = int(ctx.attr(node, "layout", 0))
    direction = ctx.attr(node, "direction", "forward")
    hidden = int(ctx.attr(node, "hidden_size"))
    w, r = ctx.const_array(w_name).astype(np.float32), ctx.const_array(r_name).astype(np.float32)
    dirs = w.shape[0]
    gates = _GATES[kind]
    b = ctx.const_array(b_name).astype(np.float32) if b_name else np.zeros((dirs, 2 * gates * hidden), np.float32)
    steps = ctx.shape(x)[1 if layout else 0]
    step = _Step(ctx, node.name or node.output[0])
    h0 = _state(ctx, h0_name, dirs, layout, step)
    c0 = _state(ctx, c0_name, dirs, layout, step) if kind == "LSTM" else [None] * dirs
    lbr = bool(ctx.attr(node, "linear_before_reset", 0))
    p_name = _inputs(node)[7] if kind == "LSTM" else ""
    peep = ctx.const_array(p_name).astype(np.float32) if p_name and np.any(ctx.const_array(p_name)) else None
    ys, last_h, last_c = [], [], []
    for d in range(dirs):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        order = list(range(steps))[::-1] if reverse else list(range(steps))
        wb, rb = b[d, :gates * hidden], b[d, gates * hidden:]
        if kind == "LSTM":
            xs = _projections(ctx, x, w[d], wb + rb, layout, step, d)
            hs, h, c = _lstm_direction(step, xs, r[d], h0[d], c0[d], order, peep[d] if peep is not None else None)
            last_c.append(c)
        else:
            in_bias = wb + np.concatenate([rb[:2 * hidden], np.zeros(hidden, np.float32) if lbr else rb[2 * hidden:]])
            xs = _projections(ctx, x, w[d], in_bias, layout, step, d)
            hs, h = _gru_direction(step, xs, r[d], rb, h0[d], order, lbr, hidden)
        ys.append([hs[t] for t in range(steps)])
        last_h.append(h)
    _outputs(ctx, node, step, ys, last_h, last_c, layout)


def _outputs(ctx: Context, node: Any, step: _Step, ys: list[list[int]], last_h: list[int], last_c: list[int],
             layout: int) -> None:
    """Y [T, D, B, H] (layout 1: [B, T, D, H]), Y_h and Y_c [D, B, H] (layout 1: [B, D, H])."""
    outs = list(node.output) + [""] * 3
    if outs[0]:
        time_axis, dir_axis = (1, 2) if layout else (0, 1)
        per_dir = []
        for d, hs in enumerate(ys):
            b, h = step.ctx.w.tensors[hs[0]].shape
            shape = (b, len(hs), h) if layout else (len(hs), b, h)
            per_dir.append(step.stack(hs, time_axis, step.new(shape, f"y{d}")))
        step.stack(per_dir, dir_axis, ctx.output(outs[0]))
    for name, states in ((outs[1], last_h), (outs[2], last_c)):
        if name and states:
            step.stack(states, 1 if layout else 0, ctx.output(name))
