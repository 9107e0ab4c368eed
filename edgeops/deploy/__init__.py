"""Deploy: the device's A/B model store and the flash transports that fill it.

* :class:`ModelStore` (``store.py``): two slots and an atomic ``active.json`` pointer on the
  device; install, switch, rollback, load the active model. Crash-safe at every step.
* :func:`flash` (``flash.py``): put a bundle on a store in a folder (a mounted SD card) or over
  ssh, and activate it. MQTT goes through the agent's OTA state machine (``edgeops.agent.ota``).

Importing this package is cheap: the bundle code (and its cryptography) loads on first install.
"""

from __future__ import annotations

from .flash import FlashError, FlashRefused, flash, parse_ssh_url
from .store import ModelStore, SlotInfo

__all__ = ["ModelStore", "SlotInfo", "flash", "parse_ssh_url", "FlashError", "FlashRefused"]
