"""``benchmarks/fleet_sim.py`` for a few seconds: 20 simulated devices, the subscribers paused, a broker outage and
its backlog, one collector on sqlite; its JSON says nothing was lost or stored twice and carries the ratios to the
bare subscriber."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeops.agent.localbroker import LocalBroker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # about 12 s


def test_twenty_devices_through_an_outage_are_stored_exactly_once(tmp_path):
    pytest.importorskip("aiomqtt", reason="the simulator's devices need aiomqtt (pip install 'edgeops[dev]')")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgeops[agent]')")
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fleet_sim.py"), "--devices", "20", "--rate", "2",
           "--duration", "3", "--pause", "2", "--backlog", "4", "--tail", "1", "--db", "sqlite",
           "--workdir", str(tmp_path), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    made = report["made"]
    assert made >= 20 * 2 * (3 + 2 + 2)  # steady, pause, outage at 2 Hz
    store = report["collector"]["store"]
    assert store == {"rows": made, "devices": 20, "missing": 0, "duplicates": 0, "unexpected": 0}
    assert report["bare"]["missing"] == 0 and report["collector"]["missing"] == 0
    assert report["collector"]["catch_up"]["backlog_messages"] >= 20 * 4 - 20  # queued at the broker while paused
    assert report["collector"]["burst"]["backlog_messages"] >= 20 * 4  # queued on the devices while cut off
    assert report["collector"]["burst"]["drain_s"] > 0
    lag = report["collector"]["steady"]["lag_ms"]
    assert 0 <= lag["p50"] <= lag["p95"]
    ratio = report["ratio"]
    assert ratio["steady_msgs_per_s"] is not None and 0.5 < ratio["steady_msgs_per_s"] < 1.5
    assert ratio["burst_msgs_per_s"] is not None and ratio["burst_msgs_per_s"] > 0
    assert ratio["catch_up_msgs_per_s"] is not None and ratio["catch_up_msgs_per_s"] > 0
    assert report["ok"] is True
