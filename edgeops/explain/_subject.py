"""A model seen from outside: a function of a batch of samples, its calls counted.

Every method in :mod:`edgeops.explain` perturbs the data and asks a :class:`Subject` for the
outputs; nothing reads the graph, so any format and backend :func:`edgeops.load` opens works.
The samples go through :class:`edgeops.validate.runner.Feeder`, the same feeding ``edgeops
validate`` uses: a dynamic batch axis gets up to ``BATCH`` rows per :meth:`edgeops.Model.run`,
a batch fixed at 1 one row at a time (a fixed batch of k is padded), quantized TFLite inputs get
the data quantized. :attr:`Subject.calls` counts the :meth:`~edgeops.Model.run` calls.

The data's layout is described once here too: which inputs are tabular, which one is an image
(:class:`ImageLayout`), and what the per-sample *target* is (the class an attribution explains).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, UsageError

BATCH = 256  # rows per Model.run on a dynamic batch axis
CHUNK_ROWS = 4096  # perturbed rows built at once (memory stays bounded)


class Subject:
    """One model over the data's inputs (keyed as in the data file); ``predict`` returns (n, k) float64."""

    def __init__(self, model: Any, arrays: dict[str, np.ndarray], *, output: str | None = None,
                 role: str = "model", progress: Callable[[int], None] | None = None):
        from ..validate.runner import Feeder, open_model

        self.model = open_model(model, None)
        self.role = role
        self._feeder_type = Feeder
        probe = Feeder(self.model, {k: v[:1] for k, v in arrays.items()}, role)  # checks names and shapes once
        self.keys = probe.keys
        names = [o.name for o in self.model.outputs]
        if output is None:
            output = names[0]
        elif output not in names:
            raise UsageError(f"{role} has no output {output!r}; it has {', '.join(names)}")
        self.output = output
        self.calls = 0
        self.rows = 0
        self.progress = progress

    @property
    def label(self) -> str:
        return self.model.path or "(in memory)"

    def predict(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The chosen output for every row of ``arrays`` as (rows, values) float64."""
        n = next(iter(arrays.values())).shape[0]
        feeder = self._feeder_type(self.model, arrays, self.role)
        if feeder.batched and not feeder.fixed:
            feeder.batch = BATCH
        step = feeder.batch if feeder.batched else 1
        out = feeder.run(0, n)[self.output]
        self.calls += math.ceil(n / step)
        self.rows += n
        if self.progress is not None:
            self.progress(self.rows)
        return np.asarray(out, dtype=np.float64).reshape(n, -1)


# -- the data ---------------------------------------------------------------------------------------


def read_labels(labels: Any, n: int) -> np.ndarray | None:
    """Labels as a 1-D array of ``n`` (a .npy path or an array; one-hot rows become class indices)."""
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        try:
            y = np.load(os.fspath(labels), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"labels {os.fspath(labels)} is not a readable .npy file ({exc})") from exc
    else:
        y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if len(y) != n:
        raise DataError(f"the labels hold {len(y)} values for {n} samples; give one label per sample")
    return y


def is_classes(y: np.ndarray | None) -> bool:
    """Integer labels are classes; float labels are regression targets (as ``edgeops validate`` reads them)."""
    return y is not None and y.dtype.kind in "iub"


@dataclass(frozen=True)
class ImageLayout:
    """Where the channel, height and width axes are in one sample (no batch axis); ``channel`` None for (H, W)."""

    channel: int | None
    height: int
    width: int

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> ImageLayout | None:
        """NCHW or NHWC by the channel count (1, 3 or 4), NCHW when both could be; (H, W) grayscale; else None."""
        if len(shape) == 2 and min(shape) >= 4:
            return cls(None, 0, 1)
        if len(shape) != 3:
            return None
        first, last = shape[0] in (1, 3, 4), shape[2] in (1, 3, 4)
        if first and min(shape[1:]) >= 4:
            return cls(0, 1, 2)
        if last and min(shape[:2]) >= 4:
            return cls(2, 0, 1)
        return None

    def hw(self, shape: tuple[int, ...]) -> tuple[int, int]:
        return shape[self.height], shape[self.width]

    def region(self, shape: tuple[int, ...], y0: int, y1: int, x0: int, x1: int) -> tuple[slice, ...]:
        """Index of a rectangle over every channel of one sample."""
        idx = [slice(None)] * len(shape)
        idx[self.height], idx[self.width] = slice(y0, y1), slice(x0, x1)
        return tuple(idx)

    def to_hwc(self, sample: np.ndarray) -> np.ndarray:
        if self.channel is None:
            return sample[..., None]
        return np.moveaxis(sample, (self.height, self.width, self.channel), (0, 1, 2))


@dataclass(frozen=True)
class Segment:
    """A group of input values treated as one feature: ``mask`` over one sample of input ``key``."""

    name: str
    key: str
    mask: Any  # a boolean array over one sample's shape, or slice(None) for the whole input


def segments(arrays: dict[str, np.ndarray], feature_names: list[str] | None, patch: int | None) -> tuple[
        list[Segment], ImageLayout | None]:
    """The features a method ranks: one per input (several inputs), per column (a table), per patch
    (an image: a grid of ``patch`` x ``patch`` squares), else per index along the last axis."""
    keys = list(arrays)
    if len(keys) > 1:
        return [Segment(k, k, slice(None)) for k in keys], None
    key = keys[0]
    shape = arrays[key].shape[1:]
    layout = ImageLayout.of(shape)
    if layout is not None:
        h, w = layout.hw(shape)
        p = patch or default_patch(h, w)
        out = []
        for y0 in range(0, h, p):
            for x0 in range(0, w, p):
                mask = np.zeros(shape, dtype=bool)
                mask[layout.region(shape, y0, min(y0 + p, h), x0, min(x0 + p, w))] = True
                out.append(Segment(f"{y0}:{min(y0 + p, h)},{x0}:{min(x0 + p, w)}", key, mask))
        return out, layout
    width = shape[-1] if shape else 1
    names = feature_names or [str(j) for j in range(width)]
    if len(names) != width:
        raise UsageError(f"{len(names)} feature names for {width} features along the last axis of {key!r}")
    out = []
    for j in range(width):
        mask = np.zeros(shape, dtype=bool)
        mask[..., j] = True
        out.append(Segment(names[j], key, mask))
    return out, None


def default_patch(h: int, w: int) -> int:
    """An eighth of the shorter side, and at least 2 pixels (one pixel of a small image says little)."""
    return max(min(2, h, w), min(h, w) // 8)


def targets(output: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The value of the output an attribution explains, per sample: the label's class when there are class
    labels, else the model's top class (the one value of a single-valued output)."""
    if output.shape[1] == 1:
        return np.zeros(len(output), dtype=np.int64)
    if labels is not None and is_classes(labels):
        t = labels.astype(np.int64)
        if t.min() < 0 or t.max() >= output.shape[1]:
            raise DataError(f"labels run from {t.min()} to {t.max()}, outside the output's {output.shape[1]} classes")
        return t
    return output.argmax(axis=1)


def pick(output: np.ndarray, target: np.ndarray | int) -> np.ndarray:
    """``output[i, target[i]]`` for every row."""
    t = np.broadcast_to(np.asarray(target), (len(output),))
    return output[np.arange(len(output)), t]
