"""``benchmarks/rollout_sim.py`` for a few seconds: 20 simulated OTA devices, the real ``edgeops fleet serve``; a
good bundle reaches every device, a bad one halts at its first stage and every device it reached is back on the
good version. Its JSON carries the times and the ratios to their floors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeops.agent.localbroker import LocalBroker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # about 15 s


def test_twenty_devices_complete_a_good_rollout_and_roll_a_bad_one_back(tmp_path):
    pytest.importorskip("aiomqtt", reason="the simulator's devices need aiomqtt (pip install 'edgeops[dev]')")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgeops[agent]')")
    pytest.importorskip("cryptography", reason="signing the bundles needs cryptography")
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rollout_sim.py"), "--devices", "20", "--rate", "2",
           "--stages", "10,50,100", "--soak", "1.5s", "--timeout", "90", "--workdir", str(tmp_path), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    good, bad = report["good"], report["bad"]
    assert good["status"]["state"] == "completed" and good["devices_on_new"] == good["store_on_new"] == 20
    assert good["to_100_s"] >= good["floor_s"] == 3 * 1.5  # no rollout beats its soaks
    assert [s["stage"] for s in good["stages"]] == [10, 50, 100] and all(s["soak_s"] >= 1.5 for s in good["stages"])
    assert bad["status"]["state"] == "rolled_back" and "p95_ratio" in bad["reason"]
    assert 0 < bad["detect_s"] <= bad["rolled_back_s"]
    assert bad["updated_devices"] >= 1 and bad["devices_back"] == bad["store_back"] == bad["updated_devices"]
    assert bad["device_rollbacks"] == bad["updated_devices"] and not bad["devices_not_on_old"]
    assert good["ratio"] >= 1 and bad["ratio"] > 0
    assert report["sim_errors"] == [] and report["ok"] is True
