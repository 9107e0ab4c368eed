"""Constant folding of an ONNX graph: every node whose inputs are all known becomes an initializer.

:func:`fold_constants` evaluates such nodes with onnx's reference evaluator (``Shape`` and
``Size`` from static shapes alone) and drops the initializers nothing reads any more. Both
``--fix-input`` (:mod:`.fix_inputs`) and the TFLite exporter's preparation
(:mod:`.tflite.prepare`) fold through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import dim_size

# Ops folded here when all their inputs are constant (or, for Shape/Size, when the input's shape is known).
_NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def fold_constants(model: Any) -> int:
    """Replace nodes whose inputs are all known by initializers; returns how many were folded."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = _static_shapes(model)
    outputs = {o.name for o in g.output}
    keep, folded = [], 0
    for node in g.node:
        value = None
        if node.domain in ("", "ai.onnx") and node.op_type not in _NEVER_FOLD:
            if node.op_type == "Shape" and node.input[0] in shapes:
                value = [_shape_of(node, shapes[node.input[0]])]
            elif node.op_type == "Size" and node.input[0] in shapes:
                value = [np.array(int(np.prod(shapes[node.input[0]])), np.int64)]
            elif node.op_type == "Constant" or (node.input and all(i in consts or not i for i in node.input)):
                value = _evaluate(ReferenceEvaluator, model, node, consts)
        if value is None or any(o in outputs for o in node.output):
            keep.append(node)
            continue
        for name, v in zip(node.output, value):
            consts[name] = np.asarray(v)
            g.initializer.append(numpy_helper.from_array(np.asarray(v), name))
            shapes[name] = tuple(np.asarray(v).shape)
        folded += 1
    del g.node[:]
    g.node.extend(keep)
    used = _read(g.node) | outputs
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    return folded


def _read(nodes: Any) -> set[str]:
    """Every value ``nodes`` read, their subgraphs' outer-scope reads (an If branch's) included."""
    names = set()
    for n in nodes:
        names.update(n.input)
        for a in n.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                names |= _read(sub.node) | {o.name for o in sub.output}
    return names


def _shape_of(node: Any, shape: tuple[int, ...]) -> np.ndarray:
    start, end = 0, None
    for a in node.attribute:
        if a.name == "start":
            start = a.i
        elif a.name == "end":
            end = a.i
    return np.array(shape[start:end], np.int64)


def _evaluate(evaluator: Any, model: Any, node: Any, consts: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    from onnx import helper

    try:
        ins = [i for i in node.input if i]
        g = helper.make_graph([node], "fold", [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(
            consts[i].dtype), consts[i].shape) for i in ins], [helper.make_empty_tensor_value_info(o) for o in node.output])
        m = helper.make_model(g, opset_imports=list(model.opset_import))
        return list(evaluator(m).run(None, {i: consts[i] for i in ins}))
    except Exception:  # noqa: BLE001 - not foldable here: the converter gets the node as it is
        return None


def _static_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        sizes = [dim_size(d) for d in vi.type.tensor_type.shape.dim]
        known = [s for s in sizes if s is not None]
        if vi.type.tensor_type.HasField("shape") and len(known) == len(sizes):
            out[vi.name] = tuple(known)
    return out
