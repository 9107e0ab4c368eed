"""Helpers of the page's tests: agent-shaped messages written through the store, and the HTTP server in a thread."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def telemetry(device: str, fleet: str, seq: int, ts: int, *, p95: float = 1.0, rate: float = 2.0, count: int = 20,
              errors: int = 0, psi: float | None = 0.05, temp: float | None = 50.0, cpu: float = 10.0,
              interval_s: float = 10.0, version: str = "3", labels: dict[str, str] | None = None,
              counts: list[float] | None = None) -> dict[str, Any]:
    """A telemetry message shaped like the agent's (edgeops/agent/telemetry.py)."""
    msg: dict[str, Any] = {
        "ts": ts, "device": device, "fleet": fleet, "seq": seq, "id": uuid.uuid4().hex,
        "model": {"name": "digits", "version": version, "sha256": "ab" * 32},
        "inference": {"count": count, "errors": errors, "rate_per_s": rate, "window_s": interval_s, "total": seq * count,
                      "total_errors": 0, "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.2, "mean": p95 / 2,
                                                        "max": p95 * 1.5}},
        "drift": {"enabled": psi is not None, "max_psi": psi},
        "health": {"cpu_percent": cpu, "temperature_c": temp, "throttled": False},
        "runtime": {"backend": "onnxruntime"}, "outbox": {"pending": 0, "dropped": 0}, "interval_s": interval_s,
    }
    if labels:
        msg["labels"] = labels
    if counts is not None:  # the window's histogram of one input against a flat reference
        msg["drift"]["inputs"] = {"x": {"ref": "r1", "reference": [0.25] * len(counts), "counts": counts}}
    return msg


def incoming(topic: str, message: dict[str, Any], received_ms: int) -> Any:
    from edgeops.fleet.store import Incoming

    return Incoming(topic=topic, payload=json.dumps(message).encode(), received_ms=received_ms)


def write(store: Any, fleet: str, messages: list[dict[str, Any]], *, delay_ms: int = 40) -> None:
    """Store telemetry messages as the collector would (received ``delay_ms`` after their ts)."""
    store.write_batch([incoming(f"edgeops/{fleet}/{m['device']}/telemetry", m, m["ts"] + delay_ms) for m in messages])


def write_status(store: Any, fleet: str, device: str, state: str, ts: int | None = None) -> None:
    ts = ts or now_ms()
    store.write_batch([incoming(f"edgeops/{fleet}/{device}/status", {"state": state, "ts": ts,
                                                                    "model": {"name": "digits", "version": "3"}}, ts)])


class Site:
    """An HTTP client of the page's server at ``url``: ``get(path)`` -> (status, headers, body), ``json(path)``."""

    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, method: str = "GET") -> tuple[int, Any, bytes]:
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path: str) -> tuple[int, Any]:
        status, _, body = self.get(path)
        return status, json.loads(body)



class Served(Site):
    """``make_http_server`` serving in a daemon thread."""

    def __init__(self, store: Any, fleet: str, **kwargs: Any):
        from edgeops.fleet.web import make_http_server

        self.server = make_http_server(store, fleet, "127.0.0.1", 0, **kwargs)
        super().__init__(f"http://127.0.0.1:{self.server.server_address[1]}")
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
