"""``Model``: one loaded model with checked inputs, statistics and optional guardrails.

``run`` is the hot path of every device, so it does the least that keeps the
contract: a fast check of the feeds (see :mod:`.spec`), the backend call, one
latency record (see :mod:`.stats`), and the output dict. Guardrails add their
checks only when enabled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import numpy as np

from ..errors import EdgeOpsError, InferenceError, ModelFormatError, UsageError
from ..targets import Target, get_target
from .backends import Backend, open_backend
from .guardrails import Guardrails
from .spec import InputChecker, TensorSpec
from .stats import RunStats

_EXTENSIONS = {".onnx": "onnx", ".ort": "onnx", ".tflite": "tflite", ".lite": "tflite"}


class Model:
    """A model ready to run. Get one from :func:`edgeops.load`."""

    def __init__(self, backend: Backend, *, path: str | None = None, fmt: str | None = None,
                 target: Target | None = None):
        self._backend = backend
        self._run = backend.run
        self.path = path
        self.format = fmt
        self.target = target
        self.inputs: list[TensorSpec] = list(backend.inputs)
        self.outputs: list[TensorSpec] = list(backend.outputs)
        self._output_names = [o.name for o in self.outputs]
        self._checker = InputChecker(self.inputs)
        self._prepare = self._checker.fast_prepare()
        self.stats = RunStats()
        self.guardrails: Guardrails | None = None
        self._sha256: str | None = None
        self.observer: Callable[[dict[str, np.ndarray]], None] | None = None  # sees each accepted input (drift)
        self.bundle: Any = None  # the bundle's Manifest when opened from a .eob (see edgeops.bundle)

    # -- the hot path ----------------------------------------------------------------------

    def run(self, inputs: Any) -> dict[str, np.ndarray]:
        """Run the model: ``{input name: array}`` (or a bare array for one input) -> ``{output name: array}``."""
        t0 = perf_counter_ns()
        try:
            feeds = self._prepare(inputs)
            if self.guardrails is None:
                outs = self._run(feeds)
            else:
                outs = self._run_guarded(feeds)
        except EdgeOpsError:
            self.stats.errors += 1
            raise
        except Exception as exc:
            self.stats.errors += 1
            raise InferenceError(f"{self.backend} failed to run the model: {exc}") from exc
        self.stats.record(perf_counter_ns() - t0)
        if self.observer is not None:
            self.observer(feeds)
        return dict(zip(self._output_names, outs))

    __call__ = run

    def _run_guarded(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        g = self.guardrails
        assert g is not None
        outs = self._run(g.check_inputs(feeds))
        return g.check_outputs(self._output_names, outs)

    # -- guardrails ------------------------------------------------------------------------

    def enable_guardrails(self, guardrails: Guardrails | dict[str, Any] | str | os.PathLike[str],
                          **policies: Any) -> Guardrails:
        """Check every run against a reference profile; see :class:`~edgeops.Guardrails`.

        Pass a ready ``Guardrails`` or a profile (dict or JSON path) plus the keyword
        arguments of :meth:`Guardrails.from_profile` (``inputs="clip"``, ``outputs="pass"``, ...).
        """
        g = guardrails if isinstance(guardrails, Guardrails) else Guardrails.from_profile(guardrails, **policies)
        g.validate_names([s.name for s in self.inputs], self._output_names)
        self.guardrails = g
        return g

    def disable_guardrails(self) -> None:
        self.guardrails = None

    # -- facts about the model ------------------------------------------------------------

    @property
    def backend(self) -> str:
        """Name of the engine running the model: onnxruntime, litert, tflite-runtime."""
        return self._backend.name

    @property
    def providers(self) -> list[str]:
        """Execution providers (onnxruntime) or delegates (TFLite) in use, best first."""
        return list(self._backend.providers)

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the model file (computed once, on first use)."""
        if self._sha256 is None and self.path is not None:
            h = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._sha256 = h.hexdigest()
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """What the model is and how it runs, JSON-ready (the agent's ``model``/``runtime`` facts)."""
        return {
            "path": self.path,
            "format": self.format,
            "backend": self.backend,
            "backend_version": getattr(self._backend, "version", None),
            "providers": self.providers,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        return f"<Model {self.path or '(in memory)'} [{self.backend}] inputs: {ins}>"


def detect_format(path: str) -> str:
    """``onnx``, ``tflite`` or ``bundle``, by extension, else by the file's first bytes."""
    from ..formats import SNIFF_BYTES, load_error, sniff_format

    ext = os.path.splitext(path)[1].lower()
    if ext == ".eob":
        return "bundle"
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise load_error(path, EOFError("the file is empty"), reader="edgeops")
    sniffed = sniff_format(head)
    if sniffed == "bundle":  # whatever its name says
        return "bundle"
    fmt = _EXTENSIONS.get(ext)
    if fmt == "onnx" and sniffed == "tflite" or fmt == "tflite" and sniffed not in ("tflite", None):
        raise ModelFormatError(f"{path} has a .{ext[1:]} name but holds {sniffed} data; rename it or check the file")
    if fmt is None:
        fmt = sniffed
    if fmt not in ("onnx", "tflite", "bundle"):  # the readers say what it is instead (a zip, text, ...)
        raise load_error(path, ValueError("not a model edgeops can run (expected an .onnx or .tflite file)"),
                         reader="edgeops")
    return fmt


def load(path: str | os.PathLike[str], *, backend: str | None = None, threads: int | None = None,
         providers: list[Any] | None = None, target: str | Target | None = None,
         guardrails: Guardrails | dict[str, Any] | str | os.PathLike[str] | None = None) -> Model:
    """Open a ``.onnx`` or ``.tflite`` model, or a bundle (``.eob``), and return a :class:`Model`.

    A bundle is verified first (structure, hashes, and its signature if it is signed, checked
    against the key it carries: loading does not require a trusted key, so check a bundle
    from elsewhere with ``edgeops.bundle.verify(path, trusted_keys=[...])``), then unpacked
    into a private temporary folder that lives as long as the Model; ``model.bundle`` is its
    manifest; a bundle that fails a check raises ``edgeops.bundle.BundleError``.
    ``cryptography`` is imported only for a signed bundle.

    ``backend`` forces onnxruntime, litert or tflite-runtime; ``threads`` sets the
    intra-op thread count; ``providers`` lists onnxruntime execution providers
    (``"cuda"``, ``"tensorrt"``, ``("CUDAExecutionProvider", {...})``) or TFLite
    delegates (``"xnnpack"``, ``"cpu"``, a delegate library path) to use, best
    first; unset, they follow ``target`` (default: the machine this runs on).
    ``guardrails`` enables range checks from a reference profile.
    """
    p = os.fspath(path)
    if os.path.isdir(p) and os.path.isfile(os.path.join(p, "active.json")):  # a device's model store
        from ..deploy.store import ModelStore

        return ModelStore(p).load_active(backend=backend, threads=threads, providers=providers, target=target,
                                         guardrails=guardrails)
    from ..formats import check_model_path

    check_model_path(p)  # missing, a folder, unreadable: the same words in every command
    if providers is not None and not isinstance(providers, (list, tuple)):
        raise UsageError("providers must be a list, e.g. ['cuda', 'cpu']")
    fmt = detect_format(p)
    if fmt == "bundle":
        from ..bundle._load import load_bundle

        return load_bundle(p, load, backend=backend, threads=threads, providers=providers, target=target,
                           guardrails=guardrails)
    tgt = get_target(target)
    be = open_backend(p, fmt, backend=backend, threads=threads,
                      providers=list(providers) if providers else None, target=tgt)
    model = Model(be, path=p, fmt=fmt, target=tgt)
    if guardrails is not None:
        model.enable_guardrails(guardrails)
    return model
