"""ONNX -> TFLite: prepare the graph, check every node, convert through the registry, write.

Every node is checked before anything is converted, and every unsupported one is reported
together (node name, op type, reason) in one :class:`~edgeops.errors.UnsupportedOpsError`.
By default the ``.tflite`` is a drop-in for the ONNX model: the same input/output names (in the
SignatureDef and on the tensors), shapes and layout. ``channels_last=True`` makes rank-3..5 I/O
channels-last instead (NHWC), which saves the boundary transposes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...errors import ModelFormatError, UnsupportedOpsError
from .arith import fold_constant_arithmetic
from .catalog import load_all
from .context import Context, channels_last, identity
from .peephole import fold_transpose_into_fully_connected, slice_read_split_outputs
from .prepare import prepare
from .registry import REGISTRY, Unsupported


@dataclass
class Exported:
    data: bytes
    ops: dict[str, int]  # TFLite builtin histogram
    inputs: list[tuple[str, tuple[int, ...]]]
    outputs: list[tuple[str, tuple[int, ...]]]
    notes: list[str] = field(default_factory=list)
    folded: dict[str, int] = field(default_factory=dict)  # constant-arithmetic rewrites (``arith``) by name
    ops_unfolded: int = 0  # TFLite ops before those rewrites


def export(model: Any, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
           channels_last_io: bool = False, description: str = "edgeops", for_int8: bool = False) -> Exported:
    """Convert an ``onnx.ModelProto`` to TFLite bytes (float32); ``for_int8``: the result will be
    quantized to static int8, so activations are written as ops with int8 kernels (see ``prepare``)."""
    load_all()
    model, notes = prepare(model, input_shapes, for_int8=for_int8)
    ctx = Context(model)
    problems = check(ctx)
    if problems:
        raise UnsupportedOpsError(_describe(problems), problems)

    inits = set(ctx.consts)
    graph_inputs = [i.name for i in model.graph.input if i.name not in inits]
    io_perm = {}
    for name in graph_inputs + [o.name for o in model.graph.output]:
        r = ctx.rank(name) if name in ctx.shapes else 0
        io_perm[name] = channels_last(r) if channels_last_io and r >= 3 else identity(r)
    for name in graph_inputs:
        ctx.w.inputs.append(ctx.output(name, io_perm[name]))

    failed: set[str] = set()
    for node in model.graph.node:
        if any(i in failed for i in node.input):
            failed.update(node.output)
            continue
        try:
            REGISTRY[node.op_type].convert(node, ctx)
        except Unsupported as exc:
            problems.append((node.name, node.op_type, exc.reason))
            failed.update(node.output)
    if problems:
        raise UnsupportedOpsError(_describe(problems), problems)

    for out in model.graph.output:
        ctx.w.outputs.append(_final_output(ctx, out.name, io_perm[out.name]))
    if fold_transpose_into_fully_connected(ctx.w):
        notes.append("NHWC -> NCHW transpose before the classifier folded into its weights")
    unfolded = len(ctx.w.ops)
    folded = fold_constant_arithmetic(ctx.w)
    if folded:
        notes.append(f"constant arithmetic folded ({unfolded} -> {len(ctx.w.ops)} ops: "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(folded.items())) + ")")
    ctx.w.fuse_activations()
    ctx.w.drop_dead_ops()
    slice_read_split_outputs(ctx.w)  # after the dead ops went: their inputs are unread now
    ctx.w.prune()
    out_names = [o.name for o in model.graph.output]
    data = ctx.w.serialize(graph_inputs, out_names, description)
    from ...formats.tflite_file import read_tflite

    try:
        read_tflite(data, source="the converted model")
    except ModelFormatError as exc:  # a converter bug: never hand the user a file that may crash an interpreter
        raise ModelFormatError(f"internal error: the TFLite writer produced an invalid model ({exc}); please report it") from exc
    shapes = {t: ctx.w.tensors[i].shape for t, i in zip(graph_inputs + out_names, ctx.w.inputs + ctx.w.outputs)}
    return Exported(data, dict(Counter(op.code for op in ctx.w.ops).most_common()),
                    [(n, shapes[n]) for n in graph_inputs], [(n, shapes[n]) for n in out_names], notes,
                    dict(sorted(folded.items())), unfolded)


_TYPES = {"float32", "int32", "int64", "bool", "int8", "uint8", "int16"}


def check(ctx: Context) -> list[tuple[str, str, str]]:
    """Every node that no converter takes or whose check refuses it."""
    problems = []
    for node in ctx.graph.node:
        spec = REGISTRY.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if spec is None:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
            problems.append((node.name, op, "no TFLite converter for this op"))
            continue
        bad = [o for o in node.output if o and ctx.dtype(o).name not in _TYPES]
        if bad:
            problems.append((node.name, node.op_type, f"{ctx.dtype(bad[0])} tensors (TFLite has no such type here)"))
            continue
        if spec.check is not None:
            try:
                reason = spec.check(node, ctx)
            except Unsupported as exc:
                reason = exc.reason
            if reason:
                problems.append((node.name, node.op_type, reason))
    return problems


def _final_output(ctx: Context, name: str, perm: tuple[int, ...]) -> int:
    """The tensor that holds graph output ``name`` in its I/O layout, named ``name``."""
    if name in ctx.consts or name not in ctx.values:  # a constant output: copied by a RESHAPE into a real one
        dtype = ctx.dtype(name)
        src = ctx.get(name, perm, dtype=dtype if dtype.name in _TYPES else None)  # int64 stays int64
        return ctx.reshape(src, ctx.w.tensors[src].shape, ctx.w.tensor(name, ctx.w.tensors[src].shape,
                                                                       ctx.w.tensors[src].dtype))
    t = ctx.get(name, perm)
    if t in ctx.w.inputs or t in ctx.w.outputs:  # an output that is an input (or another output) needs its own tensor
        return ctx.reshape(t, ctx.w.tensors[t].shape, ctx.w.tensor(name, ctx.w.tensors[t].shape, ctx.w.tensors[t].dtype))
    ctx.w.rename(t, name)  # the signature and the tensor both carry the ONNX name
    return t


def _describe(problems: list[tuple[str, str, str]]) -> str:
    ops = Counter(op for _, op, _ in problems)
    lines = [f"{len(problems)} node(s) cannot be converted to TFLite ({', '.join(f'{k} x{v}' for k, v in ops.items())}):"]
    lines += [f"  {name or '(unnamed)'} [{op}]: {reason}" for name, op, reason in problems[:50]]
    if len(problems) > 50:
        lines.append(f"  ... and {len(problems) - 50} more")
    return "\n".join(lines)
