"""``edgeops bridge run``: the gateway between a microcontroller on a serial port and the fleet's broker."""

from __future__ import annotations

import signal
import threading

import click

from ._output import console

TRUST = ("Trust boundary: the gateway checks a bundle's signature against its --trusted-key files before "
         "anything reaches the MCU; the MCU has no keys and checks only each chunk's CRC-32 and the image's "
         "SHA-256. Anyone who can write to the serial line can flash the MCU: keep the gateway and the "
         "cable together.")


@click.group()
def bridge() -> None:
    """Microcontrollers in the fleet: the serial gateway of firmware_bridge."""


@bridge.command("run", help=f"""Publish the MCU on --serial to the fleet like any device, until SIGTERM/SIGINT.

\b
The device id comes from the MCU's HELLO. Telemetry, events, status (with last will) and command
replies go through the agent's durable outbox under edgeops/FLEET/DEVICE/; `edgeops flash BUNDLE
--broker URL --fleet F --device ID` updates the MCU's model through this gateway; the port is
reopened by itself after a cable pull or a reset.

{TRUST}""")
@click.option("--serial", "port", required=True,
              help="The MCU's port: /dev/ttyACM0, serial:///dev/ttyUSB0 or socket://HOST:PORT (the emulator).")
@click.option("--baud", type=int, default=115200, show_default=True, help="Line rate (ignored for socket://).")
@click.option("--broker", required=True, help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883.")
@click.option("--fleet", required=True, help="Fleet to publish the MCU in.")
@click.option("--store-dir", default="./edgeops-bridge", show_default=True,
              help="The outbox and OTA transfers, one folder per device id.")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Public key a bundle must be signed with (repeatable); with none, every flash is refused.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A device label (repeatable).")
@click.option("--username", default=None, help="MQTT user name.")
@click.option("--password", default=None, help="MQTT password.")
@click.option("--ca", default=None, type=click.Path(dir_okay=False), help="CA certificate for mqtts://.")
@click.option("--cert", default=None, type=click.Path(dir_okay=False), help="Client certificate.")
@click.option("--client-key", default=None, type=click.Path(dir_okay=False), help="Client key.")
@click.option("--hello-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the MCU's HELLO at start.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (demos, tests).")
def run(port: str, baud: int, broker: str, fleet: str, store_dir: str, trusted_keys: tuple[str, ...],
        labels: tuple[str, ...], username: str | None, password: str | None, ca: str | None, cert: str | None,
        client_key: str | None, hello_timeout: float, duration: float | None) -> None:
    from ..agent.config import check_id
    from ..bridge.gateway import Gateway, GatewayOptions
    from ..errors import UsageError

    pairs = {}
    for item in labels:
        if "=" not in item:
            raise UsageError(f"--label takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        pairs[k] = v
    gw = Gateway(GatewayOptions(port=port, broker=broker, fleet=check_id("fleet", fleet), baud=baud,
                                store_dir=store_dir, trusted_keys=trusted_keys, labels=pairs, username=username,
                                password=password, ca=ca, cert=cert, key=client_key, hello_timeout_s=hello_timeout))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gw.start()
    h = gw.hello
    assert h is not None
    console(stderr=True).print(f"bridge {port} -> {broker}: {fleet}/{h.device_id}, firmware {h.firmware_version}, "
                               f"model {h.model_name} {h.model_version}, "
                               f"{len(trusted_keys)} trusted key(s), store {store_dir}")
    try:
        stop.wait(duration)
    finally:
        gw.stop()
