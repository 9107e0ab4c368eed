"""Shadow mode: a candidate runs next to the active model on a sample of its inputs (real onnxruntime models from
examples/models): agreement 1.0 for the same model, below 1 for a perturbed one, dropped samples counted when the
candidate cannot keep up, ``[model] shadow`` in the config, and an OTA offer with ``args.mode = "shadow"``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # test_ota's needs (signed bundles); perturb() edits weights with onnx
pytest.importorskip("cryptography")
pytest.importorskip("paho.mqtt")

import edgeops
from edgeops.agent import Agent
from edgeops.agent.config import from_dict
from edgeops.agent.shadow import Shadow
from edgeops.agent.transport import MemoryTransport
from edgeops.errors import UsageError
from tests.agent.test_ota import offer_for, ota_bundles  # noqa: F401 - ota_bundles: the signed bundles fixture
from tests.agent.test_ota_machine import BASE, Device
from tests.agent.waiting import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
MLP = EXAMPLES / "digits_mlp.onnx"
X = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]


def perturb(out: Path, scale: float, seed: int = 0) -> Path:
    """digits_mlp with noise (``scale`` times each weight's std) added to every weight: the same signature, some
    answers different (scale 1.0: about half right; 0.6: some ten points worse than the original's 97 %)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    m = onnx.load(str(MLP))
    rng = np.random.default_rng(seed)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 1:
            noisy = (w + rng.normal(0, scale * float(np.std(w)), w.shape)).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(m, str(out))
    return out


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory) -> Path:
    return perturb(tmp_path_factory.mktemp("shadow") / "perturbed.onnx", 1.0)


def shadowed_agent(tmp_path, candidate, rate=1.0) -> Agent:
    return Agent(edgeops.load(MLP), transport=MemoryTransport(), fleet="demo", device="pi-01",
                 store_dir=str(tmp_path / "store"), interval_s=60, shadow=str(candidate), shadow_rate=rate)


def run_through(agent: Agent, n: int) -> None:
    for i in range(n):
        agent.model.run(X[i % len(X)][None])
        if i % 16 == 15:
            agent.online.shadow.drain()  # the test wants every sample compared; a device does not wait


def test_the_same_model_agrees_exactly(tmp_path):
    with shadowed_agent(tmp_path, MLP) as agent:
        run_through(agent, 200)
        assert agent.online.shadow.drain()
        shadow = agent.telemetry_now()["shadow"]
    assert shadow["enabled"] and shadow["kind"] == "top1"
    assert shadow["count"] + shadow["dropped"] == 200 and shadow["count"] >= 150
    assert shadow["agreement"] == 1.0
    assert shadow["errors"] == 0
    assert shadow["latency_ratio"] > 0
    assert shadow["version"] == edgeops.load(MLP).sha256[:12]


def test_a_perturbed_model_agrees_less(tmp_path, perturbed):
    active, candidate = edgeops.load(MLP), edgeops.load(perturbed)
    truth = [np.argmax(active.run(X[i][None])["probabilities"]) == np.argmax(candidate.run(X[i][None])["probabilities"])
             for i in range(len(X))]
    assert 0.2 < np.mean(truth) < 0.98  # the perturbation changes some answers, not all
    with shadowed_agent(tmp_path, perturbed, rate=0.5) as agent:
        run_through(agent, len(X))
        assert agent.online.shadow.drain()
        shadow = agent.telemetry_now()["shadow"]
    assert shadow["count"] + shadow["dropped"] == len(X) // 2
    assert shadow["agreement"] < 1.0
    if shadow["dropped"] == 0:  # every other sample, compared: the share of them that agree
        assert shadow["agreement"] == pytest.approx(np.mean(truth[1::2]))


def test_a_full_queue_drops_and_counts_without_waiting():
    shadow = Shadow(edgeops.load(MLP), "2.0", rate=1.0, queue_size=2)  # no worker: nothing leaves the queue
    out = {"probabilities": np.zeros((1, 10), np.float32)}
    for i in range(10):
        shadow.offer({"pixels": X[i][None]}, out, 1000)
    snap = shadow.snapshot()
    assert snap["dropped"] == 8 and snap["count"] == 0 and snap["agreement"] is None


def test_the_rate_samples_that_share_of_runs():
    shadow = Shadow(edgeops.load(MLP), "2.0", rate=0.1, queue_size=1000)
    out = {"probabilities": np.zeros((1, 10), np.float32)}
    for i in range(1000):
        shadow.offer({"pixels": X[i % len(X)][None]}, out, 1000)
    assert shadow._queue.qsize() == 100


def test_outputs_that_are_not_scores_are_compared_by_cosine(tmp_path):
    class Doubled:  # a candidate whose outputs are twice the active model's, and one that answers the same
        def __init__(self, factor):
            self.factor = factor

        def run(self, feeds):
            return {"y": feeds["x"].astype(np.float64) * self.factor}

    x = np.array([[1.0], [2.0], [3.0]])
    for factor, agreement, err in [(1.0, 1.0, 0.0), (2.0, 1.0, 3.0), (-1.0, -1.0, 6.0)]:
        shadow = Shadow(Doubled(factor), "2.0", rate=1.0)
        shadow.offer({"x": x}, {"y": x}, 1000)
        shadow._compare(*shadow._queue.get_nowait())
        snap = shadow.snapshot()
        assert snap["kind"] == "cosine"
        assert snap["agreement"] == pytest.approx(agreement) and snap["max_abs_err"] == pytest.approx(err)


def test_shadow_in_the_config(tmp_path):
    base = {"broker": {"url": "mqtt://127.0.0.1:1883"}, "device": {"fleet": "demo"}}
    cfg = from_dict({**base, "model": {"path": "m.onnx", "shadow": "cand.eob", "shadow_rate": 0.25}}, base=str(tmp_path))
    assert cfg.shadow == str(tmp_path / "cand.eob") and cfg.shadow_rate == 0.25
    assert from_dict({**base, "model": {"path": "m.onnx", "shadow": "c.onnx"}}).shadow_rate == 0.1
    for bad in ({"shadow": "c.onnx", "shadow_rate": 0}, {"shadow": "c.onnx", "shadow_rate": 1.5},
                {"shadow_rate": 0.1}, {"shadow": 3}):
        with pytest.raises(UsageError, match="shadow"):
            from_dict({**base, "model": {"path": "m.onnx", **bad}})


def test_no_shadow_reports_disabled(tmp_path):
    agent = Agent(edgeops.load(MLP), transport=MemoryTransport(), fleet="demo", device="pi-01",
                  store_dir=str(tmp_path / "store"), interval_s=60)
    assert agent.telemetry_now()["shadow"] == {"enabled": False}


# -- over the air ------------------------------------------------------------------------------------------------

def test_an_ota_offer_in_shadow_mode_installs_the_candidate_as_the_shadow(tmp_path, ota_bundles):  # noqa: F811
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        before = d.agent.model_info["version"]
        offer, chunks = offer_for(ota_bundles.v2, "shadow-1")
        d.t.deliver(f"{BASE}/cmd/ota", json.dumps({**json.loads(offer), "args": {"mode": "shadow", "rate": 1.0}}).encode())
        for i, chunk in enumerate(chunks):
            d.t.deliver(f"{BASE}/ota/shadow-1/{i}", chunk)
        result = d.result("shadow-1")
        assert result["outcome"] == "committed" and result["mode"] == "shadow", result
        assert d.chain("shadow-1") == ["receiving", "verifying", "committed"]
        assert d.agent.model_info["version"] == before == "1.0"  # the active model stays
        assert d.store.active().version == "1.0"
        for i in range(20):
            d.agent.model.run(X[i][None])
            assert d.agent.online.shadow.drain()  # the test wants each one compared
        shadow = d.agent.telemetry_now()["shadow"]
    assert shadow["version"] == "2.0" and shadow["count"] == 20 and shadow["agreement"] == 1.0  # the same weights
    again = Device.__new__(Device)  # a restart keeps the shadow installed over the air
    again.agent = Agent(None, transport=MemoryTransport(), fleet="demo", device="pi-01",
                        store_dir=str(tmp_path / "store"), interval_s=60, ota=d.cfg)
    assert again.agent.online.shadow is not None and again.agent.online.shadow.version == "2.0"
    assert again.agent.model_info["version"] == "1.0"


def test_an_offer_with_bad_args_is_refused(tmp_path, ota_bundles):  # noqa: F811
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        offer, _ = offer_for(ota_bundles.v2, "bad-args")
        d.t.deliver(f"{BASE}/cmd/ota", json.dumps({**json.loads(offer), "args": {"mode": "sideways"}}).encode())
        result = d.result("bad-args")
    assert result["outcome"] == "refused" and "args.mode" in result["reason"]



def test_the_shadow_stop_command_ends_shadow_mode(tmp_path, ota_bundles):  # noqa: F811
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        offer, chunks = offer_for(ota_bundles.v2, "shadow-2")
        d.t.deliver(f"{BASE}/cmd/ota", json.dumps({**json.loads(offer), "args": {"mode": "shadow"}}).encode())
        for i, chunk in enumerate(chunks):
            d.t.deliver(f"{BASE}/ota/shadow-2/{i}", chunk)
        assert d.result("shadow-2")["mode"] == "shadow"
        assert d.agent.online.shadow.rate == 0.1  # the default rate
        d.t.deliver(f"{BASE}/cmd/shadow-stop", b"{}")
        assert d.agent.online.shadow is None
        assert wait_until(lambda: d.t.messages(f"{BASE}/cmd/shadow-stop/reply"), timeout=10)
        reply = [json.loads(m.payload) for m in d.t.messages(f"{BASE}/cmd/shadow-stop/reply")]
        assert reply and reply[-1]["ok"] and reply[-1]["stopped"] and reply[-1]["version"] == "2.0"
        assert d.agent.telemetry_now()["shadow"] == {"enabled": False}
    restarted = Agent(None, transport=MemoryTransport(), fleet="demo", device="pi-01",
                      store_dir=str(tmp_path / "store"), interval_s=60, ota=d.cfg)
    assert restarted.online.shadow is None
