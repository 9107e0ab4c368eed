"""The reference data profile: what a model's inputs and outputs looked like on known-good data.

The guardrails (:meth:`edgeops.Guardrails.from_profile`), drift monitoring and
the bundle manifest read it. Schema (``version`` 1)::

    {"version": 1, "model": "<sha256 of the model file, or its path>", "samples": 1437, "bins": 10,
     "inputs":  {"pixels": {"min": 0.0, "max": 1.0, "mean": 0.30, "std": 0.37, "shape": [null, 64],
                            "histogram": {"edges": [11 numbers], "counts": [10 integers]}, "nonfinite": 0}},
     "outputs": {"probabilities": {...}},
     "classes": {"probabilities": {"histogram": {"edges": [-0.5, 0.5, ..., 9.5], "counts": [10 integers]}}}}

``min``/``max``/``mean``/``std`` are scalars over every finite element; ``shape``
is one sample's shape with ``null`` for the batch axis; the histogram has equal
bins between ``min`` and ``max``. The model is run over the data in chunks;
outputs are kept for the histogram up to ``KEEP_BYTES`` and otherwise computed
in a second pass, so memory stays bounded.

``classes`` (added later; older profiles lack it and still load) is, for each float output with 2 to
``MAX_CLASSES`` scores per row, how often each class was the top-1 on the data: a histogram with one
bin per class index. The device's output drift (:mod:`edgeops.monitor.output_drift`) compares the
predicted classes it sees with it, as it compares each output's values with ``outputs``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _json
from .._io import atomic_write
from ..errors import DataError, UsageError
from ..runtime.model import Model
from .runner import Feeder, chunk_size, chunks, open_model, read_data

VERSION = 1
MAX_CLASSES = 1000  # outputs with more scores per row than this get no class histogram
KEEP_BYTES = 64 << 20


class _Moments:
    """Streaming min, max, mean, std and non-finite count of every element seen."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.squares = 0.0
        self.lo = np.inf
        self.hi = -np.inf
        self.nonfinite = 0
        self.shape: list[int | None] | None = None

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        finite = v[np.isfinite(v)]
        self.nonfinite += v.size - finite.size
        if finite.size:
            self.n += finite.size
            self.total += float(finite.sum())
            self.squares += float(np.square(finite).sum())
            self.lo = min(self.lo, float(finite.min()))
            self.hi = max(self.hi, float(finite.max()))

    def entry(self, edges: np.ndarray | None, counts: np.ndarray | None) -> dict[str, Any]:
        mean = self.total / self.n if self.n else float("nan")
        var = max(self.squares / self.n - mean * mean, 0.0) if self.n else float("nan")
        entry: dict[str, Any] = {"min": self.lo, "max": self.hi} if self.n else {}  # no range without values
        entry.update({
            "mean": mean, "std": float(np.sqrt(var)), "shape": self.shape,
            "histogram": None if edges is None or counts is None else {"edges": edges.tolist(),
                                                                       "counts": counts.tolist()},
            "nonfinite": self.nonfinite,
        })
        return entry

    def edges(self, bins: int) -> np.ndarray | None:
        if not self.n:
            return None
        return np.histogram_bin_edges(np.array([self.lo, self.hi]), bins=bins, range=(self.lo, self.hi))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return np.histogram(v[np.isfinite(v)], bins=edges)[0]


def _summed(counts: Iterable[np.ndarray]) -> np.ndarray:
    """The element-wise sum of histogram counts over the bins they share (at least one)."""
    return np.sum(list(counts), axis=0)


def build_profile(model: str | os.PathLike[str] | Model, data: Any, *, bins: int = 10,
                  max_samples: int | None = None) -> dict[str, Any]:
    """Run ``model`` over ``data`` (a data-file path or ``{input name: array}``) and profile both sides."""
    if not isinstance(bins, int) or bins < 1:
        raise UsageError(f"bins must be a positive integer, not {bins!r}")
    m = open_model(model, None)
    arrays = read_data(data, m)
    if max_samples is not None:
        arrays = {k: a[:max_samples] for k, a in arrays.items()}
    feeder = Feeder(m, arrays, "model")
    n = next(iter(arrays.values())).shape[0]
    size = chunk_size(arrays)

    inputs = {}
    for spec in m.inputs:
        a = arrays[feeder.keys[spec.name]]
        mo = _Moments()
        for start in range(0, n, size):
            mo.add(a[start:start + size])
        mo.shape = [None, *a.shape[1:]] if feeder.batched else list(a.shape[1:])
        edges = mo.edges(bins)
        counts = None if edges is None else _summed(_counts(a[s:s + size], edges) for s in range(0, n, size))
        inputs[spec.name] = mo.entry(edges, counts)

    outs = {o.name: _Moments() for o in m.outputs}
    kept: dict[str, list[np.ndarray]] | None = {name: [] for name in outs}
    kept_bytes = 0
    classes: dict[str, np.ndarray] = {}
    for start, stop in chunks(n, size, f"profile {os.path.basename(m.path or 'model')}"):
        for name, v in feeder.run(start, stop).items():
            _count_classes(classes, name, v)
            mo = outs[name]
            mo.add(v)
            if mo.shape is None:
                mo.shape = [None, *v.shape[1:]]
            if kept is not None:
                kept[name].append(v)
                kept_bytes += v.nbytes
                if kept_bytes > KEEP_BYTES:
                    kept = None  # too big to keep: histograms take a second pass
    outputs = {}
    for name, mo in outs.items():
        edges = mo.edges(bins)
        counts = None
        if edges is not None:
            if kept is not None:
                counts = _summed(_counts(v, edges) for v in kept[name])
            else:
                counts = _summed(_counts(feeder.run(s, t)[name], edges)
                                 for s, t in chunks(n, size, "profile histograms"))
        outputs[name] = mo.entry(edges, counts)
    profile = {"version": VERSION, "model": m.sha256 or m.path, "samples": int(n), "bins": bins,
               "inputs": inputs, "outputs": outputs}
    if classes:
        profile["classes"] = {name: {"histogram": {"edges": (np.arange(c.size + 1) - 0.5).tolist(),
                                                   "counts": c.tolist()}} for name, c in classes.items()}
    return profile


def _count_classes(into: dict[str, np.ndarray], name: str, values: np.ndarray) -> None:
    """Add the top-1 class counts of one chunk of a classifier-like output (float, 2..MAX_CLASSES per row)."""
    v = np.asarray(values)
    if v.dtype.kind != "f" or v.ndim < 2 or not 2 <= v.shape[-1] <= MAX_CLASSES:
        return
    top = np.argmax(v.reshape(-1, v.shape[-1]), axis=1)
    counts = np.bincount(top, minlength=v.shape[-1])
    into[name] = counts if name not in into else into[name] + counts


def write_profile(profile: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``profile`` as JSON, atomically (see :func:`edgeops._io.atomic_write`).

    Non-finite numbers (the ``mean`` of a tensor with no finite value) are written as ``null``
    (:func:`edgeops._json.dumps`), so every strict reader, :func:`edgeops._json.loads` among
    them, can read the profile back."""
    if not isinstance(profile, dict) or not ("inputs" in profile or "outputs" in profile):
        raise DataError("a reference profile is a dict with 'inputs' and/or 'outputs' sections")
    atomic_write(path, _json.dumps(profile, indent=2) + "\n")
