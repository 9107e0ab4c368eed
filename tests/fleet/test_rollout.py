"""Rollouts end to end: a real mosquitto, real agent processes (``edgeops agent run`` with a store on 1.0, a
workload and [ota]), a real ``edgeops fleet serve`` process running the controller, signed bundles.

* a good bundle (2.0) walks every stage to ``completed`` and every device ends on 2.0;
* a slow bundle (2.0, the same answers with ~1000x the compute: p95 far over 1.5x) halts at its first stage
  and every device it reached is back on 1.0 (the agent's ``rollback`` command), with an alert and a reason;
* the server is SIGKILLed right after each step it persists (``EDGEOPS_ROLLOUT_KILL_AT``), started again each
  time, and the rollout still ends where it must;
* a device whose agent is down during its stage is retried, then counted (``flash_failed``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("cryptography")

from edgeops.fleet.rollout import KILL_ENV  # noqa: E402
from tests.agent.test_ota import EXAMPLES, SAMPLE, ota_bundles  # noqa: E402, F401 - the fixture

pytestmark = pytest.mark.slow

FLEET = "demo"
AGENT = """
[broker]
url = "{url}"
[device]
fleet = "demo"
id = "{device}"
labels = {{ring = "{ring}"}}
[telemetry]
interval_s = 0.3
[store]
dir = "{store}"
[workload]
data = "{sample}"
rate_hz = 40
{workload}
[ota]
trusted_keys = ["{pub}"]
health_window_s = 0.3
timeout_s = 10
"""


def slow_model(path: Path) -> Path:
    """digits_mlp with a chain of 1024x1024 MatMuls added as 0 * sum: the same answers, far slower."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(EXAMPLES / "digits_mlp.onnx"))
    g = m.graph
    out = g.output[0].name
    for node in g.node:
        node.output[:] = [o + "_raw" if o == out else o for o in node.output]
    rng = np.random.default_rng(0)
    g.initializer.extend([numpy_helper.from_array((rng.standard_normal((64, 1024)) * 0.01).astype(np.float32), "sw0"),
                          numpy_helper.from_array((rng.standard_normal((1024, 1024)) * 0.01).astype(np.float32), "sw"),
                          numpy_helper.from_array(np.zeros((1,), np.float32), "szero")])
    x = g.input[0].name
    nodes = [helper.make_node("MatMul", [x, "sw0"], ["s0"])]
    for i in range(1, 25):
        nodes.append(helper.make_node("MatMul", [f"s{i - 1}", "sw"], [f"s{i}"]))
    nodes += [helper.make_node("ReduceSum", ["s24"], ["ssum"], keepdims=1),
              helper.make_node("Mul", ["ssum", "szero"], ["snull"]),
              helper.make_node("Add", [out + "_raw", "snull"], [out])]
    g.node.extend(nodes)
    del TensorProto
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def slow_bundle(ota_bundles):  # noqa: F811
    from edgeops.bundle import create

    out = ota_bundles.dir / "slow.eob"
    if not out.exists():
        create(str(slow_model(ota_bundles.dir / "slow.onnx")), str(out), name="digits", version="2.0",
               key=ota_bundles.key, sample=str(SAMPLE))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """N agent processes on 1.0 and a ``fleet serve`` process (restartable, with a kill point)."""

    def __init__(self, broker, tmp: Path, bundles, n: int, workload: str = ""):
        from edgeops.deploy.store import ModelStore

        self.broker, self.tmp, self.bundles = broker, tmp, bundles
        self.agents: dict[str, subprocess.Popen] = {}
        self.devices = [f"pi-{i:02d}" for i in range(n)]
        for i, dev in enumerate(self.devices):
            store = tmp / dev / "store"
            models = ModelStore(store / "models")
            models.switch(models.install(bundles.v1, trusted_keys=[bundles.pub], require_signature=True).slot)
            (tmp / dev / "agent.toml").write_text(AGENT.format(url=broker.url, device=dev, store=store, pub=bundles.pub,
                                                               sample=SAMPLE, ring="canary" if i == 0 else "stable",
                                                               workload=workload))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen | None = None
        self.runs = 0

    def start_agent(self, dev: str) -> None:
        log = open(self.tmp / dev / "agent.log", "a")
        self.agents[dev] = subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config",
                                             str(self.tmp / dev / "agent.toml")], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop_agent(self, dev: str) -> None:
        p = self.agents.pop(dev)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def serve(self, kill_at: str | None = None) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
        if kill_at:
            env[KILL_ENV] = kill_at
        self.runs += 1
        log = open(self.tmp / f"serve-{self.runs}.log", "w")
        self.server = subprocess.Popen([sys.executable, "-m", "edgeops", "fleet", "serve", "--broker", self.broker.url,
                                        "--fleet", FLEET, "--db", str(self.tmp / "fleet.db"), "--http",
                                        f"127.0.0.1:{self.port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        assert wait(lambda: self.get("/healthz") is not None or self.server.poll() is not None, 30), self.logs()
        return self.server

    def logs(self) -> str:
        out = [f"--- serve-{i}\n" + (self.tmp / f"serve-{i}.log").read_text()[-2500:] for i in range(1, self.runs + 1)]
        return "\n".join(out)

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def post(self, path: str, body: bytes, ctype: str = "application/json"):
        req = urllib.request.Request(self.url + path, data=body, method="POST", headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "edgeops", "rollout", *args, "--server", self.url],
                           capture_output=True, text=True, timeout=300)
        assert not check or p.returncode == 0, (p.stdout, p.stderr, self.logs())
        return p

    def known(self) -> bool:
        devs = self.get("/api/devices") or []
        return {d["id"] for d in devs if d["model"]["version"] == "1.0"} >= set(self.agents)

    def status(self, rid: str) -> dict:
        return self.get(f"/api/rollouts/{rid}") or {}

    def versions(self) -> dict[str, str]:
        """Each running agent's active model, read from its store (the two-slot pointer)."""
        from edgeops.deploy.store import ModelStore

        return {d: ModelStore(self.tmp / d / "store" / "models").active().version for d in self.devices}

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
        for dev in list(self.agents):
            self.stop_agent(dev)


def wait(pred, timeout: float, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


@pytest.fixture
def fleet(broker, tmp_path, ota_bundles):  # noqa: F811
    made: list[Fleet] = []

    def make(n: int = 4, workload: str = "") -> Fleet:
        f = Fleet(broker, tmp_path, ota_bundles, n, workload)
        made.append(f)
        for dev in f.devices:
            f.start_agent(dev)
        f.serve()
        assert wait(f.known, 60), f.logs()
        return f

    yield make
    for f in made:
        f.close()


def _spec(bundle: str, **kw) -> bytes:
    return json.dumps({"bundle": bundle, "stages": kw.pop("stages", "25,50,100"), "soak_s": kw.pop("soak_s", 1.5),
                       "flash_timeout_s": 40, **kw}).encode()


def test_a_good_bundle_walks_every_stage_to_completed(fleet, ota_bundles):  # noqa: F811
    f = fleet(4)
    p = f.cli("start", str(ota_bundles.v2), "--stages", "1,10,50,100", "--soak", "1s", "--gate", "p95_ratio<=3",
              "--gate", "psi_in<=1", "--json")
    rid = json.loads(p.stdout)["id"]
    done = f.cli("status", rid, "--wait", "--json", check=False)
    st = json.loads(done.stdout)
    assert done.returncode == 0 and st["state"] == "completed", (st, f.logs())
    assert st["stage"] == 3 and all(d["version"] == "2.0" and d["ota_state"] == "updated" for d in st["devices"])
    assert set(f.versions().values()) == {"2.0"}
    assert [d["stage"] for d in st["devices"]] == [d["stage"] for d in f.status(rid)["devices"]]  # sticky
    listed = json.loads(f.cli("list", "--json").stdout)
    assert [r["id"] for r in listed] == [rid]


def test_a_slow_bundle_halts_at_the_first_stage_and_every_updated_device_is_back(fleet, slow_bundle):
    f = fleet(4)
    p = f.cli("start", str(slow_bundle), "--stages", "canary,stable", "--soak", "20s", "--gate", "p95_ratio<=1.5",
              "--wait", "--json", check=False)
    st = json.loads(p.stdout)
    assert p.returncode == 1 and st["state"] == "rolled_back", (st, f.logs())
    assert st["stage"] == 0 and "p95_ratio" in st["reason"], st
    reached = [d for d in st["devices"] if d["ota_state"] == "rolled_back"]
    assert [d["device"] for d in reached] == ["pi-00"]  # the canary ring, only
    assert set(f.versions().values()) == {"1.0"}
    assert wait(lambda: all(d["version"] == "1.0" for d in f.status(st["id"])["devices"]), 10)
    alerts = f.get("/api/alerts?state=firing")
    assert any(a["rule"] == "rollout" and st["id"] in a["message"] for a in alerts), alerts


GOOD_STEPS = ["created", "assigned", "flashing", "updated", "soak", "stage", "completed"]
BAD_STEPS = ["halted", "rolling_back", "device_rolled_back", "rolled_back"]


def _through_kills(f: Fleet, rid_holder: list, steps: list[str]) -> None:
    for step in steps:
        assert f.server is not None
        f.server.send_signal(signal.SIGTERM)
        f.server.wait(20)
        proc = f.serve(kill_at=step)
        if step == "created":
            with pytest.raises(OSError):
                f.post("/api/rollouts", rid_holder[0])
        assert proc.wait(120) == -signal.SIGKILL, (step, f.logs())
    f.serve()


def test_a_controller_killed_after_each_step_of_a_good_rollout_resumes_to_completed(fleet, ota_bundles):  # noqa: F811
    f = fleet(3)
    up = f.post("/api/bundles", Path(ota_bundles.v2).read_bytes(), "application/octet-stream")
    _through_kills(f, [_spec(up["sha256"], stages="canary,stable", soak_s=1.0,
                                    gates=["p95_ratio<=3", "psi_in<=1"])], GOOD_STEPS)  # pi-00 first
    rid = f.get("/api/rollouts")[0]["id"]
    assert wait(lambda: f.status(rid).get("state") == "completed", 120), (f.status(rid), f.logs())
    assert set(f.versions().values()) == {"2.0"}


def test_a_controller_killed_after_each_step_of_a_halt_still_rolls_every_device_back(fleet, slow_bundle):
    f = fleet(3)
    up = f.post("/api/bundles", Path(slow_bundle).read_bytes(), "application/octet-stream")
    rid = f.post("/api/rollouts", _spec(up["sha256"], stages="100", soak_s=20, gates=["p95_ratio<=1.5"]))["id"]
    _through_kills(f, [], BAD_STEPS)
    assert wait(lambda: f.status(rid).get("state") == "rolled_back", 120), (f.status(rid), f.logs())
    assert set(f.versions().values()) == {"1.0"}
    assert {d["ota_state"] for d in f.status(rid)["devices"]} == {"rolled_back"}


def test_a_device_offline_during_its_stage_is_retried_then_counted(fleet, ota_bundles):  # noqa: F811
    f = fleet(3)
    f.stop_agent("pi-02")
    up = f.post("/api/bundles", Path(ota_bundles.v2).read_bytes(), "application/octet-stream")
    spec = json.loads(_spec(up["sha256"], stages="100", soak_s=0.5, gates=["flash_failed<=0"], retries=1))
    spec["flash_timeout_s"] = 3
    rid = f.post("/api/rollouts", json.dumps(spec).encode())["id"]
    assert wait(lambda: f.status(rid).get("state") == "rolled_back", 90), (f.status(rid), f.logs())
    st = f.status(rid)
    off = next(d for d in st["devices"] if d["device"] == "pi-02")
    assert off["attempts"] == 2 and off["ota_state"] == "failed" and off["error"], off
    assert "flash_failed" in st["reason"]
    f.start_agent("pi-02")
    assert set(f.versions().values()) == {"1.0"}
