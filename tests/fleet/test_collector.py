"""The collector against a real mosquitto and a real store: stored once, kept while away, garbage counted."""

from __future__ import annotations

import json
import time

import pytest

from edgeops.fleet.collector import Collector

pytest.importorskip("paho.mqtt.client")


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


class Publisher:
    """A plain paho client that publishes QoS 1 and waits for each PUBACK."""

    def __init__(self, url: str):
        import paho.mqtt.client as mqtt

        from edgeops.agent.transport import parse_url

        host, port, _ = parse_url(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | dict) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def message(device: str, seq: int, **extra) -> dict:
    return {"ts": int(time.time() * 1000), "device": device, "fleet": "demo", "seq": seq, "id": f"{device}:{seq}",
            "model": {"name": "digits", "version": "1"}, "inference": {"count": seq, "latency_ms": {"p95": 1.5}},
            **extra}


@pytest.fixture
def publisher(broker):
    p = Publisher(broker.url)
    yield p
    p.close()


def test_collects_telemetry_events_and_status(broker, store, publisher):
    c = Collector(store, broker.url, "demo", client_id="c-basic").start(wait_s=10)
    try:
        for seq in range(1, 21):
            publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq, labels={"site": "berlin"}))
        publisher.send("edgeops/demo/pi-01/events", {"ts": 1, "kind": "ota", "level": "info", "id": "e1"})
        publisher.send("edgeops/demo/pi-01/status", {"state": "online", "ts": 1, "model": {"name": "digits"}})
        publisher.send("edgeops/other/pi-09/telemetry", message("pi-09", 1))  # another fleet: not ours
        assert wait_until(lambda: c.stats()["stored"] == 21 and store.device("demo", "pi-01")
                          and store.device("demo", "pi-01")["state"] == "online", 10), c.stats()
    finally:
        c.stop()
    rows = store.telemetry("demo", "pi-01")
    assert [r["seq"] for r in rows] == list(range(1, 21))
    assert rows[-1]["payload"]["id"] == "pi-01:20" and rows[-1]["p95_ms"] == 1.5
    assert store.device("demo", "pi-01")["labels"] == {"site": "berlin"}
    assert [e["kind"] for e in store.events("demo")] == ["ota"]
    assert store.devices("other") == []
    s = c.stats()
    assert s["received"] == 22 and s["malformed"] == 0 and s["lag_ms"]["n"] == 20 and s["lag_ms"]["p95"] >= 0


def test_messages_sent_while_the_collector_is_away_arrive_when_it_is_back(broker, store, publisher):
    c = Collector(store, broker.url, "demo", client_id="c-away").start(wait_s=10)
    c.stop()  # the session stays on the broker
    for seq in range(1, 51):
        publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq))
    c = Collector(store, broker.url, "demo", client_id="c-away").start(wait_s=10)
    try:
        assert wait_until(lambda: c.stats()["stored"] == 50, 10), c.stats()
    finally:
        c.stop()
    assert [r["seq"] for r in store.telemetry("demo", "pi-01")] == list(range(1, 51))


def test_malformed_payloads_are_counted_and_acknowledged(broker, tmp_path, publisher):
    from edgeops.fleet.store import open_store

    store = open_store(str(tmp_path / "f.db"))
    c = Collector(store, broker.url, "demo", client_id="c-bad").start(wait_s=10)
    try:
        publisher.send("edgeops/demo/pi-01/telemetry", b"{not json")
        publisher.send("edgeops/demo/pi-01/telemetry", b"[" * 5000)
        publisher.send("edgeops/demo/pi-01/telemetry", {"seq": 1})  # no id, no ts
        publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", 1))
        assert wait_until(lambda: c.stats()["stored"] == 1 and c.stats()["malformed"] == 3, 10), c.stats()
    finally:
        c.stop()
    # acknowledged: a new start of the same session gets none of them again
    c = Collector(store, broker.url, "demo", client_id="c-bad").start(wait_s=10)
    try:
        publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", 2))
        assert wait_until(lambda: c.stats()["stored"] == 1, 10)
        time.sleep(0.3)
        assert c.stats()["received"] == 1 and c.stats()["malformed"] == 0
    finally:
        c.stop()
        store.close()


def test_a_message_delivered_twice_is_stored_once(broker, store, publisher):
    c = Collector(store, broker.url, "demo", client_id="c-dup").start(wait_s=10)
    try:
        for _ in range(3):
            publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", 7))
        assert wait_until(lambda: c.stats()["stored"] + c.stats()["duplicates"] == 3, 10), c.stats()
    finally:
        c.stop()
    assert c.stats()["stored"] == 1 and c.stats()["duplicates"] == 2
    assert len(store.telemetry("demo", "pi-01")) == 1


def test_a_bad_broker_url_or_fleet_is_a_usage_error(store):
    from edgeops.errors import UsageError

    with pytest.raises(UsageError):
        Collector(store, "http://x", "demo")
    with pytest.raises(UsageError):
        Collector(store, "mqtt://127.0.0.1:1", "a/b")


def test_an_unreachable_broker_fails_start_with_a_wait(store):
    from edgeops.errors import UsageError

    with pytest.raises(UsageError, match="could not connect"):
        Collector(store, "mqtt://127.0.0.1:1", "demo").start(wait_s=1)


class CrashBeforeAck(Collector):
    """Commits, then "crashes" before its PUBACKs go out (they never do)."""

    def _ack(self, batch) -> None:
        pass


def test_committed_but_not_acknowledged_comes_again_and_is_stored_once(broker, store, publisher):
    c = CrashBeforeAck(store, broker.url, "demo", client_id="c-crash").start(wait_s=10)
    try:
        for seq in range(1, 11):
            publisher.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq))
        assert wait_until(lambda: c.stats()["stored"] == 10, 10), c.stats()
    finally:
        c.stop()
    c = Collector(store, broker.url, "demo", client_id="c-crash").start(wait_s=10)
    try:  # the broker sends the 10 again (DUP): already stored, acknowledged now
        assert wait_until(lambda: c.stats()["duplicates"] == 10, 10), c.stats()
        assert c.stats()["redelivered"] == 10 and c.stats()["stored"] == 0
    finally:
        c.stop()
    c = Collector(store, broker.url, "demo", client_id="c-crash").start(wait_s=10)
    try:  # and never again
        time.sleep(0.5)
        assert c.stats()["received"] == 0
    finally:
        c.stop()
    assert [r["seq"] for r in store.telemetry("demo", "pi-01")] == list(range(1, 11))


def test_the_collector_comes_back_after_a_broker_restart(broker, store):
    c = Collector(store, broker.url, "demo", client_id="c-restart").start(wait_s=10)
    try:
        pub = Publisher(broker.url)
        for seq in range(1, 11):
            pub.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq))
        pub.close()
        assert wait_until(lambda: c.stats()["stored"] == 10, 10)
        broker.restart(down_s=0.5)  # same port, persistence on: the collector's session survives
        assert wait_until(lambda: c.stats()["connects"] >= 2 and c.connected, 20), c.stats()
        pub = Publisher(broker.url)
        for seq in range(11, 21):
            pub.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq))
        pub.close()
        assert wait_until(lambda: c.stats()["stored"] == 20, 10), c.stats()
    finally:
        c.stop()
    assert [r["seq"] for r in store.telemetry("demo", "pi-01")] == list(range(1, 21))


def test_postgresql_connections_cut_mid_stream_lose_nothing(broker, pg_url):
    import threading

    import psycopg

    from edgeops.fleet.store import open_store

    store = open_store(pg_url)
    c = Collector(store, broker.url, "demo", client_id="c-cut", batch_ms=20).start(wait_s=10)
    pub = Publisher(broker.url)
    stop = threading.Event()

    def cut():  # the database drops the collector's connections, again and again
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.wait(0.05):
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        for seq in range(1, 201):
            pub.send("edgeops/demo/pi-01/telemetry", message("pi-01", seq))
        time.sleep(0.5)
    finally:
        stop.set()
        cutter.join()
        pub.close()
    try:  # a commit whose answer was cut is written again: stored then, a duplicate now
        assert wait_until(lambda: len(store.telemetry("demo", "pi-01")) == 200, 30), c.stats()
        assert wait_until(lambda: c.stats()["stored"] + c.stats()["duplicates"] >= 200, 10), c.stats()
    finally:
        c.stop()
        store.close()
    assert c.stats()["store_errors"] > 0  # the cuts did hit writes
    with open_store(pg_url) as s:
        assert [r["seq"] for r in s.telemetry("demo", "pi-01")] == list(range(1, 201))
