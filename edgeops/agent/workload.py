"""Replay a data file through the model at a fixed rate (``[workload]``: demos, soak tests, fleet simulation)."""

from __future__ import annotations

import threading
import time
from typing import Any

from ..errors import EdgeOpsError


def replay(model: Any, data: str, rate_hz: float, stop: threading.Event) -> int:
    """Run one sample at a time, cycling through the file, until ``stop``; returns how many ran."""
    from ..datafiles import load_inputs

    arrays = load_inputs(data, [s.name for s in model.inputs])
    n = next(iter(arrays.values())).shape[0]
    period, ran, i = 1.0 / rate_hz, 0, 0
    next_at = time.monotonic()
    while not stop.is_set():
        feeds = {k: v[i:i + 1] for k, v in arrays.items()}
        try:
            model.run(feeds)
        except EdgeOpsError:
            pass  # counted in the model's error statistics, which telemetry reports
        ran, i = ran + 1, (i + 1) % n
        next_at += period
        stop.wait(max(next_at - time.monotonic(), 0.0))
    return ran
