"""The crash check: no mutated .tflite that read_tflite accepts may kill the TFLite interpreter.

Mutants of the committed models that pass the validator run through whichever interpreter
is installed (LiteRT's ``ai_edge_litert``, or ``tflite_runtime``, which does not verify the
flatbuffer at all), many per subprocess (``interpreter_batch.py``). A case that kills the
process by a signal is a validator bug: tighten ``edgeops/formats/tflite_file.py`` and add
the case to ``test_tflite_reader.py``'s regression edits.

Set EDGEOPS_CRASH_CASES for more accepted mutants per model (default 1000). Deep runs of
50,000 per model and interpreter found the crashes the ``regression-*`` cases in
``test_tflite_reader.py`` now guard (an opcode turned into another op's, a subgraph output
or required input of -1, an operator listed twice, a tensor read before it is written,
bad quantization); after those fixes, 50,000 per model ran clean on LiteRT 2.3.0 and on
tflite_runtime 2.14.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgeops.errors import ModelFormatError
from edgeops.formats import read_tflite, tflite_io_map
from edgeops.runtime.backends.tflite import on_arm64

HERE = Path(__file__).resolve().parent
MODELS = ("tiny.tflite", "tiny_int8.tflite")
CASES = int(os.environ.get("EDGEOPS_CRASH_CASES", "1000"))
BATCH_TIMEOUT = float(os.environ.get("EDGEOPS_CRASH_BATCH_TIMEOUT", "300"))  # seconds; emulated aarch64 needs more
INTERPRETERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package is missing
        return False


def accepted_mutants(mutants, model: str, want: int, module: str = "") -> tuple[list[tuple[str, bytes]], int]:
    """The first ``want`` mutants read_tflite accepts, and how many it rejected on the way. For
    tflite_runtime on aarch64, a mutant with a hazard the TFLite backend refuses there counts as rejected."""
    kept, rejected = [], 0
    arm_tflite_runtime = module.startswith("tflite_runtime") and on_arm64()
    for seed in range(1, 1000):
        for name, data in mutants((HERE / "data" / model).read_bytes(), seed=seed * 7919, count=2000):
            hazards: list[str] = []
            try:
                read_tflite(data)
                tflite_io_map(data, hazards=hazards)
            except ModelFormatError:
                rejected += 1
                continue
            if hazards and arm_tflite_runtime:
                rejected += 1
                continue
            kept.append((name, data))
            if len(kept) == want:
                return kept, rejected
    return kept, rejected


def run_batches(module: str, cases: list[tuple[str, bytes]], tmp_path: Path) -> tuple[dict, list]:
    """Run every case; restart after each death. Returns (outcome counts, [(name, returncode)])."""
    path = tmp_path / "cases.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(d)) + d for _, d in cases))
    outcomes: dict[str, int] = {}
    deaths = []
    start = 0
    while start < len(cases):
        proc = subprocess.run(
            [sys.executable, str(HERE / "interpreter_batch.py"), module, str(path), str(start)],
            capture_output=True, text=True, timeout=BATCH_TIMEOUT)
        lines = proc.stdout.splitlines()
        for line in lines:
            if line.startswith("done "):
                outcome = line.split()[2]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if lines and lines[-1] == "finished":
            break
        started = [int(line.split()[1]) for line in lines if line.startswith("start ")]
        if not started:
            pytest.fail(f"the batch runner died before the first case: {proc.stderr[-2000:]}")
        deaths.append((cases[started[-1]][0], proc.returncode))
        start = started[-1] + 1
    return outcomes, deaths


@pytest.mark.parametrize("module", INTERPRETERS)
@pytest.mark.parametrize("model", MODELS)
def test_accepted_mutants_never_crash_the_interpreter(module, model, mutants, tmp_path):
    if not installed(module):
        pytest.skip(f"{module} is not installed")
    cases, rejected = accepted_mutants(mutants, model, CASES, module)
    assert len(cases) == CASES
    outcomes, deaths = run_batches(module, cases, tmp_path)
    print(f"{model} on {module}: {rejected + len(cases)} mutants, {rejected} rejected, "
          f"{len(cases)} accepted and run: {outcomes}; {len(deaths)} crashes")
    assert deaths == [], f"accepted models that crashed {module} (name, returncode): {deaths}"
    assert sum(outcomes.values()) == len(cases)
