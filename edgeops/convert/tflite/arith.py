"""Constant arithmetic folded on the finished TFLite op list, as onnx2tf's graphs have it.

onnxruntime's optimizer (graph preparation) folds a per-channel Mul or Add into the Conv before it
and BatchNormalization into a Conv, but not a division by a constant, a Mul after a Gemm or a
MatMul, a chain of constant Muls, or anything at all when it was skipped (an opset newer than the
installed onnxruntime). Exporters write these often (PaddlePaddle's hardsigmoid ``x / 6``, BatchNorm
as Mul + Add after a fully-connected layer, a scale after a convolution), and each one is a
kernel call and a pass over the activations. The rewrites, repeated until none applies, each counted
by name in :func:`fold_constant_arithmetic`'s result:

* ``div_to_mul``: ``DIV(x, c)`` by a float32 constant -> ``MUL(x, 1/c)``. Exactness: ``1/c`` is
  computed in float64 and rounded once, so ``x * (1/c)`` is exact where ``c`` is a power of two and
  otherwise within 2 ulp of ``x / c`` (relative 2.4e-7, below every float tolerance here and what
  TensorFlow's own converter does). Refused where any ``c`` is 0, not finite, or has a reciprocal
  that is not a normal float32 (``|c| > 2**126``), and for integer division, which truncates.
* ``sub_to_add``: ``SUB(x, c)`` -> ``ADD(x, -c)`` (exact), so it can merge and fold like an ADD.
* ``identity``: ``ADD(x, 0)``, ``MUL(x, 1)`` removed where the constant does not broadcast ``x``
  to a larger shape; readers read ``x``.
* ``merged``: ``MUL(MUL(x, a), b)`` -> ``MUL(x, a * b)``, likewise ADD (one rounding instead of two).
* ``into_weights``: a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED with constant weights
  (and bias) and no fused activation, whose result is read only by a MUL or ADD with a constant that
  varies along the output channel at most (the last stored axis: channels-last convolutions, the
  output features of a fully-connected layer): a MUL scales the weights' output channels and the
  bias, an ADD is added to the bias (a zero bias is made where there is none). Not folded: a
  constant that varies along any other axis (per spatial position), a result that another op reads
  too or that is a graph output, an op with a fused activation. (A CONV_3D's rank-5 MUL runs on
  merged axes between RESHAPEs, ``elementwise.emit``, and is left as it is.)

The folded op's fused activation (a RELU the writer attached) moves to the op that absorbs it.
Constants are never changed in place (another op may share them): folding writes new ones.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .writer import ModelWriter, Op

# op code -> (axis of the output channel in its weights, index of its bias input)
_WEIGHTED = {"CONV_2D": (0, 2), "DEPTHWISE_CONV_2D": (3, 2), "FULLY_CONNECTED": (0, 2)}
_F32 = np.dtype(np.float32)


def fold_constant_arithmetic(w: ModelWriter) -> Counter[str]:
    """Apply every rewrite until none applies; returns how often each one was made."""
    folded: Counter[str] = Counter()
    rules = (_div_to_mul, _sub_to_add, _identity, _merge, _into_weights)
    changed = True
    while changed:
        changed = False
        g = _Graph(w)
        for op in list(w.ops):
            if op not in g.alive:
                continue
            for rule in rules:
                name = rule(w, g, op)
                if name:
                    folded[name] += 1
                    changed = True
                    g = _Graph(w)
                    break
    return folded


class _Graph:
    """Who produces and who reads each tensor, for one pass."""

    def __init__(self, w: ModelWriter):
        self.alive = _Alive(w.ops)
        self.producer: dict[int, Op] = {}
        self.readers: dict[int, list[Op]] = {}
        for op in w.ops:
            for o in op.outputs:
                self.producer[o] = op
            for i in op.inputs:
                self.readers.setdefault(i, []).append(op)


class _Alive:
    """Membership by identity (ops are unhashable dataclasses)."""

    def __init__(self, ops: list[Op]):
        self._ids = {id(op) for op in ops}

    def __contains__(self, op: Op) -> bool:
        return id(op) in self._ids


def _const(w: ModelWriter, t: int) -> np.ndarray | None:
    return w.tensors[t].data if t >= 0 else None


def _activation(op: Op) -> int:
    return int(getattr(op.options, "fusedActivationFunction", 0) or 0)


def _split(w: ModelWriter, op: Op, commutative: bool) -> tuple[int, np.ndarray] | None:
    """(the non-constant operand, the float32 constant) of a binary op, or None."""
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return None
    a, b = op.inputs
    order = [(a, b), (b, a)] if commutative else [(a, b)]
    for x, c in order:
        data = _const(w, c)
        if data is not None and _const(w, x) is None and data.dtype == _F32 and w.tensors[x].dtype == _F32:
            return x, data
    return None


def _private(w: ModelWriter, g: _Graph, t: int, reader: Op) -> bool:
    """``t`` is read by ``reader`` alone and is no graph output."""
    return t not in w.outputs and t not in w.inputs and g.readers.get(t, []) == [reader]


def _replace(w: ModelWriter, op: Op, code: str, inputs: list[int]) -> None:
    from .ops.elementwise import OPTIONS
    from .writer import schema

    act = _activation(op)
    op.code, op.inputs, op.options_type = code, inputs, OPTIONS[code]
    op.options = getattr(schema(), OPTIONS[code] + "T")()
    op.options.fusedActivationFunction = act


def _div_to_mul(w: ModelWriter, g: _Graph, op: Op) -> str | None:
    if op.code != "DIV":
        return None
    split = _split(w, op, commutative=False)
    if split is None or op.inputs[0] != split[0]:
        return None
    x, c = split
    c64 = c.astype(np.float64)
    if not np.all(np.isfinite(c64)) or np.any(c64 == 0) or np.any(np.abs(c64) > 2.0 ** 126):
        return None
    _replace(w, op, "MUL", [x, w.const(f"{w.tensors[op.inputs[1]].name}/reciprocal", (1.0 / c64).astype(_F32))])
    return "div_to_mul"


def _sub_to_add(w: ModelWriter, g: _Graph, op: Op) -> str | None:
    if op.code != "SUB":
        return None
    split = _split(w, op, commutative=False)
    if split is None or op.inputs[0] != split[0]:
        return None
    x, c = split
    _replace(w, op, "ADD", [x, w.const(f"{w.tensors[op.inputs[1]].name}/neg", -c)])
    return "sub_to_add"


def _identity(w: ModelWriter, g: _Graph, op: Op) -> str | None:
    neutral = {"ADD": 0.0, "MUL": 1.0}.get(op.code)
    split = _split(w, op, commutative=True) if neutral is not None else None
    if split is None or _activation(op):
        return None
    x, c = split
    out = op.outputs[0]
    if not np.all(c == neutral) or w.tensors[x].shape != w.tensors[out].shape:
        return None
    if out in w.outputs:  # the graph output keeps its tensor: x's producer writes it instead
        producer = g.producer.get(x)
        if producer is None or not _private(w, g, x, op):
            return None
        producer.outputs = [out if o == x else o for o in producer.outputs]
    for reader in g.readers.get(out, []):
        reader.inputs = [x if i == out else i for i in reader.inputs]
    w.ops.remove(op)
    return "identity"


def _merge(w: ModelWriter, g: _Graph, op: Op) -> str | None:
    if op.code not in ("ADD", "MUL"):
        return None
    outer = _split(w, op, commutative=True)
    if outer is None:
        return None
    inner_op = g.producer.get(outer[0])
    if inner_op is None or inner_op.code != op.code or _activation(inner_op) or not _private(w, g, outer[0], op):
        return None
    inner = _split(w, inner_op, commutative=True)
    if inner is None:
        return None
    x, a = inner
    b = outer[1]
    c = (a.astype(np.float64) * b if op.code == "MUL" else a.astype(np.float64) + b).astype(_F32)
    if np.broadcast_shapes(w.tensors[x].shape, c.shape) != w.tensors[op.outputs[0]].shape:
        return None
    op.inputs = [x, w.const(f"{w.tensors[op.outputs[0]].name}/merged", c)]
    w.ops.remove(inner_op)
    return "merged"


def _into_weights(w: ModelWriter, g: _Graph, op: Op) -> str | None:
    if op.code not in ("ADD", "MUL"):
        return None
    split = _split(w, op, commutative=True)
    if split is None:
        return None
    y, c = split
    src = g.producer.get(y)
    if src is None or src.code not in _WEIGHTED or _activation(src) or not _private(w, g, y, op):
        return None
    axis, bias_at = _WEIGHTED[src.code]
    weights = _const(w, src.inputs[1])
    bias_t = src.inputs[bias_at] if len(src.inputs) > bias_at else -1
    bias = _const(w, bias_t) if bias_t >= 0 else np.zeros(weights.shape[axis], _F32) if weights is not None else None
    out_shape = w.tensors[y].shape
    if weights is None or weights.dtype != _F32 or bias is None or bias.dtype != _F32 or c.ndim > len(out_shape):
        return None
    channels = out_shape[-1]
    if any(d != 1 for d in c.shape[:-1]) or (c.ndim and c.shape[-1] not in (1, channels)):
        return None  # varies along another axis than the output channel: per position, not per channel
    per_channel = np.broadcast_to(c.reshape(-1).astype(np.float64), (channels,))
    name = w.tensors[src.inputs[1]].name
    if op.code == "MUL":
        shape = [1] * weights.ndim
        shape[axis] = channels
        src.inputs[1] = w.const(f"{name}/scaled", (weights * per_channel.reshape(shape)).astype(_F32))
        bias = bias * per_channel
    else:
        bias = bias + per_channel
    inputs = list(src.inputs) + [-1] * (bias_at + 1 - len(src.inputs))
    inputs[bias_at] = w.const(f"{name}/bias", np.asarray(bias, np.float64).astype(_F32))
    src.inputs = inputs
    src.options.fusedActivationFunction = _activation(op)
    src.outputs = [op.outputs[0]]
    w.ops.remove(op)
    return "into_weights"
