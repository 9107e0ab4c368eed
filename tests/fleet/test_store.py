"""The fleet store on sqlite and PostgreSQL: round trip, dedup by id, idempotent migration, retention."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edgeops.fleet.store import SCHEMA_VERSION, Incoming, open_store

DAY = 86_400_000
NOW = 1_765_000_000_000  # 2025-12-06


def telemetry(device: str, seq: int, ts: int, *, fleet: str = "demo", p95: float = 0.9, **extra) -> Incoming:
    msg = {"ts": ts, "device": device, "fleet": fleet, "seq": seq, "id": f"{device}-{seq}-{ts}",
           "model": {"name": "digits", "version": "3", "sha256": "ab" * 32},
           "inference": {"count": 20, "errors": 1, "rate_per_s": 2.0, "latency_ms": {"p50": 0.4, "p95": p95, "p99": 1.2}},
           "drift": {"enabled": True, "max_psi": 0.03}, "health": {"cpu_percent": 12.5, "temperature_c": 51.2,
                                                                     "throttled": False},
           "runtime": {"backend": "onnxruntime"}, "outbox": {"pending": 2, "dropped": 0}, "interval_s": 10.0,
           "labels": {"ring": "canary", "site": "berlin"}, **extra}
    return Incoming(f"edgeops/{fleet}/{device}/telemetry", json.dumps(msg).encode(), ts + 50)


def status(device: str, state: str, received: int, *, ts: int | None = None, fleet: str = "demo") -> Incoming:
    msg = {"state": state, "ts": ts if ts is not None else received, "device": device, "fleet": fleet,
           "model": {"name": "digits", "version": "3", "sha256": "ab" * 32}}
    return Incoming(f"edgeops/{fleet}/{device}/status", json.dumps(msg).encode(), received)


def test_round_trip(store):
    msgs = [telemetry("pi-01", s, NOW + s * 1000) for s in range(1, 6)] + [telemetry("pi-02", 1, NOW)]
    r = store.write_batch(msgs)
    assert (r.stored, r.duplicates, r.malformed) == (6, 0, 0)
    rows = store.telemetry("demo", "pi-01")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    first = rows[0]
    assert first["payload"] == json.loads(msgs[0].payload)  # the message as sent
    assert (first["p95_ms"], first["count"], first["errors"], first["max_psi"], first["throttled"]) == (0.9, 20, 1, 0.03, 0)
    assert (first["cpu_percent"], first["temperature_c"], first["outbox_pending"], first["received"]) == (12.5, 51.2, 2, NOW + 1050)
    assert [r["seq"] for r in store.telemetry("demo", "pi-01", since_ms=NOW + 2000, until_ms=NOW + 4000)] == [2, 3]
    devices = {d["id"]: d for d in store.devices("demo")}
    assert set(devices) == {"pi-01", "pi-02"}
    d = devices["pi-01"]
    assert d["labels"] == {"ring": "canary", "site": "berlin"}
    assert (d["state"], d["model_name"], d["model_version"], d["last_seq"], d["backend"]) == ("online", "digits", "3", 5, "onnxruntime")
    assert (d["first_seen"], d["last_seen"]) == (NOW + 1050, NOW + 5050)
    assert {k: v["seq"] for k, v in store.latest_telemetry("demo").items()} == {"pi-01": 5, "pi-02": 1}
    assert store.device("demo", "nope") is None
    assert store.devices("other") == []


def test_same_id_is_stored_once(store):
    msgs = [telemetry("pi-01", s, NOW + s) for s in range(1, 4)]
    assert store.write_batch(msgs).stored == 3
    again = store.write_batch(msgs + [msgs[0]] + [telemetry("pi-01", 4, NOW + 4)])
    assert (again.stored, again.duplicates) == (1, 4)
    assert [r["seq"] for r in store.telemetry("demo", "pi-01")] == [1, 2, 3, 4]


def test_malformed_payloads_are_counted_not_raised(store):
    bad = [Incoming("edgeops/demo/pi-01/telemetry", b"{not json", NOW),
           Incoming("edgeops/demo/pi-01/telemetry", b"[1, 2]", NOW),
           Incoming("edgeops/demo/pi-01/telemetry", json.dumps({"seq": 1, "ts": NOW}).encode(), NOW),  # no id
           Incoming("edgeops/demo/pi-01/telemetry", json.dumps({"id": "x", "seq": "1", "ts": NOW}).encode(), NOW),
           Incoming("edgeops/demo/pi-01/telemetry", b'{"id": "n", "seq": 1, "ts": 1, "x": "\\u0000"}', NOW),
           Incoming("edgeops/demo/pi-01/telemetry", b"\xff\xfe", NOW),
           Incoming("edgeops/demo/pi-01/cmd", b"{}", NOW),
           Incoming("elsewhere/x", b"{}", NOW),
           Incoming("edgeops/demo/pi-01/status", b'{"state": "dancing"}', NOW)]
    huge = telemetry("pi-01", 2, NOW, inference={"count": 2 ** 70, "errors": -1})
    r = store.write_batch(bad + [telemetry("pi-01", 1, NOW), huge])
    assert (r.stored, r.malformed) == (2, len(bad))
    rows = store.telemetry("demo", "pi-01")
    assert [row["count"] for row in rows] == [20, None]  # out of range for a bigint: kept in the payload only


def test_status_sets_the_state_newest_received_wins(store):
    store.write_batch([status("pi-01", "online", NOW, ts=NOW)])
    assert store.device("demo", "pi-01")["state"] == "online"
    # the last will carries the ts of the connect (older than the online it replaces): it still wins
    store.write_batch([status("pi-01", "offline", NOW + 10_000, ts=NOW - 5)])
    assert store.device("demo", "pi-01")["state"] == "offline"
    store.write_batch([status("pi-01", "online", NOW + 5_000)])  # a late copy from a second collector
    assert store.device("demo", "pi-01")["state"] == "offline"
    store.write_batch([telemetry("pi-01", 1, NOW + 20_000)])  # telemetry does not flip the status
    d = store.device("demo", "pi-01")
    assert (d["state"], d["last_seq"], d["first_seen"]) == ("offline", 1, NOW)


def test_migration_is_idempotent(store_url):
    s1 = open_store(store_url)
    s1.write_batch([telemetry("pi-01", 1, NOW)])
    assert s1.migrate() == SCHEMA_VERSION
    s1.close()
    s2 = open_store(store_url)  # migrates again: nothing lost, nothing done twice
    assert s2.migrate() == SCHEMA_VERSION
    assert [r["seq"] for r in s2.telemetry("demo", "pi-01")] == [1]
    assert s2._rows("SELECT count(*) AS n FROM edgeops_schema", ())[0]["n"] == SCHEMA_VERSION
    s2.close()


def test_two_stores_migrate_at_once(store_url):
    errors, stores = [], []

    def go():
        try:
            stores.append(open_store(store_url))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in stores:
        s.close()


def test_a_newer_schema_is_refused(store_url):
    from edgeops.fleet.store import StoreError

    s = open_store(store_url)
    with s._write() as cur:
        cur.execute(s._sql("INSERT INTO edgeops_schema (version) VALUES (?)"), (SCHEMA_VERSION + 1,))
    s.close()
    with pytest.raises(StoreError, match="upgrade edgeops"):
        open_store(store_url)


def test_trim_fills_and_trims(store):
    # 90 days of telemetry, 4 messages a day per device, and a few events
    msgs = [telemetry(f"pi-{d}", day * 4 + k, NOW - day * DAY - k * 3_600_000) for d in range(3) for day in range(90)
            for k in range(4)]
    msgs += [Incoming("edgeops/demo/pi-0/events", json.dumps({"ts": NOW - day * DAY, "kind": "boot"}).encode(), NOW)
             for day in range(0, 90, 10)]
    for i in range(0, len(msgs), 250):
        store.write_batch(msgs[i:i + 250])
    assert store.counts("demo")["telemetry"] == 3 * 90 * 4
    removed = store.trim(30, now_ms=NOW, batch=100)
    left = [r["ts"] for d in range(3) for r in store.telemetry("demo", f"pi-{d}")]
    assert left and min(left) >= NOW - 30 * DAY
    expected_left = sum(1 for m in msgs if "telemetry" in m.topic and json.loads(m.payload)["ts"] >= NOW - 30 * DAY)
    assert len(left) == expected_left
    assert len(store.events("demo")) == 4  # days 0, 10, 20 and 30 (the cutoff itself stays)
    assert removed == len(msgs) - expected_left - 4
    assert store.trim(30, now_ms=NOW) == 0
    # the store still takes old and new months after the trim (partitions come back on demand)
    assert store.write_batch([telemetry("pi-9", 1, NOW - 60 * DAY), telemetry("pi-9", 2, NOW)]).stored == 2


def test_trim_drops_whole_months_on_postgresql(pg_url):
    s = open_store(pg_url)
    s.write_batch([telemetry("pi-1", m, NOW - m * 31 * DAY) for m in range(6)])
    with s._read() as cur:
        before = set(s._partitions(cur))
    assert len(before) == 6
    s.trim(45, now_ms=NOW)
    with s._read() as cur:
        after = set(s._partitions(cur))
    assert after < before and len(after) <= 3
    assert [r["seq"] for r in s.telemetry("demo", "pi-1")] == [1, 0]  # by ts: oldest first
    s.close()


def test_two_writers_racing_for_a_new_month(pg_url):
    stores = [open_store(pg_url) for _ in range(2)]
    barrier, errors = threading.Barrier(2), []

    def go(i):
        barrier.wait()
        try:
            for k in range(5):
                stores[i].write_batch([telemetry(f"pi-{i}", k, NOW + 40 * DAY * k + i)])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert stores[0].counts()["telemetry"] == 10
    for s in stores:
        s.close()


def test_alerts_upsert_and_log(store):
    base = {"fleet": "demo", "rule": "offline", "device": "pi-01", "value": 120.0, "threshold": 60.0,
            "message": "offline for 2 min"}
    store.upsert_alert({**base, "state": "firing", "since": NOW, "updated": NOW})
    store.upsert_alert({**base, "state": "firing", "since": NOW, "updated": NOW + 1000})
    store.upsert_alert({"fleet": "demo", "rule": "drift", "state": "firing", "since": NOW, "updated": NOW + 500})
    assert [(a["rule"], a["device"]) for a in store.alerts("demo")] == [("offline", "pi-01"), ("drift", "")]
    store.upsert_alert({**base, "state": "resolved", "since": NOW, "resolved_at": NOW + 2000, "updated": NOW + 2000})
    assert [a["rule"] for a in store.alerts("demo", state="firing")] == ["drift"]
    assert store.alerts("demo", state="resolved")[0]["resolved_at"] == NOW + 2000
    log = store.alert_log("demo")
    assert [(e["rule"], e["state"]) for e in log] == [("offline", "resolved"), ("drift", "firing"), ("offline", "firing")]


def test_sqlite_store_is_wal(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/x.db")
    with s._read() as cur:
        assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()


def test_bad_db_url_is_a_usage_error():
    from edgeops.errors import UsageError

    with pytest.raises(UsageError):
        open_store("mysql://x")


def test_unreachable_postgresql_is_a_clear_error():
    pytest.importorskip("psycopg")
    from edgeops.fleet.store import StoreError

    t = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://postgres@127.0.0.1:1/x")
    assert time.monotonic() - t < 15
