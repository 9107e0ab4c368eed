"""What the board says about its temperature and throttling: the one probe the agent and bench share.

Thermal zones come from sysfs (``/sys/class/thermal/thermal_zone*``: Raspberry Pi, Jetson, most
SoCs); the Raspberry Pi firmware's throttling flags from sysfs (``get_throttled``, Raspberry Pi OS
kernels), else from ``vcgencmd get_throttled`` (1 s timeout) when the probe reads the real
machine. ``root`` redirects the board files to a copy of that tree (how the tests give a Pi or a
Jetson layout to a laptop); vcgencmd is asked only when ``root`` is ``/``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from typing import Any

PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
# get_throttled bits: 0-3 hold now, 16-19 the same conditions since boot
THROTTLE_BITS = {"under_voltage": 0, "freq_capped": 1, "throttled": 2, "soft_temp_limit": 3}
# zones whose reading is not a temperature of the chip: Jetson's PMIC-Die is a fixed 100 °C, and
# thermal-fan-est an estimate made from the other zones; they are reported, not taken for the maximum
NOT_FOR_MAX = {"PMIC-Die", "thermal-fan-est"}


def read_text(path: str) -> str | None:
    """A small text file's content, stripped (and without the device tree's trailing NUL); None if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096).replace("\x00", "").strip()
    except OSError:
        return None


def thermal_zones(root: str = "/") -> dict[str, float]:
    """{zone type: °C} of every readable thermal zone; a repeated type gets ``#<zone number>``.

    Zones read in millidegrees; readings outside -40..150 °C (disabled sensors report values
    such as -256 °C on Jetson) are left out.
    """
    zones: dict[str, float] = {}
    paths = glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*"))
    for path in sorted(paths, key=_zone_number):
        text = read_text(os.path.join(path, "temp"))
        try:
            celsius = int(text) / 1000 if text else None
        except ValueError:
            celsius = None
        if celsius is None or not -40 < celsius < 150:
            continue
        name = read_text(os.path.join(path, "type")) or os.path.basename(path)
        if name in zones:
            name = f"{name}#{_zone_number(path)}"
        zones[name] = round(celsius, 1)
    return zones


def chip_temperature(zones: dict[str, float]) -> float | None:
    """The hottest zone of ``zones`` (from :func:`thermal_zones`) that measures the chip; None if none does."""
    chip = [c for name, c in zones.items() if name.split("#")[0] not in NOT_FOR_MAX]
    return max(chip) if chip else None


def throttled_value(root: str = "/") -> int | None:
    """The Raspberry Pi firmware's ``get_throttled`` bits (0: all fine); None where the board has none."""
    text = read_text(os.path.join(root, PI_THROTTLED))
    if text is None and os.path.abspath(root) == "/":
        text = _vcgencmd_throttled()
    if not text:
        return None
    try:
        return int(text.split("=")[-1].strip(), 16)
    except ValueError:
        return None


def decode_throttled(value: int) -> dict[str, Any]:
    """``{"raw": "0x50005", "now": {flag: bool}, "since_boot": {flag: bool}}`` for ``get_throttled`` bits."""
    return {"raw": hex(value),
            "now": {flag: bool(value >> bit & 1) for flag, bit in THROTTLE_BITS.items()},
            "since_boot": {flag: bool(value >> (bit + 16) & 1) for flag, bit in THROTTLE_BITS.items()}}


def _zone_number(path: str) -> int:
    digits = os.path.basename(path).removeprefix("thermal_zone")
    return int(digits) if digits.isdigit() else 1 << 30


def _vcgencmd_throttled() -> str | None:
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=1, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and "=" in done.stdout else None
