"""How much does ``Model.run`` cost over a bare onnxruntime ``session.run``?

Both run the same tiny model (the digits MLP, one sample) in this process with
one thread, interleaved in rounds so that machine noise hits both alike. The
budget (foundation issue): the edgeops median within 3 % of the bare median.
Also prints the cost of the statistics bookkeeping alone and of guardrails when on.

    python benchmarks/runtime_overhead.py [--runs 20000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import edgeops
from edgeops.runtime.stats import RunStats

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, n: int) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(n, np.int64)
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "examples" / "models" / "digits_mlp.onnx"))
    ap.add_argument("--runs", type=int, default=20000, help="timed runs per round and contender")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    model = edgeops.load(args.model, threads=1)
    guarded = edgeops.load(args.model, threads=1)
    guarded.enable_guardrails(Path(args.model).with_suffix(".profile.json"), inputs="clip")
    name = model.inputs[0].name
    x = np.load(ROOT / "examples" / "models" / "digits_mlp_test.npz")[name][:1]
    feeds = {name: x}
    stats = RunStats()

    contenders = {
        "bare session.run": lambda: session.run(None, feeds),
        "edgeops Model.run": lambda: model.run(feeds),
        "Model.run + guardrails": lambda: guarded.run(feeds),
        "stats.record alone": lambda: stats.record(12345),
    }
    tflite_path = Path(args.model).with_suffix(".tflite")
    if tflite_path.exists():
        try:
            tfl = edgeops.load(tflite_path, threads=1)
        except edgeops.EdgeOpsError as exc:
            print(f"tflite part skipped: {exc}", file=sys.stderr)
        else:
            interp = tfl._backend.interp  # the same engine, driven by hand
            i_in = interp.get_input_details()[0]["index"]
            i_out = interp.get_output_details()[0]["index"]

            def bare_tflite():
                interp.set_tensor(i_in, x)
                interp.invoke()
                return interp.get_tensor(i_out)

            contenders["bare tflite invoke"] = bare_tflite
            contenders["edgeops Model.run (tflite)"] = lambda: tfl.run(feeds)
    samples: dict[str, list[np.ndarray]] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm up
        timed(fn, 2000)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        for key, fn in contenders.items():
            samples[key].append(timed(fn, args.runs))
    med = {k: float(np.median(np.concatenate(v))) / 1e3 for k, v in samples.items()}
    base = med["bare session.run"]
    result = {
        "model": args.model,
        "onnxruntime": ort.__version__,
        "median_us": med,
        "ratio_model_vs_bare": med["edgeops Model.run"] / base,
        "ratio_guarded_vs_bare": med["Model.run + guardrails"] / base,
        "ratio_tflite_model_vs_bare": (med["edgeops Model.run (tflite)"] / med["bare tflite invoke"]
                                       if "bare tflite invoke" in med else None),
        "per_round_ratio": [float(np.median(m) / np.median(b)) for m, b in
                            zip(samples["edgeops Model.run"], samples["bare session.run"])],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in med.items():
            print(f"{k:26s} median {v:8.2f} us")
        print(f"Model.run / session.run      = {result['ratio_model_vs_bare']:.3f}  (budget <= 1.03)")
        print(f"guarded Model.run / session.run = {result['ratio_guarded_vs_bare']:.3f}")
        if result["ratio_tflite_model_vs_bare"] is not None:
            print(f"Model.run (tflite) / bare interpreter = {result['ratio_tflite_model_vs_bare']:.3f}")
        print("per-round ratios: " + ", ".join(f"{r:.3f}" for r in result["per_round_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
