"""The result of a validation: :class:`ValidationReport`, its JSON form and its HTML page."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write, jsonable


@dataclass
class ValidationReport:
    """What :func:`edgeops.validate.validate` found. ``to_dict()`` is the ``--json`` object.

    ``outputs`` maps each reference output name to its metrics; ``accuracy`` and
    ``latency`` are ``None`` when there were no labels / no latency run; ``task`` holds the
    detection (recall, precision) or segmentation (mask IoU) metrics of ``task="detection"`` /
    ``"segmentation"``, else ``None``;
    ``divergence`` ranks the candidate's intermediate tensors, worst first, when a
    gate failed and both models are ONNX (``diagnosis`` says how, and what to try).
    """

    reference: str
    candidate: str
    samples: int
    outputs: dict[str, dict[str, Any]]
    accuracy: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    gates: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    divergence: list[dict[str, Any]] | None = None
    diagnosis: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    task: dict[str, Any] | None = None  # detection / segmentation metrics (edgeops.validate.tasks)
    sample_cosines: dict[str, Any] = field(default_factory=dict, repr=False)  # per output, for the plot

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "reference": self.reference,
            "candidate": self.candidate,
            "samples": self.samples,
            "outputs": self.outputs,
            "accuracy": self.accuracy,
            "task": self.task,
            "latency": self.latency,
            "gates": self.gates,
            "passed": self.passed,
            "failures": self.failures,
            "divergence": self.divergence,
            "diagnosis": self.diagnosis,
            "notes": self.notes,
        })

    def summary(self) -> str:
        """One line: PASS, or FAIL and the failed gates."""
        if self.passed:
            return f"PASS: {self.candidate} meets {len(self.gates)} gate(s) against {self.reference}"
        return f"FAIL: {self.candidate}: " + "; ".join(self.failures)

    def write_html(self, path: str | os.PathLike[str]) -> None:
        """A self-contained HTML page (inline CSS, tables, an inline PNG when matplotlib is installed)."""
        from .html import render

        atomic_write(path, render(self))
