"""The int8 ``.tflite`` as a small graph the code generator walks: tensors (shape, type, quantization,
constant data) and operators in execution order, read with LiteRT's flatbuffer schema module.

A float model input that only feeds a QUANTIZE (float32 -> int8), and a float model output written by
a DEQUANTIZE of an int8 tensor, are taken off: the generated function takes and returns int8, and the
header gives the scale and zero point to quantize and dequantize with (:attr:`Graph.notes` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ModelFormatError, UsageError

_NP = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8, 6: np.bool_}
_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray  # float32, empty when not quantized
    zero_point: np.ndarray  # int64
    quantized_dimension: int
    data: np.ndarray | None  # constants only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def q(self) -> tuple[float, int]:
        """The per-tensor (scale, zero point); (0.0, 0) when not quantized."""
        if not len(self.scale):
            return 0.0, 0
        return float(self.scale[0]), int(self.zero_point[0]) if len(self.zero_point) else 0


@dataclass
class Operator:
    index: int
    code: str
    inputs: list[int]
    outputs: list[int]
    options: Any

    def name(self, graph: Graph) -> str:
        return graph.tensors[self.outputs[0]].name if self.outputs else f"op{self.index}"


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Operator]
    inputs: list[int]
    outputs: list[int]
    notes: list[str] = field(default_factory=list)


def read_graph(data: bytes) -> Graph:
    """The first subgraph of the model ``data`` (validated first), with float I/O boundaries taken off."""
    from ...formats._tflite_ops import BUILTIN_OPERATORS
    from ...formats.tflite_file import read_tflite
    from ..tflite.writer import schema

    read_tflite(data, source="the model")
    model = schema().ModelT.InitFromPackedBuf(bytes(data), 0)
    if len(model.subgraphs) != 1:
        raise UsageError(f"--codegen compiles models with one subgraph; this one has {len(model.subgraphs)} "
                         "(control flow): use --format c without --codegen and TFLite Micro")
    g = model.subgraphs[0]
    tensors = [_tensor(model, i, t) for i, t in enumerate(g.tensors or [])]
    ops = []
    for k, op in enumerate(g.operators or []):
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = BUILTIN_OPERATORS.get(code, f"BUILTIN_{code}")
        if code == 32:
            name = "CUSTOM:" + (oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode))
        ops.append(Operator(k, name, [int(i) for i in (op.inputs if op.inputs is not None else [])],
                            [int(i) for i in (op.outputs if op.outputs is not None else [])], op.builtinOptions))
    graph = Graph(tensors, ops, [int(i) for i in g.inputs], [int(i) for i in g.outputs])
    _strip_float_boundaries(graph)
    return graph


def _tensor(model: Any, index: int, t: Any) -> Tensor:
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or f"t{index}")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    q = t.quantization
    scale = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
    zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
    qdim = int(q.quantizedDimension) if q is not None else 0
    buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
    data = None
    if buf is not None and (buf.offset or 0) > 1:
        raise UsageError(f"tensor {name!r} keeps its data outside the flatbuffer (a model over 2 GB): "
                         "--codegen cannot read it")
    if buf is not None and buf.data is not None and len(buf.data):
        raw = bytes(bytearray(buf.data))
        if t.type not in _NP:  # int4, float16, ...: kept as bytes, for the emitters to refuse by type
            data = np.frombuffer(raw, np.uint8)
        else:
            data = np.frombuffer(raw, np.dtype(_NP[t.type]).newbyteorder("<")).astype(_NP[t.type])
            if data.size != (int(np.prod(shape, dtype=np.int64)) if shape else 1):
                raise ModelFormatError(f"constant {name!r} holds {data.size} values for shape {list(shape)}")
            data = data.reshape(shape if shape else ())
    return Tensor(index, name, shape, _NAMES.get(t.type, f"type{t.type}"), scale, zp, qdim, data)


def _strip_float_boundaries(graph: Graph) -> None:
    readers: dict[int, list[Operator]] = {}
    for op in graph.ops:
        for i in op.inputs:
            readers.setdefault(i, []).append(op)
    for pos, i in enumerate(list(graph.inputs)):
        users = readers.get(i, [])
        t = graph.tensors[i]
        if t.dtype == "float32" and len(users) == 1 and users[0].code == "QUANTIZE" and i not in graph.outputs:
            q = users[0]
            if graph.tensors[q.outputs[0]].dtype == "int8":
                graph.inputs[pos] = q.outputs[0]
                graph.ops.remove(q)
                s, z = graph.tensors[q.outputs[0]].q
                graph.notes.append(f"float input {t.name!r} is taken as int8 (the model's QUANTIZE is left to the "
                                   f"caller: q = round(x / {s:.9g}) {'-' if z < 0 else '+'} {abs(z)}, clamped to -128..127)")
    producers = {o: op for op in graph.ops for o in op.outputs}
    for pos, i in enumerate(list(graph.outputs)):
        deq = producers.get(i)
        t = graph.tensors[i]
        if t.dtype == "float32" and deq is not None and deq.code == "DEQUANTIZE" and \
                graph.tensors[deq.inputs[0]].dtype == "int8" and deq.inputs[0] not in graph.inputs:
            graph.outputs[pos] = deq.inputs[0]
            graph.ops.remove(deq)
            s, z = graph.tensors[deq.inputs[0]].q
            graph.notes.append(f"float output {t.name!r} is given as int8 (the model's DEQUANTIZE is left to the "
                               f"caller: x = {s:.9g} * (q {'+' if z < 0 else '-'} {abs(z)}))")
