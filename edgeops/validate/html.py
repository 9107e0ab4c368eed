"""The HTML form of a validation report: one self-contained page a person reads.

Inline CSS, plain tables, and when matplotlib is installed one inline PNG
(base64): error per output and cosine / top-1 agreement per output, next to the
distribution of per-sample cosine similarity.

The page is the jinja2 template ``report.html.j2`` beside this module, rendered with autoescape: this
module turns the report into plain strings (numbers formatted, never markup) and the template escapes
every one, so a model, input or output name such as ``<script>`` is shown, not run. jinja2 comes with
``pip install 'edgeops[convert]'``.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .._version import __version__
from ..errors import BackendUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from .report import ValidationReport

TEMPLATE = "report.html.j2"


class Cell(NamedTuple):
    """One table cell: text (escaped by the template), right-aligned if ``num``, marked if ``bad``."""

    text: str
    num: bool = False
    bad: bool = False
    code: bool = False


def render(report: ValidationReport) -> str:
    d = report.to_dict()
    return _template().render(
        title=_base(d["candidate"]), passed=d["passed"], candidate=d["candidate"], reference=d["reference"],
        samples=d["samples"], failures=d["failures"], gates=_gates(d), task=_task(d), outputs=_outputs(d),
        accuracy=_accuracy(d), latency=_latency(d), divergence=_divergence(d), plot=_plot(report),
        notes=d["notes"], version=__version__)


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    try:
        import jinja2
    except ImportError as exc:
        raise BackendUnavailableError("the HTML report needs jinja2: pip install 'edgeops[convert]'") from exc
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, finalize=_escaped)
    return env.from_string(resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8"))


def _escaped(value: Any) -> Any:
    """Every value the template prints, escaped as :func:`html.escape` does (``'`` as ``&#x27;``, the page's
    form before jinja2); a macro's output is already markup and passes through."""
    from markupsafe import Markup

    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def fmt(value: Any, spec: str = ".4g") -> str:
    """``value`` as text: a float in ``spec``, None or NaN as a dash, anything else as ``str``."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _gates(d: dict[str, Any]) -> list[list[Cell]]:
    return [[Cell(k), Cell(fmt(v, "g"), num=True)] for k, v in d["gates"].items()]


def _outputs(d: dict[str, Any]) -> list[list[Cell]]:
    gates = d["gates"]
    rows = []
    for name, m in d["outputs"].items():
        low_cos = "min_cosine" in gates and (m["cosine"] is None or m["cosine"] < gates["min_cosine"])
        low_agree = ("min_agreement" in gates and m["top1_agreement"] is not None
                     and m["top1_agreement"] < gates["min_agreement"])
        rows.append([
            Cell(name + ("" if m["candidate_output"] == name else f" ↔ {m['candidate_output']}")),
            Cell(fmt(m["max_abs_error"]), num=True), Cell(fmt(m["mean_abs_error"]), num=True),
            Cell(fmt(m["max_rel_error"]), num=True), Cell(fmt(m["cosine"], ".6f"), num=True, bad=low_cos),
            Cell(fmt(m["min_cosine"], ".6f"), num=True),
            Cell(fmt(m["top1_agreement"], ".4f"), num=True, bad=low_agree),
        ])
    return rows


def _accuracy(d: dict[str, Any]) -> dict[str, Any] | None:
    a = d["accuracy"]
    if a is None:
        return None
    if a["metric"] == "accuracy":
        rc, cc, (lo, hi) = a["reference_ci95"], a["candidate_ci95"], a["ci95"]
        limit = d["gates"].get("max_accuracy_drop")
        bad = limit is not None and (a["drop_points"] is None or a["drop_points"] > limit)
        rows = [[Cell("reference"), Cell(f"{fmt(a['reference'] * 100, '.2f')} %", num=True),
                 Cell(f"{fmt(rc[0] * 100, '.2f')} .. {fmt(rc[1] * 100, '.2f')} %", num=True)],
                [Cell("candidate"), Cell(f"{fmt(a['candidate'] * 100, '.2f')} %", num=True),
                 Cell(f"{fmt(cc[0] * 100, '.2f')} .. {fmt(cc[1] * 100, '.2f')} %", num=True)],
                [Cell("drop (points)"), Cell(fmt(a["drop_points"], ".2f"), num=True, bad=bad),
                 Cell(f"{fmt(lo, '.2f')} .. {fmt(hi, '.2f')}", num=True)]]
        head = ["", "accuracy", "95% interval"]
    else:
        lo, hi = a["ci95"]
        rows = [[Cell("reference"), Cell(fmt(a["reference"]), num=True), Cell("")],
                [Cell("candidate"), Cell(fmt(a["candidate"]), num=True), Cell("")],
                [Cell("difference"), Cell(fmt(a["difference"]), num=True), Cell(f"{fmt(lo)} .. {fmt(hi)}", num=True)]]
        head = ["", "MAE", "95% interval"]
    return {"title": a["task"].capitalize(), "output": a["output"], "head": head, "rows": rows, "method": a["method"]}


def _task(d: dict[str, Any]) -> dict[str, Any] | None:
    """Detection recall/precision or segmentation mask IoU against the reference, gated values marked."""
    t, gates = d.get("task"), d["gates"]
    if not t:
        return None

    def row(label: str, key: str, gate: str | None = None, spec: str = ".4f") -> list[Cell]:
        v = t[key]
        bad = gate in gates and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= gates[gate])
        limit = f"≥ {gates[gate]:g}" if gate in gates else ""
        return [Cell(label), Cell(fmt(v, spec) if isinstance(v, float) else fmt(v), num=True, bad=bad), Cell(limit)]

    if t["task"] == "detection":
        rows = [row("recall", "recall", "min_detection_recall"),
                row("precision", "precision", "min_detection_precision"),
                row("reference boxes", "reference_detections"), row("candidate boxes", "candidate_detections"),
                row("matched", "matched"), row("mean IoU of matched boxes", "mean_matched_iou"),
                row("worst sample recall", "min_sample_recall")]
        how = (f"layout {t['layout']} ({', '.join(t['outputs'])}), {t['box_format']} boxes; score ≥ "
               f"{t['score_threshold']:g}, NMS IoU {t['nms_iou']:g}, matched at IoU ≥ {t['match_iou']:g}"
               f"{', any class' if t['class_agnostic'] else ', same class'}; the reference's boxes are the truth")
    else:
        rows = [row("mask IoU", "mask_iou", "min_mask_iou"), row("mean sample IoU", "mean_sample_iou"),
                row("worst sample IoU", "min_sample_iou"), row("pixel agreement", "pixel_agreement")]
        how = (f"output {t['output']}, {t['kind']} map"
               + (f", foreground at p ≥ {t['threshold']:g}" + (" (logits: sigmoid first)" if t["logits"] else "")
                  if t["kind"] == "binary" else f", argmax over {t['classes']} classes"))
    return {"title": t["task"].capitalize(), "rows": rows, "how": how}


def _latency(d: dict[str, Any]) -> dict[str, Any] | None:
    lat = d["latency"]
    if lat is None:
        return None
    limit = d["gates"].get("max_p95_ms")
    rows = []
    for role in ("reference", "candidate"):
        m = lat[role]
        bad = role == "candidate" and limit is not None and (m["p95"] is None or m["p95"] > limit)
        rows.append([Cell(role), Cell(fmt(m["p50"], ".3f"), num=True), Cell(fmt(m["p95"], ".3f"), num=True, bad=bad),
                     Cell(fmt(m["mean"], ".3f"), num=True), Cell(fmt(m["peak_rss_mb"], ".1f"), num=True)])
    return {"rows": rows, "ratio": fmt(lat["p50_ratio"], ".2f")}


def _divergence(d: dict[str, Any]) -> dict[str, Any] | None:
    div, diag = d["divergence"], d["diagnosis"] or {}
    if not div:
        return None
    rows = [[Cell(str(i + 1), num=True), Cell(e["tensor"], code=True), Cell(fmt(e["op_type"])),
             Cell(fmt(e["node"])), Cell(fmt(e["sqnr_db"], ".1f"), num=True),
             Cell(fmt(e.get("qdq_sqnr_db"), ".1f"), num=True), Cell(fmt(e["introduced_db"], ".1f"), num=True)]
            for i, e in enumerate(div)]
    return {"method": str(diag.get("method")), "samples": len(diag.get("samples", [])), "rows": rows,
            "hint": diag.get("hint") or ""}


def _plot(report: ValidationReport) -> str:
    """The plots as a base64 PNG, or "" without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - matplotlib is optional; the page stands without the picture
        return ""
    d = report.to_dict()
    names = list(d["outputs"])
    if not names:
        return ""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    x = range(len(names))
    maxe = [d["outputs"][n]["max_abs_error"] or 0.0 for n in names]
    meane = [d["outputs"][n]["mean_abs_error"] or 0.0 for n in names]
    axes[0].bar([i - 0.2 for i in x], maxe, width=0.4, label="max abs")
    axes[0].bar([i + 0.2 for i in x], meane, width=0.4, label="mean abs")
    axes[0].set_title("error per output")
    if any(v > 0 for v in maxe + meane):
        axes[0].set_yscale("log")
    cos = [d["outputs"][n]["cosine"] or 0.0 for n in names]
    agree = [d["outputs"][n]["top1_agreement"] for n in names]
    axes[1].bar([i - 0.2 for i in x], cos, width=0.4, label="cosine (mean)")
    axes[1].bar([i + 0.2 for i in x], [a if a is not None else 0.0 for a in agree], width=0.4, label="top-1 agreement")
    axes[1].set_ylim(min([0.9, *cos, *[a for a in agree if a is not None]]) - 0.01, 1.001)
    axes[1].set_title("agreement per output")
    for ax in axes[:2]:
        ax.set_xticks(list(x), names, rotation=20, ha="right")
        ax.legend(fontsize=8)
    for n, c in report.sample_cosines.items():
        finite = np.asarray(c, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if hi - lo < 1e-6:  # identical models: every cosine is 1, and 30 bins over no range is an error
            lo, hi = lo - 5e-4, hi + 5e-4
        axes[2].hist(finite, bins=30, range=(lo, hi), alpha=0.6, label=n)
    axes[2].set_title("per-sample cosine similarity")
    axes[2].set_yscale("log")
    if report.sample_cosines:
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
