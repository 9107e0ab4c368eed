"""Pictures and the HTML page of an explanation: PNG overlays of image maps, the samples whose
explanation moved most side by side, bar charts of importances, all inline in one HTML file.

matplotlib (the ``plot`` extra, as ``edgeops bench --plot``) draws the PNGs through its Agg canvas,
no pyplot state; every file goes through :func:`edgeops._io.atomic_stream`.
"""

from __future__ import annotations

import base64
import io
import os
from html import escape
from typing import Any

import numpy as np

from .._io import atomic_write
from .._version import __version__
from ..errors import UsageError
from .core import Comparison, Explanation

GRID = 8  # samples in an explanation's map grid
TOP = 20  # features in a bar chart


def _figure(w: float, h: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("explanation pictures need matplotlib: pip install 'edgeops[plot]'") from exc
    fig = Figure(figsize=(w, h), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _show_image(ax: Any, img: np.ndarray) -> None:
    lo, hi = float(np.min(img)), float(np.max(img))
    x = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if x.shape[-1] == 3:
        ax.imshow(x)
    else:
        ax.imshow(x.mean(axis=-1), cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax: Any, img: np.ndarray | None, m: np.ndarray, title: str, limit: float) -> Any:
    if img is not None:
        _show_image(ax, img)
    shown = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.55 if img is not None else 1.0)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _limit(*maps: np.ndarray) -> float:
    v = max((float(np.nanmax(np.abs(m))) for m in maps if m.size), default=0.0)
    return v if v > 0 else 1.0


def patch_map(e: Explanation, shape: tuple[int, int]) -> np.ndarray:
    """Feature importances of image patches (``"y0:y1,x0:x1"``) spread back over the pixels."""
    out = np.zeros(shape)
    cover = np.zeros(shape)
    for name, v in zip(e.attribution.features, e.attribution.mean):
        y, x = name.split(",")
        (y0, y1), (x0, x1) = map(int, y.split(":")), map(int, x.split(":"))
        out[y0:y1, x0:x1] += v
        cover[y0:y1, x0:x1] += 1
    return out / np.maximum(cover, 1)


def explanation_pngs(e: Explanation) -> dict[str, bytes]:
    """File name -> PNG: the maps of the first samples over the images, and the mean map; bars for tables."""
    a = e.attribution
    out: dict[str, bytes] = {}
    if a.layout is not None and e.images is not None:
        h, w = e.images.shape[1:3]
        mean_map = np.mean(np.abs(a.maps), axis=0) if a.maps is not None else patch_map(e, (h, w))
        fig = _figure(3.2, 3)
        ax = fig.subplots(1, 1)
        fig.colorbar(_overlay(ax, np.mean(e.images, axis=0), mean_map, f"{e.method}: mean |attribution|",
                              _limit(mean_map)), ax=ax, fraction=0.046)
        fig.tight_layout()
        out[f"{e.method}_mean.png"] = _png(fig)
        if a.maps is not None:
            k = min(GRID, len(a.maps))
            fig = _figure(2.1 * k, 2.3)
            axes = np.atleast_1d(fig.subplots(1, k))
            lim = _limit(a.maps[:k])
            for i in range(k):
                _overlay(axes[i], e.images[i], a.maps[i], f"sample {e.samples[i]} (target {int(e.targets[i])})", lim)
            fig.tight_layout()
            out[f"{e.method}_maps.png"] = _png(fig)
    else:
        out[f"{e.method}_importances.png"] = _bars([("model", e)])
    return out


def _bars(models: list[tuple[str, Explanation]]) -> bytes:
    first = models[0][1].importances()[:TOP]
    names = [str(r["feature"]) for r in first]
    fig = _figure(max(5.0, 0.35 * len(names) + 2), 3.2)
    ax = fig.subplots(1, 1)
    width = 0.8 / len(models)
    for j, (role, e) in enumerate(models):
        by = {str(r["feature"]): r for r in e.importances()}
        ax.bar(np.arange(len(names)) + j * width, [by[n]["mean"] for n in names], width=width,
               yerr=[by[n]["std"] for n in names], label=role, capsize=2)
    ax.set_xticks(np.arange(len(names)) + width * (len(models) - 1) / 2, names, rotation=60, fontsize=7)
    ax.set_ylabel("importance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def comparison_pngs(c: Comparison) -> dict[str, bytes]:
    """File name -> PNG: the importances side by side, and the samples whose maps moved most."""
    ref, cand = c.reference, c.candidate
    method = ref.method
    out: dict[str, bytes] = {f"{method}_importances.png": _bars([("reference", ref), ("candidate", cand)])}
    a, b = ref.attribution, cand.attribution
    moved = c.moved()
    if a.maps is None or b.maps is None or not moved:
        return out
    if a.layout is not None and ref.images is not None:
        fig = _figure(7.5, 2.4 * len(moved))
        axes = np.atleast_2d(fig.subplots(len(moved), 3))
        for row, i in enumerate(moved):
            lim = _limit(a.maps[i], b.maps[i])
            _show_image(axes[row, 0], ref.images[i])
            axes[row, 0].set_title(f"sample {ref.samples[i]}", fontsize=8)
            score = f"cosine {c.cosine[i]:.2f}" if c.cosine is not None else ""
            _overlay(axes[row, 1], ref.images[i], a.maps[i], "reference", lim)
            _overlay(axes[row, 2], ref.images[i], b.maps[i], f"candidate ({score})", lim)
        fig.tight_layout()
        out[f"{method}_moved.png"] = _png(fig)
        return out
    fig = _figure(max(5.0, 0.3 * len(a.features) + 2), 2.4 * len(moved))
    axes = np.atleast_1d(fig.subplots(len(moved), 1))
    x = np.arange(len(a.features))
    for row, i in enumerate(moved):
        axes[row].bar(x - 0.2, a.maps[i], width=0.4, label="reference")
        axes[row].bar(x + 0.2, b.maps[i], width=0.4, label="candidate")
        axes[row].set_title(f"sample {ref.samples[i]}, cosine {c.cosine[i]:.2f}" if c.cosine is not None else "",
                            fontsize=8)
        axes[row].set_xticks(x, a.features, rotation=60, fontsize=6)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out[f"{method}_moved.png"] = _png(fig)
    return out


def write_pngs(pngs: dict[str, bytes], folder: str | os.PathLike[str]) -> list[str]:
    paths = []
    for name, data in pngs.items():
        path = os.path.join(os.fspath(folder), name)
        atomic_write(path, data)
        paths.append(path)
    return paths


# -- HTML ----------------------------------------------------------------------------------------------

CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}td.n{text-align:right}.muted{color:#777}"
       ".fail{color:#b00}.pass{color:#070}img{max-width:100%}")


def _table(rows: list[dict[str, Any]], roles: list[str] | None = None, limit: int = TOP) -> str:
    head = "<tr><th>#</th><th>feature</th><th>importance</th><th>spread (std)</th></tr>"
    body = "".join(f"<tr><td class=n>{i + 1}</td><td>{escape(str(r['feature']))}</td><td class=n>{r['mean']:.4g}</td>"
                   f"<td class=n>{r['std']:.3g}</td></tr>" for i, r in enumerate(rows[:limit]))
    return f"<table>{head}{body}</table>"


def _imgs(pngs: dict[str, bytes]) -> str:
    return "".join(f'<p><img alt="{escape(n)}" src="data:image/png;base64,{base64.b64encode(b).decode("ascii")}"></p>'
                   for n, b in pngs.items())


def _cost(e: Explanation) -> str:
    return (f"{e.model_calls} model calls ({e.rows} rows), {len(e.samples)} sample(s), {e.seconds:.2f} s")


def render(obj: Explanation | Comparison, pngs: dict[str, bytes]) -> str:
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>edgeops explain</title><style>{CSS}</style>"
             "</head><body>"]
    if isinstance(obj, Comparison):
        d = obj.to_dict()
        ref, cand = obj.reference, obj.candidate
        parts.append(f"<h1>Explanation of <code>{escape(cand.model)}</code> against <code>{escape(ref.model)}</code>"
                     f"</h1><p>method <b>{escape(ref.method)}</b>; agreement <b>{d['agreement']:.4f}</b> "
                     f"({escape(d['agreement_kind'])}); rank correlation of importances {d['rank_correlation']:.4f}")
        if obj.topk_iou is not None:
            parts.append(f"; top-{obj.top_k:.0%} IoU mean {d['topk_iou']['mean']:.3f} (worst {d['topk_iou']['min']:.3f})")
        if obj.cosine is not None:
            parts.append(f"; map cosine mean {d['cosine']['mean']:.3f} (worst {d['cosine']['min']:.3f})")
        parts.append("</p>")
        if obj.minimum is not None:
            cls, word = ("pass", "PASS") if obj.passed else ("fail", "FAIL")
            parts.append(f"<p class={cls}><b>{word}</b> gate min explanation agreement {obj.minimum:g}</p>")
        parts.append(f"<p class=muted>cost: reference {_cost(ref)}; candidate {_cost(cand)}</p>")
        parts.append("<h2>Reference</h2>" + _table(ref.importances()) + "<h2>Candidate</h2>" + _table(cand.importances()))
        if d["moved_most"]:
            parts.append(f"<h2>Samples whose explanation moved most</h2><p>{', '.join(map(str, d['moved_most']))}</p>")
    else:
        parts.append(f"<h1>Explanation of <code>{escape(obj.model)}</code></h1><p>method <b>{escape(obj.method)}</b>"
                     f"</p><p class=muted>cost: {_cost(obj)}</p>")
        info = {k: v for k, v in obj.attribution.info.items()}
        if info:
            parts.append("<p>" + ", ".join(f"{escape(str(k))} {escape(str(v))}" for k, v in info.items()) + "</p>")
        parts.append(_table(obj.importances()))
    parts.append("<h2>Pictures</h2>" + _imgs(pngs) if pngs else "")
    parts.append(f'<p class="muted">edgeops {escape(__version__)}</p></body></html>')
    return "".join(parts)


def write_html(obj: Explanation | Comparison, pngs: dict[str, bytes], path: str | os.PathLike[str]) -> None:
    atomic_write(path, render(obj, pngs))


def drift_html(d: dict[str, Any]) -> str:
    """The drift ranking of :func:`edgeops.explain.drift` as a page."""
    head = "<tr><th>feature</th><th>PSI</th><th>level</th><th>mean shift (ref std)</th><th>quantile shift</th></tr>"

    def num(v: Any, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    body = "".join(
        f"<tr><td>{escape(str(r['feature']))}</td><td class=n>{num(r['psi'], '.3f')}</td><td>{escape(str(r['level']))}</td>"
        f"<td class=n>{num(r['mean_shift_std'], '+.2f')}</td><td>"
        + escape(", ".join(f"{k} {v:+.3g}" for k, v in (r["quantile_shift"] or {}).items())) + "</td></tr>"
        for r in d["drift"])
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>edgeops explain --drift</title><style>{CSS}</style>"
             f"</head><body><h1>Drift against the reference {escape(d['reference'])}</h1><table>{head}{body}</table>"]
    if "top_features" in d:
        parts.append(f"<p>The model's top features: {escape(', '.join(map(str, d['top_features'])))}; among the moved: "
                     f"<b>{escape(', '.join(map(str, d['important_and_moved'])) or 'none')}</b> "
                     f"({d['model_calls']} model calls)</p>")
    parts.append(f'<p class="muted">edgeops {escape(__version__)}</p></body></html>')
    return "".join(parts)
