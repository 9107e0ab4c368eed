"""``edgeops.convert``: ONNX in, an optimized and quantized ONNX for a device target out.

Steps, each recorded in the report: check the target allows what was asked
(before any work), load, opset upgrade when quantization needs it, fix dims,
shape inference, optimization (onnxruntime basic level, saved standalone),
quantization, a check that the result passes onnx's checker and opens in
onnxruntime, optional validation gates, then an atomic write of the model and of
its reference data profile. A failure leaves no output file behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write, output_folder
from ..errors import CheckFailed, DataError, EdgeOpsError, UsageError
from ..formats import check_model_path
from ..targets import Target, get_target
from . import graph
from . import quantize as qz

MODES = ("none", "fp16", "dynamic", "int8")


@dataclass
class ConvertReport:
    source: str
    output: str
    target: str
    quantize: str
    size_before: int = 0
    size_after: int = 0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    nodes_quantized: int = 0
    nodes_excluded: list[str] = field(default_factory=list)
    op_types_excluded: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    profile: str | None = None
    validation: dict[str, Any] | None = None
    format: str = "onnx"
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific: C header, symbol, arena estimate
    notes: list[str] = field(default_factory=list)  # routine fallbacks: in --json and with -v, not warnings

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["size_ratio"] = self.size_before / self.size_after if self.size_after else None
        return d


def choose_mode(target: Target, quantize_mode: str | None, calibration: str | None) -> str:
    """The quantization mode: the one asked for if the target allows it, else the target's best default."""
    if quantize_mode is not None:
        if quantize_mode not in MODES:
            raise UsageError(f"--quantize must be one of {', '.join(MODES)}, not {quantize_mode!r}")
        if quantize_mode != "none" and quantize_mode not in target.quantization:
            raise UsageError(f"target {target.name} does not take {quantize_mode} models "
                             f"(it takes: {', '.join(target.quantization)})")
        if quantize_mode == "int8" and not calibration:
            raise UsageError("--quantize int8 (static) needs --calibration DATA: a .npz of representative inputs")
        return quantize_mode
    if calibration and "int8" in target.quantization:
        return "int8"
    if target.default_quantization != "int8":
        return target.default_quantization
    if "dynamic" in target.quantization:
        return "dynamic"
    raise UsageError(f"target {target.name} needs int8 models: give --calibration DATA")


def convert(model: str | os.PathLike[str], output: str | os.PathLike[str], *, target: str | Target | None = None,
            quantize: str | None = None, calibration: str | None = None, calibration_method: str = "minmax",
            per_channel: bool | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None,
            exclude_nodes: list[str] | tuple[str, ...] = (), exclude_op_types: list[str] | tuple[str, ...] = (),
            format: str | None = None, validate: str | None = None, labels: str | None = None,
            gates: Any = None, force: bool = False, profile: bool = True,
            reduce_range: bool | None = None, channels_last: bool = False, int8_io: bool = False,
            fix_inputs: dict[str, Any] | None = None, float_tail: int = 0, codegen: bool = False) -> ConvertReport:
    """Convert ``model`` (.onnx, or a .tflite for ``format`` "c") for ``target`` and write ``output``; see the
    module docstring.

    ``reduce_range`` (default: on for x86-64 targets when the model has convolutions, off for Arm
    targets; :func:`edgeops.convert.quantize.weight_bits`, and the report says which and why) quantizes
    static int8 weights to 7 bits: x86 CPUs without VNNI multiply uint8 x int8 pairs into saturating int16
    sums, which wrecked the per-channel MobileNet-style example (99.7 % -> 90.6 % at 8 bits). The digits
    MLP (Gemm only) loses to the 7th bit instead (96.9 % -> 96.4 %), so Gemm/MatMul models keep 8 bits.
    ``validate`` (a data file) runs ``edgeops.validate`` with ``labels`` and ``gates``
    (:class:`edgeops.validate.Gates`) against the source model and refuses to write a
    model that fails them unless ``force``.
    ``format`` "tflite" (or an output ending in ``.tflite``) exports without TensorFlow and quantizes
    with ai-edge-quantizer; ``channels_last`` makes its I/O NHWC, ``int8_io`` (static int8) makes its
    I/O int8. ``format`` "c" (or ``.c``) writes ``NAME.c``/``NAME.h`` with the model as a byte array.
    ``fix_inputs`` (input name -> value(s), ``--fix-input``) makes those inputs constants and folds the
    graph around them (:mod:`edgeops.convert.fix_inputs`): an ``If`` on them becomes the branch taken.
    ``float_tail`` (static int8, ``--float-tail N``) keeps the last N compute layers and everything after
    them in float, as ``exclude_nodes`` keeps the nodes it names, for ONNX and TFLite alike
    (:mod:`edgeops.convert.float_tail`): the fix for detection and segmentation heads that int8 hurts.
    ``codegen`` (format "c") compiles the int8 model to C source that calls edgeops' own kernels
    (:mod:`edgeops.convert.codegen`) instead of writing the model as a byte array for TFLite Micro.
    A ``.tflite`` ``model`` (most microcontroller users have an int8 one) is written as it is, as C:
    format "c" only, and no option that would change the model.
    """
    started = time.perf_counter()
    src, out = os.fspath(model), os.fspath(output)
    tgt = get_target(target if target is not None else "generic-cpu")
    fmt = format or _format_of(out)
    if fmt not in tgt.formats:
        hint = "; C for microcontrollers is --target cortex-m" if fmt == "c" else ""
        raise UsageError(f"target {tgt.name} takes {', '.join(tgt.formats)} models, not {fmt}{hint}")
    if fmt not in ("onnx", "tflite", "c"):
        raise UsageError(f"--format must be onnx, tflite or c, not {fmt!r}")
    if fmt == "c" and not out.endswith(".c"):
        raise UsageError(f"--format c writes NAME.c and NAME.h: give -o NAME.c, not {out}")
    if codegen and fmt != "c":
        raise UsageError(f"--codegen compiles the model to C: give --format c (-o NAME.c), not {fmt}")
    if src.lower().endswith(".tflite"):
        given = [flag for flag, value in (
            ("--quantize", quantize), ("--calibration", calibration), ("--input-shape", input_shapes),
            ("--exclude-nodes", exclude_nodes), ("--exclude-op-types", exclude_op_types), ("--validate", validate),
            ("--labels", labels), ("--channels-last", channels_last), ("--int8-io", int8_io),
            ("--fix-input", fix_inputs), ("--float-tail", float_tail)) if value]
        return _convert_from_tflite(src, out, fmt, tgt, codegen, given, started)
    if fmt == "onnx" and (channels_last or int8_io):
        raise UsageError("--channels-last and --int8-io apply to --format tflite or c")
    if fmt != "onnx" and exclude_op_types:
        raise UsageError("--exclude-op-types applies to ONNX output (onnxruntime.quantization); for TFLite name "
                         "the nodes with --exclude-nodes, or keep the last layers float with --float-tail N")
    from .float_tail import check as check_tail

    float_tail = check_tail(float_tail)
    if fmt != "onnx" and validate and channels_last:
        raise UsageError("--validate compares the model with the ONNX source on the same data; "
                         "drop --channels-last (the default TFLite I/O matches the ONNX model)")
    mode = choose_mode(tgt, quantize, calibration)
    if calibration and mode != "int8":
        raise UsageError(f"--calibration is used by --quantize int8 only, not {mode}")
    if float_tail and mode != "int8":
        raise UsageError(f"--float-tail keeps the last layers out of static int8 (--quantize int8), not {mode}")
    if fmt != "onnx" and exclude_nodes and mode != "int8":
        raise UsageError(f"--exclude-nodes applies to TFLite output with --quantize int8, not {mode}")
    if per_channel is None:
        per_channel = True
    _check_outputs(src, out, fmt, inputs=(calibration, validate, labels))  # before any long work
    check_model_path(src)  # a missing source is the same fault, in the same words, with or without onnx
    onnx = graph.import_onnx()
    report = ConvertReport(src, out, tgt.name, mode, nodes_excluded=list(exclude_nodes),
                           op_types_excluded=list(exclude_op_types))
    if fmt != "onnx":
        return _convert_tflite(src, out, fmt, tgt, mode, report, input_shapes, channels_last, int8_io, calibration,
                               validate, labels, gates, force, profile, started, fixed=fix_inputs,
                               float_nodes=list(exclude_nodes), float_tail=float_tail, codegen=codegen)
    proto = graph.fit_ir_version(graph.name_nodes(graph.load(src)))
    reduce_range, weights = qz.weight_bits(tgt, proto, reduce_range)
    report.size_before = os.path.getsize(src)
    report.ops_before = graph.op_histogram(proto)
    missing = sorted(set(exclude_nodes) - {n.name for n in proto.graph.node})
    if missing:
        raise UsageError(f"--exclude-nodes names nodes the model does not have: {', '.join(missing)}")
    proto = _fix_inputs(proto, fix_inputs, report)

    with tempfile.TemporaryDirectory(prefix="edgeops-convert-") as tmp:
        step = os.path.join(tmp, "step.onnx")
        if mode in ("int8", "dynamic"):
            proto, note = graph.upgrade_opset(proto, graph.QUANT_MIN_OPSET)
            if note:
                report.steps.append(note)
        proto, notes = graph.fix_input_shapes(proto, dict(input_shapes or {}), static=tgt.static_shapes)
        report.steps += notes
        proto = graph.infer_shapes(proto)
        onnx.save(proto, step)
        optimized = os.path.join(tmp, "optimized.onnx")
        graph.optimize(step, optimized)
        report.steps.append("optimized (constant folding, fusions)")
        result = os.path.join(tmp, "result.onnx")
        mode = _mode_for_ops(mode, optimized, explicit=quantize is not None, report=report)
        _quantize(mode, optimized, result, tmp, calibration, calibration_method, per_channel, reduce_range,
                  list(exclude_nodes), list(exclude_op_types), report, weights=weights, float_tail=float_tail)
        if mode in ("int8", "dynamic"):
            onnx.save(graph.compact(onnx.load(result)), result)
        graph.check_runs(result)
        final = onnx.load(result)
        report.ops_after = graph.op_histogram(final)
        report.nodes_quantized = qz.quantized_nodes(final, mode)
        if validate:
            report.validation = _validate(src, result, validate, labels, gates, force)
        prof = _profile(result, calibration or validate) if profile and (calibration or validate) else None
        atomic_write(out, copy_from=result)
        if prof is not None:
            from ..validate import write_profile

            report.profile = os.path.splitext(out)[0] + ".profile.json"
            write_profile(prof, report.profile)
    report.size_after = os.path.getsize(out)
    report.seconds = time.perf_counter() - started
    return report


def _convert_tflite(src: str, out: str, fmt: str, tgt: Target, mode: str, report: ConvertReport,
                    input_shapes: dict[str, tuple[int, ...]] | None, channels_last: bool, int8_io: bool,
                    calibration: str | None, validate: str | None, labels: str | None, gates: Any, force: bool,
                    profile: bool, started: float, fixed: dict[str, Any] | None = None,
                    float_nodes: list[str] | None = None, float_tail: int = 0, codegen: bool = False) -> ConvertReport:
    from . import to_tflite

    if codegen and mode != "int8":
        raise UsageError(f"--codegen compiles int8 models: convert with --quantize int8 --calibration DATA, not {mode}")
    report.format = fmt
    report.size_before = os.path.getsize(src) if os.path.isfile(src) else 0
    proto = graph.load(src)
    report.ops_before = graph.op_histogram(proto)
    proto = _fix_inputs(proto, fixed, report)
    data = to_tflite.export_and_quantize(proto, mode, input_shapes=input_shapes, channels_last=channels_last,
                                         calibration=calibration, int8_io=int8_io, report=report,
                                         xnnpack="xnnpack" in tgt.tflite_delegates,
                                         float_nodes=float_nodes or [], float_tail=float_tail)
    with tempfile.TemporaryDirectory(prefix="edgeops-convert-") as tmp:
        result = os.path.join(tmp, "result.tflite")
        with open(result, "wb") as f:
            f.write(data)
        if validate:
            report.validation = _validate(src, result, validate, labels, gates, force)
        data_for_profile = calibration or validate
        prof = _profile(result, data_for_profile) if profile and data_for_profile and not int8_io else None
        report.extra.update(to_tflite.write(data, out, fmt, codegen=codegen))
        if prof is not None:
            from ..validate import write_profile

            report.profile = os.path.splitext(out)[0] + ".profile.json"
            write_profile(prof, report.profile)
    report.size_after = len(data)
    report.seconds = time.perf_counter() - started
    return report


def _convert_from_tflite(src: str, out: str, fmt: str, tgt: Target, codegen: bool, given: list[str],
                         started: float) -> ConvertReport:
    """A .tflite as C: the byte array for TFLite Micro (with its measured arena), or compiled (``codegen``)."""
    from ..formats.tflite_file import read_tflite
    from . import to_tflite

    if fmt != "c":
        raise UsageError(f"a .tflite model converts to --format c (a C array for TFLite Micro, or --codegen), not "
                         f"{fmt}; to change the model itself, convert its ONNX source")
    if given:
        raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to a .tflite model: it is "
                         "written as C as it is (quantize and shape it when converting its ONNX source)")
    _check_outputs(src, out, fmt, inputs=())
    check_model_path(src)
    with open(src, "rb") as f:
        data = f.read()
    summary = read_tflite(data, source=src)
    report = ConvertReport(src, out, tgt.name, "as given", format=fmt)
    report.size_before = len(data)
    report.ops_before = report.ops_after = dict(summary.ops)
    report.nodes_quantized = to_tflite.quantized_ops(data)
    report.extra.update(to_tflite.write(data, out, fmt, codegen=codegen))
    report.size_after = report.extra.get("const_bytes") or len(data)
    report.steps.append("compiled to C (edgeops kernels)" if codegen else "written as a C array for TFLite Micro")
    report.seconds = time.perf_counter() - started
    return report


def _fix_inputs(proto: Any, values: dict[str, Any] | None, report: ConvertReport) -> Any:
    if not values:
        return proto
    from .fix_inputs import fix_inputs

    proto, notes = fix_inputs(proto, values)
    report.steps += notes
    return proto


_EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite", ".c": "c"}


def _format_of(out: str) -> str:
    """The output format its extension names; any other extension needs ``format``."""
    ext = os.path.splitext(out)[1].lower()
    if ext not in _EXTENSIONS:
        raise UsageError(f"cannot tell the output format from {out!r}: name it .onnx, .tflite or .c, "
                         "or give --format onnx|tflite|c")
    return _EXTENSIONS[ext]


def _check_outputs(src: str, out: str, fmt: str, *, inputs: tuple[str | None, ...]) -> None:
    """Every file convert will write can be written (:func:`edgeops._io.output_folder`'s rule) and
    none of them is the source model or another input (a link to it included): checked before
    the conversion, not after it."""
    base = os.path.splitext(out)[0]
    outputs = [out, base + ".profile.json"] + ([base + ".h"] if fmt == "c" else [])
    for path in outputs:
        output_folder(path)
        for given in (src, *inputs):
            if given and os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
                what = f"-o {out}" if path == out else f"{path} (written with -o {out})"
                role = "the source model" if given == src else "an input"
                raise UsageError(f"{what} would overwrite {given}, {role} of this conversion; "
                                 "write the converted model to another file")


def _mode_for_ops(mode: str, path: str, *, explicit: bool, report: ConvertReport) -> str:
    """A model with no op of the standard domain (a scikit-learn forest is one ai.onnx.ml
    TreeEnsembleClassifier) has nothing onnxruntime.quantization can quantize: a mode asked for is
    refused with what to do; the target's default mode keeps the model float and says so."""
    if mode not in ("int8", "dynamic"):
        return mode
    model = graph.import_onnx().load(path)
    if any(n.domain in ("", "ai.onnx") for n in model.graph.node):
        return mode
    ops = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node})
    if explicit:
        raise UsageError(f"--quantize {mode}: the model has no op onnxruntime.quantization quantizes "
                         f"(only {', '.join(ops)}); convert it with --quantize none")
    report.steps.append(f"kept float: no op onnxruntime.quantization quantizes (only {', '.join(ops)})")
    report.quantize = "none"
    return "none"


def _quantize(mode: str, src: str, dst: str, tmp: str, calibration: str | None, method: str, per_channel: bool,
              reduce_range: bool, exclude_nodes: list[str], exclude_op_types: list[str], report: ConvertReport,
              weights: str = "", float_tail: int = 0) -> None:
    onnx = graph.import_onnx()
    if mode == "none":
        shutil.copyfile(src, dst)
        return
    if mode == "fp16":
        qz.fp16(onnx.load(src), dst, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types)
        report.steps.append("fp16 weights and activations, float32 inputs/outputs kept")
        return
    prepared = os.path.join(tmp, "prepared.onnx")
    for note in qz.preprocess(src, prepared):
        (report.notes if note in qz.ROUTINE_NOTES else report.steps).append(note)
    model = onnx.load(prepared)
    flattened = graph.row_gemm_biases(model)
    if flattened:
        onnx.save(model, prepared)
        report.notes.append(f"Gemm bias of shape [1, N] given shape [N] for the quantizer: {', '.join(flattened)}")
    if mode == "int8" and not {"HardSwish", "HardSigmoid"} & set(exclude_op_types):
        model = _int8_activations(model, prepared, exclude_nodes, report)
    if float_tail:
        exclude_nodes = _float_tail(model, float_tail, exclude_nodes, report)
    try:
        if mode == "int8":
            qz.static_int8(prepared, dst, calibration or "", method=method, per_channel=per_channel,
                                 exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types, model=model,
                                 reduce_range=reduce_range)
            report.steps.append(f"static int8 QDQ, {method} calibration, "
                                f"{'per-channel' if per_channel else 'per-tensor'} "
                                f"{weights or ('7-bit weights (reduce_range)' if reduce_range else '8-bit weights')}")
        else:
            qz.dynamic_int8(prepared, dst, per_channel=per_channel, exclude_nodes=exclude_nodes,
                                  exclude_op_types=exclude_op_types, model=model)
            report.steps.append("dynamic int8 (weights int8, activations quantized at run time)")
    except EdgeOpsError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many kinds
        hint = ("try --quantize dynamic, or exclude the op it names with --exclude-op-types" if mode == "int8" else
                "exclude the op it names with --exclude-op-types, or keep the model float with --quantize none")
        raise DataError(f"onnxruntime.quantization failed: {str(exc).splitlines()[0][:300]}; {hint}") from exc


def _float_tail(model: Any, n: int, exclude_nodes: list[str], report: ConvertReport) -> list[str]:
    """``exclude_nodes`` and the nodes of ``--float-tail n`` (:func:`.float_tail.onnx_tail`), told in the report."""
    from .float_tail import onnx_tail

    tail = [name for name in onnx_tail(model, n) if name not in exclude_nodes]
    report.nodes_excluded += tail
    report.steps.append(f"float tail: the last {n} compute layer(s) and what follows them to the outputs kept "
                        f"float, {len(tail)} node(s) ({', '.join(tail[:6])}{', ...' if len(tail) > 6 else ''})")
    return exclude_nodes + tail


def _int8_activations(model: Any, path: str, exclude_nodes: list[str], report: ConvertReport) -> Any:
    """HardSwish/HardSigmoid as Add, Clip, Mul (``int8_graph``), written back to ``path``: onnxruntime
    quantizes and runs those in int8, where the single ops stayed float between DQ and Q nodes."""
    from .int8_graph import decompose_hard_activations, describe

    note = describe(decompose_hard_activations(model, keep=set(exclude_nodes)), "onnxruntime")
    if note:
        graph.import_onnx().save(model, path)
        report.steps.append(note)
    return model


def _validate(src: str, candidate: str, data: str, labels: str | None, gates: Any, force: bool) -> dict[str, Any]:
    from ..validate import validate as run_validation

    result = run_validation(src, candidate, data, labels=labels, gates=gates)
    summary = result.to_dict()
    if not result.passed and not force:
        raise CheckFailed("converted model failed validation, nothing written (use --force to write it anyway): "
                          + "; ".join(result.failures))
    return summary


def _profile(model_path: str, data: str) -> dict[str, Any]:
    """The reference data profile of the converted model on the calibration (or validation) data."""
    from ..validate import build_profile

    return build_profile(model_path, data)
