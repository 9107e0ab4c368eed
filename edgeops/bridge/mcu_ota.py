"""``edgeops flash BUNDLE --device MCU`` through the gateway: receive the bundle over MQTT, check, stream, report.

The host side (:func:`edgeops.deploy.mqtt.flash_mqtt`) does not know it talks to a gateway: the
wire is the agent's (:mod:`edgeops.agent.ota_wire`): an offer on ``cmd/ota``, ``ota.need`` events,
chunks on ``ota/<deployment>/<index>``, kept on disk by the agent's
:class:`~edgeops.agent.ota_transfer.Transfer`, ``ota.state`` events and one ``ota.result``.

Once the bundle is whole, one worker thread runs the steps in order, each announced as an
``ota.state`` event:

=============  =================================================================  ======================
state          work                                                               on failure
=============  =================================================================  ======================
verifying      the bundle's signature against the gateway's trusted keys, every   refused (nothing was
               member's hash (:func:`edgeops.bundle.verify`)                       sent to the MCU)
converting     the member for the MCU: its image (``edgeops.bridge.image``), or   refused
               the model file as is for a device of image format 0 (opaque)
streaming      MODEL_OFFER, the chunks the device lacks, MODEL_COMMIT (the MCU      failed (the old model
               checks each chunk's CRC-32 and the image's SHA-256); resumed after   runs)
               a reset or a lost link with MODEL_OFFER
testing        RESET; the device starts the image as a trial, checks it itself,   rolled_back when the
               confirms or reverts; the gateway waits for the slot table to       device reverted
               settle (MODEL_STATUS) and compares the running image's SHA-256
=============  =================================================================  ======================

**Trust boundary**: the signature check is here, on the gateway; the MCU only checks hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from ..agent.ota_transfer import Transfer
from ..agent.ota_wire import (
    MAX_CHUNK_SIZE,
    Kind,
    OfferError,
    Outcome,
    deployment_of,
    offer_topic,
    parse_chunk_topic,
    parse_offer,
)
from ..errors import EdgeOpsError, UsageError
from . import wire
from .link import LinkError, NackError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["McuOta", "mcu_image", "stream_image"]

log = logging.getLogger(__name__)
STALL_S = 3.0  # no chunk for this long: ask again for what is missing
GIVE_UP_S = 300.0  # a transfer with no progress for this long fails
MAX_ROUNDS = 20  # offers of one image (each resumes the last) before streaming fails


class McuOta:
    """The gateway's OTA: one deployment at a time (module docstring)."""

    def __init__(self, gateway: Gateway):
        self.gw = gateway
        self.q: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.transfer: Transfer | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "idle"

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="edgeops-bridge-ota", daemon=True)
        self._thread.start()
        if self.gw.publisher is not None:
            self.gw.publisher.watched["ota"] = self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def handle(self, topic: str, payload: bytes) -> bool:
        """A message for the OTA (the offer or a chunk): queued for the worker; False for anything else."""
        pub = self.gw.publisher
        if pub is None:
            return False
        if topic == offer_topic(pub.base):
            self.q.put(("offer", payload))
            return True
        if topic.startswith(f"{pub.base}/ota/"):
            parsed = parse_chunk_topic(pub.base, topic)
            if parsed is not None:
                self.q.put(("chunk", parsed[0], parsed[1], payload))
            return True
        return False

    # -- the worker ---------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.q.get(timeout=0.5)
            except queue.Empty:
                self._tick()
                continue
            try:
                if item[0] == "offer":
                    self._offer(item[1])
                else:
                    self._chunk(item[1], item[2], item[3])
            except Exception as exc:  # noqa: BLE001 - the worker outlives any one update
                log.exception("edgeops bridge: the OTA worker failed")
                dep = self.transfer.deployment if self.transfer else None
                if dep is not None:
                    self._finish(dep, Outcome.FAILED, f"internal error: {type(exc).__name__}: {exc}", None)

    def _event(self, kind: str, level: str = "info", **fields: Any) -> None:
        assert self.gw.publisher is not None
        self.gw.publisher.event(kind, level=level, **fields)

    def _folder(self, deployment: str) -> str:
        assert self.gw.publisher is not None
        return os.path.join(self.gw.publisher.store_dir, "ota", deployment)

    def _offer(self, payload: bytes) -> None:
        try:
            offer = parse_offer(payload, MAX_CHUNK_SIZE)
        except OfferError as exc:
            assert self.gw.publisher is not None
            self.gw.publisher.reply("ota", {"ok": False, "error": str(exc)})
            dep = deployment_of(payload)
            if dep is not None:
                self._finish(dep, Outcome.REFUSED, f"bad offer: {exc}", None)
            return
        dep = offer["deployment"]
        if dep in self.results:  # finished: say it again
            self._event(Kind.RESULT, **self.results[dep])
            return
        t = self.transfer
        if t is not None and t.deployment == dep:
            self._ask("offer")
            return
        if t is not None:
            self._finish(t.deployment, Outcome.CANCELLED, f"deployment {dep} replaced it", None)
        t = Transfer(self._folder(dep), offer)
        t.save_offer()
        self.transfer = t
        self._state(dep, "receiving", "offer")
        self._ask("offer")

    def _chunk(self, deployment: str, index: int, data: bytes) -> None:
        t = self.transfer
        if t is None or t.deployment != deployment:
            return
        got = t.put(index, data)
        if got == "bad":
            self._ask("bad chunk")
        elif got == "new" and t.complete:
            self._install(t)

    def _tick(self) -> None:
        t = self.transfer
        if t is None:
            return
        now = time.monotonic()
        if now - t.last_progress > GIVE_UP_S:
            self._finish(t.deployment, Outcome.FAILED, f"no chunk for {GIVE_UP_S:g} s", None)
        elif now - t.last_progress > STALL_S and now - t.last_ask > STALL_S:
            self._ask("stalled")

    def _ask(self, reason: str) -> None:
        t = self.transfer
        assert t is not None
        t.last_ask = time.monotonic()
        self._event(Kind.NEED, deployment=t.deployment, missing=t.missing(1024), reason=reason, have=len(t.have),
                    chunks=t.chunks)

    def _state(self, dep: str, state: str, event: str, reason: str = "") -> None:
        previous, self.state = self.state, state
        self._event(Kind.STATE, deployment=dep, state=state, previous=previous, event=event, reason=reason)

    def _finish(self, dep: str, outcome: Outcome, reason: str, version: str | None) -> None:
        result = {"deployment": dep, "outcome": outcome.value, "reason": reason, "version": version}
        self.results[dep] = result
        if self.transfer is not None and self.transfer.deployment == dep:
            shutil.rmtree(self.transfer.folder, ignore_errors=True)
            self.transfer = None
        self._state(dep, outcome.value, "result", reason)
        level = "info" if outcome == Outcome.COMMITTED else "error" if outcome == Outcome.FAILED else "warning"
        self._event(Kind.RESULT, level=level, **result)
        self.state = "idle"

    # -- the steps ----------------------------------------------------------------------------------------

    def _install(self, t: Transfer) -> None:
        dep = t.deployment
        self._state(dep, "verifying", "assembled")
        why = t.assemble()
        if why is not None:
            return self._finish(dep, Outcome.REFUSED, why, None)
        bundle = os.path.join(t.folder, Transfer.BUNDLE)
        keys = list(self.gw.options.trusted_keys)
        if not keys:
            return self._finish(dep, Outcome.REFUSED, "this gateway has no --trusted-key, so it accepts no bundle; "
                                                      "nothing was sent to the MCU", None)
        from ..bundle import verify

        try:
            manifest = verify(bundle, trusted_keys=keys, require_signature=True)
        except EdgeOpsError as exc:
            return self._finish(dep, Outcome.REFUSED, f"{exc}; nothing was sent to the MCU", None)
        version = str(manifest.version)
        hello = self.gw.hello
        assert hello is not None
        self._state(dep, "converting", "ok")
        try:
            image, fmt = mcu_image(bundle, keys, hello)
        except EdgeOpsError as exc:
            return self._finish(dep, Outcome.REFUSED, f"no image for this MCU: {exc}", version)
        if not hello.capabilities & wire.Capability.MODEL_UPDATE or hello.slot_count < 2:
            return self._finish(dep, Outcome.REFUSED, "this MCU's firmware has no model update (HELLO)", version)
        if len(image) > hello.slot_size:
            return self._finish(dep, Outcome.REFUSED, f"the image is {len(image)} bytes, the MCU's slots "
                                                      f"{hello.slot_size}", version)
        self._state(dep, "streaming", "ok")
        sha = hashlib.sha256(image).digest()
        try:
            stream_image(self.gw.link, image, fmt=fmt, name=str(manifest.name)[:32], version=version[:16],
                         max_payload=hello.max_payload, wait_link=lambda: self.gw.wait_hello(30, self.gw.boot - 1))
        except LinkError as exc:
            return self._finish(dep, Outcome.FAILED, f"streaming to the MCU failed: {exc}", version)
        self._state(dep, "testing", "committed on the MCU")
        outcome, reason = self._trial(sha)
        self._finish(dep, outcome, reason, version)

    def _trial(self, sha: bytes) -> tuple[Outcome, str]:
        """Restart the MCU into the trial image and wait for its verdict (confirmed or reverted)."""
        gw = self.gw
        boot = gw.boot
        try:
            gw.link.request(wire.Reset())
        except LinkError as exc:
            return Outcome.FAILED, f"RESET: {exc}"
        if gw.wait_hello(gw.options.health_timeout_s, after_boot=boot) is None:
            return Outcome.FAILED, "the MCU did not start again after RESET"
        deadline = time.monotonic() + gw.options.health_timeout_s
        status: wire.Message | None = None
        while time.monotonic() < deadline:
            try:
                status = gw.link.request(wire.ModelStatusReq())
            except LinkError:
                time.sleep(0.2)
                continue
            if isinstance(status, wire.ModelStatus) and status.boot_state == wire.BootState.CONFIRMED:
                break
            time.sleep(0.2)
        if not isinstance(status, wire.ModelStatus) or status.boot_state != wire.BootState.CONFIRMED:
            return Outcome.FAILED, f"the trial image was neither confirmed nor reverted in {gw.options.health_timeout_s:g} s"
        hello = gw.wait_hello(5.0) or gw.hello
        running = hello.model_sha256 if hello is not None else b""
        try:  # the HELLO of this start may predate the confirmation: ask again
            h = gw.link.request(wire.HelloReq())
            running = h.model_sha256 if isinstance(h, wire.Hello) else running
        except LinkError:
            pass
        if running == sha and not status.flags & wire.ModelStatus.FLAG_REVERTED:
            return Outcome.COMMITTED, ""
        return Outcome.ROLLED_BACK, "the MCU's health check failed on the new image: it reverted to the old one"


def mcu_image(bundle: str, trusted_keys: list[str], hello: wire.Hello) -> tuple[bytes, int]:
    """The image to write into the MCU's slot and its format code: built by ``edgeops.bridge.image`` for the
    device's format, or the bundle's model file as is for a device whose format is 0 (opaque)."""
    from ..bundle import extract

    with tempfile.TemporaryDirectory(prefix="edgeops-mcu-") as tmp:
        out = os.path.join(tmp, "bundle")
        got = extract(bundle, out, trusted_keys=trusted_keys, require_signature=True)
        manifest = got.manifest
        model_path = got.model_path
        if hello.model_format == 0:
            with open(model_path, "rb") as fh:
                return fh.read(), 0
        from . import image as image_mod

        if hello.model_format != image_mod.IMAGE_FORMAT:
            raise UsageError(f"the MCU wants image format {hello.model_format}; this gateway builds format 0 "
                             f"(the model file as is) and {image_mod.IMAGE_FORMAT} (edgeops.bridge.image)")
        data = image_mod.build_image(model_path, name=str(manifest.name)[:32], version=str(manifest.version)[:16])
        image_mod.check_fits(data, hello)  # the graph the firmware was built for, the slot size
        return bytes(data), hello.model_format


def stream_image(link: Any, image: bytes, *, fmt: int, name: str, version: str, max_payload: int,
                 wait_link: Any = None, chunk_size: int | None = None) -> wire.ModelStatus:
    """Write ``image`` into the MCU's inactive slot: MODEL_OFFER, the chunks it lacks, MODEL_COMMIT.

    A lost link or a device reset in the middle is resumed with a new MODEL_OFFER (the device says
    what it still lacks); a HASH NACK starts over. Returns the final MODEL_STATUS (VERIFIED)."""
    sha = hashlib.sha256(image).digest()
    size = chunk_size or wire.max_chunk_size(max_payload)
    offer = wire.ModelOffer(image_size=len(image), chunk_size=size, format=fmt, sha256=sha, name=name, version=version)
    last: Exception | None = None
    for _ in range(MAX_ROUNDS):
        try:
            status = link.request(offer)
            while isinstance(status, wire.ModelStatus) and status.chunks_missing and status.sha256 == sha:
                for first, count in status.missing:
                    for i in range(first, first + count):
                        data = image[i * size:(i + 1) * size]
                        link.request(wire.ModelChunk(tag=offer.tag, index=i, crc32=wire.crc32(data), data=data))
                status = link.request(wire.ModelStatusReq())
            if not isinstance(status, wire.ModelStatus) or status.sha256 != sha:
                continue
            done = link.request(wire.ModelCommit(sha256=sha))
            if isinstance(done, wire.ModelStatus) and done.transfer == wire.TransferState.VERIFIED:
                return done
        except NackError as exc:
            if exc.error not in (wire.ErrorCode.HASH, wire.ErrorCode.NO_TRANSFER, wire.ErrorCode.INCOMPLETE,
                                 wire.ErrorCode.CHUNK_CRC, wire.ErrorCode.FLASH):
                raise
            last = exc
        except LinkError as exc:
            last = exc
            if wait_link is not None:
                wait_link()
    raise LinkError(f"the image did not get across in {MAX_ROUNDS} offers (last: {last})")
