"""Option choices read from the code that defines them, so a value added there is one the command line takes.

A command's choices often live in a module that is heavy to import (``edgeops.validate``, ``edgeops.convert``)
while ``edgeops agent`` on a device must start without them. :class:`CodeChoice` is a ``click.Choice`` that
imports its values the first time click needs them: for ``--help`` or to parse the option, not at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import click


class CodeChoice(click.Choice):
    """``click.Choice`` over the values of ``module.NAME`` (a tuple, list or dict's keys), imported when first read."""

    def __init__(self, module: str, name: str, case_sensitive: bool = True) -> None:
        self._where = (module, name)
        self._values: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:
        if self._values is None:
            module, name = self._where
            values: Iterable[str] = getattr(importlib.import_module(module), name)
            self._values = tuple(values)
        return self._values

    @choices.setter
    def choices(self, values: Any) -> None:  # click.Choice.__init__ and copies assign it
        self._values = tuple(values)
