"""The collector: the fleet's MQTT messages into the store, nothing lost and nothing twice.

:class:`Collector` is a paho-mqtt 2 client (MQTT 5) with a *persistent session*: it connects with
``clean_start=False`` and a session expiry (a day by default), subscribes at QoS 1 to
``edgeops/<fleet>/+/telemetry``, ``.../events`` and ``.../status`` and acknowledges each message
itself (paho's ``manual_ack``), only after the batch that holds it is committed to the store.

Durability, step by step:

* paho's network thread hands each message to a queue; it is NOT acknowledged yet.
* the writer thread takes what is queued (up to ``batch_max`` messages, lingering at most
  ``batch_ms`` for more), writes them with :meth:`Store.write_batch` in one transaction, and once
  that returns (committed: sqlite fsyncs its WAL, PostgreSQL its log) sends the PUBACKs.
* a crash (``kill -9``, power) before the commit loses nothing: the broker still holds the messages
  unacknowledged in the collector's session and sends them again when it reconnects with the same
  client id. A crash after the commit but before the PUBACKs makes the broker send them again too:
  the store sees their ``id`` and ignores them (counted as duplicates), then they are acknowledged.
* the store down or locked: the batch is kept and written again with a growing pause; the broker
  stops sending once its in-flight window for this client is full, and queues the rest.
* a message the store refuses for itself (a batch fails, then that message alone fails for a reason
  that is not transient) is counted as ``rejected``, logged and acknowledged, so one poison message
  never stalls the stream. Unreadable payloads are counted ``malformed`` and acknowledged.

The broker must keep what it queues for the session while the collector is away: mosquitto drops
QoS 1 messages for an offline client past ``max_queued_messages`` (1000 by default), so a
collector that may be down for minutes on a busy fleet needs ``max_queued_messages`` (and
``max_queued_bytes``) raised; ``max_inflight_messages`` (20 by default) bounds how many messages
are unacknowledged at once, hence the size of a batch.

Scale out: with ``group``, telemetry and events come through the MQTT 5 shared subscription
``$share/<group>/edgeops/<fleet>/+/telemetry`` (and events): the broker gives each message to one
collector of the group; status stays a plain subscription, so every collector keeps its devices'
state fresh. The collectors of a group share one PostgreSQL store; each needs its own client id
(default: the host name and the group).

Lag: ``stats()["lag_ms"]`` is the device's ``ts`` to the commit of the batch, p50 and p95 over the
last 10,000 stored telemetry messages.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Collector"]

log = logging.getLogger(__name__)

KINDS = ("telemetry", "events", "status")
SESSION_EXPIRY_S = 86400


@dataclass
class _Item:
    incoming: Any  # store.Incoming
    mid: int
    qos: int
    connection: int  # the connection it came on: a PUBACK goes back on that one only


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return float(s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))])


class Collector:
    """Collect ``fleet``'s messages from ``broker_url`` into ``store`` (module docstring); ``start()``, ``stop()``."""

    def __init__(self, store: Store, broker_url: str, fleet: str, *, group: str | None = None,
                 client_id: str | None = None, batch_max: int = 500, batch_ms: int = 200,
                 username: str | None = None, password: str | None = None, ca: str | None = None,
                 cert: str | None = None, key: str | None = None, keepalive: int = 30,
                 session_expiry_s: int = SESSION_EXPIRY_S):
        from ..agent.config import check_id
        from ..agent.transport import parse_url

        self.store = store
        self.fleet = check_id("fleet", fleet)
        if group is not None:
            check_id("group", group)
        if batch_max < 1 or batch_ms < 0:
            raise UsageError("batch_max must be >= 1 and batch_ms >= 0")
        self.group = group
        self.broker_url = broker_url
        self._address = parse_url(broker_url)
        host = socket.gethostname().split(".")[0]
        self.client_id = client_id or "-".join(["edgeops-collector", self.fleet, *([group] if group else []), host])
        self.batch_max = batch_max
        self.batch_ms = batch_ms
        self._auth = (username, password)
        self._tls = (ca, cert, key)
        self.keepalive = keepalive
        self.session_expiry_s = session_expiry_s
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connection = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: Any = None
        self._counts = {"received": 0, "redelivered": 0, "stored": 0, "duplicates": 0, "malformed": 0, "rejected": 0, "batches": 0,
                        "store_errors": 0, "connects": 0}
        self._lags: deque[int] = deque(maxlen=10000)
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def topics(self) -> list[str]:
        base = f"edgeops/{self.fleet}/+"
        shared = f"$share/{self.group}/" if self.group else ""
        return [f"{shared}{base}/telemetry", f"{shared}{base}/events", f"{base}/status"]

    def start(self, wait_s: float | None = None) -> Collector:
        """Connect (paho reconnects by itself after) and start the writer; with ``wait_s``, wait that long
        for the subscription and raise when it did not happen."""
        from ..agent.transport import _paho

        mqtt = _paho()
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        host, port, tls = self._address
        if tls:
            ca, cert, key = self._tls
            client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        if self._auth[0] is not None:
            client.username_pw_set(*self._auth)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        client.max_queued_messages_set(0)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.session_expiry_s)
        props.ReceiveMaximum = min(65535, max(20, self.batch_max))
        self._client = client
        self._writer = threading.Thread(target=self._write_loop, name="fleet-collector-writer", daemon=True)
        self._writer.start()
        client.connect_async(host, port, keepalive=self.keepalive, clean_start=False, properties=props)
        client.loop_start()
        if wait_s is not None and not self._subscribed.wait(wait_s):
            self.stop(flush_s=0)
            raise UsageError(f"the collector could not connect to {self.broker_url} and subscribe within {wait_s} s"
                             f"{': ' + self.last_error if self.last_error else ''}")
        return self

    def stop(self, flush_s: float = 5.0) -> None:
        """Write and acknowledge what is queued (for at most ``flush_s``), then disconnect. The session stays
        on the broker: what arrives meanwhile waits there for the next start."""
        deadline = time.monotonic() + flush_s
        while flush_s > 0 and not self._queue.empty() and time.monotonic() < deadline and self._writer_alive():
            time.sleep(0.02)
        self._stop.set()
        if self._writer is not None:
            self._writer.join(max(1.0, deadline - time.monotonic()))
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client.loop_stop()

    def _writer_alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    # -- paho callbacks (network thread) ------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"the broker refused the connection: {reason}"
            log.warning("collector %s: %s", self.client_id, self.last_error)
            return
        with self._lock:
            self._connection += 1
            self._counts["connects"] += 1
        self._connected.set()
        client.subscribe([(t, 1) for t in self.topics()])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        bad = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if bad:
            self.last_error = f"the broker refused the subscription ({', '.join(bad)}): check its ACL"
            log.error("collector %s: %s", self.client_id, self.last_error)
            return
        self._subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        with self._lock:
            self._connection += 1  # PUBACKs for what came before cannot go out on the next connection
        if not self._stop.is_set():
            self.last_error = f"disconnected from the broker: {reason}"
            log.info("collector %s: %s; reconnecting", self.client_id, self.last_error)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        from .store import Incoming

        with self._lock:
            self._counts["received"] += 1
            self._counts["redelivered"] += bool(message.dup)  # sent before, not acknowledged (a restart)
            connection = self._connection
        item = _Item(Incoming(message.topic, bytes(message.payload), int(time.time() * 1000)), int(message.mid),
                     int(message.qos), connection)
        self._queue.put(item)

    # -- the writer ---------------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_ms / 1000
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:  # linger a little for more, but not when the stream paused (the broker's window is full)
                batch.append(self._queue.get(timeout=min(left, 0.01)))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        pending: list[_Item] = []
        pause = 0.1
        while True:
            if not pending:
                if self._stop.is_set():
                    return
                pending = self._take()
                if not pending:
                    continue
            if self._write(pending):
                pending, pause = [], 0.1
            else:  # the store is away: keep the batch, try again (nothing is acknowledged meanwhile)
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, 5.0)

    def _write(self, batch: list[_Item]) -> bool:
        """Write and acknowledge ``batch``; False when the store is unavailable (try again later)."""
        from .store import StoreError, WriteResult

        try:
            result = self.store.write_batch([i.incoming for i in batch])
        except StoreError as exc:
            with self._lock:
                self._counts["store_errors"] += 1
            self.last_error = str(exc)
            if exc.transient:
                log.warning("collector %s: %s; retrying", self.client_id, exc)
                return False
            result = WriteResult()
            for item in batch:  # find the message the store refuses, write the others
                try:
                    r = self.store.write_batch([item.incoming])
                except StoreError as one:
                    if one.transient:
                        return False
                    log.error("collector %s: the store refused a message on %s: %s", self.client_id,
                              item.incoming.topic, one)
                    with self._lock:
                        self._counts["rejected"] += 1
                    continue
                result.stored += r.stored
                result.duplicates += r.duplicates
                result.malformed += r.malformed
                result.ts.extend(r.ts)
        committed = int(time.time() * 1000)
        self._ack(batch)
        with self._lock:
            self._counts["batches"] += 1
            self._counts["stored"] += result.stored
            self._counts["duplicates"] += result.duplicates
            self._counts["malformed"] += result.malformed
            self._lags.extend(committed - ts for ts in result.ts)
        return True

    def _ack(self, batch: list[_Item]) -> None:
        client = self._client
        with self._lock:
            current = self._connection
        for item in batch:
            if item.qos > 0 and item.connection == current and client is not None:
                try:
                    client.ack(item.mid, item.qos)
                except Exception as exc:  # noqa: BLE001 - a lost connection: the broker sends it again
                    log.info("collector %s: PUBACK %d not sent: %s", self.client_id, item.mid, exc)

    # -- numbers ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """received, redelivered (the broker's DUP flag), stored, duplicates, malformed, rejected, batches, store_errors, connects, queued and
        ``lag_ms`` {p50, p95} (device ts -> commit, stored telemetry only)."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            lags = list(self._lags)
        out["queued"] = self._queue.qsize()
        out["lag_ms"] = {"p50": _percentile(lags, 0.50), "p95": _percentile(lags, 0.95), "n": len(lags)}
        out["connected"] = self.connected
        out["client_id"] = self.client_id
        out["group"] = self.group
        return out
