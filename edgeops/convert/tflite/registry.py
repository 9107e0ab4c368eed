"""The registry of ONNX -> TFLite op converters.

A converter is a function ``convert(node, ctx)`` registered with ``@converter("OpType", ...)``
into one dict, ``REGISTRY``. Its optional ``check(node, ctx) -> str | None`` returns the reason a
particular node cannot be converted (an attribute value TFLite has no kernel for), so the exporter
can collect every unsupported node of a model into one report before writing anything. A converter
may still raise :class:`Unsupported` while converting, with the same effect.

The op modules import this one to register themselves, so this module imports none of them:
:mod:`.catalog` does (``load_all()``, ``supported_ops_table()``, the markdown table in
``docs/tflite_ops.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ConvertFn = Callable[[Any, Any], None]
CheckFn = Callable[[Any, Any], "str | None"]


class Unsupported(Exception):
    """Raised by a converter (or returned by a check) for a node TFLite cannot express."""

    def __init__(self, reason: str, code: str = "unsupported-attribute"):
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True)
class OpSpec:
    op_type: str
    convert: ConvertFn
    check: CheckFn | None
    tflite_ops: tuple[str, ...]  # the TFLite builtins it emits (for the docs)
    notes: str


REGISTRY: dict[str, OpSpec] = {}


def converter(*op_types: str, tflite: tuple[str, ...] | str = (), notes: str = "",
              check: CheckFn | None = None) -> Callable[[ConvertFn], ConvertFn]:
    """Register ``fn`` as the converter of each of ``op_types``."""
    emitted = (tflite,) if isinstance(tflite, str) else tuple(tflite)

    def register(fn: ConvertFn) -> ConvertFn:
        for op_type in op_types:
            if op_type in REGISTRY:
                raise ValueError(f"two converters for {op_type}")
            REGISTRY[op_type] = OpSpec(op_type, fn, check, emitted, notes)
        return fn

    return register
