"""The MQTT transport of ``flash``: send a bundle to one device's agent and wait for its verdict.

:func:`flash_mqtt` publishes the offer on ``edgeops/<fleet>/<device>/cmd/ota`` and then sends the
chunks the device asks for in its ``ota.need`` events (at first: all of them) on
``ota/<deployment>/<index>``, QoS 1 (the wire format: :mod:`edgeops.agent.ota_wire`, which the
device reads with the same code). It re-sends the offer after each reconnect of its own, every
``REOFFER_S`` seconds until the device answers, and after ``QUIET_S`` seconds of silence later; the
device answers with what it still needs, so a transfer resumes where it stopped, also across a new
``flash_mqtt`` call given the same ``deployment``. It returns the device's ``ota.result`` as a
:class:`~.flash.FlashResult` whatever its outcome; :func:`~.flash.flash` raises for any outcome
but ``committed``. The device, not the host, verifies the bundle and its signature (see
:mod:`edgeops.agent.ota`); ``flash`` checks it here first too.
The device's events are read with :func:`edgeops._json.loads`; one that is not strict, bounded
JSON is ignored, never raised in the network thread.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _json
from ..agent.config import check_id
from ..agent.ota_wire import MAX_CHUNK_SIZE, Kind, Offer, Outcome, chunk_topic, encode_offer, make_offer, offer_topic
from ..errors import DataError, UsageError
from .result import FlashResult

__all__ = ["flash_mqtt", "REOFFER_S", "QUIET_S"]

REOFFER_S = 3.0
QUIET_S = 30.0  # a device that answered once is silent for this long (a long health window): offer again
RESEND_AFTER_S = 1.0  # a chunk sent this recently is still on its way: a need for it is not acted on yet


def flash_mqtt(bundle: str, url: str, fleet: str, device: str, *, timeout: float = 300,
               chunk_size: int = 64 * 1024, progress: bool = True, deployment: str | None = None,
               on_chunk: Callable[[int, int], None] | None = None, args: dict[str, Any] | None = None,
               **tls: Any) -> FlashResult:
    """Update ``device``'s model with ``bundle`` through the broker at ``url``.

    Returns the device's verdict, whatever it is, as a :class:`~.flash.FlashResult` whose
    ``details`` (the JSON) are ``{"outcome", "version", "reason", "seconds", "bytes", "deployment"}``:
    ``outcome`` is the device's (committed, refused, rolled_back, failed, cancelled), or ``failed``
    with a reason when no result came within ``timeout`` seconds. ``bytes`` counts the chunk bytes
    sent, resends included. ``tls`` holds the transport's ``username``, ``password``, ``ca``, ``cert``, ``key``.
    ``on_chunk(index, sent)`` runs after each chunk is handed to MQTT (a test seam). ``args`` go in the offer
    (``{"mode": "shadow", "rate": 0.1}``: the device installs the bundle as its shadow model).
    """
    check_id("fleet", fleet)
    check_id("device", device)
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(f"chunk_size must be 1 byte .. 16 MiB, not {chunk_size}")
    source = _Source(os.fspath(bundle), chunk_size)
    deployment = check_id("deployment", deployment or f"{int(time.time() * 1000)}-{source.sha256[:12]}")
    from .._progress import Bars

    with Bars(None if progress else False) as bars:
        flasher = _Flasher(source, url, f"edgeops/{fleet}/{device}", deployment, bars, on_chunk, tls)
        flasher.args = args
        got = flasher.run(timeout)
    return FlashResult(transport="mqtt", target=f"{fleet}/{device}", outcome=got["outcome"], name=None,
                       version=got["version"], slot=None, reason=got["reason"], details=got)


class _Source:
    """The bundle, its sha256 and one sha256 per chunk; chunks are read from the file when sent."""

    def __init__(self, path: str, chunk_size: int):
        if not os.path.isfile(path):
            raise UsageError(f"bundle {path} not found")
        self.path, self.chunk_size = path, chunk_size
        self.size = os.path.getsize(path)
        if self.size == 0:
            raise UsageError(f"bundle {path} is empty")
        self.chunks = math.ceil(self.size / chunk_size)
        whole, self.chunk_sha256 = hashlib.sha256(), []
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_size), b""):
                whole.update(block)
                self.chunk_sha256.append(hashlib.sha256(block).hexdigest())
        self.sha256 = whole.hexdigest()

    def read(self, index: int) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(index * self.chunk_size)
            return fh.read(self.chunk_size)


class _Flasher:
    """One transfer: the offer, the chunks the device asks for, the wait for its result."""

    def __init__(self, source: _Source, url: str, base: str, deployment: str, bars: Any,
                 on_chunk: Callable[[int, int], None] | None, tls: dict[str, Any]):
        from ..agent.transport import MqttTransport

        self.source, self.base, self.deployment, self.bars, self.on_chunk = source, base, deployment, bars, on_chunk
        self.inbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.arrived = threading.Event()
        self.transport = MqttTransport(url, client_id=f"edgeops-flash-{deployment}"[:64], backoff=(0.2, 5.0),
                                       on_connect=lambda: self._put("connected", {}), on_message=self._message,
                                       **tls)
        self.transport.subscribe(f"{base}/events", qos=1)
        self.pending: dict[int, None] = {}  # an ordered set: the chunks to send, oldest request first
        self.sent_at: dict[int, float] = {}
        self.sent_bytes = self.sent = 0
        self.heard = self.offered = 0.0
        self.device_has = 0
        self.args: dict[str, Any] | None = None  # the offer's args (shadow mode)
        self.created = int(time.time() * 1000)  # fixed: a later deployment's offer is newer than every one of ours

    def _put(self, kind: str, event: dict[str, Any]) -> None:
        self.inbox.put((kind, event))
        self.arrived.set()

    def _message(self, topic: str, payload: bytes) -> None:
        try:
            event = _json.loads(payload, what=topic, error=DataError)
        except DataError:
            return
        if isinstance(event, dict) and event.get("deployment") == self.deployment:
            self._put(str(event.get("kind")), event)

    def run(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + timeout
        self.transport.start()
        try:
            result = self._loop(deadline)
        finally:
            self.transport.stop(timeout=2.0)
        if result is None:
            why = f"no result from the device within {timeout:g} s"
            if not self.heard:
                why += " (it never answered: is its agent running, with an [ota] section?)"
            if not self.transport.connects:
                why += f" (never connected to the broker: {self.transport.last_error})"
            result = {"outcome": Outcome.FAILED.value, "reason": why, "version": None}
        return {"outcome": result.get("outcome"), "version": result.get("version"),
                "reason": result.get("reason") or "", "seconds": round(time.monotonic() - started, 3),
                "bytes": self.sent_bytes, "deployment": self.deployment}

    def _loop(self, deadline: float) -> dict[str, Any] | None:
        while time.monotonic() < deadline:
            result = self._drain()
            if result is not None:
                return result
            now = time.monotonic()
            quiet = REOFFER_S if not self.heard else QUIET_S
            if self.transport.connected and now - max(self.heard, self.offered) > quiet:
                self._offer()
            if self.pending and self.transport.connected:
                self._send_one()
            else:
                self._wait(0.1)
        return None

    def _drain(self) -> dict[str, Any] | None:
        self.arrived.clear()
        while True:
            try:
                kind, event = self.inbox.get_nowait()
            except queue.Empty:
                return None
            result = self._on(kind, event)
            if result is not None:
                return result

    def _wait(self, seconds: float) -> None:
        self.arrived.wait(seconds)

    def _on(self, kind: str, event: dict[str, Any]) -> dict[str, Any] | None:
        if kind == "connected":
            self._offer()
            return None
        self.heard = time.monotonic()
        if kind == Kind.RESULT:
            return event
        if kind == Kind.NEED:
            recent = self.heard - RESEND_AFTER_S
            for index in event.get("missing") or []:
                if isinstance(index, int) and 0 <= index < self.source.chunks and (
                        event.get("reason") == "bad chunk" or self.sent_at.get(index, 0.0) < recent):
                    self.pending[index] = None
        if isinstance(event.get("have"), int):
            self.device_has = max(self.device_has, event["have"])
            self._show()
        return None

    def _show(self) -> None:
        self.bars.update(f"flash {self.deployment}", max(self.device_has, len(self.sent_at)), self.source.chunks)

    def _offer(self) -> None:
        s = self.source
        offer: Offer = make_offer(self.deployment, self.created, s.sha256, s.size, s.chunk_size, s.chunk_sha256)
        if self.args:
            offer = {**offer, "args": self.args}  # type: ignore[typeddict-unknown-key]
        if self.transport.publish(offer_topic(self.base), encode_offer(offer), qos=1):
            self.offered = time.monotonic()

    def _send_one(self) -> None:
        index = next(iter(self.pending))
        data = self.source.read(index)
        if not self.transport.publish(chunk_topic(self.base, self.deployment, index), data, qos=1):
            self._wait(0.01)  # paho's window is full, or the connection just went: try again
            return
        del self.pending[index]
        self.sent_at[index] = time.monotonic()
        self.sent_bytes += len(data)
        self.sent += 1
        self._show()
        if self.on_chunk is not None:
            self.on_chunk(index, self.sent)
