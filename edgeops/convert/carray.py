"""A ``.tflite`` as C source for microcontrollers, and the tensor arena TFLite Micro will need.

:func:`write_c_array` writes ``NAME.c`` (the model bytes, 16-byte aligned, 12 per line) and
``NAME.h`` (include guard, the ``extern`` declarations, a ``NAME_ARENA_SIZE`` macro, and the
model's inputs, outputs and operators in comments) for a firmware build to compile in. The
sources are C99; the alignment is spelled by the macro ``EDGEOPS_MODEL_ALIGN``, which the user
may define before including the header.

:func:`write_c_array` also measures the arena in TFLite Micro when the ``tflite-micro`` package is
importable (:mod:`.tflm_arena`) and makes ``NAME_ARENA_SIZE`` the measured minimum plus a stated
margin; the estimate stays beside it as ``NAME_ARENA_ESTIMATE``.

:func:`estimate_arena` plans the model the way TFLite Micro's ``GreedyMemoryPlanner`` does:
every tensor that is not a constant lives from the operator that writes it (graph inputs from the
first) to the last operator that reads it (graph outputs to the last), sizes are rounded up to 16
bytes, and tensors are placed largest first at the lowest offset that no tensor alive at the same
time occupies. To that plan it adds a stated allowance for the interpreter's own per-tensor and
per-operator records. Scratch buffers that optimized kernels ask for (CMSIS-NN im2col and the
like) are not counted: the figure is a starting point to check with
``MicroInterpreter::arena_used_bytes()``, not a guarantee.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write, output_folder
from ..errors import UsageError

__all__ = ["ArenaEstimate", "CArray", "estimate_arena", "write_c_array", "c_identifier"]

ALIGN = 16  # TFLite Micro's arena buffer alignment (MicroArenaBufferAlignment)
PER_TENSOR = 32  # TfLiteEvalTensor (12 bytes on 32-bit) and the share of I/O TfLiteTensors of every tensor
PER_OP = 128  # TfLiteNode, registration and typical kernel OpData of every operator
PER_CHANNEL = 8  # per-channel output multiplier and shift (int32 each) of quantized kernels
FIXED = 512  # the allocator's and interpreter's own bookkeeping
BYTES_PER_LINE = 12

_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while _Bool _Complex _Imaginary bool true false alignas alignof".split())


@dataclass(frozen=True)
class ArenaEstimate:
    """The tensor arena estimate: ``bytes`` = ``planned_bytes`` (the activation plan) + ``overhead_bytes``."""

    bytes: int
    planned_bytes: int
    overhead_bytes: int
    method: str
    peak_tensors: tuple[str, ...]  # tensors alive at the step with the most live bytes
    largest_tensor_bytes: int
    total_tensor_bytes: int  # every planned tensor, each 16-byte rounded, all at once


@dataclass(frozen=True)
class CArray:
    c_path: str
    h_path: str
    symbol: str
    size: int
    arena: ArenaEstimate
    arena_macro: str  # SYMBOL_ARENA_SIZE in capitals
    measured: Any = None  # a tflm_arena.ArenaMeasurement, or None when not asked for
    arena_bytes: int = 0  # what SYMBOL_ARENA_SIZE says: measured minimum + margin, else the estimate


def c_identifier(name: str) -> str:
    """A valid C identifier from ``name``: other characters become ``_``, no leading underscore or
    digit (prefixed ``model_``), no keyword (suffixed ``_model``)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name).lstrip("_")
    if not ident or ident[0].isdigit():
        ident = "model_" + ident
    if ident in _KEYWORDS:
        ident += "_model"
    return ident


def _round_up(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


def estimate_arena(data: bytes) -> ArenaEstimate:
    """The tensor arena TFLite Micro would need for the model ``data`` (see the module docstring)."""
    from ..formats.tflite_file import read_tflite
    from .tflite.writer import schema

    read_tflite(data, source="the model")
    model = schema().ModelT.InitFromPackedBuf(bytes(data), 0)
    peak: tuple[str, ...] = ()
    planned, sizes, counts = 0, [], [0, 0, 0]
    for k, g in enumerate(model.subgraphs):
        tensors = _lifetimes(model, g)
        size, live = _plan(tensors)
        planned += size  # control-flow subgraphs run inside an op of the main one: add, do not share
        sizes += [t[1] for t in tensors]
        if k == 0:
            peak = live
        counts[0] += len(g.tensors or [])
        counts[1] += len(g.operators or [])
        counts[2] += _per_channel_scales(g)
    overhead = FIXED + PER_TENSOR * counts[0] + PER_OP * counts[1] + PER_CHANNEL * counts[2]
    method = (f"greedy first-fit plan like TFLite Micro's GreedyMemoryPlanner (largest first, lowest free "
              f"offset over each tensor's lifetime in op order) of {len(sizes)} non-constant tensors, each "
              f"rounded up to {ALIGN} bytes: {planned} bytes; plus an allowance of {PER_TENSOR} bytes per tensor "
              f"({counts[0]}), {PER_OP} per operator ({counts[1]}), {PER_CHANNEL} per per-channel output channel "
              f"({counts[2]}) and {FIXED} fixed: {overhead} bytes. Kernel scratch buffers (e.g. CMSIS-NN) are "
              "not counted; check with MicroInterpreter::arena_used_bytes()")
    total = _round_up(planned + overhead)
    return ArenaEstimate(total, planned, total - planned, method, peak, max(sizes, default=0), sum(sizes))


def _lifetimes(model: Any, g: Any) -> list[tuple[str, int, int, int]]:
    """(name, rounded size, first step, last step) of every tensor the planner places."""
    from ..formats.tflite_file import TFLITE_DTYPES

    ops = list(g.operators or [])
    last = max(len(ops) - 1, 0)
    first_used: dict[int, int] = {int(i): 0 for i in (g.inputs if g.inputs is not None else [])}
    last_used: dict[int, int] = dict(first_used)
    for step, op in enumerate(ops):
        for i in list(op.inputs if op.inputs is not None else []) + list(op.intermediates or []):
            if i >= 0:
                first_used.setdefault(int(i), step)
                last_used[int(i)] = step
        for i in op.outputs if op.outputs is not None else []:
            first_used.setdefault(int(i), step)
            last_used[int(i)] = max(last_used.get(int(i), step), step)
    for i in g.outputs if g.outputs is not None else []:
        last_used[int(i)] = last
    out = []
    for i, first in first_used.items():
        t = g.tensors[i]
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        if buf is not None and ((buf.data is not None and len(buf.data)) or (buf.offset or 0) > 1):
            continue  # a constant (inline, or after the flatbuffer at buf.offset): read in place
        count = 1
        for d in t.shape if t.shape is not None else []:
            count *= int(d)
        bits = TFLITE_DTYPES.get(t.type, ("", None))[1] or 0
        size = _round_up((count * bits + 7) // 8)
        if size:
            name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name)
            span = (0, last) if t.isVariable else (first, last_used.get(i, first))
            out.append((name, size, *span))
    return out


def _plan(tensors: list[tuple[str, int, int, int]]) -> tuple[int, tuple[str, ...]]:
    """Greedy first-fit by size: the arena size, and the tensors alive at the busiest step."""
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for _, size, first, last in sorted(tensors, key=lambda t: -t[1]):  # stable: ties keep op order
        offset = 0
        for o, s, _, _ in sorted(p for p in placed if not (p[3] < first or last < p[2])):
            if o - offset >= size:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
    arena = max((o + s for o, s, _, _ in placed), default=0)
    steps = {step for _, _, f, end in tensors for step in (f, end)}
    busiest = max(steps, key=lambda s: sum(t[1] for t in tensors if t[2] <= s <= t[3]), default=0)
    return arena, tuple(t[0] for t in tensors if t[2] <= busiest <= t[3])


def _per_channel_scales(g: Any) -> int:
    """Output channels of per-channel quantized ops: each gets a multiplier and a shift in OpData."""
    n = 0
    for op in g.operators or []:
        scales = [len(q.scale) for i in (op.inputs if op.inputs is not None else []) if i >= 0
                  for q in [g.tensors[i].quantization] if q is not None and q.scale is not None]
        n += max([c for c in scales if c > 1], default=0)
    return n


def write_c_array(data: bytes, c_path: str | os.PathLike[str], *, name: str | None = None,
                  measure: bool = True) -> CArray:
    """Write the model ``data`` as ``c_path`` (``NAME.c``) and the header beside it (``NAME.h``).

    The array is ``SYMBOL`` with ``SYMBOL_len`` bytes, ``SYMBOL`` being ``name`` (default: the
    stem of ``c_path``) made a C identifier by :func:`c_identifier`. Both files are written
    atomically; if the second cannot be written, the first is put back as it was.
    """
    c_file = Path(c_path)
    if c_file.suffix.lower() in (".h", ".hpp"):
        raise UsageError(f"{c_file} is a header name; give the .c path (the header is written beside it)")
    h_file = c_file.with_suffix(".h")
    symbol = c_identifier(name if name is not None else c_file.stem)
    arena = estimate_arena(data)  # validates the model too
    macro = f"{symbol.upper()}_ARENA_SIZE"
    measured = None
    if measure:
        from .tflm_arena import measure_arena

        measured = measure_arena(data, start=arena.bytes)
    size = measured.size if measured is not None and measured.size is not None else arena.bytes
    header = _header(data, symbol, macro, arena, c_file.name, measured)
    source = _source(data, symbol, h_file.name)
    _write_pair([(h_file, header), (c_file, source)])
    return CArray(str(c_file), str(h_file), symbol, len(data), arena, macro, measured, size)


def _write_pair(files: list[tuple[Path, str]]) -> None:
    """Write each file atomically; on a failure, put back the ones already written. Paths that
    :func:`~edgeops._io.output_folder` refuses (a folder in the way) are refused before the first write."""
    for path, _ in files:
        output_folder(path)
    done: list[tuple[Path, bytes | None]] = []
    try:
        for path, text in files:
            before = path.read_bytes() if path.is_file() else None
            atomic_write(path, text)
            done.append((path, before))
    except (OSError, UsageError) as exc:
        for done_path, before in reversed(done):
            if before is None:
                done_path.unlink(missing_ok=True)
            else:
                atomic_write(done_path, before)
        if isinstance(exc, UsageError):  # the output-path rule already said what is wrong
            raise
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _source(data: bytes, symbol: str, header_name: str) -> str:
    hexed = bytes(data).hex()
    step = 2 * BYTES_PER_LINE
    rows = ["  " + ", ".join(f"0x{hexed[j:j + 2]}" for j in range(i, min(i + step, len(hexed)), 2)) + ","
            for i in range(0, len(hexed), step)]
    return (f"/* {symbol}: a TFLite model as a C array, generated by edgeops. Do not edit. */\n\n"
            f'#include "{header_name}"\n\n'
            f"EDGEOPS_MODEL_ALIGN const unsigned char {symbol}[] = {{\n" + "\n".join(rows) + "\n};\n\n"
            f"const size_t {symbol}_len = {len(data)}u;\n")


def _arena_block(symbol: str, macro: str, arena: ArenaEstimate, measured: Any) -> str:
    method = "\n".join(" * " + line for line in _wrap(arena.method))
    up = symbol.upper()
    estimate = f"""/* Tensor arena estimate, {arena.bytes} bytes ({arena.planned_bytes} planned tensors + {arena.overhead_bytes} allowance):
{method}
 */
#define {up}_ARENA_ESTIMATE {arena.bytes}"""
    if measured is None or measured.minimum is None:
        note = "" if measured is None else "\n".join(" * " + line for line in _wrap(measured.note))
        lead = f"/* {macro} is the estimate below.\n{note}\n */\n" if note else ""
        return f"{lead}{estimate}\n#define {macro} {up}_ARENA_ESTIMATE"
    why = (f"{measured.note}. That is a 64-bit host build: pointers and TfLiteEvalTensor records are smaller on a "
           f"32-bit microcontroller, so the same kernels need no more there. The margin of {measured.margin} bytes "
           f"(10 %, at least 256, rounded up to 16) is for what the host figure does not see: scratch buffers of "
           "optimized kernels (CMSIS-NN) and an arena that does not start 16-byte aligned. Check on the device "
           "with MicroInterpreter::arena_used_bytes().")
    text = "\n".join(" * " + line for line in _wrap(why))
    return f"""/* Tensor arena, measured: {measured.minimum} bytes + a margin of {measured.margin} = {measured.size}.
{text}
 */
#define {up}_ARENA_MEASURED {measured.minimum}
#define {up}_ARENA_MARGIN {measured.margin}
#define {macro} ({up}_ARENA_MEASURED + {up}_ARENA_MARGIN)

{estimate}"""


def _header(data: bytes, symbol: str, macro: str, arena: ArenaEstimate, c_name: str, measured: Any = None) -> str:
    guard = f"EDGEOPS_{symbol.upper()}_H_"
    return f"""/* {symbol}: a TFLite model as a C array ({c_name}), generated by edgeops. Do not edit.
 *
{_describe(data)}
 */
#ifndef {guard}
#define {guard}

#include <stddef.h>
#include <stdint.h>

/* TFLite Micro reads the model in place and wants it 16-byte aligned. Define EDGEOPS_MODEL_ALIGN
 * before including this header to spell the alignment your way (C11: _Alignas(16)). */
#ifndef EDGEOPS_MODEL_ALIGN
#if defined(__GNUC__) || defined(__clang__)
#define EDGEOPS_MODEL_ALIGN __attribute__((aligned(16)))
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define EDGEOPS_MODEL_ALIGN _Alignas(16)
#else
#define EDGEOPS_MODEL_ALIGN /* unknown compiler: align {symbol} to 16 bytes yourself */
#endif
#endif

#ifdef __cplusplus
extern "C" {{
#endif

/* The .tflite file: {len(data)} bytes. */
extern EDGEOPS_MODEL_ALIGN const unsigned char {symbol}[];
extern const size_t {symbol}_len;

{_arena_block(symbol, macro, arena, measured)}

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(_comment_safe(text), width, break_on_hyphens=False) or [""]


def _comment_safe(text: str) -> str:
    return re.sub(r"\s", " ", text).replace("*/", "* /").replace("/*", "/ *")


def _describe(data: bytes) -> str:
    """Inputs, outputs (shape, dtype, quantization) and operators, as comment lines."""
    from ..formats.tflite_file import read_tflite, tflite_io_map
    from .tflite.writer import schema

    summary, io = read_tflite(data), tflite_io_map(data)
    model = schema().ModelT.InitFromPackedBuf(bytes(data), 0)
    sub = model.signatureDefs[0].subgraphIndex if model.signatureDefs else 0
    tensors = model.subgraphs[sub].tensors
    lines = []
    for title, infos, indices in (("Inputs", summary.inputs, io["inputs"]), ("Outputs", summary.outputs, io["outputs"])):
        lines.append(f"{title}:")
        for info in infos:
            shape = "[" + ", ".join("?" if d is None else str(d) for d in info.shape or ()) + "]"
            quant = _quantization(tensors[indices[info.name]].quantization)
            lines.append(f"  {_comment_safe(info.name)}: {info.dtype} {shape}{quant}")
    ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in summary.ops.items())
    lines += ["Operators (each needs its kernel in the op resolver):"] + ["  " + t for t in _wrap(ops, 92)]
    return "\n".join(" * " + line for line in lines)


def _quantization(q: Any) -> str:
    if q is None or q.scale is None or not len(q.scale):
        return ""
    zero = list(q.zeroPoint) if q.zeroPoint is not None else [0] * len(q.scale)
    if len(q.scale) > 1:
        return f", {len(q.scale)} per-channel scales on axis {q.quantizedDimension}"
    return f", scale {float(q.scale[0]):.9g}, zero point {int(zero[0])} (real = scale * (q - zero point))"
