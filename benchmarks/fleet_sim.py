"""Fleet simulator: how fast does the fleet collector take in telemetry, against a bare subscriber?

N simulated devices (``_fleet_devices.py``: real MQTT 5 connections, aiomqtt, one asyncio loop)
publish agent-shaped telemetry (``seq``, ``id``, ``ts``, model, inference, drift, health, outbox) at
QoS 1, ``--rate`` messages a second each, through their own outboxes. On the same broker, in their
own processes (``_fleet_roles.py``), listen:

* the **bare subscriber**: a paho client that only counts (the baseline: what the broker and
  Python deliver to one subscriber on this machine);
* the **collector(s)**: ``edgeops.fleet.collector.Collector`` writing to the store (``--db sqlite``: a
  sqlite file; ``--db postgresql``: a PostgreSQL started for the run, or a ``postgresql://`` URL),
  ``--collectors 2`` sharing the stream through ``$share/<group>/...``.

The run: connect the devices; ``--duration`` seconds of steady telemetry; then the subscribers'
outage: every subscriber process is paused (SIGSTOP) for ``--pause`` seconds while the devices go
on, so the broker queues for their persistent sessions, and resumed at once; then the devices'
outage of ``--backlog`` intervals, during which every device keeps queueing, so each comes back
with ``--backlog`` messages (the 20x burst) that drain while live telemetry goes on; then the
clocks stop and everything is checked: every (device, seq) the devices made must be in the store
exactly once. ``--outage broker`` stops and restarts the local mosquitto (its persistence keeps the
subscribers' sessions); ``--outage network`` takes the devices off a broker that stays up. The
default is ``broker`` for one collector and ``network`` for two: mosquitto (2.0) does not restore
a shared subscription from its persistence file, so what devices publish after a restart and
before the collectors subscribe again is lost to the group (``--outage broker --collectors 2``
shows it).

Reported, for the bare subscriber and the collector(s), each as a ratio collector / bare:

* steady ingest (msg/s) and lag p50/p95: device ``ts`` to arrival (bare) or to commit (collector);
* catch-up after the pause: how long until the queued messages were in, and the rate of that
  drain: the ingest capacity, since the broker already holds the messages;
* burst after the devices' outage: seconds from the return until the last backlog message
  arrived / was committed, the rate over that drain (bounded by how fast the devices, all in this
  one process, send their backlogs) and the lag of the live messages made during it.

    python benchmarks/fleet_sim.py --devices 1000 --rate 1 [--duration 30] [--backlog 20]
                                   [--pause 20] [--db sqlite|postgresql|postgresql://...] [--collectors 1|2]
                                   [--outage auto|broker|network] [--broker mqtt://host:port] [--json]

Progress goes to stderr, a table (or ``--json``) to stdout. Exit 1 when a message is missing or
stored twice. It is CPU-heavy: the devices, mosquitto, the subscribers and the database share the
machine, which is part of what it measures; run it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _fleet_devices import SimFleet  # noqa: E402

# What the local mosquitto is given so that a burst is queued, not dropped (its defaults: 1000 queued
# and 20 in flight per client). A deployment needs the same on its broker: see docs/fleet.md.
BROKER_LIMITS = ("max_queued_messages 1000000", "max_inflight_messages 1000")


def log(text: str) -> None:
    print(f"[fleet_sim {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return round(s[lo] + (s[hi] - s[lo]) * (k - lo), 1)


class Role:
    """One subscriber process (``_fleet_roles.py``): its progress line, its record file."""

    def __init__(self, name: str, args: list[str], workdir: str):
        self.name = name
        self.out = os.path.join(workdir, f"{name}.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_fleet_roles.py"), *args, "--out", self.out],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=env)
        self.ready = threading.Event()
        self.done = threading.Event()
        self.unique = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "ready":
                self.ready.set()
            elif word == "progress":
                self.unique = int(rest)
            elif word == "done":
                self.done.set()
        self.done.set()

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the {self.name} did not start; its log ({self.log_path}) ends with:\n"
                                   f"{self.tail()}")

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.done.wait(timeout)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        try:
            with open(self.out) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the {self.name} left no record ({exc}); its log ends with:\n{self.tail()}") from exc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:]) or "(empty)"
        except OSError:
            return "(no log)"


class Broker:
    """The broker of the run: a local mosquitto we can stop and start (the outage), or a given URL."""

    def __init__(self, url: str | None, workdir: str):
        from edgeops.agent.localbroker import LocalBroker
        from edgeops.agent.transport import parse_url

        self.local = None
        if url is not None:
            self.url = url
            self.host, self.port, tls = parse_url(url)
            if tls:
                raise SystemExit("the simulator speaks plain MQTT; give an mqtt:// broker")
        else:  # nothing after the start can fail, so the mosquitto started here is always stopped by close()
            self.local = LocalBroker(workdir=os.path.join(workdir, "mosquitto"), extra_config=BROKER_LIMITS).start()
            self.url, self.host, self.port = self.local.url, "127.0.0.1", self.local.port

    def close(self) -> None:
        if self.local is not None:
            self.local.stop()


def open_database(db: str, workdir: str) -> tuple[str, Any]:
    """The store URL for ``--db`` and what stops the database afterwards (or None)."""
    if db == "sqlite":
        return os.path.join(workdir, "fleet.db"), None
    if db.startswith(("postgresql://", "postgres://")) or db.endswith(".db"):
        return db, None
    if db == "postgresql":
        from edgeops.fleet.localpg import LocalPostgres

        pg = LocalPostgres().start()  # its own folder under /tmp, which postgres can reach
        try:
            return pg.create_database("fleet_sim"), pg.stop
        except BaseException:
            pg.stop()
            raise
    raise SystemExit(f"--db takes sqlite, postgresql or a postgresql:// URL, not {db!r}")


async def simulate(opts: argparse.Namespace, broker: Broker, roles: list[Role]) -> dict[str, Any]:
    """Connect the devices, run steady, outage, drain and tail; the timeline and the devices' counters."""
    fleet = SimFleet(opts.devices, opts.rate, opts.fleet, broker.host, broker.port, seed=opts.seed)
    period = 1.0 / opts.rate
    tl: dict[str, Any] = {"closed_socket_callbacks": 0}
    loop = asyncio.get_running_loop()

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # aiomqtt asks the loop to watch a socket paho has just closed (a reconnect storm): EBADF, harmless
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno == errno.EBADF:
            tl["closed_socket_callbacks"] += 1
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    try:
        tl["connect_s"] = round(await fleet.start(log), 2)
        log(f"{opts.devices} devices connected in {tl['connect_s']} s; steady telemetry for {opts.duration:g} s "
            f"({opts.devices * opts.rate:g} msg/s offered)")
        tl["begin"] = now_ms()
        fleet.begin()
        await _watch(opts.duration, fleet, roles)
        if opts.pause:
            await _pause_subscribers(opts.pause, fleet, roles, tl, opts.drain_timeout)
        if opts.backlog:
            tl["outage"] = now_ms()
            restart = opts.outage == "broker"
            log(f"{'broker outage' if restart else 'network outage (the devices lose the broker)'} for "
                f"{opts.backlog} intervals ({opts.backlog * period:g} s): the devices queue")
            if restart:
                await asyncio.to_thread(broker.local.stop)
            else:
                fleet.down()
            await _watch(opts.backlog * period, fleet, roles)
            if restart:
                await asyncio.to_thread(broker.local.restart)
            else:
                fleet.up()
            tl["back"] = now_ms()
            log(f"broker back: {fleet.pending} messages queued on the devices; draining while live telemetry goes on")
            await _until_received(fleet.made, fleet, roles, opts.drain_timeout, tl["back"])
        await _watch(opts.tail, fleet, roles)
        fleet.stop_clocks()
        tl["clocks_stopped"] = now_ms()
        made = tl["made"] = fleet.made
        await fleet.drained(opts.drain_timeout)
        end = time.monotonic() + opts.drain_timeout
        last, still = least_received(roles), time.monotonic()
        while time.monotonic() < end and least_received(roles) < made:
            await asyncio.sleep(0.2)
            if least_received(roles) != last:
                last, still = least_received(roles), time.monotonic()
            elif time.monotonic() - still > 20:
                log(f"nothing more arrived for 20 s: {made - last} messages are missing")
                break
        tl["end"] = now_ms()
        tl["device_acked"] = fleet.acked
        tl["device_pending"] = fleet.pending
        tl["device_reconnects"] = fleet.reconnects
        tl["payload_bytes_mean"] = round(fleet.payload_bytes / made) if made else None
        tl["expected"] = {d.name: d.seq for d in fleet.devices}
    finally:
        await fleet.close()
    return tl


async def _pause_subscribers(seconds: float, fleet: SimFleet, roles: list[Role], tl: dict[str, Any],
                             timeout: float) -> None:
    """The subscribers' outage: every subscriber process stopped (SIGSTOP) while the devices go on, so the broker
    queues for their sessions; then all resumed at once. How fast each drains that queue is its ingest capacity,
    not bounded by the devices."""
    tl["pause"] = now_ms()
    log(f"subscriber outage: the bare subscriber and the collector(s) paused (SIGSTOP) for {seconds:g} s; the broker "
        "queues for their sessions")
    for r in roles:
        os.kill(r.proc.pid, signal.SIGSTOP)
    try:
        await _watch(seconds, fleet, roles)
    finally:
        for r in roles:
            os.kill(r.proc.pid, signal.SIGCONT)
    tl["resume"] = now_ms()
    await _until_received(fleet.made, fleet, roles, timeout, tl["resume"])


async def _until_received(made: int, fleet: SimFleet, roles: list[Role], timeout: float, since: int) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and least_received(roles) < made:
        await _watch(0.5, fleet, roles, quiet=True)
    log(f"caught up: all {made} messages made so far arrived, {(now_ms() - since) / 1000:.1f} s after the return")


def least_received(roles: list[Role]) -> int:
    """The fewest messages any receiver has: the bare subscriber's, or all collectors' together (they split a
    shared stream)."""
    counts = [r.unique for r in roles if r.name == "bare"]
    collectors = [r.unique for r in roles if r.name.startswith("collector")]
    return min(counts + ([sum(collectors)] if collectors else []))


async def _watch(seconds: float, fleet: SimFleet, roles: list[Role], quiet: bool = False) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 5.0))
        if not quiet or left > 5.0:
            got = ", ".join(f"{r.name} {r.unique}" for r in roles)
            log(f"made {fleet.made}, acked {fleet.acked}, queued {fleet.pending}, connected {fleet.connected}; {got}")


# -- analysis ------------------------------------------------------------------------------------


def first_copies(rec: dict[str, Any]) -> dict[tuple[str, int], tuple[int, int]]:
    """(device, seq) -> (ts, t) of its first copy."""
    firsts: dict[tuple[str, int], tuple[int, int]] = {}
    for d, s, ts, t in zip(rec["device"], rec["seq"], rec["ts"], rec["t"]):
        key = (d, s)
        if key not in firsts or t < firsts[key][1]:
            firsts[key] = (ts, t)
    return firsts


def measure(firsts: dict[tuple[str, int], tuple[int, int]], tl: dict[str, Any]) -> dict[str, Any]:
    """Steady ingest and lag; for each outage, the drain of what queued meanwhile (time, rate, lag)."""
    first_break = min(tl.get("pause", tl["end"]), tl.get("outage", tl["end"]))
    # what arrived before the first outage (the few still on their way then would carry the outage in their lag)
    steady = [(ts, t) for ts, t in firsts.values() if ts < first_break and t <= first_break]
    out: dict[str, Any] = {"messages": len(firsts)}
    if steady:
        span = (first_break - tl["begin"]) / 1000
        lags = [t - ts for ts, t in steady]
        out["steady"] = {"messages": len(steady), "msgs_per_s": round(len(steady) / span, 1) if span > 0 else None,
                         "lag_ms": {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": max(lags)}}
    if "resume" in tl:  # queued at the broker while the subscribers were paused
        out["catch_up"] = drain(firsts, tl["pause"], tl["resume"])
    if "back" in tl:  # queued on the devices while they were cut off
        out["burst"] = drain(firsts, tl["outage"], tl["back"])
    return out


def drain(firsts: dict[tuple[str, int], tuple[int, int]], since: int, back: int) -> dict[str, Any] | None:
    """Messages made in [since, back) arrived late: how long after ``back`` the last one arrived, the rate
    over that drain (everything that arrived in it, live messages too), and the lag of the live ones."""
    backlog = [t for ts, t in firsts.values() if since <= ts < back]
    if not backlog:
        return None
    drained = max(backlog)
    drain_s = (drained - back) / 1000
    taken = sum(1 for _, t in firsts.values() if back <= t <= drained)
    live = [t - ts for ts, t in firsts.values() if back <= ts <= drained]
    return {"backlog_messages": len(backlog), "drain_s": round(drain_s, 2),
            "msgs_per_s": round(taken / drain_s, 1) if drain_s > 0 else None,
            "live_lag_ms": {"p50": percentile(live, 50), "p95": percentile(live, 95)}}


def check(expected: dict[str, int], got: dict[str, list[int]]) -> dict[str, int]:
    """Every (device, seq) the devices made against what a receiver has: missing, duplicates, extra."""
    missing = duplicates = extra = 0
    for device, last in expected.items():
        seqs = got.get(device, [])
        unique = set(seqs)
        duplicates += len(seqs) - len(unique)
        missing += sum(1 for s in range(1, last + 1) if s not in unique)
        extra += sum(1 for s in unique if not 1 <= s <= last)
    extra += sum(len(v) for k, v in got.items() if k not in expected)
    return {"missing": missing, "duplicates": duplicates, "unexpected": extra}


def verify_store(db: str, fleet: str, expected: dict[str, int]) -> dict[str, Any]:
    """Read every device's telemetry back from the store: each (device, seq) exactly once?"""
    from edgeops.fleet.store import open_store

    store = open_store(db)
    try:
        got: dict[str, list[int]] = {}
        rows = 0
        for device, last in expected.items():
            stored = store.telemetry(fleet, device, 0, None, last * 2 + 10)
            rows += len(stored)
            got[device] = [int(r["seq"]) for r in stored]
        devices = len(store.devices(fleet))
    finally:
        store.close()
    return {"rows": rows, "devices": devices, **check(expected, got)}


def g(d: dict[str, Any] | None, *path: str) -> Any:
    for p in path:
        d = (d or {}).get(p)
    return d


def ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 3) if a and b else None


def analyse(opts: argparse.Namespace, tl: dict[str, Any], records: dict[str, dict[str, Any]],
            db: str | None) -> dict[str, Any]:
    expected = tl["expected"]
    report: dict[str, Any] = {
        "devices": opts.devices, "rate_hz": opts.rate, "duration_s": opts.duration, "pause_s": opts.pause,
        "backlog": opts.backlog,
        "db": opts.db if db else None, "collectors": opts.collectors if db else 0, "broker": tl["broker"],
        "local_broker": tl["local_broker"], "outage": opts.outage if opts.backlog else None,
        "connect_s": tl["connect_s"],
        "made": tl["made"], "payload_bytes_mean": tl["payload_bytes_mean"],
        "device_reconnects": tl["device_reconnects"], "device_unacked": tl["device_pending"],
        "offered_msgs_per_s": opts.devices * opts.rate,
    }
    subs: dict[str, Any] = {}
    groups = {"bare": [records["bare"]]}
    collectors = [r for name, r in records.items() if name.startswith("collector")]
    if collectors:
        groups["collector"] = collectors
    for kind, recs in groups.items():
        merged = {k: [x for r in recs for x in r[k]] for k in ("device", "seq", "ts", "t")}
        got: dict[str, list[int]] = {}
        for d, s in zip(merged["device"], merged["seq"]):
            got.setdefault(d, []).append(s)
        subs[kind] = {**measure(first_copies(merged), tl), "copies": len(merged["seq"]), **check(expected, got)}
    if collectors:
        subs["collector"]["per_collector"] = [{k: r.get(k) for k in ("stored", "duplicates", "batches", "stats")}
                                              for r in collectors]
        subs["collector"]["store"] = verify_store(db, opts.fleet, expected) if db else None
    report.update(subs)
    if collectors:
        b, c = subs["bare"], subs["collector"]
        report["ratio"] = {
            "steady_msgs_per_s": ratio(g(c, "steady", "msgs_per_s"), g(b, "steady", "msgs_per_s")),
            "catch_up_msgs_per_s": ratio(g(c, "catch_up", "msgs_per_s"), g(b, "catch_up", "msgs_per_s")),
            "catch_up_drain_s": ratio(g(c, "catch_up", "drain_s"), g(b, "catch_up", "drain_s")),
            "burst_msgs_per_s": ratio(g(c, "burst", "msgs_per_s"), g(b, "burst", "msgs_per_s")),
            "burst_drain_s": ratio(g(c, "burst", "drain_s"), g(b, "burst", "drain_s")),
        }
        store = c["store"]
        report["ok"] = store["missing"] == 0 and store["duplicates"] == 0 and store["unexpected"] == 0
    else:
        report["ok"] = subs["bare"]["missing"] == 0
    return report


# -- output --------------------------------------------------------------------------------------


def show(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    kinds = [k for k in ("bare", "collector") if k in report]
    title = (f"{report['devices']} devices x {report['rate_hz']:g} Hz ({report['offered_msgs_per_s']:g} msg/s offered), "
             f"{report['duration_s']:g} s steady, subscribers paused {report['pause_s']:g} s, "
             f"{report['backlog']}x backlog burst ({report['outage']} outage); "
             f"{report['collectors']} collector(s) on {report['db'] or '-'}")
    t = Table(title=title)
    t.add_column("")
    for k in kinds:
        t.add_column("bare subscriber" if k == "bare" else "collector(s)", justify="right")
    if "collector" in report:
        t.add_column("collector / bare", justify="right")
    rows = [("steady msg/s", ("steady", "msgs_per_s"), "steady_msgs_per_s"),
            ("steady lag p50 ms", ("steady", "lag_ms", "p50"), None),
            ("steady lag p95 ms", ("steady", "lag_ms", "p95"), None),
            ("queued while paused", ("catch_up", "backlog_messages"), None),
            ("catch-up drain s", ("catch_up", "drain_s"), "catch_up_drain_s"),
            ("catch-up msg/s", ("catch_up", "msgs_per_s"), "catch_up_msgs_per_s"),
            ("catch-up live lag p95 ms", ("catch_up", "live_lag_ms", "p95"), None),
            ("backlog messages", ("burst", "backlog_messages"), None),
            ("burst drain s", ("burst", "drain_s"), "burst_drain_s"),
            ("burst msg/s", ("burst", "msgs_per_s"), "burst_msgs_per_s"),
            ("burst live lag p50 ms", ("burst", "live_lag_ms", "p50"), None),
            ("burst live lag p95 ms", ("burst", "live_lag_ms", "p95"), None),
            ("copies received", ("copies",), None),
            ("missing", ("missing",), None),
            ("copies received twice", ("duplicates",), None)]
    for label, path, rkey in rows:
        cells = [str(g(report.get(k), *path)) for k in kinds]
        if all(c == "None" for c in cells):
            continue  # a phase this run did not have
        if "collector" in report:
            cells.append(str(g(report.get("ratio"), rkey)) if rkey else "")
        t.add_row(label, *cells)
    console = Console()
    console.print(t)
    store = g(report, "collector", "store")
    if store:
        console.print(f"store: {store['rows']} telemetry rows for {store['devices']} devices; missing "
                      f"{store['missing']}, duplicates {store['duplicates']}, unexpected {store['unexpected']}")
    console.print("ok" if report["ok"] else "FAILED: messages missing or stored twice")


# -- main ----------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1.0, help="telemetry messages a second per device")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of steady telemetry")
    ap.add_argument("--pause", type=float, default=None,
                    help="seconds the subscribers are paused (SIGSTOP) after the steady phase, so the broker queues "
                         "for them: their catch-up rate is their ingest capacity (default: the outage's length, at "
                         "most 20 s, under the collector's keepalive; 0: no pause)")
    ap.add_argument("--backlog", type=int, default=20, help="device outage length in intervals (0: no outage)")
    ap.add_argument("--db", default="sqlite", help="sqlite, postgresql (started for the run) or a postgresql:// URL")
    ap.add_argument("--collectors", type=int, choices=[0, 1, 2], default=1, help="0: the bare subscriber only")
    ap.add_argument("--broker", default=None, help="use this broker (the outage then takes the devices off)")
    ap.add_argument("--outage", choices=["auto", "broker", "network"], default="auto",
                    help="broker: stop and restart the local mosquitto; network: the devices lose the broker, which "
                         "stays up; auto: broker for one collector, network for two (mosquitto does not restore "
                         "shared subscriptions after a restart: docs/fleet.md)")
    ap.add_argument("--fleet", default=f"sim{os.getpid()}")
    ap.add_argument("--tail", type=float, default=5.0, help="seconds of live telemetry after the drain")
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="keep the broker, database and records here")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    ap.add_argument("--save", default=None, help="also write the JSON report to this file")
    opts = ap.parse_args(argv)
    if opts.devices < 1 or opts.rate <= 0 or opts.duration <= 0 or opts.backlog < 0:
        ap.error("--devices, --rate and --duration must be positive, --backlog not negative")
    if opts.collectors == 2 and opts.db == "sqlite":
        ap.error("two collectors share the stream through PostgreSQL: give --db postgresql")
    if opts.outage == "broker" and opts.broker:
        ap.error("--outage broker stops the simulator's own mosquitto; with --broker the outage is the network's")
    if opts.pause is None:
        opts.pause = min(20.0, opts.backlog / opts.rate)
    if not 0 <= opts.pause <= 25:
        ap.error("--pause takes 0 to 25 s (a paused subscriber misses its keepalive after that)")
    if opts.outage == "auto":
        opts.outage = "network" if opts.broker or opts.collectors > 1 else "broker"
    return opts


def _raise_fd_limit(devices: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, devices + 1024))  # one socket per device here, and in mosquitto, which inherits it
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run(opts: argparse.Namespace) -> dict[str, Any]:
    _raise_fd_limit(opts.devices)
    workdir = opts.workdir or tempfile.mkdtemp(prefix="edgeops-fleet-sim-")
    os.makedirs(workdir, exist_ok=True)
    broker = Broker(opts.broker, workdir)
    stop_db = None
    roles: list[Role] = []
    cleanup: list[str] = []
    try:
        db = None
        if opts.collectors:
            db, stop_db = open_database(opts.db, workdir)
            from edgeops.fleet.store import open_store

            open_store(db).close()  # the schema, before two collectors race to create it
        base = ["--broker", broker.url, "--fleet", opts.fleet]
        roles.append(Role("bare", ["bare", *base, "--client-id", f"{opts.fleet}-bare"], workdir))
        for i in range(opts.collectors):
            group = ["--group", f"{opts.fleet}-collectors"] if opts.collectors > 1 else []
            roles.append(Role(f"collector{i + 1}", ["collector", *base, "--db", db, *group,
                                                    "--client-id", f"{opts.fleet}-collector{i + 1}"], workdir))
        for r in roles:
            r.wait_ready(60)
        log(f"broker {broker.url}{' (local mosquitto)' if broker.local else ''}; subscribers ready: "
            f"{', '.join(r.name for r in roles)}{f'; store {db}' if db else ''}")
        tl = asyncio.run(simulate(opts, broker, roles))
        tl["broker"], tl["local_broker"] = broker.url, broker.local is not None
        records = {r.name: r.finish() for r in roles}
        report = analyse(opts, tl, records, db)
        if report["ok"] and not opts.workdir:
            cleanup.append(workdir)  # kept when something is missing: the subscribers' logs are there
        else:
            log(f"the broker's, database's and subscribers' files are in {workdir}")
        return report
    finally:
        for r in roles:
            r.kill()
        broker.close()
        if stop_db is not None:
            stop_db()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    report = run(opts)
    if opts.save:
        with open(opts.save, "w") as f:
            json.dump(report, f, indent=2)
    if opts.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
