"""Which nodes stay float in an int8 model: ``--float-tail N`` and ``--exclude-nodes`` for ONNX and TFLite.

Detection and segmentation heads lose most to int8: box coordinates, sigmoid scores near a
threshold and probability maps need more than 256 levels, while the backbone before them
does not. The usual fix is to keep the head in float.

``--float-tail N``: the last ``N`` compute layers (ONNX Conv, ConvTranspose, Gemm, MatMul;
TFLite CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, BATCH_MATMUL), "last" in
the graph's topological order, and every op that follows one of them (their descendants up
to the outputs: a head's decode, sigmoid, softmax). The tensor that enters the first float
layer stays int8 where the layer before it is int8, and is dequantized on the way in.

* ONNX (:func:`onnx_tail`): node names, added to onnxruntime's ``nodes_to_exclude``.
* TFLite (:func:`tflite_tail`, :func:`tflite_scopes`): ai-edge-quantizer picks an op's
  configuration by a regex on its *scope*, the names of its output tensors joined by ``;``.
  The exporter names a TFLite tensor after the ONNX value it holds (``name``, or ``name/...``
  for a value re-laid out or computed in several ops), so an ONNX node maps to the ops that
  write its output values, and each op left float gets a ``NO_QUANTIZE`` entry for its scope.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError

ONNX_COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul")
TFLITE_COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "CONV_3D")


def check(n: int | None) -> int:
    if n is None or n == 0:
        return 0
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UsageError(f"--float-tail is a number of layers (1, 2, ...), not {n!r}")
    return n


def _tail(ops: list[tuple[str, list[str], list[str]]], compute: tuple[str, ...], n: int,
          what: str) -> list[int]:
    """Indices of the last ``n`` compute ops of ``ops`` (``(type, inputs, outputs)`` in topological
    order) and of every op downstream of them."""
    layers = [i for i, (kind, _, _) in enumerate(ops) if kind in compute]
    if n > len(layers):
        raise UsageError(f"--float-tail {n}: the {what} has {len(layers)} compute layer(s) "
                         f"({', '.join(compute)}); give at most {len(layers)}")
    chosen = set(layers[len(layers) - n:])
    reached: set[str] = set()
    for i, (_, inputs, outputs) in enumerate(ops):
        if i in chosen or (i > min(chosen) and reached.intersection(inputs)):
            chosen.add(i)
            reached.update(outputs)
    return sorted(chosen)


def onnx_tail(model: Any, n: int) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``, topologically sorted, nodes named)
    that ``--float-tail n`` keeps float."""
    nodes = list(model.graph.node)
    ops = [(nd.op_type, list(nd.input), list(nd.output)) for nd in nodes]
    return [nodes[i].name for i in _tail(ops, ONNX_COMPUTE, n, "model")]


def _tflite_ops(data: bytes) -> tuple[list[tuple[str, list[str], list[str]]], list[str]]:
    """``([(op name, input tensor names, output tensor names)], scopes)`` of the main subgraph."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(data)
    graph = model.subgraphs[0]
    names = [t.name.decode("utf-8") for t in graph.tensors]
    ops, scopes = [], []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = fb.TFL_OP_CODE_TO_NAME.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        ops.append((str(getattr(kind, "value", kind)), [names[i] for i in op.inputs if i >= 0], [names[i] for i in op.outputs if i >= 0]))
        scopes.append(fb.get_op_scope(op, graph.tensors))
    return ops, scopes


def tflite_tail(data: bytes, n: int) -> list[str]:
    """Scope regexes of the ops of the float TFLite model ``data`` that ``--float-tail n`` keeps float."""
    ops, scopes = _tflite_ops(data)
    return [_exact(scopes[i]) for i in _tail(ops, TFLITE_COMPUTE, n, "TFLite graph")]


def tflite_scopes(data: bytes, model: Any, nodes: list[str]) -> list[str]:
    """Scope regexes of the ops of ``data`` that compute the ONNX ``nodes`` of ``model`` (``--exclude-nodes``);
    a node that has no op of its own (folded into another by the exporter) is a UsageError."""
    by_name = {nd.name: nd for nd in model.graph.node}
    missing = [n for n in nodes if n not in by_name]
    if missing:
        raise UsageError(f"--exclude-nodes names nodes the model does not have: {', '.join(missing)}")
    ops, scopes = _tflite_ops(data)
    found, folded = [], []
    for name in nodes:
        values = [v for v in by_name[name].output if v]
        hits = [i for i, (_, _, outs) in enumerate(ops)
                if any(o == v or o.startswith(v + "/") for o in outs for v in values)]
        if not hits:
            folded.append(name)
        found += [_exact(scopes[i]) for i in hits]
    if folded:
        raise UsageError(f"--exclude-nodes: {', '.join(folded)} has no TFLite op of its own (the exporter folded "
                         "it into a neighbour); name the node it feeds, or use --float-tail")
    return list(dict.fromkeys(found))


def _exact(scope: str) -> str:
    """A regex that matches this op's scope and no other (``re.search`` is used on scopes)."""
    return "^" + re.escape(scope) + "$"
