"""Cross-compile C for a Cortex-M4 and run it on QEMU's mps2-an386 board: outputs, and instruction counts.

Used by tests/mcu and benchmarks/mcu_footprint.py; not part of the installed package. Needs the Debian
packages ``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and ``qemu-system-arm`` (``.ci/run``
installs them); :func:`toolchain` raises :class:`Unavailable`, saying which is missing, where they
are not installed.

:func:`build` compiles a model function ``int f(const int8_t *input, int8_t *output, uint8_t *arena)``
with the board port in ``firmware_bridge/ports/mps2-an386`` (vector table, linker script, UART0,
semihosting exit, the harness ``main``) and a generated ``harness_input.h`` holding the input
samples; :func:`run` boots the ELF under ``qemu-system-arm -icount`` and parses what the harness
prints over UART0 into a :class:`Run`.

Instruction counts: under ``-icount shift=N`` QEMU advances its virtual clock by exactly ``2**N`` ns
per guest instruction, and the board's dual timer counts that clock at 25 MHz (40 ns a tick), so
``ticks * 40 / 2**N`` is the number of instructions executed between two timer reads (checked
against a loop of known length in tests/mcu/test_cortexm.py). The harness subtracts the ticks of an
empty call of the same type, so a count is the function's own instructions to within a few. QEMU
counts instructions, not cycles: it models no pipeline, wait states or caches, and its DWT cycle
counter reads 0 (the harness reports it). A count is therefore never a speed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PORT = ROOT / "firmware_bridge" / "ports" / "mps2-an386"
PORT_SOURCES = ("startup.c", "board.c", "harness.c")
LINKER_SCRIPT = "mps2_an386.ld"

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb")
FLOAT_FLAGS = {"soft": ("-mfloat-abi=soft",), "hard": ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")}
CFLAGS = ("-Os", *CPU_FLAGS, *WARNINGS, "-ffunction-sections", "-fdata-sections")
LDFLAGS = ("-Wl,--gc-sections", "-nostartfiles", "--specs=nano.specs")

TICK_NS = 40  # the mps2 peripheral clock is 25 MHz
ICOUNT_SHIFT = 7  # 128 ns an instruction: 3.2 ticks each, and 2**32 ticks last 1.3e9 instructions
PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"


class CortexMError(RuntimeError):
    """A build or an emulated run failed; the message carries the compiler's or the board's output."""


class Unavailable(CortexMError):
    """The cross toolchain or QEMU is not installed here."""


@dataclass(frozen=True)
class Toolchain:
    gcc: str
    size: str
    qemu: str


@dataclass(frozen=True)
class Build:
    elf: Path
    samples: int
    output_size: int
    text: int  # arm-none-eabi-size's Berkeley columns for the whole image (port, harness, inputs included)
    data: int
    bss: int


@dataclass(frozen=True)
class Run:
    outputs: np.ndarray  # int8 [samples, output_size]
    returns: tuple[int, ...]  # each call's return value
    instructions: tuple[float, ...]  # each call's instructions executed, less an empty call's
    stack_bytes: int  # the stack's high-water mark over the whole run (startup, main, the model)
    dwt_cycles: int  # DWT_CYCCNT across a 100-iteration loop; 0 where the emulator does not model it
    icount_shift: int
    uart: str  # everything the board printed


def toolchain() -> Toolchain:
    """The cross compiler, its ``size`` and ``qemu-system-arm`` with the mps2-an386 machine; else :class:`Unavailable`."""
    found = {name: shutil.which(name) for name in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not found: install the Debian packages {PACKAGES}")
    gcc = str(found["arm-none-eabi-gcc"])
    probe = subprocess.run([gcc, *CPU_FLAGS, "--specs=nano.specs", "-print-file-name=libc_nano.a"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or not os.path.isabs(probe.stdout.strip()):
        raise Unavailable(f"arm-none-eabi-gcc has no newlib-nano: install libnewlib-arm-none-eabi ({PACKAGES})")
    machines = subprocess.run([str(found["qemu-system-arm"]), "-machine", "help"], capture_output=True, text=True)
    if "mps2-an386" not in machines.stdout:
        raise Unavailable("this qemu-system-arm has no mps2-an386 machine (QEMU 5.2 or newer has it)")
    return Toolchain(gcc=gcc, size=str(found["arm-none-eabi-size"]), qemu=str(found["qemu-system-arm"]))


def c_flags(float_abi: str = "soft") -> tuple[str, ...]:
    """The compiler flags every Cortex-M4 build here uses (``float_abi`` ``soft`` or ``hard``)."""
    if float_abi not in FLOAT_FLAGS:
        raise ValueError(f"float_abi must be one of {sorted(FLOAT_FLAGS)}, not {float_abi!r}")
    return (*CFLAGS, *FLOAT_FLAGS[float_abi])


def compile_objects(sources: Iterable[str | os.PathLike[str]], include_dirs: Iterable[str | os.PathLike[str]],
                    workdir: str | os.PathLike[str], *, float_abi: str = "soft",
                    defines: Sequence[str] = ()) -> list[Path]:
    """Compile each source to an object in ``workdir`` (``-Werror``: any warning fails); the object paths."""
    tools = toolchain()
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    objects = []
    for i, src in enumerate(sources):
        obj = out / f"{i:03d}_{Path(src).stem}.o"
        cmd = [tools.gcc, *c_flags(float_abi), *(f"-I{d}" for d in include_dirs), *(f"-D{d}" for d in defines),
               "-c", str(src), "-o", str(obj)]
        _check(cmd, f"compiling {src}")
        objects.append(obj)
    return objects


def harness_header(function: str, inputs: np.ndarray, output_size: int, arena_size: int,
                   headers: Sequence[str] = ()) -> str:
    """The ``harness_input.h`` that feeds ``inputs`` (int8 ``[samples, input_size]``) to ``function``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", function):
        raise ValueError(f"not a C identifier: {function!r}")
    data = np.asarray(inputs)
    if data.dtype != np.int8 or data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(f"inputs must be int8 [samples, input_size], got {data.dtype} {list(data.shape)}")
    if output_size < 1:
        raise ValueError(f"output_size must be at least 1, got {output_size}")
    samples, size = data.shape
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in row) + "}" for row in data)
    includes = "".join(f'#include "{h}"\n' for h in headers)
    return (f"/* Written by tools/cortexm.py for firmware_bridge/ports/mps2-an386/harness.c */\n"
            f"#include <stdint.h>\n{includes}"
            f"int {function}(const int8_t *input, int8_t *output, uint8_t *arena);\n"
            f"#define HARNESS_INVOKE {function}\n#define HARNESS_SAMPLES {samples}\n"
            f"#define HARNESS_INPUT_SIZE {size}\n#define HARNESS_OUTPUT_SIZE {output_size}\n"
            f"#define HARNESS_ARENA_SIZE {max(1, arena_size)}\n"
            f"static const int8_t harness_inputs[{samples}][{size}] = {{\n{rows}\n}};\n")


def build(sources: Iterable[str | os.PathLike[str]], include_dirs: Iterable[str | os.PathLike[str]], *,
          function: str, inputs: np.ndarray, output_size: int, arena_size: int, workdir: str | os.PathLike[str],
          headers: Sequence[str] = (), float_abi: str = "soft", defines: Sequence[str] = ()) -> Build:
    """Link ``sources`` (which define ``function``) with the board port and the harness into ``workdir/harness.elf``."""
    tools = toolchain()
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    data = np.asarray(inputs)
    (out / "harness_input.h").write_text(harness_header(function, data, output_size, arena_size, headers))
    elf = out / "harness.elf"
    includes = [out, PORT, *include_dirs]
    cmd = [tools.gcc, *c_flags(float_abi), *LDFLAGS, "-T", str(PORT / LINKER_SCRIPT),
           *(f"-I{d}" for d in includes), *(f"-D{d}" for d in defines),
           *(str(PORT / s) for s in PORT_SOURCES), *(str(s) for s in sources), "-o", str(elf)]
    _check(cmd, "linking the Cortex-M4 harness")
    text, dat, bss = size_of(elf)
    return Build(elf=elf, samples=int(data.shape[0]), output_size=output_size, text=text, data=dat, bss=bss)


def size_of(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """``arm-none-eabi-size``'s text, data and bss of an object or ELF (summed over an archive's members)."""
    proc = _check([toolchain().size, "--format=berkeley", str(path)], f"sizing {path}")
    totals = [0, 0, 0]
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and all(f.isdigit() for f in fields[:3]):
            for i in range(3):
                totals[i] += int(fields[i])
    return totals[0], totals[1], totals[2]


def run(build_: Build, *, timeout: float = 60.0, icount_shift: int = ICOUNT_SHIFT) -> Run:
    """Boot the harness under QEMU (UART0 on stdout, semihosting exit) and parse what it printed."""
    tools = toolchain()
    cmd = [tools.qemu, "-machine", "mps2-an386", "-cpu", "cortex-m4", "-display", "none", "-monitor", "none",
           "-serial", "stdio", "-semihosting-config", "enable=on,target=native", "-no-reboot",
           "-icount", f"shift={icount_shift}", "-kernel", str(build_.elf)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-2000:].decode("latin-1")
        raise CortexMError(f"qemu-system-arm ran past {timeout:g} s (a hang or an endless loop); "
                           f"the board printed:\n{tail}") from exc
    uart = proc.stdout.decode("latin-1")
    if proc.returncode != 0 or "\nDONE\n" not in uart:
        raise CortexMError(f"the emulated board failed (qemu exit {proc.returncode}); it printed:\n{uart[-2000:]}"
                           f"\nqemu: {proc.stderr.decode('latin-1')[-1000:]}")
    return parse(uart, build_.samples, build_.output_size, icount_shift)


def parse(uart: str, samples: int, output_size: int, icount_shift: int) -> Run:
    """The harness's UART lines as a :class:`Run` (see firmware_bridge/ports/mps2-an386/harness.c)."""
    base = _field(uart, r"^BASE (\d+)$")
    dwt = _field(uart, r"^DWT (\d+)$")
    stack = _field(uart, r"^STACK (\d+)$")
    runs = {int(i): (int(rc), int(t)) for i, rc, t in re.findall(r"^RUN (\d+) (-?\d+) (\d+)$", uart, re.M)}
    outs = {int(i): h for i, h in re.findall(r"^OUT (\d+) ([0-9a-f]*)$", uart, re.M)}
    if sorted(runs) != list(range(samples)) or sorted(outs) != list(range(samples)):
        raise CortexMError(f"expected {samples} RUN and OUT lines from the board; it printed:\n{uart[-2000:]}")
    outputs = np.zeros((samples, output_size), np.int8)
    for i, h in outs.items():
        raw = bytes.fromhex(h)
        if len(raw) != output_size:
            raise CortexMError(f"sample {i}: {len(raw)} output bytes, expected {output_size}")
        outputs[i] = np.frombuffer(raw, np.int8)
    per_insn = 2 ** icount_shift / TICK_NS  # timer ticks per instruction
    return Run(outputs=outputs, returns=tuple(runs[i][0] for i in range(samples)),
               instructions=tuple((runs[i][1] - base) / per_insn for i in range(samples)),
               stack_bytes=stack, dwt_cycles=dwt, icount_shift=icount_shift, uart=uart)


def header_macros(path: str | os.PathLike[str]) -> dict[str, int | float]:
    """The numeric ``#define`` lines of a C header: integers, and float literals (decimal or C99 hex, ``f`` suffix)."""
    macros: dict[str, int | float] = {}
    for name, value in re.findall(r"^#define\s+([A-Za-z_]\w*)\s+(\S+)", Path(path).read_text(), re.M):
        literal = value.strip("()")
        try:
            macros[name] = int(literal, 0)
            continue
        except ValueError:
            pass
        try:
            number = literal.rstrip("fF")
            macros[name] = float.fromhex(number) if "0x" in number.lower() else float(number)
        except ValueError:
            pass  # not a number: a type, an expression, an include guard's empty value
    return macros


def _field(uart: str, pattern: str) -> int:
    match = re.search(pattern, uart, re.M)
    if match is None:
        raise CortexMError(f"no line matching {pattern!r} from the board; it printed:\n{uart[-2000:]}")
    return int(match.group(1))


def _check(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CortexMError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc
