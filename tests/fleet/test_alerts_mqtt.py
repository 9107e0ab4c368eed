"""Alerts on a real mosquitto: a firing alert is held retained on edgeops/<fleet>/alerts/<rule>/<device>, cleared
when it resolves, each transition also sent once as an event; and the retained state survives a broker outage."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edgeops.fleet.alerts import AlertEngine, mqtt_publisher
from tests.fleet.alerting import SEC, T0, rules, telemetry

OFFLINE = {"offline": {"kind": "offline", "after": "30s", "severity": "critical"}}
TOPIC = "edgeops/demo/alerts/offline/pi-02"


class Subscriber:
    """A real paho client on ``topic_filter`` that records (topic, payload, retain)."""

    def __init__(self, url: str, topic_filter: str = "edgeops/demo/alerts/#"):
        import paho.mqtt.client as mqtt

        from edgeops.agent.transport import parse_url

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        host, port, _ = parse_url(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(5), "could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 5.0) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                if not self._cond.wait(max(deadline - time.monotonic(), 0)) and time.monotonic() >= deadline:
                    raise AssertionError(f"timed out; got {self.messages}")
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_now(url: str, settle: float = 0.5) -> dict[str, dict]:
    """What a client that subscribes now gets as retained alerts: {topic: payload}."""
    sub = Subscriber(url)
    time.sleep(settle)  # retained messages come right after the SUBACK
    sub.close()
    return {t: json.loads(p) for t, p, retain in sub.messages if retain and p}


@pytest.fixture
def publisher(broker):
    publish, close = mqtt_publisher(broker.url)
    yield publish
    close()


def test_retained_while_firing_cleared_when_resolved_and_one_event_each(tmp_path, broker, publisher):
    from edgeops.fleet.store import open_store

    store = open_store(str(tmp_path / "fleet.db"))
    live = Subscriber(broker.url)
    engine = AlertEngine(store, "demo", rules(**OFFLINE), publish=publisher)
    store.write_batch([telemetry("pi-01", 1, T0), telemetry("pi-02", 1, T0)])
    store.write_batch([telemetry("pi-01", 2, T0 + 30 * SEC)])
    assert [x.device for x in engine.evaluate(T0 + 40 * SEC)] == ["pi-02"]
    events = live.wait_for(lambda m: any(t == TOPIC + "/event" for t, _, _ in m))
    held = retained_now(broker.url)
    assert list(held) == [TOPIC]
    assert (held[TOPIC]["state"], held[TOPIC]["device"], held[TOPIC]["severity"]) == ("firing", "pi-02", "critical")
    assert held[TOPIC]["since"] == T0 + 40 * SEC
    event = [json.loads(p) for t, p, r in events if t == TOPIC + "/event"]
    assert [e["state"] for e in event] == ["firing"]

    store.write_batch([telemetry("pi-02", 2, T0 + 50 * SEC)])
    assert [x.state for x in engine.evaluate(T0 + 55 * SEC)] == ["resolved"]
    got = live.wait_for(lambda m: sum(t == TOPIC + "/event" for t, _, _ in m) == 2)
    assert retained_now(broker.url) == {}
    assert (TOPIC, b"", False) in got  # the clearing publish, as a live subscriber sees it
    assert [json.loads(p)["state"] for t, p, _ in got if t == TOPIC + "/event"] == ["firing", "resolved"]
    assert not any(r for t, _, r in got if t.endswith("/event"))
    live.close()
    store.close()


def test_an_alert_fired_during_a_broker_outage_is_retained_once_the_broker_is_back(tmp_path, broker):
    from edgeops.fleet.store import open_store

    publish, close = mqtt_publisher(broker.url)
    publisher = publish.__self__
    publisher.transport.backoff = (0.05, 0.2)
    store = open_store(str(tmp_path / "fleet.db"))
    engine = AlertEngine(store, "demo", rules(**OFFLINE), publish=publish)
    store.write_batch([telemetry("pi-02", 1, T0)])
    outage = threading.Thread(target=broker.restart, kwargs={"down_s": 1.5})
    outage.start()
    deadline = time.monotonic() + 5
    while publisher.transport.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not publisher.transport.connected
    assert [x.state for x in engine.evaluate(T0 + 40 * SEC)] == ["firing"]  # never blocks on the broker
    assert publisher.stats["dropped"] == 2  # the retained state and the event could not go out
    outage.join()
    assert publisher.transport.wait_connected(10)
    deadline = time.monotonic() + 5
    while publisher.stats["republished"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert retained_now(broker.url)[TOPIC]["state"] == "firing"
    close()
    store.close()


def test_a_restarted_engine_holds_the_retained_alerts_it_took_over(tmp_path, make_empty_broker):
    """A broker without persistence forgot the retained alerts; the engine that takes over publishes them again."""
    from edgeops.fleet.store import open_store

    store = open_store(str(tmp_path / "fleet.db"))
    store.write_batch([telemetry("pi-02", 1, T0)])
    AlertEngine(store, "demo", rules(**OFFLINE)).evaluate(T0 + 40 * SEC)  # fired before, with no broker at all
    broker = make_empty_broker()
    publish, close = mqtt_publisher(broker.url)
    assert AlertEngine(store, "demo", rules(**OFFLINE), publish=publish).evaluate(T0 + 50 * SEC) == []
    held = retained_now(broker.url)
    assert held[TOPIC]["state"] == "firing" and held[TOPIC]["since"] == T0 + 40 * SEC
    close()
    store.close()


@pytest.fixture
def make_empty_broker(tmp_path, broker):  # ``broker`` skips the test where mosquitto or paho is missing
    from edgeops.agent.localbroker import LocalBroker

    brokers = []

    def make():
        brokers.append(LocalBroker(workdir=str(tmp_path / "b2"), persistence=False).start())
        return brokers[-1]

    yield make
    for b in brokers:
        b.stop()
