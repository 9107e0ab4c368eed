"""Our TFLite exports (fp32, int8) in LiteRT vs the ONNX model in onnxruntime, in one invocation.

For each example model: export to ``.tflite`` with ``edgeops.convert`` (no TensorFlow), fp32 and
static int8 (ai-edge-quantizer, calibrated on the model's calibration file), into a temporary
folder; then benchmark the ONNX model, the fp32 ``.tflite`` and the int8 ``.tflite`` side by side
with the ``edgeops.bench`` harness (same process, same inputs, same thread count) and print p50
ratios against onnxruntime. Both runtimes run through ``edgeops.load``, so both pay the same
(measured, ~1 %) wrapper cost.

    python benchmarks/tflite_vs_onnx.py [--min-duration 2] [--threads 1]
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
NETS = ["digits_mlp", "digits_cnn", "digits_mobilenet"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-duration", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"{'model':18s} {'onnx p50 ms':>12s} {'tflite fp32':>12s} {'tflite int8':>12s} "
          f"{'fp32/onnx':>10s} {'int8/onnx':>10s} {'sizes (KiB) onnx/fp32/int8':>28s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in NETS:
            src = MODELS / f"{name}.onnx"
            fp32, int8 = os.path.join(tmp, f"{name}.tflite"), os.path.join(tmp, f"{name}_int8.tflite")
            edgeops.convert(src, fp32, quantize="none", profile=False)
            edgeops.convert(src, int8, quantize="int8", calibration=str(MODELS / f"{name}_calib.npz"), profile=False)
            results = bench.run([src, fp32, int8], runs=300, warmup=50, min_duration=args.min_duration,
                                threads=args.threads)
            p50 = [r.to_dict()["latency_ms"]["p50"] for r in results]
            sizes = "/".join(f"{os.path.getsize(p) / 1024:.1f}" for p in (src, fp32, int8))
            print(f"{name:18s} {p50[0]:12.4f} {p50[1]:12.4f} {p50[2]:12.4f} {p50[1] / p50[0]:10.2f} "
                  f"{p50[2] / p50[0]:10.2f} {sizes:>28s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
