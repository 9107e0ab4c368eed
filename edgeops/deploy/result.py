"""What a flash did, and how it failed: one result type and two errors for every transport (dir, ssh,
MQTT). Its own module so that :mod:`edgeops.deploy.flash` (the dispatcher) and the transports it
dispatches to (:mod:`edgeops.deploy.mqtt`) both import it without importing each other."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckFailed, EdgeOpsError

__all__ = ["FlashError", "FlashRefused", "FlashResult"]


@dataclass(frozen=True)
class FlashResult(Mapping[str, Any]):
    """What :func:`flash` did, one type for every transport.

    It reads as a mapping too (``result["version"]``): the :attr:`details`, which are what
    ``edgeops flash --json`` prints.
    """

    transport: str  # "dir", "ssh" or "mqtt"
    target: str  # the store folder, the ssh host, or "<fleet>/<device>"
    outcome: str  # "committed" (active and kept), "installed" (activate=False), or the device's MQTT verdict
    name: str | None  # the bundle's model name (None over MQTT: the device's result does not say)
    version: str | None  # the bundle's version
    slot: str | None  # the store slot it went into (None over MQTT)
    reason: str = ""  # why, when the outcome is not "committed"
    details: Mapping[str, Any] = field(default_factory=dict)  # the transport's whole answer (JSON-ready)

    @property
    def activated(self) -> bool:
        """The device runs the new model now."""
        return self.outcome == "committed"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.details)

    def __getitem__(self, key: str) -> Any:
        return self.details[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.details)

    def __len__(self) -> int:
        return len(self.details)


class FlashError(EdgeOpsError):
    """The transport failed: ssh/scp could not connect, copy or run the remote command, or an update
    over MQTT did not happen (exit 2). ``result``: the device's answer, where it gave one."""

    def __init__(self, message: str, result: FlashResult | None = None):
        super().__init__(message)
        self.result = result


class FlashRefused(CheckFailed):
    """The device refused the bundle, did not activate it, or rolled it back (exit 1). ``result``: the
    device's answer, where it gave one."""

    def __init__(self, message: str, result: FlashResult | None = None):
        super().__init__(message)
        self.result = result
