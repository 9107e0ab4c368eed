"""``edgeops fleet status|watch`` and ``edgeops agent install-service`` against a real broker and agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeops.agent import Agent

pytest.importorskip("paho.mqtt")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def edgeops_cli(*args, timeout=60, env=None):
    """The CLI in a subprocess; tables 200 columns wide whatever terminal the tests run in."""
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_fleet_status_shows_each_device_and_its_numbers(broker, tmp_path):
    pytest.importorskip("onnxruntime")
    agents = [Agent(EXAMPLES / "digits_mlp.onnx", broker=broker.url, fleet="demo", device=f"pi-0{i}",
                    store_dir=str(tmp_path / f"s{i}"), interval_s=0.3).start() for i in (1, 2)]
    try:
        time.sleep(1)
        agents[1].stop()  # pi-02 leaves cleanly: offline, retained
        proc = edgeops_cli("fleet", "status", "--broker", broker.url, "--fleet", "demo", "--wait", "1.5", "--json")
    finally:
        agents[0].stop()
    assert proc.returncode == 0, proc.stderr
    rows = {r["device"]: r for r in json.loads(proc.stdout)["devices"]}
    assert rows["pi-01"]["state"] == "online" and rows["pi-02"]["state"] == "offline"
    assert rows["pi-01"]["model"]["name"] == "digits_mlp" and rows["pi-01"]["telemetry_age_s"] < 2
    assert rows["pi-01"]["seq_gaps"] == 0 and rows["pi-01"]["telemetry_count"] >= 3
    human = edgeops_cli("fleet", "status", "--broker", broker.url, "--fleet", "demo", "--wait", "0.3")
    assert "pi-02" in human.stdout and "offline" in human.stdout


def test_fleet_watch_runs_for_a_duration(broker):
    proc = edgeops_cli("fleet", "watch", "--broker", broker.url, "--fleet", "demo", "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    assert "fleet demo" in proc.stdout


def test_fleet_status_without_a_broker_is_a_clear_error():
    proc = edgeops_cli("fleet", "status", "--broker", "mqtt://127.0.0.1:1", "--fleet", "demo", "--wait", "0.5")
    assert proc.returncode == 2 and "cannot connect" in proc.stderr and "Traceback" not in proc.stderr


def test_fleet_view_drops_duplicates_and_counts_gaps():
    from edgeops.fleet.status import FleetView

    view = FleetView("demo")
    t = "edgeops/demo/d1/telemetry"
    for seq, mid in [(1, "a"), (2, "b"), (2, "b"), (5, "e"), (4, "d")]:
        view.feed(t, json.dumps({"seq": seq, "id": mid}).encode())
    view.feed(t, b"{broken")
    view.feed("edgeops/demo/d1/status", b'{"state": "offline"}')
    (row,) = view.snapshot()
    assert row["telemetry_count"] == 3 and row["seq_gaps"] == 2 and row["seq"] == 5 and row["state"] == "offline"
    assert view.malformed == 1


def test_install_service_writes_a_systemd_unit(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[broker]\nurl = "mqtt://127.0.0.1:1883"\n[device]\nfleet = "demo"\nid = "pi-01"\n')
    unit = tmp_path / "edgeops-agent.service"
    proc = edgeops_cli("agent", "install-service", "--config", config, "--output", unit, "--user", "edgeops")
    assert proc.returncode == 0, proc.stderr
    text = unit.read_text()
    assert f"agent run --config {config}" in text and "Restart=always" in text and "User=edgeops" in text
    assert "WantedBy=multi-user.target" in text and "systemctl" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nfleet='demo'\n")
    assert edgeops_cli("agent", "install-service", "--config", bad, "--output", tmp_path / "x").returncode == 2
    assert not (tmp_path / "x").exists()
