"""Agent-shaped messages with explicit times for the alert and fleet-drift tests, and a clock to drive them."""

from __future__ import annotations

import itertools
import json
from typing import Any

from edgeops.fleet.alert_rules import parse_rules
from edgeops.fleet.store import Incoming

T0 = 1_765_000_000_000  # 2025-12-06, UTC ms
SEC = 1000
_ids = itertools.count()


def telemetry(device: str, seq: int, ts: int, *, fleet: str = "demo", p95: float = 5.0, count: int = 100,
              errors: int = 0, psi: float | None = 0.01, temperature: float | None = 50.0, throttled: Any = None,
              dropped: int = 0, interval_s: float = 10.0, labels: dict[str, str] | None = None,
              drift_inputs: dict[str, Any] | None = None, received: int | None = None) -> Incoming:
    """One telemetry message as the agent sends it (edgeops/agent/telemetry.py), received at ``received`` (default ts)."""
    health: dict[str, Any] = {"cpu_percent": 20.0, "temperature_c": temperature}
    if throttled is not None:
        health["throttled"] = throttled
    msg = {"ts": ts, "device": device, "fleet": fleet, "seq": seq, "id": f"{device}-{seq}-{next(_ids)}",
           "model": {"name": "digits", "version": "3", "sha256": "ab" * 32},
           "inference": {"count": count, "errors": errors, "rate_per_s": count / interval_s, "window_s": interval_s,
                         "total": count * seq, "total_errors": errors,
                         "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.2, "mean": p95 / 2, "max": p95 * 2}},
           "guardrails": {"enabled": False},
           "drift": {"enabled": True, "max_psi": psi, "inputs": drift_inputs or {}, "window_samples": count,
                     "window_s": interval_s, "skipped": {}},
           "health": health, "runtime": {"backend": "onnxruntime"}, "outbox": {"pending": 0, "dropped": dropped},
           "interval_s": interval_s}
    if labels is not None:
        msg["labels"] = labels
    return Incoming(f"edgeops/{fleet}/{device}/telemetry", json.dumps(msg).encode(), ts if received is None else received)


def status(device: str, state: str, received: int, *, fleet: str = "demo") -> Incoming:
    msg = {"state": state, "ts": received, "device": device, "fleet": fleet, "model": {"name": "digits", "version": "3"}}
    return Incoming(f"edgeops/{fleet}/{device}/status", json.dumps(msg).encode(), received)


def rules(**tables: dict[str, Any]):
    return parse_rules({"rules": tables})


class Clock:
    """``clock()`` in seconds, moved by hand (the engine's ``clock=``)."""

    def __init__(self, ms: int = T0):
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> int:
        self.ms += ms
        return self.ms
