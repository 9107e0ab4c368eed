"""The TFLite backend: LiteRT (``ai-edge-litert``) or ``tflite-runtime``, whichever is installed.

The flatbuffer is validated by :mod:`edgeops.formats` before the interpreter sees
it, because a corrupt file can crash the interpreter instead of raising. Inputs
and outputs take the names of the model's SignatureDef when it has one, so a
``.tflite`` exported from an ONNX model answers to the same names. Dynamic dims
(``shape_signature`` -1) are resized on demand. Delegates: XNNPACK is LiteRT's
default CPU path (the right one for Arm boards); ``providers=["cpu"]`` turns it
off, and any other entry is loaded as an external delegate library
(e.g. ``libedgetpu.so.1``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...errors import BackendError, BackendUnavailableError, ProviderUnavailableError
from ...formats import tflite_io_map
from ...targets import Target
from ..spec import TensorSpec

RUNTIMES = ("litert", "tflite-runtime")
# what the interpreter writes to stderr on every creation; the delegate is in Model.providers instead
_ROUTINE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
            "INFO: Initialized TensorFlow Lite runtime.")
_STDERR_LOCK = threading.Lock()  # file descriptor 2 belongs to the whole process


def on_arm64() -> bool:
    """This process runs on 64-bit Arm (a Raspberry Pi 4/5, a Jetson)."""
    return platform.machine().lower() in ("aarch64", "arm64")


def import_interpreter(runtime: str | None) -> tuple[str, Any]:
    """Return ``(runtime name, interpreter module)``, preferring LiteRT."""
    order = [runtime] if runtime else list(RUNTIMES)
    problems = []
    for name in order:
        try:
            if name == "litert":
                from ai_edge_litert import interpreter as mod
            else:
                from tflite_runtime import interpreter as mod  # type: ignore[import-not-found,no-redef]
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if name == "tflite-runtime" and int(np.__version__.split(".")[0]) >= 2:
            problems.append(f"tflite-runtime: needs numpy<2, this environment has numpy {np.__version__}")
            continue
        return name, mod
    raise BackendUnavailableError(
        "no TFLite runtime is usable here (" + "; ".join(problems) + "); pip install 'edgeops[litert]' "
        "or, where LiteRT has no wheel (Raspberry Pi OS, Python 3.11), pip install 'edgeops[tflite]' (numpy<2)"
    )


class TFLiteBackend:
    """Runs a ``.tflite`` file with LiteRT or tflite-runtime."""

    def __init__(self, path: str, *, threads: int | None, providers: list[Any] | None, target: Target,
                 runtime: str | None = None):
        with open(path, "rb") as fh:
            data = fh.read()
        # validates the whole flatbuffer first: ModelFormatError on anything the interpreter could choke on
        hazards: list[str] = []
        io = tflite_io_map(data, source=path, hazards=hazards)
        self.name, mod = import_interpreter(runtime)
        if hazards and self.name == "tflite-runtime" and on_arm64():
            from ...errors import ModelLoadError

            raise ModelLoadError(f"{path}: tflite-runtime on {platform.machine()} cannot run {hazards[0]}")
        self.version = _version(self.name)
        kwargs: dict[str, Any] = {"model_content": data}
        if threads:
            kwargs["num_threads"] = threads
        self.providers, delegates, no_default = _delegates(mod, providers)
        if delegates:
            kwargs["experimental_delegates"] = delegates
        if no_default:
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        refused: ValueError | RuntimeError | None
        with quiet_stderr() as said:  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" line
            try:
                self.interp = mod.Interpreter(**kwargs)
                self.interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                refused = exc
            else:
                refused = None
        if refused is not None:
            from ...formats import load_error

            detail = "; ".join([str(refused).strip(), *said]).strip("; ")
            raise load_error(path, RuntimeError(detail), reader="the TFLite interpreter") from refused
        _replay(said)
        details = {d["index"]: d for d in self.interp.get_input_details() + self.interp.get_output_details()}
        self.inputs = [_spec(name, details[idx]) for name, idx in io["inputs"].items()]
        self.outputs = [_spec(name, details[idx]) for name, idx in io["outputs"].items()]
        self._in: list[tuple[str, int]] = [(name, idx) for name, idx in io["inputs"].items()]
        self._out: list[int] = list(io["outputs"].values())
        self._shapes: dict[int, tuple[int, ...]] = {idx: tuple(int(d) for d in details[idx]["shape"])
                                                    for _, idx in self._in}
        self._lock = threading.Lock()  # an interpreter is not thread-safe
        self.run = self._make_run()

    def _make_run(self) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
        """The hot path as a closure over bound methods: no attribute look-ups per call."""
        set_tensor, invoke, get_tensor = self.interp.set_tensor, self.interp.invoke, self.interp.get_tensor
        ins, outs, shapes, lock, resize = self._in, self._out, self._shapes, self._lock, self._resize

        if len(ins) == 1 and len(outs) == 1:  # the common case, without loops
            ((name, idx),), out = ins, outs[0]

            def run_one(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
                arr = feeds[name]
                with lock:
                    if arr.shape != shapes[idx]:
                        resize(idx, arr.shape)
                    set_tensor(idx, arr)
                    invoke()
                    return [get_tensor(out)]

            return run_one

        def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            with lock:
                for name, idx in ins:
                    arr = feeds[name]
                    if arr.shape != shapes[idx]:
                        resize(idx, arr.shape)
                    set_tensor(idx, arr)
                invoke()
                return [get_tensor(i) for i in outs]

        return run

    def _resize(self, idx: int, shape: tuple[int, ...]) -> None:
        try:
            self.interp.resize_tensor_input(idx, list(shape), strict=True)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"the TFLite model cannot take an input of shape {list(shape)} ({exc})") from exc
        self._shapes[idx] = tuple(shape)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the block (the interpreter's C++ code writes
    there, not to ``sys.stderr``); yields a list that gets the lines written meanwhile, less the
    routine ones, when the block ends. fd 2 is restored even when the block raises, and then the
    lines are written back to stderr. One block at a time in the process (a lock)."""
    said: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield said
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
                said.extend(line for line in text.splitlines() if line.strip() and line.strip() not in _ROUTINE)
        except BaseException:
            _replay(said)
            raise
        finally:
            os.close(saved)


def _replay(lines: list[str]) -> None:
    """Write what the interpreter said besides its routine lines back to stderr: nothing is hidden."""
    if lines:
        print("\n".join(lines), file=sys.stderr)


def _delegates(mod: Any, providers: list[Any] | None) -> tuple[list[str], list[Any], bool]:
    if not providers:
        return ["xnnpack"], [], False
    names, delegates, no_default = [], [], True
    for p in providers:
        key = str(p).lower()
        if key in ("cpu", "reference", "builtin"):
            names.append("cpu")
        elif key == "xnnpack":
            names.append("xnnpack")
            no_default = False
        else:
            try:
                delegates.append(mod.load_delegate(str(p)))
            except (ValueError, OSError, RuntimeError) as exc:
                raise ProviderUnavailableError(
                    f"TFLite delegate {p!r} could not be loaded ({exc}); give the path of the delegate's "
                    "shared library (e.g. libedgetpu.so.1) or use 'xnnpack' / 'cpu'"
                ) from exc
            names.append(str(p))
    return names, delegates, no_default


def _spec(name: str, d: dict[str, Any]) -> TensorSpec:
    sig = d.get("shape_signature")
    dims = sig if sig is not None and len(sig) == len(d["shape"]) else d["shape"]
    shape = tuple(int(x) if x >= 0 else None for x in dims)
    scale, zero = d.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero)) if scale else None
    return TensorSpec(name, shape, np.dtype(d["dtype"]), quant)


def _version(runtime: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert" if runtime == "litert" else "tflite-runtime")
    except PackageNotFoundError:
        return "unknown"
