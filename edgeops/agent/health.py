"""Device health for telemetry: CPU, memory, disk, uptime, and the board's temperatures and throttling.

:func:`health` reads what every Linux board has through psutil, and what some boards expose in
sysfs: thermal zones (``/sys/class/thermal/thermal_zone*``, Raspberry Pi, Jetson, most SoCs)
and the Raspberry Pi firmware's throttling flags (both read by :mod:`edgeops._device`, the probe the
benchmark harness uses too). A key the board does not expose is absent from the result, never
``None``. :func:`board` says what the device is.

``root`` redirects the board files (sysfs, ``/proc/device-tree``, ``/proc/uptime``,
``/etc/os-release``) to a copy of that tree, which is how the tests give a Pi or a Jetson
layout to a laptop; psutil's process and memory figures always come from the real machine.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from typing import Any

from .._device import chip_temperature, decode_throttled, read_text, thermal_zones, throttled_value
from ..errors import BackendUnavailableError

__all__ = ["health", "thermal_zones", "throttling", "board"]

MB = 1 << 20


def health(store_dir: str = "/", *, root: str = "/", started: float | None = None) -> dict[str, Any]:
    """Health figures, JSON-ready.

    ``cpu_percent`` is the whole machine's CPU use since the previous call in this process
    (``psutil.cpu_percent(None)``: it never blocks, and the first call returns 0.0);
    ``mem_percent`` the memory in use; ``rss_mb`` this process's resident memory;
    ``disk_free_mb`` the free space of the file system holding ``store_dir``; ``uptime_s`` the
    time since ``started`` (a ``time.time()`` value) when given, else since the system booted.
    Where the board exposes them: ``temperature_c`` (the hottest thermal zone), ``thermal``
    ({zone type: °C}) and ``throttled`` (see :func:`throttling`).
    """
    psutil = _psutil()
    out: dict[str, Any] = {
        "cpu_percent": float(psutil.cpu_percent(None)),
        "mem_percent": float(psutil.virtual_memory().percent),
        "rss_mb": round(psutil.Process().memory_info().rss / MB, 1),
    }
    free = _disk_free_mb(store_dir)
    if free is not None:
        out["disk_free_mb"] = free
    uptime = time.time() - started if started is not None else _system_uptime(root, psutil)
    if uptime is not None:
        out["uptime_s"] = round(max(uptime, 0.0), 1)
    zones = thermal_zones(root)
    if zones:
        out["thermal"] = zones
        chip = chip_temperature(zones)
        if chip is not None:
            out["temperature_c"] = chip
    flags = throttling(root)
    if flags is not None:
        out["throttled"] = flags
    return out


def throttling(root: str = "/") -> dict[str, Any] | None:
    """The Raspberry Pi firmware's throttling flags, decoded; ``None`` where the board has none.

    Read from sysfs (``get_throttled``, Raspberry Pi OS kernels), else from ``vcgencmd
    get_throttled`` when ``root`` is the real ``/`` and vcgencmd is on PATH (1 s timeout).
    Returns ``{"raw": "0x50005", "now": {flag: bool}, "since_boot": {flag: bool}}`` with the
    flags under_voltage, freq_capped, throttled and soft_temp_limit.
    """
    value = throttled_value(root)
    return None if value is None else decode_throttled(value)


def board(*, root: str = "/") -> dict[str, str]:
    """What the device is: ``model`` (device tree or DMI, where known), ``os``, ``kernel``, ``python``, ``machine``."""
    out: dict[str, str] = {}
    model = read_text(os.path.join(root, "proc/device-tree/model"))
    if not model:
        vendor = read_text(os.path.join(root, "sys/class/dmi/id/sys_vendor")) or ""
        product = read_text(os.path.join(root, "sys/class/dmi/id/product_name")) or ""
        model = " ".join(p for p in (vendor, product) if p)
    if model:
        out["model"] = model
    out["os"] = _os_name(root) or f"{platform.system()} {platform.release()}"
    out.update(kernel=platform.release(), python=platform.python_version(), machine=platform.machine())
    return out


def _psutil() -> Any:
    try:
        import psutil
    except ImportError as exc:
        raise BackendUnavailableError("device health needs psutil: pip install 'edgeops[agent]'") from exc
    return psutil


def _disk_free_mb(path: str) -> float | None:
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)  # the store may not exist yet: its file system does
    try:
        return round(shutil.disk_usage(path).free / MB, 1)
    except OSError:
        return None


def _system_uptime(root: str, psutil: Any) -> float | None:
    text = read_text(os.path.join(root, "proc/uptime"))
    if text:
        try:
            return float(text.split()[0])
        except (ValueError, IndexError):
            pass
    if os.path.abspath(root) != "/":
        return None
    return time.time() - psutil.boot_time()


def _os_name(root: str) -> str | None:
    text = read_text(os.path.join(root, "etc/os-release")) or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None
