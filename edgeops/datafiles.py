"""Data files (DESIGN.md): ``.npz`` keyed by input name, ``.npy`` for a single-input model.

Samples lie along axis 0. Calibration, validation, benchmark workloads and the
agent's replay all read data through :func:`load_inputs`, which checks the file
against the model's inputs and says what is wrong in one :class:`~edgeops.DataError`.
Both int8 paths (onnxruntime's and the TFLite quantizer's) read calibration data through
:func:`load_calibration`, with its one sample limit (:data:`MAX_CALIBRATION`).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from .errors import DataError, UsageError

MAX_CALIBRATION = 500  # samples; more rarely changes the ranges and costs time


def load_inputs(path: str | os.PathLike[str], input_names: list[str]) -> dict[str, np.ndarray]:
    """Read a data file for a model with ``input_names``; every array has the same number of samples."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataError(f"data file {p} not found")
    try:
        loaded: Any = np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"data file {p} is not a readable .npy/.npz file ({exc})") from exc
    if isinstance(loaded, np.ndarray):
        if len(input_names) != 1:
            raise DataError(
                f"{p} is a single array, but the model has {len(input_names)} inputs "
                f"({', '.join(input_names)}); save an .npz keyed by input name"
            )
        arrays = {input_names[0]: loaded}
    else:
        with loaded:
            keys = list(loaded.keys())
            missing = [n for n in input_names if n not in keys]
            if missing and len(keys) == 1 and len(input_names) == 1:
                arrays = {input_names[0]: loaded[keys[0]]}  # one array under another name: take it
            elif missing:
                raise DataError(
                    f"{p} has no array for input {', '.join(map(repr, missing))} (it holds {', '.join(keys) or 'nothing'}); "
                    "keys must be the model's input names"
                )
            else:
                arrays = {n: loaded[n] for n in input_names}
    return check_samples(arrays, p)


def check_samples(arrays: dict[str, np.ndarray], source: str = "data") -> dict[str, np.ndarray]:
    """Every array holds samples along axis 0, and all hold the same number of them."""
    counts = {n: (a.shape[0] if a.ndim else 0) for n, a in arrays.items()}
    if any(c == 0 for c in counts.values()):
        raise DataError(f"{source}: every array needs samples along axis 0; got shapes "
                        + ", ".join(f"{n} {list(a.shape)}" for n, a in arrays.items()))
    if len(set(counts.values())) > 1:
        raise DataError(f"{source}: arrays have different numbers of samples: {counts}")
    return arrays


def load_calibration(path: str | os.PathLike[str] | None, input_names: list[str], *,
                     limit: int = MAX_CALIBRATION) -> dict[str, np.ndarray]:
    """Calibration data for int8 quantization: :func:`load_inputs`, the first ``limit`` samples,
    float64 arrays as float32 (what the models take). No ``path`` is a usage error that says what to give."""
    if not path:
        raise UsageError("--quantize int8 (static) needs --calibration DATA: a .npz of representative inputs")
    arrays = load_inputs(path, input_names)
    n = min(next(iter(arrays.values())).shape[0], limit)
    return {name: (a[:n].astype(np.float32) if a.dtype == np.float64 else a[:n]) for name, a in arrays.items()}
