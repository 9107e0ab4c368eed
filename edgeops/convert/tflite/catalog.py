"""The complete registry: importing this module imports every op family in ``ops/`` (each registers
its converters into :data:`.registry.REGISTRY`), so the registry itself never imports its users.

``supported_ops_table()`` renders the registry (and, when given, node-test results) as the
markdown table in ``docs/tflite_ops.md``.
"""

from __future__ import annotations

from . import ops  # noqa: F401  (registers every converter)
from .registry import REGISTRY, OpSpec

__all__ = ["load_all", "supported_ops_table"]


def load_all() -> dict[str, OpSpec]:
    """The registry with every converter module imported (this module's import did that)."""
    return REGISTRY


def supported_ops_table(node_tests: dict[str, tuple[int, int]] | None = None) -> str:
    """A markdown table of the supported ONNX ops; ``node_tests`` maps op type to (passed, run)."""
    load_all()
    rows = ["| ONNX op | TFLite ops | onnx node tests passed | notes |", "| --- | --- | --- | --- |"]
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        result = "-"
        if node_tests is not None and name in node_tests:
            passed, run = node_tests[name]
            result = f"{passed}/{run}"
        rows.append(f"| {name} | {', '.join(spec.tflite_ops) or '(folded)'} | {result} | {spec.notes} |")
    return "\n".join(rows) + "\n"
