"""Shapley values through the ``shap`` library, over the model as a predict function (no gradients).

Tables (and several inputs, flattened side by side): ``shap.explainers.Permutation`` with an
``Independent`` masker over a background of the data. An image input: ``shap.explainers.Partition``
with an ``Image`` masker whose hidden pixels take the baseline value (no OpenCV needed). The values
of each sample's target (class) are kept; a feature's importance is the mean ``|value|`` over the
samples. ``shap`` is an optional extra: ``pip install 'edgeops[explain]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from .methods import Attribution, Context, _cols, _flat, baseline_values, image_input
from .methods import segments as _segments

BACKGROUND = 50  # background rows of the tabular masker
IMAGE_EVALS = 300  # default max_evals per image


def _import_shap() -> Any:
    try:
        import shap
    except ImportError as exc:
        raise UsageError("--method shap needs the shap package: pip install 'edgeops[explain]'") from exc
    return shap


def shapley(ctx: Context) -> Attribution:
    shap = _import_shap()
    state = np.random.get_state()
    np.random.seed(ctx.options.seed)  # shap draws from numpy's global generator in places
    try:
        try:
            key, layout = image_input(ctx.arrays, ctx.options.input)
        except UsageError:
            return _tabular(shap, ctx)
        return _image(shap, ctx, key, layout)
    finally:
        np.random.set_state(state)


def _tabular(shap: Any, ctx: Context) -> Attribution:
    o = ctx.options
    segs, _ = _segments(ctx.arrays, list(o.feature_names) if o.feature_names else None, None)
    flat = _flat(ctx.arrays)
    keys = list(flat)
    widths = [flat[k].shape[1] for k in keys]
    x = np.concatenate([flat[k].astype(np.float64) for k in keys], axis=1)
    source = _flat(ctx.everything) if ctx.everything is not None else flat
    background = np.concatenate([source[k].astype(np.float64) for k in keys], axis=1)
    rng = np.random.default_rng(o.seed)
    if len(background) > BACKGROUND:
        background = background[np.sort(rng.choice(len(background), BACKGROUND, replace=False))]
    splits = np.cumsum(widths)[:-1]

    def f(rows: np.ndarray) -> np.ndarray:
        parts = np.split(np.asarray(rows), splits, axis=1)
        arrays = {k: p.astype(ctx.arrays[k].dtype).reshape((len(p), *ctx.arrays[k].shape[1:]))
                  for k, p in zip(keys, parts)}
        return ctx.subject.predict(arrays)

    d = x.shape[1]
    evals = max(2 * d + 1, o.max_evals or 2 * d + 1)
    explainer = shap.explainers.Permutation(f, shap.maskers.Independent(background, max_samples=len(background)),
                                            seed=o.seed)
    values = np.asarray(explainer(x, max_evals=evals, silent=True).values)
    values = values.reshape(len(x), d, -1)
    phi = values[np.arange(len(x)), :, ctx.targets]  # (n, d): each sample's target
    offsets = dict(zip(keys, np.concatenate([[0], np.cumsum(widths)[:-1]])))
    per = np.stack([np.abs(phi[:, offsets[s.key] + _cols(s, ctx.arrays[s.key].shape[1:])]).sum(axis=1)
                    for s in segs], axis=1)  # (n, features)
    signed = np.stack([phi[:, offsets[s.key] + _cols(s, ctx.arrays[s.key].shape[1:])].sum(axis=1) for s in segs], axis=1)
    return Attribution([s.name for s in segs], per.mean(axis=0), per.std(axis=0), maps=signed,
                       signed=signed.mean(axis=0), info={"explainer": "permutation", "max_evals": evals,
                                                         "background": len(background)})


def _image(shap: Any, ctx: Context, key: str, layout: Any) -> Attribution:
    o = ctx.options
    a = ctx.arrays[key]
    shape = a.shape[1:]
    hwc = np.stack([layout.to_hwc(s) for s in a]).astype(np.float64)
    fill = baseline_values(ctx, _flat({key: a}), image=True)[key].reshape(shape)
    masker = shap.maskers.Image(layout.to_hwc(fill).astype(np.float64), hwc.shape[1:])

    def back(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows).reshape((len(rows), *hwc.shape[1:]))
        if layout.channel is None:
            return rows[..., 0]
        return np.moveaxis(rows, (1, 2, 3), (layout.height + 1, layout.width + 1, layout.channel + 1))

    def f(rows: np.ndarray) -> np.ndarray:
        arrays = {k: v[:1].repeat(len(rows), axis=0) for k, v in ctx.arrays.items() if k != key}
        arrays[key] = back(rows).astype(a.dtype)
        return ctx.subject.predict(arrays)

    evals = o.max_evals or IMAGE_EVALS
    explainer = shap.explainers.Partition(f, masker)
    values = np.asarray(explainer(hwc, max_evals=evals, batch_size=64, silent=True).values)
    values = values.reshape((*hwc.shape, -1))
    # the two index arrays are split by the ellipsis, so numpy puts their axis first: (n, H, W, C)
    phi = values[np.arange(len(hwc)), ..., ctx.targets] if values.shape[-1] > 1 else values[..., 0]
    maps = phi.sum(axis=-1)  # (n, H, W), signed
    segs, _ = _segments({key: a}, None, o.patch)
    per = []
    for s in segs:
        y, x = s.name.split(",")
        (y0, y1), (x0, x1) = map(int, y.split(":")), map(int, x.split(":"))
        per.append(np.abs(maps[:, y0:y1, x0:x1]).sum(axis=(1, 2)))
    per_arr = np.stack(per, axis=1)
    return Attribution([s.name for s in segs], per_arr.mean(axis=0), per_arr.std(axis=0), maps=maps,
                       layout=layout, image_key=key, info={"explainer": "partition", "max_evals": evals})
