"""After a crash: each persisted OTA state, as the resume table says, picks up where it stopped or rolls back, and a
result not yet reported is reported (in one process, on a MemoryTransport; from mutation testing, issue 11)."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("cryptography")

from edgeops.agent.ota import _load_record
from edgeops.deploy.store import ModelStore
from tests.agent.test_ota import CHAIN, offer_for, ota_bundles  # noqa: F401
from tests.agent.test_ota_machine import BASE, Device
from tests.agent.waiting import wait_until


class Restarted(Device):
    """A Device started over the store as it is (``Device`` installs 1.0 first)."""

    def __init__(self, tmp_path, bundles):
        from edgeops.agent import Agent
        from edgeops.agent.config import OtaConfig
        from edgeops.agent.transport import MemoryTransport

        self.store = ModelStore(tmp_path / "store" / "models")
        self.cfg = OtaConfig(health_window_s=0.2, trusted_keys=[str(bundles.pub)])
        self.t = MemoryTransport()
        self.agent = Agent(None, transport=self.t, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
                           interval_s=60, ota=self.cfg)
        self.t.on_connect, self.t.on_message = self.agent._on_connect, self.agent._on_message


def persist(tmp_path, record: dict) -> None:
    """What the agent had written to ``state.json`` when it stopped."""
    path = tmp_path / "store" / "ota" / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"history": [], **record}))


def persisted(tmp_path) -> dict:
    return json.loads((tmp_path / "store" / "ota" / "state.json").read_text())


def receiving(tmp_path, bundle, keep: dict[str, bytes]) -> tuple[bytes, list[bytes]]:
    """A transfer stopped in ``receiving``: its offer on disk and the chunk files ``keep`` names."""
    offer, chunks = offer_for(bundle, "dep")
    folder = tmp_path / "store" / "ota" / "dep"
    (folder / "chunks").mkdir(parents=True)
    (folder / "offer.json").write_bytes(offer)
    for name, data in keep.items():
        (folder / "chunks" / name).write_bytes(data)
    o = json.loads(offer)
    persist(tmp_path, {"state": "receiving", "deployment": "dep", "created": o["created"], "size": o["size"],
                       "chunks": o["chunks"]})
    return offer, chunks


# -- receiving ---------------------------------------------------------------------------------------


def test_a_transfer_resumes_asking_only_for_the_chunks_not_intact_on_disk(tmp_path, ota_bundles):  # noqa: F811
    _, chunks = offer_for(ota_bundles.v2, "dep")
    _, chunks = receiving(tmp_path, ota_bundles.v2, {"0": chunks[0], "2": chunks[2], "1": b"torn by the crash",
                                                     "99": b"not a chunk of this offer", "3.tmp": chunks[3]})
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        assert wait_until(lambda: d.events("ota.need"), timeout=30)
        need = d.events("ota.need")[0]
        assert need["reason"] == "resumed" and need["have"] == 2 and need["chunks"] == len(chunks)
        assert need["missing"] == [i for i in range(len(chunks)) if i not in (0, 2)]
        for i in need["missing"]:
            d.t.deliver(f"{BASE}/ota/dep/{i}", chunks[i])
        result = d.result("dep")
    assert result["outcome"] == "committed", result
    assert d.chain("dep") == CHAIN + ["committed"]
    assert d.events("ota.state")[0]["event"] == "resume"


def test_a_transfer_whose_files_are_gone_fails_with_the_reason(tmp_path, ota_bundles):  # noqa: F811
    persist(tmp_path, {"state": "receiving", "deployment": "dep", "created": 1, "size": 10, "chunks": 1})
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        result = d.result("dep")
    assert result["outcome"] == "failed" and "files are gone after a restart" in result["reason"], result
    assert d.agent.model_info["version"] == "1.0"


def test_an_offer_file_that_does_not_parse_is_a_transfer_gone(tmp_path, ota_bundles):  # noqa: F811
    receiving(tmp_path, ota_bundles.v2, {})
    (tmp_path / "store" / "ota" / "dep" / "offer.json").write_text('{"deployment": "dep"}')
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        assert "files are gone" in d.result("dep")["reason"]


# -- the steps after the transfer --------------------------------------------------------------------


@pytest.mark.parametrize("state", ["verifying", "installing"])
def test_a_step_that_only_wrote_the_inactive_slot_is_done_again(tmp_path, ota_bundles, state):  # noqa: F811
    folder = tmp_path / "store" / "ota" / "dep"
    folder.mkdir(parents=True)
    (folder / "bundle.eob").write_bytes(ota_bundles.v2.read_bytes())
    persist(tmp_path, {"state": state, "deployment": "dep", "version": "2.0", "from_slot": None, "to_slot": None})
    d = Device(tmp_path, ota_bundles)
    assert persisted(tmp_path)["state"] == state  # nothing to roll back: recover leaves it to the worker
    with d.agent:
        result = d.result("dep")
        assert d.chain("dep") == CHAIN[CHAIN.index(state):] + ["committed"]
        assert d.events("ota.state")[0]["previous"] == state and d.events("ota.state")[0]["event"] == "resume"
    assert result["outcome"] == "committed" and d.store.active().version == "2.0"


@pytest.mark.parametrize("state, reason", [
    pytest.param("health_check", "the agent restarted during health_check", id="half-checked"),
    pytest.param("rolling_back", "the health check failed", id="rollback-unfinished"),
    pytest.param("written-by-a-newer-edgeops", "the agent restarted during written-by-a-newer-edgeops",
                 id="unknown-state"),
])
def test_a_half_checked_model_is_rolled_back_before_the_agent_opens_a_model(tmp_path, ota_bundles, state, reason):  # noqa: F811
    store = ModelStore(tmp_path / "store" / "models")
    for bundle in (ota_bundles.v1, ota_bundles.v2):  # 1.0 in slot a, then 2.0 in b, active
        store.switch(store.install(bundle, trusted_keys=[ota_bundles.pub]).slot)
    persist(tmp_path, {"state": state, "deployment": "dep", "version": "2.0", "from_slot": "a", "to_slot": "b",
                       "reason": "the health check failed"})
    d = Restarted(tmp_path, ota_bundles)
    assert store.active().version == "1.0"
    rec = persisted(tmp_path)
    assert rec["state"] == "rolled_back" and rec["reason"] == reason and rec["reported"] is True
    assert d.agent.model_info["version"] == "1.0"
    with d.agent:
        result = d.result("dep")
    assert result == {**result, "outcome": "rolled_back", "reason": reason, "version": "2.0"}
    assert [e["state"] for e in d.events("ota.state")] == ["rolling_back", "rolled_back"]
    assert rec["history"][-1]["outcome"] == "rolled_back"


# -- results -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["committed", "refused", "rolled_back", "failed", "cancelled"])
def test_a_result_not_yet_reported_is_reported_at_the_next_start(tmp_path, ota_bundles, outcome):  # noqa: F811
    persist(tmp_path, {"state": outcome, "deployment": "dep-old", "reason": "why", "version": "2.0",
                       "reported": False})
    d = Device(tmp_path, ota_bundles)
    rec = persisted(tmp_path)
    assert rec["reported"] is True and rec["history"] == [{"deployment": "dep-old", "outcome": outcome,
                                                           "reason": "why", "version": "2.0"}]
    with d.agent:
        assert d.result("dep-old") == {**d.result("dep-old"), "outcome": outcome, "reason": "why"}
    assert d.events("ota.state") == []  # reported, not entered again


def test_a_result_already_reported_is_not_reported_again(tmp_path, ota_bundles):  # noqa: F811
    persist(tmp_path, {"state": "committed", "deployment": "dep-old", "reported": True})
    leftover = tmp_path / "store" / "ota" / "dep-crashed"
    (leftover / "chunks").mkdir(parents=True)
    d = Device(tmp_path, ota_bundles)
    with d.agent:
        assert wait_until(lambda: not leftover.exists(), timeout=5)  # a transfer folder nothing names is swept
        time.sleep(0.3)
        assert d.events("ota.result") == [] and d.events("ota.state") == []


# -- the persisted record ------------------------------------------------------------------------------


@pytest.mark.parametrize("content, state", [
    pytest.param(None, "idle", id="no-file"),
    pytest.param(b'{"state": "switching", "history": []}', "switching", id="good"),
    pytest.param(b"{torn", "unknown", id="not-json"),
    pytest.param(b'["receiving"]', "unknown", id="not-an-object"),
    pytest.param(b'{"state": 3}', "unknown", id="state-not-a-string"),
    pytest.param(b'{"state": "idle", "state": "committed"}', "unknown", id="repeated-key"),
])
def test_the_persisted_record_is_read_or_called_unknown(tmp_path, content, state):
    path = tmp_path / "state.json"
    if content is not None:
        path.write_bytes(content)
    rec = _load_record(str(path))
    assert rec["state"] == state and isinstance(rec["history"], list)
    if state == "unknown":
        assert rec["reason"] == f"{path} was unreadable"
    if content is None:
        assert rec == {"state": "idle", "history": []}
