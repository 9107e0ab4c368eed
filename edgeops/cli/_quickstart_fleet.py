"""``edgeops quickstart --fleet``: the fleet side in half a minute.

Starts a local mosquitto (or uses ``--broker``), the fleet server (``edgeops fleet serve``: the
collector on a sqlite file in the quickstart folder, the page and the JSON API on a free port of
127.0.0.1), runs two agents with the example model for a few seconds, each replaying the held-out
digits and reporting every second, then prints the page's URL, the devices and the first
telemetry rows as the store holds them, and stops everything it started.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLEET = "quickstart"
DEVICES = ("demo-01", "demo-02")


def fleet_tour(ex: Path, err: Any, broker_url: str | None, seconds: float = 4.0) -> dict[str, Any]:
    """Steps 1 to 4 of the fleet tour; a summary for ``--json`` and for :func:`show`, or why it was skipped."""
    try:
        import paho.mqtt  # noqa: F401

        from ..agent import Agent
        from ..fleet.server import FleetServer
        from ._quickstart_agent import tour_broker
    except ImportError as exc:
        return {"skipped": f"the fleet tour needs the agent extra ({exc}): pip install 'edgeops[agent]'"}
    url, local = tour_broker(broker_url)
    if url is None:
        return {"skipped": "no broker: give --broker mqtt://HOST:PORT (or set EDGEOPS_BROKER), or install "
                           "mosquitto (apt-get install mosquitto) and quickstart starts one"}
    err.print(f"[bold]1. broker[/bold] {url}{' (a local mosquitto started for this)' if local else ''}")
    workdir = os.environ.get("EDGEOPS_QUICKSTART_DIR") or os.path.join(tempfile.gettempdir(), "edgeops-quickstart")
    os.makedirs(workdir, exist_ok=True)
    db = os.path.join(workdir, "fleet.db")
    for suffix in ("", "-wal", "-shm"):  # a fresh store each tour
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    try:
        server = _server(FleetServer, url, db)
        server.start()
        try:
            if not server.wait_ready(10):  # subscribed: from now on the broker keeps the fleet's messages for it
                return {"skipped": f"the collector could not subscribe at {url} ({server.collector.last_error})"}
            err.print(f"[bold]2. fleet server[/bold] the collector on {db}, the page at {server.url}")
            with tempfile.TemporaryDirectory(prefix="edgeops-quickstart-fleet-") as stores:
                err.print(f"[bold]3. agents[/bold] {' and '.join(DEVICES)} with digits_mlp.onnx for {seconds:g} s, "
                          "telemetry every 1 s, the held-out digits replayed at 50 Hz")
                sent = _run_agents(Agent, ex, url, stores, seconds)
            err.print("[bold]4. store[/bold] what the collector stored, read back from it and from the page's API")
            stored = _read_back(db, sent)
            return {"broker": url, "local_broker": local is not None, "db": db, "url": server.url, **stored,
                    "api_devices": _api_devices(server.url)}
        finally:
            server.stop()
    finally:
        if local is not None:
            local.close()


def _server(server_cls: Any, broker: str, db: str) -> Any:
    from ..fleet.server import ServerOptions

    return server_cls(ServerOptions(broker=broker, fleet=FLEET, db=db, http="127.0.0.1:0"))


def _run_agents(agent_cls: Any, ex: Path, url: str, stores: str, seconds: float) -> dict[str, int]:
    """Two agents side by side for ``seconds``; returns each one's last ``seq`` (what the store must hold)."""
    from ..agent.workload import replay
    from ..loading import load

    stop = threading.Event()
    agents, workers = [], []
    try:
        for i, device in enumerate(DEVICES):
            model = load(ex / "digits_mlp.onnx", threads=1)
            agent = agent_cls(model, broker=url, fleet=FLEET, device=device, interval_s=1.0,
                              store_dir=os.path.join(stores, device), model_version=f"1.{i}")
            agent.start()
            agents.append(agent)
            worker = threading.Thread(target=replay, args=(model, str(ex / "digits_mlp_test.npz"), 50.0, stop),
                                      daemon=True)
            worker.start()
            workers.append(worker)
        time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join(2)
        for a in agents:
            a.telemetry_now()
            a.wait_drained(5)
        return {a.device: a.outbox.last_seq("telemetry") for a in agents}
    finally:
        stop.set()
        for a in agents:
            a.stop()


def _read_back(db: str, sent: dict[str, int], timeout: float = 5.0) -> dict[str, Any]:
    """The devices and each one's first telemetry rows from the store, once it holds every message sent and
    the agents' goodbye."""
    from ..fleet.store import open_store

    store = open_store(db)
    try:
        end = time.monotonic() + timeout
        while True:  # the last messages and the agents' retained "offline" are on their way
            rows = {d: store.telemetry(FLEET, d) for d in sent}
            devices = [{k: dev.get(k) for k in ("id", "state", "model_name", "model_version", "last_seen", "last_seq")}
                       for dev in store.devices(FLEET)]
            offline = len(devices) == len(sent) and all(d["state"] == "offline" for d in devices)
            if (all(len(rows[d]) >= n for d, n in sent.items()) and offline) or time.monotonic() > end:
                break
            time.sleep(0.1)
        first = [_row(r) for d in sorted(rows) for r in rows[d][:3]]
        stored = {d: len(rows[d]) for d in rows}
    finally:
        store.close()
    return {"sent": sent, "stored": stored, "devices": devices, "first_rows": first}


def _api_devices(base: str) -> list[str] | str:
    """The device ids ``GET /api/devices`` answers with, or why it did not."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/api/devices", timeout=5) as resp:
            return sorted(d["id"] for d in json.loads(resp.read()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"the page's API did not answer: {exc}"


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("device", "seq", "ts", "received", "model_version", "count", "rate_per_s", "p95_ms",
                                  "max_psi", "temperature_c")}


def show(out: Any, r: dict[str, Any]) -> None:
    """The tour's result: the page's URL, the devices and the first telemetry rows."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if "skipped" in r:
        out.print(f"fleet: skipped ({escape(str(r['skipped']))})")
        return
    total = sum(r["stored"].values())
    out.print(f"fleet: {total} telemetry messages from {len(r['stored'])} agents stored in {r['db']} "
              f"(sent: {', '.join(f'{d} {n}' for d, n in r['sent'].items())}); the page was at {r['url']}", markup=False)
    devices = Table(title="devices", title_justify="left", box=box.SIMPLE)
    for col in ("device", "state", "model", "version", "last seq"):
        devices.add_column(col)
    for d in r["devices"]:
        devices.add_row(str(d["id"]), str(d["state"]), str(d["model_name"]), str(d["model_version"]), str(d["last_seq"]))
    out.print(devices)
    rows = Table(title="first telemetry rows", title_justify="left", box=box.SIMPLE)
    for col in ("device", "seq", "count", "rate/s", "p95 ms", "max PSI", "lag ms"):
        rows.add_column(col, justify="left" if col == "device" else "right")
    for x in r["first_rows"]:
        lag = x["received"] - x["ts"] if x["received"] is not None and x["ts"] is not None else None
        rows.add_row(str(x["device"]), str(x["seq"]), str(x["count"]), _num(x["rate_per_s"]), _num(x["p95_ms"]),
                     _num(x["max_psi"]), str(lag))
    out.print(rows)
    broker = "mqtt://localhost:1883" if r["local_broker"] else r["broker"]
    out.print(f"your own: edgeops fleet serve --broker {broker} --fleet {FLEET} --db fleet.db --http 127.0.0.1:8080 "
              "(agents with --fleet quickstart), then open http://127.0.0.1:8080/; docs/fleet.md scales it out",
              markup=False)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
