"""Deploy: the device's A/B model store and the flash transports that fill it.

* :class:`ModelStore` (``store.py``): two slots and an atomic ``active.json`` pointer on the
  device; install, switch, rollback, load the active model. Crash-safe at every step.
* :func:`flash` (``flash.py``): put a bundle on a store in a folder (a mounted SD card), over
  ssh, or over MQTT through the device agent's OTA state machine (``mqtt.py`` sends,
  ``edgeops.agent.ota`` receives), and activate it; a :class:`FlashResult` for every transport.

Importing this package is cheap: the bundle code (and its cryptography) loads on first install.
"""

from __future__ import annotations

from .flash import FlashError, FlashRefused, FlashResult, flash, parse_ssh_url
from .store import ModelStore, SlotInfo

__all__ = ["ModelStore", "SlotInfo", "flash", "parse_ssh_url", "FlashError", "FlashRefused", "FlashResult"]
