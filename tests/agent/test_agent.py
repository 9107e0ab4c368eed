"""edgeops.Agent against a real mosquitto: telemetry with every key, no loss across a broker outage or a
SIGKILL, commands, Home Assistant discovery, TLS with client certificates, online/offline status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgeops
from edgeops.agent import Agent
from tests.agent.waiting import wait_until

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
TELEMETRY_KEYS = {"seq", "ts", "id", "device", "fleet", "model", "inference", "guardrails", "drift", "health", "runtime"}


def telemetry(collector, device="pi-01", fleet="demo"):
    topic = f"edgeops/{fleet}/{device}/telemetry"
    return [json.loads(p) for p in collector.payloads(topic)]


def unique_seqs(messages):
    seen, out = set(), []
    for m in messages:
        if m["id"] not in seen:  # receivers drop duplicates by id
            seen.add(m["id"])
            out.append(m["seq"])
    return out


@pytest.fixture
def model():
    return edgeops.load(EXAMPLES / "digits_mlp.onnx")


def make_agent(broker, tmp_path, model=None, **kwargs):
    kwargs.setdefault("interval_s", 0.3)
    return Agent(model, broker=broker.url, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"), **kwargs)


def test_telemetry_arrives_with_every_key(broker, collector, tmp_path, model):
    c = collector("edgeops/demo/#")
    x = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]
    with make_agent(broker, tmp_path, model):
        for i in range(200):
            model.run(x[i % len(x)][None])
        assert c.wait_for(lambda ms: len(telemetry(c)) >= 2, 10)
    t = telemetry(c)[-1]
    assert TELEMETRY_KEYS <= set(t)
    assert t["model"]["name"] == "digits_mlp" and len(t["model"]["sha256"]) == 64
    assert set(t["inference"]["latency_ms"]) >= {"p50", "p95", "p99", "mean"}
    assert sum(m["inference"]["count"] for m in telemetry(c)) == 200
    assert t["drift"]["enabled"] and "pixels" in t["drift"]["inputs"]  # the profile next to the model
    assert t["guardrails"]["enabled"] and "pixels" in t["guardrails"]["inputs"]  # counted, values unchanged
    assert {"cpu_percent", "mem_percent", "rss_mb", "disk_free_mb", "uptime_s"} <= set(t["health"])
    assert {"edgeops", "backend", "python", "os"} <= set(t["runtime"])
    status = [json.loads(p) for p in c.payloads("edgeops/demo/pi-01/status")]
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"  # clean stop says so


def test_drift_is_reported_when_inputs_shift(broker, tmp_path, model):
    x = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]
    with make_agent(broker, tmp_path, model, interval_s=60) as agent:
        for row in x[:200]:
            model.run(row[None])
        stable = agent.telemetry_now()["drift"]
        for row in x[:200]:
            model.run((1.0 - row)[None])  # inverted images: the input distribution moved
        shifted = agent.telemetry_now()["drift"]
    assert stable["max_psi"] < 0.1 < 0.2 < shifted["max_psi"]


def test_a_broker_outage_loses_nothing_and_keeps_order(make_broker, collector, tmp_path):
    broker = make_broker()
    c = collector("edgeops/demo/pi-01/telemetry", url=broker.url, persistent=True)
    agent = make_agent(broker, tmp_path, interval_s=0.1).start()
    try:
        assert c.wait_for(lambda ms: len(ms) >= 3, 10)
        broker.stop()
        time.sleep(3)  # telemetry keeps being produced into the outbox
        assert agent.outbox.stats()["pending"] >= 10
        broker.start()
        assert agent.wait_drained(20)
        last = agent.outbox.last_seq("telemetry")
        assert c.wait_for(lambda ms: len(unique_seqs(telemetry(c))) >= last, 15)
    finally:
        agent.stop()
    seqs = unique_seqs(telemetry(c))
    assert seqs[:last] == list(range(1, last + 1))  # every seq, in order, none lost


AGENT_TOML = """
[broker]
url = "{url}"
[device]
fleet = "demo"
id = "pi-01"
[telemetry]
interval_s = 0.1
[store]
dir = "{store}"
[model]
path = "{model}"
"""


def test_sigkill_with_queued_messages_then_restart_delivers_them(make_broker, collector, tmp_path):
    broker = make_broker()
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_TOML.format(url=broker.url, store=tmp_path / "store", model=EXAMPLES / "digits_mlp.onnx"))
    broker.stop()  # the agent starts without a broker: everything it says waits in the outbox
    cmd = [sys.executable, "-m", "edgeops", "agent", "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    from edgeops.agent.outbox import Outbox

    def queued_now() -> int:
        if not (tmp_path / "store" / "outbox.sqlite").exists():  # the agent creates it
            return 0
        with Outbox(tmp_path / "store" / "outbox.sqlite") as box:
            return box.last_seq("telemetry")

    # at least 5 messages queued before the kill (seconds natively; longer under emulation, tools/aarch64)
    assert wait_until(lambda: queued_now() >= 5, 60, step=0.2, tolerate=(Exception,)), proc.poll()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    queued = queued_now()
    assert queued >= 5
    broker.start()
    c = collector("edgeops/demo/pi-01/telemetry", url=broker.url)
    proc = subprocess.Popen(cmd + ["--duration", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert c.wait_for(lambda ms: len(unique_seqs(telemetry(c))) >= queued + 3, 20), proc.stderr
    finally:
        proc.wait(20)
    seqs = unique_seqs(telemetry(c))
    assert seqs[:queued + 3] == list(range(1, queued + 4))  # the killed run's messages first, then no gap
    assert proc.returncode == 0


@pytest.mark.parametrize("command, payload, check", [
    pytest.param("ping", b"", lambda r: r["ok"] and r["pong"], id="ping"),
    pytest.param("config", b'{"interval_s": 5, "request_id": "r1"}',
                 lambda r: r["ok"] and r["interval_s"] == 5.0 and r["request_id"] == "r1", id="config"),
    pytest.param("telemetry-now", b"{}", lambda r: r["ok"] and r["seq"] >= 1, id="telemetry-now"),
    pytest.param("config", b'{"interval_s": -1}', lambda r: not r["ok"] and "interval_s" in r["error"],
                 id="config-out-of-range"),
    pytest.param("config", b"{not json", lambda r: not r["ok"] and "not valid JSON" in r["error"], id="malformed"),
    pytest.param("config", b"[1, 2]", lambda r: not r["ok"] and "JSON object" in r["error"], id="not-an-object"),
    pytest.param("reboot", b"{}", lambda r: not r["ok"] and "unknown command" in r["error"], id="unknown"),
    pytest.param("ping", b"\xff\xfe", lambda r: not r["ok"] and "not UTF-8" in r["error"], id="not-utf8"),
])
def test_commands_are_answered_and_bad_ones_never_crash(broker, collector, tmp_path, command, payload, check):
    c = collector("edgeops/demo/pi-01/#")
    with make_agent(broker, tmp_path, interval_s=60) as agent:
        assert c.wait_for(lambda ms: any(t.endswith("/status") for t, _, _ in ms), 5)
        time.sleep(0.2)  # the agent's command subscription follows its status
        c.publish(f"edgeops/demo/pi-01/cmd/{command}", payload)
        reply_topic = f"edgeops/demo/pi-01/cmd/{command}/reply"
        assert c.wait_for(lambda ms: c.payloads(reply_topic), 5)
        reply = json.loads(c.payloads(reply_topic)[0])
        assert check(reply), reply
        if not reply["ok"]:  # and an event says so
            assert c.wait_for(lambda ms: any(b"command.error" in p for p in c.payloads("edgeops/demo/pi-01/events")), 5)
        c.publish("edgeops/demo/pi-01/cmd/ping", b"")  # still alive
        assert c.wait_for(lambda ms: c.payloads("edgeops/demo/pi-01/cmd/ping/reply"), 5)
        assert agent.transport.connected


def test_home_assistant_discovery_is_retained(broker, collector, tmp_path, model):
    with make_agent(broker, tmp_path, model, home_assistant=True, interval_s=60):
        time.sleep(0.5)
    c = collector("homeassistant/device/#")  # subscribed after the agent left: only retained messages arrive
    assert c.wait_for(lambda ms: ms, 5)
    topic, payload, retain = c.snapshot()[0]
    config = json.loads(payload)
    assert topic == "homeassistant/device/pi-01/config" and retain
    assert config["avty_t"] == "edgeops/demo/pi-01/status" and config["cmps"]


def test_tls_with_client_certificates(tls_broker, pki, collector, tmp_path):
    cert, key = pki.client("pi-01")
    c = collector("edgeops/demo/pi-01/telemetry", url=tls_broker.url, ca=pki.ca, cert=cert, key=key)
    with make_agent(tls_broker, tmp_path, ca=pki.ca, cert=cert, key=key, interval_s=0.2):
        assert c.wait_for(lambda ms: len(ms) >= 2, 10)
    assert json.loads(c.snapshot()[0][1])["seq"] == 1


def test_the_last_will_marks_a_killed_agent_offline(broker, collector, tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_TOML.format(url=broker.url, store=tmp_path / "store", model=EXAMPLES / "digits_mlp.onnx")
                      .replace("interval_s = 0.1", "interval_s = 5"))
    c = collector("edgeops/demo/pi-01/status")
    proc = subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert c.wait_for(lambda ms: any(b'"online"' in p for _, p, _ in ms), 15)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # the broker notices the dead connection after 1.5 x keepalive at most; the will is retained
    assert c.wait_for(lambda ms: b'"offline"' in ms[-1][1], 60)


def test_config_file_errors_are_clear(tmp_path):
    from edgeops.agent import load_config
    from edgeops.errors import UsageError

    bad = tmp_path / "a.toml"
    for text, words in [("[broker]\nurl='mqtt://x'\n[device]\nfleet='demo'\n[telemetry]\nintervl_s=1\n", "intervl_s"),
                        ("[device]\nfleet='demo'\n", "url is required"),
                        ("[broker]\nurl='mqtt://x'\n[device]\nfleet='a/b'\n", "fleet id"),
                        ("[broker]\nurl='mqtt://x'\n[device]\nfleet='demo'\nlabels={'a b'='x'}\n", "label name"),
                        ("[broker]\nurl='mqtt://x'\n[device]\nfleet='demo'\nlabels='canary'\n", "labels must be a table"),
                        ("[broker]\nurl='mqtt://x'\n[device]\nfleet='demo'\nlabels={ring=['a']}\n", "label ring"),
                        ("[broker\n", "not valid TOML")]:
        bad.write_text(text)
        with pytest.raises(UsageError, match=words):
            load_config(bad)
    good = tmp_path / "g.toml"
    good.write_text(AGENT_TOML.format(url="mqtt://127.0.0.1:1", store="store", model="m.onnx"))
    cfg = load_config(good)
    assert cfg.store_dir == os.path.join(str(tmp_path), "store") and cfg.interval_s == 0.1
    assert cfg.labels == {}


def test_labels_from_the_config_go_out_in_every_telemetry_and_status_message(broker, collector, tmp_path):
    from edgeops.agent import load_config

    config = tmp_path / "agent.toml"
    config.write_text(AGENT_TOML.format(url=broker.url, store=tmp_path / "store", model=EXAMPLES / "digits_mlp.onnx")
                      .replace('id = "pi-01"', 'id = "pi-01"\nlabels = {ring = "canary", site = "berlin", rack = 4}'))
    cfg = load_config(config)
    assert cfg.labels == {"ring": "canary", "site": "berlin", "rack": "4"}
    c = collector("edgeops/demo/#")
    with Agent.from_config(cfg):
        assert c.wait_for(lambda ms: len(telemetry(c)) >= 3, 10)
    assert all(t["labels"] == cfg.labels for t in telemetry(c))
    status = [json.loads(p) for p in c.payloads("edgeops/demo/pi-01/status")]
    assert [s["state"] for s in status] == ["online", "offline"] and all(s["labels"] == cfg.labels for s in status)


def test_a_bundle_as_the_agents_model_reports_its_name_and_version(tmp_path):
    pytest.importorskip("onnx")
    from edgeops.agent.transport import MemoryTransport
    from edgeops.bundle import create

    bundle = tmp_path / "digits-3.1.eob"
    create(EXAMPLES / "digits_mlp.onnx", bundle, name="digits", version="3.1")
    agent = Agent(str(bundle), fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
                  transport=MemoryTransport(client_id="pi-01"))
    assert agent.model_info["name"] == "digits" and agent.model_info["version"] == "3.1"
    assert agent.drift is not None  # the bundle's profile travels with it


def test_a_row_leaves_the_outbox_at_its_puback_not_when_published_even_across_a_reconnect(tmp_path):
    """A message published but never acknowledged stays in the outbox; after a reconnect the same ``id`` is sent
    again, and only the PUBACK removes it. (Deleting at publish() time passed every other test.)"""
    from edgeops.agent.transport import MemoryTransport

    t = MemoryTransport(auto_ack=False)  # the broker withholds every PUBACK until t.ack()
    agent = Agent(None, transport=t, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"), interval_s=60)
    t.on_connect, t.on_disconnect = agent._on_connect, agent._on_disconnect
    events = "edgeops/demo/pi-01/events"

    def ids() -> list[str]:
        return [json.loads(m.payload)["id"] for m in t.messages(events)]

    def stored() -> set[str]:
        return {json.loads(e.payload)["id"] for e in agent.outbox.pending()}

    with agent:
        agent.event("test.hello")
        assert wait_until(lambda: len(ids()) == 2, 5)  # agent.started and test.hello, published
        first = ids()
        time.sleep(0.6)  # several sender passes: nothing acknowledged, nothing may be deleted
        assert set(first) <= stored()
        t.set_connected(False)  # the connection drops with both in flight
        t.set_connected(True)
        assert wait_until(lambda: len(ids()) == 4, 5)
        assert ids()[2:] == first  # the same messages again, same ids
        time.sleep(0.6)
        assert set(first) <= stored()
        t.ack()  # the PUBACKs arrive
        assert agent.wait_drained(5)
