"""What the operating system says about the CPU while a benchmark runs.

A :class:`SystemProbe` reads CPU frequency from ``/sys``, the chip's temperature and
(on a Raspberry Pi) the firmware's throttling flags through :mod:`edgeops._device` (the
probe the agent's health uses too: thermal zones, ``get_throttled`` or ``vcgencmd``), and
the process's resident and peak memory from ``/proc/self/status``; every reading is
``None`` where the OS does not expose it. :class:`FixedProbe` replays given readings: the test double.
"""

from __future__ import annotations

import glob
import os
import platform
import resource
from dataclasses import dataclass

from .._device import chip_temperature, thermal_zones, throttled_value


@dataclass(frozen=True)
class Reading:
    cpu_freq_mhz: float | None
    temperature_c: float | None
    throttled: int | None  # Raspberry Pi get_throttled bits, 0 = fine


class SystemProbe:
    """Reads the real machine."""

    def read(self) -> Reading:
        return Reading(_cpu_freq_mhz(), chip_temperature(thermal_zones()), throttled_value())

    def describe(self) -> dict[str, object]:
        return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine()}


class FixedProbe(SystemProbe):
    """Replays ``readings`` one per ``read()`` (the last one repeats)."""

    def __init__(self, readings: list[Reading]):
        self.readings = list(readings)
        self.i = 0

    def read(self) -> Reading:
        r = self.readings[min(self.i, len(self.readings) - 1)]
        self.i += 1
        return r


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _cpu_freq_mhz() -> float | None:
    values = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
        text = _read(path)
        if text and text.isdigit():
            values.append(int(text) / 1000)
    if not values:
        cpuinfo = _read("/proc/cpuinfo") or ""
        for line in cpuinfo.splitlines():
            if line.lower().startswith("cpu mhz"):
                try:
                    values.append(float(line.split(":")[1]))
                except (IndexError, ValueError):
                    pass
    return sum(values) / len(values) if values else None


def rss_mb() -> float | None:
    """Current resident set size of this process."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float | None:
    """Peak resident set size since the last :func:`reset_peak_rss` (or process start)."""
    peak = _status_mb("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return peak


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float | None:
    status = _read("/proc/self/status")
    if not status:
        return None
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None
