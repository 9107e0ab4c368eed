"""The tensor arena TFLite Micro needs for a model, measured: the smallest ``arena_size`` at which the
``tflite-micro`` Python interpreter (its reference kernels) allocates the model and invokes it once.

The interpreter is TFLite Micro compiled for the host: a 64-bit build, where pointers and the per-tensor
``TfLiteEvalTensor`` records are larger than on a 32-bit microcontroller, so the figure is an upper
bound for the same kernels there. Optimized kernels on the device (CMSIS-NN) may ask for scratch
buffers the reference kernels do not, and the firmware's arena may start unaligned; :data:`MARGIN`
covers both, and the header states it. The search doubles from the estimate until the model allocates,
then bisects to the byte, and invokes the model once at the size found (TFLite Micro takes all its
memory, kernel scratch included, when it allocates; should the invoke fail, the search is repeated with
invokes). Each try runs in a child process that answers one size at a time: a failed
allocation raises ``RuntimeError`` and frees what it took, but an arena of a few hundred bytes makes the
interpreter crash (SIGSEGV), which then counts as too small and starts a new child.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

MARGIN_FRACTION = 0.10  # of the measured minimum
MARGIN_MIN = 256  # bytes, at least
CAP = 256 * 1024 * 1024  # no arena above this is tried


@dataclass(frozen=True)
class ArenaMeasurement:
    minimum: int | None  # smallest arena that allocated and invoked; None when not measured
    margin: int
    tries: int
    note: str  # how it was measured, or why it was not

    @property
    def size(self) -> int | None:
        return None if self.minimum is None else self.minimum + self.margin


def margin_for(minimum: int) -> int:
    m = max(int(minimum * MARGIN_FRACTION), MARGIN_MIN)
    return (m + 15) // 16 * 16


_CHILD = """
import sys
import numpy as np
from tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
inputs = int(sys.argv[2])
for line in sys.stdin:
    kind, size = line.split()
    try:
        interp = runtime.Interpreter.from_bytes(data, arena_size=int(size))
        if kind == "invoke":
            for k in range(inputs):
                d = interp.get_input_details(k)
                interp.set_input(np.zeros([int(x) for x in d["shape"]], d["dtype"]), k)
            interp.invoke()
        ok = 1
    except (RuntimeError, ValueError, IndexError):
        ok = 0
    sys.stdout.write(f"{ok}\\n")
    sys.stdout.flush()
"""


class _Worker:
    """A child interpreter process that answers "does this arena size work?"; a crash counts as no,
    and the next question starts a new child."""

    def __init__(self, path: str, inputs: int, log: Any):
        self.args = [sys.executable, "-c", _CHILD, path, str(inputs)]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.crashes = 0

    def allocates(self, size: int) -> bool:
        return self.ask("allocate", size)

    def runs(self, size: int) -> bool:
        return self.ask("invoke", size)

    def ask(self, kind: str, size: int) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                         text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{kind} {size}\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        except (BrokenPipeError, OSError):
            answer = ""
        if answer not in ("0", "1"):
            self.crashes += 1
            self.close()
            return False
        return answer == "1"

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None


def measure_arena(data: bytes, start: int = 4096, cap: int = CAP) -> ArenaMeasurement:
    """Bisect ``arena_size`` for ``data`` (see the module docstring); ``start`` is a first guess (the estimate),
    ``cap`` the largest arena tried."""
    if importlib.util.find_spec("tflite_micro") is None:
        return ArenaMeasurement(None, 0, 0, "not measured: the tflite-micro package is not importable here "
                                "(pip install tflite-micro, on Linux x86-64 or aarch64); the estimate stands")
    from ..formats.tflite_file import read_tflite

    inputs = len(read_tflite(data, source="the model").inputs)
    with tempfile.TemporaryDirectory(prefix="edgeops-arena-") as tmp, \
            tempfile.TemporaryFile() as log:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(data)
        worker = _Worker(path, inputs, log)
        try:
            # TFLite Micro takes all its memory when it allocates (scratch buffers included), so the search
            # allocates only; the model is then invoked at the size found, and searched again with
            # invokes should that fail
            found, tries = _bisect(worker.allocates, min(max(int(start), 1024), cap), cap)
            if found is not None:
                tries += 1
                if not worker.runs(found):
                    found, more = _bisect(worker.runs, found, cap)
                    tries += more
        finally:
            worker.close()
        if found is None:
            log.seek(0)
            lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            why = "; ".join(lines[-3:]) or "no message"
            return ArenaMeasurement(None, 0, tries, f"not measured: TFLite Micro could not allocate and run the "
                                    f"model with up to {cap} bytes ({why}); the estimate stands")
    crashed = f", {worker.crashes} of them crashed the interpreter and count as too small" if worker.crashes else ""
    return ArenaMeasurement(found, margin_for(found), tries,
                            f"measured: TFLite Micro {_version()} (reference kernels, 64-bit host build) allocated and "
                            f"invoked the model with {found} bytes and not with {found - 1} ({tries} tries{crashed})")


def _bisect(runs: Any, start: int, cap: int = CAP) -> tuple[int | None, int]:
    """The smallest size for which ``runs`` holds (doubling from ``start``, then bisection), and the tries."""
    tries, lo, hi = 0, 0, start
    while True:
        tries += 1
        if runs(hi):
            break
        if hi >= cap:
            return None, tries
        lo, hi = hi, min(hi * 2, cap)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tries += 1
        if runs(mid):
            hi = mid
        else:
            lo = mid
    return hi, tries


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tflite-micro")
    except Exception:  # noqa: BLE001 (metadata of an odd install: the figure stands without it)
        return "(version unknown)"
