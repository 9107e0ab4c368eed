"""``explain`` one model, ``compare`` the explanations of a reference and its candidate.

    from edgeops.explain import ExplainOptions, compare, explain
    e = explain("model.onnx", "test.npz", labels="labels.npy", options=ExplainOptions(method="permutation"))
    e.to_dict()["importances"][:3]          # [{"feature": "3", "mean": 0.41, "std": 0.02}, ...]
    c = compare("model.onnx", "model_int8.onnx", "test.npz", method="occlusion")
    c.agreement                              # Spearman of importances, or mean top-k IoU of image maps

Models open through :func:`edgeops.load` (any format, any backend, a bundle too). Both models of a
comparison see the same samples, the same perturbations (the same seed) and explain the same
targets: the label's class, else the reference's top class.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from . import agreement as agree
from ._subject import Subject, read_labels, targets
from .methods import Attribution, Context, image_input, occlusion, permutation, surrogate

METHODS = ("permutation", "occlusion", "shap", "surrogate")
DEFAULT_SAMPLES = {"permutation": 500, "occlusion": 16, "shap": 16, "surrogate": 1}
MOVED = 4  # samples shown side by side: those whose explanation moved most


@dataclass(frozen=True)
class ExplainOptions:
    """What to explain and how; every field has a default that works on small models."""

    method: str = "auto"  # permutation | occlusion | shap | surrogate; auto: occlusion on an image input, else permutation
    samples: int | None = None  # at most this many samples (the first ones); None: the method's default
    repeats: int = 5  # permutation: shuffles per feature
    patch: int | None = None  # image patch side in pixels (occlusion, and the features of the others on images)
    stride: int | None = None  # occlusion step; default half the patch
    baseline: float | str | None = None  # a hidden value becomes this number, or 'mean' (the data's mean)
    sample: int = 0  # surrogate: which sample
    perturbations: int = 1000  # surrogate: perturbed copies of the sample
    max_evals: int | None = None  # shap: model evaluations per sample
    output: str | None = None  # the output explained (default the first)
    input: str | None = None  # image methods: the image input (default the first image-shaped one)
    feature_names: tuple[str, ...] | None = None  # names of a table's columns
    top_k: float = 0.1  # comparison: the fraction of pixels / features in the top-k IoU
    seed: int = 0

    def check(self) -> None:
        if self.method != "auto" and self.method not in METHODS:
            raise UsageError(f"method is one of auto, {', '.join(METHODS)}; not {self.method!r}")
        for name in ("samples", "repeats", "patch", "stride", "perturbations", "max_evals"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UsageError(f"{name} must be a positive integer, not {v!r}")
        if not 0 < self.top_k <= 1:
            raise UsageError(f"top_k is a fraction in (0, 1], not {self.top_k!r}")
        if isinstance(self.baseline, str) and self.baseline != "mean":
            raise UsageError(f"baseline is a number or 'mean', not {self.baseline!r}")


@dataclass
class Explanation:
    """One method's explanation of one model: importance per feature, maps per sample, its cost."""

    method: str
    model: str
    attribution: Attribution
    model_calls: int
    rows: int
    samples: list[int]
    seconds: float
    targets: np.ndarray
    images: np.ndarray | None = None  # the explained samples as (n, H, W, C) in the data's units, for pictures
    maps_written: list[str] = field(default_factory=list)

    def importances(self) -> list[dict[str, Any]]:
        a = self.attribution
        rows = [{"feature": _feature(f), "mean": float(m), "std": float(s)} for f, m, s in zip(a.features, a.mean, a.std)]
        if a.signed is not None:
            for r, v in zip(rows, a.signed):
                r["signed"] = float(v)
        return sorted(rows, key=lambda r: (-r["mean"] if np.isfinite(r["mean"]) else np.inf))

    def to_dict(self) -> dict[str, Any]:
        d = {"method": self.method, "model": self.model, "model_calls": self.model_calls, "rows": self.rows,
             "samples": len(self.samples), "seconds": round(self.seconds, 3), "importances": self.importances(),
             **self.attribution.info}
        if self.attribution.layout is not None:
            d["input"] = self.attribution.image_key
        if self.maps_written:
            d["maps"] = list(self.maps_written)
        return d


@dataclass
class Comparison:
    """The same explanation of a reference and a candidate, and how far it moved."""

    reference: Explanation
    candidate: Explanation
    rank_correlation: float
    topk_iou: np.ndarray | None  # per sample
    cosine: np.ndarray | None  # per sample
    top_k: float
    minimum: float | None = None  # the gate, when one was given
    maps_written: list[str] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        """The number a gate checks: mean top-k IoU of image maps, else the Spearman correlation of importances."""
        if self.topk_iou is not None and self.reference.attribution.layout is not None:
            return float(np.mean(self.topk_iou)) if len(self.topk_iou) else float("nan")
        return self.rank_correlation

    @property
    def agreement_kind(self) -> str:
        if self.topk_iou is not None and self.reference.attribution.layout is not None:
            return f"mean top-{self.top_k:.0%} IoU of the maps"
        return "Spearman rank correlation of the importances"

    def moved(self, k: int = MOVED) -> list[int]:
        """Positions (into the samples) whose explanation moved most: lowest cosine, then lowest IoU."""
        per = self.cosine if self.cosine is not None else self.topk_iou
        if per is None or not len(per):
            return []
        key = np.where(np.isfinite(per), per, -np.inf)
        return [int(i) for i in np.argsort(key, kind="mergesort")[:k]]

    @property
    def passed(self) -> bool:
        from .._gates import at_least

        return self.minimum is None or at_least(self.agreement, self.minimum)

    def failures(self) -> list[str]:
        from .._gates import shown

        if self.passed:
            return []
        return [f"explanation agreement {shown(self.agreement, 4)} ({self.agreement_kind}) < "
                f"{self.minimum:.10g} required"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.reference.method, "agreement": self.agreement, "agreement_kind": self.agreement_kind,
            "rank_correlation": self.rank_correlation,
            "model_calls": self.reference.model_calls + self.candidate.model_calls,
            "reference": self.reference.to_dict(), "candidate": self.candidate.to_dict(),
        }
        if self.topk_iou is not None:
            d["top_k"] = self.top_k
            d["topk_iou"] = {"mean": _mean(self.topk_iou), "min": _min(self.topk_iou),
                             "per_sample": self.topk_iou.tolist()}
        if self.cosine is not None:
            d["cosine"] = {"mean": _mean(self.cosine), "min": _min(self.cosine), "per_sample": self.cosine.tolist()}
        d["moved_most"] = [self.reference.samples[i] for i in self.moved()]
        if self.minimum is not None:
            d["gate"] = {"min_explanation_agreement": self.minimum, "passed": self.passed}
            d["failures"] = self.failures()
        if self.maps_written:
            d["maps"] = list(self.maps_written)
        d["importances"] = self.candidate.importances()
        return d


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if len(v) else float("nan")


def _min(v: np.ndarray) -> float:
    return float(np.min(v)) if len(v) else float("nan")


def _feature(name: str) -> Any:
    return int(name) if name.isdigit() else name


# -- running ------------------------------------------------------------------------------------------


def _options(options: ExplainOptions | None, overrides: dict[str, Any]) -> ExplainOptions:
    o = options or ExplainOptions()
    if overrides:
        unknown = set(overrides) - set(ExplainOptions.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown explain option(s): {', '.join(sorted(unknown))}")
        if "feature_names" in overrides and overrides["feature_names"] is not None:
            overrides["feature_names"] = tuple(overrides["feature_names"])
        o = replace(o, **overrides)
    o.check()
    return o


def resolve_method(o: ExplainOptions, arrays: dict[str, np.ndarray]) -> str:
    if o.method != "auto":
        return o.method
    try:
        image_input(arrays, o.input)
    except UsageError:
        return "permutation"
    return "occlusion"


class _Run:
    """The data of one explanation: read once, capped, shared by both models of a comparison."""

    def __init__(self, model: Any, data: Any, labels: Any, o: ExplainOptions, progress: Callable[[str, int, int], None] | None):
        from ..validate.runner import open_model, read_data

        self.first = open_model(model, None)
        arrays = read_data(data, self.first)
        n_all = next(iter(arrays.values())).shape[0]
        self.labels_all = read_labels(labels, n_all)
        self.method = resolve_method(o, arrays)
        self.options = o
        if self.method == "surrogate":
            if not 0 <= o.sample < n_all:
                raise UsageError(f"sample {o.sample} is not among the {n_all} samples (0..{n_all - 1})")
            self.index = [o.sample]
        else:
            self.index = list(range(min(n_all, o.samples or DEFAULT_SAMPLES[self.method])))
        self.everything = arrays
        self.arrays = {k: v[self.index] for k, v in arrays.items()}
        self.labels = None if self.labels_all is None else self.labels_all[self.index]
        self.progress = progress

    def planned(self) -> int:
        """About how many rows the method will run (for a progress bar)."""
        from ._subject import segments

        o = self.options
        n = len(self.index)
        if self.method == "surrogate":
            return o.perturbations + 1
        if self.method == "shap":
            return n * (o.max_evals or 300) + n
        segs, layout = segments(self.arrays, list(o.feature_names) if o.feature_names else None, o.patch)
        if self.method == "permutation":
            return n * (len(segs) * o.repeats + 1)
        return n * (len(segs) * 4 + 1)  # occlusion: about 4 patch positions per grid square at half-patch strides

    def run(self, model: Any, role: str, fixed_targets: np.ndarray | None = None) -> Explanation:
        from ._shap import shapley

        start = time.perf_counter()
        tick = None
        if self.progress is not None:
            progress = self.progress
            planned = self.planned()

            def tick(rows: int) -> None:
                progress(f"explain {role} ({self.method})", rows, max(rows, planned))

        subject = Subject(model, self.arrays, output=self.options.output, role=role, progress=tick)
        base = subject.predict(self.arrays)
        t = fixed_targets if fixed_targets is not None else targets(base, self.labels)
        if t.size and (t.max() >= base.shape[1]):
            raise UsageError(f"{role} output {subject.output!r} has {base.shape[1]} values; the reference explained "
                             f"value {int(t.max())}")
        ctx = Context(subject, self.arrays, self.labels, base, t, self.options, everything=self.everything)
        method = {"permutation": permutation, "occlusion": occlusion, "shap": shapley, "surrogate": surrogate}[self.method]
        attribution = method(ctx)
        return Explanation(self.method, subject.label, attribution, subject.calls, subject.rows, self.index,
                           time.perf_counter() - start, t)


def explain(model: Any, data: Any, *, labels: Any = None, options: ExplainOptions | None = None,
            preprocess: Any = None, progress: Callable[[str, int, int], None] | None = None, **overrides: Any) -> Explanation:
    """Explain ``model`` (a path or a :class:`~edgeops.Model`) on ``data`` (a data file or ``{input: array}``).

    ``options`` (:class:`ExplainOptions`) or its fields as keywords: ``method``, ``samples``, ``seed``, ...
    ``preprocess`` (a :class:`~edgeops.runtime.preprocess.Preprocess` or its dict; a bundle's manifest by
    default) is undone on images shown in pictures, so they appear in the data's own units."""
    o = _options(options, overrides)
    r = _Run(model, data, labels, o, progress)
    e = r.run(r.first, "model")
    e.images = display_images(r.arrays, e.attribution, preprocess if preprocess is not None else _manifest_pre(r.first))
    return e


def compare(reference: Any, candidate: Any, data: Any, *, labels: Any = None, options: ExplainOptions | None = None,
            minimum: float | None = None, preprocess: Any = None, progress: Callable[[str, int, int], None] | None = None,
            **overrides: Any) -> Comparison:
    """Explain both models the same way on the same samples and measure how far the explanation moved.

    ``minimum``: the explanation-agreement gate (:attr:`Comparison.agreement` must be a finite number
    of at least this)."""
    o = _options(options, overrides)
    r = _Run(reference, data, labels, o, progress)
    ref = r.run(r.first, "reference")
    cand = r.run(candidate, "candidate", fixed_targets=ref.targets)
    ref.images = display_images(r.arrays, ref.attribution, preprocess if preprocess is not None else _manifest_pre(r.first))
    cand.images = ref.images
    a, b = ref.attribution, cand.attribution
    rho = agree.spearman(a.mean, b.mean)
    iou = cos = None
    if a.maps is not None and b.maps is not None and a.maps.shape == b.maps.shape:
        iou = agree.topk_iou(a.maps, b.maps, o.top_k)
        cos = agree.cosine(a.maps, b.maps)
    return Comparison(ref, cand, rho, iou, cos, o.top_k, minimum)


def _manifest_pre(model: Any) -> Any:
    """The preprocessing a bundle's manifest records (``edgeops.load`` of a bundle sets ``model.bundle``)."""
    data = getattr(getattr(model, "bundle", None), "data", None)
    pre = data.get("preprocessing") if isinstance(data, dict) else None
    return pre or None


def display_images(arrays: dict[str, np.ndarray], a: Attribution, preprocess: Any) -> np.ndarray | None:
    """The explained image samples as (n, H, W, C) floats, preprocessing undone when it is known."""
    if a.layout is None or a.image_key is None:
        return None
    from ..runtime.preprocess import Preprocess

    x = arrays[a.image_key].astype(np.float64)
    pre = Preprocess.from_dict(preprocess) if isinstance(preprocess, dict) else preprocess
    if pre is not None and not isinstance(pre, Preprocess):
        raise UsageError(f"preprocess is a Preprocess or its dict, not a {type(pre).__name__}")
    hwc = np.stack([a.layout.to_hwc(s) for s in x])
    if pre is not None:
        std, mean = np.asarray(pre.std, np.float64), np.asarray(pre.mean, np.float64)
        hwc = (hwc * std + mean) / (pre.scale or 1.0)
    return hwc

