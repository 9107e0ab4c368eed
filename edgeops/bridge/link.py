"""The serial link to one microcontroller: the port, the frames, one request in flight, reopening by itself.

:class:`Link` opens the port with pyserial's ``serial_for_url`` (a device path such as
``/dev/ttyACM0``, ``serial:///dev/ttyACM0``, or ``socket://host:port`` for the emulator), reads on
its own thread through a :class:`~.wire.FrameDecoder` and hands every frame the device sends on
its own (HELLO, TELEMETRY, EVENT) to ``on_message``. :meth:`Link.request` sends one request and
waits for its reply (WIRE.md "Exchanges": stop and wait, the same ``seq`` on a retry, every request
idempotent), raising :class:`LinkError` when none comes and :class:`NackError` for a NACK.

**Recovery.** Whatever the port does (the cable pulled: the device node disappears or reads fail;
the emulator's socket closes) the reader closes it, fails the request in flight, and opens it again
every ``reopen_s`` until it is back; after each open it sends a ``0x00`` (ends the device's
half-received garbage) and calls ``on_open``. Garbage on the line is the decoder's business: it is
skipped and counted (:attr:`Link.decoder`), never raised. An unsolicited HELLO means the device
restarted: the request in flight is failed at once (a model transfer resumes with MODEL_OFFER).

pyserial is imported when a port is opened (``pip install 'edgeops[serial]'``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import EdgeOpsError, UsageError
from . import wire

__all__ = ["Link", "LinkError", "NackError", "port_target"]

log = logging.getLogger(__name__)

REPLY_TYPES = {wire.MsgType.MODEL_OFFER: wire.MsgType.MODEL_STATUS, wire.MsgType.MODEL_COMMIT: wire.MsgType.MODEL_STATUS,
               wire.MsgType.MODEL_STATUS_REQ: wire.MsgType.MODEL_STATUS, wire.MsgType.MODEL_CHUNK: wire.MsgType.ACK,
               wire.MsgType.RESET: wire.MsgType.ACK}
UNSOLICITED = (wire.MsgType.HELLO, wire.MsgType.TELEMETRY, wire.MsgType.EVENT)


class LinkError(EdgeOpsError):
    """The device did not answer (after the retries), or the port is gone."""


class NackError(LinkError):
    """The device answered a request with NACK: ``error`` is the :class:`~.wire.ErrorCode`."""

    def __init__(self, nack: wire.Nack):
        try:
            name = wire.ErrorCode(nack.error).name
        except ValueError:
            name = str(nack.error)
        req = wire.MsgType(nack.request).name if nack.request in wire.MsgType._value2member_map_ else nack.request
        super().__init__(f"the device refused {req}: {name}{' (' + nack.detail + ')' if nack.detail else ''}")
        self.error = nack.error
        self.nack = nack


def port_target(url: str) -> str:
    """What pyserial opens for ``url``: ``serial://PATH`` -> ``PATH``; a path or another pyserial URL as is."""
    if not isinstance(url, str) or not url:
        raise UsageError(f"a serial port is a device path, serial://PATH or socket://HOST:PORT, not {url!r}")
    return url[len("serial://"):] if url.startswith("serial://") else url


def open_port(url: str, baud: int) -> Any:
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - the [serial] extra
        raise UsageError("the serial bridge needs pyserial: pip install 'edgeops[serial]'") from exc
    try:
        port = serial.serial_for_url(port_target(url), baudrate=baud, timeout=0.05, write_timeout=5, do_not_open=True)
        # pyserial empties the OS's receive buffer on open; it may hold frames the device sent while the port was
        # closed (the gateway restarting, the cable back before we reopened): keep them, the decoder sorts them out
        keep = {"reset_input_buffer", "_reset_input_buffer"} & set(dir(port))
        for name in keep:
            setattr(port, name, lambda: None)
        port.open()
        for name in keep:
            delattr(port, name)
        return port
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"cannot open {url}: {exc}") from exc


class _Pending:
    def __init__(self, seq: int, request: int):
        self.seq, self.request = seq, request
        self.reply_type = REPLY_TYPES.get(wire.MsgType(request), request | 0x80)
        self.done = threading.Event()
        self.reply: wire.Message | None = None
        self.error: str | None = None


class Link:
    """One device on one port (module docstring). ``on_message(msg, solicited)`` runs on the reader thread."""

    def __init__(self, url: str, *, baud: int = 115200, timeout: float = 1.0, retries: int = 3,
                 reopen_s: float = 0.5, on_message: Callable[[wire.Message, bool], None] | None = None,
                 on_open: Callable[[], None] | None = None, on_close: Callable[[str], None] | None = None):
        port_target(url)
        if not isinstance(baud, int) or baud <= 0:
            raise UsageError(f"--baud must be a positive integer, not {baud!r}")
        self.url, self.baud, self.timeout, self.retries, self.reopen_s = url, baud, timeout, retries, reopen_s
        self.on_message, self.on_open, self.on_close = on_message, on_open, on_close
        self.max_payload = wire.MAX_PAYLOAD_DEFAULT  # the device's, once its HELLO is known
        self.decoder = wire.FrameDecoder(wire.MAX_PAYLOAD_DEFAULT)
        self.opens = self.losses = self.timeouts = self.undecodable = self.ignored = 0
        self.last_error = ""
        self.sent: dict[str, int] = {}  # requests sent (first tries), by type name
        self._port: Any = None
        self._seq = 0
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._request_lock = threading.Lock()
        self._up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Link:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="edgeops-bridge-link", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close("stopped")

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_open(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    # -- requests ----------------------------------------------------------------------------------------

    def request(self, msg: wire.Message, *, timeout: float | None = None, retries: int | None = None) -> wire.Message:
        """Send ``msg`` and return the device's reply; :class:`NackError` for a NACK, :class:`LinkError` when no
        reply came after ``retries`` resends (or the device restarted meanwhile)."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        with self._request_lock:
            self._seq = (self._seq + 1) & 0xFFFF
            data = wire.encode_message(msg, self._seq, max_payload=self.max_payload)
            self.sent[msg.TYPE.name] = self.sent.get(msg.TYPE.name, 0) + 1
            why = "no answer"
            for _ in range(retries + 1):
                slot = _Pending(self._seq, msg.TYPE)
                with self._lock:
                    self._pending = slot
                if not self._up.wait(timeout) or not self._write(data):
                    why = f"the port is not open ({self.last_error or 'reopening'})"
                    continue
                if slot.done.wait(timeout) and slot.error is None:
                    assert slot.reply is not None
                    if isinstance(slot.reply, wire.Nack):
                        raise NackError(slot.reply)
                    return slot.reply
                if slot.error is not None:  # lost link or a restart: the next try resends (requests are idempotent)
                    why = slot.error
                    continue
                self.timeouts += 1
                self._write(b"\x00")  # ends whatever half frame the device holds
            with self._lock:
                self._pending = None
            raise LinkError(f"{msg.TYPE.name}: {why} (device on {self.url}, {retries + 1} tries)")

    def _write(self, data: bytes) -> bool:
        port = self._port
        if port is None:
            return False
        try:
            with self._write_lock:
                port.write(data)
            return True
        except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, OSError, ValueError, ...
            self.last_error = f"write: {exc}"
            return False

    # -- the reader thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._port
            if port is None:
                if not self._open():
                    self._stop.wait(self.reopen_s)
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except Exception as exc:  # noqa: BLE001 - the cable was pulled, the socket closed: reopen
                self._close(f"read: {type(exc).__name__}: {exc}")
                self._stop.wait(self.reopen_s)
                continue
            if data:
                for frame in self.decoder.feed(data):
                    self._dispatch(frame)

    def _open(self) -> bool:
        try:
            port = open_port(self.url, self.baud)
        except LinkError as exc:
            self.last_error = str(exc)
            return False
        self.decoder.reset()
        self._port = port
        self.opens += 1
        self._write(b"\x00")
        self._up.set()
        log.info("edgeops bridge: %s open", self.url)
        self._call(self.on_open)
        return True

    def _close(self, why: str) -> None:
        port, self._port = self._port, None
        self._up.clear()
        if port is None:
            return
        self.losses += 1
        self.last_error = why
        try:
            port.close()
        except Exception:  # noqa: BLE001 - closing a port that is already gone
            pass
        self._fail(f"the link was lost ({why})")
        log.warning("edgeops bridge: %s lost: %s; reopening", self.url, why)
        self._call(self.on_close, why)

    def _fail(self, why: str) -> None:
        with self._lock:
            slot, self._pending = self._pending, None
        if slot is not None:
            slot.error = why
            slot.done.set()

    def _dispatch(self, frame: wire.Frame) -> None:
        try:
            msg = wire.decode_message(frame, text_errors="replace")
        except wire.WireError as exc:
            self.undecodable += 1
            log.warning("edgeops bridge: a frame that does not decode: %s", exc)
            return
        with self._lock:
            slot = self._pending
            mine = slot is not None and frame.seq == slot.seq and frame.type in (slot.reply_type, wire.MsgType.ACK,
                                                                                  wire.MsgType.NACK)
            if mine:
                self._pending = None
        if mine:
            assert slot is not None
            slot.reply = msg
            slot.done.set()
        elif isinstance(msg, wire.Hello) and slot is not None:
            self._fail("the device restarted (an unsolicited HELLO)")
        if frame.type in UNSOLICITED:
            self._call(self.on_message, msg, mine)
        elif not mine:
            self.ignored += 1

    @staticmethod
    def _call(fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a callback's bug must not stop the reader
            log.exception("edgeops bridge: a link callback failed")

    def counters(self) -> dict[str, int]:
        d = self.decoder
        return {"frames": d.frames, "dropped": d.dropped, "bad_crc": d.bad_crc, "bad_cobs": d.bad_cobs,
                "oversize": d.oversize, "undecodable": self.undecodable, "ignored": self.ignored,
                "opens": self.opens, "losses": self.losses, "timeouts": self.timeouts}

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()
