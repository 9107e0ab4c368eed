"""How far two explanations of the same samples are apart.

``spearman``  rank correlation of two importance vectors (average ranks for ties); two constant
              vectors that are equal agree (1.0); one constant vector against a varying one has no
              rank correlation (NaN, which fails a gate).
``topk_iou``  per sample, the intersection over union of the ``fraction`` of pixels (or features)
              with the largest ``|attribution|`` in each map (zeros never count as top: two blank maps
              agree, 1.0; a blank map against one that is not has nothing in common, 0.0).
``cosine``    per sample, the cosine similarity of the two attribution maps, flattened (1.0 for two
              all-zero maps, 0.0 for one).
"""

from __future__ import annotations

import math

import numpy as np


def ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inverse, r)
    return sums[inverse] / counts[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size < 2:
        return float("nan")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb and np.array_equal(a, b) else float("nan")
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def top_mask(m: np.ndarray, fraction: float) -> np.ndarray:
    flat = np.abs(np.asarray(m, dtype=np.float64)).ravel()
    k = max(1, int(math.ceil(fraction * flat.size)))
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argsort(-flat, kind="mergesort")[:k]] = True
    return mask & (flat > 0)


def topk_iou(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Per sample (axis 0) IoU of the top ``fraction`` of ``|a|`` and of ``|b|``."""
    out = []
    for x, y in zip(a, b):
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            out.append(float("nan"))
            continue
        ma, mb = top_mask(x, fraction), top_mask(y, fraction)
        union = (ma | mb).sum()
        out.append(float((ma & mb).sum() / union) if union else 1.0)
    return np.array(out)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample (axis 0) cosine similarity of the flattened maps."""
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.clip(np.sum(x * y, axis=1) / (nx * ny), -1.0, 1.0)
    both_zero = (nx == 0) & (ny == 0)
    c[both_zero] = 1.0
    c[(nx == 0) ^ (ny == 0)] = 0.0
    return c
