"""Reports of benchmark results: a rich table, CSV, GitHub markdown and a PNG of the latency distributions.

Every function takes the list of result dicts that ``BenchResult.to_dict(samples=True)`` makes, one per
benchmarked model, in the order they ran. The first result is the baseline: "p50 vs first" divides each
model's median latency by the first one's, so ``0.42x`` means that model is faster.

Any numeric field may be ``None`` (not measurable here). It shows as "—" in the table and markdown and as
an empty cell in CSV, and a ratio that needs it is ``None``. Only :func:`plot` needs ``samples_ms``.

The table shows the columns a comparison needs (:data:`COMPACT`) and fits a terminal of 80 columns:
model names are cut in the middle, never a number; ``wide=True`` (``edgeops bench --wide``) shows every
column. :func:`warnings` lists what makes the numbers less trustworthy, for every renderer to print.

Models are named by their file name; when two results share one, the shortest path suffix that tells them
apart is used, and the same path benchmarked twice gets ``#2``, ``#3``, ... (:func:`model_names`).

rich and matplotlib are imported inside the functions that use them, so importing this module is cheap.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._io import atomic_stream
from ..errors import BackendUnavailableError, UsageError

__all__ = ["model_names", "ratios", "to_table", "warnings", "to_csv", "to_markdown", "plot"]

Result = Mapping[str, Any]

MISSING = "—"
E2E_TITLE = "end-to-end (preprocessing included)"
LATENCY_STATS = ("mean", "std", "min", "p50", "p90", "p95", "p99", "p999", "max")

# (header, right-aligned) for the table and the markdown; _row() fills them in this order.
COLUMNS = (
    ("model", False), ("backend", False), ("threads", True), ("batch", True),
    ("init ms", True), ("first ms", True), ("p50 ms", True), ("p95 ms", True), ("p99 ms", True),
    ("mean ms", True), ("std ms", True), ("CV %", True), ("throughput/s", True), ("peak RSS MB", True),
    ("p50 vs first", True),
)

# The default table: these columns, with these (two-line, narrow) headers, fit 80 terminal columns.
# The batch shows only when it is not 1, the ratio only with two models or more; --wide shows all COLUMNS.
COMPACT = {
    "model": "model", "backend": "backend", "batch": "batch", "p50 ms": "p50\nms", "p95 ms": "p95\nms",
    "p99 ms": "p99\nms", "CV %": "CV\n%", "throughput/s": "throughput\nper s", "p50 vs first": "p50 vs\nfirst",
}
MIN_NAME = 12  # model names are never shortened below this

CSV_FIELDS = (
    "model", "format", "backend", "providers", "threads", "batch", "inputs", "end_to_end",
    "init_ms", "first_inference_ms", "warmup_count", "warmup_mean_ms", "runs", "duration_s",
    *(f"latency_{stat}_ms" for stat in LATENCY_STATS),
    "cv", "throughput_per_s", "peak_rss_mb", "rss_delta_mb", "cpu_percent",
    "cpu_count", "platform", "machine", "throttled_flags",
    "cpu_freq_start_mhz", "cpu_freq_end_mhz", "cpu_freq_min_mhz", "cpu_freq_max_mhz",
    "temperature_start_c", "temperature_end_c", "temperature_max_c",
    "warnings", "p50_ratio_vs_first",
)


# --------------------------------------------------------------------------------------------- values


def _number(value: Any) -> float | None:
    """A finite float, or None for None, NaN, inf and anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _get(result: Result, *keys: str) -> Any:
    """``result[k1][k2]...``, or None where a level is missing or None."""
    value: Any = result
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _p50(result: Result) -> float | None:
    return _number(_get(result, "latency_ms", "p50"))


def ratios(results: Sequence[Result]) -> list[float | None]:
    """Each result's p50 divided by the first result's p50 (``None`` where either is missing or 0)."""
    if not results:
        return []
    base = _p50(results[0])
    if not base:
        return [None] * len(results)
    return [None if (p50 := _p50(r)) is None else p50 / base for r in results]


# ---------------------------------------------------------------------------------------------- names


def _path_parts(path: str) -> tuple[str, ...]:
    parts = tuple(p for p in re.split(r"[\\/]+", path) if p not in ("", "."))
    return parts or (path,)


def model_names(results: Sequence[Result]) -> list[str]:
    """Short display names: the file name, a longer path suffix where file names clash, then ``#2``..."""
    parts = [_path_parts(str(r.get("model") or "?")) for r in results]
    names = [p[-1] for p in parts]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    for members in groups.values():
        distinct = {parts[i] for i in members}
        if len(distinct) < 2:
            continue
        depth = next(k for k in range(2, max(map(len, distinct)) + 1) if len({p[-k:] for p in distinct}) == len(distinct))
        for i in members:
            names[i] = "/".join(parts[i][-depth:])
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name}#{seen[name]}"
    return names


def _labels(results: Sequence[Result]) -> list[str]:
    """Display names with an ``(e2e)`` mark on end-to-end rows."""
    return [f"{name} (e2e)" if r.get("end_to_end") else name for name, r in zip(model_names(results), results)]


# -------------------------------------------------------------------------------------- table & markdown


def _fmt_ms(value: Any) -> str:
    v = _number(value)
    if v is None:
        return MISSING
    for limit, digits in ((100, 0), (10, 1), (1, 2)):
        if abs(v) >= limit:
            return f"{v:.{digits}f}"
    return f"{v:.3f}"


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    v = _number(value)
    return MISSING if v is None else format(v * scale, spec)


def _fmt_int(value: Any) -> str:
    v = _number(value)
    return MISSING if v is None else str(int(v))


def _fmt_ratio(ratio: float | None) -> str:
    """``0.42x``; three digits at most past 10x (``12.5x``, ``3009x``) so the column stays narrow."""
    v = _number(ratio)
    if v is None:
        return MISSING
    return f"{v:.0f}x" if abs(v) >= 100 else f"{v:.1f}x" if abs(v) >= 10 else f"{v:.2f}x"


def _backend(result: Result) -> str:
    """The backend, plus the first provider or delegate when it is not the plain CPU one."""
    backend = str(result.get("backend") or MISSING)
    providers = result.get("providers") or []
    first = str(providers[0]) if providers else ""
    if not first or first.lower() in ("cpu", "cpuexecutionprovider"):
        return backend
    return f"{backend}:{first.removesuffix('ExecutionProvider')}"


def _row(result: Result, label: str, ratio: float | None) -> list[str]:
    lat = result.get("latency_ms") or {}
    return [
        label, _backend(result), _fmt_int(result.get("threads")), _fmt_int(result.get("batch")),
        _fmt_ms(result.get("init_ms")), _fmt_ms(result.get("first_inference_ms")),
        _fmt_ms(lat.get("p50")), _fmt_ms(lat.get("p95")), _fmt_ms(lat.get("p99")),
        _fmt_ms(lat.get("mean")), _fmt_ms(lat.get("std")), _fmt(result.get("cv"), ".1f", 100.0),
        _fmt(result.get("throughput_per_s"), ",.0f"), _fmt(result.get("peak_rss_mb"), ".1f"),
        _fmt_ratio(ratio),
    ]


def _rows(results: Sequence[Result]) -> list[list[str]]:
    return [_row(r, label, ratio) for r, label, ratio in zip(results, _labels(results), ratios(results))]


def _title(results: Sequence[Result]) -> str:
    e2e = [bool(r.get("end_to_end")) for r in results]
    if e2e and all(e2e):
        return f"Latency (ms), {E2E_TITLE}"
    if any(e2e):
        return f"Latency (ms); rows marked (e2e) are {E2E_TITLE}"
    return "Latency (ms)"


def _caption(results: Sequence[Result]) -> str:
    if not results:
        return ""
    return f"p50 vs first: p50 / p50 of {model_names(results)[0]}; below 1.00x is faster"


def to_table(results: Sequence[Result], *, wide: bool = False, width: int | None = None) -> Any:
    """A ``rich.table.Table`` with one row per model (warnings are left to the caller: :func:`warnings`).

    By default the columns a comparison needs (:data:`COMPACT`), drawn light; with ``width`` (the
    terminal's) model names are shortened from the middle so the table fits and no number is cut.
    ``wide=True``: every column of :data:`COLUMNS`, boxed, as wide as it needs."""
    from rich import box
    from rich.table import Table

    rows = _rows(results)
    if wide:
        keep = list(range(len(COLUMNS)))
        headers = [header for header, _ in COLUMNS]
        style: dict[str, Any] = {}
    else:
        keep = [i for i, (header, _) in enumerate(COLUMNS) if header in COMPACT and _shown(header, results)]
        headers = [COMPACT[COLUMNS[i][0]] for i in keep]
        style = {"box": box.SIMPLE_HEAD, "show_edge": False, "padding": (0, 0)}  # one space between columns
    cells = [[row[i] for i in keep] for row in rows]
    if width is not None and not wide and cells:
        room = _name_room(headers, cells, width)
        for row, name, result in zip(cells, model_names(results), results):
            mark = " (e2e)" if result.get("end_to_end") else ""
            row[0] = shorten_middle(name, room - len(mark)) + mark
    ratio_shown = any(COLUMNS[i][0] == "p50 vs first" for i in keep)
    table = Table(title=_title(results), caption=(_caption(results) if ratio_shown else "") or None, **style)
    for i, header in zip(keep, headers):
        table.add_column(header, justify="right" if COLUMNS[i][1] else "left", no_wrap=COLUMNS[i][1] or not wide)
    for row in cells:
        table.add_row(*row)
    return table


def _shown(header: str, results: Sequence[Result]) -> bool:
    """Whether a :data:`COMPACT` column says anything here: the batch when it is not 1, the ratio with two models."""
    if header == "batch":
        return any(_number(r.get("batch")) not in (None, 1) for r in results)
    if header == "p50 vs first":
        return len(results) > 1
    return True


def _name_room(headers: list[str], cells: list[list[str]], width: int) -> int:
    """How wide the model column (the first) may be for the compact table to fit ``width`` columns."""
    from rich.cells import cell_len

    others = sum(max([cell_len(line) for line in header.split("\n")] + [cell_len(row[j]) for row in cells])
                 for j, header in enumerate(headers) if j > 0)
    return max(MIN_NAME, width - others - (len(headers) - 1))  # one space between columns


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle: ``digits_c…int8.tflite``."""
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    head = keep // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def warnings(results: Sequence[Result]) -> list[tuple[str, str]]:
    """``(model name, warning)`` for every warning the harness attached (unstable timings, too few runs,
    throttling, drift): what every report prints below its table."""
    return [(name, str(w)) for name, r in zip(model_names(results), results) for w in r.get("warnings") or []]


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(results: Sequence[Result]) -> str:
    """A GitHub markdown table with the table's content, then the warnings as a list, one per line."""
    lines = [f"**{_title(results)}**", ""]
    lines.append("| " + " | ".join(header for header, _ in COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if right else "---" for _, right in COLUMNS) + "|")
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in _rows(results)]
    if results:
        lines += ["", _caption(results)]
    found = warnings(results)
    if found:
        lines += ["", "**Warnings**", ""]
        lines += [f"- `{name}`: {_md_cell(w)}" for name, w in found]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- csv


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return value.item() if hasattr(value, "item") else value


def _flat(result: Result, ratio: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {key: result.get(key) for key in CSV_FIELDS if key in result}
    row["warmup_count"] = _get(result, "warmup", "count")
    row["warmup_mean_ms"] = _get(result, "warmup", "mean_ms")
    for stat in LATENCY_STATS:
        row[f"latency_{stat}_ms"] = _get(result, "latency_ms", stat)
    for key in ("cpu_count", "platform", "machine", "throttled_flags"):
        row[key] = _get(result, "system", key)
    for key in ("start", "end", "min", "max"):
        row[f"cpu_freq_{key}_mhz"] = _get(result, "system", "cpu_freq_mhz", key)
    for key in ("start", "end", "max"):
        row[f"temperature_{key}_c"] = _get(result, "system", "temperature_c", key)
    row["warnings"] = "; ".join(map(str, result.get("warnings") or []))
    row["p50_ratio_vs_first"] = ratio
    return {key: _csv_value(row.get(key)) for key in CSV_FIELDS}


def to_csv(results: Sequence[Result]) -> str:
    """CSV text: a header (``CSV_FIELDS``) and one flat row per model; no raw samples."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result, ratio in zip(results, ratios(results)):
        writer.writerow(_flat(result, ratio))
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ plot

WIDE_SPREAD = 10.0  # log-x when the slowest sample is this many times the fastest
BINS, MIN_BINS, MAX_BINS = 60, 20, 200  # histogram bins: default, and the range the data may pick
CDF_POINTS = 4000  # the CDF is drawn through at most this many points (the tail kept whole)
MARKED = (("p50", 50.0, "center"), ("p95", 95.0, "top"), ("p99", 99.0, "bottom"))


def _samples(results: Sequence[Result]) -> list[np.ndarray]:
    if not results:
        raise UsageError("no benchmark results to plot")
    out = []
    for name, result in zip(model_names(results), results):
        values = np.array(result.get("samples_ms") or [], dtype=np.float64)  # None becomes NaN
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise UsageError(f"{name}: no latency samples to plot; benchmark again keeping the samples "
                             "(BenchResult.to_dict(samples=True))")
        out.append(np.sort(values))
    return out


def _bin_count(samples: list[np.ndarray], span: float, transform: Any) -> int:
    """Freedman-Diaconis on the (transformed) samples; the coarsest model's width, so none looks noisy."""
    widths = []
    for values in samples:
        q25, q75 = np.percentile(transform(values), [25, 75])
        if q75 > q25:
            widths.append(2 * (q75 - q25) / values.size ** (1 / 3))
    if not widths or span <= 0:
        return BINS
    return int(np.clip(np.ceil(span / max(widths)), MIN_BINS, MAX_BINS))


def _bin_edges(samples: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """Shared histogram edges for every model, and whether the x axis should be logarithmic."""
    lo = min(float(s[0]) for s in samples)
    hi = max(float(s[-1]) for s in samples)
    if lo > 0 and hi / lo >= WIDE_SPREAD:
        return np.geomspace(lo, hi, _bin_count(samples, np.log10(hi / lo), np.log10) + 1), True
    if hi <= lo:
        lo, hi = lo - 0.5 * abs(lo or 1.0), hi + 0.5 * abs(hi or 1.0)
    return np.linspace(lo, hi, _bin_count(samples, hi - lo, np.asarray) + 1), False


def _draw_histograms(ax: Any, samples: list[np.ndarray], labels: list[str], edges: np.ndarray, colors: list) -> None:
    for values, label, color in zip(samples, labels, colors):
        weights = np.full(values.size, 1.0 / values.size)
        ax.hist(values, bins=edges, weights=weights, histtype="stepfilled", alpha=0.25, color=color)
        ax.hist(values, bins=edges, weights=weights, histtype="step", linewidth=1.2, color=color, label=label)
    ax.set_title("Latency distribution")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of runs")
    ax.legend(fontsize=8, frameon=False)


def _cdf_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = values.size
    idx = np.arange(n)
    if n > CDF_POINTS:  # thin the body, keep every point of the top 1 %
        tail = max(n // 100, 1)
        idx = np.unique(np.concatenate([np.linspace(0, n - tail, CDF_POINTS - tail).astype(int), idx[n - tail:]]))
    return values[idx], (idx + 1) / n


def _draw_cdfs(ax: Any, results: Sequence[Result], samples: list[np.ndarray], colors: list) -> None:
    for _, q, _ in MARKED:
        ax.axhline(q / 100, color="0.6", linestyle=":", linewidth=0.8)
    for result, values, color in zip(results, samples, colors):
        x, y = _cdf_points(values)
        ax.step(x, y, where="post", color=color, linewidth=1.2)
        for key, q, _ in MARKED:
            reported = _number(_get(result, "latency_ms", key))
            at = reported if reported is not None else float(np.percentile(values, q))
            ax.plot([at], [q / 100], marker="o", markersize=4, color=color)
    for key, q, va in MARKED:
        ax.text(1.01, q / 100, key, transform=ax.get_yaxis_transform(), va=va, fontsize=8, color="0.35")
    ax.set_ylim(0, 1.02)
    ax.set_title("Empirical CDF (p50 / p95 / p99 marked)")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of runs ≤ latency")


def plot(results: Sequence[Result], path: str | os.PathLike[str]) -> None:
    """Write a PNG: per-model latency histograms (shared bins) and empirical CDFs. Needs ``samples_ms``."""
    samples = _samples(results)
    try:
        import matplotlib  # noqa: F401  (imported first so a missing package is caught here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise BackendUnavailableError("plotting needs matplotlib: pip install 'edgeops[plot]'") from exc

    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    hist_ax, cdf_ax = fig.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(samples))]
    edges, log_x = _bin_edges(samples)
    _draw_histograms(hist_ax, samples, _labels(results), edges, colors)
    _draw_cdfs(cdf_ax, results, samples, colors)
    for ax in (hist_ax, cdf_ax):
        ax.grid(alpha=0.3, linewidth=0.5)
        if log_x:
            ax.set_xscale("log")
    fig.tight_layout()
    try:
        with atomic_stream(path) as out:  # the one rule for output paths (edgeops._io.output_folder)
            fig.savefig(out, format="png", dpi=110)
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {os.fspath(path)}: {exc.strerror or exc}; "
                         "pick a path in a writable folder") from exc
