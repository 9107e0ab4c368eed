"""The HTML form of a validation report: one self-contained page a person reads.

Inline CSS, plain tables, and when matplotlib is installed one inline PNG
(base64): error per output and cosine / top-1 agreement per output, next to the
distribution of per-sample cosine similarity.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .report import ValidationReport

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
.verdict { display: inline-block; padding: .25em .8em; border-radius: 4px; font-weight: 600; color: #fff; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
table { border-collapse: collapse; margin: .5em 0; } th, td { padding: .3em .8em; border-bottom: 1px solid #dde2ea; }
th { text-align: left; background: #f3f5f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #c62828; font-weight: 600; } code { background: #f3f5f8; padding: 0 .25em; }
ul.failures li { color: #c62828; } .muted { color: #6b7585; } img { max-width: 100%; }
"""


def render(report: ValidationReport) -> str:
    d = report.to_dict()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>edgeops validate: {escape(_base(d['candidate']))}</title><style>{CSS}</style></head><body>",
        "<h1>Validation report</h1>",
        f'<p><span class="verdict {"pass" if d["passed"] else "fail"}">{"PASS" if d["passed"] else "FAIL"}</span> '
        f"candidate <code>{escape(d['candidate'])}</code> against reference <code>{escape(d['reference'])}</code>, "
        f"{d['samples']} samples</p>",
    ]
    if d["failures"]:
        parts.append('<ul class="failures">' + "".join(f"<li>{escape(f)}</li>" for f in d["failures"]) + "</ul>")
    parts += _gates(d), _task(d), _outputs(d), _accuracy(d), _latency(d), _divergence(d), _plot(report)
    if d["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in d["notes"]) + "</ul>")
    parts.append(f'<p class="muted">edgeops {escape(__version__)}</p></body></html>')
    return "\n".join(p for p in parts if p)


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def fmt(value: Any, spec: str = ".4g") -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, float):
        return format(value, spec)
    return escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are pre-rendered ``<td>`` strings (so numbers can be right-aligned and failures marked)."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def td(text: str, num: bool = False, bad: bool = False) -> str:
    cls = " ".join(c for c, on in (("num", num), ("bad", bad)) if on)
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _gates(d: dict[str, Any]) -> str:
    if not d["gates"]:
        return "<h2>Gates</h2><p class='muted'>No gates were set; the numbers below are for reading.</p>"
    rows = [[td(escape(k)), td(fmt(v, "g"), num=True)] for k, v in d["gates"].items()]
    return "<h2>Gates</h2>" + _table(["gate", "limit"], rows)


def _outputs(d: dict[str, Any]) -> str:
    gates = d["gates"]
    rows = []
    for name, m in d["outputs"].items():
        low_cos = "min_cosine" in gates and (m["cosine"] is None or m["cosine"] < gates["min_cosine"])
        low_agree = ("min_agreement" in gates and m["top1_agreement"] is not None
                     and m["top1_agreement"] < gates["min_agreement"])
        rows.append([
            td(escape(name) + ("" if m["candidate_output"] == name else f" ↔ {escape(m['candidate_output'])}")),
            td(fmt(m["max_abs_error"]), num=True), td(fmt(m["mean_abs_error"]), num=True),
            td(fmt(m["max_rel_error"]), num=True), td(fmt(m["cosine"], ".6f"), num=True, bad=low_cos),
            td(fmt(m["min_cosine"], ".6f"), num=True),
            td(fmt(m["top1_agreement"], ".4f"), num=True, bad=low_agree),
        ])
    head = ["output", "max abs error", "mean abs error", "max rel error", "cosine (mean)", "cosine (worst)",
            "top-1 agreement"]
    return "<h2>Outputs</h2>" + _table(head, rows)


def _accuracy(d: dict[str, Any]) -> str:
    a = d["accuracy"]
    if a is None:
        return ""
    if a["metric"] == "accuracy":
        rc, cc, (lo, hi) = a["reference_ci95"], a["candidate_ci95"], a["ci95"]
        limit = d["gates"].get("max_accuracy_drop")
        bad = limit is not None and (a["drop_points"] is None or a["drop_points"] > limit)
        rows = [[td("reference"), td(f"{fmt(a['reference'] * 100, '.2f')} %", num=True),
                 td(f"{fmt(rc[0] * 100, '.2f')} .. {fmt(rc[1] * 100, '.2f')} %", num=True)],
                [td("candidate"), td(f"{fmt(a['candidate'] * 100, '.2f')} %", num=True),
                 td(f"{fmt(cc[0] * 100, '.2f')} .. {fmt(cc[1] * 100, '.2f')} %", num=True)],
                [td("drop (points)"), td(fmt(a["drop_points"], ".2f"), num=True, bad=bad),
                 td(f"{fmt(lo, '.2f')} .. {fmt(hi, '.2f')}", num=True)]]
        table = _table(["", "accuracy", "95% interval"], rows)
    else:
        lo, hi = a["ci95"]
        rows = [[td("reference"), td(fmt(a["reference"]), num=True), td("")],
                [td("candidate"), td(fmt(a["candidate"]), num=True), td("")],
                [td("difference"), td(fmt(a["difference"]), num=True), td(f"{fmt(lo)} .. {fmt(hi)}", num=True)]]
        table = _table(["", "MAE", "95% interval"], rows)
    return (f"<h2>{escape(a['task'].capitalize())} on labels (output <code>{escape(a['output'])}</code>)</h2>"
            + table + f"<p class='muted'>{escape(a['method'])}</p>")


def _task(d: dict[str, Any]) -> str:
    """Detection recall/precision or segmentation mask IoU against the reference, gated values marked."""
    t, gates = d.get("task"), d["gates"]
    if not t:
        return ""

    def row(label: str, key: str, gate: str | None = None, spec: str = ".4f") -> list[str]:
        v = t[key]
        bad = gate in gates and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= gates[gate])
        limit = f"≥ {gates[gate]:g}" if gate in gates else ""
        return [td(label), td(fmt(v, spec) if isinstance(v, float) else fmt(v), num=True, bad=bad), td(limit)]

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
    return (f"<h2>{escape(t['task'].capitalize())} against the reference</h2>"
            + _table(["metric", "value", "gate"], rows) + f"<p class='muted'>{escape(how)}</p>")


def _latency(d: dict[str, Any]) -> str:
    lat = d["latency"]
    if lat is None:
        return ""
    limit = d["gates"].get("max_p95_ms")
    rows = []
    for role in ("reference", "candidate"):
        m = lat[role]
        bad = role == "candidate" and limit is not None and (m["p95"] is None or m["p95"] > limit)
        rows.append([td(role), td(fmt(m["p50"], ".3f"), num=True), td(fmt(m["p95"], ".3f"), num=True, bad=bad),
                     td(fmt(m["mean"], ".3f"), num=True), td(fmt(m["peak_rss_mb"], ".1f"), num=True)])
    return ("<h2>Latency (one sample per run)</h2>"
            + _table(["model", "p50 ms", "p95 ms", "mean ms", "peak RSS MB"], rows)
            + f"<p>candidate p50 / reference p50: <b>{fmt(lat['p50_ratio'], '.2f')}×</b></p>")


def _divergence(d: dict[str, Any]) -> str:
    div, diag = d["divergence"], d["diagnosis"] or {}
    if not div:
        return ""
    rows = [[td(str(i + 1), num=True), td(f"<code>{escape(e['tensor'])}</code>"), td(fmt(e["op_type"])),
             td(fmt(e["node"])), td(fmt(e["sqnr_db"], ".1f"), num=True),
             td(fmt(e.get("qdq_sqnr_db"), ".1f"), num=True), td(fmt(e["introduced_db"], ".1f"), num=True)]
            for i, e in enumerate(div)]
    hint = f"<p><b>Hint:</b> {escape(diag['hint'])}</p>" if diag.get("hint") else ""
    return (f"<h2>Where the candidate diverges ({escape(str(diag.get('method')))}, "
            f"{len(diag.get('samples', []))} samples)</h2>"
            + _table(["#", "tensor", "op", "node", "SQNR dB", "QDQ SQNR dB", "added dB"], rows) + hint
            + "<p class='muted'>SQNR = 20 log10(|reference| / |reference − candidate|); lower is worse. "
              "“added dB” is how much worse a tensor is than the tensors it is computed from; "
              "“QDQ SQNR dB” compares the candidate's tensor before and after its own quantize/dequantize "
              "(low where a ReLU was folded into the quantization).</p>")


def _plot(report: ValidationReport) -> str:
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
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<h2>Plots</h2><img alt="error and agreement per output" src="data:image/png;base64,{data}">'
