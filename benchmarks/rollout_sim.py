"""Rollout simulator: how long does a rollout take to reach a whole fleet, and to undo a bad version?

N simulated devices (``_rollout_devices.py``: ``fleet_sim``'s devices, real MQTT 5 connections from one
asyncio loop, plus the device side of the OTA wire protocol and the ``rollback`` command; their telemetry's
p95 follows the model version) report at ``--rate`` Hz to a local mosquitto. The real ``edgeops fleet serve``
runs in its own process (collector, sqlite store, rollout controller, HTTP API). Two bundles are made as the
tests make them (``edgeops.bundle.create`` with ``examples/models/digits_mlp.onnx``, signed with a key from
``keygen``): ``2.0``, the good build (its devices report the same p95 as on 1.0), and ``3.0``, the bad build
(the same model; the devices report ``--slow``x the p95 for it, as a model that is that much slower would).

1. **good**: ``2.0`` is uploaded (``POST /api/bundles``) and rolled out (``POST /api/rollouts``,
   ``--stages``, ``--soak``, the default gates but ``error_rate_delta<=0.05``: 2 % of the simulated messages
   carry one run error, on every version, which over the few devices of a small stage can pass the default
   0.01 by chance); the run waits for ``completed`` and checks that every device
   reports 2.0 (the devices' own state and the store's). Reported: seconds from the POST to ``completed``, and
   per stage how long its flashing and its soak took (from polling ``GET /api/rollouts/<id>`` every 0.25 s).
2. **bad**: ``3.0`` the same way; the p95 gate halts it in its first stage with devices. Reported: seconds
   from the POST to ``halted`` (detect) and to ``rolled_back``, then the check that every device the rollout
   updated is back on 2.0 (the devices' state, the store's model version, the rollout's per-device state) and
   that no other device left 2.0.

**The floors (the ratios' baselines, computed in the same run from its own settings)**. A rollout cannot be
faster than its soaks: ``completed`` comes at least ``stages x soak`` after the start, so *time to 100 %*
is reported against ``stages x soak`` (ratio 1.0 would mean flashing, gate checks and stage switches cost
nothing). A bad version cannot be judged before each updated device has sent ``MIN_ROWS`` (2) telemetry
messages on it, and cannot be seen back on the old version before one more message: the rollback is
reported against ``(MIN_ROWS + 1) x interval``, plus the time its stage took to flash (which the detect
must wait for too, and which the good run measures). Anything above the floors is the controller's own
cost at this fleet size: flashing at ``--concurrency`` with a 0.5 s controller tick, store queries per tick,
the collector's lag, and this machine's CPU (devices, broker, server and store share it: run it alone).

    python benchmarks/rollout_sim.py --devices 1000 --rate 1 --stages 1,10,50,100 --soak 10s
                                     [--concurrency 8] [--slow 3] [--gate G] [--timeout 900] [--json]

Progress goes to stderr, a table (or ``--json``) to stdout. Exit 1 when a run does not reach its expected
end (completed with every device on 2.0; rolled back with every updated device on 2.0 again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _rollout_devices import OtaFleet  # noqa: E402
from fleet_sim import Broker  # noqa: E402

FLEET = "sim"
MIN_ROWS = 2  # edgeops.fleet.rollout.MIN_ROWS: messages an updated device must send before a gate judges it


def log(text: str) -> None:
    print(f"[rollout_sim {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def seconds(text: str) -> float:
    text = text.strip().lower()
    mult = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * mult[unit]
    return float(text)


class Server:
    """``edgeops fleet serve`` in its own process, with its HTTP API."""

    def __init__(self, broker_url: str, db: str, workdir: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(workdir, "serve.log")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "edgeops", "fleet", "serve", "--broker", broker_url,
                                          "--fleet", FLEET, "--db", db, "--http", f"127.0.0.1:{port}"],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_up(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while self.get("/healthz") is None:
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"edgeops fleet serve did not start; its log ends with:\n{self.tail()}")
            time.sleep(0.2)

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def post(self, path: str, body: bytes, ctype: str = "application/json") -> Any:
        req = urllib.request.Request(self.url + path, data=body, method="POST", headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:]) or "(empty)"
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_bundles(workdir: str) -> dict[str, str]:
    """``2.0`` and ``3.0`` of examples/models/digits_mlp.onnx, signed (as tests/agent/test_ota.py makes them)."""
    from edgeops.bundle import create, keygen

    models = ROOT / "examples" / "models"
    key, _pub = keygen(os.path.join(workdir, "fleet"))
    out = {}
    for version in ("2.0", "3.0"):
        path = os.path.join(workdir, f"digits-{version}.eob")
        create(str(models / "digits_mlp.onnx"), path, name="digits", version=version, key=key,
               sample=str(models / "digits_mlp_test.npz"))
        out[version] = path
    return out


async def until(pred: Any, timeout: float, step: float = 0.25) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await asyncio.to_thread(pred):
            return True
        await asyncio.sleep(step)
    return False


async def rollout(server: Server, bundle: str, opts: argparse.Namespace, fleet: OtaFleet,
                  stop_at: tuple[str, ...]) -> dict[str, Any]:
    """Upload ``bundle``, start its rollout, poll its status until a final state; the timeline."""
    up = await asyncio.to_thread(server.post, "/api/bundles", Path(bundle).read_bytes(), "application/octet-stream")
    spec = {"bundle": up["sha256"], "stages": opts.stages, "soak_s": opts.soak, "concurrency": opts.concurrency,
            "flash_timeout_s": opts.flash_timeout, "gates": opts.gate}
    t0 = time.monotonic()
    rid = (await asyncio.to_thread(server.post, "/api/rollouts", json.dumps(spec).encode()))["id"]
    log(f"rollout {rid} of {up['version']} started")
    events: list[dict[str, Any]] = []  # (t, state, phase, stage) at each change
    last: tuple[Any, ...] = ()
    st: dict[str, Any] = {}
    shown = 0.0
    while time.monotonic() - t0 < opts.timeout:
        st = await asyncio.to_thread(server.get, f"/api/rollouts/{rid}") or {}
        now = round(time.monotonic() - t0, 2)
        key = (st.get("state"), st.get("phase"), st.get("stage"))
        if key != last and st:
            last = key
            events.append({"t": now, "state": key[0], "phase": key[1], "stage": key[2]})
            log(f"  {now:7.1f} s  {key[0]} / {key[1]} / stage {key[2]}")
        if now - shown >= 5:
            shown = now
            log(f"  {now:7.1f} s  per device: {st.get('counts')}; devices on {up['version']}: "
                f"{sum(v == up['version'] for v in fleet.versions().values())}")
        if st.get("state") in stop_at or st.get("state") in ("completed", "rolled_back", "aborted"):
            break
        await asyncio.sleep(0.25)
    return {"id": rid, "version": up["version"], "events": events, "status": st,
            "elapsed_s": round(time.monotonic() - t0, 2)}


def stage_times(events: list[dict[str, Any]], stages: list[Any]) -> list[dict[str, Any]]:
    """Per stage: when it began, how long its flashing and its soak took (from the status changes)."""
    out = []
    for i, value in enumerate(stages):
        begin = next((e["t"] for e in events if e["stage"] == i and e["phase"] == "flash"), None)
        soak = next((e["t"] for e in events if e["stage"] == i and e["phase"] == "soak"), None)
        end = next((e["t"] for e in events if (e["stage"] or 0) > i or e["phase"] in ("done", "rollback")), None)
        if begin is None and i == 0:
            begin = 0.0
        out.append({"stage": value, "flash_s": round(soak - begin, 2) if soak is not None and begin is not None
                    else None, "soak_s": round(end - soak, 2) if end is not None and soak is not None else None})
    return out


def store_versions(server: Server) -> dict[str, str]:
    return {d["id"]: (d.get("model") or {}).get("version") for d in server.get("/api/devices") or []}


async def simulate(opts: argparse.Namespace, broker: Broker, server: Server,
                   bundles: dict[str, str]) -> dict[str, Any]:
    fleet = OtaFleet(opts.devices, opts.rate, FLEET, broker.host, broker.port, seed=opts.seed,
                     slow={"3.0": opts.slow})
    out: dict[str, Any] = {}
    try:
        out["connect_s"] = round(await fleet.start(log), 2)
        fleet.begin()
        log(f"{opts.devices} devices connected in {out['connect_s']} s; waiting for the store to know them all")
        names = {d.name for d in fleet.devices}
        if not await until(lambda: {k for k, v in store_versions(server).items() if v == "1.0"} >= names, 120, 1.0):
            raise RuntimeError(f"the server does not know every device on 1.0; its log:\n{server.tail()}")
        await asyncio.sleep(3 / opts.rate)  # a few baseline messages from everyone
        period = 1.0 / opts.rate

        good = out["good"] = await rollout(server, bundles["2.0"], opts, fleet, ("halted",))
        st = good["status"]
        good["stages"] = stage_times(good["events"], st.get("stages") or [])
        on_new = [n for n, v in fleet.versions().items() if v == "2.0"]
        await until(lambda: all(v == "2.0" for k, v in store_versions(server).items() if k in names), 10 * period + 10)
        stored = store_versions(server)
        good["devices_on_new"] = len(on_new)
        good["store_on_new"] = sum(stored.get(n) == "2.0" for n in names)
        good["to_100_s"] = next((e["t"] for e in good["events"] if e["state"] == "completed"), None)
        good["floor_s"] = round(len(st.get("stages") or []) * opts.soak, 2)
        good["ratio"] = round(good["to_100_s"] / good["floor_s"], 2) if good["to_100_s"] and good["floor_s"] else None
        good["ok"] = st.get("state") == "completed" and len(on_new) == len(names) and good["store_on_new"] == len(names)
        log(f"good rollout: {st.get('state')} in {good['to_100_s']} s; {len(on_new)} devices on 2.0 "
            f"({good['store_on_new']} in the store)")

        await asyncio.sleep(3 * period)  # 2.0 telemetry from everyone: the baseline of the next rollout
        bad = out["bad"] = await rollout(server, bundles["3.0"], opts, fleet, ())
        st = bad["status"]
        bad["detect_s"] = next((e["t"] for e in bad["events"] if e["state"] == "halted"), None)
        bad["rolled_back_s"] = next((e["t"] for e in bad["events"] if e["state"] == "rolled_back"), None)
        bad["reason"] = st.get("reason")
        reached = [d["device"] for d in st.get("devices") or [] if d["ota_state"] == "rolled_back"]
        bad["updated_devices"] = len(reached)
        await until(lambda: all(v == "2.0" for k, v in store_versions(server).items() if k in names), 5 * period + 5)
        versions, stored = fleet.versions(), store_versions(server)
        bad["devices_back"] = sum(versions[n] == "2.0" for n in reached)
        bad["store_back"] = sum(stored.get(n) == "2.0" for n in reached)
        bad["devices_not_on_old"] = sorted(n for n, v in versions.items() if v != "2.0")[:10]
        bad["device_rollbacks"] = sum(d.rolled_back for d in fleet.devices)
        first = min((d["stage"] for d in st.get("devices") or []), default=0)  # the first stage with devices
        bad["halted_stage"] = (st.get("stages") or [None])[min(st.get("stage") or 0, len(st.get("stages") or [1]) - 1)]
        flash = stage_times(bad["events"], st.get("stages") or [])[first]["flash_s"] if st.get("stages") else None
        bad["flash_stage_s"] = flash or 0.0
        bad["floor_s"] = round(bad["flash_stage_s"] + (MIN_ROWS + 1) * period, 2)
        bad["ratio"] = round(bad["rolled_back_s"] / bad["floor_s"], 2) if bad["rolled_back_s"] else None
        bad["ok"] = (st.get("state") == "rolled_back" and st.get("stage") == first and len(reached) > 0
                     and bad["devices_back"] == len(reached) == bad["store_back"] and not bad["devices_not_on_old"])
        log(f"bad rollout: {st.get('state')}; halted at {bad['detect_s']} s, rolled back at {bad['rolled_back_s']} s; "
            f"{bad['devices_back']}/{len(reached)} updated devices back on 2.0 ({bad['store_back']} in the store)")
        out["sim_errors"] = fleet.errors[:20]
        out["device_commits"] = sum(d.committed for d in fleet.devices)
    finally:
        await fleet.close()
    return out


def table(opts: argparse.Namespace, r: dict[str, Any]) -> str:
    g, b = r.get("good", {}), r.get("bad", {})
    lines = [f"rollout_sim: {opts.devices} devices at {opts.rate:g} Hz, stages {opts.stages}, soak {opts.soak:g} s, "
             f"concurrency {opts.concurrency}", ""]
    lines.append(f"good (2.0)  time to 100 %           {g.get('to_100_s')} s   "
                 f"floor (stages x soak) {g.get('floor_s')} s   ratio {g.get('ratio')}")
    for s in g.get("stages") or []:
        lines.append(f"            stage {s['stage']:>5}: flash {s['flash_s']} s, soak {s['soak_s']} s")
    lines.append(f"            devices on 2.0: {g.get('devices_on_new')} (store {g.get('store_on_new')})   "
                 f"{'OK' if g.get('ok') else 'FAILED'}")
    lines.append(f"bad (3.0)   time to detect (halted) {b.get('detect_s')} s   reason: {b.get('reason')}")
    lines.append(f"            time to rolled_back     {b.get('rolled_back_s')} s   floor (flash of stage "
                 f"{b.get('halted_stage')}: {b.get('flash_stage_s')} s + {MIN_ROWS + 1} intervals) "
                 f"{b.get('floor_s')} s   ratio {b.get('ratio')}")
    lines.append(f"            updated devices back on 2.0: {b.get('devices_back')}/{b.get('updated_devices')} "
                 f"(store {b.get('store_back')})   {'OK' if b.get('ok') else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.0, help="telemetry messages per second per device")
    ap.add_argument("--stages", default="1,10,50,100")
    ap.add_argument("--soak", type=seconds, default=10.0, help="soak per stage, e.g. 10s")
    ap.add_argument("--concurrency", type=int, default=8, help="flashes at a time (the controller's default: 8)")
    ap.add_argument("--slow", type=float, default=3.0, help="the bad version's p95 as a multiple of the good one's")
    ap.add_argument("--gate", action="append", default=None,
                    help="a gate (repeatable), on top of the default ones (default: error_rate_delta<=0.05)")
    ap.add_argument("--flash-timeout", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds each rollout may take at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="keep the run's files here (default: a temporary folder, removed)")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args(argv)
    opts.gate = opts.gate or ["error_rate_delta<=0.05"]
    if opts.devices < 1 or opts.rate <= 0 or opts.soak < 0 or opts.concurrency < 1:
        ap.error("--devices and --concurrency must be >= 1, --rate > 0, --soak >= 0")
    from edgeops.agent.localbroker import LocalBroker

    if not LocalBroker.available():
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    workdir = opts.workdir or tempfile.mkdtemp(prefix="rollout-sim-")
    os.makedirs(workdir, exist_ok=True)
    broker = server = None
    try:
        bundles = make_bundles(workdir)
        broker = Broker(None, workdir)
        server = Server(broker.url, os.path.join(workdir, "fleet.db"), workdir)
        server.wait_up()
        result = asyncio.run(simulate(opts, broker, server, bundles))
    finally:
        if server is not None:
            server.close()
        if broker is not None:
            broker.close()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = bool(result.get("good", {}).get("ok") and result.get("bad", {}).get("ok"))
    result.update(ok=ok, devices=opts.devices, rate=opts.rate, stages=opts.stages, soak_s=opts.soak,
                  concurrency=opts.concurrency, slow=opts.slow)
    print(json.dumps(result, indent=1) if opts.json else table(opts, result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
