"""Online evaluation on the device: predictions kept by request id, labelled when the truth arrives.

:class:`FeedbackLog` remembers the outputs of the last ``keep`` runs, and at most ``max_bytes`` of them
(:meth:`~FeedbackLog.record`, the hot path: one dict insert, the outputs are not copied; a model with
big outputs keeps fewer runs), with the model version that made them. A label
that arrives later (:meth:`edgeops.Model.feedback`, or the agent's ``feedback`` topic) is compared
with that prediction and counted per version; :meth:`~FeedbackLog.snapshot` gives the telemetry block::

    {"<model version>": {"n": labelled predictions, "correct": right ones, "abs_err_sum": sum of |error|}}

The prediction of a run:

* an integer output holding one value (e.g. scikit-learn's ``label``): that value is the class;
* else the first output: more than one value per row is a classifier's scores, the prediction is
  their argmax (``correct`` when it equals the label; ``abs_err_sum`` then counts the wrong ones); one
  value is a regression, ``abs_err_sum`` adds ``|prediction - label|`` and ``correct`` counts those
  within ``tolerance``.

A label for a run no longer kept (or never seen) is counted in :attr:`FeedbackLog.unmatched`; a
second label for the same run replaces nothing (the run is labelled once).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import DataError, UsageError

__all__ = ["FeedbackLog", "prediction_of"]


def prediction_of(outputs: dict[str, np.ndarray]) -> tuple[str, float | np.ndarray]:
    """``("class", index)`` or ``("value", array)``: what a run predicted (module docstring)."""
    for arr in outputs.values():
        a = np.asarray(arr)
        if a.dtype.kind in "iu" and a.size == 1:
            return "class", float(a.reshape(-1)[0])
    first = np.asarray(next(iter(outputs.values())))
    if first.ndim >= 1 and first.shape[-1] > 1 and first.size == first.shape[-1]:
        return "class", float(np.argmax(first.reshape(-1)))
    return "value", first.astype(np.float64).reshape(-1)


class FeedbackLog:
    """The last ``keep`` predictions and the labelled counts per model version (module docstring)."""

    def __init__(self, keep: int = 4096, *, tolerance: float = 0.0, max_bytes: int = 16 << 20):
        for name, value in (("keep", keep), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, not {value!r}")
        self.keep = keep
        self.max_bytes = max_bytes
        self._bytes = 0  # of the outputs kept (approximate under concurrent records)
        self.tolerance = float(tolerance)
        self._runs: OrderedDict[Any, tuple[str, dict[str, np.ndarray], int]] = OrderedDict()
        self._counts: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self.unmatched = 0  # labels for runs not (or no longer) kept

    def record(self, request_id: Any, outputs: dict[str, np.ndarray], version: str) -> None:
        """Keep the outputs of run ``request_id`` of model ``version`` (the hot path)."""
        runs = self._runs
        size = 0
        for v in outputs.values():
            size += v.nbytes
        runs[request_id] = (version, outputs, size)
        self._bytes += size
        while len(runs) > self.keep or (self._bytes > self.max_bytes and len(runs) > 1):
            try:
                self._bytes -= runs.popitem(last=False)[1][2]
            except KeyError:  # another thread emptied it meanwhile
                break

    def label(self, request_id: Any, label: Any) -> bool:
        """Count ``label`` against the prediction of run ``request_id``; False if that run is not kept."""
        with self._lock:
            kept = self._runs.pop(request_id, None)
            if kept is None:
                self.unmatched += 1
                return False
            self._bytes -= kept[2]
        version, outputs, _ = kept
        kind, pred = prediction_of(outputs)
        truth = _label(label)
        if kind == "class":
            if truth.size != 1:
                raise DataError(f"run {request_id} predicted a class; its label must be one class index, "
                                f"not {truth.size} values")
            ok = float(pred) == float(truth[0])
            err = 0.0 if ok else 1.0
        else:
            p = np.asarray(pred, dtype=np.float64)
            if truth.size not in (1, p.size):
                raise DataError(f"run {request_id} predicted {p.size} value(s); its label has {truth.size}")
            err = float(np.mean(np.abs(p - truth)))
            ok = err <= self.tolerance
        with self._lock:
            c = self._counts.setdefault(str(version), {"n": 0, "correct": 0, "abs_err_sum": 0.0})
            c["n"] += 1
            c["correct"] += int(ok)
            c["abs_err_sum"] += err
        return True

    def snapshot(self, reset: bool = False) -> dict[str, dict[str, Any]]:
        """``{version: {"n", "correct", "abs_err_sum"}}`` of the labels counted (since the last reset)."""
        with self._lock:
            out = {v: {"n": int(c["n"]), "correct": int(c["correct"]), "abs_err_sum": c["abs_err_sum"]}
                   for v, c in self._counts.items()}
            if reset:
                self._counts = {}
        return out


def _label(label: Any) -> np.ndarray:
    if isinstance(label, bool) or label is None:
        raise DataError(f"a label is a class index or a target value (a number or a list of numbers), not {label!r}"[:300])
    try:
        truth = np.asarray(label, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"a label is a class index or a target value, not {label!r}"[:300]) from exc
    if truth.size == 0 or not all(math.isfinite(v) for v in truth):
        raise DataError(f"a label must be finite numbers, not {label!r}"[:300])
    return truth
