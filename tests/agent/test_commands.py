"""Commands from outside: every one is answered, whatever it holds and however many come at once.

Regressions: 100 pings in a burst got 41 replies (paho's queue was full, ``publish`` returned False
and the reply was dropped silently); a payload nested 5000 deep raised a raw RecursionError (on
``cmd/ota`` with no reply at all); a ``request_id`` of NaN came back as ``NaN``, which is not JSON.
"""

from __future__ import annotations

import json
import time

import pytest

from edgeops import _json
from edgeops.agent import Agent
from edgeops.agent.config import OtaConfig
from edgeops.agent.transport import MemoryTransport
from edgeops.errors import DataError
from tests.agent.waiting import wait_until

BASE = "edgeops/demo/pi-01"


def strict(payload: bytes) -> dict:
    """Parse as a receiver that follows the JSON spec does: NaN or Infinity is an error."""
    return _json.loads(payload, what="a reply", error=DataError)


def test_a_burst_of_200_pings_gets_200_replies(broker, collector, tmp_path):
    pytest.importorskip("paho.mqtt")
    c = collector(f"{BASE}/cmd/ping/reply")
    with Agent(None, broker=broker.url, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
               interval_s=60) as agent:
        assert agent.transport.wait_connected(10)
        time.sleep(0.3)  # the command subscription follows the connection
        for i in range(200):  # all at once: no waiting for the broker between them
            c.client.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": f"r{i}"}).encode(), qos=1)

        def answered() -> set:
            return {strict(p)["request_id"] for p in c.payloads(f"{BASE}/cmd/ping/reply")}

        assert c.wait_for(lambda ms: len(answered()) == 200, 30), f"{len(answered())} of 200 replies"
    replies = [strict(p) for p in c.payloads(f"{BASE}/cmd/ping/reply")]
    assert answered() == {f"r{i}" for i in range(200)} and all(r["ok"] and r["pong"] for r in replies)


@pytest.fixture
def device(tmp_path):
    """A started agent (with OTA) on a MemoryTransport; ``device.ask(command, payload)`` -> the reply."""
    t = MemoryTransport()
    agent = Agent(None, transport=t, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"), interval_s=60,
                  ota=OtaConfig(trusted_keys=[]))
    t.on_connect, t.on_message = agent._on_connect, agent._on_message

    def reply(command: str, payload: bytes) -> dict:
        topic = f"{BASE}/cmd/{command}/reply"
        before = len(t.messages(topic))
        assert t.deliver(f"{BASE}/cmd/{command}", payload)
        assert wait_until(lambda: len(t.messages(topic)) > before), f"no reply on {topic}"
        return strict(t.messages(topic)[-1].payload)

    with agent:
        agent.ask = reply
        yield agent


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("command", ["ping", "config", "telemetry-now", "ota", "reboot"])
def test_deeply_nested_json_gets_an_error_reply_on_every_command(device, command):
    got = device.ask(command, DEEP)
    assert got["ok"] is False and "nests arrays or objects 5000 deep" in got["error"], got
    assert device.ask("ping", b"")["ok"]  # and the agent goes on


@pytest.mark.parametrize("payload, words", [
    pytest.param(b'{"request_id": NaN}', "NaN, which is not JSON", id="nan-literal"),
    pytest.param(b'{"request_id": "a", "request_id": "b"}', "repeats the key(s) request_id", id="duplicate-key"),
])
def test_json_that_is_not_json_is_refused_with_the_reason(device, payload, words):
    got = device.ask("ping", payload)
    assert got["ok"] is False and words in got["error"] and "request_id" not in got, got


def test_a_request_id_that_overflows_to_infinity_comes_back_as_null(device):
    got = device.ask("ping", b'{"request_id": 1e999}')  # Python reads 1e999 as inf
    assert got["ok"] and got["request_id"] is None


def test_a_nan_value_anywhere_in_what_the_agent_writes_becomes_null(device):
    device.model_info = {**device.model_info, "version": float("nan")}  # a stand-in for any non-finite value
    device.transport.set_connected(False)
    device.transport.set_connected(True)  # the retained status again, naming the model
    status = device.transport.messages(f"{BASE}/status")[-1].payload
    assert strict(status)["model"]["version"] is None
    assert device.ask("telemetry-now", b"{}")["ok"]
    assert wait_until(lambda: device.transport.messages(f"{BASE}/telemetry"))
    assert strict(device.transport.messages(f"{BASE}/telemetry")[-1].payload)["model"]["version"] is None
