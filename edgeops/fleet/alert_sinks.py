"""Where fired and resolved alerts go besides the store: an MQTT publisher and a webhook.

:func:`mqtt_publisher` returns ``(publish, close)`` over one self-healing connection
(:class:`edgeops.agent.transport.MqttTransport`). It remembers the retained payload of every active
alert topic and the empty payloads that clear resolved ones, and publishes them again after every
(re)connection, so a broker restart without persistence, or a resolve that happened while the
connection was down, still ends with the right retained topics. Non-retained events published
while disconnected are lost and counted (``stats["dropped"]``).

:class:`Webhook` POSTs each alert as JSON from a background thread: ``send`` only queues (a bounded
queue; a full one drops and counts), so a slow or dead endpoint never holds up the evaluation. A
POST that fails (connection error, timeout, 408, 429 or 5xx) is retried with exponential backoff up
to ``retries`` times; other 4xx answers are final. ``stats`` counts sent, retries, failed and dropped.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .. import _json
from ..errors import UsageError

__all__ = ["mqtt_publisher", "MqttPublisher", "Webhook"]

log = logging.getLogger(__name__)


class MqttPublisher:
    """QoS 1 publishes of alert topics, keeping the retained ones right across reconnections."""

    def __init__(self, url: str, *, client_id: str | None = None, username: str | None = None,
                 password: str | None = None, ca: str | None = None, cert: str | None = None,
                 key: str | None = None, connect_timeout: float = 5.0):
        from ..agent.transport import MqttTransport

        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}  # topic -> payload to hold (b"" = clear, until acknowledged)
        self.stats = {"published": 0, "dropped": 0, "republished": 0}
        self.transport = MqttTransport(url, client_id=client_id or f"edgeops-alerts-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                                       username=username, password=password, ca=ca, cert=cert, key=key,
                                       max_inflight=500, on_connect=self._republish)
        self.transport.start()
        self.transport.wait_connected(connect_timeout)  # not connected yet: the retained topics follow on connect

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish now (QoS 1); False when not connected (a retained one is sent again on connect)."""
        if retain:
            with self._lock:
                self._retained[topic] = payload
        ok = self.transport.publish(topic, payload, qos=1, retain=retain,
                                    on_ack=self._on_ack(topic, payload) if retain else None)
        with self._lock:
            self.stats["published" if ok else "dropped"] += 1
        return ok

    def close(self) -> None:
        self.transport.stop()

    def _on_ack(self, topic: str, payload: bytes) -> Callable[[], None]:
        return lambda: self._acked(topic, payload)

    def _acked(self, topic: str, payload: bytes) -> None:
        with self._lock:
            if payload == b"" and self._retained.get(topic) == b"":
                del self._retained[topic]  # the broker holds nothing for it any more

    def _republish(self) -> None:
        with self._lock:
            held = list(self._retained.items())
        for topic, payload in held:
            if self.transport.publish(topic, payload, qos=1, retain=True, on_ack=self._on_ack(topic, payload)):
                with self._lock:
                    self.stats["republished"] += 1


def mqtt_publisher(url: str, **tls: Any) -> tuple[Callable[..., bool], Callable[[], None]]:
    """``(publish, close)`` on a new MQTT connection to ``url`` (``mqtt://`` or ``mqtts://``).

    ``publish(topic, payload: bytes, *, retain=False)``; ``tls`` takes ``client_id``, ``username``,
    ``password``, ``ca``, ``cert``, ``key`` and ``connect_timeout`` (see :class:`MqttPublisher`).
    """
    unknown = set(tls) - {"client_id", "username", "password", "ca", "cert", "key", "connect_timeout"}
    if unknown:
        raise UsageError(f"mqtt_publisher got unknown option(s) {', '.join(sorted(unknown))}")
    publisher = MqttPublisher(url, **tls)
    return publisher.publish, publisher.close


_STOP = object()


class Webhook:
    """POST alerts as JSON to ``url`` from a background thread, retrying; see the module docstring."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 5, backoff: tuple[float, float] = (0.5, 30.0),
                 max_queue: int = 1000, headers: dict[str, str] | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"webhook URL must be http://host/... or https://host/..., not {url!r}")
        if timeout <= 0 or retries < 0 or max_queue < 1 or not 0 < backoff[0] <= backoff[1]:
            raise UsageError("webhook needs timeout > 0, retries >= 0, max_queue >= 1 and backoff (min, max) "
                             f"with 0 < min <= max; got {timeout}, {retries}, {max_queue}, {backoff}")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.headers = {"Content-Type": "application/json", "User-Agent": "edgeops-fleet-alerts", **(headers or {})}
        self.stats = {"sent": 0, "retries": 0, "failed": 0, "dropped": 0}
        self.last_error: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="edgeops-alert-webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> bool:
        """Queue ``payload`` for POSTing; False (counted in ``dropped``) when the queue is full or closed."""
        if self._closing.is_set():
            self._count("dropped")
            return False
        try:
            self._queue.put_nowait(_json.dumps(payload).encode())
        except queue.Full:
            self._count("dropped")
            return False
        return True

    __call__ = send

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop; what is left is dropped."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout + 1.0)

    def pending(self) -> int:
        return self._queue.qsize()

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.stats[what] += n

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is _STOP:
                return
            if self._closing.is_set() and time.monotonic() > self._deadline:
                self._count("dropped")
                continue
            try:
                self._deliver(body)
            except Exception as exc:  # noqa: BLE001 - one bad delivery must not end the thread
                log.exception("edgeops webhook: delivery to %s failed", self.url)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._count("failed")

    def _deliver(self, body: bytes) -> None:
        delay = self.backoff[0]
        for attempt in range(self.retries + 1):
            retry, why = self._post(body)
            if why is None:
                self._count("sent")
                return
            self.last_error = why
            if not retry or attempt == self.retries:
                break
            wait = min(delay, max(self._deadline - time.monotonic(), 0.0))
            if self._closing.is_set() and wait <= 0:
                break
            self._count("retries")
            if self._closing.is_set():
                time.sleep(wait)  # closing: finish within the deadline
            else:
                self._closing.wait(wait)  # close() cuts the wait short
            delay = min(delay * 2, self.backoff[1])
        log.warning("edgeops webhook: giving up on an alert for %s: %s", self.url, self.last_error)
        self._count("failed")

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """One POST: (worth retrying, why it failed or None)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) checked
                response.read()
                return False, None
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code in (408, 429) or exc.code >= 500, f"HTTP {exc.code} from {self.url}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return True, f"cannot reach {self.url}: {reason}"
