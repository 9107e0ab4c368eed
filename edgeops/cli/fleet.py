"""``edgeops fleet status|watch|serve``: the devices of a fleet as they report over MQTT, and the fleet server.

``status --db DB`` reads the fleet server's store instead of listening to the broker."""

from __future__ import annotations

import time
from typing import Any

import click

from ._output import console, emit_json

_broker = click.option("--broker", required=True, help="mqtt://host:port or mqtts://...")
_fleet = click.option("--fleet", required=True, help="Fleet name.")
_tls = [click.option("--ca", default=None), click.option("--cert", default=None), click.option("--key", default=None),
        click.option("--username", default=None),
        click.option("--password", default=None, help="MQTT password (visible to other users in the process list: "
                                                        "prefer --password-file or $EDGEOPS_MQTT_PASSWORD)."),
        click.option("--password-file", default=None, type=click.Path(dir_okay=False),
                     help="Read the MQTT password from this file (its first line).")]


def _tls_options(f: Any) -> Any:
    for opt in reversed(_tls):
        f = opt(f)
    return f


def _connection(tls: dict[str, Any]) -> dict[str, Any]:
    """The transport's keyword arguments: the password from --password, --password-file or the environment."""
    from ..agent.config import broker_password

    tls = dict(tls)
    tls["password"] = broker_password(tls.get("password"), tls.pop("password_file", None))
    return {k: v for k, v in tls.items() if v}


@click.group()
def fleet() -> None:
    """What the devices of a fleet report."""


@fleet.command("status")
@click.option("--broker", default=None, help="mqtt://host:port or mqtts://... (listen to the broker).")
@click.option("--db", default=None, help="Read the fleet server's store instead: a sqlite file or postgresql://...")
@_fleet
@click.option("--wait", "wait_s", type=float, default=3.0, show_default=True,
              help="Seconds to listen (telemetry is not retained; wait at least one interval to see it).")
@_tls_options
@click.option("--json", "as_json", is_flag=True)
def status(broker: str | None, db: str | None, fleet: str, wait_s: float, as_json: bool, **tls: Any) -> None:
    """Each device: online or offline, model version, age of its last telemetry and its key numbers."""
    if (broker is None) == (db is None):
        raise click.UsageError("give --broker (listen to the broker) or --db (read the fleet server's store)")
    if db is not None:
        import os

        from ..fleet.status import from_store
        from ..fleet.store import open_store

        if "://" not in db and not os.path.exists(db):
            raise click.UsageError(f"--db {db}: no such file (the store edgeops fleet serve --db writes)")
        with open_store(db) as store:
            rows = from_store(store, fleet)
    else:
        from ..fleet.status import collect

        assert broker is not None
        rows = collect(broker, fleet, wait_s=wait_s, **_connection(tls)).snapshot()
    if as_json:
        emit_json({"fleet": fleet, "devices": rows})
        return
    console().print(_table(fleet, rows))


@fleet.command("watch")
@_broker
@_fleet
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@_tls_options
def watch(broker: str, fleet: str, duration: float | None, **tls: Any) -> None:
    """A live table of the fleet (Ctrl-C to stop)."""
    from rich.live import Live

    from ..fleet.status import FleetView, listen

    view = FleetView(fleet)
    t = listen(broker, view, **_connection(tls))
    end = None if duration is None else time.monotonic() + duration
    try:
        with Live(_table(fleet, view.snapshot()), console=console(), refresh_per_second=2) as live:
            while end is None or time.monotonic() < end:
                time.sleep(0.5)
                live.update(_table(fleet, view.snapshot()))
    except KeyboardInterrupt:
        pass
    finally:
        t.stop()


@fleet.command("serve")
@_broker
@_fleet
@click.option("--db", default="fleet.db", show_default=True,
              help="The store: a sqlite file (WAL), sqlite:///path or postgresql://user@host:port/db.")
@click.option("--http", default="127.0.0.1:8080", show_default=True,
              help="host:port of the page and JSON API (port 0: a free one; '' for none).")
@click.option("--rules", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Alert rules (TOML) instead of, or added to, the default rules.")
@click.option("--webhook", default=None, help="POST every alert transition (JSON) to this URL.")
@click.option("--group", default=None,
              help="Share the stream with the other collectors of this group (MQTT 5 shared subscription; "
                   "use PostgreSQL as their shared store and a distinct --client-id each).")
@click.option("--retention-days", type=float, default=30.0, show_default=True,
              help="Remove telemetry and events older than this.")
@click.option("--client-id", default=None,
              help="The collector's MQTT client id (its persistent session); default: fleet, group and host name.")
@click.option("--batch-max", type=click.IntRange(1, 100000), default=500, show_default=True,
              help="Most messages per transaction.")
@_tls_options
def serve(broker: str, fleet: str, db: str, http: str, rules: str | None, webhook: str | None, group: str | None,
          retention_days: float, client_id: str | None, batch_max: int, **tls: Any) -> None:
    """Collect, store, alert and serve the fleet's page until SIGINT or SIGTERM.

    Every message is acknowledged to the broker only after it is committed to the store, so a crash
    or restart loses nothing (the broker keeps the collector's session), and a message stored twice
    is ignored by its id."""
    import signal
    import threading

    from ..fleet.server import FleetServer, ServerOptions

    options = ServerOptions(broker=broker, fleet=fleet, db=db, http=http or None, rules=rules, webhook=webhook,
                            group=group, retention_days=retention_days, client_id=client_id, batch_max=batch_max,
                            **_connection(tls))
    server = FleetServer(options)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    err = console(stderr=True)
    server.start()
    try:
        ready = server.wait_ready(10)
        where = f"{server.store.kind} {_safe_db(db)}"
        err.print(f"edgeops fleet serve: fleet {fleet}, broker {broker}, store {where}"
                  f"{', group ' + group if group else ''}, client id {server.collector.client_id}")
        if not ready:
            err.print(f"[yellow]not subscribed yet ({server.collector.last_error or 'no answer from the broker'}); "
                      "retrying in the background[/yellow]")
        else:
            err.print("collecting (subscribed)")
        if server.url:
            err.print(f"page and API: {server.url}/")
        done.wait()
    finally:
        err.print("edgeops fleet serve: stopping (writing what is queued)")
        server.stop()
        if server.collector is not None:
            st = server.collector.stats()
            err.print("edgeops fleet serve: " + ", ".join(f"{k} {st[k]}" for k in (
                "received", "redelivered", "stored", "duplicates", "malformed", "rejected", "batches")) +
                f", lag p50/p95 {st['lag_ms']['p50']}/{st['lag_ms']['p95']} ms")


def _safe_db(db: str) -> str:
    """The --db without a password."""
    from urllib.parse import urlsplit

    if "://" not in db:
        return db
    u = urlsplit(db)
    return f"{u.scheme}://{u.username + '@' if u.username else ''}{u.hostname or ''}{':' + str(u.port) if u.port else ''}{u.path}"


def _table(fleet: str, rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("device", "state", "model", "telemetry age s", "seq", "rate/s", "p95 ms", "errors", "max PSI",
                  "CPU %", "temp °C", "outbox", title=f"fleet {fleet}: {len(rows)} device(s)")

    def f(v: Any, fmt: str = "{:.3g}") -> str:
        return "" if v is None else fmt.format(v) if isinstance(v, float) else str(v)

    for r in rows:
        state = {"online": "[green]online[/green]", "offline": "[red]offline[/red]"}.get(r["state"], r["state"])
        m = r["model"] or {}
        table.add_row(r["device"], state, f"{m.get('name', '')} {m.get('version', '')}".strip(),
                      f(r["telemetry_age_s"]), f(r["seq"]), f(r["rate_per_s"]), f(r["p95_ms"]), f(r["errors"]),
                      f(r["max_psi"]), f(r["cpu_percent"]), f(r["temperature_c"]), f(r["outbox_pending"]))
    return table
