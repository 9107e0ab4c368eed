"""Every SQL query of ``examples/grafana/dashboards/fleet.json`` runs on the real PostgreSQL schema and
returns the rows that the telemetry written through the store implies.

Grafana's macros and variables are expanded the way Grafana's PostgreSQL data source does it (a single
value raw, a multi-value variable as a quoted, comma-separated list)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.fleet.webutil import incoming, now_ms, telemetry, write, write_status

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "examples" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "fleet.json").read_text())


def expand(sql: str, *, fleet: str, devices: list[str], start_ms: int, end_ms: int, interval_ms: int) -> str:
    """Grafana's macros and template variables, as its PostgreSQL data source expands them."""
    frm, to = start_ms // 1000, end_ms // 1000

    def ts(seconds: int) -> str:
        return f"to_timestamp({seconds})"

    sql = re.sub(r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)",
                 lambda m: f"{m.group(1)} BETWEEN {ts(frm)} AND {ts(to)}", sql)
    for macro, value in {"$__timeFrom()": ts(frm), "$__timeTo()": ts(to), "$__unixEpochFrom()": str(frm),
                         "$__unixEpochTo()": str(to), "$__interval_ms": str(interval_ms),
                         "$__interval": f"'{interval_ms}ms'"}.items():
        sql = sql.replace(macro, value)
    quoted = ",".join("'" + d.replace("'", "''") + "'" for d in devices)
    sql = re.sub(r"\$\{?device\}?", quoted, sql)
    sql = re.sub(r"\$\{?fleet\}?", fleet.replace("'", "''"), sql)
    assert "$" not in sql, f"a macro or variable left unexpanded: {sql}"
    return sql


def queries(dashboard: dict) -> dict[str, str]:
    """Panel title (or ``var:<name>``) -> its SQL."""
    out = {f"var:{v['name']}": v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target.get("rawQuery") and target.get("rawSql"), f"panel {panel['title']!r} has no raw SQL"
            out[panel["title"]] = target["rawSql"]
    return out


def test_the_dashboard_has_the_panels_and_uses_the_provisioned_source():
    titles = set(queries(DASHBOARD))
    assert {"Devices online", "Active alerts", "p95 latency per device", "Inference rate", "Errors", "Max PSI (drift)",
            "Temperature (health)", "CPU (health)", "Devices", "var:fleet", "var:device"} <= titles
    source = (GRAFANA / "provisioning" / "datasources" / "edgeops.yaml").read_text()
    uid = re.search(r"uid:\s*(\S+)", source).group(1)
    assert all(p["datasource"]["uid"] == uid for p in DASHBOARD["panels"])
    provider = (GRAFANA / "provisioning" / "dashboards" / "edgeops.yaml").read_text()
    assert "type: file" in provider and "path:" in provider


# panel title -> (how Grafana buckets the messages' values, the value in a message)
SERIES = {
    "p95 latency per device": (max, lambda m: m["inference"]["latency_ms"]["p95"]),
    "Inference rate": (lambda v: sum(v) / len(v), lambda m: m["inference"]["rate_per_s"]),
    "Errors": (sum, lambda m: m["inference"]["errors"]),
    "Max PSI (drift)": (max, lambda m: m["drift"]["max_psi"]),
    "Temperature (health)": (max, lambda m: m["health"]["temperature_c"]),
    "CPU (health)": (lambda v: sum(v) / len(v), lambda m: m["health"]["cpu_percent"]),
}


@pytest.fixture
def pg_fleet(pg_url):
    """A fleet of four devices in PostgreSQL, through the store: pi-01 and pi-02 online with 20 messages each,
    pi-03 gone (its last will), pi-04 online but silent for an hour; a second fleet beside it."""
    from edgeops.fleet.store import open_store

    store = open_store(pg_url)
    fleet, now = "graf-" + uuid.uuid4().hex[:8], now_ms()
    sent: dict[str, list[dict]] = {}
    for k, device in enumerate(["pi-01", "pi-02"]):
        sent[device] = [telemetry(device, fleet, i, now - (20 - i) * 10_000, p95=1.0 + k + (i % 5) / 4, rate=2.0 + i % 3,
                                  errors=int(i % 4 == 0), psi=0.01 * i if k else None, temp=None if i % 6 == 0 else 40.0 + i,
                                  cpu=10.0 + i) for i in range(20)]
    sent["pi-03"] = [telemetry("pi-03", fleet, 1, now - 30_000)]
    sent["pi-04"] = [telemetry("pi-04", fleet, 1, now - 3_600_000)]
    for msgs in sent.values():
        write(store, fleet, msgs)
    for device in ("pi-01", "pi-02", "pi-04"):
        write_status(store, fleet, device, "online", now - 3_700_000)
    write_status(store, fleet, "pi-03", "offline")
    write(store, "other", [telemetry("pi-01", "other", 1, now - 5000, p95=99.0)])
    base = {"fleet": fleet, "value": 0.4, "threshold": 0.2, "updated": now}
    store.upsert_alert({**base, "rule": "drift", "device": "pi-02", "state": "firing", "since": now - 50_000,
                        "message": "max PSI 0.4 > 0.2"})
    store.upsert_alert({**base, "rule": "fleet_drift", "device": "", "state": "firing", "since": now - 20_000,
                        "message": "fleet PSI"})
    store.upsert_alert({**base, "rule": "offline", "device": "pi-01", "state": "resolved", "since": now - 90_000,
                        "resolved_at": now - 80_000, "message": "back"})
    store.write_batch([incoming(f"edgeops/{fleet}/pi-01/events", {"ts": now, "seq": 1, "id": uuid.uuid4().hex,
                                                                 "kind": "note"}, now)])
    yield store, fleet, now, sent
    store.close()


def run(store_url: str, sql: str) -> tuple[list[str], list[tuple]]:
    import psycopg

    with psycopg.connect(store_url) as conn:
        cur = conn.execute(sql)
        return [c.name for c in cur.description], cur.fetchall()


@pytest.mark.parametrize("interval_ms", [1000, 60_000], ids=["every-message", "minute-buckets"])
@pytest.mark.parametrize("title", sorted(SERIES))
def test_time_series_panels_bucket_the_stored_telemetry(pg_url, pg_fleet, title, interval_ms):
    store, fleet, now, sent = pg_fleet
    sql = expand(queries(DASHBOARD)[title], fleet=fleet, devices=["pi-01", "pi-02", "pi-03"],
                 start_ms=now - 900_000, end_ms=now + 1000, interval_ms=interval_ms)
    columns, rows = run(pg_url, sql)
    assert columns[:2] == ["time", "metric"] and len(columns) == 3
    agg, value = SERIES[title]
    want: dict[tuple[int, str], list[float]] = {}
    for device in ("pi-01", "pi-02", "pi-03"):
        for m in sent[device]:
            if value(m) is not None:
                want.setdefault((m["ts"] // interval_ms * interval_ms, device), []).append(float(value(m)))
    got = {(int(round(t.timestamp() * 1000)), d): float(v) for t, d, v in rows}
    assert sorted(got) == sorted(want)
    assert got == pytest.approx({k: agg(v) for k, v in want.items()})
    assert [r[0] for r in rows] == sorted(r[0] for r in rows), "Grafana wants time ascending"


def test_devices_online_counts_status_and_fresh_telemetry(pg_url, pg_fleet):
    store, fleet, now, sent = pg_fleet
    columns, rows = run(pg_url, expand(queries(DASHBOARD)["Devices online"], fleet=fleet, devices=[],
                                       start_ms=now - 3_600_000, end_ms=now, interval_ms=1000))
    assert dict(zip(columns, rows[0])) == {"online": 2, "devices": 4}


def test_devices_table_shows_each_selected_device_newest_numbers(pg_url, pg_fleet):
    store, fleet, now, sent = pg_fleet
    columns, rows = run(pg_url, expand(queries(DASHBOARD)["Devices"], fleet=fleet, devices=["pi-01", "pi-03", "pi-04"],
                                       start_ms=now - 3_600_000, end_ms=now, interval_ms=1000))
    table = {r[0]: dict(zip(columns, r)) for r in rows}
    assert list(table) == ["pi-01", "pi-03", "pi-04"]
    assert [table[d]["state"] for d in table] == ["online", "offline", "offline"]
    newest = sent["pi-01"][-1]
    assert table["pi-01"]["p95 ms"] == pytest.approx(newest["inference"]["latency_ms"]["p95"])
    assert table["pi-01"]["version"] == "3" and table["pi-01"]["model"] == "digits"
    assert 0 <= table["pi-01"]["age s"] < 120 and table["pi-04"]["age s"] >= 3590


def test_active_alerts_lists_the_firing_ones_newest_first(pg_url, pg_fleet):
    store, fleet, now, sent = pg_fleet
    columns, rows = run(pg_url, expand(queries(DASHBOARD)["Active alerts"], fleet=fleet, devices=[],
                                       start_ms=now - 3_600_000, end_ms=now, interval_ms=1000))
    assert columns == ["since", "rule", "device", "value", "threshold", "message"]
    assert [(r[1], r[2]) for r in rows] == [("fleet_drift", "(fleet)"), ("drift", "pi-02")]
    assert int(round(rows[1][0].timestamp() * 1000)) == now - 50_000 and rows[1][3] == pytest.approx(0.4)


def test_template_variables_list_fleets_and_their_devices(pg_url, pg_fleet):
    store, fleet, now, sent = pg_fleet
    q = queries(DASHBOARD)
    fleets = [r[0] for r in run(pg_url, expand(q["var:fleet"], fleet=fleet, devices=[], start_ms=0, end_ms=now,
                                               interval_ms=1000))[1]]
    assert fleet in fleets and "other" in fleets
    devices = [r[0] for r in run(pg_url, expand(q["var:device"], fleet=fleet, devices=[], start_ms=0, end_ms=now,
                                                interval_ms=1000))[1]]
    assert devices == ["pi-01", "pi-02", "pi-03", "pi-04"]


def test_expand_knows_the_grafana_macros():
    sql = expand("SELECT 1 WHERE $__timeFilter(to_timestamp(ts / 1000.0)) AND x > $__timeFrom() AND d IN ($device) "
                 "AND f = '${fleet}'", fleet="demo", devices=["a", "o'b"], start_ms=5000, end_ms=9000, interval_ms=1)
    assert sql == ("SELECT 1 WHERE to_timestamp(ts / 1000.0) BETWEEN to_timestamp(5) AND to_timestamp(9) AND "
                   "x > to_timestamp(5) AND d IN ('a','o''b') AND f = 'demo'")
