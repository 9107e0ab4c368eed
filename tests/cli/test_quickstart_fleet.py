"""``edgeops quickstart --fleet``: the fleet server on sqlite with a local mosquitto, two agents, the page's URL and
the first stored rows, in well under 30 s, leaving nothing running."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from edgeops.agent.localbroker import LocalBroker
from edgeops.cli import cli
from tests.conftest import needs_ort

pytestmark = needs_ort


def tour(tmp_path, *args):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgeops[agent]')")
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    before = {t.name for t in threading.enumerate()}
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["quickstart", "--fleet", *args],
                                env={"COLUMNS": "100", "EDGEOPS_QUICKSTART_DIR": str(tmp_path)},
                                catch_exceptions=False)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    left = {t.name for t in threading.enumerate() if t.is_alive()} - before
    return result, elapsed, left


def test_the_fleet_tour_stores_every_message_of_both_agents(tmp_path):
    result, elapsed, left = tour(tmp_path, "--json")
    fleet = json.loads(result.stdout)["fleet"]

    assert elapsed < 30
    assert "skipped" not in fleet, fleet
    assert fleet["local_broker"] is True and fleet["url"].startswith("http://127.0.0.1:")
    assert set(fleet["sent"]) == {"demo-01", "demo-02"} and all(n >= 3 for n in fleet["sent"].values())
    assert fleet["stored"] == fleet["sent"]  # every telemetry message, once
    devices = {d["id"]: d for d in fleet["devices"]}
    assert set(devices) == {"demo-01", "demo-02"}
    assert {d["model_version"] for d in devices.values()} == {"1.0", "1.1"}
    assert all(d["state"] == "offline" for d in devices.values())  # the agents stopped, saying so
    for device in devices:
        rows = [r for r in fleet["first_rows"] if r["device"] == device]
        assert [r["seq"] for r in rows] == [1, 2, 3]
        assert all(r["received"] >= r["ts"] - 1000 for r in rows)
    assert any(r["count"] for r in fleet["first_rows"])  # the replayed digits ran through the model
    assert fleet["api_devices"] == ["demo-01", "demo-02"]  # the page's API answered while it ran
    assert not any(name.startswith(("fleet-", "paho", "edgeops")) for name in left), left


def test_the_fleet_tour_prints_the_url_and_the_first_rows(tmp_path):
    result, elapsed, _ = tour(tmp_path)
    text = result.output

    assert elapsed < 30
    assert "1. broker" in text and "2. fleet server" in text and "3. agents" in text and "4. store" in text
    assert "the page was at http://127.0.0.1:" in text
    assert "first telemetry rows" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("demo-01", "demo-02"))]
    assert {r[0] for r in rows} == {"demo-01", "demo-02"}
    assert "edgeops fleet serve --broker" in text
