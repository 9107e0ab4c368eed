"""Collect a fleet's state from the broker: retained ``status`` of every device plus its latest telemetry.

``FleetView`` subscribes to ``edgeops/<fleet>/+/status`` (retained, so every device that ever
connected answers at once) and ``edgeops/<fleet>/+/telemetry``, and keeps one row per device.
Duplicate telemetry (same ``id``, re-sent after a lost PUBACK) and older ``seq`` values are ignored;
a gap in ``seq`` is counted. Payloads are read with :func:`edgeops._json.loads` (bounded size and
depth, no NaN, no repeated keys); malformed ones are counted in ``malformed``, never raised, so a
hostile payload cannot stop the listener.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import _json
from ..errors import DataError


@dataclass
class DeviceRow:
    device: str
    state: str = "unknown"  # online | offline | unknown (telemetry seen, no status)
    status_ts: int | None = None
    model: dict[str, Any] = field(default_factory=dict)
    last_telemetry: dict[str, Any] | None = None
    last_seen: float | None = None  # time.time() when the last telemetry arrived
    telemetry_count: int = 0
    gaps: int = 0

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = now or time.time()
        t = self.last_telemetry or {}
        inf, health, drift = t.get("inference", {}), t.get("health", {}), t.get("drift", {})
        return {"device": self.device, "state": self.state, "model": self.model or t.get("model", {}),
                "telemetry_age_s": None if self.last_seen is None else round(now - self.last_seen, 1),
                "seq": t.get("seq"), "rate_per_s": inf.get("rate_per_s"),
                "p95_ms": (inf.get("latency_ms") or {}).get("p95"), "errors": inf.get("errors"),
                "max_psi": drift.get("max_psi"), "cpu_percent": health.get("cpu_percent"),
                "temperature_c": health.get("temperature_c"), "outbox_pending": (t.get("outbox") or {}).get("pending"),
                "telemetry_count": self.telemetry_count, "seq_gaps": self.gaps}


class FleetView:
    def __init__(self, fleet: str):
        self.fleet = fleet
        self.rows: dict[str, DeviceRow] = {}
        self.malformed = 0
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    @property
    def topics(self) -> list[str]:
        return [f"edgeops/{self.fleet}/+/status", f"edgeops/{self.fleet}/+/telemetry"]

    def feed(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "edgeops" or parts[1] != self.fleet:
            return
        device, kind = parts[2], parts[3]
        try:
            data = _json.loads(payload, what=topic, error=DataError) if payload else None
        except DataError:
            data = None
        if kind == "status" and not payload:
            return  # a cleared retained status
        if not isinstance(data, dict):
            self.malformed += 1
            return
        with self._lock:
            row = self.rows.setdefault(device, DeviceRow(device))
            if kind == "status":
                row.state = str(data.get("state", "unknown"))
                row.status_ts = data.get("ts")
                row.model = data.get("model") or row.model
            elif kind == "telemetry":
                self._telemetry(row, data)

    def _telemetry(self, row: DeviceRow, data: dict[str, Any]) -> None:
        mid, seq = data.get("id"), data.get("seq")
        if mid in self._ids:
            return  # a duplicate after a lost PUBACK
        if mid is not None:
            self._ids.add(mid)
        last = (row.last_telemetry or {}).get("seq")
        if isinstance(seq, int) and isinstance(last, int):
            if seq <= last:
                return
            row.gaps += seq - last - 1
        row.last_telemetry, row.last_seen = data, time.time()
        row.telemetry_count += 1
        if row.state == "unknown":
            row.state = "online"

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [r.to_dict(now) for _, r in sorted(self.rows.items())]


def listen(url: str, view: FleetView, **tls: Any) -> Any:
    """A started transport that feeds ``view`` with the fleet's status and telemetry (stop it when done)."""
    from ..agent.transport import MqttTransport

    t = MqttTransport(url, client_id=f"edgeops-fleet-{int(time.time() * 1000) % 10**9}", on_message=view.feed,
                      **tls)
    for topic in view.topics:
        t.subscribe(topic)
    t.start()
    return t


def collect(url: str, fleet: str, *, wait_s: float = 3.0, view: FleetView | None = None, **tls: Any) -> FleetView:
    """Listen for ``wait_s`` seconds and return what the fleet said (retained status arrives at once)."""
    view = view or FleetView(fleet)
    t = listen(url, view, **tls)
    try:
        if not t.wait_connected(min(wait_s + 5, 15)):
            from ..errors import UsageError

            raise UsageError(f"cannot connect to the broker at {url} ({t.last_error or 'no answer'})")
        time.sleep(wait_s)
    finally:
        t.stop()
    return view


def from_store(store: Any, fleet: str, now_ms: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``edgeops fleet status --db``: what the fleet server stored, shaped like :meth:`DeviceRow.to_dict`
    (plus ``labels``, ``last_seen`` and ``last_ts``; ``seq_gaps`` and ``telemetry_count`` are the broker view's)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    latest = store.latest_telemetry(fleet)
    rows = []
    for d in store.devices(fleet):
        t = latest.get(d["id"]) or {}
        model = {k: v for k, v in (("name", d.get("model_name")), ("version", d.get("model_version")),
                                   ("sha256", d.get("model_sha256"))) if v is not None}
        rows.append({"device": d["id"], "state": d["state"], "model": model, "labels": d.get("labels") or {},
                     "telemetry_age_s": None if d.get("last_seen") is None else round((now - d["last_seen"]) / 1000, 1),
                     "last_seen": d.get("last_seen"), "last_ts": d.get("last_ts"), "seq": d.get("last_seq"),
                     "rate_per_s": t.get("rate_per_s"), "p95_ms": t.get("p95_ms"), "errors": t.get("errors"),
                     "max_psi": t.get("max_psi"), "cpu_percent": t.get("cpu_percent"),
                     "temperature_c": t.get("temperature_c"), "outbox_pending": t.get("outbox_pending")})
    return rows
