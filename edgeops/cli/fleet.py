"""``edgeops fleet status|watch``: the devices of a fleet as they report over MQTT."""

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
@_broker
@_fleet
@click.option("--wait", "wait_s", type=float, default=3.0, show_default=True,
              help="Seconds to listen (telemetry is not retained; wait at least one interval to see it).")
@_tls_options
@click.option("--json", "as_json", is_flag=True)
def status(broker: str, fleet: str, wait_s: float, as_json: bool, **tls: Any) -> None:
    """Each device: online or offline, model version, age of its last telemetry and its key numbers."""
    from ..fleet.status import collect

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
