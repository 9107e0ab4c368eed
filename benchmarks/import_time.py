"""Time ``import edgeops`` in fresh interpreters against ``import numpy`` (what it must pull in anyway).

    python benchmarks/import_time.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = "import time; t=time.perf_counter(); import {mod}; print(time.perf_counter()-t)"


def measure(mod: str, repeat: int) -> float:
    times = [float(subprocess.run([sys.executable, "-c", CODE.format(mod=mod)], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(repeat)]
    return statistics.median(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    numpy_ms = measure("numpy", args.repeat)
    edgeops_ms = measure("edgeops", args.repeat)
    runtime_ms = measure("edgeops.runtime", args.repeat)
    print(f"import numpy           median {numpy_ms:6.1f} ms")
    print(f"import edgeops         median {edgeops_ms:6.1f} ms  ({edgeops_ms / numpy_ms:.2f}x numpy)")
    print(f"import edgeops.runtime median {runtime_ms:6.1f} ms  ({runtime_ms / numpy_ms:.2f}x numpy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
