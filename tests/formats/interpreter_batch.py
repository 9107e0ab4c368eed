"""Run many .tflite models through a TFLite interpreter in one process, for the crash check.

    python interpreter_batch.py MODULE CASES_FILE START

MODULE is ``ai_edge_litert.interpreter`` or ``tflite_runtime.interpreter``; CASES_FILE holds
length-prefixed models (4-byte little-endian length, then the bytes). For each case from
START on it prints ``start <i>`` before touching the model and ``done <i> <outcome>``
after constructing the interpreter, allocating tensors, setting inputs and invoking; a
Python exception is an outcome. If the process dies, the last ``start`` line says which
case killed it, and the caller restarts after it. Memory is capped so a huge tensor is a
MemoryError here rather than the machine's problem.
"""

from __future__ import annotations

import importlib
import struct
import sys


def cases(path: str):
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        yield data[pos + 4 : pos + 4 + length]
        pos += 4 + length


def main() -> None:
    module, path, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    except (ImportError, ValueError, OSError):
        pass
    import numpy as np

    interpreter_class = importlib.import_module(module).Interpreter
    out = sys.stdout
    for i, model in enumerate(cases(path)):
        if i < start:
            continue
        out.write(f"start {i}\n")
        out.flush()
        try:
            interpreter = interpreter_class(model_content=model)
            interpreter.allocate_tensors()
            for d in interpreter.get_input_details():
                if int(np.prod(d["shape"])) <= 1 << 20:
                    interpreter.set_tensor(d["index"], np.ones(d["shape"], d["dtype"]))
            interpreter.invoke()
            outcome = "ran"
        except Exception as exc:  # the interpreter refusing a model is fine; dying is not
            outcome = type(exc).__name__
        out.write(f"done {i} {outcome}\n")
    out.write("finished\n")
    out.flush()


if __name__ == "__main__":
    main()
