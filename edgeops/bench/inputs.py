"""Inputs for a benchmark: a pool of varied random tensors, or samples from a data file.

Every run gets a different input (openvino#26293: a benchmark that feeds one
constant tensor flatters caches and branch predictors). Inputs are made before
timing starts and cycled, so their cost is not measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datafiles import load_inputs
from ..errors import DataError, UsageError
from ..runtime.spec import TensorSpec, format_shape

POOL_BYTES = 256 << 20  # cap on the memory the random pool may take
POOL_MAX = 64


def concrete_shape(spec: TensorSpec, batch: int, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape to feed ``spec``: ``--input-shape`` if given, else the model's with the batch filled in."""
    if spec.name in shapes:
        return tuple(shapes[spec.name])
    if spec.shape is None:
        raise UsageError(f"input {spec.name!r} has no known shape; give --input-shape {spec.name}:D1,D2,...")
    dims = list(spec.shape)
    if dims and dims[0] is None:
        dims[0] = batch
    elif batch != 1 and dims and dims[0] != batch:
        raise UsageError(f"input {spec.describe()} has a fixed batch of {dims[0]}; --batch {batch} cannot apply")
    known = [d for d in dims if d is not None]
    if len(known) < len(dims):
        raise UsageError(
            f"input {spec.describe()} has dynamic dims besides the batch; give --input-shape "
            f"{spec.name}:{','.join(str(d if d is not None else 'N') for d in dims)}"
        )
    return tuple(int(d) for d in known)


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float64).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (int(info.min), int(info.max)) if info.bits <= 16 else (0, 10)
        return rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise UsageError(f"cannot make random inputs of dtype {dtype.name}; give a data file")


def random_pool(specs: list[TensorSpec], shapes: dict[str, tuple[int, ...]], seed: int, wanted: int,
                raw: Any = None) -> list[dict[str, np.ndarray]]:
    """``wanted`` (capped) different feed dicts; ``raw(spec, shape)`` gives the shape/dtype to draw instead."""
    rng = np.random.default_rng(seed)
    plan = []
    for s in specs:
        shape, dtype = raw(s, shapes[s.name]) if raw else (shapes[s.name], s.dtype)
        plan.append((s.name, tuple(shape), np.dtype(dtype)))
    per_feed = sum(int(np.prod(shape)) * dt.itemsize for _, shape, dt in plan) or 1
    size = max(2, min(POOL_MAX, wanted, POOL_BYTES // per_feed))
    return [{name: random_array(rng, shape, dt) for name, shape, dt in plan} for _ in range(size)]


def data_pool(path: str, specs: list[TensorSpec], batch: int) -> list[dict[str, np.ndarray]]:
    """Batches of ``batch`` consecutive samples from a data file, cycling (DESIGN.md data files)."""
    arrays = load_inputs(path, [s.name for s in specs])
    n = next(iter(arrays.values())).shape[0]
    if n < batch:
        raise DataError(f"{path} holds {n} samples, fewer than --batch {batch}")
    for s in specs:
        a = arrays[s.name]
        if s.shape is not None and len(s.shape) == a.ndim and s.shape[0] not in (None, batch):
            raise DataError(f"input {s.describe()} takes a batch of {s.shape[0]}, not {batch}")
        if s.shape is not None and len(s.shape) != a.ndim:
            raise DataError(f"{path}: {s.name!r} has samples of shape {format_shape(a.shape[1:])}; the model "
                            f"wants {s.describe()} (samples along axis 0, batch axis kept)")
    count = min(POOL_MAX, n // batch)
    return [{k: np.ascontiguousarray(a[i * batch:(i + 1) * batch]) for k, a in arrays.items()} for i in range(count)]
