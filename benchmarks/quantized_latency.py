"""int8 vs fp32 latency (and size) of the example conv nets, in one invocation.

Converts each model with ``edgeops.convert`` (static int8, per-channel, QDQ) into
a temporary folder, then benchmarks fp32 and int8 side by side with the
``edgeops.bench`` harness (same process, same inputs, threads=1) and prints the
p50 ratio. Batch 1 and batch 16 are both shown: tiny models are dominated by
per-call overhead at batch 1.

    python benchmarks/quantized_latency.py [--min-duration 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import edgeops
from edgeops import bench

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
NETS = ["digits_mobilenet", "digits_cnn"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-duration", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in NETS:
            src = MODELS / f"{name}.onnx"
            if not src.exists():
                print(f"{name}: not in examples/models, skipped")
                continue
            out = os.path.join(tmp, f"{name}_int8.onnx")
            report = edgeops.convert(src, out, quantize="int8", calibration=str(MODELS / f"{name}_calib.npz"),
                                     profile=False)
            print(f"{name}: {report.size_before / 1024:.1f} KiB -> {report.size_after / 1024:.1f} KiB "
                  f"({report.size_before / report.size_after:.2f}x smaller)")
            for batch in (1, 16):
                fp32, int8 = bench.run([src, out], runs=200, warmup=50, min_duration=args.min_duration,
                                       threads=args.threads, batch=batch)
                a, b = fp32.to_dict()["latency_ms"], int8.to_dict()["latency_ms"]
                print(f"  batch {batch:2d}: fp32 p50 {a['p50']:.4f} ms, int8 p50 {b['p50']:.4f} ms, "
                      f"int8/fp32 = {b['p50'] / a['p50']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
