"""The demo firmware cross-compiled for Cortex-M4 and run under ``qemu-system-arm -M mps2-an386`` (through
``make -C firmware_bridge emulate PORT=N``), UART0 on a TCP socket: the ``emulated_device`` fixture's object."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from hostdevice import FIRMWARE, Client

from edgeops.bridge import wire

TOOLS = ("make", "arm-none-eabi-gcc", "qemu-system-arm")


def build_emulated_firmware() -> Path:
    """``make -C firmware_bridge m4-demo``; skips when the cross compiler or QEMU is missing."""
    import pytest

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} needed for the emulated device (packages gcc-arm-none-eabi, "
                    "libnewlib-arm-none-eabi, qemu-system-arm)")
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "m4-demo"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"make m4-demo failed:\n{proc.stdout}\n{proc.stderr}")
    return FIRMWARE / "build" / "mps2-an386" / "eob_demo.elf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatedDevice:
    """One QEMU process running the demo firmware; see the ``emulated_device`` fixture."""

    device_id = "mps2-an386"

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.flash_path = tmp / "flash.img"  # the flash model's file (make emulate FLASH=...)
        self.qmp_path = tmp / "qmp.sock"
        self.log = tmp / "qemu.log"
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0, attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = 0  # another process may have taken the port: another one

    def _start(self, timeout: float) -> None:
        if self.qmp_path.exists():
            self.qmp_path.unlink()
        self.port = self.port or free_port()  # a restart after a kill takes the same port again if it can
        self.url = f"socket://127.0.0.1:{self.port}"
        args = ["make", "-s", "-C", str(FIRMWARE), "emulate", f"PORT={self.port}", f"FLASH={self.flash_path}",
                f"EMULATE_ARGS=-qmp unix:{self.qmp_path},server=on,wait=off"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"qemu did not start ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        # the probe connection above was accepted and closed; QEMU takes the next client the same way

    def client(self, timeout: float = 10.0) -> Client:
        return EmulatorClient(self.url, timeout)

    def qmp(self, command: str) -> dict:
        """One QMP command on the QEMU's monitor socket (capabilities negotiated first)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_path))
            f = s.makefile("rwb")
            json.loads(f.readline())  # the greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "return" in reply or "error" in reply:
                        break
                if "error" in reply:
                    raise RuntimeError(f"QMP {cmd}: {reply['error']}")
            return reply

    def restart(self) -> None:
        """The board's reset button (QMP ``system_reset``): the firmware starts again, the flash model keeps
        what was written, the TCP connection stays up."""
        self.qmp("system_reset")

    def kill(self) -> None:
        """A power cut: SIGKILL to QEMU, whatever the firmware is doing. The flash file keeps what was written;
        start() boots the board again on it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def power_cycle(self) -> None:
        """kill() then start(): RAM is new, the flash model keeps its contents, the port stays if it can."""
        self.kill()
        self.start()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


class EmulatorClient(Client):
    """hostdevice.Client over pyserial's ``socket://`` URL (the emulator's UART0) instead of a pty."""

    def __init__(self, url: str, timeout: float = 10.0):
        import serial

        self.serial = serial.serial_for_url(url, timeout=0.05)
        self.decoder = wire.FrameDecoder()
        self.timeout = timeout
        self.seq = 30000
        self.unsolicited: list[wire.Message] = []
        self.replies: dict[int, wire.Message] = {}
