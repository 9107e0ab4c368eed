"""Runtime backends and the choice between them.

``open_backend`` picks the backend for a model file: onnxruntime for ONNX;
LiteRT, else tflite-runtime, for TFLite. Each backend module imports its engine
only when a model is opened, so ``import edgeops`` stays light.
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from ...targets import Target
from .base import Backend, FunctionBackend

__all__ = ["Backend", "FunctionBackend", "BACKENDS", "open_backend"]

# backend name -> the model format it runs
BACKENDS = {"onnxruntime": "onnx", "litert": "tflite", "tflite-runtime": "tflite"}


def open_backend(path: str, fmt: str, *, backend: str | None, threads: int | None,
                 providers: list[Any] | None, target: Target) -> Backend:
    if backend is not None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if BACKENDS[backend] != fmt:
            raise UsageError(f"backend {backend!r} runs {BACKENDS[backend]} models, and {path} is {fmt}")
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be 1 or more, not {threads}")
    if fmt == "onnx":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads, providers=providers, target=target)
    from .tflite import TFLiteBackend

    return TFLiteBackend(path, threads=threads, providers=providers, target=target, runtime=backend)
