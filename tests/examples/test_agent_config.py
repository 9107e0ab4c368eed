"""The shipped ``examples/agent.toml`` is a valid config whose paths exist, and an agent started from
it (pointed at the test's broker and a temporary store) serves the example model and reports."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

import pytest

from edgeops.agent import Agent, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.toml"


def test_the_example_config_loads_and_names_files_that_exist():
    cfg = load_config(EXAMPLE)
    assert (cfg.fleet, cfg.device) == ("demo", "pi-01")
    assert cfg.broker_url == "mqtt://127.0.0.1:1883"
    assert os.path.isfile(cfg.model_path), cfg.model_path
    assert os.path.isfile(cfg.workload_data), cfg.workload_data
    assert os.path.isabs(cfg.store_dir) and not cfg.store_dir.startswith(str(EXAMPLE.parent))


def test_an_agent_from_the_example_config_reports_telemetry(tmp_path):
    pytest.importorskip("paho.mqtt")
    pytest.importorskip("onnxruntime")
    from edgeops.agent.localbroker import LocalBroker
    from edgeops.agent.workload import replay

    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    import paho.mqtt.client as mqtt

    with LocalBroker() as broker:
        cfg = dataclasses.replace(load_config(EXAMPLE), broker_url=broker.url, store_dir=str(tmp_path / "store"),
                                  interval_s=0.5)
        got: list[dict] = []
        arrived = threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_connect = lambda c, *a: c.subscribe("edgeops/demo/pi-01/telemetry", qos=1)
        sub.on_message = lambda c, u, m: (got.append(json.loads(m.payload)), arrived.set() if len(got) >= 2 else None)
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        stop = threading.Event()
        try:
            with Agent.from_config(cfg) as agent:
                t = threading.Thread(target=replay, args=(agent.model, cfg.workload_data, cfg.workload_rate_hz, stop,
                                                          lambda: agent.model), daemon=True)
                t.start()
                assert arrived.wait(15), "no telemetry from the example config's agent"
                stop.set()
                t.join(5)
        finally:
            sub.loop_stop()
            sub.disconnect()
    assert got[-1]["model"]["name"] == "digits" and got[-1]["model"]["version"] == "1.0"
    assert got[-1]["device"] == "pi-01" and got[-1]["fleet"] == "demo"
    assert sum(m["inference"]["count"] for m in got) > 0, "the example workload ran no inference"
