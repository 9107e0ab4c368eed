"""The one rule every gate follows: a measured value passes only if it is a finite number within its limit.

A gate written ``if value > limit: fail`` lets NaN through, because every comparison
with NaN is False: a candidate that outputs NaN, or a benchmark that measured nothing,
would pass it. So no gate compares by hand; each asks :func:`at_most` or :func:`at_least`,
which answer False for NaN, an infinity, ``None`` or anything that is not a number.

Used by :class:`edgeops.validate.Gates` and by the ``edgeops bench`` gates
(:func:`bench_failures`). Standard library only: the CLI imports it before any model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def finite(value: Any) -> bool:
    """True for a real number that is neither NaN nor infinite (``bool`` and ``None`` are not numbers)."""
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def at_most(value: Any, limit: float) -> bool:
    """``value <= limit``, and False whenever ``value`` is not a finite number."""
    return finite(value) and value <= limit


def at_least(value: Any, limit: float) -> bool:
    """``value >= limit``, and False whenever ``value`` is not a finite number."""
    return finite(value) and value >= limit


def shown(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals for a failure line; a value that is not a finite number as it is
    (``nan``, ``inf``, ``None``)."""
    return f"{value:.{digits}f}" if finite(value) else str(value)


def bench_failures(rows: Sequence[dict[str, Any]], *, max_p95_ms: float | None = None,
                   max_mean_ms: float | None = None, max_rss_mb: float | None = None) -> list[str]:
    """One line per model and ``edgeops bench`` gate it misses (``--max-p95-ms``, ``--max-mean-ms``, ``--max-rss-mb``).

    ``rows`` are benchmark results as dicts (``BenchResult.to_dict()``): ``model``,
    ``latency_ms`` with ``p95`` and ``mean``, and ``peak_rss_mb``. A value the benchmark
    could not measure (``None``, NaN) fails a gate given for it.
    """
    out = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        for what, value, limit, unit, digits in (("p95", lat.get("p95"), max_p95_ms, "ms", 3),
                                                 ("mean", lat.get("mean"), max_mean_ms, "ms", 3),
                                                 ("peak RSS", r.get("peak_rss_mb"), max_rss_mb, "MB", 1)):
            if limit is None or at_most(value, limit):
                continue
            if finite(value):
                out.append(f"{r['model']}: {what} {shown(value, digits)} {unit} > {limit:g} {unit}")
            else:
                out.append(f"{r['model']}: {what} is {value} (not measured), so it cannot be shown to be "
                           f"<= {limit:g} {unit}")
    return out
