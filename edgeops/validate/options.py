"""What ``edgeops.validate`` can be asked to do besides its models and data: :class:`ValidateOptions`.

:data:`TASKS` is the one list of tasks; ``edgeops validate --task`` takes its choices from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .gates import Gates
    from .tasks import Detection, Segmentation

TASKS = ("auto", "classification", "regression", "detection", "segmentation")
"""What the outputs are scored as; ``auto`` tells classification and regression apart by the labels."""

__all__ = ["ValidateOptions", "TASKS"]


@dataclass(frozen=True)
class ValidateOptions:
    """Everything ``edgeops.validate(reference, candidate, data, ...)`` takes besides those three; every field
    has a default.

    ``validate(ref, cand, data, labels="y.npy", gates=Gates(min_cosine=0.99))`` and
    ``validate(ref, cand, data, options=ValidateOptions(labels="y.npy", gates=Gates(min_cosine=0.99)))`` do
    the same; keywords given with ``options`` replace those fields of it. Values are checked by ``validate``
    before any model runs, and a bad one is a :class:`~edgeops.UsageError` that names it.
    """

    labels: Any = None
    """A .npy path or an array: class indices, one-hot rows, or regression targets."""

    task: str = "auto"
    """One of :data:`TASKS`. ``auto``: integer labels or one-hot rows are classification, other float labels
    regression. ``detection`` / ``segmentation`` score the candidate's boxes or masks against the reference's
    (no labels; :mod:`edgeops.validate.tasks` says which outputs are read and how)."""

    gates: Gates | None = None
    """Limits (:class:`edgeops.validate.Gates`); a missed one becomes a line in ``report.failures``."""

    task_options: Detection | Segmentation | None = None
    """How ``detection`` or ``segmentation`` reads the outputs (:class:`edgeops.validate.Detection` /
    :class:`~edgeops.validate.Segmentation`); ``None``: their defaults."""

    latency: bool = True
    """Also benchmark both models, one sample per run."""

    bench_runs: int = 200
    """Runs per model of the latency benchmark."""

    diagnose: bool = True
    """When a gate fails and both models are ONNX, rank where the candidate diverges from the reference."""

    threads: int | None = None
    """Intra-op threads for both models; ``None``: the runtime's default."""

    max_samples: int | None = None
    """Use only the first N samples of the data."""
