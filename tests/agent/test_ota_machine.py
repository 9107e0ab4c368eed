"""The OTA state machine in one process (an Agent on a MemoryTransport): its table, the chain of states each
case walks with a fault injected, the resume mapping, and the pieces (offers, the health probe, ``[ota]``)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # the tests build their models with onnx.helper
pytest.importorskip("cryptography")  # signed bundles; test_ota (imported below) skips without it too

from edgeops.agent import Agent, load_config
from edgeops.agent.config import OtaConfig
from edgeops.agent.ota import OUTCOMES, RESUME, RESUME_DEFAULT, TRANSITIONS, OfferError, parse_offer, probe
from edgeops.agent.transport import MemoryTransport
from edgeops.deploy.store import ModelStore
from edgeops.errors import UsageError
from tests.agent.test_ota import CHAIN, EXAMPLES, SAMPLE, nan_model, offer_for, ota_bundles  # noqa: F401

pytest.importorskip("onnxruntime")
pytest.importorskip("cryptography")

BASE = "edgeops/demo/pi-01"


# -- the table -------------------------------------------------------------------------------------


def test_the_table_leads_every_state_to_an_outcome():
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == set(RESUME)  # every state has a resume rule, and no rule names a stranger
    for state in states - {"idle", *OUTCOMES}:  # a failure row out of every working state
        assert {e for s, e in TRANSITIONS if s == state} & {"error", "stalled", "corrupt"}, state
    assert {TRANSITIONS[(s, "offer")] for s in ("idle", *OUTCOMES)} == {"receiving"}
    assert RESUME["health_check"] == RESUME_DEFAULT == "rolling_back"


# -- chains ----------------------------------------------------------------------------------------


class Device:
    """An in-process agent with OTA on a MemoryTransport, its store holding 1.0 (slot a, active)."""

    def __init__(self, tmp_path, bundles, **ota):
        self.store = ModelStore(tmp_path / "store" / "models")
        self.store.switch(self.store.install(bundles.v1, trusted_keys=[bundles.pub]).slot)
        ota.setdefault("health_window_s", 0.2)
        ota.setdefault("trusted_keys", [str(bundles.pub)])
        self.cfg = OtaConfig(**ota)
        self.t = MemoryTransport()
        self.agent = Agent(None, transport=self.t, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
                           interval_s=60, ota=self.cfg)
        self.t.on_connect, self.t.on_message = self.agent._on_connect, self.agent._on_message

    def send(self, bundle, deployment: str, *, corrupt_offer: bool = False) -> dict:
        offer, chunks = offer_for(bundle, deployment)
        if corrupt_offer:  # every chunk checks out, the whole does not
            offer = json.dumps({**json.loads(offer), "bundle_sha256": "0" * 64}).encode()
        self.t.deliver(f"{BASE}/cmd/ota", offer)
        for i, chunk in enumerate(chunks):
            self.t.deliver(f"{BASE}/ota/{deployment}/{i}", chunk)
        return self.result(deployment)

    def events(self, kind: str) -> list[dict]:
        return [e for e in (json.loads(m.payload) for m in self.t.messages(f"{BASE}/events")) if e["kind"] == kind]

    def result(self, deployment: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [e for e in self.events("ota.result") if e["deployment"] == deployment]
            if done:
                return done[-1]
            time.sleep(0.02)
        raise AssertionError(f"no ota.result for {deployment}: {self.events('ota.state')}")

    def chain(self, deployment: str) -> list[str]:
        return [e["state"] for e in self.events("ota.state") if e["deployment"] == deployment]


def _fail(*args, **kwargs):
    raise OSError(28, "No space left on device")


CASES = [
    # id               bundle      fault                    [ota] settings          chain after receiving + outcome
    ("good",           "v2",       None,                    {},                     CHAIN[1:] + ["committed"]),
    ("unsigned",       "unsigned", None,                    {},                     ["verifying", "refused"]),
    ("offer-mismatch", "v2",       "offer",                 {},                     ["refused"]),
    ("install-fails",  "v2",       ("install", _fail),      {},                     CHAIN[1:3] + ["refused"]),
    ("switch-fails",   "v2",       ("switch", _fail),       {},                     CHAIN[1:4] + ["rolling_back", "rolled_back"]),
    ("nan-outputs",    "nan",      None,                    {},                     CHAIN[1:] + ["rolling_back", "rolled_back"]),
    ("too-slow",       "v2",       None,                    {"max_p95_ms": 1e-6},   CHAIN[1:] + ["rolling_back", "rolled_back"]),
    ("no-trusted-key", "v2",       None,                    {"trusted_keys": []},   ["verifying", "refused"]),
]


@pytest.mark.parametrize("bundle, fault, settings, chain", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_each_case_walks_its_chain_of_states(tmp_path, ota_bundles, monkeypatch, bundle, fault, settings, chain):  # noqa: F811
    d = Device(tmp_path, ota_bundles, **settings)
    if isinstance(fault, tuple):
        monkeypatch.setattr(ModelStore, fault[0], fault[1])
    with d.agent:
        got = d.send(getattr(ota_bundles, bundle), "dep", corrupt_offer=fault == "offer")
        assert d.chain("dep") == ["receiving"] + chain
        assert got["outcome"] == chain[-1]
        expected = "2.0" if chain[-1] == "committed" else "1.0"
        assert d.agent.model_info["version"] == expected  # what telemetry reports
        assert d.agent.model.run(np.load(SAMPLE)["pixels"][:1])["probabilities"].shape == (1, 10)
    monkeypatch.undo()
    assert d.store.active().version == expected


def test_an_unknown_persisted_state_rolls_back_before_the_model_is_opened(tmp_path, ota_bundles):  # noqa: F811
    store = ModelStore(tmp_path / "store" / "models")
    for bundle in (ota_bundles.v1, ota_bundles.v2):  # 1.0 in slot a, then 2.0 in b, active
        store.switch(store.install(bundle, trusted_keys=[ota_bundles.pub]).slot)
    state = tmp_path / "store" / "ota" / "state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"state": "from-a-newer-edgeops", "deployment": "dep-x", "from_slot": "a",
                                 "to_slot": "b", "version": "2.0", "history": []}))
    agent = Agent(None, transport=MemoryTransport(), fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
                  interval_s=60, ota=OtaConfig(trusted_keys=[str(ota_bundles.pub)]))
    assert store.active().version == "1.0" and agent.model_info["version"] == "1.0"
    assert json.loads(state.read_text())["state"] == "rolled_back"
    agent.outbox.close()


# -- offers ----------------------------------------------------------------------------------------


def _offer(**changes) -> bytes:
    good = {"deployment": "d1", "bundle_sha256": "a" * 64, "size": 10, "chunk_size": 4, "chunks": 3,
            "chunk_sha256": ["b" * 64] * 3}
    return json.dumps({**good, **changes}).encode()


@pytest.mark.parametrize("payload, words", [
    pytest.param(b"{nope", "not valid JSON", id="not-json"),
    pytest.param(b"[]", "JSON object", id="not-an-object"),
    pytest.param(_offer(deployment="../etc"), "deployment id", id="path-in-id"),
    pytest.param(_offer(chunks=2), "cannot hold", id="too-few-chunks"),
    pytest.param(_offer(chunk_size=1 << 20, chunks=1), "over this device's limit", id="chunk-too-big"),
    pytest.param(_offer(chunk_sha256=["b" * 64]), "one per chunk", id="missing-chunk-hashes"),
    pytest.param(_offer(size=-1), "positive integers", id="negative-size"),
])
def test_bad_offers_are_refused_with_a_reason(payload, words):
    with pytest.raises(OfferError, match=words):
        parse_offer(payload, max_chunk=65536)
    assert parse_offer(_offer(), max_chunk=65536)["created"] == 0


# -- the health probe ------------------------------------------------------------------------------


@pytest.fixture
def mlp():
    import edgeops

    return edgeops.load(EXAMPLES / "digits_mlp.onnx")


def test_the_probe_runs_the_sample_or_synthesised_inputs(tmp_path, mlp):
    np.savez(tmp_path / "sample.npz", pixels=np.load(SAMPLE)["pixels"][:8])
    feeds, problem = probe(mlp, str(tmp_path), {"sample": "sample.npz"})
    assert problem is None and len(feeds) == 4 and feeds[0]["pixels"].shape == (1, 64)
    feeds, problem = probe(mlp, str(tmp_path), {})
    assert problem is None and [f["pixels"].shape for f in feeds] == [(1, 64), (1, 64)]  # dynamic dim -> 1
    assert mlp.stats.snapshot()["count"] == 0  # the probe's runs are not counted as the device's


def test_the_probe_compares_reference_outputs_within_tolerances(tmp_path, mlp):
    x = np.load(SAMPLE)["pixels"][:4]
    ref = np.concatenate([mlp.run(x[i:i + 1])["probabilities"] for i in range(4)])
    np.savez(tmp_path / "good.npz", pixels=x, probabilities=ref)
    np.savez(tmp_path / "off.npz", pixels=x, probabilities=ref + 0.1)
    assert probe(mlp, str(tmp_path), {"sample": "good.npz", "tolerances": {"max_abs": 1e-4}})[1] is None
    problem = probe(mlp, str(tmp_path), {"sample": "off.npz", "tolerances": {"max_abs": 1e-4}})[1]
    assert "differs from the bundle's reference" in problem
    assert probe(mlp, str(tmp_path), {"sample": "off.npz"})[1] is None  # no tolerances: no comparison


def test_the_probe_catches_nan_and_slow_models(tmp_path, mlp):
    import edgeops

    assert "not finite" in probe(edgeops.load(nan_model(tmp_path / "nan.onnx")), str(tmp_path), {})[1]
    assert "p95 latency" in probe(mlp, str(tmp_path), {}, max_p95_ms=1e-6)[1]


# -- [ota] -----------------------------------------------------------------------------------------

TOML = """
[broker]
url = "mqtt://127.0.0.1:1883"
[device]
fleet = "demo"
[ota]
"""


def test_the_ota_section_is_read_with_paths_relative_to_the_config(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(TOML + 'trusted_keys = ["keys/fleet.pub"]\nhealth_window_s = 2\nmax_p95_ms = 5\n')
    ota = load_config(cfg).ota
    assert ota.trusted_keys == [str(tmp_path / "keys" / "fleet.pub")]
    assert (ota.health_window_s, ota.max_p95_ms, ota.timeout_s, ota.chunk_size) == (2, 5, 600, 256 * 1024)
    cfg.write_text(TOML.replace("[ota]\n", ""))
    assert load_config(cfg).ota is None  # no section: no updates over the air
    for bad, words in [('trusted_keys = "fleet.pub"', "list"), ("timeout_s = -1", ">= 0"), ("chunk_size = 0", "> 0"),
                       ("retries = 3", "unknown key")]:
        cfg.write_text(TOML + bad + "\n")
        with pytest.raises(UsageError, match=words):
            load_config(cfg)


def test_a_result_never_carries_the_previous_deployments_reason(tmp_path, ota_bundles):  # noqa: F811
    """Regression: a committed update reported ``"reason": "the bundle is not signed…"`` from the refused
    deployment before it (the fresh record's empty reason was never written)."""
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        refused = d.send(ota_bundles.unsigned, "dep-refused")
        committed = d.send(ota_bundles.v2, "dep-good")
    assert refused["outcome"] == "refused" and "not signed" in refused["reason"], refused
    assert committed["outcome"] == "committed" and committed["reason"] == "", committed
    states = [e for e in d.events("ota.state") if e["deployment"] == "dep-good"]
    assert [e["reason"] for e in states] == [""] * len(states)
