"""The telemetry message: one JSON object per interval, the fields DESIGN.md and the dashboards read.

``seq`` and ``id`` are added by the outbox when the message is queued; ``ts`` is UTC milliseconds.
Latency and rate describe the window since the previous message (the model's statistics are reset
each time); ``total`` counts since the agent started. Non-finite numbers (no inference in the
window yet) become null in the JSON.

``labels`` are the device's labels (``[device] labels`` in agent.toml, ``{}`` when none), also in the
retained status message: the fleet side keeps them per device and groups by them.

``health.threads`` is {thread: alive} for the agent's threads (telemetry, sender, network, ota, a
workload) and ``health.thread_restarts`` how often each was started again after it ended.
``outbox.dropped`` counts every message lost: dropped by the outbox's bounds (age, size) and
``dropped_by_write_error``, those the outbox could not store (a full disk) since the agent started.

``output_drift`` is shaped like ``drift`` with ``outputs`` and ``classes`` in place of ``inputs``
(:mod:`edgeops.monitor.output_drift`); ``shadow`` the shadow candidate's comparison with the model
(:mod:`.shadow`, ``{"enabled": false}`` without one); ``feedback`` the labelled predictions of the
window per model version, ``{version: {"n", "correct", "abs_err_sum"}}`` (:mod:`.online`), and
``feedback_unmatched`` the labels for runs no longer kept, since start.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..monitor.drift import DriftMonitor
    from ..runtime import Model
    from .outbox import Outbox


class TelemetrySource(Protocol):
    """What a telemetry message is built from (:class:`~edgeops.agent.Agent` is one)."""

    device: str
    fleet: str
    labels: dict[str, str]  # the device's labels ([device] labels), in every message
    model: Model | None
    model_info: dict[str, Any]  # name, version, sha256
    drift: DriftMonitor | None
    interval_s: float
    store_dir: str  # its disk is reported in health
    started: float  # time.time() at start: the uptime
    totals: dict[str, int]  # inferences since start: "count", "errors"; each message adds its window
    restarts: dict[str, int]  # threads started again
    outbox: Outbox
    dropped_by_write_error: int

    def threads(self) -> dict[str, bool]: ...


def build_telemetry(agent: TelemetrySource) -> dict[str, Any]:
    from ..runtime.model import runtime_info

    model = agent.model
    message: dict[str, Any] = {
        "ts": int(time.time() * 1000), "device": agent.device, "fleet": agent.fleet, "model": dict(agent.model_info),
        "inference": _inference(agent), "guardrails": _guardrails(model), "drift": _drift(agent),
        "health": _health(agent), "runtime": runtime_info(model),
        "outbox": _outbox(agent), "interval_s": agent.interval_s, "labels": dict(getattr(agent, "labels", {})),
    }
    online = getattr(agent, "online", None)  # an Online (edgeops.agent.online); other sources may have none
    if online is not None:
        message.update(online.telemetry())
    return message


def _inference(agent: TelemetrySource) -> dict[str, Any]:
    model = agent.model
    if model is None:
        return {"count": 0, "errors": 0, "rate_per_s": 0.0, "latency_ms": {}, "total": 0}
    snap = model.stats.snapshot(reset=True)
    totals = agent.totals
    totals["count"] += snap["count"]
    totals["errors"] += snap["errors"]
    lat = snap["latency_ms"]
    return {"count": snap["count"], "errors": snap["errors"], "rate_per_s": snap["rate_per_s"],
            "window_s": snap["window_s"], "total": totals["count"], "total_errors": totals["errors"],
            "latency_ms": {k: lat[k] for k in ("p50", "p95", "p99", "mean", "max")}}


def _guardrails(model: Model | None) -> dict[str, Any]:
    g = getattr(model, "guardrails", None)
    if g is None:
        return {"enabled": False}
    snap = g.snapshot()
    return {"enabled": True, "total_values": snap["total_values"],
            "inputs": {k: v for k, v in snap["inputs"].items()}, "outputs": {k: v for k, v in snap["outputs"].items()}}


def _drift(agent: TelemetrySource) -> dict[str, Any]:
    if agent.drift is None:
        return {"enabled": False, "reason": "no reference profile next to the model"}
    return {"enabled": True, **agent.drift.snapshot(reset=True)}


def _health(agent: TelemetrySource) -> dict[str, Any]:
    from .health import health

    return {**health(agent.store_dir, started=agent.started), "threads": agent.threads(),
            "thread_restarts": dict(agent.restarts)}


def _outbox(agent: TelemetrySource) -> dict[str, Any]:
    s = agent.outbox.stats()
    unwritten = agent.dropped_by_write_error
    return {"pending": s["pending"], "dropped": s["dropped"] + unwritten, "dropped_by_write_error": unwritten}
