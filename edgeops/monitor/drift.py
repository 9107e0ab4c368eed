"""Drift statistics: how far what a model sees on the device has moved from its reference profile.

Three numbers compare two binned distributions over the same bins:

``psi``          population stability index, ``sum((a - e) * ln(a / e))`` over the bin proportions
                 (empty bins floored at ``eps``). The usual reading (:func:`psi_level`):
                 below 0.1 stable, 0.1 to 0.2 moderate, above 0.2 shifted.
``ks``           Kolmogorov-Smirnov statistic, the largest gap between the two CDFs. From counts
                 the CDFs are only known at the bin edges, so this is the binned approximation: a
                 lower bound of the statistic on the raw values, 0 for identical histograms, 1 for
                 histograms with no bin in common.
``wasserstein``  1-D earth mover's distance in the input's own units, with each bin's mass at its
                 centre: ``sum(|F_e - F_a| * gap between neighbouring centres)``.

:class:`DriftMonitor` keeps one window of counts per profiled input, binned into the edges of
that input's reference histogram (``edgeops.validate.profile``), and turns the window into the
three numbers on :meth:`~DriftMonitor.snapshot`. The agent calls :meth:`~DriftMonitor.update`
on every inference, and numpy's fixed cost per call (a few µs on a small board) would dominate
binning 64 values one update at a time. So an update only queues a flat copy of each input
under a lock, and the queue is binned in bulk once it holds ``FLUSH_VALUES`` values (or on a
snapshot): one sort and one ``np.searchsorted`` of the edges into the sorted values, no Python
loop per value. Inputs bigger than ``max_values`` are subsampled with an even stride.

What one update costs, measured on one machine, is in ``benchmarks/NOTES.md``.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any

import numpy as np

from .._io import profile_path
from ..errors import DataError, UsageError
from ..runtime.guardrails import load_profile

STABLE = 0.1  # PSI below this: stable
SHIFTED = 0.2  # PSI above this: shifted; in between: moderate
MIN_SAMPLES = 50  # values an input needs in the window before its statistics mean anything
MAX_VALUES = 4096  # values of one input binned per update; bigger inputs are subsampled
FLUSH_VALUES = 8192  # queued values of one input that trigger binning them
FLUSH_ARRAYS = 512  # queued arrays of one input that trigger binning them (tiny inputs)

__all__ = ["psi", "psi_level", "ks_from_counts", "wasserstein_from_counts", "DriftMonitor"]


def _proportions(counts: Any, what: str) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64).ravel()
    if c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise UsageError(f"{what} counts must be a non-empty list of finite, non-negative numbers")
    total = c.sum()
    if total <= 0:
        raise UsageError(f"{what} counts are all zero: there is no distribution to compare")
    return c / total


def _pair(expected: Any, actual: Any) -> tuple[np.ndarray, np.ndarray]:
    e, a = _proportions(expected, "expected"), _proportions(actual, "actual")
    if e.size != a.size:
        raise UsageError(f"expected has {e.size} bins and actual {a.size}; both must be counted over the same bins")
    return e, a


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of ``actual`` against ``expected``, both bin counts over the same bins.

    Counts are normalized here; a bin's proportion is floored at ``eps`` so an empty bin
    does not make the index infinite. Read it as: < 0.1 stable, 0.1-0.2 moderate, > 0.2
    shifted (:func:`psi_level`).
    """
    e, a = _pair(expected, actual)
    e = np.maximum(e, eps)
    a = np.maximum(a, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_level(value: float) -> str:
    """``"stable"`` below 0.1, ``"moderate"`` from 0.1 to 0.2, ``"shifted"`` above 0.2."""
    if value is None or not math.isfinite(value):
        raise UsageError(f"a PSI is a finite number, not {value!r}")
    if value < STABLE:
        return "stable"
    return "moderate" if value <= SHIFTED else "shifted"


def ks_from_counts(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    """Largest gap between the two CDFs at the bin edges (the binned approximation of the KS statistic)."""
    e, a = _pair(expected_counts, actual_counts)
    return float(np.max(np.abs(np.cumsum(e) - np.cumsum(a))))


def wasserstein_from_counts(edges: np.ndarray, expected: np.ndarray, actual: np.ndarray) -> float:
    """Earth mover's distance between two histograms over ``edges``, each bin's mass at its centre."""
    e, a = _pair(expected, actual)
    x = np.asarray(edges, dtype=np.float64).ravel()
    if x.size != e.size + 1:
        raise UsageError(f"{e.size} bins need {e.size + 1} edges, not {x.size}")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
        raise UsageError("histogram edges must be finite and strictly increasing")
    centres = (x[:-1] + x[1:]) / 2
    gaps = np.abs(np.cumsum(e) - np.cumsum(a))[:-1]
    return float(np.sum(gaps * np.diff(centres)))


class _Window:
    """The reference histogram of one input, the counts of the window and the values not yet binned.

    Values wait in ``pending`` (copies: the caller may reuse its buffers) and are binned in bulk
    by :meth:`flush`: a sort, then one ``searchsorted`` of the edges into the sorted values. Per
    value that is a few nanoseconds; per call it is the same fixed numpy overhead whatever the
    size, which is why small updates are batched.
    """

    __slots__ = ("edges", "reference", "counts", "nonfinite", "pending", "pending_values", "_probes", "_probes_of",
                 "ref_counts", "ref_id")

    def __init__(self, edges: np.ndarray, reference: np.ndarray):
        self.edges = edges
        self.reference = reference
        # what the fleet side needs to merge windows across devices (edgeops.fleet.fleetdrift): the reference
        # counts, and an id of edges + counts so only windows over the same histogram are added up
        integral = bool(np.all(reference == np.round(reference)))
        self.ref_counts = [int(c) for c in reference] if integral else reference.tolist()
        self.ref_id = hashlib.sha256(edges.astype("<f8").tobytes() + reference.astype("<f8").tobytes()).hexdigest()[:12]
        self.counts = np.zeros(reference.size, dtype=np.int64)
        self.nonfinite = 0
        self.pending: list[np.ndarray] = []
        self.pending_values = 0
        # In sorted values, those below inner edge i fill bins 0..i (bins are [e_i, e_i+1) as in
        # np.histogram), and +inf, then NaN, sort after every number: the last probe ends the finite ones.
        self._probes = np.append(edges[1:-1], np.inf)
        self._probes_of: dict[np.dtype[Any], np.ndarray] = {}

    def add(self, v: np.ndarray) -> bool:
        """Queue a flat copy of values; True when enough wait that they should be binned."""
        self.pending.append(v)
        self.pending_values += v.size
        return self.pending_values >= FLUSH_VALUES or len(self.pending) >= FLUSH_ARRAYS

    def flush(self) -> None:
        if not self.pending:
            return
        s = np.sort(self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending))
        self.pending, self.pending_values = [], 0
        if not s.size:
            return
        floats = s.dtype.kind == "f"
        pos = np.searchsorted(s, self._probes_in(s.dtype) if floats else self._probes, side="left")
        first = int(np.searchsorted(s, -np.inf, side="right")) if floats and s[0] == -np.inf else 0
        self.counts[0] += int(pos[0]) - first
        self.counts[1:] += pos[1:] - pos[:-1]
        self.nonfinite += first + s.size - int(pos[-1])


    def _probes_in(self, dtype: np.dtype[Any]) -> np.ndarray:
        """The probes as values of a float ``dtype`` (searching in the values' own dtype copies nothing).

        Each is the smallest value of ``dtype`` at or above its edge, so the values below it are
        exactly those whose float64 value is below the edge: float16/float32 values bin as the
        profile binned them (``np.histogram`` on float64). A plain cast would round an edge such
        as 0.7 down to float32 0.69999999 and move the values that equal it into the next bin.
        """
        probes = self._probes_of.get(dtype)
        if probes is None:
            with np.errstate(over="ignore"):
                probes = self._probes.astype(dtype)
            low = probes.astype(np.float64) < self._probes
            probes[low] = np.nextafter(probes[low], dtype.type(np.inf))
            self._probes_of[dtype] = probes
        return probes


def _reference(name: str, entry: Any, section: str = "inputs") -> tuple[np.ndarray, np.ndarray] | str:
    """The (edges, counts) of a profiled input (or output), or why it cannot be monitored."""
    where = f"profile {section}.{name}"
    if not isinstance(entry, dict):
        raise DataError(f"{where} must be an object with min/max/histogram, not {type(entry).__name__}")
    hist = entry.get("histogram")
    if hist is None:
        return "no histogram in the profile (it saw no finite values); rebuild the profile on real data"
    if not isinstance(hist, dict) or "edges" not in hist or "counts" not in hist:
        raise DataError(f"{where}.histogram must be an object with 'edges' and 'counts' lists")
    try:
        edges = np.asarray(hist["edges"], dtype=np.float64)
        counts = np.asarray(hist["counts"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}.histogram: edges and counts must be lists of numbers ({exc})") from exc
    if edges.ndim != 1 or counts.ndim != 1 or edges.size != counts.size + 1 or counts.size == 0:
        raise DataError(f"{where}.histogram needs n counts and n + 1 edges "
                        f"(has {counts.size} counts, {edges.size} edges); rebuild the profile")
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise DataError(f"{where}.histogram edges must be finite and strictly increasing; rebuild the profile")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise DataError(f"{where}.histogram counts must be finite and non-negative; rebuild the profile")
    if counts.sum() == 0:
        return "the reference histogram is empty; rebuild the profile on real data"
    return edges, counts


class DriftMonitor:
    """Input drift of a running model against its reference profile; see the module docstring.

    ``profile`` is a profile dict or the path of a ``*.profile.json``; ``inputs`` limits the
    monitor to those input names (default: every profiled input). Inputs without a usable
    histogram are listed in :attr:`skipped` with the reason. An input's statistics need
    ``min_samples`` values in the window; below that they are ``None``. Safe to update from
    several threads while another one takes snapshots.
    """

    def __init__(self, profile: dict[str, Any] | str | PathLike[str], inputs: Iterable[str] | None = None,
                 *, min_samples: int = MIN_SAMPLES, max_values: int = MAX_VALUES, section: str = "inputs"):
        for arg, value in (("min_samples", min_samples), ("max_values", max_values)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{arg} must be a positive integer, not {value!r}")
        self.profile = load_profile(profile)
        self.section = section  # "inputs"; "outputs" or "classes" for output drift (edgeops.monitor.output_drift)
        entries = self.profile.get(section) or {}
        if not isinstance(entries, dict):
            raise DataError(f"profile '{section}' must be an object of {section[:-1]} name -> statistics")
        names = list(entries) if inputs is None else list(inputs)
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise DataError(f"the profile has no {section[:-1]}(s) {', '.join(map(repr, unknown))} "
                            f"(profiled: {', '.join(entries) or 'none'}); is it the profile of another model?")
        self.min_samples = min_samples
        self.max_values = max_values
        self.skipped: dict[str, str] = {}
        self._windows: dict[str, _Window] = {}
        for name in names:
            ref = _reference(name, entries[name], section)
            if isinstance(ref, str):
                self.skipped[name] = ref
            else:
                self._windows[name] = _Window(*ref)
        self._lock = threading.Lock()
        self._updates = 0
        self._since = time.monotonic()

    @property
    def inputs(self) -> list[str]:
        """Names of the inputs being monitored."""
        return list(self._windows)

    def update(self, feeds: Mapping[str, Any]) -> None:
        """Count the values of each monitored input in ``feeds`` ({input name: array}) into the window.

        Other names are ignored; NaN and infinities are not binned but counted as ``nonfinite``;
        values outside the reference range go to the first or last bin. An input with more than
        ``max_values`` values is subsampled with an even stride whose offset turns with each update.
        """
        queued = []
        for name, win in self._windows.items():
            value = feeds.get(name)
            if value is None:
                continue
            if type(value) is not np.ndarray:
                value = np.asarray(value)
            if value.dtype.kind not in "biuf":
                continue
            if value.size <= self.max_values:
                queued.append((win, value.flatten()))  # a copy: callers reuse their buffers
            else:
                step = -(-value.size // self.max_values)
                queued.append((win, value.reshape(-1)[self._updates % step::step].copy()))
        if not queued:
            return
        with self._lock:
            self._updates += 1
            for win, v in queued:
                if win.add(v):
                    win.flush()

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        """Drift per input and the largest PSI, JSON-ready; ``reset`` starts a new window.

        ``{"inputs": {name: {"psi", "psi_level", "ks", "wasserstein", "samples", "nonfinite", "counts",
        "reference", "ref"}}, "max_psi": float | None, "window_samples": updates, "window_s": seconds,
        "skipped": {name: reason}}``.
        ``samples`` counts binned values, ``window_samples`` the :meth:`update` calls that fed a
        monitored input, ``counts`` the window's histogram over the reference edges. ``reference``
        is the profile's histogram counts over the same bins and ``ref`` a 12-hex id of its edges and
        counts: the fleet side adds up the ``counts`` of the windows with the same ``ref`` across
        devices and compares them with ``reference`` (:mod:`edgeops.fleet.fleetdrift`). An input
        below ``min_samples`` values has ``None`` statistics and a ``reason``.
        """
        now = time.monotonic()
        with self._lock:
            window = {}
            for name, w in self._windows.items():
                w.flush()
                window[name] = (w.counts.copy(), w.nonfinite)
            updates, since = self._updates, self._since
            if reset:
                for w in self._windows.values():
                    w.counts[:] = 0
                    w.nonfinite = 0
                self._updates, self._since = 0, now
        inputs = {name: self._stats(self._windows[name], *window[name]) for name in window}
        psis = [s["psi"] for s in inputs.values() if s["psi"] is not None]
        return {"inputs": inputs, "max_psi": max(psis) if psis else None, "window_samples": updates,
                "window_s": round(now - since, 3), "skipped": dict(self.skipped)}

    def _stats(self, win: _Window, counts: np.ndarray, nonfinite: int) -> dict[str, Any]:
        n = int(counts.sum())
        stats: dict[str, Any] = {"psi": None, "psi_level": None, "ks": None, "wasserstein": None,
                                 "samples": n, "nonfinite": nonfinite, "counts": counts.tolist(),
                                 "reference": win.ref_counts, "ref": win.ref_id}
        if n < self.min_samples:
            stats["reason"] = f"not enough data: {n} of {self.min_samples} values"
            return stats
        value = psi(win.reference, counts)
        stats.update(psi=value, psi_level=psi_level(value), ks=ks_from_counts(win.reference, counts),
                     wasserstein=wasserstein_from_counts(win.edges, win.reference, counts))
        return stats


def monitor_model(model: Any, profile: dict[str, Any] | str | PathLike[str] | None = None) -> DriftMonitor | None:
    """A drift monitor on ``model``'s reference profile, None when it has none (the agent's setup).

    ``profile`` defaults to the profile next to the model file (:func:`edgeops._io.profile_path`,
    ``NAME.profile.json``) when that exists. A model without guardrails gets them in ``pass`` mode,
    so telemetry counts range violations while every run stays as it was.
    """
    if profile is None and model is not None and model.path:
        candidate = profile_path(model.path)
        profile = candidate if os.path.isfile(candidate) else None
    if profile is None:
        return None
    if model is not None and model.guardrails is None:  # count violations for telemetry, change nothing
        model.enable_guardrails(profile, inputs="pass", outputs="pass")
    return DriftMonitor(profile, inputs=[s.name for s in model.inputs] if model is not None else None)
