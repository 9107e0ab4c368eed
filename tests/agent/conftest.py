"""Fixtures for the agent's tests: a real mosquitto per test, a test PKI, and a subscriber that records.

* ``broker``: a started plain :class:`LocalBroker` (anonymous, persistence on), stopped after the test.
* ``make_broker(**kwargs)``: the same with options (acl=, passwords=, tls=, ...); all stopped after.
* ``pki``: :func:`tests.agent.pki.make_pki` (trustme) in ``tmp_path``; ``pki.client("pi-01")`` gives a
  client (cert, key).
* ``tls_broker``: TLS on ``mqtts://localhost:PORT`` that requires a client certificate signed by
  ``pki`` (its CN becomes the MQTT username).
* ``collector(topic_filter="#", url=None, **tls)``: a started :class:`Collector` on ``broker`` (or
  ``url``), subscribed before it returns; disconnected after the test.

Tests skip, saying what to install, when mosquitto or paho-mqtt is missing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from edgeops.agent.localbroker import LocalBroker
from edgeops.agent.transport import parse_url
from tests.agent.pki import make_pki

_ids = itertools.count()


class Collector:
    """A real paho client subscribed to ``topic_filter``; records ``(topic, payload, retain)``."""

    def __init__(self, url: str, topic_filter: str = "#", *, ca: str | None = None, cert: str | None = None,
                 key: str | None = None, client_id: str | None = None, persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.topic_filter = topic_filter
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        host, port, tls = parse_url(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{next(_ids)}",
                                  protocol=mqtt.MQTTv5)
        if tls:
            self.client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)  # back quickly after broker.restart()
        self._address = (host, port)
        self._persistent = persistent  # a broker-side session that outlives a broker restart (persistence on)

    def start(self, timeout: float = 5.0) -> Collector:
        if self._persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.client.connect(*self._address, keepalive=10, clean_start=False, properties=props)
        else:
            self.client.connect(*self._address, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise AssertionError(f"collector could not subscribe to {self.topic_filter!r} within {timeout} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 5.0) -> None:
        """Publish QoS 1 from the collector's connection (waiting for it to be back) and wait until it is sent."""
        deadline = time.monotonic() + timeout
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise AssertionError("the collector is not connected")
            time.sleep(0.01)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(max(deadline - time.monotonic(), 0.1))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._cond:
            return list(self.messages)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.snapshot() if t == topic]

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes, bool]]], Any], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(messages so far)`` is true; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.messages)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def _need_mosquitto() -> None:
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgeops[agent]')")


@pytest.fixture
def make_broker(tmp_path):
    """``make_broker(**LocalBroker kwargs)`` -> a started broker, stopped after the test."""
    _need_mosquitto()
    brokers: list[LocalBroker] = []

    def make(**kwargs: Any) -> LocalBroker:
        kwargs.setdefault("workdir", str(tmp_path / f"broker{len(brokers)}"))
        broker = LocalBroker(**kwargs)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def broker(make_broker) -> LocalBroker:
    return make_broker()


@pytest.fixture
def pki(tmp_path):
    pytest.importorskip("trustme", reason="trustme is not installed (pip install 'edgeops[dev]')")
    return make_pki(str(tmp_path / "pki"))


@pytest.fixture
def tls_broker(make_broker, pki) -> LocalBroker:
    return make_broker(tls=pki, require_certificate=True)


@pytest.fixture
def collector(request):
    """``collector(topic_filter="#", url=None, **tls)`` -> a started Collector (default: on ``broker``)."""
    started: list[Collector] = []

    def make(topic_filter: str = "#", url: str | None = None, **kwargs: Any) -> Collector:
        _need_mosquitto()
        c = Collector(url or request.getfixturevalue("broker").url, topic_filter, **kwargs).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def collector_class() -> type[Collector]:
    """The Collector class itself, for tests that build one by hand."""
    return Collector
