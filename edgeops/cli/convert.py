"""``edgeops convert MODEL -o OUT``: optimize and quantize a model for a device target."""

from __future__ import annotations

from typing import Any

import click

from ..runtime.input_shapes import parse as parse_input_shapes
from ..targets import FORMATS, QUANTIZATION_MODES, TARGETS
from ._choices import CodeChoice
from ._output import console, emit_json


def _names(values: tuple[str, ...]) -> list[str]:
    return [n for v in values for n in v.split(",") if n]


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the model.")
@click.option("--target", default="generic-cpu", show_default=True,
              help=", ".join(TARGETS) + ".")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS.values())), default=None,
              help=f"Output format; needed when -o's extension is not {', '.join(list(FORMATS)[:-1])} or "
                   f"{list(FORMATS)[-1]}.")
@click.option("--quantize", type=click.Choice(QUANTIZATION_MODES), default=None,
              help="Default: int8 with --calibration, else the target's preferred mode.")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None, help="Calibration data (.npz/.npy).")
@click.option("--calibration-method", type=CodeChoice("edgeops.convert.options", "CALIBRATION_METHODS"), default="minmax",
              show_default=True,
              help="How int8 activation ranges come from the calibration data: minmax (observed range), "
                   "entropy (KL divergence, clips rare outliers) or percentile (99.999th).")
@click.option("--per-channel/--per-tensor", default=True, show_default=True, help="Weight quantization granularity.")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME:D1,D2,... fixes dynamic dims (repeat).")
@click.option("--fix-input", "fix_input", multiple=True,
              help="NAME=VALUE makes an input a constant (e.g. sample_rate=16000) and folds the graph around it, "
                   "an If on it included (repeat).")
@click.option("--exclude-nodes", multiple=True,
              help="Node names to keep in float (comma-separated or repeated); ONNX, and TFLite with --quantize int8.")
@click.option("--float-tail", type=click.IntRange(min=0), default=0, metavar="N",
              help="--quantize int8: keep the last N compute layers (Conv/Gemm/MatMul) and what follows them to the "
                   "outputs in float, e.g. a detection or segmentation head (ONNX and TFLite).")
@click.option("--exclude-op-types", multiple=True, help="Op types to keep in float, e.g. Softmax,Add.")
@click.option("--validate", "validate_data", type=click.Path(dir_okay=False), default=None,
              help="Validate against the source model on this data; refuse to write a model that fails the gates.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Labels for --validate (.npy).")
@click.option("--max-accuracy-drop", type=float, default=None, help="Gate, percentage points.")
@click.option("--min-agreement", type=float, default=None, help="Gate, top-1 agreement 0..1.")
@click.option("--min-cosine", type=float, default=None, help="Gate, output cosine similarity.")
@click.option("--max-p95-ms", type=float, default=None, help="Gate, candidate p95 latency.")
@click.option("--min-explanation-agreement", "min_explanation", type=float, default=None, metavar="F",
              help="Gate (needs --validate): the converted model's explanation agrees with the source's at least F "
                   "(edgeops explain; Spearman of importances or top-k IoU of image maps); else nothing is written.")
@click.option("--force", is_flag=True, help="Write the model even when validation gates fail.")
@click.option("--channels-last", is_flag=True, help="TFLite: NHWC inputs/outputs instead of the ONNX layout.")
@click.option("--int8-io", is_flag=True, help="TFLite with --quantize int8: int8 inputs/outputs instead of float32.")
@click.option("--codegen", is_flag=True,
              help="--format c: compile the int8 model to C source calling edgeops' kernels (firmware_bridge/src) "
                   "instead of a byte array for TFLite Micro.")
@click.option("--codegen-blob", is_flag=True,
              help="With --codegen: read the constant arrays through a pointer (NAME_invoke_blob), so new weights "
                   "for the same graph can come as a model image (edgeops.bridge.image); see CODEGEN.md.")
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Also print notes on routine fallbacks (always in --json).")
def convert(model: str, output: str, target: str, fmt: str | None, quantize: str | None, calibration: str | None,
            calibration_method: str, per_channel: bool, input_shapes: tuple[str, ...], exclude_nodes: tuple[str, ...],
            exclude_op_types: tuple[str, ...], float_tail: int, fix_input: tuple[str, ...],
            validate_data: str | None, labels: str | None,
            max_accuracy_drop: float | None, min_agreement: float | None, min_cosine: float | None,
            max_p95_ms: float | None, min_explanation: float | None, force: bool, channels_last: bool, int8_io: bool,
            codegen: bool, codegen_blob: bool, as_json: bool, verbose: bool) -> None:
    """Convert MODEL (.onnx) for a device target: optimize, quantize, check, optionally validate.

    The output format follows -o's extension (.onnx, .tflite, .c) unless --format says otherwise;
    -o may not be MODEL itself. MODEL may also be a .tflite (an int8 one for --codegen), written as C."""
    from ..convert.api import convert as run_convert
    from ..convert.fix_inputs import parse as parse_fixed_inputs
    from ..convert.options import ConvertOptions
    from ..errors import UsageError

    gates = None
    if any(v is not None for v in (max_accuracy_drop, min_agreement, min_cosine, max_p95_ms)):
        if not validate_data:
            raise UsageError("validation gates need --validate DATA")
        from ..validate import Gates

        gates = Gates(max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, min_cosine=min_cosine,
                      max_p95_ms=max_p95_ms)
    if labels and not validate_data:
        raise UsageError("--labels goes with --validate DATA")
    if min_explanation is not None and not validate_data:
        raise UsageError("--min-explanation-agreement needs --validate DATA")
    options = ConvertOptions(target=target, quantize=quantize, calibration=calibration,
                             calibration_method=calibration_method, per_channel=per_channel,
                             input_shapes=parse_input_shapes(input_shapes), exclude_nodes=_names(exclude_nodes),
                             exclude_op_types=_names(exclude_op_types), format=fmt, validate=validate_data,
                             labels=labels, gates=gates, force=force, channels_last=channels_last, int8_io=int8_io,
                             fix_inputs=parse_fixed_inputs(fix_input), float_tail=float_tail,
                             codegen=codegen, codegen_blob=codegen_blob)
    report = run_convert(model, output, options=options)
    data = report.to_dict()
    if min_explanation is not None and validate_data:
        from .explain import convert_gate

        data["explanation"] = convert_gate(model, output, validate_data, labels, min_explanation, force, data)
    if as_json:
        emit_json(data)
    else:
        _human(data, verbose)


def _human(d: dict[str, Any], verbose: bool = False) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{d['source']}[/bold] -> [bold]{d['output']}[/bold]  target {d['target']}, "
              f"quantize {d['quantize']}, {d['seconds']:.1f} s")
    out.print(f"size {d['size_before'] / 1024:.1f} KiB -> {d['size_after'] / 1024:.1f} KiB "
              f"({d['size_ratio']:.2f}x smaller), {d['nodes_quantized']} nodes quantized")
    for step in d["steps"]:
        out.print(f"  - {step}", markup=False)
    for note in d.get("notes", []) if verbose else []:
        out.print(f"note: {note}", markup=False)
    extra = d.get("extra") or {}
    if extra.get("codegen"):
        out.print(f"compiled to C: {extra['symbol']}_invoke in {d['output']} + {extra['header']}; arena "
                  f"{extra['arena_bytes']} bytes, constants {extra['const_bytes']} bytes; build with the kernels in "
                  f"{extra.get('kernels') or 'firmware_bridge/ of the edgeops source'}", markup=False)
        if extra.get("graph_hash"):
            out.print(f"blob mode: {extra['blob_bytes']} bytes of constants through {extra['symbol']}_invoke_blob; "
                      f"graph hash {extra['graph_hash']}", markup=False)
        for note in extra.get("codegen_notes") or []:
            out.print(f"note: {note}", markup=False)
    elif "arena_bytes" in extra:
        out.print(f"C array {extra['symbol']} ({extra['model_bytes']} bytes) in {d['output']} + {extra['header']}; "
                  f"tensor arena {extra['arena_bytes']} bytes", markup=False)
        if extra.get("arena_measured_bytes"):
            out.print(f"  measured in TFLite Micro: {extra['arena_measured_bytes']} bytes + margin "
                      f"{extra['arena_margin_bytes']}; planner estimate {extra['arena_estimate_bytes']} bytes",
                      markup=False)
        else:
            out.print(f"  planner estimate ({extra['arena_method']}); {extra.get('arena_measurement') or ''}",
                      markup=False)
    ops = Table("op", "before", "after", box=None)
    for op in sorted(set(d["ops_before"]) | set(d["ops_after"])):
        ops.add_row(op, str(d["ops_before"].get(op, "")), str(d["ops_after"].get(op, "")))
    out.print(ops)
    if d.get("validation"):
        v = d["validation"]
        acc = v.get("accuracy") or {}
        if acc:
            out.print(f"validation: {acc.get('metric')} {acc.get('reference')} -> {acc.get('candidate')} "
                      f"(drop {acc.get('drop_points')} points), passed: {v.get('passed')}")
        for f in v.get("failures", []):
            out.print(f"[red]gate failed (written with --force)[/red] {f}")
    if d.get("profile"):
        out.print(f"reference profile: {d['profile']}")
