"""``edgeops agent install-service``: a systemd unit that runs the agent daemon and restarts it."""

from __future__ import annotations

import os
import shlex
import sys

from .._io import atomic_write

UNIT_PATH = "/etc/systemd/system/edgeops-agent.service"


def unit_text(config: str, *, user: str | None = None, python: str | None = None) -> str:
    config = os.path.abspath(config)
    exe = shlex.join([python or sys.executable, "-m", "edgeops", "agent", "run", "--config", config])
    lines = [
        "[Unit]",
        "Description=edgeops device agent (telemetry, commands, model health over MQTT)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exe}",
        f"WorkingDirectory={os.path.dirname(config)}",
        "Restart=always",
        "RestartSec=5",
        "# SIGTERM: the agent publishes its offline status and stops cleanly; what is queued stays in the outbox",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if user:
        lines.append(f"User={user}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def install(config: str, *, output: str = UNIT_PATH, user: str | None = None) -> str:
    from .config import load_config

    load_config(config)  # refuse to install a unit whose config would not start
    atomic_write(output, unit_text(config, user=user).encode())
    return output
