"""Does the benchmark harness bias what it measures?

For each example model, in one process, interleaved over rounds:
  harness  edgeops.bench.run(...) p50
  bare     a plain timed loop of the same engine (onnxruntime session.run, or the TFLite
           interpreter's set_tensor/invoke/get_tensor) on the same inputs
  model    a plain timed loop of edgeops Model.run (the code path the harness times)
and prints harness/bare and harness/model p50 ratios. harness/model isolates the
harness's own bias; harness/bare adds the runtime's overhead on top.

    python benchmarks/bench_bias.py [--runs 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import edgeops
from edgeops import bench

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"


def loop_p50(fn, feeds_pool, n: int) -> float:
    clock = time.perf_counter_ns
    out = np.empty(n, np.int64)
    for i in range(n):
        feeds = feeds_pool[i % len(feeds_pool)]
        t0 = clock()
        fn(feeds)
        out[i] = clock() - t0
    return float(np.median(out)) / 1e6


def bare_runner(model: edgeops.Model):
    if model.backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.path, opts, providers=["CPUExecutionProvider"])
        return lambda feeds: sess.run(None, feeds)
    interp = model._backend.interp  # the same interpreter object, driven by hand
    i_in, i_out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    name = model.inputs[0].name

    def run(feeds):
        interp.set_tensor(i_in, feeds[name])
        interp.invoke()
        return interp.get_tensor(i_out)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    x = np.load(MODELS / "digits_mlp_test.npz")["pixels"]
    pool = [{"pixels": x[i:i + 1]} for i in range(64)]
    for name in ("digits_mlp.onnx", "digits_mlp.tflite"):
        try:
            model = edgeops.load(MODELS / name, threads=1)
        except edgeops.EdgeOpsError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        bare = bare_runner(model)
        ratios_bare, ratios_model = [], []
        for r in range(args.rounds):
            print(f"{name}: round {r + 1}/{args.rounds}", file=sys.stderr)
            (res,) = bench.run([model], runs=args.runs, warmup=100, min_duration=0)
            h = res.to_dict()["latency_ms"]["p50"]
            b = loop_p50(bare, pool, args.runs)
            m = loop_p50(model.run, pool, args.runs)
            ratios_bare.append(h / b)
            ratios_model.append(h / m)
        print(f"{name:18s} harness/bare {np.median(ratios_bare):.3f}   harness/Model.run loop "
              f"{np.median(ratios_model):.3f}   (medians of {args.rounds} rounds; p50 bare {b * 1e3:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
