"""A long fuzz run of the firmware_bridge C library: frame decoder, message parser and request handling.

The stdin harness (``firmware_bridge/tests/fuzz_stdin.c``, ``-fsanitize=address,undefined``) gets
``--cases`` seeded mutations of the golden frames (tools/bridgefuzz.py: bit flips, truncations, splices,
garbage, re-framed payload mutations) in batches, and every batch is checked against the Python codec
(same frames, same decodes, same drops). Prints the totals and the rate, and the harness's time per
batch as a ratio to the Python codec's on the same bytes. Where ``clang`` is installed, the libFuzzer
target (``make -C firmware_bridge libfuzzer``) then runs for ``--libfuzzer-seconds`` seeded with the
golden frames.

    python benchmarks/bridge_fuzz.py [--cases 1000000] [--seed 1] [--batch 2000] [--libfuzzer-seconds 60]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import bridgefuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--libfuzzer-seconds", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        harness = bridgefuzz.build(tmp)
        start = time.perf_counter()
        try:
            totals = bridgefuzz.run(harness, bridgefuzz.cases(args.cases, args.seed), batch=args.batch)
        except bridgefuzz.FuzzFailure as exc:
            crash = Path(tmp).parent / f"bridge-fuzz-crash-{args.seed}.bin"
            crash.write_bytes(exc.case)
            print(f"FAILED: {exc}\nthe input is in {crash}: {harness} < {crash}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - start
        print(f"{totals.cases} cases in {totals.batches} batches, {elapsed:.1f} s ({totals.cases / elapsed:,.0f} "
              f"cases/s): {totals.bytes:,} bytes, {totals.frames:,} good frames, {totals.decoded:,} decoded "
              f"messages, {totals.dropped:,} dropped frames; no sanitizer report, C and Python agree")
        sample = b"".join(b"\x00" + c for c in bridgefuzz.cases(args.batch, args.seed + 1))
        t0 = time.perf_counter()
        bridgefuzz._run_harness(harness, sample, 60.0)
        t_c = time.perf_counter() - t0
        t0 = time.perf_counter()
        bridgefuzz.python_view(sample)
        t_py = time.perf_counter() - t0
        print(f"one batch of {args.batch} cases: sanitizer-built C harness (process start included) "
              f"{t_c * 1e3:.1f} ms, Python codec {t_py * 1e3:.1f} ms: ratio C/Python {t_c / t_py:.2f}")
        if shutil.which("clang") is None:
            print("clang not installed: libFuzzer run skipped")
            return 0
        proc = subprocess.run(["make", "-s", "-C", str(bridgefuzz.FIRMWARE), "libfuzzer", f"BUILD={tmp}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"libFuzzer target did not build:\n{proc.stderr[-2000:]}")
            return 1
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for p in bridgefuzz.GOLDEN.glob("*.bin"):
            shutil.copy(p, corpus / p.name)
        proc = subprocess.run([str(Path(tmp) / "libfuzzer" / "fuzz_libfuzzer"), str(corpus),
                               f"-max_total_time={args.libfuzzer_seconds}", f"-seed={args.seed}"],
                              capture_output=True, text=True)
        print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "(no libFuzzer output)")
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
