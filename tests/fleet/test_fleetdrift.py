"""Fleet-level drift: the devices' DriftMonitor windows, stored as agents send them, merged for the fleet and
per label, against a hand computation with the devices' own PSI function; and the fleet_psi rule on it."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgeops.fleet.alerts import AlertEngine
from edgeops.fleet.fleetdrift import fleet_drift, histograms_of, merge_histograms, psi_table
from edgeops.monitor import DriftMonitor, psi
from tests.fleet.alerting import SEC, T0, rules, telemetry

MIN = 60 * SEC
HOUR = 60 * MIN
EDGES = np.linspace(0, 1, 11)
# the reference: what the model saw in validation, values around 0.5 (sd 0.2)
REFERENCE = np.histogram(np.clip(np.random.default_rng(0).normal(0.5, 0.2, 50_000), 0, 0.999), EDGES)[0]
PROFILE = {"version": 1, "inputs": {"x": {"min": 0.0, "max": 1.0, "histogram": {
    "edges": EDGES.tolist(), "counts": REFERENCE.tolist()}}}}

# device -> (labels, mean of what it sees); berlin has drifted, paris has not
DEVICES = {"b1": ({"site": "berlin", "ring": "canary"}, 0.64), "b2": ({"site": "berlin", "ring": "stable"}, 0.60),
           "p1": ({"site": "paris", "ring": "canary"}, 0.5), "p2": ({"site": "paris", "ring": "stable"}, 0.5)}


def windows(device: str, mean: float, n: int, *, samples: int = 400, seed: int = 0) -> list[dict]:
    """``n`` drift snapshots of a real DriftMonitor fed with values around ``mean`` (one per telemetry message)."""
    rng = np.random.default_rng([zlib.crc32(device.encode()), seed])
    monitor = DriftMonitor(PROFILE)
    out = []
    for _ in range(n):
        monitor.update({"x": np.clip(rng.normal(mean, 0.2, samples), 0, 0.999)})
        out.append(monitor.snapshot(reset=True))
    return out


def store_fleet(store, now: int, n: int = 3, **kw) -> dict[str, list[dict]]:
    snaps, msgs = {}, []
    for device, (labels, mean) in DEVICES.items():
        snaps[device] = windows(device, mean, n, **kw)
        for i, snap in enumerate(snaps[device]):
            msgs.append(telemetry(device, i + 1, now - (n - i) * MIN, labels=labels, psi=snap["max_psi"],
                                  drift_inputs=snap["inputs"]))
    store.write_batch(msgs)
    return snaps


def by_hand(snaps: dict[str, list[dict]], devices) -> float:
    counts = sum(np.array(s["inputs"]["x"]["counts"]) for d in devices for s in snaps[d])
    return psi(REFERENCE, counts)


def test_fleet_and_per_label_psi_match_a_hand_computation(store):
    now = T0 + HOUR
    snaps = store_fleet(store, now)
    store.write_batch([telemetry("b1", 99, now - 30 * MIN, labels=DEVICES["b1"][0],  # outside the window
                                 drift_inputs=windows("b1", 0.95, 1, seed=1)[0]["inputs"])])
    drift = fleet_drift(store, "demo", 10 * MIN, now_ms=now)
    assert drift["devices"] == 4
    assert drift["fleet"]["x"] == pytest.approx(by_hand(snaps, DEVICES))
    assert drift["fleet"]["max_psi"] == drift["fleet"]["x"]
    assert set(drift["by_label"]) == {"site=berlin", "site=paris", "ring=canary", "ring=stable"}
    assert drift["by_label"]["site=berlin"]["x"] == pytest.approx(by_hand(snaps, ["b1", "b2"]))
    assert drift["by_label"]["site=paris"]["x"] == pytest.approx(by_hand(snaps, ["p1", "p2"]))
    assert drift["by_label"]["ring=canary"]["x"] == pytest.approx(by_hand(snaps, ["b1", "p1"]))
    assert drift["by_label"]["site=berlin"]["x"] > 0.2 > 0.1 > drift["by_label"]["site=paris"]["x"]
    only_sites = fleet_drift(store, "demo", 10 * MIN, now_ms=now, by=["site"], labels={"ring": ["canary"]})
    assert set(only_sites["by_label"]) == {"site=berlin", "site=paris"} and only_sites["devices"] == 2
    assert only_sites["fleet"]["x"] == pytest.approx(by_hand(snaps, ["b1", "p1"]))


def test_windows_too_small_on_each_device_add_up_to_a_fleet_psi(store):
    now = T0 + HOUR
    snaps = store_fleet(store, now, n=2, samples=20)  # 20 values a window: below the monitor's 50 each
    assert all(s["inputs"]["x"]["psi"] is None for ss in snaps.values() for s in ss)
    drift = fleet_drift(store, "demo", 10 * MIN, now_ms=now)
    assert drift["fleet"]["x"] == pytest.approx(by_hand(snaps, DEVICES))


def test_only_windows_over_the_same_reference_are_merged():
    a = DriftMonitor(PROFILE)
    other = {"inputs": {"x": {"histogram": {"edges": np.linspace(0, 2, 11).tolist(), "counts": [100] * 10}}}}
    b = DriftMonitor(other)
    for m in (a, b):
        m.update({"x": np.linspace(0, 0.99, 100)})
    merged: dict = {}
    for m in (a, b, a):
        merge_histograms(merged, histograms_of({"drift": {"inputs": m.snapshot()["inputs"]}}))
    table = psi_table(merged)
    keys = sorted(k for k in table if k != "max_psi")
    assert len(keys) == 2 and all(k.startswith("x@") for k in keys)
    assert histograms_of({"drift": {"inputs": {"x": {"counts": [1, 2]}}}}) == {}  # an older agent: no reference
    assert histograms_of({"drift": {"enabled": False}}) == {}


def test_the_fleet_psi_rule_fires_per_site_and_for_the_fleet(store):
    now = T0 + HOUR
    store_fleet(store, now)
    table = {"kind": "fleet_psi", "above": 0.2, "window": "10m"}
    engine = AlertEngine(store, "demo", rules(site={**table, "by": "site"}, fleet={**table, "above": 0.05}))
    out = engine.evaluate(now)
    assert [(x.rule, x.device, x.state) for x in out] == [("site", "site=berlin", "firing"), ("fleet", "", "firing")]
    assert out[0].labels == {"site": "berlin"}
    assert out[0].topic == "edgeops/demo/alerts/site/site=berlin" and out[1].topic == "edgeops/demo/alerts/fleet/_fleet"
    assert {(a["rule"], a["device"]) for a in store.alerts("demo", state="firing")} == {("site", "site=berlin"),
                                                                                         ("fleet", "")}


def test_recent_rows_reads_only_what_is_new_and_everything_now_and_then(store):
    from edgeops.fleet.fleetdrift import RecentRows

    recent = RecentRows(store, "demo", 10 * MIN, lambda row: row["seq"], overlap_ms=30 * SEC, full_every_ms=5 * MIN)
    now = T0 + HOUR
    store.write_batch([telemetry("pi-01", k, now - (10 - k) * MIN) for k in range(1, 10)])
    device = lambda: store.device("demo", "pi-01")  # noqa: E731 - its last_seen moves with each write
    assert [seq for _, seq in recent.rows(device(), now)] == list(range(1, 10))
    reads = recent.reads
    assert [seq for _, seq in recent.rows(device(), now + 5 * SEC)] == list(range(1, 10))
    assert recent.reads == reads  # nothing new arrived: not read again
    store.write_batch([telemetry("pi-01", 10, now + 8 * SEC)])
    assert [seq for _, seq in recent.rows(device(), now + 10 * SEC)][-2:] == [9, 10]
    assert recent.reads == reads + 1
    store.write_batch([telemetry("pi-01", 11, now - 2 * MIN, received=now + 20 * SEC)])  # a replayed backlog
    seqs = [seq for _, seq in recent.rows(device(), now + 20 * SEC)]
    assert 11 not in seqs  # older than the overlap: not in an incremental read ...
    assert 11 in [seq for _, seq in recent.rows(device(), now + 6 * MIN)]  # ... but in the next whole read
    assert [seq for _, seq in recent.rows(device(), now + 9 * MIN)] == [9, 10]  # the window moved on
