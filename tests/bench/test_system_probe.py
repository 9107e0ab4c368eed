"""The benchmark's system probe reads the board as the agent's health does (one probe, edgeops._device)."""

from __future__ import annotations

import os
import stat

import pytest

from edgeops import _device
from edgeops.agent.health import health
from edgeops.bench.system import SystemProbe


@pytest.mark.skipif(os.path.exists("/" + _device.PI_THROTTLED), reason="a real Pi: sysfs answers before vcgencmd")
def test_the_benchmark_falls_back_to_vcgencmd_like_the_agent(tmp_path, monkeypatch):
    exe = tmp_path / "vcgencmd"
    exe.write_text('#!/bin/sh\necho "throttled=0x50005"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert SystemProbe().read().throttled == 0x50005
    assert health(str(tmp_path))["throttled"]["raw"] == "0x50005"


def test_the_benchmark_takes_the_chip_temperature_the_agent_reports(tmp_path, monkeypatch):
    """Jetson's PMIC-Die reads a fixed 100 °C: neither the agent nor the benchmark takes it for the chip."""
    for i, (kind, milli) in enumerate([("CPU-therm", "45500"), ("PMIC-Die", "100000"), ("GPU-therm", "47000")]):
        zone = tmp_path / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    zones = _device.thermal_zones(str(tmp_path))
    assert zones == {"CPU-therm": 45.5, "PMIC-Die": 100.0, "GPU-therm": 47.0}
    assert _device.chip_temperature(zones) == 47.0
    real_zones = _device.thermal_zones
    monkeypatch.setattr("edgeops.bench.system.thermal_zones", lambda root="/": real_zones(str(tmp_path)))
    assert SystemProbe().read().temperature_c == 47.0
