"""Simulated devices for ``benchmarks/fleet_sim.py``: N real MQTT connections from one asyncio loop.

Each device is an aiomqtt client (MQTT 5) that looks like ``edgeops.Agent`` on the wire: a retained
``status`` (``online``, the last will ``offline``), and every ``1/rate`` seconds an agent-shaped telemetry
message (``ts``, ``device``, ``fleet``, ``seq``, ``id``, model, inference, drift, health, outbox) that goes
into the device's outbox (in memory here). A sender publishes the outbox oldest first at QoS 1 and drops
a message only at its PUBACK, so when the connection drops (a broker outage) the device keeps queueing,
reconnects, and sends the backlog when the broker is back: a message may reach the broker twice (same
``id``), never zero times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from aiomqtt import ProtocolVersion, Will

EDGES = 10  # drift histogram bins per input, like a reference profile's
# paho logs every dropped socket at error level through aiomqtt; an outage drops a thousand of them at once,
# and the device counters already say what happened
_QUIET = logging.getLogger("fleet_sim.devices")
_QUIET.setLevel(logging.CRITICAL)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Device:
    """One simulated device: its counters, its outbox and the numbers its telemetry drifts around."""

    def __init__(self, index: int, fleet: str, period_s: float, seed: int):
        self.name = f"sim-{index:05d}"
        self.fleet = fleet
        self.period_s = period_s
        self.rng = random.Random(seed * 1_000_003 + index)
        self.seq = 0  # messages made (the last seq)
        self.acked = 0
        self.outbox: deque[bytes] = deque()
        self.connected = False
        self.connects = 0
        self.wake = asyncio.Event()
        self.topic = f"edgeops/{fleet}/{self.name}/telemetry"
        self.status_topic = f"edgeops/{fleet}/{self.name}/status"
        self.model = {"name": "digits", "version": "1.0", "sha256": f"{self.rng.getrandbits(256):064x}"}
        self.labels = {"site": f"site-{index % 10}", "ring": "canary" if index % 20 == 0 else "stable"}
        self.base_ms = self.rng.uniform(0.4, 3.0)
        self.temp = self.rng.uniform(40.0, 60.0)
        self.total = 0
        self.bytes = 0  # telemetry bytes made

    def status(self, state: str) -> bytes:
        return _dumps({"state": state, "ts": _now_ms(), "device": self.name, "fleet": self.fleet,
                       "model": self.model, "labels": self.labels})

    def make_message(self) -> None:
        """Queue the next telemetry message (what the agent's telemetry thread does each interval)."""
        self.seq += 1
        r = self.rng
        count = r.randint(5, 30)
        errors = 1 if r.random() < 0.02 else 0
        self.total += count
        p50 = self.base_ms * r.uniform(0.9, 1.1)
        counts = [r.randint(0, count * 8) for _ in range(EDGES)]
        psi = round(r.uniform(0.0, 0.08), 4)
        self.temp = min(85.0, max(30.0, self.temp + r.uniform(-0.5, 0.5)))
        body = {
            "ts": _now_ms(), "device": self.name, "fleet": self.fleet, "seq": self.seq, "id": uuid.uuid4().hex,
            "model": self.model, "labels": self.labels,
            "inference": {"count": count, "errors": errors, "rate_per_s": round(count / self.period_s, 3),
                          "window_s": self.period_s, "total": self.total, "total_errors": errors,
                          "latency_ms": {"p50": round(p50, 3), "p95": round(p50 * 1.8, 3), "p99": round(p50 * 2.4, 3),
                                         "mean": round(p50 * 1.1, 3), "max": round(p50 * 3, 3)}},
            "guardrails": {"enabled": False},
            "drift": {"enabled": True, "max_psi": psi, "window_samples": count, "window_s": self.period_s,
                      "inputs": {"pixels": {"psi": psi, "psi_level": "none", "samples": sum(counts), "nonfinite": 0,
                                            "counts": counts}}, "skipped": {}},
            "health": {"cpu_percent": round(r.uniform(5, 60), 1), "mem_percent": round(r.uniform(20, 70), 1),
                       "temperature_c": round(self.temp, 1), "throttled": False, "disk_free_mb": 12000,
                       "uptime_s": self.seq * self.period_s},
            "runtime": {"backend": "onnxruntime", "providers": ["CPUExecutionProvider"]},
            "outbox": {"pending": len(self.outbox), "dropped": 0}, "interval_s": self.period_s,
        }
        payload = _dumps(body)
        self.bytes += len(payload)
        self.outbox.append(payload)
        self.wake.set()


class SimFleet:
    """N :class:`Device` on one broker, each with a connection task and a telemetry clock.

    ``await start()`` connects them all; ``begin()`` starts their clocks; ``down()`` / ``up()`` take
    them off the broker and back (the outage, when the broker itself is not ours to stop);
    ``stop_clocks()`` ends the messages; ``await drained()`` waits for every outbox to empty.
    """

    def __init__(self, n: int, rate_hz: float, fleet: str, host: str, port: int, *, seed: int = 0,
                 connect_parallel: int = 64):
        self.devices = [Device(i, fleet, 1.0 / rate_hz, seed) for i in range(n)]
        self.host, self.port = host, port
        self._connect_gate = asyncio.Semaphore(connect_parallel)
        self._tasks: list[asyncio.Task[None]] = []
        self._clocks: list[asyncio.Task[None]] = []
        self._closing = False
        self._offline = False
        self._back = asyncio.Event()
        self._back.set()

    # -- counters -------------------------------------------------------------------------------

    @property
    def made(self) -> int:
        return sum(d.seq for d in self.devices)

    @property
    def payload_bytes(self) -> int:
        return sum(d.bytes for d in self.devices)

    @property
    def acked(self) -> int:
        return sum(d.acked for d in self.devices)

    @property
    def pending(self) -> int:
        return sum(len(d.outbox) for d in self.devices)

    @property
    def connected(self) -> int:
        return sum(d.connected for d in self.devices)

    @property
    def reconnects(self) -> int:
        return sum(max(0, d.connects - 1) for d in self.devices)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, progress: Callable[[str], None], timeout: float = 300.0) -> float:
        """Connect every device (a few at a time); returns the seconds it took."""
        t0 = time.monotonic()
        self._tasks = [asyncio.create_task(self._connection(d)) for d in self.devices]
        shown = -1
        while self.connected < len(self.devices):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"only {self.connected} of {len(self.devices)} devices connected in {timeout:g} s")
            if self.connected // 100 != shown:
                shown = self.connected // 100
                progress(f"devices connected: {self.connected}/{len(self.devices)}")
            await asyncio.sleep(0.1)
        return time.monotonic() - t0

    def begin(self) -> None:
        """Start each device's telemetry clock at a random phase within its first period."""
        t0 = asyncio.get_running_loop().time()
        self._clocks = [asyncio.create_task(self._clock(d, t0)) for d in self.devices]

    def stop_clocks(self) -> None:
        for task in self._clocks:
            task.cancel()

    def down(self) -> None:
        """Disconnect every device (cleanly, so no last will) and keep them off until :meth:`up`."""
        self._offline = True
        self._back.clear()
        for d in self.devices:
            d.wake.set()

    def up(self) -> None:
        self._offline = False
        self._back.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until every outbox is empty (all messages PUBACKed)."""
        end = time.monotonic() + timeout
        while self.pending and time.monotonic() < end:
            await asyncio.sleep(0.1)
        return not self.pending

    async def close(self) -> None:
        self._closing = True
        self.stop_clocks()
        for d in self.devices:
            d.wake.set()
        self._back.set()
        done, pending = await asyncio.wait(self._tasks, timeout=10) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    # -- per device -----------------------------------------------------------------------------

    async def _clock(self, d: Device, t0: float) -> None:
        loop = asyncio.get_running_loop()
        due = t0 + d.rng.uniform(0, d.period_s)
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            d.make_message()
            due += d.period_s

    async def _connection(self, d: Device) -> None:
        while not self._closing:
            if self._offline:
                await self._back.wait()
                continue
            try:
                await self._session(d)
            except (aiomqtt.MqttError, OSError):
                pass
            d.connected = False
            if not self._closing and not self._offline:
                await asyncio.sleep(d.rng.uniform(0.3, 1.0))  # the agent's reconnect delay, jittered

    async def _session(self, d: Device) -> None:
        will = Will(d.status_topic, d.status("offline"), qos=1, retain=True)
        async with self._connect_gate:
            client = aiomqtt.Client(self.host, self.port, identifier=d.name, protocol=ProtocolVersion.V5, will=will,
                                    keepalive=60, timeout=30, logger=_QUIET)
            await client.__aenter__()
        gone = client._disconnected  # noqa: SLF001 - a publish awaiting its PUBACK must end when the link drops
        extra: asyncio.Task[None] | None = None
        try:
            d.connects += 1
            await _unless_gone(client.publish(d.status_topic, d.status("online"), qos=1, retain=True), gone)
            extra = await self._attach(d, client, gone)
            d.connected = True
            while not self._closing and not self._offline:
                if not d.outbox:
                    d.wake.clear()
                    await _unless_gone(d.wake.wait(), gone)
                    continue
                await _unless_gone(client.publish(d.topic, d.outbox[0], qos=1), gone)
                d.outbox.popleft()
                d.acked += 1
        finally:
            d.connected = False
            if extra is not None:
                extra.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: asyncio would log it as never retrieved
            try:
                await client.__aexit__(None, None, None)
            except (aiomqtt.MqttError, OSError):
                pass

    async def _attach(self, d: Device, client: aiomqtt.Client,
                      gone: asyncio.Future[None]) -> asyncio.Task[None] | None:
        """A subclass's hook, once per connection before the device counts as connected: subscribe and return
        the task that reads the device's messages (cancelled when the connection ends). Here: nothing."""
        return None


async def _unless_gone(step: Awaitable[Any], gone: asyncio.Future[None]) -> None:
    """Await ``step`` unless the connection drops first (then raise :class:`aiomqtt.MqttError`)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        return
    task.cancel()
    raise aiomqtt.MqttError("the connection dropped")
