"""Device health: real figures from this machine, and Raspberry Pi / Jetson boards from fake sysfs trees."""

from __future__ import annotations

import json
import os
import platform
import stat
import time
from pathlib import Path

import pytest

from edgeops.agent.health import board, health, thermal_zones, throttling

ALWAYS = {"cpu_percent", "mem_percent", "rss_mb", "disk_free_mb"}


def make_tree(root: Path, files: dict[str, str]) -> str:
    """Write ``files`` ({path under root: content}) as real files and return the root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(root)


def zones(*readings: tuple[str, int]) -> dict[str, str]:
    files = {}
    for i, (kind, millideg) in enumerate(readings):
        files[f"sys/class/thermal/thermal_zone{i}/type"] = kind + "\n"
        files[f"sys/class/thermal/thermal_zone{i}/temp"] = f"{millideg}\n"
    return files


PI4 = {
    **zones(("cpu-thermal", 48686)),
    "sys/devices/platform/soc/soc:firmware/get_throttled": "50005\n",
    "proc/device-tree/model": "Raspberry Pi 4 Model B Rev 1.4\x00",
    "proc/uptime": "12345.67 40000.00\n",
    "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n',
}
JETSON_NANO = {
    **zones(("AO-therm", 41500), ("CPU-therm", 34000), ("GPU-therm", 31000), ("PLL-therm", 31500),
            ("PMIC-Die", 100000), ("thermal-fan-est", 33000)),
    "proc/device-tree/model": "NVIDIA Jetson Nano Developer Kit\x00",
}
JETSON_ORIN = {
    **zones(("cpu-thermal", 47250), ("gpu-thermal", 45500), ("cv0-thermal", -256000), ("soc0-thermal", 46312),
            ("tj-thermal", 47250)),
    "proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00",
}


# --- this machine, for real ----------------------------------------------------------------------

def test_real_machine_gives_sane_numbers(tmp_path):
    health(str(tmp_path))  # the first cpu_percent of a process is 0.0 by psutil's design
    time.sleep(0.05)
    h = health(str(tmp_path))
    assert ALWAYS <= set(h)
    assert 0.0 <= h["cpu_percent"] <= 100.0
    assert 0.0 < h["mem_percent"] < 100.0
    assert 10 < h["rss_mb"] < 100_000  # python and numpy at least
    assert h["disk_free_mb"] > 0
    assert h["uptime_s"] > 0
    assert None not in h.values()
    json.dumps(h)


def test_uptime_of_the_agent_when_it_says_when_it_started(tmp_path):
    h = health(str(tmp_path), started=time.time() - 42)
    assert h["uptime_s"] == pytest.approx(42, abs=1)


def test_store_that_does_not_exist_yet_reports_its_file_system(tmp_path):
    assert health(str(tmp_path / "not" / "yet"))["disk_free_mb"] > 0


# --- boards, from fake sysfs trees ---------------------------------------------------------------

def test_raspberry_pi_temperature_and_throttling(tmp_path):
    h = health(str(tmp_path), root=make_tree(tmp_path / "pi", PI4))
    assert h["temperature_c"] == 48.7
    assert h["thermal"] == {"cpu-thermal": 48.7}
    assert h["uptime_s"] == 12345.7
    assert h["throttled"] == {
        "raw": "0x50005",
        "now": {"under_voltage": True, "freq_capped": False, "throttled": True, "soft_temp_limit": False},
        "since_boot": {"under_voltage": True, "freq_capped": False, "throttled": True, "soft_temp_limit": False},
    }


@pytest.mark.parametrize("raw, now, since_boot", [
    pytest.param("0", [], [], id="all-fine"),
    pytest.param("0x50000", [], ["under_voltage", "throttled"], id="under-voltage-earlier"),
    pytest.param("80008", ["soft_temp_limit"], ["soft_temp_limit"], id="hot-now"),
    pytest.param("2", ["freq_capped"], [], id="capped-now"),
    pytest.param("f000f", ["under_voltage", "freq_capped", "throttled", "soft_temp_limit"],
                 ["under_voltage", "freq_capped", "throttled", "soft_temp_limit"], id="everything"),
])
def test_pi_throttle_bits_decoded(tmp_path, raw, now, since_boot):
    root = make_tree(tmp_path, {"sys/devices/platform/soc/soc:firmware/get_throttled": raw})
    flags = throttling(root)
    assert [k for k, v in flags["now"].items() if v] == now
    assert [k for k, v in flags["since_boot"].items() if v] == since_boot


def test_jetson_nano_zones_and_the_fixed_pmic_reading(tmp_path):
    h = health(str(tmp_path), root=make_tree(tmp_path / "nano", JETSON_NANO))
    assert h["thermal"] == {"AO-therm": 41.5, "CPU-therm": 34.0, "GPU-therm": 31.0, "PLL-therm": 31.5,
                            "PMIC-Die": 100.0, "thermal-fan-est": 33.0}
    assert h["temperature_c"] == 41.5  # PMIC-Die always reads 100 °C: not a chip temperature
    assert "throttled" not in h


def test_jetson_orin_skips_disabled_zones(tmp_path):
    h = health(str(tmp_path), root=make_tree(tmp_path / "orin", JETSON_ORIN))
    assert "cv0-thermal" not in h["thermal"]  # -256 °C: a disabled sensor
    assert h["temperature_c"] == pytest.approx(47.25, abs=0.06)  # the hottest of the real zones
    assert set(h["thermal"]) == {"cpu-thermal", "gpu-thermal", "soc0-thermal", "tj-thermal"}


def test_repeated_zone_types_and_zones_without_type(tmp_path):
    files = zones(("acpitz", 30000), ("acpitz", 35000))
    files["sys/class/thermal/thermal_zone2/temp"] = "40000"
    assert thermal_zones(make_tree(tmp_path, files)) == {"acpitz": 30.0, "acpitz#1": 35.0, "thermal_zone2": 40.0}


@pytest.mark.parametrize("files", [
    pytest.param({}, id="nothing"),
    pytest.param({"sys/class/thermal/thermal_zone0/type": "cpu-thermal"}, id="zone-without-temp"),
    pytest.param({**zones(("cpu-thermal", 0)), "sys/class/thermal/thermal_zone0/temp": "n/a"}, id="temp-not-a-number"),
    pytest.param({"sys/devices/platform/soc/soc:firmware/get_throttled": "garbage"}, id="throttled-not-hex"),
    pytest.param({"sys/devices/platform/soc/soc:firmware/get_throttled": ""}, id="throttled-empty"),
    pytest.param({"proc/uptime": "soon"}, id="uptime-not-a-number"),
])
def test_what_the_board_does_not_expose_is_absent(tmp_path, files):
    h = health(str(tmp_path), root=make_tree(tmp_path / "board", files))
    assert set(h) == ALWAYS
    assert None not in h.values()


def test_unreadable_files_are_absent_too(tmp_path, monkeypatch):
    """Mode 0 files. Root reads them anyway, so there (as in CI containers) the module's ``open`` refuses what a
    non-root user could not read: the test runs everywhere instead of being skipped as root."""
    from edgeops import _device as health_module  # the board files are read there

    root = make_tree(tmp_path / "board", PI4)
    for rel in ("sys/class/thermal/thermal_zone0/temp", "sys/devices/platform/soc/soc:firmware/get_throttled"):
        os.chmod(os.path.join(root, rel), 0)
    if os.geteuid() == 0:
        def open_as_a_user(path, *args, **kwargs):
            if os.path.exists(path) and os.stat(path).st_mode & 0o444 == 0:
                raise PermissionError(13, "Permission denied", path)
            return open(path, *args, **kwargs)

        monkeypatch.setattr(health_module, "open", open_as_a_user, raising=False)
    h = health(str(tmp_path), root=root)
    assert "temperature_c" not in h and "throttled" not in h
    assert {"cpu_percent", "mem_percent"} <= set(h)  # the rest is still there


# --- vcgencmd, a real executable on PATH ---------------------------------------------------------

needs_no_pi_sysfs = pytest.mark.skipif(os.path.exists("/sys/devices/platform/soc/soc:firmware/get_throttled"),
                                       reason="a real Pi: sysfs answers before vcgencmd")


def fake_vcgencmd(folder: Path, script: str) -> None:
    exe = folder / "vcgencmd"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


@needs_no_pi_sysfs
def test_vcgencmd_when_sysfs_has_no_flags(tmp_path, monkeypatch):
    fake_vcgencmd(tmp_path, 'echo "throttled=0x50000"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    flags = throttling("/")
    assert flags["raw"] == "0x50000" and flags["since_boot"]["under_voltage"] and not flags["now"]["throttled"]


@needs_no_pi_sysfs
def test_a_hanging_vcgencmd_costs_one_second_at_most(tmp_path, monkeypatch):
    fake_vcgencmd(tmp_path, "exec sleep 10")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    start = time.monotonic()
    assert throttling("/") is None
    assert time.monotonic() - start < 3


# --- what the device is --------------------------------------------------------------------------

@pytest.mark.parametrize("files, model, os_name", [
    pytest.param(PI4, "Raspberry Pi 4 Model B Rev 1.4", "Debian GNU/Linux 12 (bookworm)", id="raspberry-pi"),
    pytest.param(JETSON_NANO, "NVIDIA Jetson Nano Developer Kit", None, id="jetson"),
    pytest.param({"sys/class/dmi/id/sys_vendor": "Intel Corporation\n", "sys/class/dmi/id/product_name": "NUC8i5BEH\n"},
                 "Intel Corporation NUC8i5BEH", None, id="x86-dmi"),
])
def test_board_model_and_os(tmp_path, files, model, os_name):
    b = board(root=make_tree(tmp_path, files))
    assert b["model"] == model
    if os_name:
        assert b["os"] == os_name
    assert b["python"] == platform.python_version() and b["machine"] == platform.machine()


def test_board_without_model_files(tmp_path):
    b = board(root=str(tmp_path))
    assert "model" not in b
    assert set(b) == {"os", "kernel", "python", "machine"} and all(b.values())


def test_board_of_this_machine():
    b = board()
    assert b["python"] == platform.python_version() and b["os"]
    json.dumps(b)
