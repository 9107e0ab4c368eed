"""Drift explained: which inputs moved between the reference and the device's data, by how much, and
whether the model's most important features are among them.

The reference is a data profile (``*.profile.json``, :mod:`edgeops.validate.profile`): each input is
compared as a whole, through :class:`edgeops.monitor.drift.DriftMonitor` (its PSI, KS and Wasserstein
over the profile's bins), with the shift of the mean in reference standard deviations and of the
quantiles read off the profile's histogram. Or the reference is data (``.npz`` / ``.npy``): then every
feature (column of a table) is compared on its own, with :func:`edgeops.monitor.drift.psi` over ten
equal bins of the reference's range (device values outside it count in the end bins). Given a model,
its permutation importance (:func:`edgeops.explain.explain`) on the reference data (or the device
data) says which features matter, and the report lists those among them that moved.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import DataError, UsageError

BINS = 10
QUANTILES = (0.05, 0.5, 0.95)
TOP = 5  # the model's most important features checked against the moved ones


def _read(path: Any, names: list[str] | None) -> dict[str, np.ndarray]:
    from ..datafiles import check_samples, load_inputs

    if isinstance(path, dict):
        return check_samples({str(k): np.asarray(v) for k, v in path.items()}, "data")
    p = os.fspath(path)
    if names:
        return load_inputs(p, names)
    try:
        loaded: Any = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"data file {p} is not a readable .npy/.npz file ({exc})") from exc
    if isinstance(loaded, np.ndarray):
        return check_samples({"input": loaded}, p)
    with loaded:
        return check_samples({k: loaded[k] for k in loaded.keys()}, p)


def _columns(arrays: dict[str, np.ndarray], names: list[str] | None) -> dict[str, np.ndarray]:
    """Feature name -> its values (flattened over samples): columns of 2-D inputs, whole tensors otherwise."""
    out = {}
    tables = [k for k, a in arrays.items() if a.ndim == 2]
    for k, a in arrays.items():
        if a.ndim == 2:
            cols = names if names and len(tables) == 1 and len(names) == a.shape[1] else None
            for j in range(a.shape[1]):
                label = cols[j] if cols else (str(j) if len(arrays) == 1 else f"{k}[{j}]")
                out[label] = a[:, j]
        else:
            out[k] = a.reshape(-1)
    return out


def _summary(v: np.ndarray) -> dict[str, Any]:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": None, "std": None, "quantiles": None}
    return {"mean": float(v.mean()), "std": float(v.std()),
            "quantiles": {f"p{round(q * 100):02d}": float(np.quantile(v, q)) for q in QUANTILES}}


def _hist_quantiles(edges: list[float], counts: list[float]) -> dict[str, float]:
    c = np.cumsum(np.asarray(counts, dtype=np.float64))
    c = np.concatenate([[0.0], c / c[-1]])
    return {f"p{round(q * 100):02d}": float(np.interp(q, c, edges)) for q in QUANTILES}


def _row(feature: str, value: float, ref: dict[str, Any], dev: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    from ..monitor.drift import psi_level

    shift = None
    if ref.get("std") and dev.get("mean") is not None and ref.get("mean") is not None:
        shift = (dev["mean"] - ref["mean"]) / ref["std"]
    q = None
    if ref.get("quantiles") and dev.get("quantiles"):
        q = {k: dev["quantiles"][k] - ref["quantiles"][k] for k in ref["quantiles"]}
    return {"feature": feature, "psi": value, "level": psi_level(value) if np.isfinite(value) else None,
            "mean_shift_std": shift, "quantile_shift": q, "reference": ref, "device": dev, **extra}


def _against_profile(device: dict[str, np.ndarray], profile: dict[str, Any]) -> list[dict[str, Any]]:
    from ..monitor.drift import DriftMonitor

    inputs = profile.get("inputs") or {}
    common = [k for k in device if k in inputs]
    if not common and len(device) == 1 and len(inputs) == 1:
        device = {next(iter(inputs)): next(iter(device.values()))}
        common = list(device)
    if not common:
        raise DataError(f"the device data ({', '.join(device)}) and the profile ({', '.join(inputs)}) share no input")
    size = max(int(a.size) for a in device.values())
    monitor = DriftMonitor(profile, inputs=common, min_samples=1, max_values=max(size, 1))
    monitor.update({k: device[k] for k in common})
    snap = monitor.snapshot()["inputs"]
    rows = []
    for k in common:
        entry, s = inputs[k], snap.get(k) or {}
        hist = entry.get("histogram") or {}
        ref = {"mean": entry.get("mean"), "std": entry.get("std"),
               "quantiles": _hist_quantiles(hist["edges"], hist["counts"]) if hist else None}
        value = s.get("psi")
        rows.append(_row(k, float(value) if value is not None else float("nan"), ref, _summary(device[k]),
                         {"ks": s.get("ks"), "wasserstein": s.get("wasserstein")}))
    return rows


def _against_data(device: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                  names: list[str] | None) -> list[dict[str, Any]]:
    from ..monitor.drift import psi

    if set(device) != set(reference):
        if len(device) == len(reference) == 1:
            device = {next(iter(reference)): next(iter(device.values()))}
        else:
            raise DataError(f"the device data holds {', '.join(device)}, the reference {', '.join(reference)}")
    ref_cols, dev_cols = _columns(reference, names), _columns(device, names)
    rows = []
    for f, r in ref_cols.items():
        r = np.asarray(r, np.float64)
        d = np.asarray(dev_cols[f], np.float64)
        r, d = r[np.isfinite(r)], d[np.isfinite(d)]
        if not r.size or not d.size:
            rows.append(_row(f, float("nan"), _summary(r), _summary(d), {}))
            continue
        edges = np.histogram_bin_edges(r, bins=BINS)
        expected = np.histogram(r, bins=edges)[0]
        actual = np.histogram(np.clip(d, edges[0], edges[-1]), bins=edges)[0]
        rows.append(_row(f, psi(expected, actual), _summary(r), _summary(d), {}))
    return rows


def drift(device: Any, reference: Any, *, model: Any = None, feature_names: list[str] | None = None,
          seed: int = 0, samples: int | None = None) -> dict[str, Any]:
    """Rank the inputs (or features) of ``device`` data by how far they moved from ``reference`` (a profile
    path or dict, or a data file); with ``model``, check its most important features against them."""
    from ..runtime.guardrails import load_profile

    names = [s.name for s in model.inputs] if model is not None and not isinstance(model, (str, os.PathLike)) else None
    opened = None
    if model is not None:
        from ..validate.runner import open_model

        opened = open_model(model, None)
        names = [s.name for s in opened.inputs]
    is_profile = isinstance(reference, dict) or str(reference).endswith(".json")
    dev = _read(device, names)
    if is_profile:
        profile = load_profile(reference)
        rows = _against_profile(dev, profile)
        ref_data = None
        basis = "profile"
    else:
        ref_data = _read(reference, names)
        rows = _against_data(dev, ref_data, feature_names)
        basis = "data"
    rows.sort(key=lambda r: -r["psi"] if np.isfinite(r["psi"]) else np.inf)
    out: dict[str, Any] = {"method": "drift", "reference": basis, "model_calls": 0, "importances": [],
                           "drift": rows, "moved": [r["feature"] for r in rows if r["level"] in ("moderate", "shifted")]}
    if opened is not None:
        from .core import explain

        on = ref_data if ref_data is not None else dev
        e = explain(opened, on, method="permutation", seed=seed, samples=samples,
                    feature_names=tuple(feature_names) if feature_names else None)
        imp = e.importances()
        out["model_calls"] = e.model_calls
        out["importances"] = imp
        out["importance_on"] = "reference data" if ref_data is not None else "device data"
        top = [r["feature"] for r in imp[:TOP]]
        moved = {str(f) for f in out["moved"]}
        if basis == "profile":  # the profile compares whole inputs: a feature moved if its input did
            moved_inputs = moved
            out["important_and_moved"] = [f for f in top if str(f) in moved_inputs or (len(dev) == 1 and moved)]
        else:
            out["important_and_moved"] = [f for f in top if str(f) in moved]
        out["top_features"] = top
    return out


def check_reference(path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"--reference {path}: no such file (a *.profile.json or a .npz/.npy of reference data)")
