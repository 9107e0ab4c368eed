"""Output drift: how far what a model answers on the device has moved from what it answered on the reference data.

The reference profile (:func:`edgeops.validate.build_profile`) holds a histogram of each output's values
(``outputs``) and, for a classifier's scores, of its top-1 class (``classes``). :class:`OutputDrift`
is two :class:`~edgeops.monitor.DriftMonitor` windows over those sections, fed with each run's outputs
(the classes as the argmax over the last axis). Its snapshot is shaped like input drift, so the same
readers (the fleet's merged histograms, :mod:`edgeops.fleet.fleetdrift`) read it::

    {"outputs": {name: {"psi", "psi_level", "ks", "wasserstein", "samples", "counts", "reference", "ref", ...}},
     "classes": {name: {... the same, over class indices ...}},
     "max_psi": float | None, "window_samples": runs, "window_s": seconds, "skipped": {name: reason}}

An output whose values moved (a model that turned wrong, inputs that changed in a way the input
statistics do not show) moves its PSI; a shift in what is predicted moves the class PSI even where
each score's range looks the same. A profile without outputs (or an old one without ``classes``)
monitors what it has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

from .._io import profile_path
from .drift import DriftMonitor

__all__ = ["OutputDrift", "monitor_outputs"]


class OutputDrift:
    """Output and predicted-class drift of a running model (module docstring)."""

    def __init__(self, profile: dict[str, Any] | str | PathLike[str], outputs: list[str] | None = None, **kw: Any):
        from ..runtime.guardrails import load_profile

        prof = load_profile(profile)
        value_names, class_names = _names(prof, "outputs", outputs), _names(prof, "classes", outputs)
        self.values = DriftMonitor(prof, value_names, section="outputs", **kw) if value_names else None
        self.classes = DriftMonitor(prof, class_names, section="classes", **kw) if class_names else None
        self._class_names = self.classes.inputs if self.classes is not None else []

    @property
    def enabled(self) -> bool:
        return bool((self.values and self.values.inputs) or self._class_names)

    def update(self, outputs: Mapping[str, Any]) -> None:
        """Count one run's outputs ({output name: array})."""
        if self.values is not None:
            self.values.update(outputs)
        if self.classes is not None:
            top = {}
            for name in self._class_names:
                v = outputs.get(name)
                if v is not None and getattr(v, "ndim", 0) >= 1 and v.shape[-1] > 1:
                    top[name] = np.argmax(v.reshape(-1, v.shape[-1]), axis=1)
            if top:
                self.classes.update(top)

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"outputs": {}, "classes": {}, "max_psi": None, "window_samples": 0, "window_s": 0.0,
                               "skipped": {}}
        for key, mon in (("outputs", self.values), ("classes", self.classes)):
            if mon is None:
                continue
            snap = mon.snapshot(reset=reset)
            out[key] = snap["inputs"]
            out["skipped"].update({f"{key}.{k}": v for k, v in snap["skipped"].items()})
            if snap["max_psi"] is not None:
                out["max_psi"] = snap["max_psi"] if out["max_psi"] is None else max(out["max_psi"], snap["max_psi"])
            out["window_samples"] = max(out["window_samples"], snap["window_samples"])
            out["window_s"] = max(out["window_s"], snap["window_s"])
        return out


def _names(profile: dict[str, Any], section: str, wanted: list[str] | None) -> list[str]:
    entries = profile.get(section) or {}
    if not isinstance(entries, dict):
        return []
    return [n for n in entries if wanted is None or n in wanted]


def monitor_outputs(model: Any, profile: dict[str, Any] | str | PathLike[str] | None = None) -> OutputDrift | None:
    """Output drift of ``model`` against its profile (default: ``NAME.profile.json`` next to it); None without one
    or when the profile has no usable output section."""
    if profile is None and model is not None and getattr(model, "path", None):
        candidate = profile_path(model.path)
        profile = candidate if os.path.isfile(candidate) else None
    if profile is None:
        return None
    names = [s.name for s in model.outputs] if model is not None else None
    monitor = OutputDrift(profile, names)
    return monitor if monitor.enabled else None
