"""``edgeops validate REFERENCE CANDIDATE --data DATA``: does the converted model still do its job?"""

from __future__ import annotations

from typing import Any

import click

from ..errors import CheckFailed
from ._choices import CodeChoice
from ._output import console, emit_json


@click.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Samples: .npz keyed by input name, or .npy.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Labels .npy: class indices or targets.")
@click.option("--task", type=CodeChoice("edgeops.validate.options", "TASKS"),
              default="auto", show_default=True,
              help="auto: integer labels are classes, float labels regression targets; detection / segmentation: "
                   "the candidate's boxes / masks scored against the reference's (no labels).")
@click.option("--detection-layout", type=CodeChoice("edgeops.validate.tasks", "LAYOUTS"),
              default=None, help="Detection head: yolo [N, boxes, 4+C], yolo-transposed [N, 4+C, boxes] "
                                 "(ultralytics), boxes-scores (two outputs); auto (default) tells the YOLO two apart.")
@click.option("--box-format", type=CodeChoice("edgeops.validate.tasks", "BOX_FORMATS"), default=None,
              help="Detection boxes: xywh (centre; default for yolo) or xyxy (default for boxes-scores).")
@click.option("--score-threshold", type=float, default=None, metavar="F", help="Detection: keep boxes scoring F or more [0.25].")
@click.option("--nms-iou", type=float, default=None, metavar="F", help="Detection: NMS overlap limit [0.45].")
@click.option("--match-iou", type=float, default=None, metavar="F",
              help="Detection: a candidate box matches a reference box at IoU F or more [0.5].")
@click.option("--class-agnostic", is_flag=True, default=None, help="Detection: match and suppress boxes of any class.")
@click.option("--task-output", "task_outputs", multiple=True, metavar="NAME",
              help="The output(s) the task reads: detection yolo one, boxes-scores BOXES then SCORES; segmentation the map.")
@click.option("--mask-threshold", type=float, default=None, metavar="P",
              help="Segmentation: foreground where the probability is P or more [0.5].")
@click.option("--class-axis", type=click.Choice(["1", "-1"]), default=None,
              help="Segmentation multi-class maps: 1 for [N, C, H, W] (default), -1 for [N, H, W, C].")
@click.option("--min-detection-recall", type=float, default=None, metavar="F",
              help="Gate: share of the reference's boxes the candidate finds, at least F (--task detection).")
@click.option("--min-detection-precision", type=float, default=None, metavar="F",
              help="Gate: share of the candidate's boxes the reference has, at least F (--task detection).")
@click.option("--min-mask-iou", type=float, default=None, metavar="F",
              help="Gate: mask IoU with the reference's of at least F (--task segmentation).")
@click.option("--max-accuracy-drop", type=float, default=None, metavar="PTS",
              help="Gate: accuracy may drop at most PTS percentage points (needs --labels).")
@click.option("--min-agreement", type=float, default=None, metavar="F", help="Gate: top-1 agreement of at least F (0..1).")
@click.option("--min-cosine", type=float, default=None, metavar="F", help="Gate: mean cosine similarity of at least F.")
@click.option("--max-p95-ms", type=float, default=None, metavar="MS", help="Gate: candidate p95 latency at most MS.")
@click.option("--explain", "explain_method", is_flag=False, flag_value="auto", default=None,
              type=click.Choice(["auto", "permutation", "occlusion", "shap", "surrogate"]),
              help="Also compare what the two models look at (edgeops explain REFERENCE CANDIDATE) [auto].")
@click.option("--min-explanation-agreement", "min_explanation", type=float, default=None, metavar="F",
              help="Gate: explanation agreement (Spearman of importances, or top-k IoU of image maps) of at least F.")
@click.option("--no-latency", is_flag=True, help="Skip the latency and memory measurement.")
@click.option("--bench-runs", type=int, default=200, show_default=True, help="Latency runs per model.")
@click.option("--threads", type=int, default=None, help="Intra-op threads for both models.")
@click.option("--max-samples", type=int, default=None, metavar="N", help="Use only the first N samples.")
@click.option("--no-diagnose", is_flag=True, help="Do not look for where a failing ONNX candidate diverges.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout, nothing else.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report here.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), default=None,
              help="Write the reference data profile (JSON, read by guardrails) here.")
def validate(reference: str, candidate: str, data: str, labels: str | None, task: str,
             detection_layout: str | None, box_format: str | None, score_threshold: float | None,
             nms_iou: float | None, match_iou: float | None, class_agnostic: bool | None,
             task_outputs: tuple[str, ...], mask_threshold: float | None, class_axis: str | None,
             min_detection_recall: float | None, min_detection_precision: float | None,
             min_mask_iou: float | None, max_accuracy_drop: float | None, min_agreement: float | None, min_cosine: float | None,
             max_p95_ms: float | None, explain_method: str | None, min_explanation: float | None, no_latency: bool, bench_runs: int, threads: int | None,
             max_samples: int | None, no_diagnose: bool, as_json: bool, report_path: str | None,
             profile_path: str | None) -> None:
    """Compare CANDIDATE (e.g. the quantized model) with REFERENCE on the same data.

    Per-output parity (errors, cosine, top-1 agreement), accuracy on --labels with
    confidence intervals, latency of both, and gates: a missed gate exits 1, after
    the JSON and the report are written.

    CANDIDATE may be a microcontroller running firmware_bridge: serial://PATH[?baud=N]
    or socket://HOST:PORT (the emulator). Each sample goes through the device's INFER;
    the notes give its latency as the device measures it.
    """
    from ..validate.core import validate as run_validation
    from ..validate.gates import Gates
    from ..validate.options import ValidateOptions
    from ..validate.profile import build_profile, write_profile

    gates = Gates(max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, min_cosine=min_cosine,
                  max_p95_ms=max_p95_ms, min_detection_recall=min_detection_recall,
                  min_detection_precision=min_detection_precision, min_mask_iou=min_mask_iou)
    options = _task_options(task, {"layout": detection_layout, "box_format": box_format,
                                   "score_threshold": score_threshold, "nms_iou": nms_iou, "match_iou": match_iou,
                                   "class_agnostic": class_agnostic},
                            {"threshold": mask_threshold, "class_axis": None if class_axis is None else int(class_axis)},
                            task_outputs)
    _check_outputs({"--report": report_path, "--profile": profile_path}, (reference, candidate, data, labels))
    settings = ValidateOptions(labels=labels, task=task, gates=gates, task_options=options, latency=not no_latency,
                               bench_runs=bench_runs, diagnose=not no_diagnose, threads=threads,
                               max_samples=max_samples)
    remote = _remote(candidate, reference, threads)
    try:
        report = run_validation(reference, remote or candidate, data, options=settings)
    finally:
        if remote is not None:
            remote._backend.close()
    if profile_path:
        write_profile(build_profile(reference, data, max_samples=max_samples), profile_path)
    if report_path:
        report.write_html(report_path)
    d = report.to_dict()
    if explain_method or min_explanation is not None:
        from .explain import comparison_summary, explanation_gate

        c = explanation_gate(reference, candidate, data, labels, min_explanation, explain_method or "auto")
        d["explanation"] = comparison_summary(c)
        if min_explanation is not None:
            d["gates"]["min_explanation_agreement"] = min_explanation
        d["failures"] = [*d["failures"], *c.failures()]
        d["passed"] = not d["failures"]
    if as_json:
        emit_json(d)
    else:
        _human(d, report_path, profile_path)
    if not d["passed"]:
        raise CheckFailed(f"validation failed: {'; '.join(d['failures'])}")


def _task_options(task: str, detection: dict[str, Any], segmentation: dict[str, Any],
                  outputs: tuple[str, ...]) -> Any:
    """The Detection / Segmentation options from the flags given; a flag of the other task is a UsageError."""
    from ..errors import UsageError
    from ..validate import Detection, Segmentation

    given = {"detection": {k: v for k, v in detection.items() if v is not None},
             "segmentation": {k: v for k, v in segmentation.items() if v is not None}}
    for other, values in given.items():
        if values and task != other:
            flags = ", ".join("--" + ("detection-layout" if k == "layout" else "mask-threshold" if k == "threshold"
                                      else k.replace("_", "-")) for k in values)
            raise UsageError(f"{flags} apply to --task {other}, not {task}")
    if outputs and task not in ("detection", "segmentation"):
        raise UsageError(f"--task-output names what --task detection or segmentation reads, not {task}")
    if task == "detection":
        return Detection(**given["detection"], outputs=outputs)
    if task == "segmentation":
        if len(outputs) > 1:
            raise UsageError(f"--task segmentation reads one map; --task-output names {len(outputs)}")
        return Segmentation(**given["segmentation"], output=outputs[0] if outputs else None)
    return None


def _remote(candidate: str, reference: str, threads: int | None) -> Any:
    """The microcontroller at a ``serial://`` or ``socket://`` CANDIDATE (its tensors shaped like the
    reference's), None for a model file."""
    from ..bridge.remote import is_remote, open_remote

    if not is_remote(candidate):
        return None
    from ..loading import load

    return open_remote(candidate, like=load(reference, threads=threads))


def _check_outputs(outputs: dict[str, str | None], inputs: tuple[str | None, ...]) -> None:
    """Before the (long) validation: every output can be written (:func:`edgeops._io.output_folder`)
    and none of them is one of the inputs, a link to it included."""
    import os

    from .._io import output_folder
    from ..errors import UsageError

    for option, path in outputs.items():
        if not path:
            continue
        output_folder(path)
        for given in inputs:
            if given and os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
                raise UsageError(f"{option} {path} would overwrite {given}, an input of this validation; "
                                 "write it to another file")


def _num(value: Any, spec: str = ".4g") -> str:
    return "–" if value is None else format(value, spec)


def _human_task(d: dict[str, Any]) -> None:
    t = d.get("task")
    if not t:
        return
    out = console()
    if t["task"] == "detection":
        out.print(f"detection against the reference ({t['layout']}, score >= {t['score_threshold']:g}, "
                  f"matched at IoU >= {t['match_iou']:g}): recall {_num(t['recall'], '.4f')}, precision "
                  f"{_num(t['precision'], '.4f')} ({t['matched']} matched of {t['reference_detections']} reference "
                  f"and {t['candidate_detections']} candidate boxes), mean matched IoU "
                  f"{_num(t['mean_matched_iou'], '.3f')}", markup=False)
    else:
        out.print(f"segmentation against the reference ({t['output']}, {t['kind']}): mask IoU "
                  f"{_num(t['mask_iou'], '.4f')}, worst sample {_num(t['min_sample_iou'], '.4f')}, pixel agreement "
                  f"{_num(t['pixel_agreement'], '.4f')}", markup=False)


def _human(d: dict[str, Any], report_path: str | None, profile_path: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    out.print(f"[bold]validate[/bold] {d['candidate']} against {d['reference']}: {d['samples']} samples")
    t = Table("output", "max abs err", "mean abs err", "max rel err", "cosine", "worst cosine", "top-1 agree",
              title="parity", title_justify="left")
    for name, m in d["outputs"].items():
        shown = name if m["candidate_output"] == name else f"{name} <-> {m['candidate_output']}"
        t.add_row(shown, _num(m["max_abs_error"]), _num(m["mean_abs_error"]), _num(m["max_rel_error"]),
                  _num(m["cosine"], ".6f"), _num(m["min_cosine"], ".6f"), _num(m["top1_agreement"], ".4f"))
    out.print(t)
    _human_task(d)
    a = d["accuracy"]
    if a is not None:
        lo, hi = a["ci95"]
        if a["metric"] == "accuracy":
            t = Table("model", "accuracy", "95% interval", title=f"accuracy on labels ({a['output']})",
                      title_justify="left")
            for role in ("reference", "candidate"):
                ci = a[f"{role}_ci95"]
                t.add_row(role, f"{a[role]:.2%}", f"{ci[0]:.2%} .. {ci[1]:.2%}")
            t.add_row("drop", f"{_num(a['drop_points'], '.2f')} points", f"{_num(lo, '.2f')} .. {_num(hi, '.2f')}")
        else:
            t = Table("model", "MAE", "95% interval", title=f"regression error on labels ({a['output']})",
                      title_justify="left")
            t.add_row("reference", _num(a["reference"]), "")
            t.add_row("candidate", _num(a["candidate"]), "")
            t.add_row("difference", _num(a["difference"]), f"{_num(lo)} .. {_num(hi)}")
        out.print(t)
    lat = d["latency"]
    if lat is not None:
        t = Table("model", "p50 ms", "p95 ms", "mean ms", "peak RSS MB", title="latency (one sample per run)",
                  title_justify="left")
        for role in ("reference", "candidate"):
            m = lat[role]
            t.add_row(role, _num(m["p50"], ".3f"), _num(m["p95"], ".3f"), _num(m["mean"], ".3f"),
                      _num(m["peak_rss_mb"], ".1f"))
        out.print(t)
        out.print(f"candidate p50 is {_num(lat['p50_ratio'], '.2f')}x the reference's")
    if d["divergence"]:
        diag = d["diagnosis"] or {}
        t = Table("tensor", "op", "node", "SQNR dB", "added dB", title=f"where it diverges ({diag.get('method')})",
                  title_justify="left")
        for e in d["divergence"]:
            t.add_row(e["tensor"], e["op_type"] or "", e["node"] or "", _num(e["sqnr_db"], ".1f"),
                      _num(e["introduced_db"], ".1f"))
        out.print(t)
        if diag.get("hint"):
            out.print(f"hint: {diag['hint']}", markup=False)
    x = d.get("explanation")
    if x:
        out.print(f"explanation ({x['method']}, {x['model_calls']} model calls): agreement {_num(x['agreement'], '.4f')} "
                  f"({x['agreement_kind']}), moved most: samples {', '.join(map(str, x['moved_most'])) or '–'}",
                  markup=False)
    for note in d["notes"]:
        out.print(f"note: {note}", markup=False)
    for path, what in ((report_path, "report"), (profile_path, "profile")):
        if path:
            out.print(f"{what} written to {path}", markup=False)
    if not d["gates"]:
        out.print("[green]PASS[/green] (no gates set)")
    for failure in d["failures"]:
        out.print(f"[red]FAIL[/red] {escape(failure)}")
    if d["passed"] and d["gates"]:
        out.print(f"[green]PASS[/green] all {len(d['gates'])} gate(s): "
                  + ", ".join(f"{k} {v:.10g}" for k, v in d["gates"].items()))
