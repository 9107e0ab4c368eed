"""Parity and accuracy statistics: per-output error metrics, accuracy with confidence intervals.

:class:`OutputComparison` takes the reference's and the candidate's values of one
output chunk by chunk and keeps only per-sample scalars (cosine, top-1 index,
and, for the output a regression scores, the values), so memory stays bounded
by the number of samples, not by the size of the outputs.

Definitions (one sample is everything after the batch axis, flattened):

* ``max_abs_error`` / ``mean_abs_error``: over every element of every sample.
* ``max_rel_error``: ``|ref - cand| / max(|ref|, floor)`` where ``floor`` is
  ``REL_FLOOR`` (1 %) of the sample's largest ``|ref|`` (and at least 1e-12), so
  values near zero next to large ones (softmax tails) do not blow up the ratio.
* ``cosine``: cosine similarity per sample, then the mean (``min_cosine``: the worst).
  Two all-zero samples count as 1, one all-zero sample as 0, a non-finite value as NaN.
* ``top1_agreement``: share of samples whose argmax agrees, for outputs that look
  like class scores (float, ``[N, C]`` with ``C > 1``); ``None`` for the others.

Intervals: Wilson score intervals for each accuracy, and a paired bootstrap
(``RESAMPLES`` resamples, seed ``SEED``, percentile interval) for the difference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError

REL_FLOOR = 0.01
RESAMPLES = 1000
SEED = 0
Z95 = 1.959963984540054


def looks_like_class_scores(value: np.ndarray) -> bool:
    """Float ``[N, C]`` with ``C > 1``: per-class scores (logits or probabilities)."""
    return value.ndim == 2 and value.shape[1] > 1 and value.dtype.kind == "f"


class OutputComparison:
    """Accumulates the metrics of one output pair over chunks of samples."""

    def __init__(self, name: str, candidate_name: str, *, keep_values_of_size: int | None = None):
        self.name = name
        self.candidate_name = candidate_name
        self.classification: bool | None = None  # decided on the first chunk
        self.sample_shape: tuple[int, ...] | None = None
        self._keep_size = keep_values_of_size
        self.count = 0
        self.elements = 0
        self.sum_abs = 0.0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.nonfinite = 0
        self._cos: list[np.ndarray] = []
        self._top_ref: list[np.ndarray] = []
        self._top_cand: list[np.ndarray] = []
        self._ref_values: list[np.ndarray] = []
        self._cand_values: list[np.ndarray] = []

    def update(self, ref: np.ndarray, cand: np.ndarray) -> None:
        n = ref.shape[0]
        if cand.shape != ref.shape:
            raise DataError(
                f"output {self.name!r}: the reference gives shape {list(ref.shape)} for {n} samples, the "
                f"candidate ({self.candidate_name!r}) {list(cand.shape)}; the two models do not compute the same thing"
            )
        if self.classification is None:
            self.classification = looks_like_class_scores(ref)
            self.sample_shape = tuple(ref.shape[1:])
        r = ref.reshape(n, -1).astype(np.float64)
        c = cand.reshape(n, -1).astype(np.float64)
        finite = np.isfinite(c)
        self.nonfinite += int(finite.size - np.count_nonzero(finite))
        diff = np.abs(r - c)
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.sum_abs += float(diff.sum())
            mag = np.abs(r)
            floor = np.maximum(mag.max(axis=1, keepdims=True) * REL_FLOOR, 1e-12)
            self.max_rel = max(self.max_rel, float((diff / np.maximum(mag, floor)).max()))
        self.elements += diff.size
        self.count += n
        self._cos.append(cosine_per_sample(r, c))
        if self.classification:
            self._top_ref.append(r.argmax(axis=1))
            self._top_cand.append(np.where(np.isfinite(c).all(axis=1), c.argmax(axis=1), -1))
        if self._keep_size is not None and r.shape[1] == self._keep_size:
            self._ref_values.append(r)
            self._cand_values.append(c)

    # -- results ------------------------------------------------------------------------------

    @property
    def cosines(self) -> np.ndarray:
        return np.concatenate(self._cos) if self._cos else np.zeros(0)

    @property
    def top1(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.classification:
            return None
        return np.concatenate(self._top_ref), np.concatenate(self._top_cand)

    @property
    def values(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self._ref_values:
            return None
        return np.concatenate(self._ref_values), np.concatenate(self._cand_values)

    def summary(self) -> dict[str, Any]:
        cos = self.cosines
        top = self.top1
        nan = float("nan")
        return {
            "candidate_output": self.candidate_name,
            "shape": None if self.sample_shape is None else [None, *self.sample_shape],
            "max_abs_error": self.max_abs if self.nonfinite == 0 else nan,
            "mean_abs_error": self.sum_abs / self.elements if self.elements and self.nonfinite == 0 else nan,
            "max_rel_error": self.max_rel if self.nonfinite == 0 else nan,
            "cosine": float(cos.mean()) if cos.size else nan,
            "min_cosine": float(cos.min()) if cos.size else nan,
            "top1_agreement": float(np.mean(top[0] == top[1])) if top is not None else None,
            "nonfinite": self.nonfinite,
        }


def cosine_per_sample(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``r`` and ``c`` (2-D float64)."""
    nr = np.linalg.norm(r, axis=1)
    nc = np.linalg.norm(c, axis=1)
    dot = np.einsum("ij,ij->i", r, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (nr * nc)
    zr, zc = nr == 0, nc == 0
    cos = np.where(zr & zc, 1.0, np.where(zr | zc, 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


# -- intervals --------------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap_drop(ref_correct: np.ndarray, cand_correct: np.ndarray, *, resamples: int = RESAMPLES,
                          seed: int = SEED) -> tuple[float, float]:
    """95 % percentile interval of (reference accuracy - candidate accuracy), in points.

    The per-sample difference takes three values (+1, 0, -1), so resampling the
    samples with replacement is a multinomial draw of the three counts: the same
    distribution as resampling indices, at a cost that does not grow with the data.
    """
    d = ref_correct.astype(np.int8) - cand_correct.astype(np.int8)
    n = d.size
    if n == 0:
        return (float("nan"), float("nan"))
    p = np.array([np.count_nonzero(d == 1), np.count_nonzero(d == -1), np.count_nonzero(d == 0)]) / n
    draws = np.random.default_rng(seed).multinomial(n, p, size=resamples)
    drops = (draws[:, 0] - draws[:, 1]) / n * 100.0
    lo, hi = np.percentile(drops, [2.5, 97.5])
    return (float(lo), float(hi))


def bootstrap_mean_ci(d: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``d`` (paired per-sample differences)."""
    n = d.size
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, 4_000_000 // n))  # bound the index matrix to a few MB
    means = []
    for start in range(0, resamples, block):
        idx = rng.integers(0, n, size=(min(block, resamples - start), n))
        means.append(d[idx].mean(axis=1))
    lo, hi = np.percentile(np.concatenate(means), [2.5, 97.5])
    return (float(lo), float(hi))


# -- accuracy against labels ---------------------------------------------------------------------

METHOD_CLASSIFICATION = (f"top-1 accuracy; Wilson 95% interval per model; drop in points with a paired bootstrap "
                         f"95% percentile interval ({RESAMPLES} resamples, seed {SEED})")
METHOD_REGRESSION = (f"mean absolute error; difference (candidate - reference) with a paired bootstrap "
                     f"95% percentile interval ({RESAMPLES} resamples, seed {SEED})")


def classification_accuracy(output: str, labels: np.ndarray, ref_top: np.ndarray,
                            cand_top: np.ndarray) -> dict[str, Any]:
    n = labels.size
    ref_ok = ref_top == labels
    cand_ok = cand_top == labels
    ref_acc, cand_acc = float(ref_ok.mean()), float(cand_ok.mean())
    return {
        "task": "classification",
        "metric": "accuracy",
        "output": output,
        "reference": ref_acc,
        "candidate": cand_acc,
        "drop_points": (ref_acc - cand_acc) * 100.0,
        "difference": None,
        "ci95": list(paired_bootstrap_drop(ref_ok, cand_ok)),
        "reference_ci95": list(wilson(int(ref_ok.sum()), n)),
        "candidate_ci95": list(wilson(int(cand_ok.sum()), n)),
        "method": METHOD_CLASSIFICATION,
    }


def regression_error(output: str, labels: np.ndarray, ref: np.ndarray, cand: np.ndarray) -> dict[str, Any]:
    target = labels.reshape(labels.shape[0], -1).astype(np.float64)
    ref_err = np.abs(ref - target).mean(axis=1)
    cand_err = np.abs(cand - target).mean(axis=1)
    ref_mae, cand_mae = float(ref_err.mean()), float(cand_err.mean())
    return {
        "task": "regression",
        "metric": "mae",
        "output": output,
        "reference": ref_mae,
        "candidate": cand_mae,
        "drop_points": None,
        "difference": cand_mae - ref_mae,
        "ci95": list(bootstrap_mean_ci(cand_err - ref_err)),
        "reference_ci95": None,
        "candidate_ci95": None,
        "method": METHOD_REGRESSION,
    }
