"""ONNX rewrites before static int8 quantization, so that the int8 graph stays int8 end to end.

Neither runtime has an int8 kernel for HardSwish or HardSigmoid that runs with its int8 neighbours:

* onnxruntime's QDQ quantizer leaves HardSigmoid float (no QDQ handler, no ``QLinear*`` kernel),
  so every HardSwish (``x * HardSigmoid(x)`` after onnxruntime's optimizer) became
  DequantizeLinear -> HardSigmoid (float) -> QuantizeLinear -> QLinearMul, and the float island
  also kept the convolutions around it out of onnxruntime's NHWC int8 layout;
* LiteRT's XNNPACK delegate takes HARD_SWISH in float only, so an int8 HARD_SWISH ran on the
  built-in reference kernel and cut the delegated graph into one partition per activation.

Both quantize and run Add, Clip and Mul in int8 (onnxruntime: QLinearAdd and QLinearMul, the Clip
folded into the range of the Add; XNNPACK: ADD with a fused RELU6 and MUL), so for int8 the
activations are written as those ops:

* ``HardSwish(x)`` = ``x * Clip(x + 3, 0, 6) / 6``; the ``/ 6`` is folded into the weights of the
  convolutions that read the result when those are its only readers (MobileNet's pattern), else it
  stays a Mul by a constant;
* ``HardSigmoid(x)`` = ``Clip(x * alpha + beta, 0, 1)`` (for PyTorch's alpha 1/6:
  ``Clip(x + 3, 0, 6) * (1/6)``).

``Mul(x, HardSigmoid(x, 1/6, 0.5))`` (how onnxruntime's optimizer inlines HardSwish, and how older
exporters write it) counts as a HardSwish. The float paths keep the single ops: float kernels
fuse them (onnxruntime's Conv activation, XNNPACK's HARD_SWISH).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["decompose_hard_activations", "describe"]

_SIXTH = 1.0 / 6.0


def decompose_hard_activations(model: Any, keep: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """Rewrite HardSwish and HardSigmoid in ``model`` (in place) as Add/Clip/Mul, except the nodes
    named in ``keep`` (the user's excluded nodes); returns counts ``{"HardSwish": n, "HardSigmoid": n,
    "folded": n}`` (``folded``: HardSwish whose ``/ 6`` went into the weights of the convolutions
    reading it)."""
    rw = _Rewriter(model)
    counts = {"HardSwish": 0, "HardSigmoid": 0, "folded": 0}
    for node in list(model.graph.node):
        if node not in rw.alive or (node.name and node.name in keep):
            continue
        if node.op_type == "HardSwish" and node.domain in ("", "ai.onnx"):
            counts["folded"] += rw.hard_swish(node.input[0], node.output[0], [node])
            counts["HardSwish"] += 1
        elif node.op_type == "Mul" and node.domain in ("", "ai.onnx"):
            pair = rw.inlined_hard_swish(node)
            if pair is not None and not (pair[1].name and pair[1].name in keep):
                counts["folded"] += rw.hard_swish(pair[0], node.output[0], [pair[1], node])
                counts["HardSwish"] += 1
    for node in list(model.graph.node):
        if (node.op_type == "HardSigmoid" and node.domain in ("", "ai.onnx") and node in rw.alive
                and not (node.name and node.name in keep)):
            rw.hard_sigmoid(node)
            counts["HardSigmoid"] += 1
    rw.finish()
    return counts


def describe(counts: dict[str, int], runtime: str) -> str | None:
    """The convert report's line for ``counts`` (None when nothing was rewritten)."""
    parts = [f"{counts[k]} {k}" for k in ("HardSwish", "HardSigmoid") if counts.get(k)]
    if not parts:
        return None
    folded = f"; the / 6 of {counts['folded']} folded into the next convolution's weights" if counts.get("folded") else ""
    return (f"{' and '.join(parts)} written as Add, Clip, Mul for int8 ({runtime} has no int8 kernel for them "
            f"that stays in the int8 graph){folded}")


class _Rewriter:
    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.model, self.g = model, model.graph
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts = {i.name: i for i in self.g.initializer}
        self.np = numpy_helper
        self.alive = list(self.g.node)
        self.outputs = {o.name for o in self.g.output}
        self._n = 0

    # ---- graph questions --------------------------------------------------------------------
    def readers(self, name: str) -> list[Any]:
        return [n for n in self.alive if name in n.input]

    def producer(self, name: str) -> Any:
        return next((n for n in self.alive if name in n.output), None)

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def inlined_hard_swish(self, mul: Any) -> tuple[str, Any] | None:
        """``(x, the HardSigmoid node)`` when ``mul`` is ``x * HardSigmoid(x, 1/6, 0.5)`` and the
        HardSigmoid has no other reader."""
        for x, h in (tuple(mul.input), tuple(mul.input)[::-1]):
            hs = self.producer(h)
            if hs is None or hs.op_type != "HardSigmoid" or hs.input[0] != x or h in self.outputs:
                continue
            a = self.attrs(hs)
            if (abs(a.get("alpha", 0.2) - _SIXTH) <= 1e-6 and abs(a.get("beta", 0.5) - 0.5) <= 1e-6
                    and len(self.readers(h)) == 1):
                return x, hs
        return None

    # ---- rewrites ---------------------------------------------------------------------------
    def hard_swish(self, x: str, y: str, replaced: list[Any]) -> int:
        """``y = x * Clip(x + 3, 0, 6) / 6`` in place of ``replaced``; returns 1 when the ``/ 6`` was
        folded into the convolutions reading ``y``."""
        p = self._prefix(y)
        new = self._clip_add(x, 3.0, 6.0, p)
        convs = self._weight_readers(y)
        if convs is not None:
            new.append(self._node("Mul", [x, p + "clipped"], [y], p + "mul"))
            for conv in convs:
                self._scale_weight(conv, _SIXTH)
        else:
            new += [self._node("Mul", [x, p + "clipped"], [p + "x6"], p + "mul"),
                    self._node("Mul", [p + "x6", self._const(p + "sixth", _SIXTH)], [y], p + "div6")]
        self._replace(replaced, new)
        return 1 if convs is not None else 0

    def hard_sigmoid(self, node: Any) -> None:
        a = self.attrs(node)
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        x, y, p = node.input[0], node.output[0], self._prefix(node.output[0])
        if alpha > 0:  # Clip(x + beta/alpha, 0, 1/alpha) * alpha
            new = self._clip_add(x, beta / alpha, 1.0 / alpha, p)
            new.append(self._node("Mul", [p + "clipped", self._const(p + "alpha", alpha)], [y], p + "scale"))
        else:
            new = [self._node("Mul", [x, self._const(p + "alpha", alpha)], [p + "ax"], p + "mul"),
                   self._node("Add", [p + "ax", self._const(p + "beta", beta)], [p + "axb"], p + "add"),
                   self._clip(p + "axb", 0.0, 1.0, y, p + "clip")]
        self._replace([node], new)

    def _clip_add(self, x: str, shift: float, top: float, p: str) -> list[Any]:
        """The nodes of ``p + "clipped"`` = ``Clip(x + shift, 0, top)``."""
        return [self._node("Add", [x, self._const(p + "shift", shift)], [p + "shifted"], p + "add"),
                self._clip(p + "shifted", 0.0, top, p + "clipped", p + "clip")]

    def _clip(self, x: str, lo: float, hi: float, y: str, name: str) -> Any:
        if self.opset < 11:
            from onnx import helper

            return helper.make_node("Clip", [x], [y], name=name, min=lo, max=hi)
        return self._node("Clip", [x, self._const(name + "/min", lo), self._const(name + "/max", hi)], [y], name)

    def _weight_readers(self, y: str) -> list[Any] | None:
        """The Conv nodes reading ``y`` as their data input, when they are all its readers and each
        weight is an initializer that only that conv reads (so scaling it changes nothing else)."""
        if y in self.outputs:
            return None
        readers = self.readers(y)
        if not readers:
            return None
        for r in readers:
            if (r.op_type != "Conv" or r.domain not in ("", "ai.onnx") or list(r.input).count(y) != 1
                    or r.input[0] != y or len(r.input) < 2 or r.input[1] not in self.consts
                    or len(self.readers(r.input[1])) != 1 or r.input[1] in self.outputs):
                return None
            w = self.consts[r.input[1]]
            if self.np.to_array(w).dtype.kind != "f":
                return None
        return readers

    def _scale_weight(self, conv: Any, factor: float) -> None:
        init = self.consts[conv.input[1]]
        w = self.np.to_array(init)
        init.CopyFrom(self.np.from_array((w * np.asarray(factor, w.dtype)).astype(w.dtype), init.name))

    # ---- bookkeeping ------------------------------------------------------------------------

    def _prefix(self, y: str) -> str:
        self._n += 1
        return f"{y}/int8_{self._n}/"

    def _node(self, op: str, inputs: list[str], outputs: list[str], name: str) -> Any:
        from onnx import helper

        return helper.make_node(op, inputs, outputs, name=name)

    def _const(self, name: str, value: float) -> str:
        init = self.np.from_array(np.asarray(value, np.float32), name)
        self.g.initializer.append(init)
        self.consts[name] = init
        return name

    def _replace(self, old: list[Any], new: list[Any]) -> None:
        """``new`` in place of ``old``, at the first old node's spot: the new nodes read only ``x`` and
        constants, which come before it, and write what the old ones wrote."""
        at = min(self.alive.index(n) for n in old)
        for n in old:
            self.alive.remove(n)
        self.alive[at:at] = new

    def finish(self) -> None:
        del self.g.node[:]
        self.g.node.extend(self.alive)
