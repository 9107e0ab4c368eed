"""Build a generated model with gcc as a shared library and run it through ctypes; run the same
``.tflite`` in TFLite Micro's Python interpreter; both on int8 inputs."""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "firmware_bridge"
GCC = shutil.which("gcc")
_BUILDS = itertools.count()
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def kernel_objects(out_dir: Path) -> list[str]:
    """The kernel library compiled once (position-independent objects) into ``out_dir``."""
    objects = []
    for src in sorted((KERNELS / "src").glob("*.c")):
        obj = out_dir / (src.stem + ".o")
        proc = subprocess.run([GCC, *CFLAGS, "-fPIC", "-c", "-I", str(KERNELS / "include"), "-o", str(obj), str(src)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        objects.append(str(obj))
    return objects


def build(c_path: Path, out_dir: Path, objects: list[str] | None = None) -> ctypes.CDLL:
    """The generated ``c_path`` linked with the kernels as one shared library."""
    lib = out_dir / f"{c_path.stem}_{next(_BUILDS)}.so"  # a new name: dlopen keeps a loaded path
    kernels = objects if objects is not None else sorted(str(p) for p in (KERNELS / "src").glob("*.c"))
    proc = subprocess.run([GCC, *CFLAGS, "-shared", "-fPIC", "-I", str(KERNELS / "include"), "-o", str(lib),
                           str(c_path), *kernels], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(lib))


class Compiled:
    """A generated model loaded through ctypes (one input and one output, or several)."""

    def __init__(self, lib: ctypes.CDLL, symbol: str, arena: int, in_sizes: list[int], out_sizes: list[int]):
        self.fn = getattr(lib, f"{symbol}_invoke")
        self.fn.restype = ctypes.c_int
        self.arena, self.in_sizes, self.out_sizes = arena, in_sizes, out_sizes
        self.single = len(in_sizes) == 1 and len(out_sizes) == 1

    GUARD = 64

    def __call__(self, *inputs: np.ndarray, fill: int = 0) -> list[np.ndarray]:
        """Outputs for ``inputs``; the arena starts as ``fill`` bytes and must keep the guard bytes after it."""
        ins = [np.ascontiguousarray(x, np.int8).ravel() for x in inputs]
        assert [x.size for x in ins] == self.in_sizes
        outs = [np.zeros(n, np.int8) for n in self.out_sizes]
        buffer = np.full(self.arena + self.GUARD, fill, np.uint8)
        buffer[self.arena:] = 0xA5
        arena = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        ptr = ctypes.POINTER(ctypes.c_int8)
        if self.single:
            rc = self.fn(ins[0].ctypes.data_as(ptr), outs[0].ctypes.data_as(ptr), arena)
        else:
            in_arr = (ptr * len(ins))(*[x.ctypes.data_as(ptr) for x in ins])
            out_arr = (ptr * len(outs))(*[x.ctypes.data_as(ptr) for x in outs])
            rc = self.fn(in_arr, out_arr, arena)
        assert rc == 0
        assert np.all(buffer[self.arena:] == 0xA5), "the model wrote past NAME_ARENA_SIZE"
        return outs


def compile_model(data: bytes, tmp: Path, stem: str = "net_model", objects: list[str] | None = None
                  ) -> tuple[Compiled, object]:
    from edgeops.convert.codegen import generate_c
    from edgeops.convert.codegen.model import read_graph

    result = generate_c(data, tmp / f"{stem}.c")
    graph = read_graph(data)
    lib = build(Path(result.c_path), tmp, objects)
    compiled = Compiled(lib, result.symbol, result.arena_bytes, [graph.tensors[i].size for i in graph.inputs],
                        [graph.tensors[i].size for i in graph.outputs])
    return compiled, result


def tflm_run(data: bytes, inputs: list[np.ndarray], arena_size: int | None = None) -> list[np.ndarray]:
    """The model's outputs in TFLite Micro (reference kernels) for one set of inputs."""
    from tflite_micro import runtime

    from edgeops.formats.tflite_file import read_tflite

    n_out = len(read_tflite(data).outputs)
    interp = runtime.Interpreter.from_bytes(bytes(data), arena_size=arena_size or max(len(data) * 10, 64 * 1024))
    for k, x in enumerate(inputs):
        d = interp.get_input_details(k)
        interp.set_input(np.asarray(x, d["dtype"]).reshape(d["shape"]), k)
    interp.invoke()
    return [np.array(interp.get_output(k)) for k in range(n_out)]


def litert_run(data: bytes, inputs: list[np.ndarray], reference: bool = True) -> list[np.ndarray]:
    """LiteRT's outputs; ``reference``: its reference kernels, which TFLite Micro's follow. Its default
    (optimized, XNNPACK) kernels round int8 differently: one int8 logit step moves the MobileNet
    example's float softmax by up to 3e-4."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interp = Interpreter(model_content=bytes(data), experimental_op_resolver_type=kind)
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], np.asarray(x, d["dtype"]).reshape(d["shape"]))
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def assert_close_to_litert(tflm: list[np.ndarray], data: bytes, inputs: list[np.ndarray]) -> None:
    """TFLite Micro's outputs are LiteRT's (reference kernels): int8 within one step, float within 1e-5."""
    for ours, ref in zip(tflm, litert_run(data, inputs)):
        ours, ref = np.asarray(ours).ravel(), np.asarray(ref).ravel()
        if ref.dtype == np.int8:
            assert np.abs(ours.astype(int) - ref.astype(int)).max(initial=0) <= 1
        else:
            np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
