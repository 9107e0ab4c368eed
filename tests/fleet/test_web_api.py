"""The fleet page's JSON API (``edgeops.fleet.web``) over a real store (``store``: sqlite and PostgreSQL):
what each route answers, and its errors."""

from __future__ import annotations

import json

import pytest

from tests.fleet.webutil import Served, now_ms, telemetry, write, write_status

FLEET = "demo"


@pytest.fixture
def serve():
    started: list[Served] = []

    def make(store, fleet=FLEET, **kwargs) -> Served:
        started.append(Served(store, fleet, **kwargs))
        return started[-1]

    yield make
    for s in started:
        s.close()


def fill(store, now):
    """pi-01 fresh and online; pi-02 offline by its last will; pi-03 silent for a minute (interval 1 s)."""
    sent = {"pi-01": [telemetry("pi-01", FLEET, i, now - (5 - i) * 1000, p95=1.0 + i, errors=i % 2, count=10,
                                psi=0.01 * i, temp=40.0 + i, labels={"site": "berlin"}) for i in range(1, 5)],
            "pi-02": [telemetry("pi-02", FLEET, 1, now - 2000)],
            "pi-03": [telemetry("pi-03", FLEET, 7, now - 60_000, interval_s=1.0, version="2")]}
    for msgs in sent.values():
        write(store, FLEET, msgs)
    write_status(store, FLEET, "pi-01", "online")
    write_status(store, FLEET, "pi-02", "offline")
    write_status(store, FLEET, "pi-03", "online", now - 70_000)
    return sent


def test_devices_list_their_state_model_and_latest_numbers(store, serve):
    now = now_ms()
    sent = fill(store, now)
    status, devices = serve(store).json("/api/devices")
    assert status == 200
    rows = {d["id"]: d for d in devices}
    assert sorted(rows) == ["pi-01", "pi-02", "pi-03"]
    one = rows["pi-01"]
    last = sent["pi-01"][-1]
    assert one["state"] == "online" and one["model"]["name"] == "digits" and one["model"]["version"] == "3"
    assert one["last_seen"] == last["ts"] + 40 and 0 <= one["telemetry_age_s"] < 30
    assert one["p95_ms"] == last["inference"]["latency_ms"]["p95"] and one["max_psi"] == pytest.approx(0.04)
    assert one["error_rate"] == pytest.approx(last["inference"]["errors"] / 10) and one["temperature_c"] == 44.0
    assert one["active_alerts"] == [] and one["labels"].get("site") == "berlin"
    assert rows["pi-02"]["state"] == "offline", "the last will says offline"
    assert rows["pi-03"]["state"] == "offline", "status online but no telemetry for 60 intervals"
    assert rows["pi-03"]["model"]["version"] == "2" and rows["pi-03"]["offline_after_s"] == 3.0


def test_the_offline_rules_of_the_alert_engine_set_the_threshold(store, serve):
    from edgeops.fleet.alert_rules import parse_rules
    from edgeops.fleet.alerts import AlertEngine

    now = now_ms()
    fill(store, now)
    rules = parse_rules({"rules": {"offline": {"kind": "offline", "after": "2m"},
                                   "berlin_offline": {"kind": "offline", "after": "20s", "for": "10s",
                                                      "labels": {"site": "berlin"}},
                                   "hot": {"kind": "temperature", "above": 70}}})
    engine = AlertEngine(store, FLEET, rules)
    rows = {d["id"]: d for d in serve(store, alerts_source=engine).json("/api/devices")[1]}
    assert rows["pi-03"]["state"] == "online" and rows["pi-03"]["offline_after_s"] == 120.0
    assert rows["pi-01"]["offline_after_s"] == 30.0, "the berlin rule (20 s + 10 s) watches pi-01"
    assert rows["pi-02"]["state"] == "offline", "the last will still wins"
    no_offline_rule = parse_rules({"rules": {"hot": {"kind": "temperature", "above": 70}}})
    rows = {d["id"]: d for d in serve(store, alerts_source=no_offline_rule).json("/api/devices")[1]}
    assert rows["pi-03"]["state"] == "offline" and rows["pi-03"]["offline_after_s"] == 3.0, "3 intervals"
    strict = {d["id"]: d for d in serve(store, alerts_source=engine, offline_after_s=0.5).json("/api/devices")[1]}
    assert {k: v["state"] for k, v in strict.items()} == {"pi-01": "offline", "pi-02": "offline", "pi-03": "offline"}


def test_telemetry_is_the_messages_as_sent_oldest_first(store, serve):
    now = now_ms()
    sent = fill(store, now)
    web = serve(store)
    status, got = web.json("/api/devices/pi-01/telemetry?since=0")
    assert status == 200 and got == sent["pi-01"]
    assert [m["seq"] for m in got] == [1, 2, 3, 4] and all(m["id"] for m in got)
    since, until = sent["pi-01"][1]["ts"], sent["pi-01"][3]["ts"]  # since <= ts < until
    assert web.json(f"/api/devices/pi-01/telemetry?since={since}&until={until}")[1] == sent["pi-01"][1:3]
    assert web.json(f"/api/devices/pi-01/telemetry?since={now + 1}")[1] == []
    assert web.json("/api/devices/pi-01/telemetry?since=0&limit=2")[1] == sent["pi-01"][:2]


def test_series_are_the_stored_numbers_and_downsample_past_the_points(store, serve):
    now = now_ms()
    msgs = [telemetry("pi-09", FLEET, i, now - (100 - i) * 100, p95=float(i % 13)) for i in range(100)]
    write(store, FLEET, msgs)
    web = serve(store)
    raw = web.json("/api/devices/pi-09/series?since=0")[1]
    assert raw["downsampled"] is False
    assert [(p["ts"], p["seq"], p["p95_ms"]) for p in raw["points"]] == [(m["ts"], m["seq"], float(m["seq"] % 13))
                                                                        for m in msgs]
    thin = web.json("/api/devices/pi-09/series?since=0&points=10")[1]
    assert thin["downsampled"] is True and len(thin["points"]) <= 10 and sum(p["n"] for p in thin["points"]) == 100
    assert max(p["p95_ms"] for p in thin["points"]) == 12.0, "a bucket keeps its largest value"
    assert [p["ts"] for p in thin["points"]] == sorted(p["ts"] for p in thin["points"])


@pytest.mark.parametrize("path, status, words", [
    ("/api/devices/pi-01/telemetry?since=yesterday", 400, "since must be an integer"),
    ("/api/devices/pi-01/telemetry?since=-5", 400, "since must be in"),
    ("/api/devices/pi-01/telemetry?since=10&until=5", 400, "before since"),
    ("/api/devices/pi-01/telemetry?since=0&limit=0", 400, "limit must be in"),
    ("/api/devices/pi-01/series?points=1", 400, "points must be in"),
    ("/api/alerts?state=burning", 400, "firing or resolved"),
    ("/api/devices/nobody/telemetry?since=0", 404, "no device 'nobody'"),
    ("/api/devices/nobody", 404, "no device"),
    ("/api/nothing", 404, "no API route"),
], ids=["since-word", "since-negative", "until-before-since", "limit-zero", "points-one", "alert-state", "unknown-device",
        "unknown-device-row", "unknown-route"])
def test_bad_requests_get_a_json_error(store, serve, path, status, words):
    fill(store, now_ms())
    got, headers, body = serve(store).get(path)
    assert got == status and headers["Content-Type"] == "application/json"
    assert words in json.loads(body)["error"]


def test_a_failing_store_is_a_500_without_a_traceback(store, serve):
    fill(store, now_ms())
    web = serve(store)
    store.close()  # every read now raises inside the store
    status, headers, body = web.get("/api/devices")
    assert status == 500 and "Traceback" not in body.decode() and "internal error" in json.loads(body)["error"]


def test_writes_are_refused(store, serve):
    status, headers, body = serve(store).get("/api/devices", method="POST")
    assert status == 405 and headers["Allow"] == "GET" and "read-only" in json.loads(body)["error"]


def test_alerts_list_firing_first_and_filter_by_state(store, serve):
    now = now_ms()
    fill(store, now)
    base = {"fleet": FLEET, "value": 0.3, "threshold": 0.2, "message": "m", "updated": now}
    store.upsert_alert({**base, "rule": "offline", "device": "pi-02", "state": "resolved", "since": now - 5000,
                               "resolved_at": now - 1000})
    store.upsert_alert({**base, "rule": "drift", "device": "pi-01", "state": "firing", "since": now - 9000})
    store.upsert_alert({**base, "rule": "fleet_drift", "device": "", "state": "firing", "since": now - 3000})
    web = serve(store)
    alerts = web.json("/api/alerts")[1]
    assert [(a["rule"], a["state"]) for a in alerts] == [("fleet_drift", "firing"), ("drift", "firing"),
                                                         ("offline", "resolved")]
    assert alerts[1]["device"] == "pi-01" and alerts[1]["since"] == now - 9000 and alerts[1]["threshold"] == 0.2
    assert [a["rule"] for a in web.json("/api/alerts?state=resolved")[1]] == ["offline"]
    rows = {d["id"]: d for d in web.json("/api/devices")[1]}
    assert rows["pi-01"]["active_alerts"] == ["drift"] and rows["pi-02"]["active_alerts"] == []


def test_fleet_counts_and_drift(store, serve):
    now = now_ms()
    fill(store, now)
    # drift: berlin's window all in the first bin, munich's spread like the reference
    write(store, FLEET, [telemetry("b1", FLEET, 1, now - 1000, labels={"site": "berlin"}, counts=[400, 0, 0, 0]),
                                telemetry("m1", FLEET, 1, now - 1000, labels={"site": "munich"}, counts=[100, 100, 100, 100])])
    got = serve(store).json("/api/fleet")[1]
    assert got["counts"] == {"devices": 5, "online": 3, "offline": 2, "firing_alerts": 0}
    drift = got["drift"]
    assert drift["devices"] == 2 and drift["by_label"]["site=munich"]["max_psi"] == pytest.approx(0, abs=1e-6)
    assert drift["by_label"]["site=berlin"]["max_psi"] > drift["fleet"]["max_psi"] > 0.2

    calls = []

    def custom(store, fleet):
        calls.append(fleet)
        return {"fleet": {"max_psi": 0.07}}

    web = serve(store, fleet_drift=custom)
    assert web.json("/api/fleet")[1]["drift"] == {"fleet": {"max_psi": 0.07}} and calls == [FLEET]
    web.json("/api/fleet")
    assert calls == [FLEET], "merged again only after DRIFT_REFRESH_S"


def test_pages_are_self_contained_and_escape_what_they_show(store, serve):
    now = now_ms()
    fill(store, now)
    odd = '<img src=x onerror="alert(1)">'
    write(store, FLEET, [telemetry(odd, FLEET, 1, now)])
    web = serve(store)
    for path in ("/", "/alerts", "/device/pi-01"):
        status, headers, body = web.get(path)
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        assert '<script src="/static/app.js">' in text and 'name="viewport"' in text
    from urllib.parse import quote

    status, _, body = web.get("/device/" + quote(odd, safe=""))
    assert status == 200 and odd not in body.decode() and "&lt;img src=x" in body.decode()
    for name in ("app.js", "style.css"):
        status, headers, body = web.get(f"/static/{name}")
        assert status == 200 and b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")
    assert web.get("/device/nobody")[0] == 404
    assert web.get("/static/..%2Fweb.py")[0] == 404 and web.get("/static/web.py")[0] == 404
