"""``edgeops rollout start|status|pause|resume|abort|list``: staged model rollouts run by ``edgeops fleet serve``.

The commands talk to the server's HTTP API (``--server URL``, default ``$EDGEOPS_SERVER`` or
``http://127.0.0.1:8080``); the controller and its state live there (:mod:`edgeops.fleet.rollout`)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from ._output import console, emit_json

_server = click.option("--server", default=None,
                       help="The fleet server's URL (default: $EDGEOPS_SERVER or http://127.0.0.1:8080).")
_json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _url(server: str | None) -> str:
    return (server or os.environ.get("EDGEOPS_SERVER") or "http://127.0.0.1:8080").rstrip("/")


def _call(server: str | None, method: str, path: str, body: bytes | None = None,
          ctype: str = "application/json") -> Any:
    import urllib.error
    import urllib.request

    url = _url(server) + path
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error")
        except Exception:  # noqa: BLE001 - whatever the body, the status says enough
            msg = None
        raise click.ClickException(f"{method} {url}: {exc.code} {msg or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach the fleet server at {_url(server)} ({exc}); is `edgeops fleet "
                                   "serve` running? (--server or $EDGEOPS_SERVER)") from None


@click.group()
def rollout() -> None:
    """Ship a bundle to a fleet in stages, with gates, and roll back by itself."""


@rollout.command("start")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--fleet", default=None, help="The fleet (checked against the server's).")
@click.option("--stages", default="1,10,50,100", show_default=True,
              help="Percentages (1,10,50,100) or ring labels (canary,stable).")
@click.option("--soak", default="10m", show_default=True, help="Soak per stage: 30s, 10m, 1h or seconds.")
@click.option("--gate", "gates", multiple=True, help="A gate, e.g. 'p95_ratio<=1.2' (repeatable; defaults apply).")
@click.option("--select", "selects", multiple=True, help="Only devices with this label: label=value (repeatable).")
@click.option("--shadow", is_flag=True, help="Install the bundle as the devices' shadow model, not the active one.")
@click.option("--shadow-rate", type=float, default=0.1, show_default=True, help="Share of inputs the shadow runs.")
@click.option("--ab", type=float, default=None,
              help="A/B: this percentage of the fleet gets the new version and keeps it until the accuracy gate "
                   "(default accuracy_drop_ci_upper<=2pt) decides; then the whole fleet does. Needs labels (feedback).")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=8, show_default=True)
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True)
@click.option("--flash-timeout", type=float, default=120.0, show_default=True, help="Seconds per device flash.")
@click.option("--wait", "wait", is_flag=True, help="Wait for the end: exit 0 on completed, 1 on halted/rolled_back.")
@_server
@_json_opt
def start(bundle: str, fleet: str | None, stages: str, soak: str, gates: tuple[str, ...], selects: tuple[str, ...],
          shadow: bool, shadow_rate: float, ab: float | None, concurrency: int, retries: int, flash_timeout: float,
          wait: bool, server: str | None, as_json: bool) -> None:
    """Upload BUNDLE and start a rollout; prints its id and returns (unless --wait)."""
    from ..fleet.rollout import parse_stages
    from ..fleet.rollout_gates import parse_gates

    parse_stages(stages)
    parse_gates(list(gates))  # a bad gate is refused here, before the upload
    select = {}
    for s in selects:
        k, sep, v = s.partition("=")
        if not sep or not k:
            raise click.UsageError(f"--select {s!r}: write label=value")
        select[k] = v
    with open(bundle, "rb") as fh:
        up = _call(server, "POST", "/api/bundles", fh.read(), "application/octet-stream")
    spec = {"bundle": up["sha256"], "version": up.get("version"), "name": up.get("name"), "stages": stages,
            "soak_s": _seconds(soak), "gates": list(gates), "select": select,
            "shadow": shadow_rate if shadow else None, "ab": ab, "concurrency": concurrency, "retries": retries,
            "flash_timeout_s": flash_timeout}
    got = _call(server, "POST", "/api/rollouts", json.dumps(spec).encode())
    if as_json and not wait:
        emit_json({"id": got["id"]})
    elif not wait:
        click.echo(got["id"])
    if wait:
        st = _wait(server, got["id"], as_json)
        sys.exit(0 if st["state"] == "completed" else 1)


def _seconds(text: str) -> float:
    t = text.strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600}.get(t[-1:], None)
    try:
        return float(t[:-1]) * mult if mult else float(t)
    except ValueError:
        raise click.UsageError(f"--soak {text!r}: write 30s, 10m, 1h or a number of seconds") from None


def _wait(server: str | None, rid: str, as_json: bool) -> dict[str, Any]:
    err = console(stderr=True)
    last = None
    while True:
        st = _call(server, "GET", f"/api/rollouts/{rid}")
        now = (st["state"], st["stage"], st["phase"])
        if now != last and not as_json:
            err.print(f"rollout {rid}: {st['state']} stage {st['stage'] + 1}/{len(st['stages'])} {st['phase']}")
            last = now
        if st["state"] in ("completed", "rolled_back", "aborted"):
            break
        time.sleep(1.0)
    if as_json:
        emit_json(st)
    else:
        click.echo(f"{rid} {st['state']}" + (f": {st['reason']}" if st.get("reason") else ""))
    return st


@rollout.command("status")
@click.argument("rollout_id")
@click.option("--wait", "wait", is_flag=True, help="Wait for the end: exit 0 on completed, 1 otherwise.")
@_server
@_json_opt
def status(rollout_id: str, wait: bool, server: str | None, as_json: bool) -> None:
    """A rollout: state, stage, gates, reason, and per device its version and OTA state."""
    if wait:
        st = _wait(server, rollout_id, as_json)
        sys.exit(0 if st["state"] == "completed" else 1)
    st = _call(server, "GET", f"/api/rollouts/{rollout_id}")
    if as_json:
        emit_json(st)
        return
    c = console()
    c.print(f"rollout {st['id']} ({st['version']}): [bold]{st['state']}[/bold], stage {st['stage'] + 1}/"
            f"{len(st['stages'])} ({st['stage_value']}), {st['phase']}")
    if st.get("reason"):
        c.print(f"reason: {st['reason']}")
    for g in st.get("gates") or []:
        c.print(f"  gate {g['text']}: {g['value']} {'ok' if g['ok'] else 'no data' if g['ok'] is None else 'FAIL'}")
    for d in st["devices"]:
        c.print(f"  {d['device']}: stage {d['stage'] + 1} {d['ota_state']} version {d['version']}")


def _action(name: str) -> Any:
    @rollout.command(name)
    @click.argument("rollout_id")
    @_server
    @_json_opt
    def cmd(rollout_id: str, server: str | None, as_json: bool) -> None:
        got = _call(server, "POST", f"/api/rollouts/{rollout_id}/{name}", b"{}")
        emit_json(got) if as_json else click.echo(f"{got['id']} {got['state']}")

    cmd.__doc__ = f"{name.capitalize()} a rollout."
    return cmd


pause, resume, abort = _action("pause"), _action("resume"), _action("abort")


@rollout.command("list")
@_server
@_json_opt
def list_(server: str | None, as_json: bool) -> None:
    """The fleet's rollouts, newest first."""
    rows = _call(server, "GET", "/api/rollouts")
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['state']:<11} stage {r['stage'] + 1}/{len(r['stages'])}  {r['version']}  "
                   f"{r.get('reason') or ''}")
