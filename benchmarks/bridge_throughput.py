"""Serial throughput of the bridge: a model update and INFER round trips, as a share of the raw line rate.

    PYTHONPATH=. python benchmarks/bridge_throughput.py [--bauds 115200 921600] [--image-kb 32] [--infers 50]

**How the line rate is modelled.** A pty or the emulator's TCP socket moves bytes as fast as the CPU
allows, so a *pacing relay* sits between the gateway's :class:`~edgeops.bridge.link.Link` and the
device: two ptys and a thread per direction that forwards each byte no earlier than a UART at
``baud`` with 8N1 framing would (10 bit times per byte: start, 8 data, stop), a token clock per
direction, so both directions run at once as on a full-duplex UART. The raw line rate is
``baud / 10`` bytes/s each way.

**What is measured.** *Model update*: :func:`edgeops.bridge.mcu_ota.stream_image` of a random
image (MODEL_OFFER, every MODEL_CHUNK with its ACK, MODEL_STATUS, MODEL_COMMIT), the image's bytes
per second over the line rate: what framing, headers, stop-and-wait and the device's processing
cost. *INFER*: round trips per second of the device's model (input and output bytes), the useful
bytes per second (the larger of input and output, each way one) over the line rate.

The device is the demo firmware as a host process (``--device host``, the default: ``make -C
firmware_bridge host-device`` is run first; the image is a real slot image of digits_cnn_int8, the
INFER input the int8 8x8 digit) or the Python :class:`edgeops.bridge.simdevice.SimDevice`
(``--device sim``: a random image, digits_mlp in float32).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeops.bridge import wire  # noqa: E402
from edgeops.bridge.link import Link  # noqa: E402
from edgeops.bridge.mcu_ota import stream_image  # noqa: E402
from edgeops.bridge.simdevice import SimDevice  # noqa: E402


class PacingRelay:
    """Two ptys, bytes forwarded each way no faster than a ``baud`` 8N1 UART (module docstring)."""

    def __init__(self, device_path: str, baud: int, folder: str):
        self.byte_s = 10.0 / baud
        self.dev = os.open(device_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.dev)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self.master)
        self._slave = slave
        self.port = os.path.join(folder, "ttyPACED")
        os.symlink(os.ttyname(slave), self.port)
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._pump, args=(a, b), daemon=True)
                        for a, b in ((self.master, self.dev), (self.dev, self.master))]
        for t in self.threads:
            t.start()

    def _pump(self, src: int, dst: int) -> None:
        clock = time.perf_counter()
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(src, 256)
            except OSError:
                return
            for i in range(0, len(data), 16):  # 16 bytes at a time: fine-grained enough, cheap enough
                piece = data[i:i + 16]
                clock = max(clock, time.perf_counter()) + len(piece) * self.byte_s
                delay = clock - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                os.write(dst, piece)

    def close(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(1)
        for fd in (self.master, self._slave, self.dev):
            os.close(fd)


class HostProcess:
    """firmware_bridge/build/host/eob_device on its own pty (it makes the symlink ``port``)."""

    def __init__(self, folder: str):
        subprocess.run(["make", "-s", "-C", str(ROOT / "firmware_bridge"), "host-device"], check=True)
        self.port = os.path.join(folder, "tty")
        self.proc = subprocess.Popen([str(ROOT / "firmware_bridge" / "build" / "host" / "eob_device"), "--tty",
                                      self.port, "--flash", os.path.join(folder, "flash.bin"), "--id", "bench",
                                      "--loop-ms", "0", "--telemetry-ms", "3600000"])
        deadline = time.monotonic() + 10
        while not os.path.lexists(self.port) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def measure(baud: int, image_kb: int, infers: int, device: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if device == "host":
            from edgeops.bridge.image import IMAGE_FORMAT, build_image

            dev: object = HostProcess(tmp)
            image, fmt = build_image(ROOT / "examples" / "models" / "digits_cnn_int8.tflite", name="bench",
                                     version="1"), IMAGE_FORMAT
        else:
            dev = SimDevice(tmp, (ROOT / "examples" / "models" / "digits_mlp.onnx").read_bytes(), telemetry_s=3600,
                            infer_hz=0).start()
            image, fmt = os.urandom(image_kb * 1024), 0
        relay = PacingRelay(dev.port, baud, tmp)  # type: ignore[attr-defined]
        link = Link(relay.port, baud=baud, timeout=5.0).start()
        try:
            hello = link.request(wire.HelloReq())
            assert isinstance(hello, wire.Hello)
            link.max_payload = hello.max_payload
            line = baud / 10
            t0 = time.perf_counter()
            stream_image(link, image, fmt=fmt, name="bench", version="1", max_payload=hello.max_payload)
            update_s = time.perf_counter() - t0
            size = {wire.DType.FLOAT32: 4, wire.DType.INT32: 4, wire.DType.INT16: 2}
            n_in = hello.input.elements * size.get(hello.input.dtype, 1)
            n_out = hello.output.elements * size.get(hello.output.dtype, 1)
            x = bytes(n_in)
            t0 = time.perf_counter()
            for _ in range(infers):
                reply = link.request(wire.InferReq(input=x))
                assert isinstance(reply, wire.InferResp) and reply.status == 0, reply
            infer_s = (time.perf_counter() - t0) / infers
        finally:
            link.stop()
            relay.close()
            dev.stop()  # type: ignore[attr-defined]
    return {"baud": baud, "line_Bps": line, "image": len(image), "update_s": update_s,
            "update_Bps": len(image) / update_s, "update_ratio": len(image) / update_s / line,
            "infer_rtt_ms": infer_s * 1000, "infer_per_s": 1 / infer_s,
            "infer_ratio": max(n_in, n_out) / infer_s / line, "n_in": n_in, "n_out": n_out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bauds", type=int, nargs="+", default=[115200, 921600])
    ap.add_argument("--device", choices=["host", "sim"], default="host")
    ap.add_argument("--image-kb", type=int, default=32, help="the random image's size (--device sim)")
    ap.add_argument("--infers", type=int, default=50)
    args = ap.parse_args()
    print(f"{'baud':>8} {'line B/s':>9} {'image B':>8} {'update s':>9} {'update B/s':>10} {'ratio':>6} "
          f"{'INFER rtt ms':>12} {'INFER/s':>8} {'in/out B':>9} {'ratio':>6}")
    for baud in args.bauds:
        r = measure(baud, args.image_kb, args.infers, args.device)
        print(f"{r['baud']:>8} {r['line_Bps']:>9.0f} {r['image']:>8} {r['update_s']:>9.2f} {r['update_Bps']:>10.0f} "
              f"{r['update_ratio']:>6.2f} {r['infer_rtt_ms']:>12.2f} {r['infer_per_s']:>8.1f} "
              f"{r['n_in']:>4}/{r['n_out']:<4} {r['infer_ratio']:>6.2f}")
    print(f"device: {'the C demo firmware (firmware_bridge/ports/host)' if args.device == 'host' else 'SimDevice'}"
          " behind the pacing relay (10 bit times per byte, each direction)")


if __name__ == "__main__":
    main()
