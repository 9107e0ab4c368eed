"""The page's A/B view and output drift over HTTP: ``/api/ab`` (accuracy per version, Newcombe's difference, per
label, bad parameters) and the ``outputs`` part of ``/api/fleet`` drift, on a real sqlite store and server."""

from __future__ import annotations

import pytest

from edgeops.fleet.abstats import newcombe_diff
from edgeops.fleet.fleetdrift import fleet_drift, output_histograms_of
from edgeops.fleet.store import open_store
from tests.fleet.webutil import Served, now_ms, telemetry, write

FLEET = "demo"


@pytest.fixture
def served(tmp_path):
    with open_store(str(tmp_path / "fleet.sqlite")) as store:
        s = Served(store, FLEET)
        yield store, s
        s.close()


def labelled(device, seq, ts, version, n, correct, site):
    m = telemetry(device, FLEET, seq, ts, version=version, labels={"site": site})
    m["feedback"] = {version: {"n": n, "correct": correct, "abs_err_sum": float(n - correct)}}
    return m


def test_api_ab_compares_the_two_versions(served):
    store, site = served
    now = now_ms()
    write(store, FLEET, [labelled("a1", i, now - i * 1000, "1.0", 100, 90, "berlin") for i in range(1, 6)]
          + [labelled("b1", i, now - i * 1000, "2.0", 100, 80, "paris") for i in range(1, 6)])
    status, body = site.json("/api/ab")
    assert status == 200
    assert {v: (s["n"], s["correct"]) for v, s in body["versions"].items()} == {"1.0": (500, 450), "2.0": (500, 400)}
    d = body["diff"]
    assert (d["a"], d["b"]) == ("1.0", "2.0") or (d["a"], d["b"]) == ("2.0", "1.0")
    k_b, k_a = (400, 450) if d["b"] == "2.0" else (450, 400)
    assert (d["diff"], d["lo"], d["hi"]) == pytest.approx(newcombe_diff(k_b, 500, k_a, 500))
    assert body["versions"]["2.0"]["by_label"]["site=paris"]["n"] == 500
    status, body = site.json("/api/ab?a=2.0&b=1.0&select=site=berlin")
    assert status == 200 and set(body["versions"]) == {"1.0"} and body["diff"]["diff"] is None
    status, body = site.json("/api/ab?select=nolabel")
    assert status == 400 and "label=value" in body["error"]
    status, body = site.json("/api/ab?since=soon")
    assert status == 400


def test_the_page_has_the_side_by_side_view(served):
    _, site = served
    status, _, js = site.get("/static/app.js")
    assert status == 200 and b"/api/ab" in js and b"ab-card" in js and b"output-drift" in js


def test_fleet_output_drift_merges_the_devices_output_windows(served):
    store, site = served
    now = now_ms()
    msgs = []
    for i, (device, counts) in enumerate([("d1", [10, 10, 10, 70]), ("d2", [10, 10, 10, 70])]):
        m = telemetry(device, FLEET, 1, now - 1000 - i)
        m["output_drift"] = {"enabled": True, "outputs": {"probabilities": {
            "ref": "o1", "reference": [25, 25, 25, 25], "counts": counts}},
            "classes": {"probabilities": {"ref": "c1", "reference": [50, 50], "counts": [48, 52]}}}
        msgs.append(m)
    write(store, FLEET, msgs)
    assert set(output_histograms_of(msgs[0])) == {("probabilities", "o1"), ("probabilities (class)", "c1")}
    out = fleet_drift(store, FLEET, 3_600_000, kind="outputs")
    assert out["devices"] == 2
    assert out["fleet"]["probabilities"] > 0.2 and out["fleet"]["probabilities (class)"] < 0.01
    status, body = site.json("/api/fleet")
    assert status == 200 and body["drift"]["outputs"]["fleet"]["max_psi"] == pytest.approx(out["fleet"]["max_psi"])
    assert body["drift"]["fleet"]["max_psi"] is None  # input drift is apart: these messages had none
