"""The TFLite and C-array path of ``edgeops.convert``: export, quantize, check, write.

ONNX in; the TensorFlow-free exporter (``convert/tflite``) writes a float32 ``.tflite`` that is a
drop-in for the ONNX model (same I/O names, shapes and layout unless ``channels_last``);
ai-edge-quantizer quantizes it (dynamic int8, static int8 with calibration, fp16 weights);
the result must pass the flatbuffer validator and run one sample in the runtime before
anything is written. ``format="c"`` writes ``NAME.c``/``NAME.h`` with the model as an aligned byte
array and a tensor-arena estimate for TFLite Micro.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._io import atomic_write
from ..errors import EdgeOpsError, InferenceError, UsageError


def export_and_quantize(model: Any, mode: str, *, input_shapes: dict[str, tuple[int, ...]] | None,
                        channels_last: bool, calibration: str | None, int8_io: bool,
                        report: Any, xnnpack: bool = True, float_nodes: list[str] | tuple[str, ...] = (),
                        float_tail: int = 0) -> bytes:
    """The ``.tflite`` bytes for ``model`` (an ``onnx.ModelProto``) in quantization ``mode``; fills ``report``
    (ops, steps, nodes quantized; ``extra["folded"]``: constant-arithmetic rewrites by name and
    ``extra["ops_before_folding"]``: the TFLite op count before them). ``xnnpack``: the target runs
    LiteRT's XNNPACK delegate, so int8 activations are written as ops it runs in int8, and
    ``extra["xnnpack"]`` (and a step, when it leaves ops to built-in kernels) tells what it runs.
    ``float_nodes`` (ONNX node names, ``--exclude-nodes``) and ``float_tail`` (``--float-tail N``) keep
    those ops float in static int8 (:mod:`.float_tail`)."""
    from .tflite import export

    if int8_io and mode != "int8":
        raise UsageError("--int8-io needs --quantize int8 (static int8 with calibration)")
    exported = export(model, input_shapes=input_shapes, channels_last_io=channels_last, for_int8=xnnpack and mode == "int8")
    report.steps += exported.notes
    report.extra["folded"] = exported.folded  # constant arithmetic folded away, by rewrite (tflite/arith.py)
    report.extra["ops_before_folding"] = exported.ops_unfolded
    report.steps.append(f"exported to TFLite without TensorFlow ({sum(exported.ops.values())} ops"
                        f"{', channels-last I/O' if channels_last else ', same I/O names, shapes and layout as the ONNX model'})")
    data = exported.data
    if mode != "none":
        from .tflite.quantize import quantize

        samples = _samples(calibration, exported.inputs) if mode == "int8" else None
        floats = ("SOFTMAX",) if xnnpack and not int8_io and "SOFTMAX" in exported.ops else ()
        scopes = _float_scopes(data, model, float_nodes, float_tail, report) if mode == "int8" else []
        data, notes = quantize(data, mode, calibration=samples, int8_io=int8_io, float_ops=floats,
                               float_scopes=tuple(scopes))
        if floats and mode == "int8":
            notes.append("SOFTMAX kept float (XNNPACK has no int8 softmax; a built-in one would cut the "
                         "delegated graph, and float keeps small probabilities)")
        report.steps += notes
    summary = _check(data)
    report.ops_after = dict(summary.ops)
    report.nodes_quantized = quantized_ops(data) if mode != "none" else 0
    if xnnpack:
        _xnnpack_plan(data, report)
    return data


def _float_scopes(data: bytes, model: Any, nodes: list[str] | tuple[str, ...], tail: int, report: Any) -> list[str]:
    """ai-edge-quantizer scope regexes of the ops kept float by ``--exclude-nodes`` and ``--float-tail``."""
    if not nodes and not tail:
        return []
    from . import graph
    from .float_tail import tflite_scopes, tflite_tail

    scopes = tflite_scopes(data, graph.name_nodes(model), list(nodes)) if nodes else []
    if nodes:
        report.steps.append(f"--exclude-nodes: {len(scopes)} TFLite op(s) of {len(nodes)} node(s) kept float")
    if tail:
        found = tflite_tail(data, tail)
        report.steps.append(f"float tail: the last {tail} compute layer(s) and what follows them to the outputs "
                            f"kept float, {len(found)} TFLite op(s)")
        scopes += [s for s in found if s not in scopes]
    return scopes


def _xnnpack_plan(data: bytes, report: Any) -> None:
    """What LiteRT's XNNPACK delegate runs: every op it refuses runs on a built-in kernel and cuts the
    delegated graph, which made int8 slower than float (issue 12)."""
    try:
        from .tflite.xnnpack import plan

        p = plan(data)
    except ImportError:  # tflite-runtime only: no LiteRT to ask
        return
    report.extra["xnnpack"] = p.to_dict()
    if p.fallback:
        report.steps.append(p.describe())


def _samples(path: str | None, inputs: list[tuple[str, tuple[int, ...]]]) -> list[dict[str, np.ndarray]]:
    """Calibration feeds, one sample each, laid out as the exported model's inputs."""
    from ..datafiles import load_calibration
    from ..errors import DataError

    arrays = load_calibration(path, [n for n, _ in inputs])
    n = next(iter(arrays.values())).shape[0]
    feeds = []
    for i in range(n):
        feed = {}
        for name, shape in inputs:
            a = np.asarray(arrays[name][i:i + 1])
            if a.shape != shape and a.ndim == len(shape) and a.ndim >= 3 and \
                    a.shape == (shape[0], shape[-1], *shape[1:-1]):
                a = np.moveaxis(a, 1, -1)  # channels-last I/O, channels-first data: the user's data stays NCHW
            if a.shape != shape:
                raise DataError(f"calibration data for {name!r} has samples of shape {list(a.shape[1:])}, the model "
                                f"wants {list(shape[1:])} (samples along axis 0)")
            feed[name] = np.ascontiguousarray(a)
        feeds.append(feed)
    return feeds


def _check(data: bytes) -> Any:
    """The result must pass the flatbuffer validator and run once in the runtime: never write a bad file."""
    import tempfile

    from ..formats.tflite_file import read_tflite
    from ..loading import load

    summary = read_tflite(data, source="the converted model")
    with tempfile.TemporaryDirectory(prefix="edgeops-tflite-check-") as tmp:
        path = os.path.join(tmp, "check.tflite")
        with open(path, "wb") as f:
            f.write(data)
        try:
            model = load(path)
            feeds = {s.name: np.zeros([d or 1 for d in s.shape or ()], s.dtype) for s in model.inputs}
            model.run(feeds)
        except EdgeOpsError as exc:
            raise InferenceError(f"the converted TFLite model does not run ({exc}); nothing written. "
                                 "Please report this with the model") from exc
    return summary


def quantized_ops(data: bytes) -> int:
    """Operators that read an int8 or float16 constant (their weights were quantized)."""
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    sub = model.subgraphs[0]
    low = {tfl.TensorType.INT8, tfl.TensorType.FLOAT16, tfl.TensorType.INT16}
    count = 0
    for op in sub.operators:
        ins = [sub.tensors[i] for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        if any(t.type in low and (model.buffers[t.buffer].data is not None or model.buffers[t.buffer].offset > 1)
               for t in ins):
            count += 1
    return count


def write(data: bytes, out: str, fmt: str, codegen: bool = False, blob: bool = False) -> dict[str, Any]:
    """Write ``.tflite`` bytes, or ``NAME.c`` + ``NAME.h`` for ``fmt == "c"`` (the model as a byte array
    for TFLite Micro, or with ``codegen`` compiled to C by :mod:`.codegen`); returns report extras."""
    if fmt == "tflite":
        atomic_write(out, data)
        return {}
    if codegen:
        from .codegen import KERNEL_DIR, generate_c

        gen = generate_c(data, out, blob=blob)
        extra_blob = {"graph_hash": gen.graph_hash, "blob_bytes": gen.blob_bytes} if blob else {}
        return {"header": gen.h_path, "symbol": gen.symbol, "codegen": True, "arena_bytes": gen.arena_bytes,
                "const_bytes": gen.weight_bytes, "codegen_notes": gen.notes, **extra_blob,
                "kernels": str(KERNEL_DIR) if KERNEL_DIR.is_dir() else None}
    from .carray import write_c_array

    result = write_c_array(data, out)
    m = result.measured
    return {"header": result.h_path, "symbol": result.symbol, "model_bytes": result.size,
            "arena_bytes": result.arena_bytes, "arena_estimate_bytes": result.arena.bytes,
            "arena_method": result.arena.method,
            "arena_measured_bytes": m.minimum if m is not None else None,
            "arena_margin_bytes": m.margin if m is not None and m.minimum is not None else None,
            "arena_measurement": m.note if m is not None else None}
