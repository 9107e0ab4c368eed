"""The device agent: telemetry, events and commands over MQTT, with a durable outbox.

``edgeops.Agent`` (this package's :class:`~edgeops.agent.agent.Agent`) runs next to a model in
the user's process; ``edgeops agent run --config agent.toml`` is the daemon form.
"""

from __future__ import annotations

from .agent import Agent
from .config import AgentConfig, load_config
from .options import AgentOptions

__all__ = ["Agent", "AgentConfig", "AgentOptions", "load_config"]
