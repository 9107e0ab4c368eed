"""``AgentOptions``: every setting of an :class:`~edgeops.agent.Agent`, in one frozen, documented object.

``Agent(model, AgentOptions(broker=..., fleet=...))`` and ``Agent(model, broker=..., fleet=...)``
are the same agent: the keywords build the options. :meth:`Agent.from_config` builds them from an
``agent.toml`` (:class:`~edgeops.agent.config.AgentConfig`) with :meth:`AgentOptions.from_config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import AgentConfig, OtaConfig

__all__ = ["AgentOptions"]


@dataclass(frozen=True)
class AgentOptions:
    """How an agent connects, names itself, reports and keeps its messages."""

    # -- the broker (ignored when the agent is given a transport) --
    broker: str | None = None
    """The MQTT broker's URL, ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS)."""
    username: str | None = None
    """The MQTT user name, with ``password``."""
    password: str | None = None
    """The MQTT password (the CLI and ``agent.toml`` also read it from a file or ``$EDGEOPS_MQTT_PASSWORD``)."""
    ca: str | None = None
    """With ``mqtts://``: the CA certificate (PEM) the broker's certificate must chain to."""
    cert: str | None = None
    """With ``mqtts://``: this device's client certificate (PEM), with ``key``."""
    key: str | None = None
    """The private key (PEM) of ``cert``."""
    keepalive: int = 30
    """Seconds between MQTT keepalives: a dead connection is noticed within 1.5 times this."""

    # -- who the agent is --
    fleet: str = "default"
    """The fleet: ``edgeops/<fleet>/<device>/`` is every topic's prefix (no '/', '+', '#' or spaces)."""
    device: str | None = None
    """The device id; default: the host name up to its first dot."""
    labels: dict[str, str] | None = None
    """Labels of this device (``{"ring": "canary", "site": "berlin"}``), sent in every telemetry and status
    message: the fleet side groups, filters and rolls out by them."""

    # -- what it reports --
    interval_s: float = 10.0
    """Seconds between telemetry messages."""
    model_name: str | None = None
    """The model's name in telemetry and status; default: the bundle's, else the file's stem."""
    model_version: str | None = None
    """The model's version; default: the bundle's, else the first 12 hex digits of its sha256."""
    profile: dict[str, Any] | str | os.PathLike[str] | None = None
    """The reference profile for drift and guardrail counts; default: ``NAME.profile.json`` next to the model."""
    shadow: str | None = None
    """A candidate model file or bundle to run in the shadow of the model (:mod:`edgeops.agent.shadow`)."""
    shadow_rate: float = 0.1
    """The share of the model's runs the shadow candidate also runs, in (0, 1]."""
    home_assistant: bool = False
    """Publish Home Assistant MQTT discovery on every connect."""

    # -- what it keeps on disk --
    store_dir: str = "/var/lib/edgeops"
    """The agent's folder: the outbox, the OTA state and the model store (``models/``)."""
    max_bytes: int = 32 * 1024 * 1024
    """The outbox's bound: past it the oldest messages are dropped (and counted)."""
    max_age_s: float = 7 * 86400
    """Messages older than this leave the outbox unsent (counted as dropped)."""

    # -- updates over the air --
    ota: OtaConfig | None = None
    """The ``[ota]`` settings; None: this agent takes no updates over MQTT."""

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> AgentOptions:
        """The options an ``agent.toml`` describes (its ``[model] path`` is the agent's model argument)."""
        return cls(broker=cfg.broker_url, fleet=cfg.fleet, device=cfg.device, store_dir=cfg.store_dir,
                   interval_s=cfg.interval_s, model_name=cfg.model_name, model_version=cfg.model_version,
                   home_assistant=cfg.home_assistant, username=cfg.username, password=cfg.password, ca=cfg.ca,
                   cert=cfg.cert, key=cfg.key, keepalive=cfg.keepalive, max_bytes=cfg.max_bytes,
                   max_age_s=cfg.max_age_s, ota=cfg.ota, labels=dict(cfg.labels) or None,
                   shadow=cfg.shadow, shadow_rate=cfg.shadow_rate)
