"""The OTA health probe: does a freshly installed model run, and run right? (see :mod:`.ota`)

:func:`probe` loads nothing itself: it takes the new model and its slot, runs the bundle's sample
(its first :data:`PROBE_SAMPLES` samples; inputs synthesised from the signature when the bundle
has none), checks that the outputs are finite and, where the sample holds reference outputs and the
manifest tolerances, within them, then times :data:`LATENCY_RUNS` runs against ``max_p95_ms``. It
answers ``(feeds, problem)``: the inputs it used (the machine runs them again after the health
window) and what is wrong, or None. The probe's runs are not the device's inferences: the model's
statistics are reset after it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EdgeOpsError

if TYPE_CHECKING:
    from ..runtime import Model, TensorSpec

__all__ = ["LATENCY_RUNS", "PROBE_SAMPLES", "check_outputs", "probe", "probe_inputs", "synthesized_inputs"]

PROBE_SAMPLES = 4
LATENCY_RUNS = 20

Feeds = list[dict[str, np.ndarray]]


def probe(model: Model, slot_dir: str, manifest: Mapping[str, Any], *,
          max_p95_ms: float | None = None) -> tuple[Feeds, str | None]:
    """Run the bundle's sample (or synthesised inputs) through ``model``: ``(feeds, problem or None)``."""
    try:
        feeds, refs = probe_inputs(model, slot_dir, manifest)
    except (OSError, ValueError, KeyError, EdgeOpsError) as exc:
        return [], f"the bundle's sample cannot be read: {exc}"
    problem = check_outputs(model, feeds, refs, manifest.get("tolerances"))
    if problem:
        return feeds, problem
    times = []
    for i in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        model.run(feeds[i % len(feeds)])
        times.append((time.perf_counter() - t0) * 1000)
    p95 = float(np.percentile(times, 95))
    model.stats.reset()  # the probe's runs are not the device's inferences
    if max_p95_ms is not None and p95 > max_p95_ms:
        return feeds, f"p95 latency {p95:.2f} ms is over the limit of {max_p95_ms:g} ms"
    return feeds, None


def probe_inputs(model: Model, slot_dir: str, manifest: Mapping[str, Any]) -> tuple[Feeds, Feeds | None]:
    """The first few samples of the bundle's sample file, with reference outputs where it holds them."""
    member = manifest.get("sample")
    if not member:
        return synthesized_inputs(model), None
    with np.load(os.path.join(slot_dir, member), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    ins, outs = [s.name for s in model.inputs], [s.name for s in model.outputs]
    if len(ins) == 1 and len(arrays) == 1 and ins[0] not in arrays:  # one array under another name
        arrays = {ins[0]: next(iter(arrays.values()))}
    n = min(PROBE_SAMPLES, *(arrays[k].shape[0] for k in ins))
    feeds = [{s.name: _sample(arrays[s.name], i, s) for s in model.inputs} for i in range(n)]
    if not all(k in arrays for k in outs):
        return feeds, None
    return feeds, [{s.name: _sample(arrays[s.name], i, s) for s in model.outputs} for i in range(n)]


def _sample(array: np.ndarray, i: int, spec: TensorSpec) -> np.ndarray:
    """Sample ``i``: ``arr[i:i+1]`` where the model keeps a batch axis (DESIGN.md data files)."""
    batch = spec.shape is None or len(spec.shape) == array.ndim
    return np.ascontiguousarray(array[i:i + 1] if batch else array[i])


def synthesized_inputs(model: Model) -> Feeds:
    """Zeros and seeded random values of each input's dtype and shape (dynamic dims 1)."""
    from ..bench.inputs import random_array

    rng = np.random.default_rng(0)
    shapes = {s.name: tuple(1 if d is None else int(d) for d in (s.shape or (1,))) for s in model.inputs}
    zeros = {s.name: np.zeros(shapes[s.name], dtype=s.dtype) for s in model.inputs}
    return [zeros, {s.name: random_array(rng, shapes[s.name], s.dtype) for s in model.inputs}]


def check_outputs(model: Model, feeds: Feeds, refs: Feeds | None, tolerances: dict[str, Any] | None) -> str | None:
    """The first problem with ``model``'s outputs on ``feeds``: a run error, a non-finite value, or (with ``refs``
    and an absolute tolerance) a difference from the reference; None when there is none."""
    atol, rtol = _tolerance(tolerances)
    for i, feed in enumerate(feeds):
        try:
            outs = model.run(feed)
        except EdgeOpsError as exc:
            return f"the new model fails on probe input {i}: {exc}"
        for name, value in outs.items():
            value = np.asarray(value)
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                return f"the new model's output {name!r} is not finite (NaN or inf) on probe input {i}"
            if refs is not None and atol is not None and name in refs[i]:
                ref = refs[i][name].astype(np.float64)
                if value.shape != ref.shape or not np.allclose(value.astype(np.float64), ref, atol=atol, rtol=rtol):
                    diff = float(np.max(np.abs(value.astype(np.float64) - ref))) if value.shape == ref.shape else math.inf
                    return (f"the new model's output {name!r} differs from the bundle's reference by {diff:.3g} on "
                            f"sample {i} (tolerance atol={atol:g}, rtol={rtol:g})")
    return None


def _tolerance(tolerances: dict[str, Any] | None) -> tuple[float | None, float]:
    """``(atol, rtol)`` from the manifest's tolerances (``max_abs`` or ``atol``, ``max_rel`` or ``rtol``);
    no absolute tolerance: no comparison."""
    t = tolerances or {}
    atol = next((t[k] for k in ("max_abs", "atol") if k in t), None)
    rtol = next((t[k] for k in ("max_rel", "rtol") if k in t), 0.0)
    if atol is None and rtol:
        atol = 0.0
    return (None if atol is None else float(atol)), float(rtol)
