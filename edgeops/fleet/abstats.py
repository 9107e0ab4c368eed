"""Online accuracy per model version, with confidence intervals: the statistics of A/B rollouts.

Devices count the labelled predictions of each model version in telemetry (``feedback``:
``{version: {"n", "correct", "abs_err_sum"}}``, the counts of one telemetry window, see
:mod:`edgeops.agent.feedback`). Added up over a time window and over the devices, they give each
version's accuracy ``correct / n``; the interval of one accuracy is Wilson's score interval
(:func:`wilson`), and the interval of the difference between two versions is Newcombe's hybrid
score interval (:func:`newcombe_diff`, method 10 of Newcombe 1998), built from the two Wilson
intervals. Both behave at small n and near 0 or 1, where the textbook ``p +- z sqrt(p(1-p)/n)``
does not (it gives [1, 1] for 20 correct out of 20).

Reading an A/B test: version B is worse than A by more than a point once the upper end of the
interval of ``acc_B - acc_A`` is below ``-0.01``; equal versions give an interval around 0.

References: E. B. Wilson, JASA 22 (1927) 209-212; R. G. Newcombe, "Interval estimation for the
difference between independent proportions: comparison of eleven methods", Statistics in Medicine 17
(1998) 873-890.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import UsageError

__all__ = ["wilson", "newcombe_diff", "accuracy_by_version", "feedback_of", "compare"]


def _check(k: Any, n: Any, what: str) -> None:
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UsageError(f"{what}: {name} must be a whole number >= 0, not {v!r}")
    if k > n:
        raise UsageError(f"{what}: {k} successes out of {n} trials is impossible (k must be <= n)")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval ``(lo, hi)`` of the proportion ``k / n`` (``z`` 1.96: 95 %); ``(0, 1)`` when n is 0."""
    _check(k, n, "wilson")
    if not isinstance(z, (int, float)) or isinstance(z, bool) or not z > 0 or not math.isfinite(z):
        raise UsageError(f"wilson: z must be a positive number (1.96 for 95 %), not {z!r}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo, hi = centre - half, centre + half
    # exact ends at k = 0 and k = n (the formula gives them up to rounding)
    return (0.0 if k == 0 else max(0.0, lo)), (1.0 if k == n else min(1.0, hi))


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float, float]:
    """``(p1 - p2, lo, hi)``: the difference of two independent proportions and Newcombe's hybrid score
    interval (method 10): ``lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)``, ``hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``
    with ``(l, u)`` the Wilson intervals. Either n being 0 is a UsageError (no proportion to compare)."""
    _check(k1, n1, "newcombe_diff (first)")
    _check(k2, n2, "newcombe_diff (second)")
    if n1 == 0 or n2 == 0:
        raise UsageError(f"newcombe_diff needs labelled samples on both sides (n1={n1}, n2={n2})")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lo), min(1.0, hi)


def feedback_of(message: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{version: {"n", "correct", "abs_err_sum"}}`` of one telemetry message; malformed entries (or none:
    an older agent) give ``{}``."""
    fb = message.get("feedback")
    out: dict[str, dict[str, float]] = {}
    if not isinstance(fb, Mapping):
        return out
    for version, c in fb.items():
        if not isinstance(c, Mapping):
            continue
        n, correct = c.get("n"), c.get("correct")
        if not isinstance(n, (int, float)) or not isinstance(correct, (int, float)):
            continue
        if not _whole(n) or not _whole(correct) or correct > n:
            continue
        err = c.get("abs_err_sum")
        out[str(version)] = {"n": int(n), "correct": int(correct),
                             "abs_err_sum": float(err) if isinstance(err, (int, float)) and not isinstance(err, bool)
                             and math.isfinite(err) else 0.0}
    return out


def _whole(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and float(v).is_integer()


def _add(into: dict[str, dict[str, float]], more: Mapping[str, Mapping[str, float]]) -> None:
    for version, c in more.items():
        held = into.setdefault(version, {"n": 0, "correct": 0, "abs_err_sum": 0.0})
        for key in held:
            held[key] += c[key]


def _summary(counts: Mapping[str, Mapping[str, float]], z: float) -> dict[str, dict[str, Any]]:
    out = {}
    for version, c in sorted(counts.items()):
        n, k = int(c["n"]), int(c["correct"])
        lo, hi = wilson(k, n, z)
        out[version] = {"n": n, "correct": k, "acc": k / n if n else None, "lo": lo, "hi": hi,
                        "mae": c["abs_err_sum"] / n if n else None}
    return out


def accuracy_by_version(store: Any, fleet: str, since_ms: int, until_ms: int | None = None,
                        select: Mapping[str, str | Iterable[str]] | None = None, *, z: float = 1.96
                        ) -> dict[str, dict[str, Any]]:
    """Online accuracy of each model version over the telemetry with ``since_ms <= ts < until_ms``::

        {version: {"n", "correct", "acc", "lo", "hi", "mae", "by_label": {"site=berlin": {n, correct, acc, lo, hi, mae}}}}

    ``lo``/``hi`` are the Wilson interval (:func:`wilson`), ``mae`` the mean absolute error (regression;
    for a classifier it is the error rate). ``select`` keeps the devices whose labels match
    (``{"ring": "canary"}`` or ``{"site": ["a", "b"]}``). A version is keyed by what its devices
    reported (the bundle's version)."""
    if select is not None and not isinstance(select, Mapping):
        raise UsageError(f"select must be a mapping of label name to value(s), not {select!r}")
    wanted = {k: {str(v) for v in ([vs] if isinstance(vs, str) else vs)} for k, vs in (select or {}).items()}
    from .fleetdrift import payload_of

    whole: dict[str, dict[str, float]] = {}
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for device in store.devices(fleet):
        labels = device.get("labels") or {}
        if not all(str(labels.get(k)) in vs for k, vs in wanted.items()):
            continue
        mine: dict[str, dict[str, float]] = {}
        for row in store.telemetry(fleet, device["id"], since_ms=since_ms, until_ms=until_ms, limit=1_000_000):
            _add(mine, feedback_of(payload_of(row)))
        _add(whole, mine)
        for k, v in labels.items():
            _add(groups.setdefault(f"{k}={v}", {}), mine)
    out = _summary(whole, z)
    for version, entry in out.items():
        entry["by_label"] = {g: _summary({version: c[version]}, z)[version]
                             for g, c in sorted(groups.items()) if version in c}
    return out


def compare(stats: Mapping[str, Mapping[str, Any]], a: str, b: str, z: float = 1.96) -> dict[str, Any]:
    """``acc_b - acc_a`` with Newcombe's interval, from :func:`accuracy_by_version`'s result:
    ``{"a", "b", "diff", "lo", "hi"}`` (``diff``/``lo``/``hi`` None when a side has no labels)."""
    sa, sb = stats.get(a), stats.get(b)
    if sa is None or sb is None or not sa["n"] or not sb["n"]:
        return {"a": a, "b": b, "diff": None, "lo": None, "hi": None}
    d, lo, hi = newcombe_diff(int(sb["correct"]), int(sb["n"]), int(sa["correct"]), int(sa["n"]), z)
    return {"a": a, "b": b, "diff": d, "lo": lo, "hi": hi}
