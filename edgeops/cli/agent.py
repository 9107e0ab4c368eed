"""``edgeops agent run|install-service``: the device agent as a daemon."""

from __future__ import annotations

import signal
import threading

import click

from ._output import console


@click.group()
def agent() -> None:
    """The device agent: telemetry, events and commands over MQTT."""


@agent.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="agent.toml")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (demos, tests).")
def run(config_path: str, duration: float | None) -> None:
    """Run the agent until SIGTERM/SIGINT (or --duration): publishes offline and exits 0 on a clean stop."""
    from ..agent import Agent, load_config

    cfg = load_config(config_path)
    a = Agent.from_config(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err = console(stderr=True)
    a.start()
    err.print(f"agent {cfg.fleet}/{cfg.device} -> {cfg.broker_url}, telemetry every {cfg.interval_s:g} s, "
              f"model {a.model_info['name']} {a.model_info['version']}, store {cfg.store_dir}")
    workload = None
    try:
        workload = _workload(a, cfg, stop)
        stop.wait(duration)
    finally:
        stop.set()
        if workload is not None:
            workload.join(2)
        a.stop()


def _workload(a, cfg, stop):  # noqa: ANN001, ANN202 - internal
    if not cfg.workload_data:
        return None
    from ..agent.workload import load_labels, replay

    labels = load_labels(cfg.workload_labels) if cfg.workload_labels else None  # a bad file stops the start
    t = threading.Thread(target=replay, name="edgeops-agent-workload", daemon=True,
                         args=(a.model, cfg.workload_data, cfg.workload_rate_hz, stop, lambda: a.model, labels))
    t.start()
    a.watched["workload"] = t  # telemetry reports it in health.threads
    return t


@agent.command("install-service")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="agent.toml")
@click.option("--output", default=None, help="Where to write the unit (default /etc/systemd/system/edgeops-agent.service).")
@click.option("--user", default=None, help="Run the agent as this user.")
def install_service(config_path: str, output: str | None, user: str | None) -> None:
    """Write a systemd unit for `edgeops agent run --config CONFIG`."""
    from ..agent.service import UNIT_PATH, install

    path = install(config_path, output=output or UNIT_PATH, user=user)
    name = path.rsplit("/", 1)[-1]
    click.echo(path)
    console(stderr=True).print(f"next: sudo systemctl daemon-reload && sudo systemctl enable --now {name}")
