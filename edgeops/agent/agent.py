"""``edgeops.Agent``: telemetry, events and commands over MQTT for a model running on a device.

Runs in the user's process next to their :class:`~edgeops.Model` (or as the ``edgeops agent run``
daemon). Three threads, each with one job:

* **telemetry**: every ``interval_s`` builds the telemetry JSON (inference counts and latency of the
  window, guardrail violations, drift against the reference profile, device health, versions) and
  appends it to the durable outbox. Nothing is published from here.
* **sender**: whenever the transport is connected, publishes what the outbox holds, oldest first,
  QoS 1, at most ``window`` unacknowledged at a time; a row leaves the outbox only at its PUBACK.
  After a reconnect it starts again from the oldest unacknowledged row, so a broker outage, an
  agent restart or a SIGKILL loses nothing (a message whose PUBACK was lost comes twice: receivers
  drop duplicates by ``id``). ``seq`` comes from the outbox and continues across restarts.
* **network** (the transport's): connects with backoff and jitter, publishes the retained
  ``online`` status and the Home Assistant discovery config on every connect, dispatches commands.
* **ota** (with ``ota=``, the ``[ota]`` section): model updates over MQTT, see :mod:`.ota`. A crash
  in the middle of one is settled (rolled back where needed) before the model is opened.
* **shadow** (with ``shadow=``, ``[model] shadow``, or one installed over the air): a candidate model
  compared with the active one on a sample of its inputs, see :mod:`.shadow` and :mod:`.online`
  (which also keeps the output drift and the predictions awaiting labels on ``<base>/feedback``).

**No thread dies.** Each loop catches whatever one pass of it raises, reports it as a
``thread.error`` event and goes on a second later. A thread that ends anyway (an exception that is
not an ``Exception``) is started again by the telemetry or the sender thread, whichever is alive,
with a ``thread.restarted`` event; telemetry reports ``health.threads`` ({name: alive}) and
``health.thread_restarts``. A message the outbox cannot store (a full disk, an unwritable store)
is dropped and counted in :attr:`Agent.dropped_by_write_error` (telemetry ``outbox.dropped`` includes
it), and once a write succeeds again an ``outbox.dropped`` event says how many were lost and why.
``event()`` never raises for that reason, so an error handler that reports an error cannot fail
in turn.

Command replies go through the outbox too (stream ``replies``): a burst of commands is answered in
full, at the sender's pace, even across a reconnect. Everything the agent writes is strict JSON
(:func:`edgeops._json.dumps`: no NaN, no Infinity).

Every setting is a field of :class:`~.options.AgentOptions`; ``Agent(model, broker=..., fleet=...)``
builds them from keywords. The agent talks to the network through a :class:`~.transport.Transport`.

Without a model (no ``[model] path``) the agent runs the model store's active one
(``<store_dir>/models``); once an update was committed over the air, it always does.

Topics (DESIGN.md): ``edgeops/<fleet>/<device>/status|telemetry|events|cmd/<name>[/reply]``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _json
from .._version import __version__
from ..errors import EdgeOpsError, UsageError
from .commands import CommandHandler
from .config import AgentConfig, check_id, check_interval, check_labels
from .options import AgentOptions

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..monitor.drift import DriftMonitor
    from ..runtime import Model
    from .ota import Ota, Running
    from .outbox import Entry
    from .transport import MqttTransport, Transport

    ModelArg: TypeAlias = "Model | str | os.PathLike[str] | None"  # a loaded model, its file or bundle, or none

WINDOW = 20  # unacknowledged QoS 1 messages in flight
RETRY_S = 1.0  # a loop that raised runs again after this long
LOOPS = ("telemetry", "sender")

log = logging.getLogger(__name__)


class Agent:
    """The device agent (module docstring): ``Agent(model, options)`` or ``Agent(model, **fields of options)``."""

    def __init__(self, model: ModelArg = None, options: AgentOptions | None = None, *,
                 transport: Transport | None = None, **settings: Any):
        """``model``: a :class:`~edgeops.Model`, a model file or bundle, or None for the store's model;
        ``options`` and/or ``settings`` (:class:`~.options.AgentOptions` fields by name, which win);
        ``transport``: the connection to use instead of an MQTT one to ``broker`` (tests: a
        :class:`~.transport.MemoryTransport`)."""
        import socket

        from .outbox import Outbox

        opts = dataclasses.replace(options or AgentOptions(), **settings)
        self.options = opts
        self.fleet = check_id("fleet", opts.fleet)
        self.device = check_id("device", opts.device or socket.gethostname().split(".")[0])
        self.interval_s = check_interval(opts.interval_s)
        self.labels = check_labels(opts.labels)
        self.base = f"edgeops/{self.fleet}/{self.device}"
        self.home_assistant = opts.home_assistant
        store_dir = opts.store_dir
        os.makedirs(store_dir, exist_ok=True)
        self.store_dir = store_dir
        self.outbox = Outbox(os.path.join(store_dir, "outbox.sqlite"), max_bytes=opts.max_bytes,
                             max_age_s=opts.max_age_s)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.dropped_by_write_error = 0  # messages the outbox could not store (full disk), since start
        self.last_write_error: str | None = None
        self._unreported = 0  # of those, not yet told in an outbox.dropped event
        self.ota: Ota | None = None
        if opts.ota is not None:
            from .ota import Ota

            self.ota = Ota(self, opts.ota)
            self.ota.recover()  # before any model is opened: a half-checked update is rolled back first
        model_name, model_version, profile = opts.model_name, opts.model_version, opts.profile
        if model is None or (self.ota is not None and self.ota.took_over):
            model, model_name, model_version, profile = _store_model(store_dir, model, model_name, model_version,
                                                                     profile)
        self.model: Model | None = _open_model(model)
        self.model_info: dict[str, Any] = _model_info(self.model, model_name, model_version)
        from ..monitor.drift import monitor_model

        self.drift: DriftMonitor | None = monitor_model(self.model, profile)
        from .online import Online

        self.online = Online(store_dir)
        self.online.attach(self.model, self.model_info["version"], profile)
        self._open_shadow(opts)
        self.started = time.time()
        self.totals = {"count": 0, "errors": 0}  # inferences since the agent started; telemetry adds each window
        self.transport: Transport = transport or self._mqtt(opts)
        self.commands = CommandHandler(self)
        self.commands.table["shadow-stop"] = self._shadow_stop  # shadow mode's end (edgeops.agent.online)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._inflight: dict[int, float] = {}
        self._acks: list[int] = []
        self._sent_upto = 0
        self._connection = 0
        self.restarts: dict[str, int] = {}  # threads that ended and were started again
        self.watched: dict[str, threading.Thread] = {}  # other threads to report in health.threads
        self._next_telemetry = 0.0
        self._revived_at = 0.0
        self._revive_lock = threading.Lock()
        self._stopping = False  # stop() began: nothing is started again

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> Agent:
        return cls(cfg.model_path, AgentOptions.from_config(cfg))

    def _open_shadow(self, opts: AgentOptions) -> None:
        """The configured shadow candidate (an error if it does not open), else one installed over the air."""
        if opts.shadow is not None:
            self.online.open_shadow(opts.shadow, opts.shadow_rate, start=False)
            return
        try:
            saved = self.online.saved_shadow()
            if saved is not None:
                self.online.open_shadow(*saved, start=False)
        except EdgeOpsError as exc:
            log.error("edgeops agent: the shadow installed over the air does not open: %s", exc)

    def install_shadow(self, bundle: str, rate: float) -> str:
        """Run the (verified) bundle as the shadow candidate from now on; returns its version (the OTA's hook)."""
        shadow = self.online.install_shadow(bundle, rate, start=bool(self._threads))
        if shadow._thread is not None:
            self.watched["shadow"] = shadow._thread
        self.event("shadow.started", version=shadow.version, rate=rate)
        return shadow.version

    def _shadow_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        """Command ``shadow-stop`` (``{}``): stop the shadow candidate and forget one installed over the air."""
        if args:
            raise UsageError(f"shadow-stop takes no arguments, got {', '.join(sorted(args))}")
        shadow = self.online.shadow
        self.online.stop_shadow()
        self.online.forget_shadow()
        self.watched.pop("shadow", None)
        if shadow is not None:
            self.event("shadow.stopped", version=shadow.version, compared=shadow.total)
        return {"stopped": shadow is not None, "version": shadow.version if shadow is not None else None}

    def feedback(self, request_id: Any, label: Any) -> bool:
        """The true label of run ``request_id`` of the model (see :meth:`edgeops.Model.feedback`)."""
        return self.online.feedback.label(request_id, label)

    def _mqtt(self, opts: AgentOptions) -> MqttTransport:
        if not opts.broker:
            raise UsageError("the agent needs a broker URL, e.g. mqtt://127.0.0.1:1883")
        from .transport import MqttTransport

        will = (f"{self.base}/status", self._status("offline", reason="connection lost"), True)
        return MqttTransport(opts.broker, client_id=f"edgeops-{self.fleet}-{self.device}", username=opts.username,
                             password=opts.password, ca=opts.ca, cert=opts.cert, key=opts.key, will=will,
                             keepalive=opts.keepalive, max_inflight=WINDOW, on_connect=self._on_connect,
                             on_disconnect=self._on_disconnect, on_message=self._on_message)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Agent:
        if self._threads:
            return self
        self._stopping = False
        if self.drift is not None and self.model is not None:
            self.model.observer = self.drift.update
        if self.model is not None:  # again after a stop()
            self.model.result_observer = self.online.on_result
        if self.online.shadow is not None:
            self.online.shadow.start()
            if self.online.shadow._thread is not None:
                self.watched["shadow"] = self.online.shadow._thread
        self._stop.clear()
        from .health import health

        health(self.store_dir)  # primes psutil's CPU counters: the first telemetry then has a real cpu_percent
        self.transport.start()
        self._next_telemetry = time.monotonic() + min(1.0, self.interval_s)  # the first report soon after start
        self._threads = [self._spawn(name) for name in LOOPS]
        self.event("agent.started", edgeops=__version__)
        if self.ota is not None:
            self.ota.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained) and disconnect cleanly; what is still queued stays in the outbox."""
        if not self._threads:
            return
        self._stopping = True
        if self.ota is not None:
            self.ota.stop(timeout)
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._flush_acks()
        self._threads = []
        if self.model is not None and self.drift is not None and self.model.observer == self.drift.update:
            self.model.observer = None
        self.online.detach(self.model)  # the model may go on running without the agent
        if self.online.shadow is not None:
            self.online.shadow.stop(timeout)
        self.watched.pop("shadow", None)
        self.transport.stop(final=(f"{self.base}/status", self._status("offline", reason="stopped"), True),
                            timeout=timeout)
        self.outbox.close()

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait_drained(self, timeout: float) -> bool:
        """True once the outbox is empty (every message acknowledged by the broker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                unflushed = len(self._acks)
            if self.outbox.stats()["pending"] - unflushed <= 0:
                return True
            time.sleep(0.02)
        return False

    # -- what the agent says ---------------------------------------------------------------------

    def telemetry_now(self) -> dict[str, Any]:
        """Build one telemetry message and queue it; returns it (with its ``seq`` and ``id``)."""
        from .telemetry import build_telemetry

        try:
            message = build_telemetry(self)
        except EdgeOpsError as exc:  # e.g. the outbox's counters cannot be read
            self._count_drop(exc)
            raise
        entry = self.send("telemetry", "telemetry", message)
        return {**message, "seq": entry.seq}

    def event(self, kind: str, level: str = "info", **fields: Any) -> None:
        """An event (alerts, command errors, lifecycle) through the outbox: never lost once stored.

        Never raises for a message the outbox cannot store (a full disk): it is dropped and counted
        (see the module docstring), so error handlers may report their errors here safely."""
        message = {"ts": _now_ms(), "device": self.device, "fleet": self.fleet, "kind": kind, "level": level,
                   **fields}
        try:
            self.send("events", "events", message)
        except EdgeOpsError:
            pass  # counted; an outbox.dropped event follows once a write succeeds

    def send(self, stream: str, suffix: str, message: dict[str, Any]) -> Entry:
        """Store ``message`` for ``<base>/<suffix>`` in the outbox (the sender publishes it); returns the
        outbox entry. An outbox error is counted as a dropped message, then raised."""
        try:
            entry = self.outbox.append(stream, f"{self.base}/{suffix}", message)
        except EdgeOpsError as exc:
            self._count_drop(exc)
            raise
        self._wake.set()
        if self._unreported:
            self._report_drops()
        return entry

    def reply(self, command: str, body: dict[str, Any]) -> None:
        """Answer ``command`` on ``cmd/<command>/reply``: through the outbox (stream ``replies``), so a
        burst of commands is answered in full; straight to the transport when the outbox cannot
        store it (a full disk)."""
        try:
            self.send("replies", f"cmd/{command}/reply", body)
        except EdgeOpsError:
            self.transport.publish(f"{self.base}/cmd/{command}/reply", _json.dumps(body).encode(), qos=1)

    def _count_drop(self, exc: BaseException) -> None:
        with self._lock:
            self.dropped_by_write_error += 1
            self._unreported += 1
            self.last_write_error = str(exc)

    def _report_drops(self) -> None:
        """There is room again: say how many messages were lost meanwhile, and why."""
        with self._lock:
            count, self._unreported = self._unreported, 0
            error = self.last_write_error
        if not count:
            return
        message = {"ts": _now_ms(), "device": self.device, "fleet": self.fleet, "kind": "outbox.dropped",
                   "level": "warning", "count": count, "total": self.dropped_by_write_error, "error": error}
        try:
            self.outbox.append("events", f"{self.base}/events", message)
        except EdgeOpsError:
            with self._lock:
                self._unreported += count  # told with the next success

    def threads(self) -> dict[str, bool]:
        """{thread name: alive} for the agent's threads, the transport's network thread and OTA's."""
        alive = {name: t.is_alive() for name, t in zip(LOOPS, self._threads)}
        alive["network"] = self.transport.alive
        if self.ota is not None:
            alive["ota"] = self.ota.alive
        alive.update({name: t.is_alive() for name, t in self.watched.items()})
        return alive

    def swap_model(self, model: Model | None, info: dict[str, Any], drift: DriftMonitor | None) -> Running:
        """Run ``model`` from now on (an OTA update or its rollback); returns the ``(model, info, drift)`` it replaces."""
        old = (self.model, self.model_info, self.drift)
        if old[0] is not None and old[2] is not None and old[0].observer == old[2].update:
            old[0].observer = None
        self.model, self.model_info, self.drift = model, info, drift
        if self._threads and model is not None and drift is not None:
            model.observer = drift.update
        self.online.detach(old[0])
        self.online.attach(model, info.get("version", "unknown"), drift.profile if drift is not None else None)
        if self.transport.connected:  # the retained status names the model
            self.transport.publish(f"{self.base}/status", self._status("online"), qos=1, retain=True)
        return old

    def set_interval(self, seconds: Any) -> float:
        self.interval_s = check_interval(seconds)
        self._wake.set()
        return self.interval_s

    def _status(self, state: str, **fields: Any) -> bytes:
        return _json.dumps({"state": state, "ts": _now_ms(), "device": self.device, "fleet": self.fleet,
                            "model": self.model_info, "labels": self.labels, "edgeops": __version__, **fields},
                           separators=(",", ":")).encode()

    # -- threads -------------------------------------------------------------------------------

    def _spawn(self, name: str) -> threading.Thread:
        step = {"telemetry": self._telemetry_step, "sender": self._sender_step}[name]
        t = threading.Thread(target=self._forever, args=(name, step), name=f"edgeops-agent-{name}", daemon=True)
        t.start()
        return t

    def _forever(self, name: str, step: Callable[[], None]) -> None:
        """Run ``step`` until the agent stops; whatever one pass raises is reported, never fatal."""
        while not self._stop.is_set():
            try:
                step()
                self._revive()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug; the event says what
                log.exception("edgeops agent: the %s thread failed; it goes on", name)
                self.event("thread.error", level="error", thread=name, error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(RETRY_S)

    def _revive(self) -> None:
        """Start again, once a second at most, any of the agent's threads that ended (each loop checks all)."""
        now = time.monotonic()
        if now - self._revived_at < RETRY_S or self._stopping or not self._revive_lock.acquire(blocking=False):
            return
        try:
            self._revived_at = now
            self._revive_dead()
        finally:
            self._revive_lock.release()

    def _revive_dead(self) -> None:
        dead = [name for name, t in zip(LOOPS, self._threads) if not t.is_alive()]
        if not self.transport.alive:
            dead.append("network")
        if self.ota is not None and not self.ota.alive:
            dead.append("ota")
        for name in dead:
            if name == "network":
                self.transport.start()
            elif name == "ota" and self.ota is not None:
                self.ota.start()
            else:
                self._threads[LOOPS.index(name)] = self._spawn(name)
            with self._lock:
                self.restarts[name] = self.restarts.get(name, 0) + 1
            log.error("edgeops agent: the %s thread had ended; started again", name)
            self.event("thread.restarted", level="error", thread=name, restarts=self.restarts[name])

    def _telemetry_step(self) -> None:
        now = time.monotonic()
        if now >= self._next_telemetry:
            self._next_telemetry += self.interval_s  # a fixed cadence: the time spent building does not add up
            if self._next_telemetry < now:
                self._next_telemetry = now + self.interval_s  # fell behind (a long stall): no burst to catch up
            try:
                self.telemetry_now()
            except EdgeOpsError:
                pass  # dropped and counted (a full disk); reported once a message can be stored again
        self._stop.wait(min(max(self._next_telemetry - time.monotonic(), 0.0), 0.5))

    def _sender_step(self) -> None:
        self._wake.clear()
        self._flush_acks()
        if self.transport.connected:
            self._send_some()
        self._wake.wait(0.2)

    def _send_some(self) -> None:
        with self._lock:
            room = WINDOW - len(self._inflight)
            after, connection = self._sent_upto, self._connection
        if room <= 0:
            return
        for entry in self.outbox.pending(limit=room, after_rowid=after):
            with self._lock:  # recorded before publishing: the PUBACK may come back before publish() returns
                if connection != self._connection:
                    return
                self._inflight[entry.rowid] = time.monotonic()
                self._sent_upto = entry.rowid
            ok = self.transport.publish(entry.topic, entry.payload, qos=1, retain=entry.retain,
                                        on_ack=functools.partial(self._acked, entry.rowid))
            if not ok:
                with self._lock:
                    self._inflight.pop(entry.rowid, None)
                    if connection == self._connection:
                        self._sent_upto = after if entry.rowid == self._sent_upto else self._sent_upto
                return
            after = entry.rowid

    def _acked(self, rowid: int) -> None:
        """PUBACK (network thread): free the window slot now; the sender deletes acked rows in batches,
        one fsync'd transaction for many (one per message halved the outbox's throughput)."""
        with self._lock:
            self._inflight.pop(rowid, None)
            self._acks.append(rowid)
        self._wake.set()

    def _flush_acks(self) -> bool:
        """Delete the acknowledged rows; on an outbox error (a full disk) keep them for the next try."""
        with self._lock:
            rowids, self._acks = self._acks, []
        if not rowids:
            return True
        try:
            self.outbox.ack_many(rowids)
        except EdgeOpsError as exc:
            with self._lock:
                self._acks[:0] = rowids
                self.last_write_error = str(exc)
            return False
        return True

    # -- transport callbacks (network thread) ----------------------------------------------------

    def _on_connect(self) -> None:
        self._flush_acks()  # what the last connection acknowledged is not sent again
        with self._lock:  # a new connection: resend everything not acknowledged, oldest first
            self._connection += 1
            self._inflight.clear()
            self._sent_upto = 0
        self.transport.publish(f"{self.base}/status", self._status("online"), qos=1, retain=True)
        if self.home_assistant:
            from .discovery import home_assistant

            topic, payload = home_assistant(self.fleet, self.device, model_name=self.model_info["name"],
                                            model_version=self.model_info["version"], sw_version=__version__)
            self.transport.publish(topic, _json.dumps(payload).encode(), qos=1, retain=True)
        self.transport.subscribe(f"{self.base}/cmd/+")
        self.transport.subscribe(f"{self.base}/feedback")
        if self.ota is not None:
            self.ota.on_connect()
        self._wake.set()

    def _on_disconnect(self, reason: str) -> None:
        with self._lock:
            self._connection += 1
            self._inflight.clear()
            self._sent_upto = 0

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.ota is not None and self.ota.handle(topic, payload):
            return
        if topic == f"{self.base}/feedback":
            self._on_feedback(payload)
            return
        self.commands.handle(topic, payload)

    def _on_feedback(self, payload: bytes) -> None:
        """Labels that arrived later (:mod:`.online`): counted; a malformed batch is an event, never an exception."""
        try:
            counts = self.online.labels(payload)
        except EdgeOpsError as exc:
            self.event("feedback.error", level="warning", error=str(exc)[:500])
            return
        if counts["unmatched"]:
            self.event("feedback.unmatched", level="info", **counts)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _open_model(model: ModelArg) -> Model | None:
    if model is None or not isinstance(model, (str, os.PathLike)):
        return model
    from ..loading import load

    return load(model)


def _store_model(store_dir: str, model: ModelArg, name: str | None, version: str | None, profile: Any
                 ) -> tuple[ModelArg, str | None, str | None, Any]:
    """The model store's active model (name, version and profile from its bundle) when it has one."""
    from ..deploy.store import store_model

    found = store_model(store_dir)
    if found is None:
        return model, name, version, profile
    return found["path"], found["name"], found["version"], found["profile"]


def _model_info(model: Model | None, name: str | None, version: str | None) -> dict[str, Any]:
    if model is None:
        return {"name": name or "none", "version": version or "none", "sha256": None}
    sha = model.sha256
    manifest = getattr(model, "bundle", None)  # opened from a bundle: its name and version
    if manifest is not None:
        name, version = name or manifest.name, version or manifest.version
    stem = os.path.splitext(os.path.basename(model.path or "model"))[0]
    return {"name": name or stem, "version": version or (sha[:12] if sha else "unknown"), "sha256": sha}

