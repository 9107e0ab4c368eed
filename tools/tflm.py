"""TFLite Micro as a baseline: its smallest working tensor arena, its arena sections, and its int8 tensors.

Used by tests/mcu and benchmarks/mcu_footprint.py; not part of the installed package. Runs the
``tflite-micro`` Python package (``tflite_micro.runtime.Interpreter``: TFLite Micro's C++ interpreter and
reference kernels, built for the host), whose C++ side writes its messages to file descriptors 1 and 2;
:func:`captured` keeps them out of the caller's output.

What the host build says about a Cortex-M build: the arena *head* (the tensors' planned buffers,
``GreedyMemoryPlanner``) is the same on any target; the *tail* (``TfLiteEvalTensor``, node and
registration structs, kernel OpData) holds pointers, so on a 64-bit host it is larger than on a 32-bit
Cortex-M, and the Python interpreter's default recording allocator adds its own records there too.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class TflmUnavailable(RuntimeError):
    """The tflite-micro Python package is not installed."""


def runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm_runtime
    except ImportError as exc:
        raise TflmUnavailable(f"tflite-micro is not installed ({exc}): pip install tflite-micro") from exc
    return tflm_runtime


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Send file descriptors 1 and 2 to a temporary file for the block; the list then holds what was written."""
    said: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            said.append(sink.read().decode("utf-8", "replace"))


def interpreter(path: str | os.PathLike[str], arena_size: int, preserve_all: bool = False) -> Any:
    """A TFLM interpreter over the model file (``preserve_all``: every intermediate tensor stays readable)."""
    rt = runtime()
    config = rt.InterpreterConfig.kPreserveAllTensors if preserve_all else rt.InterpreterConfig.kAllocationRecording
    return rt.Interpreter.from_file(str(path), arena_size=arena_size, intrepreter_config=config)


def _runs(path: Path, arena_size: int) -> bool:
    """Whether the model allocates and invokes in this arena size. Tried in a forked child: the Python
    binding dereferences a null pointer (SIGSEGV) when the arena cannot hold even its own records."""
    if not hasattr(os, "fork"):
        return _try(path, arena_size)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only an exit status
        faulthandler.disable()  # a crash here is an answer, not a traceback for the parent's stderr
        ok = False
        try:
            ok = _try(path, arena_size)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _try(path: Path, arena_size: int) -> bool:
    try:
        with captured():
            it = interpreter(path, arena_size)
            for i in range(_count_inputs(it)):
                d = it.get_input_details(i)
                it.set_input(np.zeros(d["shape"], d["dtype"]), i)
            it.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _count_inputs(it: Any) -> int:
    n = 0
    while True:
        try:
            it.get_input_details(n)
        except (RuntimeError, ValueError, IndexError):
            return n
        n += 1


@dataclass(frozen=True)
class Arena:
    bytes: int  # the smallest arena_size with which the model allocates and invokes, rounded up to 16
    head: int  # the arena's head section at that size: the planned tensor buffers
    tail: int  # the tail: persistent interpreter and kernel records (64-bit host sizes)


def min_arena(path: str | os.PathLike[str], upper: int = 1 << 24) -> Arena:
    """The smallest working arena (:func:`edgeops.convert.tflm_arena.measure_arena`, the figure ``--format c``
    writes), rounded up to TFLite Micro's 16-byte alignment, and the allocator's sections at that size."""
    from edgeops.convert.tflm_arena import measure_arena

    model = Path(path)
    found = measure_arena(model.read_bytes(), cap=upper)
    if found.minimum is None:
        raise RuntimeError(f"TFLite Micro cannot run {model.name} even with a {upper}-byte arena ({found.note})")
    size = (found.minimum + 15) // 16 * 16
    with captured() as said:
        it = interpreter(model, size)
        it.print_allocations()
    text = "".join(said)
    head = re.search(r"Arena allocation head (\d+) bytes", text)
    tail = re.search(r"Arena allocation tail (\d+) bytes", text)
    return Arena(bytes=size, head=int(head.group(1)) if head else -1, tail=int(tail.group(1)) if tail else -1)


def int8_reference(path: str | os.PathLike[str], inputs: np.ndarray, input_q: tuple[float, int],
                   output_q: tuple[float, int], arena_size: int = 1 << 20) -> np.ndarray:
    """TFLite Micro's int8 output for each int8 input row (one input, one output).

    A model with float I/O around its int8 graph (a leading QUANTIZE, a trailing DEQUANTIZE) gets
    ``scale * (q - zero_point)`` in float, which its QUANTIZE maps back to ``q`` exactly, and its float
    output is mapped back to the int8 value the DEQUANTIZE read; ``input_q`` and ``output_q`` are those
    (scale, zero point) pairs. A float output that is not such a value raises: then the model's last
    op is not a plain DEQUANTIZE of int8 and the comparison would not be bit for bit.
    """
    rows = np.asarray(inputs)
    if rows.dtype != np.int8 or rows.ndim != 2:
        raise ValueError(f"inputs must be int8 [samples, size], got {rows.dtype} {list(rows.shape)}")
    with captured():
        it = interpreter(path, arena_size)
    d_in, d_out = it.get_input_details(0), it.get_output_details(0)
    outputs = []
    for row in rows:
        x = row if d_in["dtype"] == np.int8 else (input_q[0] * (row.astype(np.float32) - input_q[1])).astype(
            d_in["dtype"])
        it.set_input(x.reshape(d_in["shape"]), 0)
        with captured():
            it.invoke()
        y = np.array(it.get_output(0)).ravel()
        if d_out["dtype"] == np.int8:
            outputs.append(y.astype(np.int8))
            continue
        q = y.astype(np.float64) / output_q[0] + output_q[1]
        if np.abs(q - np.round(q)).max() > 1e-3 or q.min() < -128.5 or q.max() > 127.5:
            raise ValueError(f"{Path(path).name}: the float output is not scale * (q - zero_point) of an int8 q")
        outputs.append(np.round(q).astype(np.int8))
    return np.stack(outputs)
