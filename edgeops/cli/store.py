"""``edgeops store install|status|rollback``: the device's A/B model store (run on the device).

``install`` verifies a bundle and extracts it into the inactive slot (``--activate`` then
switches to it); ``status`` shows both slots; ``rollback`` switches back to the previous slot,
or repairs a damaged pointer. Exit codes: 0 ok, 1 the bundle failed verification, 2 bad usage.
"""

from __future__ import annotations

from typing import Any

import click

from ._output import console, emit_json

_store_option = click.option("--store", "store_dir", required=True, envvar="EDGEOPS_STORE", show_envvar=True,
                             type=click.Path(file_okay=False), help="The store's folder on the device.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


@click.group()
def store() -> None:
    """The device's model store: two slots, an atomic pointer, rollback."""


@store.command("install")
@click.argument("bundle", type=click.Path(dir_okay=False))
@_store_option
@click.option("--trusted-key", "--pubkey", "trusted_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Public key the bundle must be signed with (repeatable); implies a signature is required.")
@click.option("--require-signature", is_flag=True, help="Refuse unsigned bundles.")
@click.option("--activate", is_flag=True, help="Switch to the new slot once it is installed.")
@_json_option
def install(bundle: str, store_dir: str, trusted_keys: tuple[str, ...], require_signature: bool,
            activate: bool, as_json: bool) -> None:
    """Verify BUNDLE and extract it into the inactive slot; the active model is never touched."""
    from ..deploy import ModelStore

    s = ModelStore(store_dir)
    keys = list(trusted_keys) or None
    info = s.install(bundle, trusted_keys=keys, require_signature=require_signature or keys is not None)
    if activate:
        s.switch(info.slot)
    data = {"store": s.root, **info.to_dict(), "activated": activate}
    if as_json:
        emit_json(data)
        return
    out = console(stderr=True)
    out.print(f"installed {info.name} {info.version} into slot {info.slot} of {s.root}")
    if activate:
        out.print(f"active: slot {info.slot} ({info.name} {info.version})")
    else:
        out.print(f"slot {info.slot} is staged, not active; rerun with --activate to switch to it")


@store.command("status")
@_store_option
@click.option("--verify", is_flag=True, help="Also check each slot's model against its sha256.")
@_json_option
def status(store_dir: str, verify: bool, as_json: bool) -> None:
    """Show the active and previous slots: name, version, bundle id, installed time."""
    from ..deploy import ModelStore

    s = ModelStore(store_dir)
    data = s.status()
    if verify:
        data["verified"] = {slot: s.slot(slot, verify=True) is not None for slot in ("a", "b")}
    if as_json:
        emit_json(data)
        return
    _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    active = (data["active"] or {}).get("slot")
    previous = (data["previous"] or {}).get("slot")
    out.print(f"[bold]{data['store']}[/bold]  switched {data['switched'] or 'never'}")
    table = Table("slot", "role", "name", "version", "bundle id", "installed", box=None)
    for slot, info in data["slots"].items():
        role = "active" if slot == active else "previous" if slot == previous else ""
        if info is None:
            table.add_row(slot, role, "(empty)", "", "", "")
        else:
            table.add_row(slot, role, str(info["name"]), str(info["version"]), str(info["bundle_id"]),
                          info["installed"])
    out.print(table)


@store.command("rollback")
@_store_option
@_json_option
def rollback(store_dir: str, as_json: bool) -> None:
    """Switch back to the previous slot (or point a damaged pointer at the newest complete slot)."""
    from ..deploy import ModelStore

    s = ModelStore(store_dir)
    info = s.rollback()
    data = {"store": s.root, **info.to_dict()}
    if as_json:
        emit_json(data)
        return
    console(stderr=True).print(f"active: slot {info.slot} ({info.name} {info.version})")
