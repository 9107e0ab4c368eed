"""Simulated devices with OTA for ``benchmarks/rollout_sim.py``: ``_fleet_devices`` plus what a rollout needs.

Each :class:`OtaDevice` is a ``_fleet_devices.Device`` (agent-shaped telemetry at QoS 1 through its outbox)
that also speaks the device side of the OTA wire protocol (:mod:`edgeops.agent.ota_wire`, the same code the
agent uses to read an offer and a chunk topic), enough for :func:`edgeops.deploy.mqtt.flash_mqtt` to succeed:

* an offer on ``cmd/ota`` (checked by :func:`~edgeops.agent.ota_wire.parse_offer`) is answered with an
  ``ota.need`` event for every chunk still missing (a malformed one with a ``refused`` result); an offer
  for a deployment already finished gets its ``ota.result`` again (as the agent does);
* each chunk on ``ota/<deployment>/<index>`` is checked against the offer's sha256 (a bad one is asked for
  again); the assembled bundle's sha256 and size must match the offer, or the result is ``refused``;
* then the device "installs" it: its model becomes the bundle's name and version (read once per bundle from
  its manifest, :func:`edgeops.bundle.read_manifest`), the old one is kept as the previous slot, and the result
  is ``committed`` with the version. Nothing runs a model: there is no signature check and no health window;
* ``cmd/rollback`` (``{"reason", "request_id"}``) puts the previous model back when the last deployment is
  committed and still active, replies on ``cmd/rollback/reply`` like the agent (``ok``, ``queued``, ``state``,
  ``deployment``, ``version``, ``request_id``, ``ts``) and sends an ``ota.result`` ``rolled_back``; repeated,
  it answers ``queued: false``.

Telemetry follows the model: a version in ``slow`` (``{version: factor}``) reports its latencies times the
factor (the "bad" build); every other version reports the device's own latency (the same as the old one).
The per-device latency spreads less than fleet_sim's (1.0 to 1.3 ms p50), so a small stage's median is not
1.5x the fleet's by chance alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from typing import Any

import aiomqtt
from _fleet_devices import Device, SimFleet, _unless_gone

from edgeops.agent import ota_wire as wire

MAX_MISSING = 1024  # chunk indices in one ota.need, as the agent (edgeops.agent.ota.MAX_MISSING)


class OtaDevice(Device):
    """A simulated device with a model slot pair, an OTA transfer and version-dependent latency."""

    def __init__(self, index: int, fleet: str, period_s: float, seed: int, slow: dict[str, float]):
        super().__init__(index, fleet, period_s, seed)
        self.base = f"edgeops/{fleet}/{self.name}"
        self.base0 = self.rng.uniform(1.0, 1.3)
        self.base_ms = self.base0
        self.slow = slow
        self.previous: dict[str, Any] | None = None
        self.transfer: dict[str, Any] | None = None  # {"offer", "chunks": {index: bytes}}
        self.results: dict[str, dict[str, Any]] = {}  # deployment -> its ota.result fields
        self.last: str | None = None  # the last committed deployment
        self.committed = 0
        self.rolled_back = 0

    def make_message(self) -> None:
        self.base_ms = self.base0 * self.slow.get(str(self.model.get("version")), 1.0)
        super().make_message()

    def event(self, kind: str, **fields: Any) -> tuple[str, bytes]:
        body = {"ts": int(time.time() * 1000), "device": self.name, "fleet": self.fleet, "kind": kind,
                "level": "info", **fields}
        return f"{self.base}/events", json.dumps(body, separators=(",", ":")).encode()


class OtaFleet(SimFleet):
    """:class:`SimFleet` of :class:`OtaDevice`: each connection subscribes to the OTA and rollback topics."""

    def __init__(self, n: int, rate_hz: float, fleet: str, host: str, port: int, *, seed: int = 0,
                 slow: dict[str, float] | None = None):
        super().__init__(n, rate_hz, fleet, host, port, seed=seed)
        self.devices: list[OtaDevice] = [OtaDevice(i, fleet, 1.0 / rate_hz, seed, slow or {}) for i in range(n)]
        self._manifests: dict[str, tuple[str, str]] = {}  # bundle sha256 -> (name, version)
        self.errors: list[str] = []

    def versions(self) -> dict[str, str]:
        return {d.name: str(d.model.get("version")) for d in self.devices}

    async def _attach(self, d: Device, client: aiomqtt.Client,
                      gone: asyncio.Future[None]) -> asyncio.Task[None] | None:
        assert isinstance(d, OtaDevice)
        for topic in (f"{d.base}/cmd/ota", f"{d.base}/cmd/rollback", f"{d.base}/ota/+/+"):
            await _unless_gone(client.subscribe(topic, qos=1), gone)
        return asyncio.create_task(self._read(d, client, gone))

    async def _read(self, d: OtaDevice, client: aiomqtt.Client, gone: asyncio.Future[None]) -> None:
        try:
            await self._serve(d, client, gone)
        except aiomqtt.MqttError:
            pass  # the connection dropped: the session ends and a new one subscribes again

    async def _serve(self, d: OtaDevice, client: aiomqtt.Client, gone: asyncio.Future[None]) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = bytes(message.payload) if isinstance(message.payload, (bytes, bytearray)) else b""
            try:
                out = self._on(d, topic, payload)
            except Exception as exc:  # noqa: BLE001 - a sim bug is counted and shown, not a dead device
                self.errors.append(f"{d.name} {topic}: {type(exc).__name__}: {exc}")
                continue
            for t, body in out:
                await _unless_gone(client.publish(t, body, qos=1), gone)

    # -- the device's side of the protocol (pure: returns what to publish) ------------------------

    def _on(self, d: OtaDevice, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        if topic == f"{d.base}/cmd/ota":
            return self._offer(d, payload)
        if topic == f"{d.base}/cmd/rollback":
            return self._rollback(d, payload)
        if topic.startswith(f"{d.base}/ota/"):
            where = wire.parse_chunk_topic(d.base, topic)
            if where is not None:
                return self._chunk(d, where[0], where[1], payload)
        return []

    def _offer(self, d: OtaDevice, payload: bytes) -> list[tuple[str, bytes]]:
        try:
            offer = wire.parse_offer(payload, wire.MAX_CHUNK_SIZE)
        except wire.OfferError as exc:  # as the agent: a refused result when the offer names a valid deployment
            self.errors.append(f"{d.name}: offer refused: {exc}")
            dep = wire.deployment_of(payload)
            return self._result(d, dep, wire.Outcome.REFUSED, f"bad offer: {exc}", None) if dep else []
        dep = offer["deployment"]
        if dep in d.results:
            return [d.event(wire.Kind.RESULT.value, deployment=dep, **d.results[dep])]
        if d.transfer is None or d.transfer["offer"]["deployment"] != dep:
            d.transfer = {"offer": offer, "chunks": {}}
        return [self._need(d)]

    def _need(self, d: OtaDevice, reason: str = "offer") -> tuple[str, bytes]:
        assert d.transfer is not None
        offer, have = d.transfer["offer"], d.transfer["chunks"]
        missing = [i for i in range(offer["chunks"]) if i not in have][:MAX_MISSING]
        return d.event(wire.Kind.NEED.value, deployment=offer["deployment"], missing=missing, reason=reason,
                       have=len(have), chunks=offer["chunks"])

    def _chunk(self, d: OtaDevice, dep: str, index: int, data: bytes) -> list[tuple[str, bytes]]:
        t = d.transfer
        if t is None or t["offer"]["deployment"] != dep or not 0 <= index < t["offer"]["chunks"]:
            return []
        if hashlib.sha256(data).hexdigest() != t["offer"]["chunk_sha256"][index]:
            return [self._need(d, "bad chunk")]
        t["chunks"][index] = data
        if len(t["chunks"]) < t["offer"]["chunks"]:
            return []
        d.transfer = None
        bundle = b"".join(t["chunks"][i] for i in range(t["offer"]["chunks"]))
        sha = hashlib.sha256(bundle).hexdigest()
        if sha != t["offer"]["bundle_sha256"] or len(bundle) != t["offer"]["size"]:
            why = "the bundle's sha256 or size does not match the offer"
            return self._result(d, dep, wire.Outcome.REFUSED, why, None)
        name, version = self._manifest(sha, bundle)
        d.previous, d.model = d.model, {"name": name, "version": version, "sha256": sha}
        d.last = dep
        d.committed += 1
        return self._result(d, dep, wire.Outcome.COMMITTED, "", version)

    def _result(self, d: OtaDevice, dep: str, outcome: wire.Outcome, reason: str,
                version: str | None) -> list[tuple[str, bytes]]:
        d.results[dep] = {"outcome": outcome.value, "reason": reason, "version": version}
        return [d.event(wire.Kind.RESULT.value, deployment=dep, **d.results[dep])]

    def _manifest(self, sha: str, bundle: bytes) -> tuple[str, str]:
        if sha not in self._manifests:
            from edgeops.bundle import read_manifest

            fd, path = tempfile.mkstemp(suffix=".eob")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(bundle)
                m = read_manifest(path)
            finally:
                os.unlink(path)
            self._manifests[sha] = (m.name, m.version)
        return self._manifests[sha]

    def _rollback(self, d: OtaDevice, payload: bytes) -> list[tuple[str, bytes]]:
        try:
            args = json.loads(payload or b"{}")
        except ValueError:
            args = {}
        args = args if isinstance(args, dict) else {}
        rec = d.results.get(d.last or "", {})
        can = rec.get("outcome") == wire.Outcome.COMMITTED.value and d.previous is not None \
            and d.model.get("version") == rec.get("version")
        state = "committed" if rec.get("outcome") == wire.Outcome.COMMITTED.value else (rec.get("outcome") or "idle")
        reply: dict[str, Any] = {"ok": True, "queued": can, "state": state, "deployment": d.last,
                                 "version": rec.get("version")}
        if "request_id" in args:
            reply["request_id"] = args["request_id"]
        reply["ts"] = int(time.time() * 1000)
        out = [(f"{d.base}/cmd/rollback/reply", json.dumps(reply, separators=(",", ":")).encode())]
        if can:
            assert d.previous is not None and d.last is not None
            d.model, d.previous = d.previous, None
            d.rolled_back += 1
            d.results[d.last] = {"outcome": wire.Outcome.ROLLED_BACK.value,
                                 "reason": str(args.get("reason") or "rollback requested")[:500],
                                 "version": d.model.get("version")}
            out.append(d.event(wire.Kind.RESULT.value, deployment=d.last, **d.results[d.last]))
        return out
