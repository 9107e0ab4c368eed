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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write, output_folder, profile_path
from .._options import merged
from ..errors import CheckFailed, DataError, EdgeOpsError, UsageError
from ..formats import check_model_path
from ..targets import Target, get_target
from . import graph
from . import quantize as qz
from .options import FORMATS, MODES, ConvertOptions

__all__ = ["convert", "ConvertOptions", "ConvertReport", "MODES", "FORMATS", "choose_mode"]



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


def convert(model: str | os.PathLike[str], output: str | os.PathLike[str], *, options: ConvertOptions | None = None,
            **kwargs: Any) -> ConvertReport:
    """Convert ``model`` (.onnx) for a device target and write ``output``; see the module docstring. A
    ``.tflite`` ``model`` (most microcontroller users have an int8 one) is written as it is, as C: format
    ``c`` only (a byte array for TFLite Micro, or compiled with ``codegen``), and no option that changes it.

    The knobs are the fields of :class:`~edgeops.convert.options.ConvertOptions`, each documented there,
    given as keywords (``quantize="int8", calibration="calib.npz"``) or as ``options``; keywords given
    with ``options`` replace those fields of it. A failure raises an :class:`~edgeops.EdgeOpsError` and
    leaves no output file behind.
    """
    started = time.perf_counter()
    plan = _plan(os.fspath(model), os.fspath(output), merged(ConvertOptions, options, kwargs))
    check_model_path(plan.src)  # a missing source is the same fault, in the same words, with or without onnx
    tflite_source = plan.mode == "as given"
    if not tflite_source:
        graph.import_onnx()
    opts = plan.options
    report = ConvertReport(plan.src, plan.out, plan.target.name, plan.mode, nodes_excluded=list(opts.exclude_nodes),
                           op_types_excluded=list(opts.exclude_op_types))
    if tflite_source:
        _convert_from_tflite(plan, report)
    elif plan.fmt == "onnx":
        _convert_onnx(plan, report)
    else:
        _convert_tflite(plan, report)
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _Plan:
    """The options of one conversion, checked and resolved against its target: what :func:`convert` does."""

    options: ConvertOptions
    src: str
    out: str
    target: Target
    fmt: str  # onnx, tflite or c
    mode: str  # one of MODES, never None
    float_tail: int
    per_channel: bool


def _plan(src: str, out: str, opts: ConvertOptions) -> _Plan:
    """Every option checked against the others and the target, before any work; a fault is a UsageError."""
    tgt = get_target(opts.target if opts.target is not None else "generic-cpu")
    fmt = opts.format or _format_of(out)
    if src.lower().endswith(".tflite") and fmt != "c":  # a .tflite is only ever written as C
        check_model_path(src)
        raise graph.not_onnx(src, "tflite")
    if fmt not in tgt.formats:
        hint = "; C for microcontrollers is --target cortex-m" if fmt == "c" else ""
        raise UsageError(f"target {tgt.name} takes {', '.join(tgt.formats)} models, not {fmt}{hint}")
    if fmt not in FORMATS.values():
        raise UsageError(f"--format must be {_or(list(FORMATS.values()))}, not {fmt!r}")
    if fmt == "c" and not out.endswith(".c"):
        raise UsageError(f"--format c writes NAME.c and NAME.h: give -o NAME.c, not {out}")
    if opts.codegen_blob and not opts.codegen:
        raise UsageError("--codegen-blob is a mode of --codegen: give both")
    if opts.codegen and fmt != "c":
        raise UsageError(f"--codegen compiles the model to C: give --format c (-o NAME.c), not {fmt}")
    if src.lower().endswith(".tflite") and fmt == "c":  # other formats: "is a TFLite model; ... takes ONNX"
        _check_tflite_source(opts)
        _check_outputs(src, out, fmt, inputs=())
        return _Plan(opts, src, out, tgt, fmt, "as given", 0, True)
    if fmt == "onnx" and (opts.channels_last or opts.int8_io):
        raise UsageError("--channels-last and --int8-io apply to --format tflite or c")
    if fmt != "onnx" and opts.exclude_op_types:
        raise UsageError("--exclude-op-types applies to ONNX output (onnxruntime.quantization); for TFLite name "
                         "the nodes with --exclude-nodes, or keep the last layers float with --float-tail N")
    from .float_tail import check as check_tail

    float_tail = check_tail(opts.float_tail)
    if fmt != "onnx" and opts.validate and opts.channels_last:
        raise UsageError("--validate compares the model with the ONNX source on the same data; "
                         "drop --channels-last (the default TFLite I/O matches the ONNX model)")
    mode = choose_mode(tgt, opts.quantize, opts.calibration)
    if opts.calibration and mode != "int8":
        raise UsageError(f"--calibration is used by --quantize int8 only, not {mode}")
    if float_tail and mode != "int8":
        raise UsageError(f"--float-tail keeps the last layers out of static int8 (--quantize int8), not {mode}")
    if fmt != "onnx" and opts.exclude_nodes and mode != "int8":
        raise UsageError(f"--exclude-nodes applies to TFLite output with --quantize int8, not {mode}")
    if opts.codegen and mode != "int8":
        raise UsageError(f"--codegen compiles int8 models: convert with --quantize int8 --calibration DATA, not {mode}")
    _check_outputs(src, out, fmt, inputs=(opts.calibration, opts.validate, opts.labels))  # before any long work
    per_channel = True if opts.per_channel is None else opts.per_channel
    return _Plan(opts, src, out, tgt, fmt, mode, float_tail, per_channel)


def _convert_onnx(plan: _Plan, report: ConvertReport) -> None:
    """The ONNX path: fit, optimize, quantize, check, validate, write (the module docstring's steps)."""
    opts = plan.options
    proto = graph.fit_ir_version(graph.name_nodes(graph.load(plan.src)))
    reduce_range, weights = qz.weight_bits(plan.target, proto, opts.reduce_range)
    report.size_before = os.path.getsize(plan.src)
    report.ops_before = graph.op_histogram(proto)
    missing = sorted(set(opts.exclude_nodes) - {n.name for n in proto.graph.node})
    if missing:
        raise UsageError(f"--exclude-nodes names nodes the model does not have: {', '.join(missing)}")
    proto = _fix_inputs(proto, opts.fix_inputs, report)
    onnx = graph.import_onnx()
    with tempfile.TemporaryDirectory(prefix="edgeops-convert-") as tmp:
        optimized = _optimized(plan, proto, tmp, report)
        result = os.path.join(tmp, "result.onnx")
        mode = _mode_for_ops(plan.mode, optimized, explicit=opts.quantize is not None, report=report)
        _quantize(plan, mode, optimized, result, tmp, report, reduce_range=reduce_range, weights=weights)
        if mode in ("int8", "dynamic"):
            onnx.save(graph.compact(onnx.load(result)), result)
        graph.check_runs(result)
        final = onnx.load(result)
        report.ops_after = graph.op_histogram(final)
        report.nodes_quantized = qz.quantized_nodes(final, mode)
        _finish(plan, result, report, write=lambda: atomic_write(plan.out, copy_from=result))
    report.size_after = os.path.getsize(plan.out)


def _optimized(plan: _Plan, proto: Any, tmp: str, report: ConvertReport) -> str:
    """``proto`` upgraded for quantization, its input shapes fixed, shapes inferred and optimized by
    onnxruntime: the path of the optimized model in ``tmp``."""
    onnx = graph.import_onnx()
    step = os.path.join(tmp, "step.onnx")
    if plan.mode in ("int8", "dynamic"):
        proto, note = graph.upgrade_opset(proto, graph.QUANT_MIN_OPSET)
        if note:
            report.steps.append(note)
    proto, notes = graph.fix_input_shapes(proto, dict(plan.options.input_shapes or {}),
                                          static=plan.target.static_shapes)
    report.steps += notes
    proto = graph.infer_shapes(proto)
    onnx.save(proto, step)
    optimized = os.path.join(tmp, "optimized.onnx")
    graph.optimize(step, optimized)
    report.steps.append("optimized (constant folding, fusions)")
    return optimized


def _convert_tflite(plan: _Plan, report: ConvertReport) -> None:
    """The TFLite and C path (:mod:`.to_tflite`): export, quantize, check, validate, write."""
    from . import to_tflite

    opts, src = plan.options, plan.src
    report.format = plan.fmt
    report.size_before = os.path.getsize(src) if os.path.isfile(src) else 0
    proto = graph.load(src)
    report.ops_before = graph.op_histogram(proto)
    proto = _fix_inputs(proto, opts.fix_inputs, report)
    shapes = None if opts.input_shapes is None else dict(opts.input_shapes)
    data = to_tflite.export_and_quantize(proto, plan.mode, input_shapes=shapes, channels_last=opts.channels_last,
                                         calibration=opts.calibration, int8_io=opts.int8_io, report=report,
                                         xnnpack="xnnpack" in plan.target.tflite_delegates,
                                         float_nodes=list(opts.exclude_nodes), float_tail=plan.float_tail)
    with tempfile.TemporaryDirectory(prefix="edgeops-convert-") as tmp:
        result = os.path.join(tmp, "result.tflite")
        with open(result, "wb") as f:
            f.write(data)
        _finish(plan, result, report, write=lambda: report.extra.update(to_tflite.write(data, plan.out, plan.fmt,
                                                                              codegen=opts.codegen,
                                                                              blob=opts.codegen_blob)),
                profile=not opts.int8_io)
    report.size_after = len(data)


def _finish(plan: _Plan, result: str, report: ConvertReport, *, write: Callable[[], object],
            profile: bool = True) -> None:
    """Validate ``result`` when asked (refusing a failing model unless ``force``), build its reference data
    profile from the calibration or validation data, then ``write`` the model and the profile beside it."""
    opts = plan.options
    if opts.validate:
        report.validation = _validate(plan.src, result, opts.validate, opts.labels, opts.gates, opts.force)
    data = opts.calibration or opts.validate
    prof = _profile(result, data) if opts.profile and data and profile else None
    write()
    if prof is not None:
        from ..validate import write_profile

        report.profile = profile_path(plan.out)
        write_profile(prof, report.profile)


def _check_tflite_source(opts: ConvertOptions) -> None:
    """A .tflite source is written as C as it is: no option that would change it."""
    given = [flag for flag, value in (
        ("--quantize", opts.quantize), ("--calibration", opts.calibration), ("--input-shape", opts.input_shapes),
        ("--exclude-nodes", opts.exclude_nodes), ("--exclude-op-types", opts.exclude_op_types),
        ("--validate", opts.validate), ("--labels", opts.labels), ("--channels-last", opts.channels_last),
        ("--int8-io", opts.int8_io), ("--fix-input", opts.fix_inputs), ("--float-tail", opts.float_tail)) if value]
    if given:
        raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to a .tflite model: it is "
                         "written as C as it is (quantize and shape it when converting its ONNX source)")


def _convert_from_tflite(plan: _Plan, report: ConvertReport) -> None:
    """A .tflite as C: the byte array for TFLite Micro (with its measured arena), or compiled (``codegen``)."""
    from ..formats.tflite_file import read_tflite
    from . import to_tflite

    with open(plan.src, "rb") as f:
        data = f.read()
    summary = read_tflite(data, source=plan.src)
    report.format = plan.fmt
    report.size_before = len(data)
    report.ops_before = report.ops_after = dict(summary.ops)
    report.nodes_quantized = to_tflite.quantized_ops(data)
    report.extra.update(to_tflite.write(data, plan.out, plan.fmt, codegen=plan.options.codegen,
                                        blob=plan.options.codegen_blob))
    report.size_after = report.extra.get("const_bytes") or len(data)
    report.steps.append("compiled to C (edgeops kernels)" if plan.options.codegen
                        else "written as a C array for TFLite Micro")


def _fix_inputs(proto: Any, values: Mapping[str, Any] | None, report: ConvertReport) -> Any:
    if not values:
        return proto
    from .fix_inputs import fix_inputs

    proto, notes = fix_inputs(proto, dict(values))
    report.steps += notes
    return proto


def _format_of(out: str) -> str:
    """The output format its extension names; any other extension needs ``format``."""
    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        raise UsageError(f"cannot tell the output format from {out!r}: name it {_or(list(FORMATS))}, "
                         f"or give --format {'|'.join(FORMATS.values())}")
    return FORMATS[ext]


def _or(words: list[str]) -> str:
    """``a, b or c``."""
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def _check_outputs(src: str, out: str, fmt: str, *, inputs: tuple[str | None, ...]) -> None:
    """Every file convert will write can be written (:func:`edgeops._io.output_folder`'s rule) and
    none of them is the source model or another input (a link to it included): checked before
    the conversion, not after it."""
    base = os.path.splitext(out)[0]
    outputs = [out, profile_path(out)] + ([base + ".h"] if fmt == "c" else [])
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


def _quantize(plan: _Plan, mode: str, src: str, dst: str, tmp: str, report: ConvertReport, *,
              reduce_range: bool, weights: str = "") -> None:
    """``src`` quantized in ``mode`` (which :func:`_mode_for_ops` may have changed from the plan's) to ``dst``."""
    opts, per_channel, method = plan.options, plan.per_channel, plan.options.calibration_method
    exclude_nodes, exclude_op_types = list(opts.exclude_nodes), list(opts.exclude_op_types)
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
    if plan.float_tail:
        exclude_nodes = _float_tail(model, plan.float_tail, exclude_nodes, report)
    try:
        if mode == "int8":
            qz.static_int8(prepared, dst, opts.calibration or "", method=method, per_channel=per_channel,
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
