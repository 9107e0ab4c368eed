"""The agent's MQTT transport: one connection that keeps coming back, and its in-process double.

:class:`MqttTransport` runs a background thread that connects (MQTT 5 first, 3.1.1 when the broker
refuses v5), runs paho's network loop, and after every loss reconnects with exponential backoff
and *full* jitter (sleep ``uniform(0, current)``), so a fleet does not reconnect in lockstep after
a broker restart. Each attempt uses a fresh paho client: paho never keeps or replays its own
queue across connections. Durability is the agent's sqlite outbox, which re-sends what was not
acknowledged; receivers drop duplicates by ``id``.

``publish`` is thread-safe and never queues while disconnected: it returns ``False`` instead. With
QoS 1, ``on_ack`` runs at the PUBACK. A publish the broker refuses (an MQTT 5 PUBACK with a failure
reason code, e.g. 0x87 "Not authorized" from a mosquitto ACL) never calls ``on_ack`` and sets
``last_error``; under MQTT 3.1.1 mosquitto acknowledges a denied publish and drops it silently.

:class:`MemoryTransport` has the same interface, in memory, for tests. Both are a :class:`Transport`,
the protocol the agent and its OTA are written against.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from ..errors import BackendUnavailableError, UsageError

__all__ = ["MqttTransport", "MemoryTransport", "Sent", "Transport", "parse_url", "topic_matches"]

log = logging.getLogger(__name__)

Message = tuple[str, bytes, bool]
_UNSUPPORTED_PROTOCOL = 0x84  # CONNACK "Unsupported protocol version" (paho maps a v3 rc=1 to it too)
_PROTOCOLS = ("MQTTv5", "MQTTv311")


class Transport(Protocol):
    """An MQTT connection as the agent uses it: the seam between the agent and the network.

    The callbacks run on the transport's own thread: ``on_connect()`` after every (re)connection,
    ``on_disconnect(why)`` when one is lost, ``on_message(topic, payload)`` for each message a
    subscription matches.
    """

    on_connect: Callable[[], None] | None
    on_disconnect: Callable[[str], None] | None
    on_message: Callable[[str, bytes], None] | None

    @property
    def connected(self) -> bool: ...

    @property
    def alive(self) -> bool: ...  # False only when its thread ended without stop()

    def start(self) -> None: ...

    def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` ``(topic, payload, retain)`` when connected, then disconnect cleanly."""

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                on_ack: Callable[[], None] | None = None) -> bool:
        """Send now, or return False (queuing nothing); ``on_ack`` runs at the broker's PUBACK."""

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""

    def wait_connected(self, timeout: float) -> bool: ...


def parse_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` -> ``(host, port, tls)``; anything else is a UsageError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad broker URL {url!r}: {exc}; expected mqtt://host[:port] or mqtts://host[:port]") from exc
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"bad broker URL {url!r}; expected mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise BackendUnavailableError("the MQTT transport needs paho-mqtt 2: pip install 'edgeops[agent]'") from exc
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise BackendUnavailableError("the MQTT transport needs paho-mqtt >= 2.0: pip install -U paho-mqtt")
    return mqtt


def _paho_loop_ended(client: Any) -> bool:
    """Whether paho's network thread (``loop_start``) is gone: its private ``_thread`` reads None.

    The one place edgeops reads a private paho attribute: paho has no public way to ask whether
    the thread ``loop_start`` made is still running, and it clears ``_thread`` when the thread
    ends. A paho without that attribute counts as running (the socket-close callback still ends
    the session).
    """
    return getattr(client, "_thread", "unknown") is None


def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
    """Run a user callback; an exception is logged, never allowed to kill the network thread."""
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        log.exception("edgeops transport: callback %r failed", fn)


class _Session:
    """One paho client, one connection attempt, and what happened to it."""

    def __init__(self, client: Any, protocol: str):
        self.client = client
        self.protocol = protocol
        self.ended = threading.Event()
        self.up = False
        self.opened = False  # was ever up: the backoff starts over
        self.refused = False
        self.error = ""  # paho's last error log line: says why a socket failed (TLS alerts, resets)
        self.refused_protocol = False
        self.acks: dict[int, tuple[str, Callable[[], None] | None]] = {}
        self.early: dict[int, Any] = {}  # PUBACKs that beat publish() to registering their mid
        self.subscribed: dict[str, int] = {}


class MqttTransport:
    """A self-healing MQTT connection: ``start()``, ``publish()``, ``subscribe()``, ``stop()``.

    Attributes: ``protocol`` ("MQTTv5" / "MQTTv311", "" before the first connection), ``connects``
    (successful connections so far), ``last_error`` (why the last attempt or publish failed),
    ``reconnect_waits`` (the last backoff sleeps, seconds), ``random`` (the jitter source),
    ``errors`` (the network thread's own failures: a bug in one attempt is reported there and the
    thread goes on) and ``alive`` (False only if the network thread ended without ``stop``).
    """

    def __init__(self, url: str, *, client_id: str, username: str | None = None, password: str | None = None,
                 ca: str | None = None, cert: str | None = None, key: str | None = None,
                 will: tuple[str, bytes, bool] | None = None, keepalive: int = 30,
                 backoff: tuple[float, float] = (0.5, 30.0), max_inflight: int = 20,
                 on_connect: Callable[[], None] | None = None, on_disconnect: Callable[[str], None] | None = None,
                 on_message: Callable[[str, bytes], None] | None = None):
        self.host, self.port, self.tls = parse_url(url)
        if (ca or cert or key) and not self.tls:
            raise UsageError(f"ca/cert/key are for TLS; use an mqtts:// URL instead of {url!r}")
        if key and not cert:
            raise UsageError("a client key needs its certificate: pass cert= too")
        if not client_id:
            raise UsageError("client_id must not be empty")
        if not (0 < backoff[0] <= backoff[1]):
            raise UsageError(f"backoff must be (min, max) with 0 < min <= max, got {backoff}")
        if max_inflight < 1:
            raise UsageError(f"max_inflight must be at least 1, got {max_inflight}")
        self.url, self.client_id = url, client_id
        self.username, self.password = username, password
        self.ca, self.cert, self.key = ca, cert, key
        self.will, self.keepalive, self.backoff, self.max_inflight = will, keepalive, backoff, max_inflight
        self.on_connect, self.on_disconnect, self.on_message = on_connect, on_disconnect, on_message
        self.protocol: str = ""
        self.connects = 0
        self.last_error: str | None = None
        self.random = random.Random()
        self.reconnect_waits: deque[float] = deque(maxlen=64)
        self.errors: deque[str] = deque(maxlen=16)  # the network thread's own failures, newest last
        self._try_protocol = "MQTTv5"
        self._subs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._up = threading.Event()
        self._session: _Session | None = None
        self._thread: threading.Thread | None = None

    # -- public interface ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the network thread: connect, run the loop, reconnect forever (until ``stop``)."""
        if self._thread is not None and self._thread.is_alive():
            return
        _paho()  # fail here, in the caller's thread, when paho is missing
        self._stopping.clear()
        thread = threading.Thread(target=self._run, name=f"edgeops-mqtt-{self.client_id}", daemon=True)
        thread.start()
        self._thread = thread  # once started: ``alive`` never sees a thread not yet running

    def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (QoS 1) and wait for its PUBACK when connected, then disconnect cleanly.

        A clean DISCONNECT means the broker does not send the will; ``final`` (the retained
        "offline" status) takes its place.
        """
        self._stopping.set()
        deadline = time.monotonic() + timeout
        if final is not None and self.connected:
            acked = threading.Event()
            if self.publish(final[0], final[1], qos=1, retain=final[2], on_ack=acked.set):
                acked.wait(timeout)
        with self._lock:
            session = self._session
        if session is not None:
            session.client.disconnect()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 1.0))

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def alive(self) -> bool:
        """False only when the network thread was started and has ended without :meth:`stop`."""
        thread = self._thread
        return thread is None or thread.is_alive()

    def wait_connected(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                on_ack: Callable[[], None] | None = None) -> bool:
        """Send now, or return ``False`` (queuing nothing) when not connected or paho's window is full.

        ``on_ack`` runs on the network thread at the PUBACK (QoS 1) or once written (QoS 0); if
        the PUBACK wins the race against this call's bookkeeping, it runs here, before returning.
        """
        if qos not in (0, 1):
            raise UsageError(f"qos must be 0 or 1, got {qos}")
        with self._lock:
            session = self._session
        if session is None or not self._up.is_set():
            return False
        info = session.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            self.last_error = f"publish to {topic} refused by the client: {_error_string(info.rc)}"
            return False
        with self._lock:
            reason = session.early.pop(info.mid, None)
            if reason is None:
                session.acks[info.mid] = (topic, on_ack)
        if reason is not None:
            self._acked(topic, reason, on_ack)
        return True

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected; remembered, and subscribed again after every reconnect."""
        with self._lock:
            self._subs[topic] = qos
            session = self._session
        if session is not None and session.up:
            self._subscribe(session, topic, qos)

    # -- the network thread --------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stopping.is_set():
            try:
                session = self._attempt()
            except Exception as exc:  # noqa: BLE001 - a bug in one attempt must not end the network thread
                log.exception("edgeops transport: a connection attempt to %s failed", self.url)
                self.last_error = f"a connection attempt to {self.url} failed: {type(exc).__name__}: {exc}"
                self.errors.append(self.last_error)
                session = None
            if self._stopping.is_set():
                break
            if session is not None and session.refused_protocol and self._try_protocol == "MQTTv5":
                self._try_protocol = "MQTTv311"  # an MQTT 3.1.1 broker: retry at once, and remember
                continue
            if session is not None and session.opened:
                delay = self.backoff[0]
            wait = self.random.uniform(0.0, delay)
            self.reconnect_waits.append(wait)
            self._stopping.wait(wait)
            delay = min(delay * 2, self.backoff[1])

    def _attempt(self) -> _Session | None:
        """Connect once and run paho's loop until that connection ends; None if it never opened."""
        try:
            session = _Session(self._client(self._try_protocol), self._try_protocol)
        except Exception as exc:  # ssl / file errors from tls_set: unreadable or mismatched certificates
            self.last_error = f"cannot set up the connection to {self.url}: {exc}"
            return None
        with self._lock:
            self._session = session  # before connect(): paho may already call back from inside it
        try:
            session.client.connect(self.host, self.port, keepalive=self.keepalive)
        except Exception as exc:  # OSError, ssl.SSLError
            self.last_error = f"cannot connect to {self.url}: {exc}"
            session.ended.set()
        else:
            session.client.loop_start()
            if self._stopping.is_set():
                session.client.disconnect()
            while not session.ended.wait(5.0):  # set at socket close; the check below is a safety net
                if _paho_loop_ended(session.client):  # paho's thread died on its own
                    break
            session.client.loop_stop()
        with self._lock:
            if self._session is session:
                self._session = None
        return session

    def _client(self, protocol: str) -> Any:
        mqtt = _paho()
        version = mqtt.MQTTv5 if protocol == "MQTTv5" else mqtt.MQTTv311
        kwargs: dict[str, Any] = {} if protocol == "MQTTv5" else {"clean_session": True}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=version,
                             reconnect_on_failure=False, **kwargs)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(self.max_inflight)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca, certfile=self.cert, keyfile=self.key)
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1, retain=self.will[2])
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_socket_close = self._handle_socket_close
        client.on_log = self._handle_log
        return client

    # -- paho callbacks (paho's network thread) --------------------------------------------------

    def _session_of(self, client: Any) -> _Session | None:
        with self._lock:
            session = self._session
        return session if session is not None and session.client is client else None

    def _handle_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        session = self._session_of(client)
        if session is None:
            return
        if reason.is_failure:
            session.refused = True
            session.refused_protocol = reason.value == _UNSUPPORTED_PROTOCOL
            self.last_error = f"{self.url} refused the connection ({session.protocol}): {reason}"
            return
        session.up = session.opened = True
        self.protocol = session.protocol
        self.connects += 1
        with self._lock:
            subs = dict(self._subs)
        for topic, qos in subs.items():
            self._subscribe(session, topic, qos)
        self._up.set()
        _call(self.on_connect)

    def _handle_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        session = self._session_of(client)
        if session is None:
            return
        was_up, session.up = session.up, False
        self._up.clear()
        why = session.error or str(reason)
        if was_up:
            text = "disconnected" if self._stopping.is_set() else f"connection lost: {why}"
            if not self._stopping.is_set():
                self.last_error = text
            _call(self.on_disconnect, text)
        elif not session.refused:
            self.last_error = f"{self.url} closed the connection before accepting it ({session.protocol}): {why}"
        session.ended.set()

    def _handle_log(self, client: Any, userdata: Any, level: int, text: str) -> None:
        if level == 8:  # MQTT_LOG_ERR
            session = self._session_of(client)
            if session is not None:
                session.error = text

    def _handle_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        session = self._session_of(client)
        if session is not None:  # paho's loop ends now (reconnect_on_failure=False)
            session.ended.set()

    def _handle_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        session = self._session_of(client)
        if session is None:
            return
        with self._lock:
            if mid not in session.acks:
                session.early[mid] = reason
                return
            topic, on_ack = session.acks.pop(mid)
        self._acked(topic, reason, on_ack)

    def _acked(self, topic: str, reason: Any, on_ack: Callable[[], None] | None) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused a publish to {topic}: {reason}"
            log.warning("edgeops transport: %s", self.last_error)
            return
        _call(on_ack)

    def _handle_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.last_error = f"the broker refused a subscription: {', '.join(refused)}"
            log.warning("edgeops transport: %s", self.last_error)

    def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
        _call(self.on_message, message.topic, bytes(message.payload))

    def _subscribe(self, session: _Session, topic: str, qos: int) -> None:
        with self._lock:
            if session.subscribed.get(topic) == qos:
                return
            session.subscribed[topic] = qos
        result, _ = session.client.subscribe(topic, qos=qos)
        if result != 0:
            self.last_error = f"subscribe to {topic} failed: {_error_string(result)}"


class Sent(NamedTuple):
    """One message a :class:`MemoryTransport` published."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class MemoryTransport:
    """:class:`MqttTransport`'s interface in memory, for tests of code that publishes and subscribes.

    ``start()`` connects at once (unless ``connect_on_start=False``); ``set_connected(False)`` is a
    lost connection (``will_sent`` becomes True, unacknowledged messages are forgotten, as with a
    fresh paho client) and ``set_connected(True)`` a reconnection. ``sent`` records every publish;
    with ``auto_ack=False`` the PUBACKs wait in ``unacked`` until ``ack()``. ``deliver(topic,
    payload)`` simulates a message from the broker, dispatched when a subscription matches.
    """

    def __init__(self, url: str = "memory://", *, client_id: str = "memory", will: Message | None = None,
                 on_connect: Callable[[], None] | None = None, on_disconnect: Callable[[str], None] | None = None,
                 on_message: Callable[[str, bytes], None] | None = None, auto_ack: bool = True,
                 connect_on_start: bool = True, **ignored: Any):
        self.url, self.client_id, self.will = url, client_id, will
        self.on_connect, self.on_disconnect, self.on_message = on_connect, on_disconnect, on_message
        self.auto_ack, self.connect_on_start = auto_ack, connect_on_start
        self.protocol = ""
        self.connects = 0
        self.last_error: str | None = None
        self.sent: list[Sent] = []
        self.unacked: list[tuple[Sent, Callable[[], None] | None]] = []
        self.subscriptions: dict[str, int] = {}
        self.will_sent = False
        self._up = threading.Event()
        self._lock = threading.RLock()

    def start(self) -> None:
        if self.connect_on_start:
            self.set_connected(True)

    def stop(self, final: Message | None = None, timeout: float = 5.0) -> None:
        if final is not None and self.connected:
            self.publish(final[0], final[1], qos=1, retain=final[2])
        if self.connected:
            self._up.clear()
            _call(self.on_disconnect, "disconnected")

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    alive = True  # no thread of its own

    def wait_connected(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def set_connected(self, up: bool) -> None:
        """Connect (``on_connect`` runs) or lose the connection (the will goes out, ``on_disconnect`` runs)."""
        if up == self.connected:
            return
        if up:
            self.protocol, self.connects = "MQTTv5", self.connects + 1
            self._up.set()
            _call(self.on_connect)
            return
        with self._lock:
            self.unacked.clear()
        self._up.clear()
        self.will_sent = self.will is not None
        self.last_error = "connection lost: simulated"
        _call(self.on_disconnect, self.last_error)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                on_ack: Callable[[], None] | None = None) -> bool:
        if not self.connected:
            return False
        message = Sent(topic, bytes(payload), qos, retain)
        with self._lock:
            self.sent.append(message)
            if not self.auto_ack and qos == 1:
                self.unacked.append((message, on_ack))
                return True
        _call(on_ack)
        return True

    def ack(self, count: int | None = None) -> int:
        """Acknowledge the oldest ``count`` held messages (all by default); returns how many."""
        with self._lock:
            n = len(self.unacked) if count is None else min(count, len(self.unacked))
            batch, self.unacked = self.unacked[:n], self.unacked[n:]
        for _, on_ack in batch:
            _call(on_ack)
        return len(batch)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        with self._lock:
            self.subscriptions[topic] = qos

    def deliver(self, topic: str, payload: bytes) -> bool:
        """A message from the broker: ``on_message`` runs if a subscription matches; returns whether it did."""
        with self._lock:
            match = any(topic_matches(f, topic) for f in self.subscriptions)
        if match and self.connected:
            _call(self.on_message, topic, bytes(payload))
        return match and self.connected

    def messages(self, topic_filter: str = "#") -> list[Sent]:
        """What was published to topics matching ``topic_filter``, oldest first."""
        with self._lock:
            return [m for m in self.sent if topic_matches(topic_filter, m.topic)]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


def _error_string(rc: int) -> str:
    return str(_paho().error_string(rc))
