"""Which operators of a ``.tflite`` LiteRT's XNNPACK delegate runs, and which fall back.

LiteRT applies XNNPACK (its default CPU delegate) to the longest runs of operators it has kernels
for; every other operator runs on LiteRT's built-in kernel, and each one cuts the delegated graph
in two (one DELEGATE node per partition). An int8 model with one operator XNNPACK refuses per
block runs mostly on reference kernels and is slower than the float model: that was issue 12
(HARD_SWISH has no int8 XNNPACK kernel).

:func:`plan` reads the interpreter's nodes after delegation: each DELEGATE node lists its
partition's input and output tensors, and the partition is every operator between them (walked
back from the outputs to the inputs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["PlannedOp", "Plan", "plan"]


@dataclass(frozen=True)
class PlannedOp:
    index: int  # the operator's position in subgraph 0
    code: str  # builtin name, e.g. "CONV_2D"
    dtype: str  # the type of its first output, e.g. "int8"
    partition: int | None  # the XNNPACK partition it runs in (0, 1, ...), None: a built-in kernel


@dataclass(frozen=True)
class Plan:
    ops: tuple[PlannedOp, ...]
    partitions: int

    @property
    def fallback(self) -> tuple[PlannedOp, ...]:
        """The operators XNNPACK does not run."""
        return tuple(op for op in self.ops if op.partition is None)

    def describe(self) -> str:
        """One line: how much XNNPACK runs, and what it leaves (by op and type)."""
        left = Counter(f"{op.code} ({op.dtype})" for op in self.fallback)
        text = f"XNNPACK runs {len(self.ops) - len(self.fallback)} of {len(self.ops)} ops in {self.partitions} partition(s)"
        if left:
            text += "; built-in kernels run " + ", ".join(f"{k} x{v}" for k, v in sorted(left.items()))
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"ops": len(self.ops), "delegated": len(self.ops) - len(self.fallback),
                "partitions": self.partitions,
                "fallback": dict(Counter(f"{op.code} ({op.dtype})" for op in self.fallback))}


def plan(data: bytes, *, threads: int = 1) -> Plan:
    """The XNNPACK plan of the model ``data`` (``.tflite`` bytes) in LiteRT with its default delegate."""
    import numpy as np
    from ai_edge_litert import interpreter as litert

    from ...runtime.backends.tflite import quiet_stderr

    with quiet_stderr():  # the C++ "Created TensorFlow Lite XNNPACK delegate" line goes to fd 2
        interp = litert.Interpreter(model_content=data, num_threads=threads)
        interp.allocate_tensors()
    nodes = interp._get_ops_details()  # noqa: SLF001 - the only view of the nodes after delegation
    original = [n for n in nodes if n["op_name"] != "DELEGATE"]
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    producer = {int(t): n["index"] for n in original for t in n["outputs"]}
    inputs_of = {n["index"]: [int(t) for t in n["inputs"] if t >= 0] for n in original}
    where: dict[int, int] = {}
    for k, d in enumerate(delegates):
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t not in producer:
                continue
            seen.add(t)
            op = producer[t]
            if op not in where:
                where[op] = k
                stack.extend(inputs_of[op])
    ops = []
    for n in original:
        outs = [int(t) for t in n["outputs"]]
        dtype = np.dtype(interp._get_tensor_details(outs[0], 0)["dtype"]).name if outs else "?"  # noqa: SLF001
        ops.append(PlannedOp(n["index"], n["op_name"], dtype, where.get(n["index"])))
    return Plan(tuple(ops), len(delegates))
