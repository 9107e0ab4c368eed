"""What a model file says about itself: the result types shared by the ONNX and TFLite readers.

Also the one way the readers fail: :func:`format_error` builds the
:class:`~edgeops.errors.ModelFormatError` whose message names the file, says what is
wrong with it and what to do next.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgeops.errors import ModelFormatError

__all__ = ["TensorInfo", "ModelSummary", "format_error", "op_histogram", "REEXPORT"]

REEXPORT = "re-export the model or check the copy"


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the file declares it.

    ``shape`` is a tuple of ints with ``None`` for dynamic dimensions, or ``None`` when
    the file does not say (unknown rank). ``dtype`` is a numpy dtype name ("float32",
    "int8", ...; ml_dtypes names such as "bfloat16" for types numpy lacks).
    """

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str

    def to_dict(self) -> dict:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "shape": shape, "dtype": self.dtype}


@dataclass(frozen=True)
class ModelSummary:
    """Format, signature, op histogram, versions and metadata of one model file."""

    format: str
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: dict[str, int]
    versions: dict[str, object]
    producer: str | None
    metadata: dict[str, str]

    def to_dict(self) -> dict:
        """A JSON-ready dict (lists for tuples, ``None`` for unknown dims)."""
        return {
            "format": self.format,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": dict(self.ops),
            "versions": _plain(self.versions),
            "producer": self.producer,
            "metadata": dict(self.metadata),
        }


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def op_histogram(names: list[str]) -> dict[str, int]:
    """Count op names, most frequent first; ties keep the order of first appearance."""
    counts = Counter(names)
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def format_error(kind: str, what: str, source: str | None, todo: str = REEXPORT) -> ModelFormatError:
    """``<file>: not a valid <kind> model: <what>; <todo>``."""
    where = f"{source}: " if source else ""
    return ModelFormatError(f"{where}not a valid {kind} model: {what}; {todo}")
