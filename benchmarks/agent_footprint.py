"""How much memory and CPU does ``edgeops agent run`` take at 1 Hz telemetry, over a process that only loads the model?

Starts mosquitto (LocalBroker), writes an agent.toml to a temp folder (the digits MLP, whose
profile next to it turns drift monitoring on, ``interval_s = 1``, optionally a ``[workload]``
replaying the digits test set through the model) and runs two processes side by side:

* **agent**: ``python -m edgeops agent run --config agent.toml``;
* **bare**: ``python -c "import edgeops, onnxruntime; m = edgeops.load(MODEL); time.sleep(D)"``,
  what any program serving the model pays anyway.

Both run at the same time, so machine noise hits them alike. Once both are up (the agent's first
telemetry has arrived, the bare process has loaded the model) and a warm-up has passed, both are
sampled with psutil every second for ``--duration`` seconds. Printed per process: the median RSS
(MiB) and the CPU used over the window as % of one core (user + system CPU time / wall time);
then agent - bare and agent / bare, and how many telemetry messages a subscriber received in the
window (about one per second).

    python benchmarks/agent_footprint.py [--duration 30] [--warmup 3] [--rate-hz [20]] [--json]

``--rate-hz`` alone replays 20 inferences/s through the agent's model (default 0: no workload),
so the CPU figure then includes the inference itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from edgeops.agent.localbroker import LocalBroker
from edgeops.agent.transport import parse_url

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
FLEET = "bench"
BARE = ("import sys, time, edgeops, onnxruntime; m = edgeops.load(sys.argv[1]); print('ready', flush=True); "
        "time.sleep(float(sys.argv[2]))")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_config(folder: str, url: str, device: str, model: str, data: str, rate_hz: float) -> str:
    lines = ["[broker]", f"url = {json.dumps(url)}",
             "[device]", f"fleet = {json.dumps(FLEET)}", f"id = {json.dumps(device)}",
             "[telemetry]", "interval_s = 1",
             "[store]", f"dir = {json.dumps(os.path.join(folder, 'store'))}",
             "[model]", f"path = {json.dumps(model)}"]
    if rate_hz > 0:
        lines += ["[workload]", f"data = {json.dumps(data)}", f"rate_hz = {rate_hz:g}"]
    path = os.path.join(folder, "agent.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Subscriber:
    """Counts the agent's telemetry messages (arrival times) and keeps the last one."""

    def __init__(self, url: str, topic: str):
        import paho.mqtt.client as mqtt

        host, port, _ = parse_url(url)
        self.arrivals: list[float] = []
        self.last: dict[str, Any] = {}
        self.first = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"footprint-sub-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise SystemExit(f"the telemetry subscriber could not subscribe at {url}")

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.arrivals.append(time.monotonic())
        try:
            self.last = json.loads(msg.payload)
        except ValueError:
            pass
        self.first.set()

    def count(self, t0: float, t1: float) -> int:
        return sum(t0 <= t < t1 for t in list(self.arrivals))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def wait_line(proc: subprocess.Popen[str], expected: str, timeout: float) -> bool:
    """Read the child's stdout until ``expected`` (in a thread, so a silent child cannot hang us)."""
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == expected:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    return found.wait(timeout)


def stop(proc: subprocess.Popen[Any], name: str) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop on SIGTERM; killing it")
            proc.kill()
            proc.wait()
    return proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="sampling window, seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after both processes are up, not sampled")
    ap.add_argument("--rate-hz", type=float, nargs="?", const=20.0, default=0.0,
                    help="[workload] inferences/s through the agent's model (alone: 20; default 0 = no workload)")
    ap.add_argument("--model", default=str(MODELS / "digits_mlp.onnx"))
    ap.add_argument("--data", default=str(MODELS / "digits_mlp_test.npz"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.duration < 2 or args.warmup < 0 or args.rate_hz < 0:
        ap.error("--duration must be at least 2 s, --warmup and --rate-hz not negative")

    folder = tempfile.mkdtemp(prefix="edgeops-footprint-")
    device = f"footprint-{uuid.uuid4().hex[:6]}"
    lifetime = args.warmup + args.duration + 120  # a safety net: both are stopped as soon as the window ends
    broker = LocalBroker(persistence=False).start()
    procs: dict[str, subprocess.Popen[str]] = {}
    sub = None
    agent_log = open(os.path.join(folder, "agent.log"), "w")  # the agent's stderr, shown if it never reports
    try:
        config = write_config(folder, broker.url, device, args.model, args.data, args.rate_hz)
        sub = Subscriber(broker.url, f"edgeops/{FLEET}/{device}/telemetry")
        procs["agent"] = subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", config,
                                           "--duration", str(lifetime)], cwd=ROOT, stdin=subprocess.DEVNULL,
                                          stdout=agent_log, stderr=subprocess.STDOUT, text=True)
        procs["bare"] = subprocess.Popen([sys.executable, "-c", BARE, args.model, str(lifetime)], cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        log(f"broker {broker.url}; agent pid {procs['agent'].pid}, bare pid {procs['bare'].pid}; config {config}")
        if not wait_line(procs["bare"], "ready", 60):
            raise SystemExit("the bare process did not load the model within 60 s")
        if not sub.first.wait(60):
            agent_log.flush()
            raise SystemExit(f"no telemetry from the agent within 60 s; its log:\n{Path(agent_log.name).read_text()}")
        log(f"both up; warm-up {args.warmup:g} s")
        time.sleep(args.warmup)

        ps = {name: psutil.Process(p.pid) for name, p in procs.items()}
        rss: dict[str, list[float]] = {name: [] for name in ps}
        t0 = time.monotonic()
        cpu0 = {name: cpu_s(p) for name, p in ps.items()}
        ticks = max(int(args.duration), 1)
        for k in range(ticks):
            for name, p in ps.items():
                rss[name].append(p.memory_info().rss / 2**20)
            if (k + 1) % 5 == 0 or k + 1 == ticks:
                log(f"sampled {k + 1}/{ticks} s")
            time.sleep(max(t0 + (k + 1) * args.duration / ticks - time.monotonic(), 0.0))
        cpu1 = {name: cpu_s(p) for name, p in ps.items()}
        t1 = time.monotonic()
        wall = t1 - t0
        telemetry = sub.count(t0, t1)
        last = sub.last
    finally:
        codes = {name: stop(p, name) for name, p in procs.items()}
        if sub is not None:
            sub.close()
        agent_log.close()
        broker.close()
        shutil.rmtree(folder, ignore_errors=True)
    if codes.get("agent") != 0:
        log(f"note: the agent exited with {codes.get('agent')} (0 expected after SIGTERM)")

    result: dict[str, Any] = {
        "window_s": wall,
        "rate_hz": args.rate_hz,
        "rss_mib_median": {name: statistics.median(v) for name, v in rss.items()},
        "rss_mib_max": {name: max(v) for name, v in rss.items()},
        "cpu_pct_one_core": {name: 100 * (cpu1[name] - cpu0[name]) / wall for name in ps},
        "telemetry_received": telemetry,
        "telemetry_drift_enabled": bool(last.get("drift", {}).get("enabled")),
        "telemetry_guardrails_enabled": bool(last.get("guardrails", {}).get("enabled")),
        "inferences_total": last.get("inference", {}).get("total"),
        "agent_exit_code": codes.get("agent"),
    }
    med, cpu = result["rss_mib_median"], result["cpu_pct_one_core"]
    result["rss_ratio_agent_vs_bare"] = med["agent"] / med["bare"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        work = f"workload {args.rate_hz:g} Hz" if args.rate_hz > 0 else "no workload"
        print(f"window {wall:.1f} s after {args.warmup:g} s warm-up; telemetry every 1 s; {work}")
        print(f"{'':22s} {'agent':>9s} {'bare':>9s} {'agent-bare':>11s} {'agent/bare':>11s}")
        print(f"{'RSS median (MiB)':22s} {med['agent']:9.1f} {med['bare']:9.1f} {med['agent'] - med['bare']:11.1f} "
              f"{med['agent'] / med['bare']:11.3f}")
        print(f"{'RSS max (MiB)':22s} {result['rss_mib_max']['agent']:9.1f} {result['rss_mib_max']['bare']:9.1f}")
        print(f"{'CPU (% of one core)':22s} {cpu['agent']:9.2f} {cpu['bare']:9.2f} {cpu['agent'] - cpu['bare']:11.2f}")
        print(f"telemetry messages received in the window: {telemetry} (expected ~{wall:.0f}); "
              f"drift {'on' if result['telemetry_drift_enabled'] else 'off'}, "
              f"guardrails {'on' if result['telemetry_guardrails_enabled'] else 'off'}, "
              f"inferences so far {result['inferences_total']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
