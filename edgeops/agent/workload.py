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

from ..errors import DataError, EdgeOpsError, UsageError

log = logging.getLogger(__name__)
RETRY_S = 1.0


def replay(model: Any, data: str, rate_hz: float, stop: threading.Event,
           current: Callable[[], Any] | None = None, labels: Any = None) -> int:
    """Run one sample at a time, cycling through the file, until ``stop``; returns how many ran.

    ``current`` (e.g. ``lambda: agent.model``) names the model to run at each step, so the workload
    follows an update installed over the air; the data file is re-read for a model whose inputs differ.
    ``labels`` (an array, or a ``.npy`` file, of one label per sample) gives each run its true label through
    ``model.feedback``, as labels arriving from elsewhere would: online accuracy and A/B rollouts."""
    truth = load_labels(labels) if isinstance(labels, str) else labels
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
            if truth is not None and len(truth) != n:
                raise UsageError(f"[workload] labels: {len(truth)} labels for {n} samples in {data}")
            try:
                rid, _ = m.run_with_id({k: v[i % n:i % n + 1] for k, v in arrays.items()})
                if truth is not None:
                    m.feedback(rid, truth[i % n].item())
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


def load_labels(path: str) -> Any:
    """One label per sample from a ``.npy`` (or the only array of an ``.npz``), flattened."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"[workload] labels: {path} is not a readable .npy/.npz file ({exc})") from exc
    if not isinstance(loaded, np.ndarray):
        with loaded:
            if len(loaded.files) != 1:
                raise DataError(f"[workload] labels: {path} must hold one array, not {', '.join(loaded.files)}")
            loaded = loaded[loaded.files[0]]
    if loaded.ndim == 2 and loaded.shape[1] == 1:
        loaded = loaded[:, 0]
    if loaded.ndim != 1 or loaded.dtype.kind not in "iuf":
        raise DataError(f"[workload] labels: {path} must be one number per sample, not {loaded.dtype} {loaded.shape}")
    return loaded


def _load(data: str, model: Any) -> tuple[dict[str, Any], list[str]]:
    from ..datafiles import load_inputs

    names = [s.name for s in model.inputs]
    return load_inputs(data, names), names
