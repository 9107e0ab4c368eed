"""Single-operator int8 ``.tflite`` files, written with edgeops' own flatbuffer writer, for the kernel
tests: random weights and quantization, every option the test names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Spec:
    """A tensor: shape, (scales, zero points, axis) and constant data when it is a weight."""

    shape: tuple[int, ...]
    scale: Any = 0.05
    zero_point: Any = 0
    data: np.ndarray | None = None
    dtype: Any = np.int8
    axis: int = 0


def quant(scale: Any, zero_point: Any, axis: int = 0) -> Any:
    from ai_edge_litert import schema_py_generated as tfl

    q = tfl.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    zp = np.atleast_1d(zero_point)
    q.zeroPoint = [int(z) for z in (zp if len(zp) == len(q.scale) else np.repeat(zp, len(q.scale)))]
    q.quantizedDimension = axis
    return q


def build(code: str, inputs: list[Spec | None], outputs: list[Spec], options_type: str | None = None,
          **options: Any) -> bytes:
    """The model: one ``code`` operator; inputs without data are graph inputs (None: an omitted input)."""
    from edgeops.convert.tflite.writer import ModelWriter

    w = ModelWriter()
    ins, graph_in = [], []
    for k, s in enumerate(inputs):
        if s is None:
            ins.append(-1)
            continue
        i = w.tensor(f"in{k}", s.shape, s.dtype, data=s.data)
        if s.scale is not None:
            w.tensors[i].quantization = quant(s.scale, s.zero_point, s.axis)
        ins.append(i)
        if s.data is None:
            graph_in.append(i)
    outs = []
    for k, s in enumerate(outputs):
        o = w.tensor(f"out{k}", s.shape, s.dtype)
        w.tensors[o].quantization = quant(s.scale, s.zero_point, s.axis)
        outs.append(o)
    w.op(code, ins, outs, options_type, **options)
    w.inputs, w.outputs = graph_in, outs
    return w.serialize([w.tensors[i].name for i in graph_in], [w.tensors[o].name for o in outs])


def weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def bias(rng: np.random.Generator, n: int, scale: float = 2000) -> np.ndarray:
    return rng.integers(-int(scale), int(scale), size=n).astype(np.int32)
