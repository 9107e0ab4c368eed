"""``edgeops flash BUNDLE --to DIR|ssh://...`` or ``--broker URL --fleet F --device D``: ship and activate.

``--to`` installs into a store in a folder (a mounted SD card) or over ssh; ``--broker`` hands
the bundle to the device agent's OTA state machine over MQTT. Both are :func:`edgeops.deploy.flash`;
this command parses the options and renders its :class:`~edgeops.deploy.FlashResult` or its error.

Exit codes: 0 only when the device activated (committed) the new version; 1 when it refused
the bundle (verification failed) or rolled it back; 2 for bad usage or input, and for an update
that did not happen for another reason (ssh could not connect, no answer from the device, a
device-side failure). With ``--json`` the result is printed on stdout in every one of these cases
where the device answered.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from ..errors import UsageError
from ._output import console, emit_json

DEFAULT_TIMEOUT = 300.0  # seconds; deploy.flash's own default


@click.command()
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--to", "to", default=None, help="A store folder (mounted SD card) or ssh://user@host[:port]/path.")
@click.option("--store-path", default=None,
              help="The store inside --to (e.g. var/lib/edgeops/models on an SD card's root file system), "
                   "or the remote store when the ssh URL has no path.")
@click.option("--broker", default=None, help="MQTT broker URL: flash through the device agent (needs --fleet, --device).")
@click.option("--fleet", default=None, help="Fleet of the device (with --broker).")
@click.option("--device", default=None, help="Device id (with --broker).")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for the device's verdict (with --broker).")
@click.option("--trusted-key", "--pubkey", "trusted_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Public key the bundle must be signed with (repeatable), checked here before anything is sent.")
@click.option("--remote-edgeops", default="edgeops", show_default=True,
              help="The edgeops command on the device (ssh), e.g. /opt/edgeops/bin/edgeops.")
@click.option("--username", default=None, help="MQTT user name (with --broker).")
@click.option("--password", default=None, help="MQTT password (with --broker; else --password-file, else "
                                                "$EDGEOPS_MQTT_PASSWORD).")
@click.option("--password-file", default=None, type=click.Path(dir_okay=False),
              help="Read the MQTT password from this file, its first line (with --broker).")
@click.option("--ca", default=None, type=click.Path(dir_okay=False), help="CA certificate for mqtts:// (with --broker).")
@click.option("--cert", default=None, type=click.Path(dir_okay=False), help="Client certificate (with --broker).")
@click.option("--client-key", default=None, type=click.Path(dir_okay=False), help="Client key (with --broker).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def flash(bundle: str, to: str | None, store_path: str | None, broker: str | None, fleet: str | None,
          device: str | None, timeout: float | None, trusted_keys: tuple[str, ...], remote_edgeops: str,
          username: str | None, password: str | None, password_file: str | None, ca: str | None, cert: str | None,
          client_key: str | None,
          as_json: bool) -> None:
    """Put BUNDLE on a device and activate it: --to DIR, --to ssh://..., or --broker URL (MQTT).

    A microcontroller behind `edgeops bridge run` takes --broker too: its gateway checks the bundle's
    signature against the gateway's trusted keys (the MCU only checks hashes), converts the model for
    the MCU and streams it over serial (docs/bridge.md).
    """
    from ..deploy import FlashError, FlashRefused
    from ..deploy import flash as do_flash

    keys = list(trusted_keys) or None
    if (to is None) == (broker is None):
        raise UsageError("give exactly one of --to DIR|ssh://user@host/path and --broker mqtt://HOST")
    if broker is not None:
        if not fleet or not device:
            raise UsageError("--broker needs --fleet FLEET and --device DEVICE")
        from ..agent.config import broker_password

        auth = {"username": username, "password": broker_password(password, password_file), "ca": ca, "cert": cert,
                "key": client_key}
        try:
            result = do_flash(bundle, broker, fleet=fleet, device=device, trusted_keys=keys,
                              timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                              mqtt_auth={k: v for k, v in auth.items() if v is not None})
        except (FlashError, FlashRefused) as exc:
            if as_json and exc.result is not None:  # the device answered: its answer, then the error
                emit_json(exc.result.to_dict())
            raise
    else:
        assert to is not None
        timeout_given = click.get_current_context().get_parameter_source("timeout") != ParameterSource.DEFAULT
        if fleet or device or timeout_given:
            raise UsageError("--fleet, --device and --timeout go with --broker, not --to")
        result = do_flash(bundle, to, store_path=store_path, trusted_keys=keys, remote_edgeops=remote_edgeops)
    if as_json:
        emit_json(result.to_dict())
    elif result.transport == "mqtt":
        console(stderr=True).print(f"{result.target} committed {result.version}")
    else:
        console(stderr=True).print(f"flashed {result.name} {result.version} to {to}: active in slot {result.slot}")
