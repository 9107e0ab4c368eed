"""What does the agent's durable path cost per message, against a bare paho QoS 1 publish loop?

Three contenders send the same N ~300-byte JSON messages, interleaved in rounds so that machine
noise (the box is shared) hits them alike:

* **bare paho**: a paho-mqtt 2 client (MQTT 5, ``max_inflight_messages_set(20)``) publishes the N
  messages QoS 1 to the broker and waits for all N PUBACKs. Nothing is stored.
* **outbox append only**: :meth:`Outbox.append` N times, no broker: one SQLite transaction each,
  WAL with ``synchronous=FULL``, so one fsync per message. This is the floor of the durable path.
* **agent end to end**: an :class:`edgeops.Agent` (no model, telemetry interval far away, its
  outbox in a fresh temp folder) gets ``agent.event(...)`` N times while its sender thread
  publishes the rows QoS 1 through :class:`MqttTransport` (window 20) and deletes each row at its
  PUBACK (a second fsync); timed from the first append until ``agent.wait_drained`` sees the
  outbox empty. Connecting and the agent's own start-up messages are not timed.

Prints the median messages/s of each and the ratio agent / bare (how much of the broker's rate
survives durability), plus how fast the appends ran inside the agent run (they share the outbox
lock and the disk with the sender's acks).

    python benchmarks/outbox_throughput.py [--n 2000] [--rounds 3] [--broker mqtt://host:port]
                                           [--store-dir DIR] [--json]

The fsync is the point: run it with ``--store-dir`` on the storage the device will use (tmpfs
makes fsync free and the numbers meaningless for a device). The file system type is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import edgeops
from edgeops.agent.agent import WINDOW
from edgeops.agent.localbroker import LocalBroker
from edgeops.agent.outbox import Outbox
from edgeops.agent.transport import parse_url

FLEET = "bench"
TARGET_BYTES = 300


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def message(device: str, note: str) -> dict[str, Any]:
    """The body ``Agent.event("bench.msg", note=...)`` builds (the outbox adds ``seq`` and ``id``)."""
    return {"ts": int(time.time() * 1000), "device": device, "fleet": FLEET, "kind": "bench.msg", "level": "info",
            "note": note}


def padding(device: str) -> str:
    """A ``note`` that makes the stored payload (with ``seq`` ~4 digits and a uuid4 hex ``id``) ~300 bytes."""
    probe = {**message(device, ""), "seq": 1000, "id": uuid.uuid4().hex}
    return "x" * max(TARGET_BYTES - len(json.dumps(probe, separators=(",", ":"))), 0)


def fs_type(path: str) -> str:
    """The file system under ``path`` (from /proc/mounts; "unknown" elsewhere)."""
    path, best, kind = os.path.realpath(path), "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mount = parts[1]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


# -- contenders ------------------------------------------------------------------------------------

def bare_paho(host: str, port: int, n: int, device: str) -> tuple[float, float]:
    """Seconds to publish n messages QoS 1 and get every PUBACK; mean payload bytes."""
    import paho.mqtt.client as mqtt

    connected, done = threading.Event(), threading.Event()
    acked = [0]

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            connected.set()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        acked[0] += 1
        if acked[0] >= n:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bare-{device}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise SystemExit(f"bare paho client could not connect to {host}:{port}")
        topic, note, size = f"edgeops/{FLEET}/{device}/events", padding(device), 0
        t0 = time.perf_counter()
        for i in range(n):
            payload = json.dumps({**message(device, note), "seq": i + 1, "id": uuid.uuid4().hex},
                                 separators=(",", ":")).encode()
            size += len(payload)
            client.publish(topic, payload, qos=1)
        if not done.wait(max(60.0, n / 50)):
            raise SystemExit(f"bare paho: only {acked[0]} of {n} PUBACKs arrived")
        elapsed = time.perf_counter() - t0
    finally:
        client.disconnect()
        client.loop_stop()
    return elapsed, size / n


def append_only(parent: str, n: int, device: str) -> float:
    """Seconds for n ``Outbox.append`` calls into a fresh outbox file (no broker)."""
    folder = tempfile.mkdtemp(prefix="outbox-", dir=parent)
    try:
        topic, note = f"edgeops/{FLEET}/{device}/events", padding(device)
        with Outbox(os.path.join(folder, "outbox.sqlite")) as box:
            t0 = time.perf_counter()
            for _ in range(n):
                box.append("events", topic, message(device, note))
            return time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def agent_path(url: str, parent: str, n: int, device: str) -> tuple[float, float, float]:
    """(seconds to drain, seconds the n appends took, mean payload bytes) through a real Agent."""
    folder = tempfile.mkdtemp(prefix="agent-", dir=parent)
    agent = edgeops.Agent(None, broker=url, fleet=FLEET, device=device, store_dir=folder, interval_s=86400)
    try:
        agent.start()
        if not agent.transport.wait_connected(10):
            raise SystemExit(f"the agent could not connect to {url}: {agent.transport.last_error}")
        deadline = time.monotonic() + 10  # its first telemetry comes 1 s after start: let it pass untimed
        while agent.outbox.last_seq("telemetry") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        if not agent.wait_drained(10):
            raise SystemExit("the agent did not drain its start-up messages")
        note = padding(device)
        size = len(json.dumps({**message(device, note), "seq": n, "id": uuid.uuid4().hex}, separators=(",", ":")))
        t0 = time.perf_counter()
        for _ in range(n):
            agent.event("bench.msg", note=note)
        t_appended = time.perf_counter()
        if not agent.wait_drained(max(120.0, n / 10)):
            raise SystemExit(f"the agent did not drain: {agent.outbox.stats()['pending']} of {n} still pending")
        t_done = time.perf_counter()
    finally:
        agent.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return t_done - t0, t_appended - t0, float(size)


# -- main ------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="messages per round and contender")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--broker", default=None, help="mqtt://host:port of a running broker (default: start mosquitto)")
    ap.add_argument("--store-dir", default=None, help="parent folder for the outbox files (default: the temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.n < 1 or args.rounds < 1:
        ap.error("--n and --rounds must be at least 1")
    parent = args.store_dir or tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)

    broker = None
    if args.broker:
        url = args.broker
    else:
        broker = LocalBroker(persistence=False).start()
        url = broker.url
    host, port, tls = parse_url(url)
    if tls:
        ap.error("--broker: this benchmark speaks plain mqtt:// only")
    log(f"broker {url}, outbox files under {parent} ({fs_type(parent)}), n={args.n}, rounds={args.rounds}")

    bare_s: list[float] = []
    append_s: list[float] = []
    agent_s: list[float] = []
    agent_append_s: list[float] = []
    sizes: dict[str, float] = {}
    try:
        run = uuid.uuid4().hex[:6]
        bare_paho(host, port, min(args.n, 200), f"warm-{run}")  # warm up the broker and the page cache
        append_only(parent, min(args.n, 200), f"warm-{run}")
        for r in range(args.rounds):
            device = f"r{r}-{run}"
            log(f"round {r + 1}/{args.rounds}: bare paho")
            seconds, sizes["bare"] = bare_paho(host, port, args.n, device)
            bare_s.append(seconds)
            log(f"round {r + 1}/{args.rounds}: outbox append only")
            append_s.append(append_only(parent, args.n, device))
            log(f"round {r + 1}/{args.rounds}: agent end to end")
            seconds, appended, sizes["agent"] = agent_path(url, parent, args.n, device)
            agent_s.append(seconds)
            agent_append_s.append(appended)
    finally:
        if broker is not None:
            broker.close()

    def rate(seconds: list[float]) -> float:
        return args.n / statistics.median(seconds)

    result = {
        "broker": url,
        "store_fs": fs_type(parent),
        "n": args.n,
        "rounds": args.rounds,
        "payload_bytes": sizes,
        "msgs_per_s": {
            "bare paho QoS 1": rate(bare_s),
            "outbox append only": rate(append_s),
            "agent end to end": rate(agent_s),
            "appends inside agent run": rate(agent_append_s),
        },
        "ratio_agent_vs_bare": statistics.median(bare_s) / statistics.median(agent_s),
        "per_round_ratio": [b / a for b, a in zip(bare_s, agent_s)],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"payload ~{sizes['bare']:.0f} B (bare), ~{sizes['agent']:.0f} B (agent); window {WINDOW}; "
              f"outbox on {result['store_fs']}")
        for key, value in result["msgs_per_s"].items():
            print(f"{key:26s} median {value:9.0f} msg/s  ({1e6 / value:7.1f} us/msg)")
        print(f"agent / bare (msg/s)      = {result['ratio_agent_vs_bare']:.3f}")
        print("per-round ratios: " + ", ".join(f"{x:.3f}" for x in result["per_round_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
