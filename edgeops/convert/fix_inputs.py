"""``--fix-input NAME=VALUE``: an input that is the same on the device (a sample rate, a mode flag)
becomes a constant, and the graph is folded around it.

A model exported with a branch on such an input (``If(sample_rate > 8000)``) cannot go to TFLite,
which has no kernel for ``If``, and carries both branches to an ONNX device. Fixing the input
makes the condition a constant: :func:`fix_inputs` replaces the graph input by an initializer of the
given value (typed and shaped as the input is declared), then folds until nothing changes: nodes
whose inputs are all constant are computed (onnx's reference evaluator) and every ``If`` whose
condition is constant is replaced by the taken branch's nodes (:func:`inline_constant_ifs`), whose
values are renamed under the ``If`` node's name and whose outputs are written under the ``If``'s
output names. The TFLite exporter inlines constant ``If`` nodes too, so one whose condition only
depends on shapes goes without ``--fix-input``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import UsageError


def parse(specs: Iterable[str]) -> dict[str, list[float]]:
    """``["sample_rate=16000", "gains=1,0.5"]`` -> ``{"sample_rate": [16000.0], "gains": [1.0, 0.5]}``."""
    out: dict[str, list[float]] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        try:
            numbers = [float(v) for v in value.split(",")] if value.strip() else []
        except ValueError:
            numbers = []
        if not sep or not name or not numbers:
            raise UsageError(f"--fix-input takes NAME=VALUE (a number, or numbers separated by commas), not {spec!r}")
        if name in out:
            raise UsageError(f"--fix-input gives {name} twice")
        out[name] = numbers
    return out


def fix_inputs(model: Any, values: dict[str, Any]) -> tuple[Any, list[str]]:
    """Replace graph inputs by constants (``values``: name -> number(s)) and fold; returns the model
    (changed in place) and notes for the report."""
    if not values:
        return model, []
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = {i.name: i for i in g.input if i.name not in inits}
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise UsageError(f"--fix-input names {', '.join(unknown)}, not an input of the model "
                         f"(inputs: {', '.join(inputs) or 'none'})")
    notes = []
    for name, value in values.items():
        vi = inputs[name]
        tt = vi.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        array = _shaped(name, np.asarray(value, np.float64).reshape(-1), tt)
        if dtype.kind in "iub" and np.any(array != np.round(array)):
            raise UsageError(f"--fix-input {name}: the input is {dtype}, {value} is not a whole number")
        g.initializer.append(numpy_helper.from_array(array.astype(dtype), name))
        g.input.remove(vi)
        notes.append(f"input {name} fixed to {array.astype(dtype).tolist()}")
    folded, inlined = fold(model)
    if folded or inlined:
        notes.append(f"folded {folded} nodes and inlined {inlined} If branches on the fixed inputs")
    return model, notes


def _shaped(name: str, flat: np.ndarray, tt: Any) -> np.ndarray:
    """The value in the input's declared shape (a dynamic dim takes what the value leaves for it)."""
    from .graph import dim_size

    if not tt.HasField("shape"):
        return flat.reshape(()) if flat.size == 1 else flat
    dims = [dim_size(d) for d in tt.shape.dim]
    known = int(np.prod([d for d in dims if d is not None]))
    dynamic = [i for i, d in enumerate(dims) if d is None]
    if len(dynamic) <= 1 and known and flat.size % known == 0:
        shape = [flat.size // known if d is None else d for d in dims]
        if int(np.prod(shape)) == flat.size:
            return flat.reshape(shape)
    raise UsageError(f"--fix-input {name}: {flat.size} value(s) do not fill the input's shape "
                     f"{['?' if d is None else d for d in dims]}")


def fold(model: Any) -> tuple[int, int]:
    """Constant-fold and inline constant ``If`` nodes until neither changes anything;
    returns (nodes folded, If nodes inlined)."""
    from .constfold import fold_constants
    from .graph import infer_shapes

    folded = inlined = 0
    while True:
        n = fold_constants(model)
        k = inline_constant_ifs(model)
        folded, inlined = folded + n, inlined + k
        if not n and not k:
            return folded, inlined
        model.CopyFrom(infer_shapes(model))


def inline_constant_ifs(model: Any) -> int:
    """Replace every top-level ``If`` whose condition is an initializer by its taken branch."""
    from onnx import numpy_helper

    g = model.graph
    consts = {i.name: i for i in g.initializer}
    taken = {v for n in g.node for v in list(n.input) + list(n.output)} | set(consts) | {i.name for i in g.input}
    nodes, inlined = [], 0
    for node in g.node:
        if node.op_type != "If" or node.domain not in ("", "ai.onnx") or node.input[0] not in consts:
            nodes.append(node)
            continue
        cond = numpy_helper.to_array(consts[node.input[0]])
        if cond.size != 1:
            nodes.append(node)
            continue
        which = "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"
        branch = next(a.g for a in node.attribute if a.name == which)
        nodes += _inline(g, node, branch, f"{node.name or node.output[0]}/{which.split('_')[0]}/", taken)
        inlined += 1
    if inlined:
        del g.node[:]
        g.node.extend(nodes)
    return inlined


def _inline(g: Any, node: Any, branch: Any, prefix: str, taken: set[str]) -> list[Any]:
    """The branch's nodes, its values renamed under ``prefix``, writing the ``If``'s outputs."""
    from onnx import helper

    local = [o for n in branch.node for o in n.output if o] + [i.name for i in branch.initializer]
    rename: dict[str, str] = {}
    for name in local:
        new, k = prefix + name, 1
        while new in taken:
            new, k = f"{prefix}{name}_{k}", k + 1
        taken.add(new)
        rename[name] = new
    produced = {o for n in branch.node for o in n.output if o}
    copies, wired = [], set()
    for out, target in zip(branch.output, node.output):
        if target and out.name in produced and out.name not in wired:
            rename[out.name] = target  # the producing node writes the If's output directly
            wired.add(out.name)
    for init in branch.initializer:
        copy = type(init)()
        copy.CopyFrom(init)
        copy.name = rename[init.name]
        g.initializer.append(copy)
    for n in branch.node:
        copy = type(n)()
        copy.CopyFrom(n)
        _rename_node(copy, rename)
        copy.name = prefix + (n.name or n.output[0])
        copies.append(copy)
    for out, target in zip(branch.output, node.output):  # an outer value, an initializer, or an output twice
        if target and rename.get(out.name) != target:
            copies.append(helper.make_node("Identity", [rename.get(out.name, out.name)], [target],
                                           name=f"{prefix}{target}/identity"))
    return copies


def _rename_node(node: Any, rename: dict[str, str]) -> None:
    node.input[:] = [rename.get(i, i) for i in node.input]
    node.output[:] = [rename.get(o, o) for o in node.output]
    for a in node.attribute:  # nested subgraphs read the branch's values from their outer scope
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in sub.node:
                _rename_node(n, rename)
