"""The alert engine over a real store (sqlite and PostgreSQL): offline after `for` and back, no re-fire after a
restart, hysteresis, the 24 h baseline, and each kind firing on its own field of agent-shaped telemetry."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from edgeops.fleet.alerts import AlertEngine
from tests.fleet.alerting import SEC, T0, Clock, rules, status, telemetry

MIN = 60 * SEC
HOUR = 60 * MIN


def firing(store, fleet="demo"):
    return {(a["rule"], a["device"]) for a in store.alerts(fleet, state="firing")}


def test_a_device_that_stops_reporting_fires_offline_after_for_and_resolves_when_it_returns(store):
    engine = AlertEngine(store, "demo", rules(offline={"kind": "offline", "after": "30s", "for": "20s"}))
    seen = []
    for i in range(20):  # pi-01 reports every 10 s throughout; pi-02 until 60 s
        t = T0 + i * 10 * SEC
        store.write_batch([telemetry("pi-01", i + 1, t)] + ([telemetry("pi-02", i + 1, t)] if i <= 6 else []))
        seen += [(x.at - T0, x.device, x.state) for x in engine.evaluate(t)]
    # silent for more than 30 s from 100 s on (at 90 s it is exactly 30 s), held for 20 s: fires at 120 s
    assert seen == [(120 * SEC, "pi-02", "firing")]
    row = store.alerts("demo", state="firing")[0]
    assert (row["rule"], row["device"], row["since"], row["threshold"]) == ("offline", "pi-02", T0 + 120 * SEC, 30.0)
    assert row["value"] == pytest.approx(60.0)  # the age when it fired
    back = T0 + 200 * SEC
    store.write_batch([telemetry("pi-02", 99, back)])
    out = engine.evaluate(back)
    assert [(x.device, x.state, x.since) for x in out] == [("pi-02", "resolved", T0 + 120 * SEC)]
    row = store.alerts("demo")[0]
    assert (row["state"], row["resolved_at"]) == ("resolved", back)
    assert [e["state"] for e in store.alert_log("demo")] == ["resolved", "firing"]


def test_the_last_will_fires_offline_at_once_and_telemetry_resolves_it(store):
    engine = AlertEngine(store, "demo", rules(offline={"kind": "offline", "after": "2m"}))
    store.write_batch([telemetry("pi-01", 1, T0)])
    assert engine.evaluate(T0 + SEC) == []
    store.write_batch([status("pi-01", "offline", T0 + 2 * SEC)])  # the broker sent its last will
    assert [(x.device, x.state) for x in engine.evaluate(T0 + 3 * SEC)] == [("pi-01", "firing")]
    store.write_batch([status("pi-01", "online", T0 + 4 * SEC), telemetry("pi-01", 2, T0 + 5 * SEC)])
    assert [(x.device, x.state) for x in engine.evaluate(T0 + 6 * SEC)] == [("pi-01", "resolved")]


def test_a_restarted_engine_does_not_fire_again_and_resolves_what_it_took_over(store):
    offline = rules(offline={"kind": "offline", "after": "30s"})
    store.write_batch([telemetry("pi-01", 1, T0), telemetry("pi-02", 1, T0)])
    first = AlertEngine(store, "demo", offline)
    assert [(x.device, x.state) for x in first.evaluate(T0 + 40 * SEC)] == [("pi-01", "firing"), ("pi-02", "firing")]
    store.write_batch([telemetry("pi-01", 2, T0 + 45 * SEC)])
    restarted = AlertEngine(store, "demo", offline)  # a new server process on the same store
    out = restarted.evaluate(T0 + 50 * SEC)
    assert [(x.device, x.state) for x in out] == [("pi-01", "resolved")]  # pi-02 still firing: not fired again
    assert firing(store) == {("offline", "pi-02")}
    assert [e["state"] for e in store.alert_log("demo") if e["device"] == "pi-02"] == ["firing"]
    assert store.alerts("demo", state="firing")[0]["since"] == T0 + 40 * SEC


def test_a_firing_alert_whose_rule_was_removed_is_resolved_at_start(store):
    store.write_batch([telemetry("pi-01", 1, T0)])
    AlertEngine(store, "demo", rules(offline={"kind": "offline", "after": "30s"})).evaluate(T0 + 40 * SEC)
    out = AlertEngine(store, "demo", rules(hot={"kind": "temperature", "above": 90})).evaluate(T0 + 50 * SEC)
    assert [(x.rule, x.device, x.state) for x in out] == [("offline", "pi-01", "resolved")]
    assert "rule was removed" in out[0].message and firing(store) == set()


@pytest.mark.parametrize("clear, expected", [
    pytest.param(8.0, ["firing", "resolved"], id="with-clear-threshold"),
    pytest.param(None, ["firing", "resolved", "firing", "resolved", "firing", "resolved"], id="without"),
])
def test_hysteresis_on_stored_telemetry(store, clear, expected):
    table = {"kind": "p95", "above": 10, **({"clear": clear} if clear is not None else {})}
    engine = AlertEngine(store, "demo", rules(slow=table))
    states = []
    for i, p95 in enumerate([9, 11, 9.5, 10.5, 9.2, 11, 9.8, 7.5]):
        t = T0 + i * 10 * SEC
        store.write_batch([telemetry("pi-01", i + 1, t, p95=p95)])
        states += [x.state for x in engine.evaluate(t)]
    assert states == expected


def test_p95_against_the_devices_own_24h_baseline(store):
    rng = np.random.default_rng(7)
    now = T0 + 25 * HOUR
    msgs, history = [], {}
    for device, typical, current in (("pi-01", 10.0, 25.0), ("pi-02", 20.0, 25.0), ("pi-03", 0.1, 0.35)):
        values = []
        for k, t in enumerate(range(now - 26 * HOUR, now - 10 * MIN, 5 * MIN)):  # 26 h of history, every 5 min
            p95 = float(typical * rng.uniform(0.8, 1.25))
            msgs.append(telemetry(device, k + 1, t, p95=p95))
            if t >= now - 10 * MIN - 24 * HOUR:
                values.append(p95)  # the baseline: the 24 h before the current 10-minute window
        history[device] = statistics.median(values)
        for j, t in enumerate((now - 8 * MIN, now - 4 * MIN, now - 30 * SEC)):  # the current window: high
            msgs.append(telemetry(device, 10_000 + j, t, p95=current))
    msgs += [telemetry("pi-04", k + 1, now - k * MIN, p95=50.0) for k in range(5)]  # no history: no baseline
    store.write_batch(msgs)
    rule = rules(regression={"kind": "p95_baseline", "factor": 2.0, "clear": 1.5, "window": "10m", "min_ms": 1.0})
    out = AlertEngine(store, "demo", rule).evaluate(now)
    # pi-02 is at 1.25x its own median, pi-03 at 3.5x but below min_ms, pi-04 has fewer than min_baseline rows
    assert [x.device for x in out] == ["pi-01"]
    assert out[0].value == pytest.approx(25.0 / history["pi-01"], rel=1e-6)
    assert history["pi-01"] == pytest.approx(10.0, rel=0.15)


def _throttled(now: bool) -> dict:
    flags = {"under_voltage": False, "freq_capped": now, "throttled": now, "soft_temp_limit": False}
    return {"raw": "0x6" if now else "0x0", "now": flags, "since_boot": flags}


@pytest.mark.parametrize("table, good, bad", [
    pytest.param({"kind": "p95", "above": 20}, {"p95": 5.0}, {"p95": 50.0}, id="p95"),
    pytest.param({"kind": "error_rate", "above": 0.1, "window": "1m"}, {"errors": 2}, {"errors": 30}, id="error-rate"),
    pytest.param({"kind": "max_psi"}, {"psi": 0.05}, {"psi": 0.31}, id="max-psi"),
    pytest.param({"kind": "temperature", "above": 80}, {"temperature": 60.0}, {"temperature": 85.5}, id="temperature"),
    pytest.param({"kind": "throttled"}, {"throttled": _throttled(False)}, {"throttled": _throttled(True)},
                 id="throttled"),
    pytest.param({"kind": "outbox_dropped", "window": "1m"}, {"dropped": 4}, {"dropped": lambda i: 4 + i},
                 id="outbox-dropped"),
])
def test_each_kind_fires_on_its_own_field(store, table, good, bad):
    msgs = []
    for i in range(4):
        t = T0 + i * 10 * SEC
        for device, fields in (("good", good), ("bad", bad)):
            msgs.append(telemetry(device, i + 1, t, **{k: v(i) if callable(v) else v for k, v in fields.items()}))
    store.write_batch(msgs)
    out = AlertEngine(store, "demo", rules(r=table)).evaluate(T0 + 35 * SEC)
    assert [(x.device, x.state) for x in out] == [("bad", "firing")]
    assert firing(store) == {("r", "bad")}


def test_error_rate_needs_min_count_inferences(store):
    store.write_batch([telemetry("idle", 1, T0, count=3, errors=2), telemetry("busy", 1, T0, count=30, errors=20)])
    out = AlertEngine(store, "demo", rules(err={"kind": "error_rate", "above": 0.1, "min_count": 20})).evaluate(T0)
    assert [(x.device, x.value) for x in out] == [("busy", pytest.approx(20 / 30))]


def test_no_telemetry_counts_the_devices_own_interval(store):
    store.write_batch([telemetry("fast", 1, T0, interval_s=10.0), telemetry("slow", 1, T0, interval_s=60.0)])
    engine = AlertEngine(store, "demo", rules(silent={"kind": "no_telemetry", "intervals": 3}))
    assert engine.evaluate(T0 + 30 * SEC) == []
    assert [x.device for x in engine.evaluate(T0 + 31 * SEC)] == ["fast"]
    assert engine.evaluate(T0 + 180 * SEC) == []
    assert [x.device for x in engine.evaluate(T0 + 181 * SEC)] == ["slow"]
    assert firing(store) == {("silent", "fast"), ("silent", "slow")}


def test_labels_select_the_devices_a_rule_watches(store):
    store.write_batch([telemetry("b1", 1, T0, temperature=90.0, labels={"site": "berlin", "ring": "canary"}),
                       telemetry("b2", 1, T0, temperature=90.0, labels={"site": "berlin", "ring": "stable"}),
                       telemetry("p1", 1, T0, temperature=90.0, labels={"site": "paris", "ring": "canary"}),
                       telemetry("x1", 1, T0, temperature=90.0)])
    table = {"kind": "temperature", "above": 80, "labels": {"site": "berlin", "ring": ["canary", "beta"]}}
    out = AlertEngine(store, "demo", rules(hot=table)).evaluate(T0 + SEC)
    assert [x.device for x in out] == ["b1"]
    assert out[0].labels == {"site": "berlin", "ring": "canary"}


def test_stale_values_neither_fire_nor_resolve(store):
    store.write_batch([telemetry("pi-01", 1, T0, temperature=90.0)])
    clock = Clock(T0 + SEC)  # evaluate() without a time reads the engine's clock
    engine = AlertEngine(store, "demo", rules(hot={"kind": "temperature", "above": 80, "window": "1m"}), clock=clock)
    assert [x.state for x in engine.evaluate()] == ["firing"]
    clock.advance(10 * MIN)
    assert engine.evaluate() == []  # its newest telemetry is older than the window: no value
    assert firing(store) == {("hot", "pi-01")}
