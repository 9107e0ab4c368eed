"""Feeding a data set through a model: input matching, batching, chunks, progress.

A :class:`Feeder` knows how one model wants the samples of a data set
(DESIGN.md "Data files": samples along axis 0):

* inputs are matched by name, or by position when the names differ but the
  counts agree (a TFLite twin often calls its input ``serving_default_x:0``);
* a dynamic batch axis takes up to ``BATCH`` samples per ``Model.run``; a fixed
  batch of 1 takes one sample at a time; a fixed batch of ``k`` takes ``k``,
  the last call padded with copies of the last sample (their outputs are dropped);
  a model without a batch axis gets ``arr[i]``;
* float data is cast to a float input's precision (a float16 candidate), and
  a quantized TFLite input (int8/uint8 with scale and zero point) gets the data
  quantized, its quantized outputs dequantized, so both models are compared in
  the same units.

:func:`chunks` cuts the samples into chunks of bounded memory, and shows a
progress bar on stderr for long runs in a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..datafiles import check_samples, load_inputs
from ..errors import DataError, UsageError
from ..loading import load
from ..runtime.model import Model
from ..runtime.spec import TensorSpec

BATCH = 64  # samples per Model.run on a dynamic batch axis
CHUNK_BYTES = 32 << 20  # input bytes per chunk of samples
CHUNK_MAX = 1024
PROGRESS_MIN = 2000  # samples; smaller runs finish before a bar is worth drawing


def open_model(model: str | os.PathLike[str] | Model, threads: int | None) -> Model:
    if isinstance(model, Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"a model is a path (.onnx, .tflite) or an edgeops Model, not a {type(model).__name__}")
    return load(model, threads=threads)


def label(model: Model) -> str:
    return model.path or "(in memory)"


def read_data(data: Any, model: Model) -> dict[str, np.ndarray]:
    """The data set as ``{name: array}``: a data file (read for ``model``'s inputs) or a dict of arrays."""
    names = [s.name for s in model.inputs]
    if isinstance(data, (str, os.PathLike)):
        return load_inputs(data, names)
    if isinstance(data, np.ndarray) and len(names) == 1:
        data = {names[0]: data}
    if not isinstance(data, dict) or not data:
        raise UsageError("data is a data-file path (.npz/.npy) or a non-empty dict {input name: array}")
    return check_samples({str(k): np.asarray(v) for k, v in data.items()}, "data")


class Feeder:
    """Runs one model over ranges of samples of a data set; see the module docstring."""

    def __init__(self, model: Model, arrays: dict[str, np.ndarray], role: str):
        self.model = model
        self.role = role
        self.notes: list[str] = []
        self.keys = self._match_inputs(arrays)
        self.arrays = arrays
        self.batched, self.batch, self.fixed = self._batching(arrays)
        self._out_specs = {s.name: s for s in model.outputs}

    def _match_inputs(self, arrays: dict[str, np.ndarray]) -> dict[str, str]:
        names = [s.name for s in self.model.inputs]
        if all(n in arrays for n in names):
            return {n: n for n in names}
        if len(names) == len(arrays):
            keys = list(arrays)
            pairs = dict(zip(names, keys))
            self.notes.append(f"{self.role} inputs matched to the data by position: "
                              + ", ".join(f"{n} <- {k}" for n, k in pairs.items()))
            return pairs
        missing = [n for n in names if n not in arrays]
        raise DataError(f"the data has no array for {self.role} input(s) {', '.join(map(repr, missing))} "
                        f"(it holds {', '.join(arrays)}); keys must be the model's input names")

    def _batching(self, arrays: dict[str, np.ndarray]) -> tuple[bool, int, bool]:
        """(whether the model has a batch axis, samples per run, whether that number is fixed)."""
        modes = set()
        for spec in self.model.inputs:
            a = arrays[self.keys[spec.name]]
            if spec.shape is None:  # unknown rank: one sample with its batch axis, as DESIGN.md says
                modes.add(("batch", 1, True))
            elif len(spec.shape) == a.ndim:
                first = spec.shape[0]
                modes.add(("batch", BATCH, False) if first is None else ("batch", int(first), True))
            elif len(spec.shape) == a.ndim - 1:
                modes.add(("sample", 1, True))
            else:
                self._misfit(spec, a)
            if spec.shape is not None:
                per_sample = spec.shape[1:] if len(spec.shape) == a.ndim else spec.shape
                if any(want is not None and want != got for want, got in zip(per_sample, a.shape[1:])):
                    self._misfit(spec, a)
        fixed_batches = {m for m in modes if m[0] == "batch" and m[2]}
        if len(fixed_batches) == 1 and all(m[0] == "batch" for m in modes):
            modes = fixed_batches  # a dynamic batch axis next to a fixed one follows the fixed one
        if len(modes) > 1:
            raise DataError(f"{self.role} inputs disagree on the batch axis ({sorted(modes)}); "
                            "validate cannot feed such a model sample by sample")
        kind, batch, fixed = modes.pop()
        return kind == "batch", batch, fixed

    def _misfit(self, spec: TensorSpec, a: np.ndarray) -> None:
        raise DataError(f"{self.role} input {spec.describe()} does not fit data of shape {list(a.shape)} "
                        "(samples along axis 0, with the batch axis kept when the model has one)")

    # -- running --------------------------------------------------------------------------------

    def feed(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The model's feed for samples ``start:stop`` (one sample, without the axis, if it has none)."""
        feeds = {}
        for spec in self.model.inputs:
            a = self.arrays[self.keys[spec.name]]
            part = a[start:stop] if self.batched else a[start]
            feeds[spec.name] = _adapt_input(spec, np.ascontiguousarray(part))
        return feeds

    def sample_feed(self, i: int) -> dict[str, np.ndarray]:
        """One sample as the model takes it (padded to a fixed batch larger than 1)."""
        feeds = self.feed(i, i + 1)
        if self.batched and self.batch > 1 and self.fixed:
            feeds = {k: np.repeat(v, self.batch, axis=0) for k, v in feeds.items()}
        return feeds

    def run(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Outputs for samples ``start:stop``, each with the samples along axis 0."""
        parts: dict[str, list[np.ndarray]] = {s.name: [] for s in self.model.outputs}
        step = self.batch if self.batched else 1
        for i in range(start, stop, step):
            j = min(i + step, stop)
            if not self.batched:
                outs = self.model.run(self.feed(i, j))
                for name, v in outs.items():
                    parts[name].append(self._adapt_output(name, np.asarray(v))[None])
                continue
            feeds = self.feed(i, j)
            pad = step - (j - i) if self.fixed else 0
            if pad:
                feeds = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in feeds.items()}
            outs = self.model.run(feeds)
            for name, v in outs.items():
                v = np.asarray(v)
                if v.ndim == 0 or v.shape[0] != j - i + pad:
                    raise DataError(f"{self.role} output {name!r} has shape {list(v.shape)} for a batch of "
                                    f"{j - i + pad}; validate needs outputs with the batch along axis 0")
                parts[name].append(self._adapt_output(name, v[: j - i]))
        return {name: np.concatenate(p) for name, p in parts.items()}

    def _adapt_output(self, name: str, v: np.ndarray) -> np.ndarray:
        spec = self._out_specs.get(name)
        if spec is not None and spec.quantization and v.dtype.kind in "iu":
            scale, zero = spec.quantization
            if scale:
                return (v.astype(np.float32) - zero) * np.float32(scale)
        return v


def _adapt_input(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    want = spec.dtype
    if arr.dtype == want:
        return arr
    if spec.quantization and spec.quantization[0] and want.kind in "iu" and arr.dtype.kind == "f":
        scale, zero = spec.quantization
        info = np.iinfo(want)
        return np.clip(np.round(arr / scale + zero), info.min, info.max).astype(want)
    if want.kind == "f" and arr.dtype.kind == "f":
        return arr.astype(want)
    return arr  # Model.run converts what it can without loss and explains the rest


def adaptation_notes(feeder: Feeder) -> list[str]:
    """What the feeder changes about the data for this model, in words."""
    notes = list(feeder.notes)
    for spec in feeder.model.inputs:
        a = feeder.arrays[feeder.keys[spec.name]]
        if a.dtype == spec.dtype:
            continue
        if spec.quantization and spec.quantization[0] and spec.dtype.kind in "iu" and a.dtype.kind == "f":
            notes.append(f"{feeder.role} input {spec.name!r} is {spec.dtype.name}: data quantized with scale "
                         f"{spec.quantization[0]:.6g}, zero point {spec.quantization[1]}")
        elif spec.dtype.kind == "f" and a.dtype.kind == "f":
            notes.append(f"{feeder.role} input {spec.name!r} takes {spec.dtype.name}: data cast from {a.dtype.name}")
    if any(s.quantization and s.dtype.kind in "iu" for s in feeder.model.outputs):
        notes.append(f"{feeder.role} quantized outputs dequantized before comparing")
    return notes


def chunk_size(arrays: dict[str, np.ndarray]) -> int:
    per_sample = sum(a[0].nbytes for a in arrays.values()) or 1
    return max(1, min(CHUNK_MAX, CHUNK_BYTES // per_sample))


def chunks(n: int, size: int, description: str) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges over ``n`` samples, with a progress bar on stderr for long runs."""
    with _progress(n, description) as advance:
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield start, stop
            advance(stop - start)


@contextmanager
def _progress(total: int, description: str) -> Iterator[Any]:
    from .._progress import Bars

    with Bars(enabled=None if total >= PROGRESS_MIN else False) as bars:
        done = [0]

        def advance(k: int) -> None:
            done[0] += k
            bars.update(description, done[0], total)

        yield advance
