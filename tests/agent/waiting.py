"""``wait_until``: poll a condition until it holds or a deadline passes (the agent's tests wait on
real brokers and threads, never on fixed sleeps alone)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, *, step: float = 0.02,
               tolerate: tuple[type[BaseException], ...] = ()) -> bool:
    """True as soon as ``predicate()`` is truthy, False after ``timeout`` seconds; exceptions of the
    ``tolerate`` types (a file not written yet) count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except tolerate:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
