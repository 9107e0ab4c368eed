"""Gates: the limits a candidate must meet, and one readable line per limit it misses.

A gate passes only if the value it checks is a finite number within its limit
(:func:`edgeops._gates.at_most` / :func:`~edgeops._gates.at_least`): a candidate that
outputs NaN or inf gets a NaN cosine or error and fails every gate checked on it, where
``value < limit`` would have let it through. The failure line then says how many values
of that output were not finite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .._gates import at_least, at_most, shown
from ..errors import UsageError


@dataclass
class Gates:
    """Limits for :func:`edgeops.validate.validate`; ``None`` leaves a gate off."""

    max_accuracy_drop: float | None = None  # percentage points: (reference acc - candidate acc) * 100
    min_agreement: float | None = None  # top-1 agreement, 0..1, on every classification output
    min_cosine: float | None = None  # min over outputs of the mean per-sample cosine similarity
    max_p95_ms: float | None = None  # candidate p95 latency
    min_detection_recall: float | None = None  # task detection: reference boxes the candidate finds, 0..1
    min_detection_precision: float | None = None  # task detection: candidate boxes the reference has, 0..1
    min_mask_iou: float | None = None  # task segmentation: mask IoU with the reference's, 0..1

    def check(self) -> None:
        """Raise :class:`~edgeops.UsageError` for limits that cannot mean anything."""
        for name, value in asdict(self).items():
            if value is not None and (not isinstance(value, (int, float)) or math.isnan(value)):
                raise UsageError(f"gate {name} must be a number, not {value!r}")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise UsageError(f"min agreement is a fraction between 0 and 1, not {self.min_agreement:g} "
                             "(e.g. 0.97 for 97 %)")
        for name in ("min_detection_recall", "min_detection_precision", "min_mask_iou"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise UsageError(f"{name.replace('_', ' ')} is a fraction between 0 and 1, not {value:g}")
        if self.min_cosine is not None and not -1 <= self.min_cosine <= 1:
            raise UsageError(f"min cosine is between -1 and 1, not {self.min_cosine:g} (e.g. 0.99)")
        if self.max_p95_ms is not None and self.max_p95_ms <= 0:
            raise UsageError(f"max p95 latency must be above 0 ms, not {self.max_p95_ms:g}")
        if self.max_accuracy_drop is not None and not -100 <= self.max_accuracy_drop <= 100:
            raise UsageError(f"max accuracy drop is in percentage points (0.5 = half a point), "
                             f"not {self.max_accuracy_drop:g}")

    def given(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def failures(self, outputs: dict[str, dict[str, Any]], accuracy: dict[str, Any] | None,
                 latency: dict[str, Any] | None) -> list[str]:
        """One line per gate the candidate misses; a value that is not a finite number misses its gate."""
        out = []
        if self.max_accuracy_drop is not None and accuracy is not None and accuracy["drop_points"] is not None:
            drop, (lo, hi) = accuracy["drop_points"], accuracy["ci95"]
            if not at_most(drop, self.max_accuracy_drop):
                out.append(f"accuracy drop {shown(drop, 2)} points > {self.max_accuracy_drop:.10g} allowed "
                           f"(95% CI {shown(lo, 2)}..{shown(hi, 2)}; reference "
                           f"{shown(accuracy['reference'] * 100, 2)}%, candidate {shown(accuracy['candidate'] * 100, 2)}%)")
        if self.min_agreement is not None:
            for name, m in outputs.items():
                agree = m["top1_agreement"]  # None: not class scores, the gate does not apply to this output
                if agree is not None and not at_least(agree, self.min_agreement):
                    out.append(f"top-1 agreement {shown(agree, 4)} on {name!r} < {self.min_agreement:.10g} "
                               f"required{_nonfinite(m)}")
        if self.min_cosine is not None:
            for name, m in outputs.items():
                if not at_least(m["cosine"], self.min_cosine):
                    out.append(f"cosine similarity {shown(m['cosine'], 6)} on {name!r} < {self.min_cosine:.10g} "
                               f"required (worst sample {shown(m['min_cosine'], 4)}){_nonfinite(m)}")
        if self.max_p95_ms is not None and latency is not None:
            p95 = latency["candidate"]["p95"]
            if not at_most(p95, self.max_p95_ms):
                out.append(f"candidate p95 latency {shown(p95, 3)} ms > {self.max_p95_ms:.10g} ms allowed "
                           f"(reference {shown(latency['reference']['p95'], 3)} ms)")
        return out


def _nonfinite(m: dict[str, Any]) -> str:
    n = m.get("nonfinite") or 0
    return f"; the candidate gave {n} NaN/inf value(s)" if n else ""
