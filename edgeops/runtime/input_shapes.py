"""``--input-shape NAME:D1,D2,...``: the one parser and checker behind every command that takes it.

``edgeops bench`` and ``edgeops convert`` parse the option with :func:`parse`; their Python APIs
(``bench.run(input_shapes=...)``, ``convert(input_shapes=...)``) check the dict against the model's
inputs with :func:`check`. So a shape is accepted or refused the same way everywhere, with one line
that says why (a :class:`~edgeops.errors.UsageError`, exit 2):

- the text must be ``NAME:D1,D2,...`` with whole numbers (a name may itself hold ``:``, as in ``x:0:1,3``);
- every dim is at least 1 (``-1`` or ``0`` would mean "dynamic" or an empty batch);
- a name may be given once, and must be one of the model's inputs;
- the rank and the dims the model fixes must agree.

:func:`batch_of` reads the batch out of the shapes: the leading dim given for an input whose leading
axis is dynamic. ``bench`` reports it as the batch and counts it in the throughput.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import UsageError
from .spec import format_shape

__all__ = ["parse", "check", "batch_of"]

Declared = Mapping[str, "tuple[int | None, ...] | None"]  # the model's inputs: name -> shape, None = dynamic
EXAMPLE = "e.g. pixels:1,64"


def parse(values: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``["image:4,1,8,8"]`` -> ``{"image": (4, 1, 8, 8)}``, or a one-line UsageError."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in values:
        name, sep, dims = text.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise UsageError(f"--input-shape {text!r} must look like NAME:D1,D2,... ({EXAMPLE})") from None
        if name in shapes:
            raise UsageError(f"--input-shape names {name} twice; give each input once")
        shapes[name] = _positive(name, shape)
    return shapes


def check(shapes: Mapping[str, Sequence[int]] | None, declared: Declared) -> dict[str, tuple[int, ...]]:
    """``shapes`` checked against the model's inputs (``declared``: name -> shape, ``None`` for a
    dynamic dim or an unknown shape); returns them as tuples of ints."""
    out: dict[str, tuple[int, ...]] = {}
    unknown = [name for name in shapes or {} if name not in declared]
    if unknown:
        raise UsageError(f"--input-shape names {', '.join(unknown)}, which the model does not have "
                         f"(inputs: {', '.join(declared) or 'none'})")
    for name, given in (shapes or {}).items():
        shape = _positive(name, tuple(_int(name, d) for d in given))
        want = declared[name]
        if want is not None:
            if len(want) != len(shape):
                raise UsageError(f"--input-shape {name}: the model's input has rank {len(want)}, not {len(shape)} "
                                 f"({format_shape(want)})")
            for axis, (w, g) in enumerate(zip(want, shape)):
                if w is not None and w != g:
                    raise UsageError(f"--input-shape {name}: axis {axis} is fixed at {w} in the model "
                                     f"({format_shape(want)}), cannot be {g}")
        out[name] = shape
    return out


def batch_of(shapes: Mapping[str, tuple[int, ...]], declared: Declared) -> int | None:
    """The batch the shapes give: the leading dim of each input whose leading axis is dynamic in the
    model (``None`` if no such input is given). Inputs that disagree are a UsageError."""
    batches = {name: shape[0] for name, shape in shapes.items()
               if shape and (want := declared.get(name)) and want[0] is None}
    if len(set(batches.values())) > 1:
        given = ", ".join(f"{name} {b}" for name, b in batches.items())
        raise UsageError(f"--input-shape gives different batches ({given}); give every input the same first dim")
    return next(iter(batches.values()), None)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise UsageError(f"--input-shape {name}: dims must be whole numbers, not {value!r}")
    return int(value)


def _positive(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    bad = [d for d in shape if d < 1]
    if bad:
        raise UsageError(f"--input-shape {name}:{','.join(map(str, shape))}: every dim must be at least 1, "
                         f"not {bad[0]} (a shape gives sizes; {EXAMPLE})")
    return shape

