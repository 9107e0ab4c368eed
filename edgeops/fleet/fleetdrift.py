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

Output drift (telemetry ``output_drift``, :mod:`edgeops.monitor.output_drift`) is merged the same way
with ``kind="outputs"``: each output's values keyed by the output's name, its predicted classes by
``"<name> (class)"``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import _json
from ..errors import DataError

__all__ = ["fleet_drift", "RecentRows", "device_histograms", "device_output_histograms", "histograms_of",
           "output_histograms_of", "merge_histograms", "psi_table", "payload_of"]

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
    return _histograms(drift.get("inputs") if isinstance(drift, dict) else None, {}, "")


def output_histograms_of(message: dict[str, Any]) -> Histograms:
    """Like :func:`histograms_of` for the message's ``output_drift``: ``{(output, ref): ...}`` and
    ``{("<output> (class)", ref): ...}`` for the predicted classes."""
    drift = message.get("output_drift")
    if not isinstance(drift, dict):
        return {}
    out = _histograms(drift.get("outputs"), {}, "")
    return _histograms(drift.get("classes"), out, " (class)")


def _histograms(entries: Any, out: Histograms, suffix: str) -> Histograms:
    if not isinstance(entries, dict):
        return out
    for name, stats in entries.items():
        if not isinstance(stats, dict):
            continue
        ref, reference, counts = stats.get("ref"), _numbers(stats.get("reference")), _numbers(stats.get("counts"))
        if not isinstance(ref, str) or reference is None or counts is None or len(reference) != len(counts):
            continue
        out[(f"{name}{suffix}", ref)] = (reference, counts)
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


class RecentRows:
    """Per device, what ``extract(row)`` makes of its telemetry of the last ``span_ms``, read incrementally.

    Reading every row of a window on every evaluation decodes the same payloads again and again (for
    1,000 devices at one message per 10 s, a 15-minute window is 90,000 rows). So a device is read
    again only when its ``last_seen`` (the receive time of its newest telemetry) moved, and then
    only from ``overlap_ms`` before the previous read (device clocks and network delays); every
    ``full_every_ms`` it is read whole, which also picks up a backlog replayed with older times.
    Rows are kept by message id, so overlapping reads count nothing twice.
    """

    def __init__(self, store: Any, fleet: str, span_ms: int, extract: Callable[[dict[str, Any]], Any], *,
                 overlap_ms: int = 30_000, full_every_ms: int = 300_000):
        self.store, self.fleet, self.span_ms, self.extract = store, fleet, int(span_ms), extract
        self.overlap_ms, self.full_every_ms = overlap_ms, full_every_ms
        self._devices: dict[str, _Cached] = {}
        self.reads = 0  # store.telemetry calls so far

    def rows(self, device: dict[str, Any], now: int) -> list[tuple[int, Any]]:
        """``[(ts, extract(row))]`` of the device's telemetry with ``now - span_ms <= ts <= now``, oldest first."""
        dev, seen, low = device["id"], device.get("last_seen"), now - self.span_ms
        c = self._devices.get(dev)
        if c is None or now - c.full_at >= self.full_every_ms or now < c.read_at:
            # the first read of a device is dated back by up to full_every_ms, so that devices seen
            # together are not all read whole again in the same evaluation
            c = self._devices[dev] = _Cached(now - (zlib.crc32(dev.encode()) % self.full_every_ms if c is None else 0))
            self._read(dev, c, low, now)
        elif seen != c.seen:
            self._read(dev, c, max(low, c.read_at - self.overlap_ms), now)
        c.seen = seen
        for key in [k for k, (ts, _) in c.rows.items() if ts < low]:
            del c.rows[key]
        return sorted(((ts, v) for ts, v in c.rows.values() if ts <= now), key=lambda r: r[0])

    def keep(self, devices: Iterable[str]) -> None:
        """Forget the devices not in ``devices`` (gone from the store)."""
        wanted = set(devices)
        for dev in [d for d in self._devices if d not in wanted]:
            del self._devices[dev]

    def _read(self, device: str, c: _Cached, since: int, now: int) -> None:
        self.reads += 1
        for row in self.store.telemetry(self.fleet, device, since_ms=since, until_ms=now + 1):  # until is exclusive
            ts = row.get("ts")
            if isinstance(ts, (int, float)):
                c.rows[str(row.get("id") or (ts, row.get("seq")))] = (int(ts), self.extract(row))
        c.read_at = now


class _Cached:
    __slots__ = ("rows", "read_at", "full_at", "seen")

    def __init__(self, full_at: int):
        self.rows: dict[str, tuple[int, Any]] = {}
        self.read_at = full_at
        self.full_at = full_at  # when it was last read whole
        self.seen: Any = None


def device_histograms(row: dict[str, Any]) -> Histograms:
    """The drift histograms of a stored telemetry row (a :class:`RecentRows` ``extract``)."""
    return histograms_of(payload_of(row))


def device_output_histograms(row: dict[str, Any]) -> Histograms:
    """The output drift histograms of a stored telemetry row (a :class:`RecentRows` ``extract``)."""
    return output_histograms_of(payload_of(row))


def fleet_drift(store: Any, fleet: str, window_ms: int, *, now_ms: int | None = None,
                labels: Mapping[str, Iterable[str]] | None = None, by: Iterable[str] | None = None,
                devices: list[dict[str, Any]] | None = None, min_samples: int | None = None,
                recent: RecentRows | None = None, kind: str = "inputs") -> dict[str, Any]:
    """Drift of the fleet's merged histograms over the last ``window_ms`` (for ``/api/fleet`` and the
    ``fleet_psi`` rule)::

        {"fleet": {input: psi, "max_psi": psi}, "by_label": {"site=berlin": {input: psi, "max_psi": psi}},
         "devices": n, "window_ms": window_ms, "now_ms": now_ms}

    ``labels`` keeps the devices whose labels match (``{"ring": ["canary"]}``), ``by`` limits
    ``by_label`` to those label names (default: every label a device has), ``devices`` saves
    reading them again when the caller has ``store.devices(fleet)`` already. A caller that asks
    again and again (a page that polls, the alert loop) passes the same ``recent``, a
    :class:`RecentRows` over ``device_histograms`` with a span of at least ``window_ms``, so each
    call reads only what is new. ``kind="outputs"`` merges the output drift instead (its ``recent``
    then extracts :func:`device_output_histograms`).
    """
    if kind not in ("inputs", "outputs"):
        raise ValueError(f"kind must be 'inputs' or 'outputs', not {kind!r}")
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    keys = None if by is None else set(by)
    wanted = {k: {str(v) for v in ([vs] if isinstance(vs, str) else vs)} for k, vs in (labels or {}).items()}
    rows = store.devices(fleet) if devices is None else devices
    if recent is None or recent.span_ms < window_ms:
        recent = RecentRows(store, fleet, window_ms, device_histograms if kind == "inputs" else device_output_histograms)
    whole: Histograms = {}
    groups: dict[str, Histograms] = {}
    counted = 0
    for device in rows:
        device_labels = device.get("labels") or {}
        if not all(str(device_labels.get(k)) in vs for k, vs in wanted.items()):
            continue
        mine: Histograms = {}
        for ts, histograms in recent.rows(device, now):
            if ts >= now - window_ms:
                merge_histograms(mine, histograms)
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
