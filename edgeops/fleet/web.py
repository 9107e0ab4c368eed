"""The fleet page and its JSON API: a stdlib :class:`~http.server.ThreadingHTTPServer` over a fleet store.

Routes (all ``GET``; times are UTC milliseconds)::

    /api/devices[?fleet=F]                            one object per device: state, model, age, p95, ...
    /api/devices/<id>                                 that object for one device
    /api/devices/<id>/telemetry?since=MS[&until=MS][&limit=N]
                                                      the stored messages as sent, oldest first
                                                      (since <= ts < until; since defaults to 0)
    /api/devices/<id>/series?since=MS[&until=MS][&points=N]
                                                      the numbers the charts plot (one row per message,
                                                      or per time bucket when there are more than N)
    /api/alerts[?state=firing|resolved]               alerts, firing first
    /api/fleet                                        counts and fleet-level drift (PSI, fleet and per label;
                                                      ``outputs``: the output drift the same way)
    /api/ab?[since=MS][&until=MS][&a=V&b=V][&select=label=value]
                                                      online accuracy per model version with Wilson
                                                      intervals, per label, and acc_b - acc_a with
                                                      Newcombe's interval (edgeops.fleet.abstats);
                                                      since defaults to an hour ago, a/b to the two
                                                      versions with the most labels
    /api/rollouts[?limit=N]                           the fleet's rollouts, newest first: state, phase, stage,
                                                      counts of devices per OTA state, gates (metric, op,
                                                      threshold, text, value, ok), reason (why it halted)
    /api/rollouts/<id>                                one rollout, with its devices
                                                      (edgeops.fleet.rollout.rollout_status)
    /  /device/<id>  /alerts                          the HTML pages (static/, no CDN, SVG charts)
    /static/<file>                                    the page's script and stylesheet

The pages are one HTML shell (``static/page.html``) and ``static/app.js``, which polls the API (the
device list every 2 s) and draws the charts as SVG polylines whose ``data-ts``/``data-values`` (and
one ``circle`` per point with ``data-ts``/``data-value``) are the numbers plotted; the stylesheet
turns the tables into cards below 700 px. Below the device list, a Rollouts panel (polled every 3 s,
hidden without rollouts) lists ``/api/rollouts`` and details the newest or the clicked one: devices per
OTA state, the gates and the reason it halted. They are served with a Content-Security-Policy that allows
only this server's own script and style.

A device is ``offline`` when its retained status says so (the broker's last will) or when its newest
telemetry is older than the offline threshold: ``offline_after_s`` when given, else that of the
``offline`` rules of the alert engine (``alerts_source``) that watch the device, else three of the
device's own ``interval_s``. Bad parameters answer 400 and unknown devices 404,
both as ``{"error": ...}``; an unexpected error is logged here and answers 500 without a traceback.
The store is only read, through its public methods, so any :class:`~edgeops.fleet.store.Store` works.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

log = logging.getLogger(__name__)

OFFLINE_INTERVALS = 3  # telemetry older than this many intervals: offline (without an offline rule)
DEFAULT_INTERVAL_S = 10.0  # the agent's default, for a device that never said its interval
MAX_LIMIT = 100_000
DRIFT_WINDOW_MS = 3_600_000  # /api/fleet: drift of the last hour's histograms ...
DRIFT_REFRESH_S = 30.0  # ... merged again at most this often (it reads every device's telemetry)
SERIES_FIELDS = ("p95_ms", "rate_per_s", "errors", "count", "max_psi", "temperature_c", "cpu_percent")
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8"}
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'"


class HTTPError(Exception):
    """An answer other than 200: its status and the message sent to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def now_ms() -> int:
    return int(time.time() * 1000)


# -- reading the store ----------------------------------------------------------------------------------


def offline_rules(alerts_source: Any) -> list[Any]:
    """The ``offline`` rules of an alert engine: an :class:`~edgeops.fleet.alerts.AlertLoop` (its
    ``engine``), an :class:`~edgeops.fleet.alerts.AlertEngine` (its ``rules``) or a list of rules,
    :class:`~edgeops.fleet.alert_rules.Rule` objects or dicts (``kind``, ``threshold`` or ``after``)."""
    source = getattr(alerts_source, "engine", alerts_source)
    rules = getattr(source, "rules", source)
    if not isinstance(rules, (list, tuple)):
        return []
    return [r for r in rules if _get(r, "kind") == "offline"]


def _get(rule: Any, key: str) -> Any:
    return rule.get(key) if isinstance(rule, dict) else getattr(rule, key, None)


def offline_threshold_s(rules: list[Any], labels: dict[str, Any] | None) -> float | None:
    """Seconds without telemetry after which the offline rules that watch a device with these labels
    fire (threshold plus ``for``; the smallest of several), or None when no offline rule watches it."""
    found: list[float] = []
    for rule in rules:
        selects = getattr(rule, "selects", None)
        if callable(selects) and not selects(labels or {}):
            continue
        threshold = _get(rule, "threshold") if _get(rule, "threshold") is not None else _get(rule, "after")
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            found.append(float(threshold) + float(_get(rule, "for_ms") or 0) / 1000.0)
    return min(found) if found else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    payload = row.get("payload")
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = None
    return payload if isinstance(payload, dict) else {}


def device_summary(device: dict[str, Any], latest: dict[str, Any] | None, firing: list[str], now: int,
                   offline_after_s: float | None) -> dict[str, Any]:
    """One row of ``/api/devices`` from the store's device row and its newest telemetry row;
    ``offline_after_s`` None: three of the device's own intervals."""
    latest = latest or {}
    payload = _payload(latest) if latest else {}
    last_seen = device.get("last_seen") or latest.get("received")
    age_s = None if last_seen is None else round(max(now - int(last_seen), 0) / 1000.0, 1)
    interval = _num(payload.get("interval_s")) or DEFAULT_INTERVAL_S
    threshold = offline_after_s if offline_after_s is not None else OFFLINE_INTERVALS * interval
    status = str(device.get("state") or "unknown")
    if status == "offline" or (age_s is not None and age_s > threshold) or (age_s is None and status != "online"):
        state = "offline"
    else:
        state = "online"
    count, errors = _num(latest.get("count")), _num(latest.get("errors"))
    error_rate = None if count is None or errors is None else (errors / count if count else float(errors > 0))
    raw_model = payload.get("model")
    model: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
    return {
        "id": device.get("id"), "fleet": device.get("fleet"), "state": state, "status": status,
        "model": {"name": device.get("model_name") or model.get("name"),
                  "version": device.get("model_version") or model.get("version"),
                  "sha256": device.get("model_sha256") or model.get("sha256")},
        "first_seen": device.get("first_seen"), "last_seen": last_seen, "telemetry_age_s": age_s,
        "offline_after_s": threshold, "interval_s": interval, "seq": latest.get("seq"),
        "p95_ms": _num(latest.get("p95_ms")), "rate_per_s": _num(latest.get("rate_per_s")),
        "errors": errors, "error_rate": None if error_rate is None else round(error_rate, 6),
        "max_psi": _num(latest.get("max_psi")), "temperature_c": _num(latest.get("temperature_c")),
        "cpu_percent": _num(latest.get("cpu_percent")), "throttled": latest.get("throttled"),
        "labels": device.get("labels") or {}, "backend": device.get("backend"), "active_alerts": sorted(firing),
    }


class FleetAPI:
    """What the routes answer, as plain data (the HTTP handler only parses and serialises)."""

    def __init__(self, store: Any, fleet: str, *, alerts_source: Any = None,
                 fleet_drift: Callable[..., Any] | None = None, offline_after_s: float | None = None):
        self.store, self.fleet = store, fleet
        self.alerts_source, self.fleet_drift = alerts_source, fleet_drift
        self._offline_after_s = offline_after_s
        self._drift_cache: tuple[float, Any] | None = None
        self._drift_lock = threading.Lock()
        self._ab_cache: dict[Any, tuple[float, dict[str, Any]]] = {}

    def offline_after_s(self, labels: dict[str, Any] | None) -> float | None:
        """The offline threshold of a device: the one given, else its offline rules', else None."""
        if self._offline_after_s is not None:
            return self._offline_after_s
        return offline_threshold_s(offline_rules(self.alerts_source), labels)

    def _firing(self, fleet: str) -> dict[str, list[str]]:
        firing: dict[str, list[str]] = {}
        for alert in self.store.alerts(fleet, state="firing"):
            firing.setdefault(alert.get("device") or "", []).append(str(alert.get("rule")))
        return firing

    def devices(self, fleet: str | None = None) -> list[dict[str, Any]]:
        fleet = fleet or self.fleet
        latest = self.store.latest_telemetry(fleet)
        firing = self._firing(fleet)
        now = now_ms()
        rows = [device_summary(d, latest.get(d["id"]), firing.get(d["id"], []), now, self.offline_after_s(d.get("labels")))
                for d in self.store.devices(fleet)]
        return sorted(rows, key=lambda r: str(r["id"]))

    def device(self, device: str) -> dict[str, Any]:
        row = self.store.device(self.fleet, device)
        if row is None:
            raise HTTPError(404, f"no device {device!r} in fleet {self.fleet!r}")
        latest = self.store.latest_telemetry(self.fleet).get(device)
        return device_summary(row, latest, self._firing(self.fleet).get(device, []), now_ms(),
                              self.offline_after_s(row.get("labels")))

    def _rows(self, device: str, since: int, until: int | None, limit: int) -> list[dict[str, Any]]:
        self.device(device)  # 404 first
        return self.store.telemetry(self.fleet, device, since_ms=since, until_ms=until, limit=limit)

    def telemetry(self, device: str, since: int, until: int | None, limit: int) -> list[dict[str, Any]]:
        return [_payload(r) for r in self._rows(device, since, until, limit)]

    def series(self, device: str, since: int, until: int | None, points: int) -> dict[str, Any]:
        """The charts' numbers: every row while there are at most ``points``, else per time bucket the
        newest ts and the largest value of each field (a spike stays visible), marked ``downsampled``."""
        rows: list[dict[str, Any]] = []
        seen: set[Any] = set()
        cursor = since
        while len(rows) < MAX_LIMIT * 10:  # page through the store: its reads are capped
            page = self._rows(device, cursor, until, MAX_LIMIT)
            fresh = [r for r in page if r.get("id") not in seen]
            rows += fresh
            if len(page) < MAX_LIMIT or not fresh:
                break
            cursor = int(page[-1]["ts"])
            seen = {r.get("id") for r in page if r["ts"] == cursor}
        out = [{"ts": r["ts"], "seq": r.get("seq"), "id": r.get("id"),
                **{f: _num(r.get(f)) for f in SERIES_FIELDS}} for r in rows]
        if len(out) <= points:
            return {"device": device, "since": since, "until": until, "downsampled": False, "points": out}
        lo, hi = out[0]["ts"], out[-1]["ts"]
        width = max((hi - lo) / points, 1)
        buckets: dict[int, dict[str, Any]] = {}
        for p in out:
            b = buckets.setdefault(min(int((p["ts"] - lo) / width), points - 1), {"ts": p["ts"], "n": 0})
            b["ts"], b["n"] = p["ts"], b["n"] + 1
            for f in SERIES_FIELDS:
                if p[f] is not None:
                    b[f] = p[f] if b.get(f) is None else max(b[f], p[f])
        merged = [{"ts": b["ts"], "n": b["n"], **{f: b.get(f) for f in SERIES_FIELDS}} for _, b in sorted(buckets.items())]
        return {"device": device, "since": since, "until": until, "downsampled": True, "points": merged}

    def alerts(self, state: str | None) -> list[dict[str, Any]]:
        if state not in (None, "firing", "resolved"):
            raise HTTPError(400, f"state must be firing or resolved, not {state!r}")
        rows = self.store.alerts(self.fleet, state=state)
        keys = ("fleet", "rule", "device", "state", "since", "resolved_at", "value", "threshold", "message", "updated")
        out = [_finite({k: a.get(k) for k in keys}) for a in rows]
        return sorted(out, key=lambda a: (a["state"] != "firing", -(a["since"] or 0)))

    def drift(self) -> Any:
        """Fleet-level drift (PSI of the merged histograms, for the fleet and per label), computed at most
        every ``DRIFT_REFRESH_S``: ``fleet_drift(store, fleet)`` when given, else
        :func:`edgeops.fleet.fleetdrift.fleet_drift` over the last ``DRIFT_WINDOW_MS``."""
        with self._drift_lock:
            if self._drift_cache is not None and time.monotonic() - self._drift_cache[0] < DRIFT_REFRESH_S:
                return self._drift_cache[1]
            try:
                if self.fleet_drift is not None:
                    drift = self.fleet_drift(self.store, self.fleet)
                else:
                    from .fleetdrift import fleet_drift

                    drift = fleet_drift(self.store, self.fleet, DRIFT_WINDOW_MS)
                    outputs = fleet_drift(self.store, self.fleet, DRIFT_WINDOW_MS, kind="outputs")
                    drift["outputs"] = {"fleet": outputs["fleet"], "by_label": outputs["by_label"],
                                        "devices": outputs["devices"]}
            except Exception as e:  # fleet drift is an extra: the counts still answer
                log.exception("fleet drift failed")
                drift = {"error": f"{type(e).__name__}: {e}"}
            self._drift_cache = (time.monotonic(), drift)
            return drift

    def ab(self, since: int | None, until: int | None, a: str | None, b: str | None,
           select: dict[str, list[str]]) -> dict[str, Any]:
        """``/api/ab``: ``{"versions": accuracy_by_version(...), "diff": compare(a, b) | None, "since", "until"}``.

        It reads every labelled window of the span, so an answer is kept ``DRIFT_REFRESH_S`` per query (a
        page that polls does not read a fleet's hour of telemetry each time)."""
        key = (since, until, a, b, tuple(sorted((k, tuple(v)) for k, v in select.items())))
        with self._drift_lock:
            held = self._ab_cache.get(key)
            if held is not None and time.monotonic() - held[0] < DRIFT_REFRESH_S:
                return held[1]
        answer = self._ab(since, until, a, b, select)
        with self._drift_lock:
            if len(self._ab_cache) > 64:
                self._ab_cache.clear()
            self._ab_cache[key] = (time.monotonic(), answer)
        return answer

    def _ab(self, since: int | None, until: int | None, a: str | None, b: str | None,
            select: dict[str, list[str]]) -> dict[str, Any]:
        from .abstats import accuracy_by_version, compare

        since = now_ms() - DRIFT_WINDOW_MS if since is None else since
        versions = accuracy_by_version(self.store, self.fleet, since, until, select or None)
        ranked = sorted(versions, key=lambda v: (-versions[v]["n"], v))
        a = a or (ranked[0] if ranked else None)
        b = b or next((v for v in ranked if v != a), None)
        diff = compare(versions, a, b) if a is not None and b is not None else None
        return _finite({"versions": versions, "diff": diff, "since": since, "until": until})

    def rollouts(self, limit: int) -> list[dict[str, Any]]:
        """``/api/rollouts``: what :func:`~edgeops.fleet.rollout.rollout_status` says of each of the fleet's newest
        ``limit`` rollouts, without the per-device list."""
        from .rollout import rollout_status

        out = []
        for r in self.store.rollouts(self.fleet, limit=limit):
            st = rollout_status(self.store, r["id"])
            if st is not None:
                st.pop("devices", None)
                out.append(st)
        return _finite(out)

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        """``/api/rollouts/<id>``: the rollout's status with its devices; 404 when this fleet has none by that id."""
        from .rollout import rollout_status

        st = rollout_status(self.store, rollout_id)
        if st is None or st["fleet"] != self.fleet:
            raise HTTPError(404, f"no rollout {rollout_id!r} in fleet {self.fleet!r}")
        return _finite(st)

    def fleet_summary(self) -> dict[str, Any]:
        devices = self.devices()
        firing = self.store.alerts(self.fleet, state="firing")
        return {"fleet": self.fleet, "now": now_ms(),
                "counts": {"devices": len(devices), "online": sum(d["state"] == "online" for d in devices),
                           "offline": sum(d["state"] == "offline" for d in devices), "firing_alerts": len(firing)},
                "drift": _finite(self.drift())}


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


# -- HTTP ------------------------------------------------------------------------------------------------


def _last(query: dict[str, list[str]], name: str) -> str | None:
    """The last value of a query parameter given several times, or None."""
    values = query.get(name)
    return values[-1] if values else None


def _int_param(query: dict[str, list[str]], name: str, default: int | None, lo: int = 0,
               hi: int | None = None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, not {values[-1]!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise HTTPError(400, f"{name} must be in {lo}..{hi if hi is not None else 'inf'}, not {value}")
    return value


def static_file(name: str) -> bytes:
    """A file of the page from the package data (``edgeops/fleet/static``)."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*\.(js|css|svg|html)", name):
        raise HTTPError(404, f"no static file {name!r}")
    try:
        return (resources.files("edgeops.fleet") / "static" / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise HTTPError(404, f"no static file {name!r}") from None


def render_page(page: str, fleet: str, device: str = "") -> bytes:
    titles = {"devices": f"fleet {fleet}", "device": f"{device} · fleet {fleet}", "alerts": f"alerts · fleet {fleet}"}
    text = static_file("page.html").decode()
    for key, value in {"title": titles[page], "page": page, "fleet": fleet, "device": device}.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text.encode()


def make_http_server(store: Any, fleet: str, host: str = "127.0.0.1", port: int = 8080, *,
                     alerts_source: Any = None, fleet_drift: Callable[..., Any] | None = None,
                     offline_after_s: float | None = None) -> ThreadingHTTPServer:
    """The HTTP server of the page and API; run it with ``serve_forever()`` (port 0 picks a free port:
    read ``server.server_address``). ``alerts_source``: the alert engine (or loop, or its rules) whose
    offline rules say when a device is offline; ``fleet_drift(store, fleet)`` replaces the default
    fleet-level drift of ``/api/fleet``; ``offline_after_s`` overrides both offline thresholds."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    api = FleetAPI(store, fleet, alerts_source=alerts_source, fleet_drift=fleet_drift,
                   offline_after_s=offline_after_s)

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeops-fleet"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            try:
                status, ctype, body = self.route()
            except HTTPError as e:
                status, ctype, body = e.status, "application/json", _json_bytes({"error": e.message})
                if not self.path.startswith("/api/") and e.status == 404:
                    ctype, body = "text/html; charset=utf-8", _error_page(e.message)
            except Exception:  # never a traceback to the client
                log.exception("GET %s failed", self.path)
                status, ctype, body = 500, "application/json", _json_bytes({"error": "internal error (see the server log)"})
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if ctype.startswith("text/html"):
                self.send_header("Content-Security-Policy", CSP)
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self) -> None:
            body = _json_bytes({"error": f"{self.command} is not allowed: the fleet API is read-only"})
            self.send_response(405)
            self.send_header("Allow", "GET")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        def route(self) -> tuple[int, str, bytes]:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            parts = [unquote(p) for p in url.path.split("/") if p]
            js = "application/json"
            if parts[:1] == ["api"]:
                rest = parts[1:]
                if rest == ["devices"]:
                    return 200, js, _json_bytes(api.devices(_last(query, "fleet")))
                if len(rest) == 2 and rest[0] == "devices":
                    return 200, js, _json_bytes(api.device(rest[1]))
                if len(rest) == 3 and rest[0] == "devices" and rest[2] in ("telemetry", "series"):
                    since = _int_param(query, "since", 0) or 0
                    until = _int_param(query, "until", None)
                    if until is not None and since is not None and until < since:
                        raise HTTPError(400, f"until ({until}) is before since ({since})")
                    if rest[2] == "telemetry":
                        limit = _int_param(query, "limit", 10_000, 1, MAX_LIMIT) or 10_000
                        return 200, js, _json_bytes(api.telemetry(rest[1], since, until, limit))
                    points = _int_param(query, "points", 2000, 10, 20_000) or 2000
                    return 200, js, _json_bytes(api.series(rest[1], since, until, points))
                if rest == ["alerts"]:
                    return 200, js, _json_bytes(api.alerts(_last(query, "state") or None))
                if rest == ["fleet"]:
                    return 200, js, _json_bytes(api.fleet_summary())
                if rest == ["ab"]:
                    select: dict[str, list[str]] = {}
                    for item in query.get("select", []):
                        name, eq, value = item.partition("=")
                        if not eq or not name:
                            raise HTTPError(400, f"select must be label=value, not {item!r}")
                        select.setdefault(name, []).append(value)
                    return 200, js, _json_bytes(api.ab(_int_param(query, "since", None), _int_param(query, "until", None),
                                                       (query.get("a") or [""])[-1] or None, (query.get("b") or [""])[-1] or None,
                                                       select))
                if rest == ["rollouts"]:
                    return 200, js, _json_bytes(api.rollouts(_int_param(query, "limit", 50, 1, 1000) or 50))
                if len(rest) == 2 and rest[0] == "rollouts":
                    return 200, js, _json_bytes(api.rollout(rest[1]))
                raise HTTPError(404, f"no API route {url.path}")
            html_type = "text/html; charset=utf-8"
            if not parts:
                return 200, html_type, render_page("devices", fleet)
            if parts == ["alerts"]:
                return 200, html_type, render_page("alerts", fleet)
            if len(parts) == 2 and parts[0] == "device":
                api.device(parts[1])  # 404 for a device the store does not know
                return 200, html_type, render_page("device", fleet, parts[1])
            if len(parts) == 2 and parts[0] == "static":
                suffix = parts[1][parts[1].rfind("."):]
                return 200, STATIC_TYPES.get(suffix, "application/octet-stream"), static_file(parts[1])
            if parts == ["favicon.ico"]:
                raise HTTPError(404, "no favicon")
            raise HTTPError(404, f"no page {url.path}")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False, default=str).encode()


def _error_page(message: str) -> bytes:
    return (f'<!doctype html><meta charset="utf-8"><title>not found</title><link rel="stylesheet" '
            f'href="/static/style.css"><main><h1>Not found</h1><p>{html.escape(message)}</p>'
            f'<p><a href="/">all devices</a></p></main>').encode()
