"""Replay a data file through the model at a fixed rate (``[workload]``: demos, soak tests, fleet simulation).

The replay thread never dies of an exception: a failed run is counted in the model's error
statistics (which telemetry reports); anything else (the data file unreadable, a bug) is logged
once per distinct error and tried again a second later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import EdgeOpsError

log = logging.getLogger(__name__)
RETRY_S = 1.0


def replay(model: Any, data: str, rate_hz: float, stop: threading.Event,
           current: Callable[[], Any] | None = None) -> int:
    """Run one sample at a time, cycling through the file, until ``stop``; returns how many ran.

    ``current`` (e.g. ``lambda: agent.model``) names the model to run at each step, so the workload
    follows an update installed over the air; the data file is re-read for a model whose inputs differ."""
    period, ran, i = 1.0 / rate_hz, 0, 0
    arrays: dict[str, Any] = {}
    names: list[str] = []
    next_at = time.monotonic()
    last_error = ""
    while not stop.is_set():
        m = current() if current is not None else model
        if m is None:
            stop.wait(period)
            continue
        try:
            if [s.name for s in m.inputs] != names:
                arrays, names = _load(data, m)
                i = 0
            n = next(iter(arrays.values())).shape[0]
            try:
                m.run({k: v[i % n:i % n + 1] for k, v in arrays.items()})
            except EdgeOpsError:
                pass  # counted in the model's error statistics, which telemetry reports
        except Exception as exc:  # noqa: BLE001 - the workload must outlive any failure; the log says what
            text = f"{type(exc).__name__}: {exc}"
            if text != last_error:
                log.error("edgeops workload: %s; trying again every %g s", text, RETRY_S)
                last_error = text
            names = []
            stop.wait(RETRY_S)
            next_at = time.monotonic()
            continue
        ran, i = ran + 1, (i + 1) % n
        next_at += period
        stop.wait(max(next_at - time.monotonic(), 0.0))
    return ran


def _load(data: str, model: Any) -> tuple[dict[str, Any], list[str]]:
    from ..datafiles import load_inputs

    names = [s.name for s in model.inputs]
    return load_inputs(data, names), names
