"""A simulated microcontroller on a real pty, speaking WIRE.md in Python: the gateway's test double.

:class:`SimDevice` opens a pseudo-terminal, keeps its master end and publishes the slave's path
as :attr:`SimDevice.port` (a symlink of a fixed name, like a udev ``/dev/ttyACM0``), so a
:class:`~.link.Link` opens it like any serial port. It answers every request of WIRE.md, sends
HELLO at each start and TELEMETRY every ``telemetry_s``, runs a real ONNX model (onnxruntime via
:func:`edgeops.load`) for INFER and for its own inference loop, and takes model updates into two
slots MCUboot-style (pending -> test at the next start -> confirm after a health check: the image
loads and gives finite outputs; else revert). It is not the firmware: the C host device
(``firmware_bridge/ports/host``) is; this one lets the gateway be tested where no C toolchain is,
and models a USB-CDC device: a frame written while the cable is out waits (up to ``QUEUE`` frames)
and goes out when it is back.

Faults on cue: :meth:`unplug` (the port node disappears, reads fail), :meth:`plug`,
:meth:`garbage` (bytes that are no frame), :meth:`restart` (a reset: the transfer in flight resumes
with MODEL_OFFER).
"""

from __future__ import annotations

import hashlib
import os
import select
import tempfile
import threading
import time
import tty
from collections import deque
from typing import Any

import numpy as np

from . import wire

QUEUE = 64
CHUNK_ENTRY = 96


class SimDevice:
    """See the module docstring. ``model``: the ONNX bytes of the model built into the "firmware"."""

    def __init__(self, folder: str, model: bytes, *, device_id: str = "mcu-sim", telemetry_s: float = 0.5,
                 infer_hz: float = 10.0, slot_size: int = 1 << 20, max_payload: int = wire.MAX_PAYLOAD_DEFAULT):
        self.folder, self.builtin, self.device_id = folder, model, device_id
        self.telemetry_s, self.infer_hz, self.slot_size, self.max_payload = telemetry_s, infer_hz, slot_size, max_payload
        self.port = os.path.join(folder, "ttyMCU")
        self.slots: list[dict[str, Any] | None] = [None, None]  # {"image", "sha256", "name", "version"}
        self.table = {"state": wire.BootState.CONFIRMED, "confirmed": wire.SLOT_NONE, "trial": wire.SLOT_NONE,
                      "flags": 0}
        self.transfer: dict[str, Any] | None = None  # {"offer": ModelOffer, "slot", "chunks": {index: bytes}}
        self.sent_telemetry: list[int] = []  # tseq of every TELEMETRY written (or queued) since the first start
        self.boots = 0
        self.received: dict[str, int] = {}  # requests received, by message name
        self._out: deque[bytes] = deque(maxlen=QUEUE)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reset = False
        self.model: Any = None
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self.plug()

    # -- the port ---------------------------------------------------------------------------------------

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self._master, self._slave = master, slave
        tmp = self.port + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)

    def unplug(self) -> None:
        """The cable is pulled: the port's node goes, and reads on it fail."""
        if os.path.lexists(self.port):
            os.unlink(self.port)
        with self._lock:
            master, slave, self._master, self._slave = self._master, self._slave, -1, -1
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def garbage(self, data: bytes) -> None:
        self._write(data, raw=True)

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> SimDevice:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edgeops-simdevice", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.unplug()

    def restart(self) -> None:
        """A reset: RAM state goes (the transfer in flight, the counters), flash stays."""
        self._reset = True

    # -- the firmware -----------------------------------------------------------------------------------

    def _boot(self) -> None:
        self.boots += 1
        self._reset = False
        self.tseq = self.inferences = self.errors = 0
        self.rx_frames = 0
        self.latencies: list[int] = []
        self.started = time.monotonic()
        self.decoder = wire.FrameDecoder(self.max_payload)
        self.seq = 0
        self.transfer = None
        t = self.table
        self.running = t["confirmed"]
        if t["state"] == wire.BootState.PENDING:
            t["state"] = wire.BootState.TESTING
            self.running = t["trial"]
        elif t["state"] == wire.BootState.TESTING:  # not confirmed before this start: revert
            self._revert()
        self._load()
        self._send(self._hello())
        if t["state"] == wire.BootState.TESTING:
            if self._healthy():
                t.update(state=wire.BootState.CONFIRMED, confirmed=t["trial"], trial=wire.SLOT_NONE)
                self._send(wire.Event(level=wire.EventLevel.INFO, code=0x0104, uptime_ms=self._uptime(),
                                      text="trial image confirmed"))
            else:
                self._revert()
                self._load()
                self._send(wire.Event(level=wire.EventLevel.WARNING, code=0x0105, uptime_ms=self._uptime(),
                                      text="trial image failed its health check: reverted"))

    def _revert(self) -> None:
        t = self.table
        t.update(state=wire.BootState.CONFIRMED, trial=wire.SLOT_NONE, flags=t["flags"] | 1)
        self.running = t["confirmed"]

    def _image(self) -> bytes:
        return self.builtin if self.running == wire.SLOT_NONE else self.slots[self.running]["image"]  # type: ignore[index]

    def _load(self) -> None:
        self.model = _load_model(self._image())

    def _healthy(self) -> bool:
        if self.model is None:
            return False
        try:
            out = self._infer(np.zeros(self._in_shape(), np.float32).tobytes())
        except Exception:  # noqa: BLE001 - any failure is a failed health check
            return False
        return bool(np.isfinite(np.frombuffer(out, np.float32)).all())

    def _in_shape(self) -> tuple[int, ...]:
        return tuple(int(d) if d else 1 for d in self.model.inputs[0].shape)  # type: ignore[union-attr]

    def _infer(self, data: bytes) -> bytes:
        t0 = time.perf_counter_ns()
        try:
            x = np.frombuffer(data, np.float32).reshape(self._in_shape())
            out = next(iter(self.model.run({self.model.inputs[0].name: x}).values()))  # type: ignore[union-attr]
        except Exception:
            self.errors += 1
            raise
        self.inferences += 1
        self.latencies.append((time.perf_counter_ns() - t0) // 1000)
        return np.ascontiguousarray(out, np.float32).tobytes()

    def _tensor(self, spec: Any) -> wire.TensorDesc:
        return wire.TensorDesc(dtype=wire.DType.FLOAT32, dims=tuple(int(d) if d else 1 for d in spec.shape))

    def _hello(self) -> wire.Hello:
        m = self.model
        slot = self.slots[self.running] if self.running != wire.SLOT_NONE else None
        return wire.Hello(capabilities=wire.Capability.INFER | wire.Capability.MODEL_UPDATE | wire.Capability.RESET,
                          max_payload=self.max_payload, device_id=self.device_id, firmware_version="sim-1",
                          model_name=slot["name"] if slot else "builtin", model_version=slot["version"] if slot else "0",
                          model_sha256=hashlib.sha256(self._image()).digest(), model_format=0, arena_bytes=0,
                          input=self._tensor(m.inputs[0]) if m else wire.TensorDesc(),
                          output=self._tensor(m.outputs[0]) if m else wire.TensorDesc(), slot_count=2,
                          running_slot=self.running, boot_state=self.table["state"], boot_flags=self.table["flags"],
                          slot_size=self.slot_size)

    def _telemetry(self) -> wire.Telemetry:
        lat = sorted(self.latencies) or [0]
        self.latencies = []

        def pct(q: float) -> int:
            return int(lat[min(len(lat) - 1, int(q * len(lat)))])

        t = wire.Telemetry(tseq=self.tseq, uptime_ms=self._uptime(), inferences=self.inferences, errors=self.errors,
                           latency_count=len(lat) if lat != [0] else 0, latency_min_us=lat[0],
                           latency_mean_us=int(sum(lat) / len(lat)), latency_p50_us=pct(0.5), latency_p90_us=pct(0.9),
                           latency_p99_us=pct(0.99), latency_max_us=lat[-1], ram_free=100_000,
                           rx_frames=self.rx_frames, rx_dropped=self.decoder.dropped, running_slot=self.running,
                           boot_state=self.table["state"])
        self.sent_telemetry.append(self.tseq)
        self.tseq += 1
        return t

    def _uptime(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _run(self) -> None:
        self._boot()
        next_tel = time.monotonic() + self.telemetry_s
        next_inf = time.monotonic()
        while not self._stop.is_set():
            if self._reset:
                self._boot()
                continue
            now = time.monotonic()
            if now >= next_tel:
                next_tel = now + self.telemetry_s
                self._send(self._telemetry())
            if self.infer_hz and now >= next_inf and self.model is not None:
                next_inf = now + 1.0 / self.infer_hz
                try:
                    self._infer(np.zeros(self._in_shape(), np.float32).tobytes())
                except Exception:  # noqa: BLE001 - counted in errors
                    pass
            self._flush()
            master = self._master
            if master < 0:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                data = os.read(master, 4096) if ready else b""
            except OSError:
                continue
            for frame in self.decoder.feed(data):
                self.rx_frames += 1
                self._answer(frame)

    def _send(self, msg: wire.Message, seq: int | None = None) -> None:
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        self._write(wire.encode_message(msg, seq, max_payload=self.max_payload))

    def _write(self, data: bytes, raw: bool = False) -> None:
        self._out.append(data)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            while self._out and self._master >= 0:
                try:
                    os.write(self._master, self._out[0])
                except OSError:
                    return
                self._out.popleft()

    def _answer(self, frame: wire.Frame) -> None:
        if frame.version != wire.PROTOCOL_VERSION:
            return self._send(wire.Nack(request=frame.type, error=wire.ErrorCode.VERSION), frame.seq)
        try:
            msg = wire.decode_message(frame)
        except wire.WireError as exc:
            code = wire.ErrorCode.TYPE if frame.type not in wire.MESSAGES else wire.ErrorCode.MALFORMED
            return self._send(wire.Nack(request=frame.type, error=code, detail=str(exc)[:60]), frame.seq)
        name = type(msg).__name__
        self.received[name] = self.received.get(name, 0) + 1
        try:
            reply = self._handle(msg)
        except _Nack as nack:
            reply = wire.Nack(request=frame.type, error=nack.code, detail=nack.detail)
        self._send(reply, frame.seq)
        if isinstance(msg, wire.Reset):
            self._reset = True

    def _handle(self, msg: wire.Message) -> wire.Message:
        if isinstance(msg, wire.HelloReq):
            return self._hello()
        if isinstance(msg, wire.Ping):
            return wire.Pong(nonce=msg.nonce, data=msg.data)
        if isinstance(msg, wire.TelemetryReq):
            return self._telemetry()
        if isinstance(msg, wire.Reset):
            return wire.Ack(request=wire.MsgType.RESET)
        if isinstance(msg, wire.InferReq):
            t0 = time.perf_counter_ns()
            try:
                out = self._infer(msg.input)
            except Exception:  # noqa: BLE001 - a wrong input size, a model that fails
                return wire.InferResp(status=wire.ErrorCode.INPUT_SIZE)
            return wire.InferResp(latency_us=(time.perf_counter_ns() - t0) // 1000, output=out)
        if isinstance(msg, wire.ModelStatusReq):
            return self._status()
        if isinstance(msg, wire.ModelOffer):
            return self._offer(msg)
        if isinstance(msg, wire.ModelChunk):
            return self._chunk(msg)
        if isinstance(msg, wire.ModelCommit):
            return self._commit(msg)
        raise _Nack(wire.ErrorCode.TYPE, "")

    def _status(self) -> wire.ModelStatus:
        t, tr = self.table, self.transfer
        missing: list[tuple[int, int]] = []
        total = have = 0
        offer = tr["offer"] if tr else None
        if tr and offer is not None:
            total = -(-offer.image_size // offer.chunk_size)
            have = len(tr["chunks"])
            for i in range(total):
                if i not in tr["chunks"]:
                    if missing and missing[-1][0] + missing[-1][1] == i:
                        missing[-1] = (missing[-1][0], missing[-1][1] + 1)
                    else:
                        missing.append((i, 1))
        return wire.ModelStatus(boot_state=t["state"], running_slot=self.running, confirmed_slot=t["confirmed"],
                                trial_slot=t["trial"], transfer=tr["state"] if tr else wire.TransferState.NONE,
                                flags=(t["flags"] & 1) << 1 | (len(missing) > 16), last_error=0,
                                sha256=offer.sha256 if offer else bytes(32), image_size=offer.image_size if offer else 0,
                                chunk_size=offer.chunk_size if offer else 0, chunks_total=total,
                                chunks_missing=total - have, missing=tuple(missing[:16]))

    def _offer(self, offer: wire.ModelOffer) -> wire.ModelStatus:
        t = self.table
        if t["state"] == wire.BootState.TESTING:
            raise _Nack(wire.ErrorCode.BUSY, "a trial image is being tested")
        if offer.chunk_size % 8 or offer.chunk_size > wire.max_chunk_size(self.max_payload) or not offer.chunk_size:
            raise _Nack(wire.ErrorCode.MALFORMED, "chunk_size")
        if offer.image_size > self.slot_size:
            raise _Nack(wire.ErrorCode.NO_SPACE, "")
        if self.transfer is None or self.transfer["offer"] != offer:
            if t["state"] == wire.BootState.PENDING:
                t.update(state=wire.BootState.CONFIRMED, trial=wire.SLOT_NONE)
            slot = 1 if t["confirmed"] == 0 else 0
            self.slots[slot] = None
            self.transfer = {"offer": offer, "slot": slot, "chunks": {}, "state": wire.TransferState.RECEIVING}
        return self._status()

    def _chunk(self, chunk: wire.ModelChunk) -> wire.Ack:
        tr = self.transfer
        if tr is None or tr["offer"].tag != chunk.tag:
            raise _Nack(wire.ErrorCode.NO_TRANSFER, "")
        offer = tr["offer"]
        total = -(-offer.image_size // offer.chunk_size)
        want = min(offer.chunk_size, offer.image_size - chunk.index * offer.chunk_size)
        if chunk.index >= total or len(chunk.data) != want:
            raise _Nack(wire.ErrorCode.CHUNK_INDEX, "")
        if wire.crc32(chunk.data) != chunk.crc32:
            raise _Nack(wire.ErrorCode.CHUNK_CRC, "")
        tr["chunks"][chunk.index] = bytes(chunk.data)
        return wire.Ack(request=wire.MsgType.MODEL_CHUNK, value=total - len(tr["chunks"]))

    def _commit(self, commit: wire.ModelCommit) -> wire.ModelStatus:
        tr = self.transfer
        if tr is None or tr["offer"].sha256 != commit.sha256:
            raise _Nack(wire.ErrorCode.NO_TRANSFER, "")
        if tr["state"] == wire.TransferState.VERIFIED:
            return self._status()
        offer = tr["offer"]
        if len(tr["chunks"]) * offer.chunk_size < offer.image_size and self._status().chunks_missing:
            raise _Nack(wire.ErrorCode.INCOMPLETE, "")
        image = b"".join(tr["chunks"][i] for i in sorted(tr["chunks"]))
        if hashlib.sha256(image).digest() != offer.sha256:
            self.transfer = None
            raise _Nack(wire.ErrorCode.HASH, "")
        self.slots[tr["slot"]] = {"image": image, "name": offer.name, "version": offer.version}
        self.table.update(state=wire.BootState.PENDING, trial=tr["slot"])
        tr["state"] = wire.TransferState.VERIFIED
        return self._status()


class _Nack(Exception):
    def __init__(self, code: int, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def _load_model(image: bytes) -> Any:
    """The image as a model (an ONNX file's bytes), None when it is not one."""
    from ..loading import load

    fd, path = tempfile.mkstemp(suffix=".onnx")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(image)
        return load(path)
    except Exception:  # noqa: BLE001 - a broken image runs nothing
        return None
    finally:
        os.unlink(path)
