"""edgeops' TFLite exporter against onnx2tf on the model zoo: conversion time, ops, size and LiteRT p50.

onnx2tf (2.6.9 needs Python >= 3.12) runs as a subprocess from its own interpreter, given by
``--onnx2tf-python`` or ``$ONNX2TF_PYTHON`` (e.g. a venv made with
``python3.12 -m venv ~/.cache/onnx2tf-venv && ~/.cache/onnx2tf-venv/bin/pip install onnx2tf==2.6.9``);
its default ``flatbuffer_direct`` backend needs no TensorFlow. Both converters run as subprocesses
(``python -m edgeops convert ... --channels-last``, ``onnx2tf -i ... -b 1``), so both times include
interpreter start and imports; both write float32 models with NHWC I/O (onnx2tf's default layout,
edgeops' ``--channels-last``). Both ``.tflite`` files are then benchmarked with ``edgeops.bench``
(LiteRT, same process, same thread count). Ratios are edgeops / onnx2tf: below 1, edgeops is
smaller, faster or has fewer ops.

    ONNX2TF_PYTHON=~/.cache/onnx2tf-venv/bin/python python benchmarks/vs_onnx2tf.py [--small] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.zoo import build as zb  # noqa: E402


def run(cmd: list[str], timeout: float) -> tuple[float, str | None]:
    """Wall seconds of ``cmd``, and its last stderr/stdout line when it failed."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return timeout, f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        return seconds, (lines[-1] if lines else f"exit {proc.returncode}")[:160]
    return seconds, None


def ops(path: str) -> int:
    from edgeops.formats.tflite_file import read_tflite

    with open(path, "rb") as f:
        return sum(read_tflite(f.read(), source=path).ops.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx2tf-python", default=os.environ.get("ONNX2TF_PYTHON"),
                    help="the Python that has onnx2tf installed (default: $ONNX2TF_PYTHON)")
    ap.add_argument("--small", action="store_true", help="only the small zoo models")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--bench-seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="per conversion")
    args = ap.parse_args()
    py = args.onnx2tf_python
    if not py or subprocess.run([py, "-c", "import onnx2tf"], capture_output=True).returncode != 0:
        print("onnx2tf is not installed for --onnx2tf-python / $ONNX2TF_PYTHON: nothing to compare", file=sys.stderr)
        return 2
    from edgeops import bench
    from edgeops.errors import EdgeOpsError

    header = (f"{'model':20s} {'edgeops s':>9s} {'onnx2tf s':>9s} {'time':>6s} {'ops':>9s} {'ops':>6s} "
              f"{'KiB':>13s} {'size':>6s} {'p50 ms':>15s} {'p50':>6s}")
    print(header + "\n" + " " * 40 + "ratio  edg/o2tf  ratio  edgeops/o2tf  ratio  edgeops/onnx2tf  ratio")
    for entry in zb.entries(args.small):
        if args.only is not None and entry.name not in args.only:
            continue
        src = zb.build(entry) / "model.onnx"
        with tempfile.TemporaryDirectory(prefix="vs-onnx2tf-") as tmp:
            ours = os.path.join(tmp, "edgeops.tflite")
            t_ours, err_ours = run([sys.executable, "-m", "edgeops", "convert", str(src), "-o", ours,
                                    "--quantize", "none", "--channels-last"], args.timeout)
            t_theirs, err_theirs = run([py, "-m", "onnx2tf", "-i", str(src), "-o", os.path.join(tmp, "o2tf"), "-b",
                                        "1", "-n"], args.timeout)
            found = sorted(glob.glob(os.path.join(tmp, "o2tf", "*_float32.tflite")))
            theirs = found[0] if found else None
            if err_theirs is None and theirs is None:
                err_theirs = "no *_float32.tflite written"
            if err_ours or err_theirs:
                print(f"{entry.name:20s} edgeops: {err_ours or 'ok'} | onnx2tf: {err_theirs or 'ok'}")
                continue
            try:
                o_ops, t_ops = ops(ours), ops(theirs)
                p50 = [r.to_dict()["latency_ms"]["p50"] for r in
                       bench.run([ours, theirs], runs=20, warmup=5, min_duration=args.bench_seconds,
                                 threads=args.threads)]
            except EdgeOpsError as exc:  # e.g. edgeops' flatbuffer validator refusing onnx2tf's file
                print(f"{entry.name:20s} both converted; measuring failed: {' '.join(str(exc).split())[:200]}")
                continue
            o_kib, t_kib = os.path.getsize(ours) / 1024, os.path.getsize(theirs) / 1024
            print(f"{entry.name:20s} {t_ours:9.1f} {t_theirs:9.1f} {t_ours / t_theirs:6.2f} {o_ops:4d}/{t_ops:<4d} "
                  f"{o_ops / t_ops:6.2f} {o_kib:6.0f}/{t_kib:<6.0f} {o_kib / t_kib:6.2f} {p50[0]:7.3f}/{p50[1]:<7.3f} "
                  f"{p50[0] / p50[1]:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
