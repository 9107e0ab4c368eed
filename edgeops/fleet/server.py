"""``edgeops fleet serve``: one process that collects, stores, evaluates alerts and serves the page.

:class:`FleetServer` (``FleetServer(ServerOptions(broker=..., fleet=..., db=...)).start()``) runs:

* the :class:`~edgeops.fleet.collector.Collector` into the :class:`~edgeops.fleet.store.Store` of
  ``db`` (sqlite file or ``postgresql://``), acknowledging each MQTT message after its commit;
* periodic loops, each in its own thread (:meth:`FleetServer.add_loop`): retention (``trim`` every
  ``trim_every_s``) and, when :mod:`edgeops.fleet.alerts` is there, the alert evaluation every
  ``alerts_every_s`` (``make_alert_loop(store, fleet, rules_path, broker_url, webhook_url, **tls)``);
* the HTTP server, when ``http`` is set: :func:`edgeops.fleet.web.make_http_server` (the page and the
  JSON API) when that module is there, else a bare JSON ``/api/devices``; on both, the routes of
  :attr:`FleetServer.http_routes` (``/healthz`` by default: 200 while the collector is connected,
  else 503) answer first.

Durability: see :mod:`edgeops.fleet.collector`. ``stop()`` (SIGINT/SIGTERM in the CLI) writes and
acknowledges what is queued before it disconnects; a ``kill -9`` loses nothing either, since the
broker keeps every unacknowledged message in the collector's persistent session and a message
stored twice is ignored by its id.

Deployment sizes (the deployment guide has the details):

* up to a few hundred devices: one mosquitto, one ``edgeops fleet serve`` with the default sqlite
  file (WAL) next to it;
* 100,000 devices: a broker cluster (EMQX, HiveMQ, VerneMQ) that supports MQTT 5 shared
  subscriptions, N collectors ``edgeops fleet serve --group collectors --client-id c<N>
  --db postgresql://...`` sharing the stream, one PostgreSQL (telemetry partitioned by month),
  and the page served by any of them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

__all__ = ["FleetServer", "ServerOptions", "parse_http"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """Every setting of ``edgeops fleet serve``."""

    broker: str
    """The MQTT broker's URL, ``mqtt://host[:port]`` or ``mqtts://...``."""
    fleet: str
    """The fleet collected (``edgeops/<fleet>/+/...``)."""
    db: str = "fleet.db"
    """A sqlite file (WAL), ``sqlite:///path``, or ``postgresql://user@host:port/db``."""
    http: str | None = "127.0.0.1:8080"
    """``host:port`` of the page and API (port 0: a free one; None or "": no HTTP)."""
    rules: str | None = None
    """A rules TOML replacing (or adding to) the default alert rules."""
    webhook: str | None = None
    """A URL that gets every alert transition as JSON (POST, with retries)."""
    group: str | None = None
    """Share the stream with the other collectors of this group (MQTT 5 shared subscription)."""
    retention_days: float = 30.0
    """Telemetry and events older than this are removed (monthly partitions dropped on PostgreSQL)."""
    client_id: str | None = None
    """The collector's MQTT client id: keep it stable, it names the persistent session."""
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    batch_max: int = 500
    """The most messages written in one transaction."""
    batch_ms: int = 200
    """How long a batch waits for more messages at most."""
    trim_every_s: float = 3600.0
    """Seconds between retention passes."""
    alerts_every_s: float = 5.0
    """Seconds between alert evaluations."""
    rollout_every_s: float = 0.5
    """Seconds between two steps of the rollout controller."""


def parse_http(value: str | None) -> tuple[str, int] | None:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``":8080"`` listens on 127.0.0.1; None/"" -> None."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http {value!r}: give host:port, e.g. 127.0.0.1:8080 (port 0 picks a free one)")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Loop:
    def __init__(self, name: str, fn: Callable[[], Any], every_s: float, first_s: float):
        self.name, self.fn, self.every_s, self.first_s = name, fn, every_s, first_s
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        wait = self.first_s
        while not stop.wait(wait):
            wait = self.every_s
            try:
                self.fn()
                self.runs += 1
            except Exception as exc:  # noqa: BLE001 - a loop keeps going; the next run tries again
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("edgeops fleet serve: the %s loop failed", self.name)


class FleetServer:
    """Collector + loops + HTTP over one store (module docstring). ``start()``, ``stop()``, ``url``."""

    def __init__(self, options: ServerOptions):
        if options.retention_days <= 0:
            raise UsageError("--retention-days must be > 0")
        self.options = options
        self.fleet = options.fleet
        self._http_address = parse_http(options.http)
        self.store: Any = None
        self.collector: Any = None
        self.alerts: Any = None  # the alert loop (edgeops.fleet.alerts), when there is one
        self.httpd: Any = None
        self.url: str | None = None
        self.http_routes: dict[str, Callable[[], tuple[int, Any]]] = {"/healthz": self.health}
        self.rollouts: Any = None  # the rollout controller (edgeops.fleet.rollout)
        self._loops: list[_Loop] = []
        self._closers: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started: float | None = None

    # -- seams -------------------------------------------------------------------------------------

    def add_loop(self, name: str, fn: Callable[[], Any], every_s: float, *, first_s: float | None = None) -> None:
        """Call ``fn()`` every ``every_s`` seconds (first after ``first_s``, default ``every_s``) in its own
        thread while the server runs; an exception is logged and counted, the loop goes on."""
        if every_s <= 0:
            raise UsageError(f"the {name} loop needs every_s > 0")
        loop = _Loop(name, fn, every_s, every_s if first_s is None else first_s)
        self._loops.append(loop)
        if self.started is not None:
            self._start_loop(loop)

    def _start_loop(self, loop: _Loop) -> None:
        loop.thread = threading.Thread(target=loop.run, args=(self._stop,), name=f"fleet-{loop.name}", daemon=True)
        loop.thread.start()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FleetServer:
        from .collector import Collector
        from .store import open_store

        o = self.options
        tls: dict[str, Any] = {"username": o.username, "password": o.password, "ca": o.ca, "cert": o.cert, "key": o.key}
        try:
            self.store = open_store(o.db)
            self.collector = Collector(self.store, o.broker, o.fleet, group=o.group, client_id=o.client_id,
                                       batch_max=o.batch_max, batch_ms=o.batch_ms, **tls)
            self._attach_alerts(tls)
            self._attach_rollouts(tls)
            self.add_loop("retention", lambda: self.store.trim(o.retention_days), o.trim_every_s, first_s=1.0)
            if self._http_address is not None:
                self._start_http(*self._http_address)
            self.collector.start()
            self.started = time.time()
            for loop in self._loops:
                self._start_loop(loop)
        except BaseException:
            self.stop()
            raise
        return self

    def _attach_alerts(self, tls: dict[str, Any]) -> None:
        o = self.options
        if importlib.util.find_spec("edgeops.fleet.alerts") is None:
            if o.rules or o.webhook:
                raise UsageError("--rules and --webhook need edgeops.fleet.alerts, which this install lacks")
            return
        # filled by another module of the package (edgeops.fleet.alerts): imported by name, only when there
        make_alert_loop = importlib.import_module("edgeops.fleet.alerts").make_alert_loop
        loop, close = make_alert_loop(self.store, o.fleet, o.rules, o.broker, o.webhook,
                                      client_id=f"{self.collector.client_id}-alerts", **tls)
        self.alerts = loop
        self._closers.append(close)
        self.add_loop("alerts", loop, o.alerts_every_s)

    def _attach_rollouts(self, tls: dict[str, Any]) -> None:
        from .rollout import RolloutController

        o = self.options
        self.rollouts = RolloutController(self.store, o.fleet, o.broker, holder=self.collector.client_id, tls=tls)
        self._closers.append(self.rollouts.close)
        self.add_loop("rollouts", self.rollouts.tick, o.rollout_every_s, first_s=0.2)

    def api(self, method: str, path: str, body: bytes) -> tuple[int, Any] | None:
        """The read-write routes (rollouts and bundle uploads), or None when ``path`` is not one of them."""
        from urllib.parse import unquote, urlsplit

        parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
        if parts[:1] != ["api"] or parts[1:2] not in (["rollouts"], ["bundles"]):
            return None
        from .rollout import http_api

        return http_api(self.store, self.fleet, self.rollouts, method, parts[1:], body)

    def _start_http(self, host: str, port: int) -> None:
        if importlib.util.find_spec("edgeops.fleet.web") is not None:
            make_http_server = importlib.import_module("edgeops.fleet.web").make_http_server
            httpd = make_http_server(self.store, self.fleet, host, port,
                                     alerts_source=getattr(self.alerts, "engine", self.alerts))
        else:
            httpd = _bare_http_server(self.store, self.fleet, host, port)
        httpd.RequestHandlerClass = _with_routes(httpd.RequestHandlerClass, self.http_routes, self.api)
        self.httpd = httpd
        h, p = httpd.server_address[:2]
        self.url = f"http://{'[' + h + ']' if ':' in h else h}:{p}"
        t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="fleet-http",
                             daemon=True)
        t.start()
        self._threads.append(t)

    def wait_ready(self, timeout: float) -> bool:
        """Whether the collector connected and subscribed within ``timeout`` seconds."""
        return self.collector is not None and self.collector.wait_subscribed(timeout)

    def stop(self) -> None:
        """Stop HTTP and the loops, write and acknowledge what is queued, disconnect, close the store."""
        self._stop.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        for loop in self._loops:
            if loop.thread is not None:
                loop.thread.join(10)
        for close in self._closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - stopping anyway
                log.exception("edgeops fleet serve: closing failed")
        self._closers = []
        if self.collector is not None and self.collector._writer is not None:
            self.collector.stop()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> FleetServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- numbers -----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"fleet": self.fleet, "store": getattr(self.store, "kind", None),
                "collector": self.collector.stats() if self.collector is not None else None,
                "loops": {lp.name: {"runs": lp.runs, "errors": lp.errors, "last_error": lp.last_error}
                          for lp in self._loops},
                "uptime_s": None if self.started is None else round(time.time() - self.started, 1)}

    def health(self) -> tuple[int, Any]:
        """``/healthz``: 200 and the numbers while the collector is connected, else 503."""
        s = self.stats()
        ok = bool(s["collector"] and s["collector"]["connected"])
        return (200 if ok else 503), {"ok": ok, **s}


def _json_bytes(data: Any) -> bytes:
    from .. import _json

    return _json.dumps(data, separators=(",", ":")).encode()


def _with_routes(handler: type, routes: dict[str, Callable[[], tuple[int, Any]]],
                 api: Callable[[str, str, bytes], tuple[int, Any] | None] | None = None) -> type:
    """``handler`` with the JSON ``routes`` (GET) and ``api(method, path, body)`` (GET and POST) answered first."""
    from urllib.parse import urlsplit

    class Routed(handler):  # type: ignore[valid-type, misc]
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length") or 0)
            fallback = getattr(super(), "do_POST", None) or (lambda: self.send_error(405))
            if api is None or length > (512 << 20) + 1:
                return fallback()
            body = self.rfile.read(length) if length else b""
            return self._answer(lambda: api("POST", self.path, body), fallback)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            fn = routes.get(urlsplit(self.path).path)
            if fn is None:
                if api is not None:
                    return self._answer(lambda: api("GET", self.path, b""), super().do_GET)
                return super().do_GET()
            return self._answer(fn, super().do_GET)

        def _answer(self, fn: Callable[[], tuple[int, Any] | None], otherwise: Callable[[], None]) -> None:
            try:
                got = fn()
                if got is None:
                    return otherwise()
                status, data = got
            except Exception as exc:  # noqa: BLE001 - answered, not raised into the server thread
                log.exception("edgeops fleet serve: %s failed", self.path)
                status, data = 500, {"error": f"{type(exc).__name__}"}
            body = _json_bytes(data)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return None

    return Routed


def _bare_http_server(store: Any, fleet: str, host: str, port: int) -> Any:
    """Only ``/api/devices`` (the store's rows) when the page's module (edgeops.fleet.web) is not installed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Bare(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug(format, *args)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/api/devices":
                self.send_error(404)
                return
            body = _json_bytes(store.devices(fleet))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Bare)
    server.daemon_threads = True
    return server
