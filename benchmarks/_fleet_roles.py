"""The subscriber processes of ``benchmarks/fleet_sim.py``, each in its own process like in a deployment.

    python benchmarks/_fleet_roles.py bare --broker URL --fleet F --out FILE
    python benchmarks/_fleet_roles.py collector --broker URL --fleet F --out FILE --db DB [--group G]

``bare`` is the baseline: a paho-mqtt 2 client (MQTT 5, persistent session, QoS 1, paho's automatic
acks) that only counts the telemetry it gets. ``collector`` runs :class:`edgeops.fleet.collector.Collector`
on the store ``--db``; its store is wrapped so that each message's commit time is noted after
``write_batch`` returns (the collector acknowledges after that).

Both note, per telemetry message, the device, ``seq``, ``ts`` (read from the payload's head, which
the simulator writes first) and their own clock in ms: when it arrived (bare) or when it was
committed (collector). They print ``ready`` once subscribed, ``progress <unique messages>`` four
times a second, and when stdin closes they stop, write what they noted to ``--out`` (JSON) and print
``done``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from typing import Any

_TS = re.compile(rb'"ts":(\d+)')
_SEQ = re.compile(rb'"seq":(\d+)')


class Seen:
    """What one subscriber noted: one row per telemetry message it got (duplicates too)."""

    def __init__(self) -> None:
        self.device: list[str] = []
        self.seq: list[int] = []
        self.ts: list[int] = []
        self.t: list[int] = []
        self.unique: set[tuple[str, int]] = set()
        self.unparsed = 0
        self.lock = threading.Lock()

    def note(self, topic: str, payload: bytes, t_ms: int) -> None:
        if not topic.endswith("/telemetry"):
            return
        head = payload[:200]
        ts, seq = _TS.search(head), _SEQ.search(head)
        if ts is None or seq is None:
            self.unparsed += 1
            return
        device = topic.split("/", 3)[2]
        with self.lock:
            self.device.append(device)
            self.seq.append(int(seq.group(1)))
            self.ts.append(int(ts.group(1)))
            self.t.append(t_ms)
            self.unique.add((device, int(seq.group(1))))

    def dump(self, path: str, extra: dict[str, Any]) -> None:
        with self.lock, open(path, "w") as f:
            json.dump({"device": self.device, "seq": self.seq, "ts": self.ts, "t": self.t,
                       "unparsed": self.unparsed, **extra}, f)


def _url(broker: str) -> tuple[str, int]:
    from edgeops.agent.transport import parse_url

    host, port, _ = parse_url(broker)
    return host, port


def bare(args: argparse.Namespace, seen: Seen, ready: threading.Event) -> tuple[Any, dict[str, Any]]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    topic = f"edgeops/{args.fleet}/+/telemetry"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id or f"fleet-sim-bare-{args.fleet}",
                         protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(min_delay=0.1, max_delay=5)  # type: ignore[arg-type]  # as the collector does
    info = {"connects": 0}

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            info["connects"] += 1
            c.subscribe(topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, msg: seen.note(msg.topic, msg.payload, int(time.time() * 1000))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 86400
    host, port = _url(args.broker)
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()

    def stop() -> dict[str, Any]:
        client.disconnect()
        client.loop_stop()
        return info

    return stop, info


class RecordingStore:
    """The collector's store, noting each telemetry message's commit time after ``write_batch``."""

    def __init__(self, store: Any, seen: Seen):
        self._store = store
        self._seen = seen
        self.stored = 0
        self.duplicates = 0
        self.batches = 0

    def write_batch(self, msgs: list[Any]) -> Any:
        result = self._store.write_batch(msgs)
        t = int(time.time() * 1000)
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.batches += 1
        for m in msgs:
            self._seen.note(m.topic, m.payload, t)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def collector(args: argparse.Namespace, seen: Seen, ready: threading.Event) -> tuple[Any, dict[str, Any]]:
    from edgeops.fleet.collector import Collector
    from edgeops.fleet.store import open_store

    store = RecordingStore(open_store(args.db), seen)
    c = Collector(store, args.broker, args.fleet, group=args.group or None, client_id=args.client_id or None)
    c.start()
    wait = getattr(c, "wait_subscribed", None) or getattr(c, "wait_connected", None)
    threading.Thread(target=lambda: (wait(30) if wait else time.sleep(1.0), ready.set()), daemon=True).start()
    info: dict[str, Any] = {}

    def stop() -> dict[str, Any]:
        c.stop()
        info.update(stats=_plain(c.stats()), stored=store.stored, duplicates=store.duplicates, batches=store.batches)
        store.close()
        return info

    return stop, info


def _plain(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: getattr(o, "__dict__", str(o))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["bare", "collector"])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--fleet", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--db")
    ap.add_argument("--group")
    ap.add_argument("--client-id")
    args = ap.parse_args()
    seen, ready = Seen(), threading.Event()
    stop, _ = (bare if args.role == "bare" else collector)(args, seen, ready)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    said_ready = False
    while not closed.wait(0.25):
        if ready.is_set() and not said_ready:
            print("ready", flush=True)
            said_ready = True
        print(f"progress {len(seen.unique)}", flush=True)
    info = stop()
    seen.dump(args.out, {"role": args.role, "unique": len(seen.unique), **info})
    print("done", flush=True)


if __name__ == "__main__":
    main()
