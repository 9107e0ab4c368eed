"""Generated C (``--format c --codegen``) vs TFLite Micro for every example model: RAM, flash and speed.

Every example network as an int8 ``.tflite``: the committed ``digits_cnn_int8.tflite`` (float I/O around an
int8 graph) and ``digits_mlp``, ``digits_cnn`` and ``digits_mobilenet`` converted here from ONNX with
``--quantize int8 --int8-io``. The float ``.tflite`` examples get TFLite Micro's figures only: the code
generator takes int8 models. For each model:

RAM. Ours: ``NAME_ARENA_SIZE`` (the generated code's one scratch buffer), plus the stack the call takes on
the Cortex-M4 (the harness's painted-stack high-water mark under QEMU, less that of an empty call), plus any
static data it adds (``.data`` + ``.bss``; none). TFLite Micro: the smallest ``arena_size`` with which
``tflite_micro.runtime.Interpreter`` (the pip package: TFLM's C++ interpreter and reference kernels, built
for x86-64) allocates and invokes, bisected to 16 bytes; shown with its head (the planned tensor buffers:
the same on any target, the like of our arena) and tail (interpreter and kernel records: sized here for
64-bit pointers, so smaller on a Cortex-M). Not counted for TFLM: its stack and the interpreter, allocator
and op resolver objects outside the arena; so TFLM's column is not an upper bound.

Flash. Ours, measured: ``arm-none-eabi-size`` text+data of the Cortex-M4 harness image (``-Os -mcpu=cortex-m4
-mthumb``, ``--gc-sections``, newlib-nano) with the model, less the same image with an empty function in its
place: the generated code, its weights and tables, the kernels it calls and the libgcc/libc helpers they
pull in. TFLite Micro, an estimate: no TFLM source is available here to cross-compile, so its figure is the
``.tflite`` bytes (which TFLM keeps in flash) + 16 KiB, the published size of TFLM's core runtime on a
Cortex-M3 ("The core runtime just fits in 16 KB on an Arm Cortex M3", tensorflow.org/lite/microcontrollers;
the older tensorflow/lite/micro README adds "with enough operators to run a speech keyword detection model,
takes up a total of 22 KB"), with no kernels: a lower bound.

Speed. Host: the generated C and kernels built with ``gcc -O2`` as a shared library and called through
ctypes vs ``Interpreter.invoke()``, one Python-to-C call each, interleaved rounds, medians and their ratio.
Cortex-M4: instructions per inference of the generated code under QEMU ``-icount`` (exact to a timer tick;
an instruction count, not cycles or time: QEMU models no pipeline or memory timing). TFLite Micro has no
Cortex-M4 count here (no TFLM build for the target).

Every run checks that the emulated Cortex-M4 gives TFLite Micro's int8 outputs bit for bit.

    python benchmarks/mcu_footprint.py [--rounds 30] [--calls 200] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import cortexm, tflm  # noqa: E402

MODELS = ROOT / "examples" / "models"
KERNELS = ROOT / "firmware_bridge"
CONVERTED = ["digits_mlp", "digits_cnn", "digits_mobilenet"]
TFLM_CORE_BYTES = 16 * 1024  # published: "The core runtime just fits in 16 KB on an Arm Cortex M3"
SAMPLES = 4


def int8_models(tmp: Path) -> list[tuple[str, Path, str]]:
    """(label, .tflite, test data stem) for every example network as int8."""
    import edgeops

    models = [("digits_cnn_int8 (float I/O)", MODELS / "digits_cnn_int8.tflite", "digits_cnn")]
    for name in CONVERTED:
        path = tmp / f"{name}_int8io.tflite"
        edgeops.convert(MODELS / f"{name}.onnx", path, quantize="int8", int8_io=True, profile=False,
                        calibration=str(MODELS / f"{name}_calib.npz"))
        models.append((f"{name} (int8 I/O)", path, name))
    return models


def samples_for(data: str, macros: dict[str, Any], sym: str) -> np.ndarray:
    with np.load(MODELS / f"{data}_test.npz") as npz:
        x = next(iter(npz.values()))[:SAMPLES].reshape(SAMPLES, -1)
    scale, zp = macros[f"{sym}_INPUT_SCALE"], macros[f"{sym}_INPUT_ZERO_POINT"]
    return np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)


def cortex_m4(result: Any, samples: np.ndarray, out_size: int, work: Path) -> dict[str, Any]:
    """The model and an empty function in the same harness: flash and RAM deltas, instructions, outputs."""
    sources = [result.c_path, *sorted((KERNELS / "src").glob("*.c"))]
    includes = [KERNELS / "include", Path(result.h_path).parent]
    model = cortexm.build(sources, includes, function=f"{result.symbol}_invoke", inputs=samples,
                          output_size=out_size, arena_size=result.arena_bytes, headers=[Path(result.h_path).name],
                          workdir=work / "m4-model")
    (work / "empty.c").write_text("#include <stdint.h>\nint empty_invoke(const int8_t *i, int8_t *o, uint8_t *a);\n"
                                  "int empty_invoke(const int8_t *i, int8_t *o, uint8_t *a)\n"
                                  "{ (void)i; (void)o; (void)a; return 0; }\n")
    empty = cortexm.build([work / "empty.c"], [], function="empty_invoke", inputs=samples, output_size=out_size,
                          arena_size=result.arena_bytes, workdir=work / "m4-empty")
    run, run0 = cortexm.run(model, timeout=300), cortexm.run(empty, timeout=60)
    objects = cortexm.compile_objects([result.c_path], includes, work / "m4-objects")
    text, data, _ = cortexm.size_of(objects[0])
    return {"flash": (model.text + model.data) - (empty.text + empty.data),
            "model_object": text + data,
            "static_ram": (model.data + model.bss) - (empty.data + empty.bss),
            "stack": run.stack_bytes - run0.stack_bytes,
            "instructions": statistics.median(run.instructions),
            "outputs": run.outputs, "returns": run.returns}


def host_library(result: Any, work: Path) -> ctypes.CDLL:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("no host gcc")
    lib = work / f"{result.symbol}.so"
    cmd = [gcc, "-O2", *cortexm.WARNINGS, "-shared", "-fPIC", f"-I{KERNELS / 'include'}", "-o", str(lib),
           result.c_path, *map(str, sorted((KERNELS / "src").glob("*.c")))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return ctypes.CDLL(str(lib))


def host_speed(result: Any, model: Path, sample: np.ndarray, out_size: int, work: Path, in_q: tuple[float, int],
               rounds: int, calls: int) -> dict[str, float]:
    """Median microseconds a call, ours (ctypes) and TFLite Micro's (invoke), in interleaved rounds."""
    fn = getattr(host_library(result, work), f"{result.symbol}_invoke")
    fn.restype = ctypes.c_int
    x = np.ascontiguousarray(sample, np.int8)
    y = np.zeros(out_size, np.int8)
    arena = (ctypes.c_uint8 * max(result.arena_bytes, 1))()
    ptr = ctypes.POINTER(ctypes.c_int8)
    args = (x.ctypes.data_as(ptr), y.ctypes.data_as(ptr), arena)
    with tflm.captured():
        it = tflm.interpreter(model, 1 << 20)
    d = it.get_input_details(0)
    feed = x if d["dtype"] == np.int8 else (in_q[0] * (x.astype(np.float32) - in_q[1])).astype(d["dtype"])
    it.set_input(feed.reshape(d["shape"]), 0)
    for _ in range(calls):  # warm both up (caches, branch predictors, the interpreter's first-invoke work)
        fn(*args)
        it.invoke()
    ours, theirs = [], []
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            if which == 0:
                for _ in range(calls):
                    fn(*args)
                ours.append((time.perf_counter() - t0) / calls * 1e6)
            else:
                for _ in range(calls):
                    it.invoke()
                theirs.append((time.perf_counter() - t0) / calls * 1e6)
    return {"ours_us": statistics.median(ours), "tflm_us": statistics.median(theirs)}


def measure(label: str, model: Path, data: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from edgeops.convert.codegen import generate_c

    row: dict[str, Any] = {"model": label, "tflite_bytes": model.stat().st_size}
    arena = tflm.min_arena(model)
    row.update(tflm_arena=arena.bytes, tflm_head=arena.head, tflm_tail=arena.tail,
               tflm_flash_lower_bound=row["tflite_bytes"] + TFLM_CORE_BYTES)
    result = generate_c(model.read_bytes(), work / f"{model.stem}_model.c")
    macros = cortexm.header_macros(result.h_path)
    sym = result.symbol.upper()
    in_q = (macros[f"{sym}_INPUT_SCALE"], int(macros[f"{sym}_INPUT_ZERO_POINT"]))
    out_q = (macros[f"{sym}_OUTPUT_SCALE"], int(macros[f"{sym}_OUTPUT_ZERO_POINT"]))
    out_size = int(macros[f"{sym}_OUTPUT_SIZE"])
    samples = samples_for(data, macros, sym)
    row.update(arena=result.arena_bytes, weight_bytes=result.weight_bytes)
    if not args.no_m4:
        m4 = cortex_m4(result, samples, out_size, work)
        reference = tflm.int8_reference(model, samples, in_q, out_q)
        row.update(flash=m4["flash"], model_object=m4["model_object"], static_ram=m4["static_ram"],
                   stack=m4["stack"], m4_instructions=m4["instructions"],
                   bit_exact=bool(np.array_equal(m4["outputs"], reference)) and set(m4["returns"]) == {0})
        row["ram"] = row["arena"] + row["stack"] + row["static_ram"]
    row.update(host_speed(result, model, samples[0], out_size, work, in_q, args.rounds, args.calls))
    return row


def float_rows() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(MODELS.glob("*.tflite")):
        if "int8" in path.stem:
            continue
        arena = tflm.min_arena(path)
        rows.append({"model": f"{path.stem} (float)", "tflite_bytes": path.stat().st_size, "tflm_arena": arena.bytes,
                     "tflm_head": arena.head, "tflm_tail": arena.tail,
                     "tflm_flash_lower_bound": path.stat().st_size + TFLM_CORE_BYTES,
                     "note": "float model: --codegen takes int8 models"})
    return rows


def _f(row: dict[str, Any], key: str, fmt: str = "{:,}") -> str:
    return fmt.format(row[key]) if key in row else "--"


def report(rows: list[dict[str, Any]]) -> None:
    print("RAM (bytes): ours = arena + Cortex-M4 stack + static data; TFLM = smallest working arena "
          "(head = tensor buffers, tail = records, x86-64 sizes), stack and objects outside it not counted")
    print(f"{'model':32s} {'ours arena':>10s} {'stack':>6s} {'ours RAM':>9s} {'TFLM arena':>10s} {'head':>7s} "
          f"{'tail':>6s} {'RAM ratio':>9s} {'arena/head':>10s}")
    for r in rows:
        ratio = f"{r['tflm_arena'] / r['ram']:.2f}x" if "ram" in r else "--"
        heads = f"{r['arena'] / r['tflm_head']:.2f}" if "arena" in r and r["tflm_head"] > 0 else "--"
        print(f"{r['model']:32s} {_f(r, 'arena'):>10s} {_f(r, 'stack'):>6s} {_f(r, 'ram'):>9s} "
              f"{r['tflm_arena']:>10,} {r['tflm_head']:>7,} {r['tflm_tail']:>6,} {ratio:>9s} {heads:>10s}")
    print("\nFlash (bytes): ours = measured Cortex-M4 text+data the model adds; TFLM = .tflite + 16 KiB published "
          "core, no kernels (an estimated lower bound)")
    print(f"{'model':32s} {'.tflite':>8s} {'ours':>8s} {'(model .o)':>10s} {'TFLM >=':>8s} {'TFLM/ours >=':>12s}")
    for r in rows:
        ratio = f"{r['tflm_flash_lower_bound'] / r['flash']:.2f}x" if "flash" in r else "--"
        print(f"{r['model']:32s} {r['tflite_bytes']:>8,} {_f(r, 'flash'):>8s} {_f(r, 'model_object'):>10s} "
              f"{r['tflm_flash_lower_bound']:>8,} {ratio:>12s}")
    print("\nSpeed: host = median us a call through Python (ctypes vs TFLM invoke); Cortex-M4 = instructions "
          "an inference under QEMU -icount (not cycles, not time); bit-exact = emulated outputs == TFLM int8")
    print(f"{'model':32s} {'ours us':>8s} {'TFLM us':>8s} {'TFLM/ours':>9s} {'M4 instructions':>16s} {'bit-exact':>9s}")
    for r in rows:
        if "ours_us" not in r:
            print(f"{r['model']:32s} {r.get('note', '--')}")
            continue
        print(f"{r['model']:32s} {r['ours_us']:8.2f} {r['tflm_us']:8.2f} {r['tflm_us'] / r['ours_us']:8.2f}x "
              f"{_f(r, 'm4_instructions', '{:,.0f}'):>16s} {str(r.get('bit_exact', '--')):>9s}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--no-m4", action="store_true", help="skip the Cortex-M4 build and emulation")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    missing = []
    if importlib.util.find_spec("tflite_micro") is None:
        print("tflite-micro is not installed: nothing to compare against (pip install tflite-micro)", file=sys.stderr)
        return 2
    if importlib.util.find_spec("edgeops.convert.codegen") is None:
        missing.append("the code generator (edgeops.convert.codegen) is not in this checkout: only TFLite Micro's "
                       "figures below")
    if not args.no_m4:
        try:
            cortexm.toolchain()
        except cortexm.Unavailable as exc:
            missing.append(f"no Cortex-M4 figures: {exc}")
            args.no_m4 = True
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, path, data in int8_models(work):
            if missing and "code generator" in missing[0]:
                arena = tflm.min_arena(path)
                rows.append({"model": label, "tflite_bytes": path.stat().st_size, "tflm_arena": arena.bytes,
                             "tflm_head": arena.head, "tflm_tail": arena.tail,
                             "tflm_flash_lower_bound": path.stat().st_size + TFLM_CORE_BYTES,
                             "note": "no code generator here"})
                continue
            sub = work / path.stem
            sub.mkdir()
            rows.append(measure(label, path, data, sub, args))
        rows += float_rows()
    for line in missing:
        print(f"NOTE: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1, default=float))
    else:
        report(rows)
    return 0 if all(r.get("bit_exact", True) for r in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
