"""Model updates over MQTT, end to end: a real mosquitto, real agent processes (``edgeops agent run``), real
signed bundles of the example model. The device starts with version 1.0 active in its store; the update is 2.0.

Also the helpers the other OTA test files use: ``ota_bundles`` (keys and bundles, built once) and
``rig`` (a device: its store, its config, its agent process, and everything it publishes).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeops.agent.ota import KILL_ENV
from edgeops.deploy.mqtt import flash_mqtt
from tests.agent.waiting import wait_until

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # the tests build their models with onnx.helper
pytest.importorskip("cryptography")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
SAMPLE = EXAMPLES / "digits_mlp_test.npz"
CHAIN = ["receiving", "verifying", "installing", "switching", "health_check"]
CHUNK = 8192  # the bundles are ~120 KiB: about 15 chunks


# -- bundles ---------------------------------------------------------------------------------------


def nan_model(path: Path) -> Path:
    """digits_mlp's signature (pixels [N, 64] -> probabilities [N, 10]) answering NaN: loads, runs, is wrong."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((64, 10), np.float32), "w")
    nan = numpy_helper.from_array(np.full((10,), np.nan, np.float32), "nan")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["pixels", "w"], ["mm"]), helper.make_node("Add", ["mm", "nan"], ["probabilities"])],
        "nan", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])], [weights, nan])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def traversal_bundle(good: Path, out: Path) -> Path:
    """A hand-packed copy of a good bundle with one more member, ``../evil.sh``."""
    with tarfile.open(good) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        data = b"#!/bin/sh\necho pwned\n"
        info = tarfile.TarInfo("../evil.sh")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    return out


def flipped(good: Path, out: Path) -> Path:
    """A copy with one byte of the model member flipped: the manifest's sha256 no longer matches."""
    data = bytearray(good.read_bytes())
    at = data.find((EXAMPLES / "digits_mlp.onnx").read_bytes()[:256]) + 500
    data[at] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="session")
def ota_bundles(tmp_path_factory) -> SimpleNamespace:
    """``v1`` and ``v2`` (digits_mlp, signed by ``pub``), ``nan`` (2.0, answers NaN), ``untrusted`` (2.0,
    signed by another key), ``unsigned`` (2.0), ``flipped`` and ``traversal`` (2.0, broken), ``nested`` (2.0,
    signed by ``pub``, every hash right, its model member holding the bundle ``v1``)."""
    from edgeops.bundle import create, keygen
    from tests.bundle.crafting import nested

    d = tmp_path_factory.mktemp("ota-bundles")
    key, pub = keygen(str(d / "fleet"))
    rogue, _ = keygen(str(d / "rogue"))
    mlp = str(EXAMPLES / "digits_mlp.onnx")
    b = SimpleNamespace(key=key, pub=pub, dir=d)
    for attr, model, version, signer in [("v1", mlp, "1.0", key), ("v2", mlp, "2.0", key),
                                         ("nan", str(nan_model(d / "nan.onnx")), "2.0", key),
                                         ("untrusted", mlp, "2.0", rogue), ("unsigned", mlp, "2.0", None)]:
        setattr(b, attr, d / f"{attr}.eob")
        create(model, str(getattr(b, attr)), name="digits", version=version, key=signer, sample=str(SAMPLE))
    b.flipped = flipped(b.v2, d / "flipped.eob")
    b.traversal = traversal_bundle(b.v2, d / "traversal.eob")
    b.nested = nested(b.v2, b.v1, d / "nested.eob", key=key)
    return b


# -- a device --------------------------------------------------------------------------------------

AGENT_TOML = """
[broker]
url = "{url}"
[device]
fleet = "demo"
id = "pi-01"
[telemetry]
interval_s = 0.3
[store]
dir = "{store}"
[ota]
trusted_keys = ["{pub}"]
health_window_s = 0.5
timeout_s = {timeout_s}
chunk_size = 65536
"""


class Rig:
    """One device: a store with 1.0 active, an agent config, the agent process, and what the device publishes."""

    base = "edgeops/demo/pi-01"

    def __init__(self, broker, collector, tmp_path: Path, bundles: SimpleNamespace, timeout_s: float = 30):
        from edgeops.deploy.store import ModelStore

        self.broker, self.bundles, self.tmp = broker, bundles, tmp_path
        self.store = tmp_path / "store"
        models = ModelStore(self.store / "models")
        models.switch(models.install(bundles.v1, trusted_keys=[bundles.pub], require_signature=True).slot)
        self.config = tmp_path / "agent.toml"
        self.config.write_text(AGENT_TOML.format(url=broker.url, store=self.store, pub=bundles.pub,
                                                 timeout_s=timeout_s))
        self.seen = collector(f"{self.base}/#")
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self.pool = ThreadPoolExecutor(2)

    # -- the agent process

    def start(self, kill_at: str | None = None) -> Rig:
        env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
        if kill_at:
            env[KILL_ENV] = kill_at
        online = len(self.statuses("online"))
        self.runs += 1
        log = open(self.tmp / f"agent-{self.runs}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", str(self.config)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        assert self.seen.wait_for(lambda ms: len(self.statuses("online")) > online, 30), self.log()
        time.sleep(0.3)  # the agent's subscriptions follow its online status
        return self

    def killed(self, timeout: float = 30) -> int:
        """Wait for the agent to end (the kill hook) and return its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def log(self) -> str:
        return "\n".join((self.tmp / f"agent-{i}.log").read_text()[-3000:] for i in range(1, self.runs + 1))

    # -- the host

    def flash(self, bundle: Path, **kwargs) -> Flash:
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("chunk_size", CHUNK)
        return Flash(self, self.pool.submit(flash_mqtt, str(bundle), self.broker.url, "demo", "pi-01",
                                            progress=False, **kwargs))

    def publish(self, suffix: str, payload: bytes) -> None:
        self.seen.publish(f"{self.base}/{suffix}", payload)

    # -- what the device said

    def statuses(self, state: str) -> list[dict]:
        return [s for s in map(json.loads, self.seen.payloads(f"{self.base}/status")) if s["state"] == state]

    def events(self, kind: str, deployment: str | None = None) -> list[dict]:
        seen, out = set(), []
        for e in map(json.loads, self.seen.payloads(f"{self.base}/events")):
            if e["id"] not in seen and e["kind"] == kind and deployment in (None, e.get("deployment")):
                seen.add(e["id"])
                out.append(e)
        return out

    def chain(self, deployment: str) -> list[str]:
        return [e["state"] for e in self.events("ota.state", deployment)]

    def result(self, deployment: str, timeout: float = 30) -> dict:
        assert self.seen.wait_for(lambda ms: self.events("ota.result", deployment), timeout), self.log()
        return self.events("ota.result", deployment)[-1]


    def telemetry_after(self, event: dict, timeout: float = 10) -> dict:
        """The first telemetry message stamped after ``event``."""
        def later() -> list[dict]:
            return [t for t in map(json.loads, self.seen.payloads(f"{self.base}/telemetry")) if t["ts"] > event["ts"]]

        assert self.seen.wait_for(lambda ms: later(), timeout), self.log()
        return later()[0]

    def active(self):
        """The store's active slot, after checking its model loads and runs."""
        from edgeops.deploy.store import ModelStore

        store = ModelStore(self.store / "models")
        out = store.load_active().run(np.load(SAMPLE)["pixels"][:1])
        assert np.isfinite(out["probabilities"]).all()
        return store.active()



class Flash:
    """A running ``flash_mqtt``; ``result()`` also waits until the rig's own subscriber has the device's
    ``ota.result`` (it may arrive there a moment after the flasher got it), so the events read next
    are complete. Regression: under load the kill matrix once read the events before they arrived."""

    def __init__(self, rig: Rig, future: Future):
        self.rig, self.future = rig, future

    def result(self, timeout: float = 60) -> dict:
        got = self.future.result(timeout)
        if got.get("deployment") and "never answered" not in (got.get("reason") or ""):
            self.rig.seen.wait_for(lambda ms: self.rig.events("ota.result", got["deployment"]), 10)
        return got


@pytest.fixture
def rig(broker, collector, tmp_path, ota_bundles):
    """``rig(timeout_s=30)`` -> a :class:`Rig` (not started); its agent is stopped after the test."""
    made: list[Rig] = []

    def make(**kwargs) -> Rig:
        made.append(Rig(broker, collector, tmp_path, ota_bundles, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.stop()


def offer_for(bundle: Path, deployment: str, chunk_size: int = CHUNK, created: int | None = None
              ) -> tuple[bytes, list[bytes]]:
    """An offer (as flash_mqtt makes it) and the chunks, for tests that play the host by hand."""
    import hashlib

    data = bundle.read_bytes()
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    offer = {"deployment": deployment, "created": created or int(time.time() * 1000),
             "bundle_sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "chunk_size": chunk_size,
             "chunks": len(chunks), "chunk_sha256": [hashlib.sha256(c).hexdigest() for c in chunks]}
    return json.dumps(offer).encode(), chunks


# -- the tests -------------------------------------------------------------------------------------


def test_a_good_signed_bundle_goes_live(rig, ota_bundles):
    r = rig().start()
    got = r.flash(ota_bundles.v2, deployment="dep-good").result(60)
    assert got["outcome"] == "committed" and got["version"] == "2.0", (got, r.log())
    assert got["bytes"] >= ota_bundles.v2.stat().st_size
    assert r.chain("dep-good") == CHAIN + ["committed"]
    assert r.telemetry_after(r.result("dep-good"))["model"]["version"] == "2.0"
    assert r.active().version == "2.0"
    assert r.statuses("online")[-1]["model"]["version"] == "2.0"  # the retained status names the new model


VERIFIED = ["receiving", "verifying", "refused"]


@pytest.mark.parametrize("attr, chunk_size, words, chain", [
    pytest.param("flipped", CHUNK, "sha256", VERIFIED, id="flipped-byte"),
    pytest.param("untrusted", CHUNK, "not a trusted key", VERIFIED, id="untrusted-key"),
    pytest.param("traversal", CHUNK, "path traversal", VERIFIED, id="path-traversal-member"),
    pytest.param("nested", CHUNK, "is itself an edgeops bundle; refusing bundles in bundles", VERIFIED,
                 id="bundle-inside-the-bundle"),
    pytest.param("v2", 128 * 1024, "over this device's limit", [], id="chunks-over-the-device-limit"),
])
def test_a_bad_bundle_is_refused_and_the_old_model_stays(rig, ota_bundles, attr, chunk_size, words, chain):
    r = rig().start()
    got = r.flash(getattr(ota_bundles, attr), deployment="dep-bad", chunk_size=chunk_size).result(60)
    assert got["outcome"] == "refused" and words in got["reason"], got
    assert r.chain("dep-bad") == chain
    assert r.telemetry_after(r.result("dep-bad"))["model"]["version"] == "1.0"
    assert r.active().version == "1.0"
    assert not (r.store / "ota" / "dep-bad").exists()  # the received files are cleaned up


def test_a_model_answering_nan_is_rolled_back(rig, ota_bundles):
    r = rig().start()
    got = r.flash(ota_bundles.nan, deployment="dep-nan").result(60)
    assert got["outcome"] == "rolled_back" and "not finite" in got["reason"], got
    assert r.chain("dep-nan") == CHAIN + ["rolling_back", "rolled_back"]
    assert all(t["model"]["version"] == "1.0" for t in map(json.loads, r.seen.payloads(f"{r.base}/telemetry")))
    assert r.telemetry_after(r.result("dep-nan"))["model"]["version"] == "1.0"
    assert r.active().version == "1.0"


def test_a_truncated_transfer_times_out_and_a_bad_chunk_is_asked_again(rig, ota_bundles):
    r = rig(timeout_s=1.5).start()
    offer, chunks = offer_for(ota_bundles.v2, "dep-cut")
    r.publish("cmd/ota", offer)
    r.publish("ota/dep-cut/0", b"garbage")  # dropped, and asked for again
    for i in range(3):  # then the host goes quiet
        r.publish(f"ota/dep-cut/{i}", chunks[i])
    got = r.result("dep-cut", timeout=20)
    assert got["outcome"] == "failed" and "no progress" in got["reason"], got
    assert any(e["missing"] == [0] and e["reason"] == "bad chunk" for e in r.events("ota.need", "dep-cut"))
    assert r.chain("dep-cut") == ["receiving", "failed"]
    assert r.telemetry_after(got)["model"]["version"] == "1.0"
    assert r.active().version == "1.0" and not (r.store / "ota" / "dep-cut").exists()


def test_a_newer_deployment_cancels_an_older_one(rig, ota_bundles):
    r = rig().start()
    offer, chunks = offer_for(ota_bundles.v2, "dep-old", created=int(time.time() * 1000) - 1000)
    r.publish("cmd/ota", offer)
    for i in range(3):
        r.publish(f"ota/dep-old/{i}", chunks[i])
    assert wait_until(lambda: len(os.listdir(r.store / "ota" / "dep-old" / "chunks")) == 3, 10, tolerate=(OSError,))
    got = r.flash(ota_bundles.v2, deployment="dep-new").result(60)
    assert got["outcome"] == "committed", got
    old = r.result("dep-old")
    assert old["outcome"] == "cancelled" and "dep-new" in old["reason"]
    assert r.chain("dep-old") == ["receiving", "cancelled"]
    r.publish("cmd/ota", offer)  # the old host comes back: it is told again, nothing restarts
    assert r.seen.wait_for(lambda ms: len(r.events("ota.result", "dep-old")) == 2, 10)
    assert r.events("ota.result", "dep-old")[-1]["outcome"] == "cancelled"
    assert r.active().version == "2.0"


def test_a_transfer_resumes_after_the_host_loses_its_connection(rig, ota_bundles, collector_class):
    r = rig().start()

    def kick(index: int, sent: int) -> None:
        if sent == 6:  # another client with the flasher's id: the broker drops the flasher's connection
            thief = collector_class(r.broker.url, "nothing/here", client_id="edgeops-flash-dep-kick").start()
            thief.stop()

    got = r.flash(ota_bundles.v2, deployment="dep-kick", chunk_size=4096, on_chunk=kick).result(60)
    assert got["outcome"] == "committed", (got, r.log())
    reasons = [e["reason"] for e in r.events("ota.need", "dep-kick")]
    assert reasons[0] == "offered" and "offered again" in reasons  # the host re-offered after reconnecting


class HostDied(Exception):
    pass


def test_a_second_flash_of_the_same_deployment_sends_only_what_is_missing(rig, ota_bundles):
    r = rig().start()

    def give_up(index: int, sent: int) -> None:
        if sent == 10:
            time.sleep(0.5)  # what was sent arrives
            raise HostDied  # then the host process dies in the middle

    with pytest.raises(HostDied):
        r.flash(ota_bundles.v2, deployment="dep-twice", chunk_size=4096, on_chunk=give_up).result(60)
    assert wait_until(lambda: len(os.listdir(r.store / "ota" / "dep-twice" / "chunks")) >= 5, 10, tolerate=(OSError,))
    kept = len(os.listdir(r.store / "ota" / "dep-twice" / "chunks"))
    got = r.flash(ota_bundles.v2, deployment="dep-twice", chunk_size=4096).result(60)
    assert got["outcome"] == "committed", got
    assert 0 < got["bytes"] <= ota_bundles.v2.stat().st_size - kept * 4096 + 4096  # the kept chunks are not resent


def test_the_host_gives_up_when_no_device_answers(broker, ota_bundles):
    got = flash_mqtt(str(ota_bundles.v2), broker.url, "demo", "nobody", timeout=1.5, progress=False)
    assert got["outcome"] == "failed" and "never answered" in got["reason"] and got["bytes"] == 0
