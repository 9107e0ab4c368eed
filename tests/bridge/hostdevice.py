"""The demo firmware as a host process (firmware_bridge/ports/host) and a small stop-and-wait client for it,
for the tests: the real C binary on a real pty, the Python codec (edgeops.bridge.wire) on the host side."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from edgeops.bridge import wire

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_bridge"


def build_host_device() -> Path:
    import pytest

    if shutil.which("make") is None or shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("make and gcc are needed to build the host device")
    strict = os.environ.get("EOB_HOST_DEVICE") == "strict"
    target, out = ("host-device", "host") if strict else ("host-device-asan", "host-asan")
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), target], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"make {target} failed:\n{proc.stdout}\n{proc.stderr}")
    return FIRMWARE / "build" / out / "eob_device"


class HostDevice:
    """One eob_device process; see the host_device fixture."""

    def __init__(self, binary: Path, tmp: Path, device_id: str = "mcu-01", loop_ms: int = 50,
                 telemetry_ms: int = 250):
        self.binary = binary
        self.port = str(tmp / "tty")
        self.flash_path = tmp / "flash.bin"
        self.log = tmp / "device.log"
        self.device_id = device_id
        self.loop_ms, self.telemetry_ms = loop_ms, telemetry_ms
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if os.path.lexists(self.port):
            os.unlink(self.port)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "--tty", self.port, "--flash", str(self.flash_path),
                                          "--id", self.device_id, "--loop-ms", str(self.loop_ms),
                                          "--telemetry-ms", str(self.telemetry_ms)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 10
        while not os.path.lexists(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"host device did not start ({self.proc.poll()}): {self.log.read_text()}")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


class Client:
    """Stop and wait over pyserial: ``request`` sends with a fresh seq and returns the reply with that seq;
    unsolicited frames (HELLO, TELEMETRY, EVENT) are kept in ``unsolicited`` in arrival order."""

    def __init__(self, port: str, timeout: float = 5.0):
        import serial

        self.serial = serial.Serial(port, baudrate=115200, timeout=0.05)
        self.decoder = wire.FrameDecoder()
        self.timeout = timeout
        self.seq = 30000  # far from the device's own seq counter of unsolicited frames
        self.unsolicited: list[wire.Message] = []
        self.replies: dict[int, wire.Message] = {}

    def close(self) -> None:
        self.serial.close()

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def pump(self, seconds: float = 0.0) -> None:
        end = time.monotonic() + seconds
        while True:
            for f in self.decoder.feed(self.serial.read(4096)):
                msg = wire.decode_message(f)
                if isinstance(msg, (wire.Hello, wire.Telemetry, wire.Event)) and f.seq not in self._waiting:
                    self.unsolicited.append(msg)
                else:
                    self.replies[f.seq] = msg
            if time.monotonic() >= end:
                return

    _waiting: set[int] = set()

    def request(self, msg: wire.Message, timeout: float | None = None) -> wire.Message:
        self.seq = (self.seq + 1) & 0xFFFF
        seq = self.seq
        self._waiting = {seq}
        self.write(wire.encode_message(msg, seq))
        end = time.monotonic() + (timeout or self.timeout)
        try:
            while seq not in self.replies:
                if time.monotonic() > end:
                    raise TimeoutError(f"no reply to {type(msg).__name__} (seq {seq})")
                self.pump()
            return self.replies.pop(seq)
        finally:
            self._waiting = set()

    def wait_for(self, kind: type, timeout: float = 5.0, where=lambda m: True) -> wire.Message:
        end = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.unsolicited):
                if isinstance(m, kind) and where(m):
                    del self.unsolicited[: i + 1]
                    return m
            if time.monotonic() > end:
                raise TimeoutError(f"no {kind.__name__} in {timeout} s (got {self.unsolicited})")
            self.pump(0.05)

    def send_image(self, image: bytes, *, name: str, version: str, chunk_size: int = 512,
                   only: range | None = None) -> wire.ModelStatus:
        """MODEL_OFFER, then the missing chunks (or only those in ``only``); the last status."""
        import hashlib

        sha = hashlib.sha256(image).digest()
        offer = wire.ModelOffer(image_size=len(image), chunk_size=chunk_size, format=1, sha256=sha, name=name,
                                version=version)
        status = self.request(offer)
        if not isinstance(status, wire.ModelStatus):
            return status
        for first, count in status.missing:
            for index in range(first, first + count):
                if only is not None and index not in only:
                    continue
                data = image[index * chunk_size:(index + 1) * chunk_size]
                ack = self.request(wire.ModelChunk(tag=offer.tag, index=index, crc32=wire.crc32(data), data=data))
                assert isinstance(ack, wire.Ack), ack
        return self.request(wire.ModelStatusReq())
