"""The onnxruntime backend: sessions, execution providers, error mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import BackendError, BackendUnavailableError, ModelFormatError, ProviderUnavailableError
from ...targets import Target
from ..spec import TensorSpec

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool", "tensor(string)": "object",
}


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "onnxruntime is not installed; pip install 'edgeops[onnx]' (on Jetson, NVIDIA's onnxruntime-gpu wheel)"
        ) from exc
    return onnxruntime


def resolve_providers(requested: list[Any] | None, target: Target, available: list[str]) -> list[Any]:
    """Turn requested providers (aliases, names or ``(name, options)``) or the target's preferences into a list.

    Requested providers must all be available; a target's preferences are filtered
    to what this onnxruntime build offers. The CPU provider always comes last.
    """
    if requested:
        out = []
        for p in requested:
            name, opts = (p if isinstance(p, tuple) else (p, None))
            full = PROVIDER_ALIASES.get(str(name).lower(), name)
            if full not in available:
                hint = " (install onnxruntime-gpu; on Jetson use NVIDIA's wheel for your JetPack)" if full in (
                    "CUDAExecutionProvider", "TensorrtExecutionProvider") else ""
                raise ProviderUnavailableError(
                    f"execution provider {name!r} ({full}) is not available in this onnxruntime build{hint}; "
                    f"available: {', '.join(available)}"
                )
            out.append((full, opts) if opts else full)
    else:
        out = [p for p in target.ort_providers if p in available]
    names = [p[0] if isinstance(p, tuple) else p for p in out]
    if "CPUExecutionProvider" not in names:
        out.append("CPUExecutionProvider")
    return out


class OnnxRuntimeBackend:
    """Runs a ``.onnx`` file with onnxruntime."""

    name = "onnxruntime"

    def __init__(self, path: str, *, threads: int | None, providers: list[Any] | None, target: Target):
        ort = import_ort()
        self.version = ort.__version__
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        chosen = resolve_providers(providers, target, ort.get_available_providers())
        chosen = [_with_defaults(p, threads) for p in chosen]
        try:
            self.session = ort.InferenceSession(path, opts, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own pybind types
            raise _map_load_error(path, exc) from exc
        self.providers = list(self.session.get_providers())
        self.inputs = [_spec(i) for i in self.session.get_inputs()]
        self.outputs = [_spec(o) for o in self.session.get_outputs()]
        for kind, specs in (("outputs", self.outputs), ("inputs", self.inputs)):
            if not specs:  # onnxruntime loads such a graph; it could never run usefully (no outputs: never)
                from ...formats import format_error

                raise format_error("ONNX", f"the graph has no {kind}", path)
        self._names = [o.name for o in self.outputs]
        self.run: Callable[[dict[str, np.ndarray]], list[np.ndarray]] = self._run_wrapped
        inner = _cpu_session(self.session) if self.providers == ["CPUExecutionProvider"] else None
        if inner is not None:
            names = self._names
            self.run = lambda feeds: inner.run(names, feeds, None)

    def _run_wrapped(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self._names, feeds)


def _cpu_session(session: Any) -> Any:
    """onnxruntime's C++ session inside ``session`` (the private ``_sess`` of its Python wrapper), or None.

    The one place edgeops reaches into onnxruntime's privates, for speed: Model.run has already
    validated the feeds, so the CPU path skips the wrapper's second round of checks and calls the
    C++ session directly. onnxruntime has no public handle for it; without ``_sess`` (another
    version) the wrapper's ``run`` is used. Only for CPU: the wrapper's fallback to CPU on a
    provider failure is kept whenever another provider is in use.
    """
    return getattr(session, "_sess", None)


def _with_defaults(provider: Any, threads: int | None) -> Any:
    if isinstance(provider, tuple):
        return provider
    if provider == "TensorrtExecutionProvider":
        import os

        cache = os.path.join(os.path.expanduser("~"), ".cache", "edgeops", "tensorrt")
        return (provider, {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache})
    if provider == "XnnpackExecutionProvider" and threads:
        return (provider, {"intra_op_num_threads": threads})
    return provider


def _spec(arg: Any) -> TensorSpec:
    shape = None
    if arg.shape is not None:
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise BackendError(f"tensor {arg.name!r} has type {arg.type}, which edgeops does not handle yet")
    return TensorSpec(arg.name, shape, np.dtype(dtype))


def _map_load_error(path: str, exc: Exception) -> Exception:
    kind = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    if kind in ("NotImplemented", "NotImplementedError"):
        return BackendError(
            f"{path}: this onnxruntime cannot run the model ({msg}); upgrade onnxruntime or convert the "
            "model to an older opset"
        )
    if kind == "NoSuchFile":
        return ModelFormatError(f"{path}: a file the model refers to is missing ({msg})")
    from ...formats import load_error

    return load_error(path, exc, reader="onnxruntime")  # the readers' precise words when they see the fault
