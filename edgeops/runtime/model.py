"""``Model``: one loaded model with checked inputs, statistics and optional guardrails.

``run`` is the hot path of every device, so it does the least that keeps the
contract: a fast check of the feeds (see :mod:`.spec`), the backend call, one
latency record (see :mod:`.stats`), and the output dict. Guardrails add their
checks only when enabled.

**Request ids.** Every run gets a request id, an int unique in the process (a random per-process
base plus a counter, below 2**53 so JSON readers in any language keep it exact), or the one the
caller passes (``run(x, request_id=...)``). ``run`` still returns only the outputs: the id of the
last run is ``model.last_request_id`` (one thread), and :meth:`Model.run_with_id` returns
``(request_id, outputs)`` (any number of threads). A label that arrives later goes to
:meth:`Model.feedback` with that id (the agent counts labelled predictions per model version).
"""

from __future__ import annotations

import itertools
import os
import platform
import secrets
from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import sha256_file
from .._version import __version__
from ..errors import EdgeOpsError, InferenceError, ModelFormatError, UsageError
from ..targets import Target, get_target
from .backends import Backend, open_backend
from .guardrails import Guardrails
from .spec import InputChecker, TensorSpec
from .stats import RunStats

if TYPE_CHECKING:  # pragma: no cover
    from ..bundle.manifest import Manifest

# request ids: a random base per process (ids of two runs of the agent do not collide) plus a counter;
# next() on it is atomic under the GIL, and one call is all the hot path pays
_REQUEST_IDS = itertools.count((secrets.randbits(20) << 32) + 1)
_EXTENSIONS = {".onnx": "onnx", ".ort": "onnx", ".tflite": "tflite", ".lite": "tflite"}


class Model:
    """A model ready to run. Get one from :func:`edgeops.load`.

    ``sha256`` is the model file's SHA-256 when the caller has just checked it (a bundle, a store
    slot), so it is not hashed again; ``manifest`` the bundle manifest the model came with
    (``model.bundle``).
    """

    def __init__(self, backend: Backend, *, path: str | None = None, fmt: str | None = None,
                 target: Target | None = None, sha256: str | None = None, manifest: Manifest | None = None):
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
        self._sha256 = sha256
        self.observer: Callable[[dict[str, np.ndarray]], None] | None = None  # sees each accepted input (drift)
        self.bundle = manifest  # the bundle's Manifest when opened from a .eob or a store (see edgeops.bundle)
        # sees each result: (request id, feeds, {output name: array}, latency ns); the agent's output drift,
        # shadow model and prediction log hang here
        self.result_observer: Callable[[Any, dict[str, np.ndarray], dict[str, np.ndarray], int], None] | None = None
        self.feedback_log: Any = None  # a edgeops.runtime.feedback.FeedbackLog: what feedback() labels
        self.last_request_id: Any = None

    # -- the hot path ----------------------------------------------------------------------

    def run(self, inputs: Any, request_id: Any = None) -> dict[str, np.ndarray]:
        """Run the model: ``{input name: array}`` (or a bare array for one input) -> ``{output name: array}``.

        ``request_id`` names this run (default: a new one); it is ``last_request_id`` afterwards."""
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
        ns = perf_counter_ns() - t0
        self.stats.record(ns)
        rid = self.last_request_id = next(_REQUEST_IDS) if request_id is None else request_id
        if self.observer is not None:
            self.observer(feeds)
        result = dict(zip(self._output_names, outs))
        if self.result_observer is not None:
            self.result_observer(rid, feeds, result, ns)
        return result

    __call__ = run

    def run_with_id(self, inputs: Any) -> tuple[int, dict[str, np.ndarray]]:
        """``(request_id, outputs)``: :meth:`run` with the id of this very run (safe from any thread)."""
        rid = new_request_id()
        return rid, self.run(inputs, request_id=rid)

    def feedback(self, request_id: Any, label: Any) -> bool:
        """The true label (a class index, or the target value) of the run ``request_id``; counted per model
        version in the agent's telemetry (``feedback``). False when that run is no longer remembered (the
        log keeps the last few thousand) or unknown. Needs a prediction log: the agent sets one, or
        :meth:`keep_predictions`."""
        if self.feedback_log is None:
            raise UsageError("this model keeps no predictions to label: run it under an edgeops agent, "
                             "or call model.keep_predictions() first")
        return bool(self.feedback_log.label(request_id, label))

    def keep_predictions(self, keep: int = 4096, version: str | None = None) -> Any:
        """Remember the last ``keep`` predictions by request id so :meth:`feedback` can label them (without an
        agent); returns the :class:`~edgeops.runtime.feedback.FeedbackLog` (its ``snapshot()`` has the counts)."""
        from .feedback import FeedbackLog

        log = FeedbackLog(keep)
        tag = version or (self.bundle.version if self.bundle is not None else None) or "model"
        self.feedback_log = log
        self.result_observer = lambda rid, feeds, outs, ns: log.record(rid, outs, tag)
        return log

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
            self._sha256 = sha256_file(self.path)
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


def new_request_id() -> int:
    """A request id unique in this process (what :meth:`Model.run` gives a run that is not given one)."""
    return next(_REQUEST_IDS)


def runtime_info(model: object) -> dict[str, Any]:
    """What runs ``model`` (a :class:`Model`, or None), JSON-ready (the agent's telemetry ``runtime``):
    edgeops, the backend, Python, the OS."""
    return {"edgeops": __version__, "backend": getattr(model, "backend", None),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}",
            "machine": platform.machine()}


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


def open_model(path: str | os.PathLike[str], *, fmt: str | None = None, backend: str | None = None,
               threads: int | None = None, providers: list[Any] | None = None, target: str | Target | None = None,
               guardrails: Guardrails | dict[str, Any] | str | os.PathLike[str] | None = None,
               sha256: str | None = None, manifest: Manifest | None = None) -> Model:
    """Open a ``.onnx`` or ``.tflite`` model file (``fmt`` when the caller already detected it).

    The runtime's part of :func:`edgeops.load`, which also opens bundles and model stores (see
    :mod:`edgeops.loading` for the options); ``sha256`` and ``manifest`` go to :class:`Model`.
    """
    p = os.fspath(path)
    if fmt is None:
        from ..formats import check_model_path

        check_model_path(p)  # missing, a folder, unreadable: the same words in every command
        check_providers(providers)
        fmt = detect_format(p)
    if fmt == "bundle":
        raise ModelFormatError(f"{p} is an edgeops bundle, not a model file; open it with edgeops.load")
    tgt = get_target(target)
    be = open_backend(p, fmt, backend=backend, threads=threads,
                      providers=list(providers) if providers else None, target=tgt)
    model = Model(be, path=p, fmt=fmt, target=tgt, sha256=sha256, manifest=manifest)
    if guardrails is not None:
        model.enable_guardrails(guardrails)
    return model


def check_providers(providers: Any) -> None:
    """``providers`` is None or a list (a lone string is a usage error, not a list of letters)."""
    if providers is not None and not isinstance(providers, (list, tuple)):
        raise UsageError("providers must be a list, e.g. ['cuda', 'cpu']")
