"""``edgeops bridge run``: a microcontroller on a serial port, in the fleet like any device.

The gateway runs next to the MCU (a Pi with the board on USB, or the emulator's TCP port). It
opens the :class:`~.link.Link`, learns the device id from HELLO, and publishes under
``edgeops/<fleet>/<device id>/`` exactly what the Python agent publishes, through the agent's own
machinery (:class:`~edgeops.agent.Agent` with no model: the durable outbox, the sender, the
transport with its last will, the commands):

* ``status`` (retained, last will ``offline``): the model the MCU runs (name, version, sha256 of
  its image), ``runtime.backend = "mcu"`` and the HELLO facts under ``mcu``;
* ``telemetry``: one message per TELEMETRY frame the device sends, in the agent's schema
  (``inference.count`` is the window since the previous frame, ``total`` since the gateway first saw
  the device; latency in ms from the device's own µs clock; ``latency_ms.p95`` is the device's p99,
  an upper bound, since the firmware summarises p50/p90/p99 only), with ``runtime.backend = "mcu"``
  and the frame's own fields under ``mcu`` (``tseq``, ``boot``, uptime, RAM, link counters);
* ``events``: the device's EVENT frames (``mcu.event``), its restarts (``mcu.restarted``), gaps in
  ``tseq`` (``mcu.telemetry_gap``: frames the device sent that never arrived, e.g. the cable was out)
  and the OTA events of :mod:`.mcu_ota`;
* command replies (``ping``, ``config``, ``telemetry-now`` which asks the device, ``reset``).

**Nothing the device sent is lost once it arrived.** Each TELEMETRY frame is appended to the
outbox (fsynced) in the reader thread before the next frame is read; the broker may be away, the
gateway may be killed: the outbox sends it later. A repeated frame (same boot, same ``tseq``) is
dropped. The link reopens the port by itself (:mod:`.link`).

**Trust boundary.** The gateway is where a bundle's signature is checked, against its own
``--trusted-key`` files; the MCU has no keys and checks only what the gateway tells it: each
chunk's CRC-32 and the image's SHA-256. Whoever can write to the serial line can flash the MCU;
keep the gateway and the cable physically together (see firmware_bridge/README.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write
from .._version import __version__
from ..agent.agent import Agent
from ..agent.options import AgentOptions
from ..errors import EdgeOpsError, UsageError
from . import wire
from .link import Link, LinkError

__all__ = ["Gateway", "GatewayOptions"]

log = logging.getLogger(__name__)
LEVELS = {0: "debug", 1: "info", 2: "warning", 3: "error"}


@dataclass(frozen=True)
class GatewayOptions:
    """Every knob of the gateway (``edgeops bridge run`` builds one from its options)."""

    port: str  # a device path, serial://PATH or socket://HOST:PORT
    broker: str  # mqtt[s]://host:port
    fleet: str = "default"
    baud: int = 115200
    store_dir: str = "./edgeops-bridge"  # one folder per device id under it: the outbox, the OTA transfers
    trusted_keys: tuple[str, ...] = ()  # public keys a bundle must be signed with; none: every flash is refused
    labels: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    hello_timeout_s: float = 30.0
    health_timeout_s: float = 60.0  # an update's trial start must be confirmed or reverted within this
    request_timeout_s: float = 1.0


class _Publisher(Agent):
    """The agent's publishing half for one MCU: no model, no telemetry timer (the device's frames drive it)."""

    def __init__(self, gateway: Gateway, options: AgentOptions):
        self.gateway = gateway  # before Agent.__init__: the last will's status is built there
        super().__init__(None, options)
        self.model_info = gateway.model_info()
        self.commands.table["reset"] = self._reset
        self.interval_s = options.interval_s

    def _telemetry_step(self) -> None:
        self._stop.wait(0.5)

    def telemetry_now(self) -> dict[str, Any]:
        reply = self.gateway.link.request(wire.TelemetryReq())
        if not isinstance(reply, wire.Telemetry):
            raise LinkError(f"TELEMETRY_REQ answered with {type(reply).__name__}")
        # the link hands the reply to telemetry_frame like any TELEMETRY frame: stored once, here only looked up
        return {"seq": self.outbox.last_seq("telemetry"), "tseq": reply.tseq, "inferences": reply.inferences}

    def _reset(self, args: dict[str, Any]) -> dict[str, Any]:
        self.gateway.link.request(wire.Reset())
        return {"reset": True}

    def _status(self, state: str, **fields: Any) -> bytes:
        return super()._status(state, runtime=self.gateway.runtime(), mcu=self.gateway.facts(), **fields)

    def _on_connect(self) -> None:
        super()._on_connect()
        from ..agent.ota_wire import chunk_filter

        self.transport.subscribe(chunk_filter(self.base))

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.gateway.ota.handle(topic, payload):
            return
        self.commands.handle(topic, payload)


class Gateway:
    """One MCU on one port, published to one fleet (module docstring)."""

    def __init__(self, options: GatewayOptions):
        if not options.broker:
            raise UsageError("the bridge needs --broker, e.g. mqtt://127.0.0.1:1883")
        self.options = options
        self.link = Link(options.port, baud=options.baud, timeout=options.request_timeout_s,
                         on_message=self._on_frame, on_open=self._on_open)
        self.hello: wire.Hello | None = None
        self.boot = 0  # starts of the device seen by this gateway (an unsolicited HELLO each)
        self.publisher: _Publisher | None = None
        self._early: list[wire.Message] = []  # frames before the publisher exists
        self._lock = threading.RLock()
        self._hello_seen = threading.Condition(self._lock)
        self._last: dict[str, Any] | None = None  # the last telemetry frame taken: boot, tseq, counters
        self._state_path = ""
        from .mcu_ota import McuOta

        self.ota = McuOta(self)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Gateway:
        """Open the port, wait for the device's HELLO (asking for it), then start publishing."""
        self.link.start()
        hello = self.wait_hello(self.options.hello_timeout_s)
        if hello is None:
            self.link.stop()
            raise LinkError(f"no HELLO from a device on {self.options.port} within {self.options.hello_timeout_s:g} s "
                            f"({self.link.last_error or 'the port is open, nothing answered'}); is the firmware "
                            f"running and the baud rate {self.options.baud}?")
        o = self.options
        store = os.path.join(o.store_dir, hello.device_id)
        self._state_path = os.path.join(store, "mcu_state.json")
        os.makedirs(store, exist_ok=True)
        self._last = _read_state(self._state_path)
        if self._last is not None:  # the gateway restarted: its frames continue the saved ones unless tseq or uptime
            self._last["boot"] = self.boot  # went back (telemetry_frame tells a device restart from that)
        agent_opts = AgentOptions(broker=o.broker, fleet=o.fleet, device=hello.device_id, store_dir=store,
                                  labels=dict(o.labels), username=o.username, password=o.password, ca=o.ca,
                                  cert=o.cert, key=o.key, interval_s=10.0)
        with self._lock:
            self.publisher = _Publisher(self, agent_opts)
            if self._last is not None:
                self.publisher.totals.update(self._last.get("totals", {}))
            early, self._early = self._early, []
            for msg in early:  # under the lock: the reader's next frames wait until these are stored, in order
                self._on_frame(msg, False)
        self.publisher.start()
        self.publisher.watched["link"] = self.link._thread  # type: ignore[assignment]
        self.ota.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.ota.stop(timeout)
        if self.publisher is not None:
            self.publisher.stop(timeout)
        self.link.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def device(self) -> str | None:
        return self.hello.device_id if self.hello else None

    def wait_hello(self, timeout: float, after_boot: int = -1) -> wire.Hello | None:
        """The device's HELLO (of a boot later than ``after_boot`` when given), asking with HELLO_REQ meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.hello is not None and self.boot > after_boot:
                    return self.hello
            if after_boot < 0 and self.link.connected:
                try:
                    self.link.request(wire.HelloReq(), retries=0, timeout=min(1.0, self.options.request_timeout_s))
                except LinkError:
                    pass
            with self._lock:
                self._hello_seen.wait(0.2)
        return None

    # -- what the device says ----------------------------------------------------------------------------

    def _on_open(self) -> None:
        if self.publisher is not None:
            self.publisher.event("mcu.link", state="open", port=self.options.port, opens=self.link.opens)
            threading.Thread(target=self._ask_hello, daemon=True, name="edgeops-bridge-hello").start()

    def _ask_hello(self) -> None:
        try:
            self.link.request(wire.HelloReq(), retries=2)
        except LinkError as exc:
            log.warning("edgeops bridge: no HELLO after reopening the port: %s", exc)

    def _on_frame(self, msg: wire.Message, solicited: bool) -> None:
        with self._lock:
            if self.publisher is None and not isinstance(msg, wire.Hello):
                self._early.append(msg)
                return
        if isinstance(msg, wire.Hello):
            self._on_hello(msg, solicited)
        elif isinstance(msg, wire.Telemetry):
            self.telemetry_frame(msg)
        elif isinstance(msg, wire.Event):
            self._on_event(msg)

    def _on_hello(self, hello: wire.Hello, solicited: bool) -> None:
        with self._lock:
            known = self.hello
            if known is not None and known.device_id != hello.device_id:
                log.error("edgeops bridge: the device on %s is now %r, was %r: ignored (restart the bridge)",
                          self.options.port, hello.device_id, known.device_id)
                if self.publisher is not None:
                    self.publisher.event("mcu.device_changed", level="error", was=known.device_id, now=hello.device_id)
                return
            self.hello = hello
            self.link.max_payload = hello.max_payload
            if not solicited or known is None:
                self.boot += 1
            self._hello_seen.notify_all()
            pub = self.publisher
        if pub is not None:
            info = self.model_info()
            if not solicited:
                pub.event("mcu.restarted", boot=self.boot, model=info, boot_state=hello.boot_state,
                          reverted=bool(hello.boot_flags & 1))
            if info != pub.model_info:
                pub.swap_model(None, info, None)

    def _on_event(self, ev: wire.Event) -> None:
        assert self.publisher is not None
        self.publisher.event("mcu.event", level=LEVELS.get(ev.level, "info"), code=ev.code, text=ev.text,
                             uptime_ms=ev.uptime_ms)

    def telemetry_frame(self, t: wire.Telemetry) -> dict[str, Any] | None:
        """Turn one TELEMETRY frame into the agent's telemetry message and store it in the outbox; None for a
        repeated frame."""
        pub = self.publisher
        assert pub is not None
        restarted = False
        with self._lock:
            last = self._last
            if last is not None and last["boot"] == self.boot and (t.uptime_ms < last["uptime_ms"]
                                                                   or t.tseq < last["tseq"]):
                self.boot += 1  # a restart whose HELLO never arrived (sent before the port was open again)
                restarted = True
            same_boot = last is not None and last["boot"] == self.boot and t.uptime_ms >= last["uptime_ms"] \
                and t.tseq >= last["tseq"]
            if same_boot and t.tseq == last["tseq"]:  # type: ignore[index]
                return None
            if same_boot:
                assert last is not None
                count, errors = t.inferences - last["inferences"], t.errors - last["errors"]
                window_s = (t.uptime_ms - last["uptime_ms"]) / 1000
                missed = t.tseq - last["tseq"] - 1
            else:
                count, errors, window_s, missed = t.inferences, t.errors, t.uptime_ms / 1000, t.tseq
            count, errors = max(count, 0), max(errors, 0)
            pub.totals["count"] += count
            pub.totals["errors"] += errors
            message = self._message(t, count, errors, window_s)
            entry = pub.send("telemetry", "telemetry", message)
            self._last = {"boot": self.boot, "tseq": t.tseq, "uptime_ms": t.uptime_ms, "inferences": t.inferences,
                          "errors": t.errors, "totals": dict(pub.totals)}
            _write_state(self._state_path, self._last)
        if restarted:
            pub.event("mcu.restarted", boot=self.boot, model=self.model_info(), reason="uptime and tseq went back")
        if missed > 0:
            pub.event("mcu.telemetry_gap", level="warning", missed=missed, boot=self.boot, tseq=t.tseq,
                      reason="TELEMETRY frames the device sent that never arrived (the line was down or garbled)")
        return {**message, "seq": entry.seq}

    def _message(self, t: wire.Telemetry, count: int, errors: int, window_s: float) -> dict[str, Any]:
        pub = self.publisher
        assert pub is not None

        def ms(us: int) -> float:
            return round(us / 1000, 3)

        latency = {} if not t.latency_count else {
            "p50": ms(t.latency_p50_us), "p90": ms(t.latency_p90_us), "p95": ms(t.latency_p99_us),
            "p99": ms(t.latency_p99_us), "mean": ms(t.latency_mean_us), "min": ms(t.latency_min_us),
            "max": ms(t.latency_max_us)}
        health: dict[str, Any] = {"uptime_s": round(t.uptime_ms / 1000, 1), "threads": pub.threads(),
                                  "thread_restarts": dict(pub.restarts)}
        if t.ram_free != wire.RAM_UNKNOWN:
            health["ram_free_bytes"] = t.ram_free
        if t.temperature_centi != wire.TEMPERATURE_UNKNOWN:
            health["temperature_c"] = t.temperature_centi / 100
        from ..agent.telemetry import _outbox

        return {"ts": int(time.time() * 1000), "device": pub.device, "fleet": pub.fleet, "model": dict(pub.model_info),
                "inference": {"count": count, "errors": errors, "window_s": round(window_s, 3),
                              "rate_per_s": round(count / window_s, 3) if window_s > 0 else 0.0,
                              "total": pub.totals["count"], "total_errors": pub.totals["errors"],
                              "latency_ms": latency, "latency_count": t.latency_count},
                "guardrails": {"enabled": False}, "drift": {"enabled": False, "reason": "the MCU reports no inputs"},
                "health": health, "runtime": self.runtime(), "outbox": _outbox(pub), "interval_s": pub.interval_s,
                "labels": dict(pub.labels),
                "mcu": {"tseq": t.tseq, "boot": self.boot, "uptime_ms": t.uptime_ms, "inferences": t.inferences,
                        "errors": t.errors, "rx_frames": t.rx_frames, "rx_dropped": t.rx_dropped,
                        "tx_dropped": t.tx_dropped, "running_slot": t.running_slot, "boot_state": t.boot_state,
                        "link": self.link.counters()}}

    # -- facts -------------------------------------------------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        h = self.hello
        if h is None:
            return {"name": "none", "version": "none", "sha256": None}
        return {"name": h.model_name or "none", "version": h.model_version or "none", "sha256": h.model_sha256.hex()}

    def runtime(self) -> dict[str, Any]:
        h = self.hello
        return {"edgeops": __version__, "backend": "mcu", "firmware": h.firmware_version if h else None,
                "protocol": h.protocol if h else None, "gateway_port": self.options.port}

    def facts(self) -> dict[str, Any]:
        h = self.hello
        if h is None:
            return {}
        return {"firmware": h.firmware_version, "capabilities": h.capabilities, "max_payload": h.max_payload,
                "arena_bytes": h.arena_bytes, "model_format": h.model_format, "slot_count": h.slot_count,
                "running_slot": h.running_slot, "boot_state": h.boot_state, "boot_flags": h.boot_flags,
                "slot_size": h.slot_size, "boot": self.boot}


def _read_state(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"boot", "tseq", "uptime_ms"} <= set(state) else None


def _write_state(path: str, state: dict[str, Any]) -> None:
    try:
        atomic_write(path, json.dumps(state))
    except (OSError, EdgeOpsError) as exc:  # the outbox has the message; this only avoids double counting
        log.warning("edgeops bridge: cannot save %s: %s", path, exc)
