"""``FleetServer`` and ``edgeops fleet serve|status --db``: the seams (loops, routes), retention, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from edgeops.fleet.server import FleetServer, ServerOptions, parse_http
from edgeops.fleet.store import open_store
from tests.fleet.test_collector import wait_until
from tests.fleet.test_store import telemetry

pytest.importorskip("paho.mqtt.client")
DAY = 86_400_000


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def edgeops_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def test_fleet_server_collects_serves_and_trims(broker, tmp_path):
    from edgeops.agent import Agent

    db = str(tmp_path / "fleet.db")
    now = int(time.time() * 1000)
    with open_store(db) as store:  # 40 days old: the retention loop removes it at start
        store.write_batch([telemetry("old", 1, now - 40 * DAY, fleet="demo")])
    server = FleetServer(ServerOptions(broker=broker.url, fleet="demo", db=db, http="127.0.0.1:0", client_id="srv"))
    ticks = []
    server.add_loop("tick", lambda: ticks.append(1), 0.1)
    server.http_routes["/custom"] = lambda: (200, {"hello": "fleet"})
    with server:
        assert server.wait_ready(10)
        agent = Agent(None, broker=broker.url, fleet="demo", device="pi-01", store_dir=str(tmp_path / "a"),
                      interval_s=0.2, labels={"ring": "canary"}).start()
        try:
            assert wait_until(lambda: len(server.store.telemetry("demo", "pi-01")) >= 3, 10)
        finally:
            agent.stop()
        code, health = get(server.url + "/healthz")
        assert code == 200 and health["ok"] and health["collector"]["stored"] >= 3 and health["store"] == "sqlite"
        code, devices = get(server.url + "/api/devices")
        assert code == 200 and "pi-01" in {d["id"] for d in devices}
        assert get(server.url + "/custom") == (200, {"hello": "fleet"})
        assert wait_until(lambda: server.store.telemetry("demo", "old") == [], 5)
        assert len(ticks) >= 3 and server.stats()["loops"]["retention"]["runs"] >= 1
    assert server.stats()["collector"]["connected"] is False
    proc = edgeops_cli("fleet", "status", "--db", db, "--fleet", "demo", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["device"]: r for r in json.loads(proc.stdout)["devices"]}
    assert rows["pi-01"]["state"] == "offline" and rows["pi-01"]["labels"] == {"ring": "canary"}
    assert rows["pi-01"]["seq"] >= 3 and rows["pi-01"]["model"]["name"] == "none"
    human = edgeops_cli("fleet", "status", "--db", db, "--fleet", "demo")
    assert human.returncode == 0 and "pi-01" in human.stdout and "offline" in human.stdout


def test_healthz_is_503_while_the_broker_is_away(tmp_path):
    server = FleetServer(ServerOptions(broker="mqtt://127.0.0.1:1", fleet="demo", db=str(tmp_path / "f.db"),
                                       http="127.0.0.1:0")).start()
    try:
        code, health = get(server.url + "/healthz")
        assert code == 503 and health["ok"] is False
    finally:
        server.stop()


def test_fleet_serve_runs_until_sigterm_and_prints_its_url(broker, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edgeops", "fleet", "serve", "--broker", broker.url, "--fleet",
                             "demo", "--db", str(tmp_path / "f.db"), "--http", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any("http://" in x for x in lines), 30), lines
        url = next(x for x in lines if "http://" in x).split()[-1].rstrip("/")
        assert get(url + "/healthz")[0] == 200
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    reader.join(5)
    assert proc.stdout.read() == ""  # nothing on stdout
    assert any("stored" in x for x in lines)


@pytest.mark.parametrize("args, words", [
    (["fleet", "serve", "--broker", "mqtt://127.0.0.1:1", "--fleet", "demo", "--http", "nope"], "host:port"),
    (["fleet", "serve", "--broker", "mqtt://127.0.0.1:1", "--fleet", "demo", "--db", "mysql://x"], "sqlite"),
    (["fleet", "serve", "--broker", "http://x", "--fleet", "demo", "--http", ""], "broker URL"),
    (["fleet", "status", "--fleet", "demo"], "--broker"),
    (["fleet", "status", "--fleet", "demo", "--db", "/nonexistent/fleet.db"], "no such file"),
], ids=["bad-http", "bad-db", "bad-broker", "status-needs-a-source", "status-missing-db"])
def test_bad_input_is_a_clear_error(args, words, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeops", *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("value, expected", [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":0", ("127.0.0.1", 0)),
                                             ("[::1]:80", ("::1", 80)), ("", None), (None, None)])
def test_parse_http(value, expected):
    assert parse_http(value) == expected
