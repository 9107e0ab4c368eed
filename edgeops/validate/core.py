"""``validate``: run a reference and a candidate over the same data and check the candidate."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._options import merged
from ..errors import DataError, EdgeOpsError, UsageError
from ..runtime.model import Model
from . import tasks
from .gates import Gates
from .metrics import OutputComparison, classification_accuracy, regression_error
from .options import TASKS, ValidateOptions
from .report import ValidationReport
from .runner import Feeder, adaptation_notes, chunk_size, chunks, label, open_model, read_data

TASK_GATES = {"min_detection_recall": "detection", "min_detection_precision": "detection",
              "min_mask_iou": "segmentation"}
DIAGNOSE_SAMPLES = 16  # the worst samples (lowest cosine) the divergence analysis runs on
BENCH_WARMUP = 5
BENCH_MIN_S = 0.1
BENCH_MAX_S = 30.0


def validate(reference: str | os.PathLike[str] | Model, candidate: str | os.PathLike[str] | Model, data: Any, *,
             options: ValidateOptions | None = None, **kwargs: Any) -> ValidationReport:
    """Check that ``candidate`` still does what ``reference`` does, on ``data``.

    ``reference``/``candidate``: paths (.onnx, .tflite) or loaded :class:`~edgeops.Model`\\ s.
    ``data``: a data-file path (.npz/.npy, DESIGN.md) or ``{input name: array}``.
    The knobs (labels, task, gates, latency, ...) are the fields of
    :class:`~edgeops.validate.options.ValidateOptions`, each documented there, given as keywords or as
    ``options``; keywords given with ``options`` replace those fields of it.
    """
    opts = merged(ValidateOptions, options, kwargs)
    gates = _check_options(opts)
    tasks.options_for(opts.task, opts.task_options)  # checked before a model is opened
    ref = open_model(reference, opts.threads)
    return _compare(ref, open_model(candidate, opts.threads), data, opts, gates)


def _compare(ref: Model, cand: Model, data: Any, opts: ValidateOptions, gates: Gates) -> ValidationReport:
    task, labels, threads, max_samples = opts.task, opts.labels, opts.threads, opts.max_samples
    task_options = tasks.options_for(task, opts.task_options)
    arrays = read_data(data, ref)
    n = next(iter(arrays.values())).shape[0]
    y = read_labels(labels, n)
    if max_samples is not None and max_samples < n:
        arrays = {k: a[:max_samples] for k, a in arrays.items()}
        y = None if y is None else y[:max_samples]
        n = max_samples
    ref_feed, cand_feed = Feeder(ref, arrays, "reference"), Feeder(cand, arrays, "candidate")
    pairs, notes = match_outputs(ref, cand)
    notes = adaptation_notes(ref_feed) + adaptation_notes(cand_feed) + notes
    kind, y = resolve_task(task, y)
    scorer = tasks.comparison(task_options, pairs) if task_options else None

    keep = int(np.prod(y.shape[1:], dtype=np.int64)) if kind == "regression" and y is not None else None
    comps = {r: OutputComparison(r, c, keep_values_of_size=keep) for r, c in pairs}
    for start, stop in chunks(n, chunk_size(arrays), f"validate {os.path.basename(label(cand))}"):
        ref_out, cand_out = ref_feed.run(start, stop), cand_feed.run(start, stop)
        for r, c in pairs:
            comps[r].update(ref_out[r], cand_out[c])
        if scorer is not None:
            scorer.update(ref_out, cand_out)
    outputs = {name: comp.summary() for name, comp in comps.items()}

    if gates.min_agreement is not None and not any(c.classification for c in comps.values()):
        raise UsageError("the agreement gate needs an output of class scores [N, C]; this model has "
                         + ", ".join(f"{n} {o['shape']}" for n, o in outputs.items()))
    accuracy = _accuracy(kind, y, comps) if kind and y is not None else None  # a kind comes with labels
    if gates.max_accuracy_drop is not None and (accuracy is None or accuracy["drop_points"] is None):
        raise UsageError("the accuracy-drop gate applies to classification; these labels were read as "
                         f"{kind} targets (pass task='classification' if they are class indices)")
    lat = measure_latency(ref, cand, data, opts.bench_runs, threads, notes) if opts.latency else None
    notes += _device_latency(cand)
    task_metrics = scorer.summary() if scorer is not None else None
    failures = gates.failures(outputs, accuracy, lat) + tasks.failures(gates, task_metrics)

    report = ValidationReport(
        reference=label(ref), candidate=label(cand), samples=n, outputs=outputs, accuracy=accuracy, latency=lat,
        gates=gates.given(), failures=failures, notes=notes, task=task_metrics,
        sample_cosines={name: comp.cosines for name, comp in comps.items()},
    )
    if failures and opts.diagnose:
        _diagnose(report, ref_feed, cand_feed, comps)
    return report


def _device_latency(model: Model) -> list[str]:
    """A microcontroller candidate (:func:`edgeops.bridge.remote.open_remote`): its latency as the device's own
    clock measured it."""
    runs = getattr(model._backend, "device_latency_us", None)
    if not runs:
        return []
    ms = np.percentile(np.asarray(runs, np.float64) / 1000, [50, 95])
    return [f"candidate latency as the device measures it: p50 {ms[0]:.3f} ms, p95 {ms[1]:.3f} ms over {len(runs)} "
            "runs (the host's figures include the serial round trip)"]


def _check_options(opts: ValidateOptions) -> Gates:
    """The gates (defaults when none were given), once every option is checked against the others."""
    gates, task, labels = opts.gates, opts.task, opts.labels
    gates = Gates() if gates is None else gates
    if not isinstance(gates, Gates):
        raise UsageError(f"gates must be an edgeops.validate.Gates, not a {type(gates).__name__}")
    gates.check()
    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    for name, value in (("bench_runs", opts.bench_runs), ("threads", opts.threads), ("max_samples", opts.max_samples)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{name} must be a positive integer, not {value!r}")
    for gate, needs in TASK_GATES.items():
        if getattr(gates, gate) is not None and task != needs:
            raise UsageError(f"the {gate.replace('_', ' ')} gate needs task {needs!r} (--task {needs})")
    if task in ("detection", "segmentation") and labels is not None:
        raise UsageError(f"task {task!r} scores the candidate against the reference's own outputs; "
                         "it takes no labels (drop --labels)")
    if gates.max_accuracy_drop is not None and labels is None:
        raise UsageError("the accuracy-drop gate needs labels (--labels LABELS.npy)")
    if gates.max_p95_ms is not None and not opts.latency:
        raise UsageError("the p95 latency gate needs the latency run; drop --no-latency")
    return gates


def read_labels(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        p = os.fspath(labels)
        if not os.path.isfile(p):
            raise DataError(f"labels file {p} not found")
        try:
            y = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"labels file {p} is not a readable .npy file ({exc})") from exc
        if not isinstance(y, np.ndarray):
            y.close()
            raise DataError(f"labels file {p} is an .npz archive; save the labels as one .npy array")
    else:
        y = np.asarray(labels)
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} labels"
        raise DataError(f"the data holds {n} samples but there are {got}; labels must be in the same order, "
                        "one per sample along axis 0")
    if y.dtype.kind not in "biuf":
        raise DataError(f"labels must be numbers (class indices or targets), not {y.dtype}")
    return y


def resolve_task(task: str, y: np.ndarray | None) -> tuple[str | None, np.ndarray | None]:
    """``(classification | regression | None, labels in the form the task wants)``."""
    if y is None:
        return None, None
    kind = task if task != "auto" else ("classification" if y.dtype.kind in "biu" or _one_hot(y) else "regression")
    if kind == "regression":
        return kind, y.astype(np.float64)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot rows
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"class labels are one index per sample ([N]) or one-hot rows ([N, C]), not {list(y.shape)}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DataError("labels hold fractional values, so they are not class indices; use task='regression'")
    return kind, y.astype(np.int64)


def _one_hot(y: np.ndarray) -> bool:
    return y.ndim == 2 and y.shape[1] > 1 and bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def match_outputs(ref: Model, cand: Model) -> tuple[list[tuple[str, str]], list[str]]:
    rn, cn = [o.name for o in ref.outputs], [o.name for o in cand.outputs]
    if all(n in cn for n in rn):
        return [(n, n) for n in rn], []
    if len(rn) == len(cn):
        pairs = list(zip(rn, cn))
        return pairs, ["outputs matched by position because their names differ: "
                       + ", ".join(f"{r} <-> {c}" for r, c in pairs)]
    raise DataError(f"cannot pair the outputs: the reference has {', '.join(rn)} and the candidate "
                    f"{', '.join(cn)}; they need the same names or the same number of outputs")


def _accuracy(kind: str, y: np.ndarray, comps: dict[str, OutputComparison]) -> dict[str, Any]:
    if kind == "classification":
        comp = next((c for c in comps.values() if c.classification), None)
        if comp is None:
            raise DataError("the labels are class indices, but no output gives class scores [N, C] "
                            "(use task='regression' for numeric targets)")
        assert comp.sample_shape is not None
        classes = comp.sample_shape[0]
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"labels run from {y.min()} to {y.max()}, but output {comp.name!r} scores "
                            f"{classes} classes (0..{classes - 1})")
        top = comp.top1
        assert top is not None
        return classification_accuracy(comp.name, y, *top)
    comp = next((c for c in comps.values() if c.values is not None), None)
    if comp is None:
        size = int(np.prod(y.shape[1:], dtype=np.int64))
        raise DataError(f"the regression targets have {size} value(s) per sample, but no output does "
                        f"({', '.join(f'{c.name} {list(c.sample_shape or [])}' for c in comps.values())})")
    values = comp.values
    assert values is not None
    return regression_error(comp.name, y, *values)


def measure_latency(ref: Model, cand: Model, data: Any, runs: int, threads: int | None,
                    notes: list[str]) -> dict[str, Any]:
    """p50/p95/mean and peak RSS of both models through ``edgeops.bench`` (one sample per run)."""
    from ..bench import Settings
    from ..bench import run as bench_run

    def settings(data_file: str | None) -> Settings:
        return Settings(runs=runs, warmup=BENCH_WARMUP, min_duration=BENCH_MIN_S, max_duration=BENCH_MAX_S,
                        threads=threads, data=data_file)

    rows = {}
    for role, model in (("reference", ref), ("candidate", cand)):
        try:
            result = bench_run([model], settings(os.fspath(data) if isinstance(data, (str, os.PathLike)) else None))[0]
        except EdgeOpsError:  # the data file does not suit the bench (other input names): random inputs
            result = bench_run([model], settings(None))[0]
            notes.append(f"{role} latency measured on random inputs")
        d = result.to_dict()
        rows[role] = {"p50": d["latency_ms"]["p50"], "p95": d["latency_ms"]["p95"],
                      "mean": d["latency_ms"]["mean"], "peak_rss_mb": d["peak_rss_mb"], "runs": d["runs"]}
    r50, c50 = rows["reference"]["p50"], rows["candidate"]["p50"]
    return {**rows, "p50_ratio": c50 / r50 if r50 else None}


def _diagnose(report: ValidationReport, ref_feed: Feeder, cand_feed: Feeder,
              comps: dict[str, OutputComparison]) -> None:
    ref, cand = ref_feed.model, cand_feed.model
    if ref.format != "onnx" or cand.format != "onnx" or not ref.path or not cand.path:
        report.notes.append("no divergence analysis: it needs both models as ONNX files")
        return
    worst = np.min(np.stack([c.cosines for c in comps.values()]), axis=0)
    idx = [int(i) for i in np.argsort(worst, kind="stable")[:DIAGNOSE_SAMPLES]]
    from .divergence import diagnose

    try:
        found = diagnose(ref.path, cand.path, [ref_feed.sample_feed(i) for i in idx],
                         [cand_feed.sample_feed(i) for i in idx])
    except Exception as exc:  # noqa: BLE001 - the diagnosis is a help; the validation result stands without it
        report.notes.append(f"divergence analysis failed ({type(exc).__name__}: {exc})")
        return
    report.divergence = found["tensors"]
    report.diagnosis = {"method": found["method"], "samples": idx, "hint": found["hint"]}
    report.notes.extend(found["notes"])
