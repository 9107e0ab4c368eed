"""``StrEnum``: enum members that are their string values (states, events, outcomes on the wire).

``enum.StrEnum`` on Python 3.11+, and on 3.10 the same small class: a member compares, hashes,
formats and serialises to JSON as its value, so ``State.IDLE == "idle"`` and a persisted or
published value is the plain string either way.
"""

from __future__ import annotations

import enum
import sys

__all__ = ["StrEnum"]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, enum.Enum):
        """``enum.StrEnum`` of Python 3.11: ``str(member)`` and ``format(member)`` are the value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str.__format__(str(self.value), spec)
