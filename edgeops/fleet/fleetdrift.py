"""Fleet-level drift: the devices' drift histograms added up, compared with the reference, for the whole
fleet and per label value (per ``site``, per ``ring``, ...).

Every telemetry message of a device with a reference profile carries, per input, the window's
``counts`` over the reference bins, the reference's own ``reference`` counts and ``ref``, an id of
the reference's edges and counts (:meth:`edgeops.monitor.DriftMonitor.snapshot`). The agent starts
a new window with every message, so the counts of a device's messages within a time window add up
to its histogram over that window, and the histograms of many devices add up to the fleet's. Only
windows over the same reference (same ``ref``) are added together: two model versions with
different profiles are two histograms, keyed ``input@ref`` when one input name has several.

The PSI is :func:`edgeops.monitor.psi` (the one the devices use) of the merged counts against the
reference, ``None`` below :data:`edgeops.monitor.drift.MIN_SAMPLES` values. A single device's PSI
can look fine everywhere while the fleet, or one site, has moved: many small windows each below
the noise, or a shift in one site's input that no single device sees clearly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _json
from ..errors import DataError

__all__ = ["fleet_drift", "histograms_of", "merge_histograms", "psi_table", "payload_of"]

Key = tuple[str, str]  # (input name, ref)
Histograms = dict[Key, tuple[list[float], list[float]]]  # -> (reference counts, window counts)


def payload_of(row: dict[str, Any]) -> dict[str, Any]:
    """The message of a stored telemetry row (decoded when the store gave it as JSON text); {} if unusable."""
    payload = row.get("payload")
    if isinstance(payload, (str, bytes, bytearray)):
        try:
            payload = _json.loads(bytes(payload) if isinstance(payload, bytearray) else payload, what="stored telemetry payload", error=DataError)
        except DataError:
            return {}
    return payload if isinstance(payload, dict) else {}


def histograms_of(message: dict[str, Any]) -> Histograms:
    """``{(input, ref): (reference counts, window counts)}`` of one telemetry message; inputs without
    a reference (an older agent) or with mismatched lengths are left out."""
    drift = message.get("drift")
    inputs = drift.get("inputs") if isinstance(drift, dict) else None
    out: Histograms = {}
    if not isinstance(inputs, dict):
        return out
    for name, stats in inputs.items():
        if not isinstance(stats, dict):
            continue
        ref, reference, counts = stats.get("ref"), _numbers(stats.get("reference")), _numbers(stats.get("counts"))
        if not isinstance(ref, str) or reference is None or counts is None or len(reference) != len(counts):
            continue
        out[(str(name), ref)] = (reference, counts)
    return out


def merge_histograms(into: Histograms, more: Histograms) -> Histograms:
    """Add ``more``'s window counts into ``into`` (same input and ref); returns ``into``."""
    for key, (reference, counts) in more.items():
        held = into.get(key)
        if held is None:
            into[key] = (list(reference), [float(c) for c in counts])
        elif len(held[1]) == len(counts):
            into[key] = (held[0], [a + float(b) for a, b in zip(held[1], counts)])
    return into


def psi_table(merged: Histograms, min_samples: int | None = None) -> dict[str, Any]:
    """``{input: psi | None, ..., "max_psi": float | None}`` of merged histograms (PSI with :func:`edgeops.monitor.psi`)."""
    import numpy as np

    from ..monitor.drift import MIN_SAMPLES, psi

    least = MIN_SAMPLES if min_samples is None else min_samples
    names = [name for name, _ in merged]
    table: dict[str, Any] = {}
    for (name, ref), (reference, counts) in sorted(merged.items()):
        label = name if names.count(name) == 1 else f"{name}@{ref}"
        table[label] = psi(np.asarray(reference), np.asarray(counts)) if sum(counts) >= least and sum(reference) > 0 else None
    values = [v for v in table.values() if v is not None]
    table["max_psi"] = max(values) if values else None
    return table


def fleet_drift(store: Any, fleet: str, window_ms: int, *, now_ms: int | None = None,
                labels: Mapping[str, Iterable[str]] | None = None, by: Iterable[str] | None = None,
                devices: list[dict[str, Any]] | None = None, min_samples: int | None = None) -> dict[str, Any]:
    """Drift of the fleet's merged histograms over the last ``window_ms`` (for ``/api/fleet`` and the
    ``fleet_psi`` rule)::

        {"fleet": {input: psi, "max_psi": psi}, "by_label": {"site=berlin": {input: psi, "max_psi": psi}},
         "devices": n, "window_ms": window_ms, "now_ms": now_ms}

    ``labels`` keeps the devices whose labels match (``{"ring": ["canary"]}``), ``by`` limits
    ``by_label`` to those label names (default: every label a device has), ``devices`` saves
    reading them again when the caller has ``store.devices(fleet)`` already.
    """
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    keys = None if by is None else set(by)
    wanted = {k: {str(v) for v in ([vs] if isinstance(vs, str) else vs)} for k, vs in (labels or {}).items()}
    rows = store.devices(fleet) if devices is None else devices
    whole: Histograms = {}
    groups: dict[str, Histograms] = {}
    counted = 0
    for device in rows:
        device_labels = device.get("labels") or {}
        if not all(str(device_labels.get(k)) in vs for k, vs in wanted.items()):
            continue
        mine: Histograms = {}
        for row in store.telemetry(fleet, device["id"], since_ms=now - window_ms, until_ms=now + 1):
            ts = row.get("ts")
            if isinstance(ts, (int, float)) and not now - window_ms <= ts <= now:
                continue
            merge_histograms(mine, histograms_of(payload_of(row)))
        if not mine:
            continue
        counted += 1
        merge_histograms(whole, mine)
        for k, v in device_labels.items():
            if keys is None or k in keys:
                merge_histograms(groups.setdefault(f"{k}={v}", {}), mine)
    return {"fleet": psi_table(whole, min_samples),
            "by_label": {group: psi_table(h, min_samples) for group, h in sorted(groups.items())},
            "devices": counted, "window_ms": int(window_ms), "now_ms": now}


def _numbers(value: Any) -> list[float] | None:
    """``value`` when it is a non-empty list of numbers >= 0, else None."""
    if isinstance(value, list) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value):
        return value
    return None
