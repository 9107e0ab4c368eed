"""The page's rollout routes (``/api/rollouts``, ``/api/rollouts/<id>`` of ``edgeops.fleet.web``) over rollout rows
written as the controller writes them, on a real store (sqlite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.fleet.rolloututil import make_rollout
from tests.fleet.webutil import Served, now_ms

FLEET = "demo"


@pytest.fixture
def web(store):
    s = Served(store, FLEET)
    yield s
    s.close()


def test_rollouts_list_newest_first_with_stage_counts_gates_and_reason(store, web):
    t = now_ms()
    make_rollout(store, FLEET, "r-old", created=t - 60_000, state="completed", stage=3,
                 devices={"pi-01": "updated", "pi-02": "updated"})
    make_rollout(store, FLEET, "r-new", created=t, state="halted", stage=1, reason="gate p95_ratio<=1.2 failed: 1.87",
                 values={"p95_ratio": 1.87}, devices={"pi-01": "updated", "pi-02": "rolled_back", "pi-03": "pending",
                                                      "pi-04": "failed"})
    make_rollout(store, "other", "r-elsewhere", created=t + 1)
    status, body = web.json("/api/rollouts")
    assert status == 200
    assert [r["id"] for r in body] == ["r-new", "r-old"]
    new = body[0]
    assert (new["state"], new["stage"], new["stages"], new["stage_value"]) == ("halted", 1, [1, 10, 50, 100], 10)
    assert new["counts"] == {"updated": 1, "rolled_back": 1, "pending": 1, "failed": 1}
    assert new["reason"] == "gate p95_ratio<=1.2 failed: 1.87"
    gates = {g["metric"]: g for g in new["gates"]}
    assert len(gates) == len(new["spec"]["gates"]) > 1  # the defaults of rollout_gates are measured too
    assert gates["p95_ratio"] == {"metric": "p95_ratio", "op": "<=", "threshold": 1.2, "text": "p95_ratio<=1.2",
                                  "value": 1.87, "ok": False}
    assert gates["psi_in"]["value"] is None and gates["psi_in"]["ok"] is None
    assert new["spec"]["name"] == "digits" and new["version"] == "2.0" and "devices" not in new
    assert body[1]["gates"] is None and body[1]["counts"] == {"updated": 2}
    assert [r["id"] for r in web.json("/api/rollouts?limit=1")[1]] == ["r-new"]


def test_one_rollout_has_its_devices(store, web):
    make_rollout(store, FLEET, "r1", devices={"pi-01": "updated", "pi-02": "failed"})
    status, body = web.json("/api/rollouts/r1")
    assert status == 200 and body["id"] == "r1"
    assert {d["device"]: (d["ota_state"], d["error"]) for d in body["devices"]} == {
        "pi-01": ("updated", None), "pi-02": ("failed", "timed out")}


@pytest.mark.parametrize("path, status, words", [
    ("/api/rollouts/nope", 404, "no rollout 'nope'"),
    ("/api/rollouts/r-elsewhere", 404, "in fleet 'demo'"),
    ("/api/rollouts?limit=0", 400, "limit"),
    ("/api/rollouts?limit=many", 400, "integer"),
], ids=["unknown", "another-fleet", "limit-zero", "limit-not-a-number"])
def test_bad_rollout_requests_get_a_json_error(store, web, path, status, words):
    make_rollout(store, "other", "r-elsewhere")
    got, body = web.json(path)
    assert got == status and words in body["error"]


def test_the_page_cannot_change_a_rollout(store, web):
    make_rollout(store, FLEET, "r1")
    for path in ("/api/rollouts", "/api/rollouts/r1/pause"):
        status, _, _ = web.get(path, method="POST")
        assert status == 405
    assert store.rollout("r1")["state"] == "running"


def test_no_rollouts_is_an_empty_list(store, web):
    assert web.json("/api/rollouts") == (200, [])
