"""The kill-point matrix: the agent process is SIGKILLed right after persisting each OTA state
(``EDGEOPS_OTA_KILL_AT``), started again, and must end where the resume mapping says, with a store
whose active model loads and runs and a final ``ota.result`` the host receives."""

from __future__ import annotations

import signal

import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # the tests build their models with onnx.helper
pytest.importorskip("cryptography")  # signed bundles; test_ota (imported below) skips without it too

from tests.agent.test_ota import ota_bundles, rig  # noqa: E402, F401 - fixtures

KILLS = [
    # killed after      bundle  resumed at      outcome        active model
    ("receiving",       "v2",   "receiving",    "committed",   "2.0"),
    ("verifying",       "v2",   "verifying",    "committed",   "2.0"),
    ("installing",      "v2",   "installing",   "committed",   "2.0"),
    ("switching",       "v2",   "switching",    "committed",   "2.0"),
    ("health_check",    "v2",   "rolling_back", "rolled_back", "1.0"),
    ("rolling_back",    "nan",  "rolling_back", "rolled_back", "1.0"),
    ("committed",       "v2",   None,           "committed",   "2.0"),
]


@pytest.mark.parametrize("kill_at, bundle, resumed_at, outcome, version", [pytest.param(*k, id=k[0]) for k in KILLS])
def test_a_kill_at_each_state_resumes_to_a_known_outcome(rig, ota_bundles, kill_at, bundle, resumed_at, outcome,  # noqa: F811
                                                         version):
    r = rig().start(kill_at=kill_at)
    flash = r.flash(getattr(ota_bundles, bundle), deployment="dep-kill")
    assert r.killed() == -signal.SIGKILL, r.log()
    r.start()  # the same device, without the hook
    got = flash.result(60)
    assert got["outcome"] == outcome, (got, r.log())
    resumed = [e["state"] for e in r.events("ota.state", "dep-kill") if e["event"] == "resume"]
    assert resumed == ([resumed_at] if resumed_at else [])
    results = r.events("ota.result", "dep-kill")  # a host's repeated offer gets the result again
    assert {e["outcome"] for e in results} == {outcome} and len([e for e in results if not e.get("again")]) == 1
    assert r.active().version == version  # loads and runs
    assert r.telemetry_after(r.result("dep-kill"))["model"]["version"] == version


@pytest.mark.parametrize("kill_at", ["receiving", "verifying", "committed"])
def test_a_shadow_install_killed_at_each_state_ends_with_the_shadow_and_the_old_model(rig, ota_bundles,  # noqa: F811
                                                                                       kill_at):
    """An offer with ``args.mode = "shadow"`` walks receiving -> verifying -> committed; killed after each, the
    restarted agent still ends with the candidate as its shadow and 1.0 active (agent process, real mosquitto)."""
    import json

    from tests.agent.test_ota import offer_for

    r = rig().start(kill_at=kill_at)
    offer, chunks = offer_for(ota_bundles.v2, "dep-shadow", chunk_size=65536)
    r.publish("cmd/ota", json.dumps({**json.loads(offer), "args": {"mode": "shadow", "rate": 0.5}}).encode())
    for i, chunk in enumerate(chunks):
        r.publish(f"ota/dep-shadow/{i}", chunk)
    assert r.killed() == -signal.SIGKILL, r.log()
    r.start()
    if kill_at == "receiving":  # the host answers what the restarted device still asks for
        assert r.seen.wait_for(lambda ms: [e for e in r.events("ota.need", "dep-shadow") if e["reason"] == "resumed"],
                               30), r.log()
        need = [e for e in r.events("ota.need", "dep-shadow") if e["reason"] == "resumed"][-1]
        for i in need["missing"]:
            r.publish(f"ota/dep-shadow/{i}", chunks[i])
    got = r.result("dep-shadow")
    assert got["outcome"] == "committed" and got["mode"] == "shadow", (got, r.log())
    assert r.active().version == "1.0"  # the store was not touched
    telemetry = r.telemetry_after(got)
    assert telemetry["model"]["version"] == "1.0"
    assert telemetry["shadow"]["enabled"] and telemetry["shadow"]["version"] == "2.0" and telemetry["shadow"]["rate"] == 0.5
