"""One cell of the zoo matrix: convert a zoo model in one mode through the public API, then compare it.

:func:`convert_cell` calls ``edgeops.convert`` and keeps edgeops' own error message when it refuses.
:func:`compare` runs the converted model and the fp32 ONNX model (onnxruntime, through
``edgeops.load``) on the same samples and measures parity: cosine similarity (worst sample), max
absolute error, that error relative to the largest reference value, top-1 agreement for
classifiers and accuracy where the zoo has labels. A ``.c`` model is read back from its byte
array, so what is compared is exactly what a firmware build would compile in.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import edgeops
from edgeops.errors import EdgeOpsError


@dataclass(frozen=True)
class Mode:
    name: str
    suffix: str
    kwargs: dict[str, Any]
    calibrated: bool = False


MODES = (
    Mode("ONNX fp16", ".onnx", {"quantize": "fp16"}),
    Mode("ONNX int8", ".onnx", {"quantize": "int8"}, calibrated=True),
    Mode("TFLite fp32", ".tflite", {"quantize": "none"}),
    Mode("TFLite dynamic", ".tflite", {"quantize": "dynamic"}),
    Mode("TFLite int8", ".tflite", {"quantize": "int8"}, calibrated=True),
    Mode("C (int8)", ".c", {"quantize": "int8", "target": "cortex-m"}, calibrated=True),
)
MODE_BY_NAME = {m.name: m for m in MODES}


@dataclass
class Cell:
    model: str
    mode: str
    converted: bool = False
    reason: str | None = None  # edgeops' message when it refused (or when the result failed to run)
    error: str | None = None  # the exception class
    path: str | None = None  # the runnable file (.onnx / .tflite; for C, the bytes read back from the .c)
    size: int = 0
    seconds: float = 0.0
    arena_bytes: int | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    p50_ms: float | None = None
    p50_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def convert_cell(folder: Path, mode: Mode, out_dir: Path) -> Cell:
    """Convert ``folder/model.onnx`` in ``mode`` into ``out_dir``; a refusal is a Cell with its reason."""
    name = folder.name
    cell = Cell(name, mode.name)
    stem = re.sub(r"\W+", "_", f"{name}_{mode.name}").strip("_").lower()
    out = out_dir / f"{stem}{mode.suffix}"
    kwargs = dict(mode.kwargs, profile=False)
    if mode.calibrated:
        kwargs["calibration"] = str(folder / "calib.npz")
    started = time.perf_counter()
    try:
        report = edgeops.convert(folder / "model.onnx", out, **kwargs)
    except EdgeOpsError as exc:
        cell.reason, cell.error = " ".join(str(exc).split()), type(exc).__name__
        cell.seconds = time.perf_counter() - started
        return cell
    cell.seconds = time.perf_counter() - started
    cell.converted = True
    if mode.suffix == ".c":
        data = c_array_bytes(out)
        cell.path, cell.arena_bytes = str(out_dir / f"{stem}_from_c.tflite"), report.extra.get("arena_bytes")
        Path(cell.path).write_bytes(data)
        cell.size = len(data)
    else:
        cell.path, cell.size = str(out), os.path.getsize(out)
    return cell


def c_array_bytes(c_path: Path) -> bytes:
    """The model bytes of a ``.c`` written by ``edgeops convert --format c`` (the first brace-delimited array)."""
    text = c_path.read_text()
    body = text[text.index("{", text.index("[]")) + 1: text.index("};")]
    return bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-fA-F]{2})", body))


def samples(folder: Path, limit: int | None = None) -> dict[str, np.ndarray]:
    with np.load(folder / "test.npz") as f:
        return {k: f[k][:limit] for k in f.files}


def run_all(model: Any, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs for every sample, one sample at a time (batch 1, as a device runs), stacked along axis 0."""
    n = len(next(iter(data.values())))
    outs: dict[str, list[np.ndarray]] = {}
    for i in range(n):
        for k, v in model.run({k: v[i:i + 1] for k, v in data.items()}).items():
            outs.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in outs.items()}


def reference(folder: Path, limit: int | None = None) -> dict[str, np.ndarray]:
    return run_all(edgeops.load(folder / "model.onnx", threads=1), samples(folder, limit))


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], labels: np.ndarray | None = None,
            classifier: bool = False) -> dict[str, Any]:
    """Parity of every float output ``got`` shares with ``ref``; the worst output decides each figure."""
    cos, abs_err, rel_err, agree, acc = 1.0, 0.0, 0.0, None, None
    for name, r in ref.items():
        if name not in got or not np.issubdtype(r.dtype, np.floating):
            continue
        g = np.asarray(got[name], np.float64).reshape(r.shape)
        r64 = r.astype(np.float64)
        a, b = r64.reshape(len(r64), -1), g.reshape(len(g), -1)
        denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        per = np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), 1.0)
        cos = min(cos, float(per.min()))
        err = float(np.abs(g - r64).max())
        abs_err, rel_err = max(abs_err, err), max(rel_err, err / max(float(np.abs(r64).max()), 1e-12))
        if classifier and r.ndim == 2 and r.shape[1] > 1 and agree is None:
            agree = float((g.argmax(1) == r.argmax(1)).mean())
            if labels is not None:
                acc = float((g.argmax(1) == labels[:len(g)]).mean())
    return {"cosine": cos, "max_abs": abs_err, "max_rel": rel_err, "top1_agreement": agree, "accuracy": acc}


def is_classifier(m: dict[str, Any]) -> bool:
    return "classification" in m["task"] or m["task"] == "keyword spotting"


def check_cell(folder: Path, cell: Cell, ref: dict[str, np.ndarray], limit: int | None = None) -> Cell:
    """Run the converted model on the test samples and fill ``cell.parity``; a model that fails to run
    is marked as not converted, with the runtime's message."""
    if not cell.converted or cell.path is None:
        return cell
    labels = np.load(folder / "labels.npy") if (folder / "labels.npy").is_file() else None
    try:
        got = run_all(edgeops.load(cell.path, threads=1), samples(folder, limit))
    except EdgeOpsError as exc:
        cell.converted, cell.error = False, type(exc).__name__
        cell.reason = "converted, but does not run: " + " ".join(str(exc).split())
        return cell
    cell.parity = compare(ref, got, labels, is_classifier(meta(folder)))
    return cell


def isolated_cell(folder: Path, mode: Mode, out_dir: Path, ref: dict[str, np.ndarray],
                  limit: int | None = None) -> Cell:
    """:func:`convert_cell` then :func:`check_cell` in a forked child, so that a converter or runtime that
    crashes the process (a segfault in onnxruntime, say) becomes a row of the matrix instead of the end of it."""
    import multiprocessing as mp
    import signal

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        send.send(check_cell(folder, convert_cell(folder, mode, out_dir), ref, limit).to_dict())

    started = time.perf_counter()
    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    try:
        result = recv.recv()
    except EOFError:
        result = None
    proc.join()
    if result is not None:
        return Cell(**result)
    code = proc.exitcode or 0
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return Cell(folder.name, mode.name, reason=f"the process died ({how}) while converting or running the result",
                error="crash", seconds=time.perf_counter() - started)


def bench(paths: list[str], seconds: float, threads: int = 1) -> list[float]:
    """p50 latency (ms) of each model, one after another in this process, through ``edgeops.bench``."""
    from edgeops import bench as eb

    results = eb.run(paths, runs=20, warmup=5, min_duration=seconds, max_duration=max(seconds, 30.0),
                     threads=threads)
    return [r.to_dict()["latency_ms"]["p50"] for r in results]
