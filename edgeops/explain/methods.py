"""The black-box methods: permutation importance, occlusion sensitivity, a local linear surrogate.

Each takes a :class:`Context` (the model as a :class:`~._subject.Subject`, the samples, the
targets, the options) and returns an :class:`Attribution`: one importance per feature (mean and
spread) and, where the method has them, per-sample attribution maps. Perturbed rows are built
``CHUNK_ROWS`` at a time on flattened copies (one fancy-index assignment per feature), so memory
stays bounded and Python loops run per feature, not per value. SHAP lives in :mod:`._shap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ._subject import CHUNK_ROWS, ImageLayout, Segment, Subject, default_patch, is_classes, pick, segments


@dataclass
class Context:
    subject: Subject
    arrays: dict[str, np.ndarray]  # the samples explained, keyed as in the data file
    labels: np.ndarray | None
    base: np.ndarray  # the subject's output on the unperturbed samples, (n, values)
    targets: np.ndarray  # per sample, the output value an attribution explains
    options: Any  # ExplainOptions
    everything: dict[str, np.ndarray] | None = None  # all the data (a surrogate's sample, mean baselines)


@dataclass
class Attribution:
    features: list[str]
    mean: np.ndarray  # importance per feature (>= 0 for a magnitude; a permutation drop may be negative)
    std: np.ndarray
    maps: np.ndarray | None = None  # per sample: (n, H, W) for an image, (n, features) otherwise
    signed: np.ndarray | None = None  # per feature, the signed mean (SHAP, surrogate)
    layout: ImageLayout | None = None
    image_key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


# -- shared pieces ------------------------------------------------------------------------------------


def _flat(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: a.reshape(len(a), -1) for k, a in arrays.items()}


def _cols(seg: Segment, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(seg.mask, slice):
        return np.arange(int(np.prod(shape, dtype=np.int64)))
    return np.flatnonzero(np.asarray(seg.mask).ravel())


def _unflat(flat: dict[str, np.ndarray], like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.reshape((len(v), *like[k].shape[1:])) for k, v in flat.items()}


def _predict_blocks(ctx: Context, blocks: list[Any], build: Any, rows: int) -> list[np.ndarray]:
    """Outputs of ``build(block)`` (``rows`` rows each) for every block, several blocks per predict call."""
    per = max(1, CHUNK_ROWS // max(rows, 1))
    out: list[np.ndarray] = []
    for start in range(0, len(blocks), per):
        group = blocks[start:start + per]
        parts = [build(b) for b in group]
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        pred = ctx.subject.predict(joined)
        out.extend(np.split(pred, len(group)))
    return out


def baseline_values(ctx: Context, flat: dict[str, np.ndarray], image: bool) -> dict[str, np.ndarray]:
    """What a hidden value becomes: a number everywhere, or ``"mean"``: each value's mean over the data
    (default: 0 for images, the mean for tables)."""
    b = ctx.options.baseline
    if b is None:
        b = 0.0 if image else "mean"
    if isinstance(b, str):
        if b != "mean":
            raise UsageError(f"baseline is a number or 'mean', not {b!r}")
        source = _flat(ctx.everything) if ctx.everything is not None else flat
        return {k: v.astype(np.float64).mean(axis=0).astype(flat[k].dtype) for k, v in source.items()}
    return {k: np.full(v.shape[1], b, dtype=v.dtype) for k, v in flat.items()}


def score(out: np.ndarray, base: np.ndarray, labels: np.ndarray | None) -> tuple[float, str]:
    """How well ``out`` does: accuracy on class labels, else top-1 agreement with ``base`` (class scores);
    R² on regression labels, else R² against ``base``."""
    if out.shape[1] > 1:
        if labels is not None and is_classes(labels):
            return float(np.mean(out.argmax(axis=1) == labels)), "accuracy"
        return float(np.mean(out.argmax(axis=1) == base.argmax(axis=1))), "agreement with the unpermuted output"
    ref, what = (labels.astype(np.float64).reshape(-1, 1), "R2") if labels is not None else (base, "R2 against the unpermuted output")
    var = float(np.var(ref))
    mse = float(np.mean((out - ref) ** 2))
    return (1.0 - mse / var if var > 0 else -mse), what


# -- permutation ---------------------------------------------------------------------------------------


def permutation(ctx: Context) -> Attribution:
    """Shuffle one feature across the samples and measure how much the score drops; ``repeats`` shuffles each."""
    o = ctx.options
    segs, layout = segments(ctx.arrays, list(o.feature_names) if o.feature_names else None, o.patch)
    n = len(ctx.base)
    if n < 2:
        raise UsageError("permutation importance shuffles features across samples; give at least 2 samples")
    flat = _flat(ctx.arrays)
    score0, metric = score(ctx.base, ctx.base, ctx.labels)
    rng = np.random.default_rng(o.seed)
    blocks = [(s, rng.permutation(n)) for s in range(len(segs)) for _ in range(o.repeats)]

    def build(block: tuple[int, np.ndarray]) -> dict[str, np.ndarray]:
        s, perm = block
        seg = segs[s]
        cols = _cols(seg, ctx.arrays[seg.key].shape[1:])
        f = dict(flat)
        f[seg.key] = flat[seg.key].copy()
        f[seg.key][:, cols] = flat[seg.key][perm][:, cols]
        return _unflat(f, ctx.arrays)

    outs = _predict_blocks(ctx, blocks, build, n)
    drops = np.array([score0 - score(out, ctx.base, ctx.labels)[0] for out in outs]).reshape(len(segs), o.repeats)
    return Attribution([s.name for s in segs], drops.mean(axis=1), drops.std(axis=1), layout=layout,
                       image_key=segs[0].key if layout else None,
                       info={"metric": metric, "score": score0, "repeats": o.repeats})


# -- occlusion -----------------------------------------------------------------------------------------


def image_input(arrays: dict[str, np.ndarray], wanted: str | None = None) -> tuple[str, ImageLayout]:
    """The image input an image method works on (the only one, or ``wanted``) and its layout."""
    keys = [wanted] if wanted else list(arrays)
    for k in keys:
        if k not in arrays:
            raise UsageError(f"no input {k!r} in the data; it holds {', '.join(arrays)}")
        layout = ImageLayout.of(arrays[k].shape[1:])
        if layout is not None:
            return k, layout
    shapes = ", ".join(f"{k} {list(a.shape[1:])}" for k, a in arrays.items())
    raise UsageError(f"occlusion needs an image input ([C, H, W], [H, W, C] or [H, W] per sample); the data has "
                     f"{shapes}; use --method permutation, shap or surrogate for other inputs")


def _positions(size: int, patch: int, stride: int) -> list[int]:
    pos = list(range(0, max(size - patch, 0) + 1, stride))
    if pos[-1] + patch < size:
        pos.append(size - patch)
    return pos


def occlusion(ctx: Context) -> Attribution:
    """Hide one patch (every channel) at a time and measure how far the target's score falls; a pixel's
    sensitivity is the mean fall over the patches that cover it."""
    o = ctx.options
    key, layout = image_input(ctx.arrays, o.input)
    shape = ctx.arrays[key].shape[1:]
    h, w = layout.hw(shape)
    p = o.patch or default_patch(h, w)
    stride = o.stride or max(1, p // 2)
    if p > min(h, w) or p < 1 or stride < 1:
        raise UsageError(f"patch {p} and stride {stride} must be at least 1, the patch no larger than the image ({h}x{w})")
    boxes = [(y, min(y + p, h), x, min(x + p, w)) for y in _positions(h, p, stride) for x in _positions(w, p, stride)]
    flat = _flat(ctx.arrays)
    base_vals = baseline_values(ctx, flat, image=True)[key]
    cols = []
    for y0, y1, x0, x1 in boxes:
        mask = np.zeros(shape, dtype=bool)
        mask[layout.region(shape, y0, y1, x0, x1)] = True
        cols.append(np.flatnonzero(mask.ravel()))
    n = len(ctx.base)
    s0 = pick(ctx.base, ctx.targets)

    def build(i: int) -> dict[str, np.ndarray]:
        f = {k: np.repeat(v[i:i + 1], len(boxes), axis=0) for k, v in flat.items()}
        for j, c in enumerate(cols):
            f[key][j, c] = base_vals[c]
        return _unflat(f, ctx.arrays)

    outs = _predict_blocks(ctx, list(range(n)), build, len(boxes))
    drops = np.stack([s0[i] - pick(out, ctx.targets[i]) for i, out in enumerate(outs)])  # (n, boxes)
    maps = np.zeros((n, h, w))
    cover = np.zeros((h, w))
    for j, (y0, y1, x0, x1) in enumerate(boxes):
        maps[:, y0:y1, x0:x1] += drops[:, j, None, None]
        cover[y0:y1, x0:x1] += 1
    maps /= np.maximum(cover, 1)
    names = [f"{y0}:{y1},{x0}:{x1}" for y0, y1, x0, x1 in boxes]
    size = np.abs(drops)  # a patch matters as much as it moves the score, up or down
    return Attribution(names, size.mean(axis=0), size.std(axis=0), maps=maps, signed=drops.mean(axis=0),
                       layout=layout, image_key=key,
                       info={"patch": p, "stride": stride, "baseline": o.baseline if o.baseline is not None else 0.0,
                             "patches": len(boxes)})


# -- surrogate -----------------------------------------------------------------------------------------

KERNEL_WIDTH = 0.25  # of the exponential kernel over the cosine distance to the unperturbed sample (LIME's)
BOOTSTRAP = 20


def surrogate(ctx: Context) -> Attribution:
    """LIME-style: hide random subsets of the features of one sample, fit a distance-weighted ridge
    regression of the target's score on which features were kept; its weights are the attribution."""
    from sklearn.linear_model import Ridge

    o = ctx.options
    segs, layout = segments(ctx.arrays, list(o.feature_names) if o.feature_names else None, o.patch)
    flat = _flat(ctx.arrays)
    base_vals = baseline_values(ctx, flat, image=layout is not None)
    rng = np.random.default_rng(o.seed)
    m, k = max(o.perturbations, 10), len(segs)
    z = rng.random((m, k)) < rng.random((m, 1))
    z[0] = True
    rows = {key: np.repeat(v[:1], m, axis=0) for key, v in flat.items()}
    for s, seg in enumerate(segs):
        hidden = np.flatnonzero(~z[:, s])
        c = _cols(seg, ctx.arrays[seg.key].shape[1:])
        rows[seg.key][np.ix_(hidden, c)] = base_vals[seg.key][c]
    out = np.concatenate([ctx.subject.predict(_unflat({key: v[a:a + CHUNK_ROWS] for key, v in rows.items()}, ctx.arrays))
                          for a in range(0, m, CHUNK_ROWS)])
    y = pick(out, ctx.targets[0])
    kept = z.sum(axis=1)
    distance = 1.0 - kept / np.sqrt(np.maximum(kept, 1) * k)
    weight = np.exp(-(distance ** 2) / KERNEL_WIDTH ** 2)
    zf = z.astype(np.float64)
    fit = Ridge(alpha=1.0).fit(zf, y, sample_weight=weight)
    r2 = float(fit.score(zf, y, sample_weight=weight))
    boot = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, m, m)
        boot.append(Ridge(alpha=1.0).fit(zf[idx], y[idx], sample_weight=weight[idx]).coef_)
    coef = fit.coef_
    spread = np.std(np.abs(np.array(boot)), axis=0)
    maps = None
    if layout is not None:
        shape = ctx.arrays[segs[0].key].shape[1:]
        h, w = layout.hw(shape)
        maps = np.zeros((1, h, w))
        for s, seg in enumerate(segs):
            y0y1, x0x1 = seg.name.split(",")
            (y0, y1), (x0, x1) = (map(int, y0y1.split(":"))), (map(int, x0x1.split(":")))
            maps[0, y0:y1, x0:x1] = coef[s]
    else:
        maps = coef[None, :]
    return Attribution([s.name for s in segs], np.abs(coef), spread, maps=maps, signed=coef, layout=layout,
                       image_key=segs[0].key if layout else None,
                       info={"r2": r2, "perturbations": m, "intercept": float(fit.intercept_),
                             "kernel_width": KERNEL_WIDTH})
