"""tests/bridge: the firmware_bridge wire format (Python codec, C library, golden frames, fuzzing) and the
demo firmware as a host process on a pty (fixture ``host_device``) and under QEMU (``emulated_device``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emulator import EmulatedDevice, build_emulated_firmware  # noqa: E402
from hostdevice import HostDevice, build_host_device  # noqa: E402


@pytest.fixture(scope="session")
def host_device_binary() -> Path:
    """``make -C firmware_bridge host-device-asan`` once per session (the sanitizer build: a memory error in
    the firmware fails the test that caused it); ``EOB_HOST_DEVICE=strict`` takes the -O2 build instead."""
    return build_host_device()


@pytest.fixture
def host_device(host_device_binary, tmp_path):
    """The demo firmware running as a process on a fresh pty, its flash in a file (new, blank).

    ``.port``: the pty *slave* path (a symlink the device makes), for pyserial (``serial.Serial(port)``,
    ``serial_for_url(port)``); the device holds the master. ``.restart()`` kills and starts it again on the
    same flash (the pty is new behind the same path: reopen the port); ``.kill()`` SIGKILLs it (a power cut:
    the flash file keeps what was written); ``.stop()`` SIGTERMs it (exit 0). ``.flash_path``, ``.device_id``.
    The device's own RESET keeps the pty (it re-executes itself), so an open port stays usable."""
    dev = HostDevice(host_device_binary, tmp_path)
    dev.start()
    try:
        yield dev
    finally:
        rc = dev.stop()
        assert rc in (0, None, -9), f"host device exited with {rc} (a sanitizer report is in its stderr: {dev.log})"


@pytest.fixture(scope="module")
def emulated_device(tmp_path_factory):
    """The demo firmware for Cortex-M4 under ``qemu-system-arm -M mps2-an386`` (``make -C firmware_bridge emulate
    PORT=N``), one boot per test module: the tests of a module share the device and its flash, in order.

    ``.url``: ``socket://127.0.0.1:N`` (UART0; pyserial ``serial_for_url``; one client at a time); ``.client()``:
    a stop-and-wait client on it; ``.restart()``: the reset button (QMP ``system_reset``; the flash model keeps
    what was written, the TCP connection stays up); ``.kill()`` (a power cut: SIGKILL to QEMU; the flash,
    a file at ``.flash_path``, keeps what was written) and ``.start()`` (boots again on the same flash and, if
    it is free, the same port); ``.power_cycle()``: both; ``.stop()``. Skips without arm-none-eabi-gcc or
    qemu-system-arm."""
    build_emulated_firmware()
    dev = EmulatedDevice(tmp_path_factory.mktemp("qemu"))
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
