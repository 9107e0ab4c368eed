"""Quantize a float32 ``.tflite`` with ai-edge-quantizer (no TensorFlow).

Three modes, each one of ai-edge-quantizer's recipes:

* ``"dynamic"``: int8 weights, float activations quantized on the fly by the kernels
  (``dynamic_wi8_afp32``, with fully-connected weights per tensor instead of per channel: the
  hybrid fully-connected kernel of tflite-runtime 2.14 reads only the first scale and silently
  computes garbage from per-channel weights; conv kernels handle per-channel);
* ``"int8"``: int8 weights and activations with ranges calibrated on sample inputs
  (``static_wi8_ai8``), one sample at a time with a progress bar. A tensor's range is the min/max
  over all samples (like onnxruntime's MinMax), not ai-edge-quantizer's default moving average of
  per-sample ranges, which clips (``benchmarks/NOTES.md`` has the measurement). A DIV by a
  computed divisor stays float: LiteRT's int8 DIV stops when the divisor rounds to its zero point;
* ``"fp16"``: float16 weights, float32 compute (the ``float_casting`` algorithm on the ops
  that carry weights: fully-connected, conv, depthwise and transposed conv, embedding lookup),
  each weight read through a DEQUANTIZE op.

The result stays a drop-in for the float model: float32 inputs and outputs under the same
SignatureDef names, and the tensors behind them carry those names too. For ``"int8"``, the graph
inputs and outputs are left out of the recipe, so the quantizer puts a QUANTIZE after each input
and a DEQUANTIZE before each output; ``int8_io=True`` then removes those boundary ops here, on the
flatbuffer object API, so the model takes and returns int8 with the quantization parameters on
its I/O tensors (what a microcontroller wants).

ai-edge-quantizer leaves every operator code at version 1. Both LiteRT and tflite-runtime 2.14
register every builtin kernel from version 1 and pick the kernel by tensor types, so such files
run in both; the versions are left as they are. XNNPACK does not read them either: it delegates
int8 CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, ... at version 1 (:mod:`.xnnpack` shows what it runs).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Any

import numpy as np

from ..._progress import Bars
from ...errors import DataError, ModelFormatError, UsageError

__all__ = ["quantize", "MODES"]

SIGNATURE = "serving_default"
MAX_FLATBUFFER = 1 << 31  # flatbuffers address with signed 32-bit offsets
MODES = {
    "dynamic": "dynamic range int8 (ai-edge-quantizer dynamic_wi8_afp32, fully-connected per tensor): "
               "int8 weights, float activations",
    "int8": "static int8 (ai-edge-quantizer static_wi8_ai8)",
    "fp16": "float16 weights (ai-edge-quantizer float_casting), float32 compute",
}


def quantize(data: bytes, mode: str, *, calibration: list[dict[str, np.ndarray]] | None = None,
             int8_io: bool = False, float_ops: tuple[str, ...] = (),
             float_scopes: tuple[str, ...] = ()) -> tuple[bytes, list[str]]:
    """Quantize the float32 TFLite model ``data``; returns the new bytes and notes for the user.

    ``calibration`` (mode ``"int8"`` only) is a list of feed dicts keyed by the signature's input
    names, one sample each (arrays with the model's input shapes). ``int8_io=True`` (mode ``"int8"``
    only) makes the float inputs and outputs int8. ``float_ops`` (mode ``"int8"``): builtin op names
    left float, e.g. ``("SOFTMAX",)``, which XNNPACK runs in float only (a DEQUANTIZE before the op and,
    unless it ends the graph, a QUANTIZE after it: both XNNPACK ops). ``float_scopes`` (mode ``"int8"``):
    regexes on ai-edge-quantizer's op scopes (output tensor names joined by ``;``) whose ops stay float
    (``--exclude-nodes``, ``--float-tail``; :mod:`edgeops.convert.float_tail`).
    """
    from ...formats.tflite_file import read_tflite

    if mode not in MODES:
        raise UsageError(f"unknown quantization mode {mode!r}; use one of {', '.join(MODES)}")
    if int8_io and mode != "int8":
        raise UsageError(f"int8 inputs/outputs need mode 'int8' (calibrated ranges), not {mode!r}")
    summary = read_tflite(data, source="the model to quantize")
    int8 = mode == "int8"
    divisions = _computed_divisions(data) if int8 else []
    notes, qsvs = [MODES[mode]], None
    recipe = _recipe(mode, float_ops if int8 else (), (*float_scopes, *divisions) if int8 else ())
    if mode == "int8":
        samples = _check_samples(calibration, summary.inputs)
        qsvs = _calibrate(data, recipe, samples)
        notes[0] += f", {len(samples)} calibration samples (min/max ranges)"
        if divisions:
            notes.append(f"{len(divisions)} DIV op(s) by a computed divisor kept float (an int8 divisor that "
                         "rounds to its zero point stops LiteRT)")
    elif calibration:
        notes.append(f"calibration samples are not used by mode {mode!r}; ignored")
    out = _run_quantizer(data, recipe, qsvs, mode)
    out, io_notes = _finish(out, int8_io)
    notes += io_notes
    try:
        read_tflite(out, source="the quantized model")
    except ModelFormatError as exc:  # never hand the user a file that may crash an interpreter
        raise ModelFormatError(f"internal error: quantization produced an invalid model ({exc}); "
                               "please report it") from exc
    notes.append(f"{len(data)} -> {len(out)} bytes ({len(out) / len(data):.0%} of the float model)")
    return out, notes


def _recipe(mode: str, float_ops: tuple[str, ...] = (), float_scopes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The ai-edge-quantizer recipe for ``mode`` (graph I/O and ``float_ops`` kept float for ``int8``)."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithms.nonlinear_quantize import float_casting

    names, ops = algorithm_manager.AlgorithmName, qtyping.TFLOperationName
    manager = recipe_manager.RecipeManager()
    if mode == "dynamic":  # fully-connected per tensor: tflite-runtime 2.14 reads one scale in hybrid FC
        manager.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        manager.add_dynamic_config(".*", ops.FULLY_CONNECTED, 8, qtyping.QuantGranularity.TENSORWISE)
        return manager.get_quantization_recipe()
    if mode == "int8":
        manager.load_quantization_recipe(recipe.static_wi8_ai8())
        for op in (ops.INPUT, ops.OUTPUT, *(getattr(ops, name) for name in float_ops)):
            manager.add_quantization_config(".*", op, None, names.NO_QUANTIZE)
        for scope in float_scopes:  # added after ".*": the later matching entry wins
            manager.add_quantization_config(scope, ops.ALL_SUPPORTED, None, names.NO_QUANTIZE)
        return manager.get_quantization_recipe()
    fp16 = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
    for op in sorted(float_casting.SUPPORTED_WEIGHT_QUANT_OPS):
        manager.add_quantization_config(".*", op, fp16, names.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def _computed_divisions(data: bytes) -> list[str]:
    """Exact scope regexes of the DIV ops whose divisor is computed at run time, kept float in int8.

    LiteRT's int8 DIV refuses a divisor equal to its zero point (``div.cc data[i] != zero_point``), and
    any computed divisor whose range spans a few hundred times its smallest value rounds there: Erf's
    chain divides by x, so the zoo's ViTs did not run. A DIV by a constant is a MUL already (``arith``)."""
    import re

    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(data)
    graph = model.subgraphs[0]
    found = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = fb.TFL_OP_CODE_TO_NAME.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if str(getattr(kind, "value", kind)) != "DIV" or len(op.inputs) < 2:
            continue
        buffer = model.buffers[graph.tensors[op.inputs[1]].buffer]
        if (buffer.data is None or not len(buffer.data)) and (buffer.offset or 0) <= 1:
            found.append("^" + re.escape(fb.get_op_scope(op, graph.tensors)) + "$")
    return found


def _check_samples(calibration: list[dict[str, np.ndarray]] | None, inputs: tuple) -> list[dict[str, np.ndarray]]:
    """Every sample names each input once, with the model's shape and a dtype that casts to it."""
    if not calibration:
        raise DataError("mode 'int8' needs calibration data: a list of feed dicts keyed by input name "
                        "(for example 100-500 typical inputs from a data file, arr[i:i+1] each)")
    wanted = {t.name: t for t in inputs}
    samples = []
    for k, feeds in enumerate(calibration):
        if not isinstance(feeds, dict) or set(feeds) != set(wanted):
            got = sorted(feeds) if isinstance(feeds, dict) else type(feeds).__name__
            raise DataError(f"calibration sample {k} has inputs {got}; the model's are {sorted(wanted)}")
        samples.append({name: _cast_sample(k, name, np.asarray(a), wanted[name]) for name, a in feeds.items()})
    return samples


def _cast_sample(k: int, name: str, a: np.ndarray, want: Any) -> np.ndarray:
    shape = want.shape
    if a.ndim != len(shape) or any(w is not None and w != s for w, s in zip(shape, a.shape)):
        hint = " (take samples as arr[i:i+1] to keep the batch axis)" if a.shape == tuple(shape[1:]) else ""
        raise DataError(f"calibration sample {k}: input {name!r} has shape {list(a.shape)}, the model wants "
                        f"{[d if d is not None else '?' for d in shape]}{hint}")
    dtype = np.dtype(want.dtype)
    if a.dtype != dtype and not (a.dtype.kind == dtype.kind or (a.dtype.kind in "iub" and dtype.kind == "f")):
        raise DataError(f"calibration sample {k}: input {name!r} is {a.dtype}, the model wants {dtype}")
    out = np.ascontiguousarray(a, dtype=dtype)
    if dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise DataError(f"calibration sample {k}: input {name!r} holds NaN or infinite values")
    return out


@contextlib.contextmanager
def _quiet():
    """Hide ai-edge-quantizer's own tqdm bars and interpreter debug warnings (ours are on stderr), and
    LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" line on file descriptor 2 (anything else
    the interpreter says there is written back afterwards)."""
    from ...runtime.backends.tflite import quiet_stderr

    with quiet_stderr(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _calibrate(data: bytes, recipe: list[dict[str, Any]], samples: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Tensor ranges from running the float model on each sample (per-sample loop, progress on stderr)."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    with Bars() as bars:
        bars.update("calibrating", 0, len(samples))  # draws on the real stderr, before _quiet hides it
        with _quiet():
            try:
                calib = calibrator.Calibrator(data, num_threads=min(os.cpu_count() or 1, 16),
                                              qsv_update_func=qsv_utils.min_max_update)
            except (ValueError, RuntimeError) as exc:
                raise UsageError(f"ai-edge-quantizer cannot run this model to calibrate it: {exc}") from exc
            for k, feeds in enumerate(samples):
                try:
                    calib.calibrate({SIGNATURE: [feeds]}, manager)
                except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
                    raise DataError(f"calibration failed on sample {k}: {exc}") from exc
                bars.update("calibrating", k + 1, len(samples))
    return calib.get_model_qsvs()


def _run_quantizer(data: bytes, recipe: list[dict[str, Any]], qsvs: dict[str, Any] | None, mode: str) -> bytes:
    from ai_edge_quantizer import quantizer

    try:
        with _quiet():
            q = quantizer.Quantizer(bytearray(data), recipe)
            result = q.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False)
    except ValueError as exc:  # ranges missing for a tensor (int8): the calibration data did not reach it
        error = DataError if qsvs is not None else UsageError
        raise error(f"ai-edge-quantizer could not quantize this model in mode {mode!r}: {exc}") from exc
    except (RuntimeError, KeyError, IndexError, TypeError, NotImplementedError) as exc:
        raise UsageError(f"ai-edge-quantizer failed on this model in mode {mode!r} ({type(exc).__name__}: {exc}); "
                         "try another mode") from exc
    if result.quantized_model is None:
        raise UsageError(f"ai-edge-quantizer returned no model in mode {mode!r}")
    return bytes(result.quantized_model)


def _finish(data: bytes, int8_io: bool) -> tuple[bytes, list[str]]:
    """Drop the boundary QUANTIZE/DEQUANTIZE ops (``int8_io``), name the I/O tensors after the
    signature, and repack as one plain flatbuffer with 16-byte-aligned constants.

    ai-edge-quantizer stores the weights after the flatbuffer (a buffer's ``offset`` from the file
    start and ``size``) once they total 256 KiB or more; they are read back here and written inline,
    which every interpreter reads (TFLite Micro and tflite-runtime before 2.16 do not know offset
    buffers) and which a flatbuffer holds up to 2 GB."""
    import flatbuffers

    from .writer import _aligned_buffer_class, schema

    tfl = schema()
    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    notes = _strip_io(model, tfl) if int8_io else []
    _name_io_tensors(model, tfl)
    _zero_biases(model, tfl)
    aligned = _aligned_buffer_class()
    for b in model.buffers:
        b.__class__ = aligned
        b.data = _buffer_bytes(data, b)
        b.offset, b.size = 0, 0
    total = sum(len(b.data) if b.data is not None else 0 for b in model.buffers)
    if total >= MAX_FLATBUFFER - (1 << 20):
        raise UsageError(f"the quantized model holds {total} bytes of constants; a .tflite with its weights "
                         "inside the flatbuffer is limited to 2 GB, so it cannot be written here")
    builder = flatbuffers.Builder(1024 + total)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), notes


def _zero_biases(model: Any, tfl: Any) -> None:
    """Give every int8 FULLY_CONNECTED without a bias (MatMul and bias-free Gemm export as one) a zero int32
    bias at the scale TFLite wants (input scale x each output channel's weight scale). tflite-runtime 2.14
    on aarch64, the Raspberry Pi's runtime, dereferences the missing bias of an int8 FULLY_CONNECTED and
    crashes (SIGSEGV, in its builtin kernels and XNNPACK alike); x86 builds and LiteRT do not. Costs 4
    bytes an output channel."""
    fc = {i for i, c in enumerate(model.operatorCodes)
          if max(c.builtinCode, c.deprecatedBuiltinCode) == tfl.BuiltinOperator.FULLY_CONNECTED}
    for g in model.subgraphs:
        for op in g.operators:
            if op.opcodeIndex not in fc or len(op.inputs) < 2:
                continue
            inputs = [int(i) for i in op.inputs]
            if len(inputs) > 2 and inputs[2] >= 0:
                continue
            x, w = g.tensors[inputs[0]], g.tensors[inputs[1]]
            if x.type != tfl.TensorType.INT8 or w.type != tfl.TensorType.INT8 or w.shape is None or len(w.shape) != 2:
                continue
            if x.quantization is None or w.quantization is None or x.quantization.scale is None \
                    or w.quantization.scale is None:
                continue
            n = int(w.shape[0])
            w_scale = np.broadcast_to(np.asarray(w.quantization.scale, np.float64), (n,))
            q = tfl.QuantizationParametersT()
            q.scale = [float(s) for s in float(x.quantization.scale[0]) * w_scale]
            q.zeroPoint = [0] * n
            q.quantizedDimension = 0
            buf = tfl.BufferT()
            buf.data = np.zeros(4 * n, np.uint8)
            model.buffers.append(buf)
            t = tfl.TensorT()
            t.shape = [n]
            t.type = tfl.TensorType.INT32
            t.buffer = len(model.buffers) - 1
            t.name = (g.tensors[int(op.outputs[0])].name or b"fc") + b"/zero_bias"
            t.quantization = q
            g.tensors.append(t)
            op.inputs = [*inputs[:2], len(g.tensors) - 1]


def _buffer_bytes(data: bytes, b: Any) -> bytes | None:
    """A buffer's bytes: its data vector, or ``size`` bytes at ``offset`` from the start of the file
    (the schema keeps data outside the flatbuffer only where ``offset > 1``)."""
    if (b.offset or 0) > 1:
        end = b.offset + (b.size or 0)
        if end > len(data):
            raise ModelFormatError(f"internal error: ai-edge-quantizer wrote a buffer at bytes {b.offset}-{end} "
                                   f"of a {len(data)}-byte model; please report it")
        return bytes(data[b.offset:end]) if b.size else None
    return np.asarray(b.data, np.uint8).tobytes() if b.data is not None and len(b.data) else None


def _strip_io(model: Any, tfl: Any) -> list[str]:
    """Make float graph I/O int8: an input read only by one QUANTIZE to int8 becomes that op's
    output; an output written by a DEQUANTIZE from int8 becomes that op's input."""
    g = model.subgraphs[0]
    code = {i: c.builtinCode for i, c in enumerate(model.operatorCodes)}
    readers: dict[int, list[Any]] = {}
    for op in g.operators:
        for i in op.inputs:
            readers.setdefault(int(i), []).append(op)
    writer = {int(o): op for op in g.operators for o in op.outputs}
    remap, kept_float = {}, []
    for t in list(g.inputs):
        ops = readers.get(int(t), [])
        if (len(ops) == 1 and code[ops[0].opcodeIndex] == tfl.BuiltinOperator.QUANTIZE
                and g.tensors[ops[0].outputs[0]].type == tfl.TensorType.INT8 and int(t) not in list(g.outputs)):
            remap[int(t)] = int(ops[0].outputs[0])
            g.operators.remove(ops[0])
        elif g.tensors[t].type == tfl.TensorType.FLOAT32:
            kept_float.append(g.tensors[t].name.decode())
    for t in list(g.outputs):
        op = writer.get(int(t))
        if (op is not None and code[op.opcodeIndex] == tfl.BuiltinOperator.DEQUANTIZE
                and g.tensors[op.inputs[0]].type == tfl.TensorType.INT8):
            remap[int(t)] = int(op.inputs[0])
            g.operators.remove(op)
        elif g.tensors[t].type == tfl.TensorType.FLOAT32:
            kept_float.append(g.tensors[t].name.decode())
    g.inputs = [remap.get(int(i), int(i)) for i in g.inputs]
    g.outputs = [remap.get(int(i), int(i)) for i in g.outputs]
    for sig in model.signatureDefs or []:
        for m in list(sig.inputs or []) + list(sig.outputs or []):
            m.tensorIndex = remap.get(m.tensorIndex, m.tensorIndex)
    _prune_tensors(model)
    notes = ["int8 inputs and outputs (quantization parameters on the I/O tensors)"]
    if kept_float:
        notes.append(f"kept float32 (next to ops that are not quantized): {', '.join(kept_float)}")
    return notes


def _prune_tensors(model: Any) -> None:
    """Drop the tensors of subgraph 0 that nothing refers to any more (the old float I/O) and renumber."""
    g = model.subgraphs[0]
    used = {int(i) for i in list(g.inputs) + list(g.outputs)}
    for op in g.operators:
        used.update(int(i) for i in list(op.inputs) + list(op.outputs) + list(op.intermediates or []) if i >= 0)
    remap = {old: new for new, old in enumerate(sorted(used))}
    g.tensors = [g.tensors[i] for i in sorted(used)]
    for op in g.operators:
        op.inputs = [remap[int(i)] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [remap[int(i)] for i in op.outputs]
        if op.intermediates is not None and len(op.intermediates):
            op.intermediates = [remap[int(i)] for i in op.intermediates]
    g.inputs = [remap[int(i)] for i in g.inputs]
    g.outputs = [remap[int(i)] for i in g.outputs]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for m in list(sig.inputs or []) + list(sig.outputs or []):
                m.tensorIndex = remap[m.tensorIndex]


def _name_io_tensors(model: Any, tfl: Any) -> None:
    """The tensor behind each signature name carries that name (another holder gets a suffix)."""
    for sig in model.signatureDefs or []:
        tensors = model.subgraphs[sig.subgraphIndex].tensors
        for m in list(sig.inputs or []) + list(sig.outputs or []):
            name = m.name if isinstance(m.name, bytes) else m.name.encode()
            target = tensors[m.tensorIndex]
            if target.name == name:
                continue
            for t in tensors:
                if t.name == name:
                    t.name = name + (b"/int8" if t.type == tfl.TensorType.INT8 else b"/float")
            target.name = name
