"""``edgeops fleet serve --rules --webhook`` end to end: real agents on a real mosquitto, the collector, the alert
loop; an agent that goes away fires `offline` (retained topic, webhook, store) and resolves when it comes back."""

from __future__ import annotations

import json
import time

import pytest

from edgeops.fleet.server import FleetServer, ServerOptions
from tests.fleet.test_alerts_mqtt import Subscriber, retained_now
from tests.fleet.test_alerts_webhook import Endpoint

pytest.importorskip("paho.mqtt.client")
TOPIC = "edgeops/demo/alerts/offline/pi-01"


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_agent_that_goes_away_fires_offline_and_resolves_when_it_returns(broker, tmp_path):
    from edgeops.agent import Agent

    rules = tmp_path / "rules.toml"
    rules.write_text('[rules.offline]\nkind = "offline"\nafter = "1s"\nseverity = "critical"\n')
    hook = Endpoint()
    options = ServerOptions(broker=broker.url, fleet="demo", db=str(tmp_path / "fleet.db"), http=None,
                            rules=str(rules), webhook=hook.url, client_id="srv", alerts_every_s=0.2)

    def agent():
        return Agent(None, broker=broker.url, fleet="demo", device="pi-01", store_dir=str(tmp_path / "a"),
                     interval_s=0.2, labels={"site": "berlin"}).start()

    live = Subscriber(broker.url)
    with FleetServer(options) as server:
        assert server.wait_ready(10)
        device = agent()
        try:
            assert wait_until(lambda: len(server.store.telemetry("demo", "pi-01")) >= 3)
            assert server.store.alerts("demo") == []
        finally:
            device.stop()  # its retained status says offline, and no telemetry comes any more
        assert wait_until(lambda: [a["state"] for a in server.store.alerts("demo")] == ["firing"])
        held = retained_now(broker.url)[TOPIC]
        assert (held["state"], held["severity"], held["labels"]) == ("firing", "critical", {"site": "berlin"})
        assert hook.wait(1)[0][1]["rule"] == "offline"

        device = agent()  # back
        try:
            assert wait_until(lambda: [a["state"] for a in server.store.alerts("demo")] == ["resolved"])
        finally:
            device.stop()
        assert TOPIC not in retained_now(broker.url)
        assert [body["state"] for _, body, _ in hook.wait(2)][:2] == ["firing", "resolved"]
    events = [json.loads(p)["state"] for t, p, _ in live.messages if t == TOPIC + "/event"]
    assert events[:2] == ["firing", "resolved"]
    live.close()
    hook.close()
