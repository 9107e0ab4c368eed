"""edgeops: take a trained model to a fleet of edge devices and keep it healthy there.

The public surface is small::

    import edgeops
    model = edgeops.load("model.onnx")          # or .tflite
    out = model.run({"pixels": x})             # {output name: array}
    model.stats.snapshot()                     # latency percentiles, counts

``import edgeops`` stays cheap: numpy and the standard library only. Runtime
backends (onnxruntime, LiteRT, tflite-runtime) load when a model is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    CheckFailed,
    DataError,
    EdgeOpsError,
    GuardrailError,
    InputError,
    ModelFormatError,
    ModelLoadError,
    ProviderUnavailableError,
)

if TYPE_CHECKING:  # pragma: no cover
    from .agent import Agent
    from .convert import ConvertPackage
    from .explain import ExplainPackage
    from .loading import load
    from .runtime import Guardrails, Model, RunStats, TensorSpec
    from .validate import ValidatePackage

    convert: ConvertPackage  # the package, called as its function (see edgeops._callable)
    validate: ValidatePackage
    explain: ExplainPackage

__all__ = [
    "__version__",
    "load",
    "convert",
    "validate",
    "bench",
    "explain",
    "Model",
    "TensorSpec",
    "Guardrails",
    "RunStats",
    "Agent",
    "EdgeOpsError",
    "InputError",
    "ModelLoadError",
    "ModelFormatError",
    "ProviderUnavailableError",
    "GuardrailError",
    "DataError",
    "CheckFailed",
]

_LAZY = {"Model", "TensorSpec", "Guardrails", "RunStats"}
_SUBPACKAGES = {"convert", "validate", "bench", "explain"}  # edgeops.convert(...), edgeops.explain(...): _callable.py


def __getattr__(name: str) -> Any:
    # The runtime pulls in nothing heavy either, but keeping it lazy makes
    # `import edgeops` for the CLI's --version and for errors nearly free.
    if name == "load":
        from .loading import load

        return load
    if name in _LAZY:
        from . import runtime

        return getattr(runtime, name)
    if name == "Agent":  # paho, psutil and sqlite load only when the agent starts
        from .agent import Agent

        return Agent
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'edgeops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
