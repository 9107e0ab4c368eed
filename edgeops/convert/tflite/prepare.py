"""Get an ONNX graph ready for the TFLite writer: static shapes, everything constant folded.

1. Input shapes fixed (``--input-shape``, else a dynamic batch becomes 1); TFLite wants static shapes.
2. onnxruntime's basic optimization: constant folding, BatchNormalization folded into the Conv
   before it, Identity/Dropout removed (``graph.optimize``).
3. What is still computable from constants is folded (``edgeops.convert.constfold``, onnx's reference evaluator): shape
   subgraphs (Shape, Gather, Cast, Concat, Unsqueeze feeding a Reshape) whose Shape nodes read a
   tensor that now has a static shape; an ``If`` whose condition is now constant is replaced by the
   branch it takes (``edgeops.convert.fix_inputs``).
4. Shape inference with data propagation, so every value has a static shape and a dtype.

For a model that will be quantized to int8 (``for_int8``), HardSwish and HardSigmoid become
Add/Clip/Mul (``edgeops.convert.int8_graph``) instead of one HARD_SWISH: XNNPACK runs those in int8.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from ...errors import ModelFormatError
from .. import graph


def prepare(model: Any, input_shapes: dict[str, tuple[int, ...]] | None = None, *,
            for_int8: bool = False) -> tuple[Any, list[str]]:
    onnx = graph.import_onnx()
    model = graph.fit_ir_version(graph.name_nodes(model))
    model, notes = graph.fix_input_shapes(model, dict(input_shapes or {}), static=True)
    model = graph.infer_shapes(model)
    with tempfile.TemporaryDirectory(prefix="edgeops-tflite-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "opt.onnx")
        onnx.save(model, src)
        try:
            graph.optimize(src, dst)
        except ModelFormatError as exc:  # an opset newer than this onnxruntime, an op it has no kernel for
            notes.append(f"onnxruntime's optimizer skipped ({str(exc).split(': ', 1)[-1][:120]}); "
                         "constants folded by onnx's reference evaluator only")
        else:
            model = graph.name_nodes(graph.infer_shapes(onnx.load(dst)))
            notes.append("optimized (constant folding, BatchNormalization folded into Conv)")
    from ..fix_inputs import fold

    folded, inlined = fold(model)  # constants, and an If on a constant condition replaced by its branch
    if folded:
        notes.append(f"folded {folded} shape/constant nodes")
    if inlined:
        notes.append(f"{inlined} If nodes on a constant condition replaced by the branch taken")
    if for_int8:  # XNNPACK has no int8 HARD_SWISH: ADD (fused RELU6) and MUL instead
        from ..int8_graph import decompose_hard_activations, describe

        note = describe(decompose_hard_activations(model), "LiteRT's XNNPACK")
        if note:
            notes.append(note)
    else:
        fused = fuse_hard_swish(model)
        if fused:
            notes.append(f"{fused} HardSigmoid * x patterns fused back into HardSwish")
    fused = fuse_gelu(model)
    if fused:
        notes.append(f"{fused} erf-based GELU subgraphs fused into Gelu")
    model = graph.infer_shapes(model)
    return model, notes


def fuse_hard_swish(model: Any) -> int:
    """``Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))`` -> ``HardSwish(x)``: onnxruntime's optimizer
    inlines the HardSwish function into that pair, and TFLite has HARD_SWISH as one kernel."""
    from onnx import helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in g.output}
    fused = 0
    for mul in list(g.node):
        if mul.op_type != "Mul":
            continue
        for x, h in (tuple(mul.input), tuple(mul.input)[::-1]):
            hs = producer.get(h)
            if (hs is None or hs.op_type != "HardSigmoid" or hs.input[0] != x or readers.get(h) != 1
                    or h in outputs):
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in hs.attribute}
            if abs(attrs.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(attrs.get("beta", 0.5) - 0.5) > 1e-6:
                continue
            swish = helper.make_node("HardSwish", [x], list(mul.output), name=mul.name or hs.name)
            g.node.insert(list(g.node).index(mul), swish)
            g.node.remove(mul)
            g.node.remove(hs)
            fused += 1
            break
    return fused


def fuse_gelu(model: Any) -> int:
    """The erf form of GELU that exporters write before opset 20 -> one ``Gelu`` node (TFLite GELU):
    ``0.5 * x * (1 + Erf(x / sqrt(2)))`` in any order of the two Muls, with Div by sqrt(2) or Mul by
    1/sqrt(2). Besides one op instead of a dozen, this keeps the int8 model runnable: Erf's chain
    divides by x, and an int8 DIV whose divisor hits its zero point stops LiteRT (the zoo's ViTs)."""
    from onnx import helper, numpy_helper

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    fused = 0
    while True:
        producer = {o: n for n in g.node for o in n.output}
        readers: dict[str, list[Any]] = {}
        for n in g.node:
            for i in n.input:
                readers.setdefault(i, []).append(n)
        match = _match_gelu(g, consts, producer, readers)
        if match is None:
            return fused
        x, out, nodes = match
        first = min(list(g.node).index(n) for n in nodes)
        for n in nodes:
            g.node.remove(n)
        g.node.insert(first, helper.make_node("Gelu", [x], [out], name=nodes[-1].name))
        fused += 1


def _scalar(consts: dict[str, np.ndarray], name: str, value: float) -> bool:
    a = consts.get(name)
    return a is not None and a.size == 1 and abs(float(a.reshape(-1)[0]) - value) < 1e-4


def _other(node: Any, name: str) -> str | None:
    ins = list(node.input)
    if len(ins) != 2 or name not in ins:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _match_gelu(g: Any, consts: dict[str, np.ndarray], producer: dict[str, Any],
                readers: dict[str, list[Any]]) -> tuple[str, str, list[Any]] | None:
    outputs = {o.name for o in g.output}
    for erf in g.node:
        if erf.op_type != "Erf":
            continue
        scale = producer.get(erf.input[0])
        if scale is None or scale.op_type not in ("Div", "Mul") or scale.input[1] not in consts:
            continue
        x = scale.input[0]
        if not _scalar(consts, scale.input[1], 2 ** 0.5 if scale.op_type == "Div" else 2 ** -0.5):
            continue
        add = readers.get(erf.output[0], [])
        if len(add) != 1 or add[0].op_type != "Add" or not _scalar(consts, _other(add[0], erf.output[0]) or "", 1.0):
            continue
        add = add[0]
        mul = readers.get(add.output[0], [])
        if len(mul) != 1 or mul[0].op_type != "Mul":
            continue
        mul, other = mul[0], _other(mul[0], add.output[0])
        if other == x:  # (x * (1 + erf)) * 0.5
            half = readers.get(mul.output[0], [])
            if len(half) != 1 or half[0].op_type != "Mul" or not _scalar(consts, _other(half[0], mul.output[0]) or "", 0.5):
                continue
            nodes = [scale, erf, add, mul, half[0]]
        elif _scalar(consts, other or "", 0.5):  # x * ((1 + erf) * 0.5), torch's dynamo exporter
            outer = readers.get(mul.output[0], [])
            if len(outer) != 1 or outer[0].op_type != "Mul" or _other(outer[0], mul.output[0]) != x:
                continue
            nodes = [scale, erf, add, mul, outer[0]]
        else:  # (x * 0.5) * (1 + erf)
            pre = producer.get(other or "")
            pre_other = _other(pre, x) if pre is not None else None
            if pre is None or pre.op_type != "Mul" or pre_other is None or not _scalar(consts, pre_other, 0.5):
                continue
            if len(readers.get(pre.output[0], [])) != 1:
                continue
            nodes = [pre, scale, erf, add, mul]
        inner = [o for n in nodes[:-1] for o in n.output]
        if any(o in outputs or len(readers.get(o, [])) != 1 for o in inner if o != x):
            continue
        return x, nodes[-1].output[0], nodes
    return None
