"""The backend seam: one small class per inference engine, with one main method.

A backend knows its ``inputs``/``outputs`` (:class:`~edgeops.runtime.TensorSpec`),
the ``providers`` it ended up using, and ``run(feeds) -> list of arrays`` in the
order of ``outputs``. ``Model`` does the checking, statistics and guardrails;
a backend only runs already-validated inputs. :class:`FunctionBackend` wraps a
plain Python function and is the test double for code that takes a ``Model``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from ..spec import TensorSpec


class Backend(Protocol):
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    providers: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class FunctionBackend:
    """A backend around ``fn(**feeds) -> dict or sequence of arrays``; for tests and demos."""

    name = "function"

    def __init__(self, fn: Callable[..., object], inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self.fn = fn
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.providers = ["python"]
        self.version = "n/a"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.fn(**feeds)
        if isinstance(result, dict):
            return [np.asarray(result[o.name]) for o in self.outputs]
        if isinstance(result, np.ndarray):
            return [result]
        if not isinstance(result, Iterable):
            raise TypeError(f"the function returned a {type(result).__name__}, not a dict or a sequence of arrays")
        return [np.asarray(r) for r in result]
