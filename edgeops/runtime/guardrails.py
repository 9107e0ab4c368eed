"""Guardrails: range control of inputs and outputs against a reference profile.

A reference profile (JSON, written by ``edgeops convert``/``validate`` or by hand)
says per tensor which values the model saw in training::

    {"version": 1,
     "inputs":  {"pixels":        {"min": 0.0, "max": 1.0, "mean": 0.3}},
     "outputs": {"probabilities": {"min": 0.0, "max": 1.0}}}

``min``/``max`` are scalars or nested lists that broadcast against one sample
(the shape without the batch axis). Each checked tensor has a policy:

``pass``     count violations, change nothing
``clip``     clip values into ``[min, max]``; NaN/inf become the ``fill`` value
``replace``  replace offending values (out of range or not finite) with ``fill``
``reject``   raise :class:`~edgeops.GuardrailError`

Violations are counted under every policy, per tensor: calls with a value below
the range, above it, or not finite, and the number of offending values. The
agent publishes these counts. Guardrails are off unless enabled and cost nothing then.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from ..errors import DataError, GuardrailError, UsageError

POLICIES = ("pass", "clip", "replace", "reject")


@dataclass
class Violations:
    """Counts for one tensor: calls that had a violation of each kind, and offending values."""

    below: int = 0
    above: int = 0
    nonfinite: int = 0
    values: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RangeCheck:
    """The range of one tensor and what to do when a value leaves it."""

    name: str
    low: Any
    high: Any
    policy: str = "pass"
    fill: Any = None
    counts: Violations = field(default_factory=Violations)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise UsageError(f"guardrail policy for {self.name!r} must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        self.low = np.asarray(self.low, dtype=np.float64)
        self.high = np.asarray(self.high, dtype=np.float64)
        if np.any(self.low > self.high):
            raise DataError(f"reference range of {self.name!r} has min > max")
        self.fill = (self.low + self.high) / 2 if self.fill is None else np.asarray(self.fill, dtype=np.float64)
        self._scalar = self.low.ndim == 0 and self.high.ndim == 0
        # the scalar fast path's bounds (unused, NaN, when the range is per element)
        self._lo: float = float(self.low) if self._scalar else math.nan
        self._hi: float = float(self.high) if self._scalar else math.nan

    def apply(self, where: str, arr: np.ndarray, lock: threading.Lock) -> np.ndarray:
        """Check ``arr``; count what is wrong and return it, fixed per the policy."""
        if arr.size == 0:
            return arr
        if self._scalar:
            # Fast path: two reductions; NaN makes both comparisons False and falls through.
            if self._lo <= arr.min() and arr.max() <= self._hi:
                return arr
        elif (arr >= self.low).all() and (arr <= self.high).all():
            return arr
        numeric = arr.dtype.kind == "f"
        finite = np.isfinite(arr) if numeric else None
        all_finite = True if finite is None else bool(finite.all())
        below_mask = arr < self.low  # NaN compares False: counted as non-finite instead
        above_mask = arr > self.high
        n_below = np.count_nonzero(below_mask)
        n_above = np.count_nonzero(above_mask)
        n_bad = n_below + n_above + (0 if finite is None or all_finite else arr.size - np.count_nonzero(finite))
        if n_bad == 0:
            return arr
        with lock:
            c = self.counts
            c.below += bool(n_below)
            c.above += bool(n_above)
            c.nonfinite += not all_finite
            c.values += n_bad
            if self.policy == "reject":
                c.rejected += 1
        if self.policy == "pass":
            return arr
        if self.policy == "reject":
            seen = f"min {np.nanmin(arr):.4g}, max {np.nanmax(arr):.4g}" if all_finite or np.any(finite) else "no finite values"
            raise GuardrailError(
                f"{where} {self.name!r}: {n_bad} value(s) outside the reference range "
                f"[{np.min(self.low):.4g}, {np.max(self.high):.4g}] or not finite ({seen}); "
                "check the sensor/preprocessing, or relax the policy to 'clip'"
            )
        fixed = arr.copy()
        fill = np.broadcast_to(self.fill.astype(arr.dtype), arr.shape)
        if self.policy == "clip":
            np.clip(fixed, self.low.astype(arr.dtype), self.high.astype(arr.dtype), out=fixed)
            if finite is not None and not all_finite:
                np.copyto(fixed, fill, where=~finite)
        else:  # replace
            bad = below_mask | above_mask
            if finite is not None and not all_finite:
                bad |= ~finite
            np.copyto(fixed, fill, where=bad)
        return fixed


class Guardrails:
    """Range checks for a model's inputs and outputs; see the module docstring."""

    def __init__(self, inputs: dict[str, RangeCheck] | None = None, outputs: dict[str, RangeCheck] | None = None):
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self._lock = threading.Lock()

    @classmethod
    def from_profile(
        cls,
        profile: dict[str, Any] | str | PathLike[str],
        *,
        inputs: str = "clip",
        outputs: str = "pass",
        policies: dict[str, str] | None = None,
        margin: float = 0.0,
    ) -> Guardrails:
        """Build checks from a reference profile (a dict or a JSON file path).

        ``inputs``/``outputs`` are the default policies, ``policies`` overrides per
        tensor name, and ``margin`` widens every range by that fraction of its width.
        """
        prof = load_profile(profile)
        policies = policies or {}

        def build(section: str, default: str) -> dict[str, RangeCheck]:
            checks = {}
            for name, entry in (prof.get(section) or {}).items():
                if not isinstance(entry, dict) or "min" not in entry or "max" not in entry:
                    continue
                try:
                    lo = np.asarray(entry["min"], dtype=np.float64)
                    hi = np.asarray(entry["max"], dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise DataError(f"profile {section}.{name}: min/max must be numbers or lists ({exc})") from exc
                pad = (hi - lo) * margin
                fill = entry.get("mean")
                if fill is not None:
                    fill = np.clip(np.asarray(fill, dtype=np.float64), lo, hi)
                checks[name] = RangeCheck(name, lo - pad, hi + pad, policies.get(name, default), fill)
            return checks

        return cls(build("inputs", inputs), build("outputs", outputs))

    def check_inputs(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = feeds
        for name, check in self.inputs.items():
            arr = feeds.get(name)
            if arr is None:
                continue
            fixed = check.apply("input", arr, self._lock)
            if fixed is not arr:
                if out is feeds:
                    out = dict(feeds)
                out[name] = fixed
        return out

    def check_outputs(self, names: list[str], values: list[np.ndarray]) -> list[np.ndarray]:
        if not self.outputs:
            return values
        values = list(values)
        for i, name in enumerate(names):
            check = self.outputs.get(name)
            if check is not None:
                values[i] = check.apply("output", values[i], self._lock)
        return values

    def validate_names(self, inputs: list[str], outputs: list[str]) -> None:
        for section, checks, known in (("input", self.inputs, inputs), ("output", self.outputs, outputs)):
            unknown = sorted(set(checks) - set(known))
            if unknown:
                raise DataError(
                    f"guardrail profile names {section}(s) {', '.join(unknown)} that the model does not have "
                    f"(model {section}s: {', '.join(known)}); is it the profile of another model?"
                )

    def snapshot(self) -> dict[str, Any]:
        """Violation counts per tensor and their total, JSON-ready."""
        with self._lock:
            ins = {n: c.counts.to_dict() for n, c in self.inputs.items()}
            outs = {n: c.counts.to_dict() for n, c in self.outputs.items()}
        total = sum(v["values"] for v in ins.values()) + sum(v["values"] for v in outs.values())
        return {"inputs": ins, "outputs": outs, "total_values": total}


def load_profile(profile: dict[str, Any] | str | PathLike[str]) -> dict[str, Any]:
    """Read a reference profile from a dict or a JSON file, with clear errors.

    The file is parsed by :func:`edgeops._json.loads`: bounded in size and nesting, no NaN,
    no repeated keys; anything else is a :class:`~edgeops.errors.DataError`."""
    if isinstance(profile, dict):
        data = profile
    elif not isinstance(profile, (str, PathLike)):
        raise DataError(f"a reference profile is a JSON object or a path to one, not a {type(profile).__name__}")
    else:
        from .. import _json

        try:
            with open(profile, "rb") as fh:
                raw = fh.read(_json.MAX_BYTES + 1)  # more is refused by its size
        except FileNotFoundError as exc:
            raise DataError(f"reference profile {profile} not found") from exc
        except OSError as exc:
            raise DataError(f"reference profile {profile} is not readable: {exc}") from exc
        try:
            data = _json.loads(raw, what="the file", error=DataError)
        except DataError as exc:
            raise DataError(f"reference profile {profile} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not ("inputs" in data or "outputs" in data):
        raise DataError("a reference profile is a JSON object with 'inputs' and/or 'outputs' sections")
    return data
