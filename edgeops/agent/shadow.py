"""Shadow mode: a candidate model runs next to the active one on a sample of live inputs, and is compared.

The active model answers as always; :meth:`Shadow.offer` (called from its result observer, in the
thread that ran it) takes one run in ``1 / rate`` (evenly spread, no random draw), copies
its inputs and puts ``(inputs, active outputs, active latency)`` on a bounded queue without waiting.
A full queue drops the sample and counts it (``dropped``): the active answer is never delayed by the
candidate. One background thread runs the candidate on what the queue holds and compares:

* ``kind`` ``"top1"`` (a classifier: the first output has several scores per row, or an integer
  output holds the class): ``agreement`` is the share of rows whose top-1 class is the same;
* ``kind`` ``"cosine"`` (anything else): ``agreement`` is the mean cosine similarity of the first
  outputs (exactly 1.0 for equal outputs), and ``max_abs_err`` the largest absolute difference.

``latency_ratio`` is the candidate's mean latency over the active one's, on the same samples;
``errors`` counts the candidate's failed runs. Telemetry's ``shadow`` block is :meth:`Shadow.snapshot`
(window counts, reset with each message), plus ``total`` since the shadow started.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:
    from ..runtime import Model

__all__ = ["Shadow", "check_rate"]

log = logging.getLogger(__name__)
QUEUE = 16  # samples waiting for the candidate (each holds a copy of its inputs); past it they are dropped, counted


def check_rate(rate: Any, where: str = "shadow_rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise UsageError(f"{where} must be a share of the inputs in (0, 1], e.g. 0.1, not {rate!r}")
    return float(rate)


def compare_kind(outputs: dict[str, np.ndarray]) -> str:
    """``"top1"`` for a classifier's outputs, ``"cosine"`` otherwise (module docstring)."""
    if any(np.asarray(a).dtype.kind in "iu" and np.asarray(a).size == 1 for a in outputs.values()):
        return "top1"
    first = np.asarray(next(iter(outputs.values())))
    return "top1" if first.ndim >= 2 and first.shape[-1] > 1 else "cosine"


def _classes(outputs: dict[str, np.ndarray]) -> np.ndarray:
    for a in outputs.values():
        a = np.asarray(a)
        if a.dtype.kind in "iu" and a.size == 1:
            return a.reshape(-1)
    first = np.asarray(next(iter(outputs.values())))
    return np.argmax(first.reshape(-1, first.shape[-1]), axis=1)


class Shadow:
    """A candidate ``model`` (version ``version``) shadowing the active one; see the module docstring."""

    def __init__(self, model: Model, version: str, rate: float = 0.1, *, queue_size: int = QUEUE,
                 path: str | None = None):
        self.model = model
        self.version = str(version)
        self.rate = check_rate(rate)
        self.path = path
        self._queue: queue.Queue[tuple[dict[str, np.ndarray], dict[str, np.ndarray], int] | None] = \
            queue.Queue(maxsize=queue_size)
        self._runs = self._taken = 0  # runs offered, and sampled: one in 1 / rate, evenly
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.total = 0  # compared since start
        self._reset()

    def _reset(self) -> None:
        self.count = 0
        self.dropped = 0
        self.errors = 0
        self.rows = 0
        self.agree = 0.0
        self.max_abs_err = 0.0
        self.kind: str | None = None
        self.active_ns = 0
        self.shadow_ns = 0
        self.last_error: str | None = None

    # -- the active model's thread --------------------------------------------------------------

    def offer(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray], active_ns: int) -> None:
        """One run of the active model; a sampled one is queued for the candidate, never waited for."""
        self._runs += 1
        if int(self._runs * self.rate + 1e-9) == self._taken:
            return
        self._taken += 1
        try:
            self._queue.put_nowait(({k: np.array(v, copy=True) for k, v in feeds.items()}, outputs, active_ns))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    # -- the worker -----------------------------------------------------------------------------

    def start(self) -> Shadow:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="edgeops-agent-shadow", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued sample was compared (tests, benchmarks); True if it was in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            try:
                if item is not None:
                    self._compare(*item)
            except Exception as exc:  # noqa: BLE001 - a bug in one comparison must not end the shadow
                log.exception("edgeops shadow: comparing one sample failed")
                with self._lock:
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._queue.task_done()

    def _compare(self, feeds: dict[str, np.ndarray], active: dict[str, np.ndarray], active_ns: int) -> None:
        from ..errors import EdgeOpsError

        t0 = time.perf_counter_ns()
        try:
            mine = self.model.run(feeds)
        except EdgeOpsError as exc:
            with self._lock:
                self.errors += 1
                self.last_error = str(exc)[:300]
            return
        ns = time.perf_counter_ns() - t0
        kind = compare_kind(active)
        if kind == "top1":
            a, b = _classes(active), _classes(mine)
            rows = int(a.size)
            agree = float(np.sum(a == b)) if a.size == b.size else 0.0
            err = 0.0
        else:
            a = np.asarray(next(iter(active.values())), dtype=np.float64).reshape(-1)
            b = np.asarray(next(iter(mine.values())), dtype=np.float64).reshape(-1)
            rows = 1
            if a.size != b.size:
                agree, err = 0.0, float("inf")
            elif np.array_equal(a, b):
                agree, err = 1.0, 0.0
            else:
                norm = float(np.linalg.norm(a) * np.linalg.norm(b))
                agree = float(np.clip(np.dot(a, b) / norm, -1.0, 1.0)) if norm > 0 else 0.0
                err = float(np.max(np.abs(a - b)))
        with self._lock:
            self.count += 1
            self.total += 1
            self.rows += rows
            self.agree += agree
            self.kind = kind
            self.max_abs_err = max(self.max_abs_err, err)
            self.active_ns += active_ns
            self.shadow_ns += ns

    # -- telemetry ------------------------------------------------------------------------------

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        """The ``shadow`` telemetry block (module docstring); ``agreement``/``latency_ratio`` None before a sample."""
        with self._lock:
            snap = {"enabled": True, "version": self.version, "rate": self.rate, "count": self.count,
                    "dropped": self.dropped, "errors": self.errors, "kind": self.kind,
                    "agreement": self.agree / self.rows if self.rows else None,
                    "max_abs_err": self.max_abs_err if self.kind == "cosine" and self.count else None,
                    "latency_ratio": self.shadow_ns / self.active_ns if self.active_ns else None,
                    "total": self.total, "alive": self.alive}
            if self.last_error:
                snap["last_error"] = self.last_error
            if reset:
                self._reset()
        return snap
