"""Does a shadow candidate slow the active model down? The active model's latency with and without a shadow.

One process, one active model (the digits MLP, one sample per run, one thread), four contenders
interleaved in rounds so machine noise hits them alike:

* ``bare``: ``Model.run`` with nothing watching its results;
* ``online``: the agent's result observer (predictions kept for labels, output drift), no shadow;
* ``shadow 0.1`` / ``shadow 1.0``: the same plus a shadow candidate (the same model, loaded again)
  sampling 10 % / every run, its worker thread running next to the timed loop.

Printed: each contender's p50 and p95 of the active ``run`` and their ratios to ``bare`` and to
``online`` (the shadow's own cost), the samples the shadow compared and dropped, and its agreement
(1.0: it is the same model). A ratio near 1.0 means the active answer was not delayed.

    python benchmarks/shadow_overhead.py [--model examples/models/digits_mobilenet.onnx] [--runs 5000]
                                         [--rounds 5] [--hz 500] [--json]

On a model of a few microseconds (the MLP) a busy shadow worker shows in the active p95: the two
threads share the GIL, and the active thread, after onnxruntime gave the GIL up during its run, may
wait for the worker's Python part (tens of µs) to give it back. On a model of a millisecond
or at a device's request rate (``--hz``: the worker runs in the gaps between requests) it is lost in
the noise. Numbers measured: ``benchmarks/NOTES.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgeops
from edgeops.agent.online import Online
from edgeops.agent.shadow import Shadow

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"


def timed(model, xs: np.ndarray, n: int, hz: float = 0.0) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(n, np.int64)
    period = int(1e9 / hz) if hz else 0
    next_at = clock()
    for i in range(n):
        x = xs[i % len(xs)][None]
        if period:  # requests arrive at a rate, as on a device: the shadow works in the gaps
            next_at += period
            while clock() < next_at:
                time.sleep(max(next_at - clock(), 0) / 2e9)
        t0 = clock()
        model.run(x)  # a bare array: every example model has one input
        out[i] = clock() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODELS / "digits_mlp.onnx"))
    ap.add_argument("--data", default=None, help="an .npz of inputs (default: MODEL_test.npz next to the model)")
    ap.add_argument("--runs", type=int, default=5000, help="timed runs per round and contender")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hz", type=float, default=0.0, help="run the active model at this rate (default: back to back)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    data = args.data or str(Path(args.model).with_suffix("")) + "_test.npz"
    with np.load(data) as npz:
        xs = npz[next(iter(npz.files))]
    profile = str(Path(args.model).with_suffix("")) + ".profile.json"
    contenders = {}
    with tempfile.TemporaryDirectory() as tmp:
        bare = edgeops.load(args.model, threads=1)
        contenders["bare"] = (bare, None)
        for name, rate in (("online", None), ("shadow 0.1", 0.1), ("shadow 1.0", 1.0)):
            model = edgeops.load(args.model, threads=1)
            online = Online(tmp)
            online.attach(model, "1.0", profile if Path(profile).is_file() else None)
            if rate is not None:
                online.shadow = Shadow(edgeops.load(args.model, threads=1), "candidate", rate).start()
            contenders[name] = (model, online)
        for model, _ in contenders.values():
            timed(model, xs, 500)  # warm up
        samples: dict[str, list[np.ndarray]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for name, (model, online) in contenders.items():
                samples[name].append(timed(model, xs, args.runs, args.hz))
                if online is not None and online.shadow is not None:
                    online.shadow.drain(30)  # a backlog would spill into the next contender's round
        report: dict[str, dict[str, float | int | None]] = {}
        for name, chunks in samples.items():
            lat = np.concatenate(chunks) / 1e3
            report[name] = {"p50_us": float(np.percentile(lat, 50)), "p95_us": float(np.percentile(lat, 95))}
            online = contenders[name][1]
            if online is not None and online.shadow is not None:
                snap = online.shadow.snapshot()
                report[name].update(compared=snap["count"], dropped=snap["dropped"], agreement=snap["agreement"],
                                    latency_ratio=snap["latency_ratio"])
                online.shadow.stop()
    for r in report.values():
        r["p50_vs_bare"] = r["p50_us"] / report["bare"]["p50_us"]  # type: ignore[operator]
        r["p95_vs_bare"] = r["p95_us"] / report["bare"]["p95_us"]  # type: ignore[operator]
        r["p95_vs_online"] = r["p95_us"] / report["online"]["p95_us"]  # type: ignore[operator]
    if args.json:
        json.dump({"runs": args.runs, "rounds": args.rounds, "hz": args.hz, "contenders": report}, sys.stdout, indent=2)
        print()
        return 0
    pace = f"at {args.hz:g} Hz" if args.hz else "back to back"
    print(f"active model latency, {args.rounds} rounds x {args.runs} runs per contender, {pace} (µs)")
    print(f"{'contender':<12} {'p50':>8} {'p95':>8} {'p50/bare':>9} {'p95/bare':>9} {'p95/online':>11}  shadow")
    for name, r in report.items():
        extra = ""
        if "compared" in r:
            extra = (f"compared {r['compared']}, dropped {r['dropped']}, agreement {r['agreement']}, "
                     f"candidate/active latency {r['latency_ratio']:.2f}")
        print(f"{name:<12} {r['p50_us']:8.1f} {r['p95_us']:8.1f} {r['p50_vs_bare']:9.3f} {r['p95_vs_bare']:9.3f} "
              f"{r['p95_vs_online']:11.3f}  {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
