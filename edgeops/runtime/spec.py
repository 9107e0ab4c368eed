"""Tensor signatures and the input checks every ``Model.run`` goes through.

A :class:`TensorSpec` is what a model says about one input or output. An
:class:`InputChecker` turns the model's input specs into a fast path (the same
dict of correctly typed arrays as last time costs a few dict and set look-ups)
and a slow path that converts what can be converted without loss and explains
everything else in one error naming the input, what was expected and what was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputDtypeError, InputNameError, InputShapeError

Shape = tuple["int | None", ...]

# How many distinct accepted shapes per input are remembered for the fast path.
_SHAPE_CACHE = 32


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: ``name``, ``shape`` (``None`` for a dynamic dim) and ``dtype``.

    ``quantization`` is ``(scale, zero_point)`` for a quantized TFLite tensor, else ``None``.
    """

    name: str
    shape: tuple[int | None, ...] | None
    dtype: np.dtype
    quantization: tuple[float, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype.name,
        }
        if self.quantization is not None:
            d["quantization"] = {"scale": self.quantization[0], "zero_point": self.quantization[1]}
        return d

    def describe(self) -> str:
        """``pixels [batch, 64] float32``: how errors and tables show a spec."""
        return f"{self.name} {format_shape(self.shape)} {self.dtype.name}"


def format_shape(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "[any]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def shape_matches(spec_shape: tuple[int | None, ...] | None, shape: tuple[int, ...]) -> bool:
    if spec_shape is None:
        return True
    if len(spec_shape) != len(shape):
        return False
    return all(want is None or want == got for want, got in zip(spec_shape, shape))


class InputChecker:
    """Validates and converts the inputs of one model; built once per model."""

    def __init__(self, specs: list[TensorSpec]):
        self.specs = list(specs)
        self._by_name = {s.name: s for s in self.specs}
        self._n = len(self.specs)
        # (name, dtype, shapes already accepted): what the fast path compares a feed with
        self._fast: list[tuple[str, np.dtype, set[tuple[int, ...]]]] = [(s.name, s.dtype, set()) for s in self.specs]
        self._single = self.specs[0].name if self._n == 1 else None

    def prepare(self, inputs: Any) -> dict[str, np.ndarray]:
        """Return the feeds for the backend, or raise an :class:`~edgeops.InputError`."""
        if type(inputs) is dict and len(inputs) == self._n:
            ndarray = np.ndarray
            for name, dtype, shapes in self._fast:
                a = inputs.get(name)
                if type(a) is not ndarray or a.dtype is not dtype or a.shape not in shapes:
                    break
            else:
                return inputs
        return self._prepare_slow(inputs)

    def fast_prepare(self) -> Any:
        """``prepare`` specialised for this model: a closure with one input's checks inlined."""
        if self._n != 1:
            return self.prepare
        name, dtype, shapes = self._fast[0]
        ndarray, slow = np.ndarray, self._prepare_slow

        def prepare_one(inputs: Any) -> dict[str, np.ndarray]:
            if type(inputs) is dict:
                if len(inputs) == 1:
                    a = inputs.get(name)
                    if type(a) is ndarray and a.dtype is dtype and a.shape in shapes:
                        return inputs
            elif type(inputs) is ndarray and inputs.dtype is dtype and inputs.shape in shapes:
                return {name: inputs}
            return slow(inputs)

        return prepare_one

    # -- slow path: conversions and errors -------------------------------------------------

    def _prepare_slow(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            given = dict(inputs)
        elif self._single is not None:
            given = {self._single: inputs}
        else:
            raise InputNameError(
                f"this model has {self._n} inputs ({self._names()}); pass a dict "
                f"{{name: array}}, got a {type(inputs).__name__}"
            )
        unknown = [k for k in given if k not in self._by_name]
        if unknown:
            raise InputNameError(
                f"unknown input {', '.join(map(repr, unknown))}; the model's inputs are: {self._names()}"
            )
        missing = [s.name for s in self.specs if s.name not in given]
        if missing:
            raise InputNameError(
                f"missing input {', '.join(map(repr, missing))}; the model's inputs are: {self._names()}"
            )
        feeds = {}
        for spec, (_, _, shapes) in zip(self.specs, self._fast):
            arr = convert_input(spec, given[spec.name])
            if arr.shape not in shapes:
                check_shape(spec, arr.shape)
                if len(shapes) < _SHAPE_CACHE:
                    shapes.add(arr.shape)
            feeds[spec.name] = arr
        return feeds

    def _names(self) -> str:
        return ", ".join(s.describe() for s in self.specs)


def check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    if spec.shape is None or shape_matches(spec.shape, shape):
        return
    want = format_shape(spec.shape)
    got = format_shape(shape)
    if len(spec.shape) != len(shape):
        hint = ""
        if len(shape) + 1 == len(spec.shape) and spec.shape[0] in (None, 1):
            hint = "; add a batch axis, e.g. x[None]"
        raise InputShapeError(
            f"input {spec.name!r} expects rank {len(spec.shape)} {want}, got rank {len(shape)} {got}{hint}"
        )
    axis = next(i for i, (w, g) in enumerate(zip(spec.shape, shape)) if w is not None and w != g)
    raise InputShapeError(
        f"input {spec.name!r} expects shape {want}, got {got}: axis {axis} must be "
        f"{spec.shape[axis]}, not {shape[axis]}"
    )


def convert_input(spec: TensorSpec, value: Any) -> np.ndarray:
    """Convert ``value`` to ``spec.dtype`` only where no information can be lost.

    numpy arrays follow numpy's "safe" casting (int8 -> float32 is fine, float64 ->
    float32 is not). Untyped Python data (lists, scalars) takes the model's dtype
    when the kinds agree: floats for a float input, integers that fit for an integer one.
    """
    want = spec.dtype
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        arr = np.asarray(value)
        if arr.dtype == want:
            return arr if arr.dtype is want else arr.view(want)
        if np.can_cast(arr.dtype, want, "safe"):
            return arr.astype(want)
        raise InputDtypeError(
            f"input {spec.name!r} expects {want.name}, got {arr.dtype.name}: converting would lose "
            f"information; convert it yourself, e.g. x.astype(np.{want.name})"
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputDtypeError(f"input {spec.name!r}: cannot make an array of it ({exc})") from exc
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise InputDtypeError(
            f"input {spec.name!r} expects {want.name} numbers, got {type(value).__name__} of {arr.dtype.name}"
        )
    if np.can_cast(arr.dtype, want, "safe"):
        return arr.astype(want)
    if want.kind == "f" and arr.dtype.kind in "iuf":
        return arr.astype(want)
    if want.kind in "iu" and arr.dtype.kind in "iub":
        info = np.iinfo(want)
        if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
            return arr.astype(want)
        raise InputDtypeError(
            f"input {spec.name!r} expects {want.name}; values from {arr.min()} to {arr.max()} do not fit"
        )
    raise InputDtypeError(f"input {spec.name!r} expects {want.name}, got values of kind {arr.dtype.name}")
