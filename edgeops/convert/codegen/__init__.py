"""An int8 ``.tflite`` compiled to C99 source: ``edgeops convert ... --format c --codegen``.

:func:`generate_c` writes ``NAME.c`` (const weights, the baked kernel parameters, one ``NAME_invoke``
function that calls the kernels of ``firmware_bridge/src`` in operator order) and ``NAME.h`` (the
function, the arena, I/O sizes and quantization as macros). ``NAME`` is the C identifier of the
output's stem without a trailing ``_model`` (``-o kws_model.c`` declares ``kws_invoke``).

The memory plan is static (:mod:`.plan`): one caller-owned arena of ``NAME_ARENA_SIZE`` bytes holds
every intermediate tensor at an offset fixed at convert time; the input is read from the caller's
buffer and the output written straight into the caller's buffer. Every op is checked against what the
kernels compute as TFLite Micro does (:mod:`.ops`); the ops that are not are all listed in one
:class:`~edgeops.errors.UnsupportedOpsError` and nothing is written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UnsupportedOpsError, UsageError
from .model import Graph, read_graph
from .ops import ALIASES, REGISTRY, Context, Unsupported, float_literal
from .plan import Buffer, check, first_fit

__all__ = ["BlobModel", "CodegenResult", "compile_blob", "generate_c", "supported_ops", "KERNEL_DIR"]

KERNEL_DIR = Path(__file__).resolve().parents[3] / "firmware_bridge"  # src/ and include/ (in a source checkout)


def supported_ops() -> list[str]:
    return sorted(set(REGISTRY) | set(ALIASES))


@dataclass(frozen=True)
class CodegenResult:
    c_path: str
    h_path: str
    symbol: str
    arena_bytes: int
    weight_bytes: int  # const data: weights, biases, tables, parameters
    ops: dict[str, int]
    notes: list[str] = field(default_factory=list)
    blob_bytes: int = 0  # blob mode: the size of the constants' blob
    graph_hash: str = ""  # blob mode: hex SHA-256 of everything compiled into the code (not the blob's data)


@dataclass(frozen=True)
class BlobModel:
    """A model compiled in blob mode, without writing C: what a model image for that code carries."""

    graph_hash: bytes  # 32 bytes: the compiled code (operators, shapes, scalar parameters, blob layout)
    blob: bytes  # the constants the code reads through its blob pointer (little-endian, 4-byte aligned arrays)
    arena_bytes: int
    input_sizes: tuple[int, ...]
    output_sizes: tuple[int, ...]
    arrays: tuple[tuple[str, str, int, int], ...] = ()  # (C name, C type, offset, count) of each array in blob


@dataclass
class _Compiled:
    source: str
    header: str
    arena: int
    weights: int
    blob: bytes = b""
    graph_hash: bytes = b""
    arrays: tuple[tuple[str, str, int, int], ...] = ()


def symbol_for(c_path: str | os.PathLike[str]) -> str:
    from ..carray import c_identifier

    stem = Path(c_path).stem
    if stem.endswith("_model") and len(stem) > len("_model"):
        stem = stem[: -len("_model")]
    return c_identifier(stem)


def generate_c(data: bytes, c_path: str | os.PathLike[str], *, name: str | None = None,
               blob: bool = False) -> CodegenResult:
    """Compile the int8 model ``data`` to ``c_path`` and the header beside it (see the module docstring).

    ``blob``: the code reads the constant arrays through a pointer (``NAME_invoke_blob``) so that a
    model image can replace them without recompiling (CODEGEN.md, "Constants in a blob")."""
    from ..carray import _write_pair, c_identifier

    c_file = Path(c_path)
    if c_file.suffix.lower() != ".c":
        raise UsageError(f"--codegen writes NAME.c and NAME.h: give -o NAME.c, not {c_file}")
    symbol = c_identifier(name) if name else symbol_for(c_file)
    graph = read_graph(data)
    out = _compile(graph, symbol, c_file.with_suffix(".h").name, blob=blob)
    _write_pair([(c_file.with_suffix(".h"), out.header), (c_file, out.source)])
    ops = Counter(op.code for op in graph.ops)
    return CodegenResult(str(c_file), str(c_file.with_suffix(".h")), symbol, out.arena, out.weights, dict(ops),
                         graph.notes, len(out.blob), out.graph_hash.hex())


def compile_blob(data: bytes) -> BlobModel:
    """The blob-mode graph hash and constants of the int8 model ``data`` (what ``generate_c(blob=True)``
    compiles in and reads from its blob), for building model images (:mod:`edgeops.bridge.image`)."""
    graph = read_graph(data)
    out = _compile(graph, "model", "model.h", blob=True)
    return BlobModel(out.graph_hash, out.blob, out.arena, tuple(graph.tensors[i].size for i in graph.inputs),
                     tuple(graph.tensors[i].size for i in graph.outputs), out.arrays)


def _graph_hash(graph: Graph, ctx: Context, body: list[str], arena: int, single: bool) -> bytes:
    """SHA-256 of what blob-mode code compiles in: I/O, arena, the graph-shaped constants, struct values,
    the blob's layout (not its data) and the kernel calls. Independent of the C symbol."""
    import hashlib

    text = "\n".join(["edgeops codegen graph 1", f"arena {arena}", f"blob {len(ctx.blob)}",
                      *_io_macros(graph, "M", single), *ctx.decls, *ctx.layout, *body])
    return hashlib.sha256(text.encode()).digest()


def _compile(graph: Graph, symbol: str, header_name: str, blob: bool = False) -> _Compiled:
    problems = []
    for op in graph.ops:
        if op.code not in REGISTRY and op.code not in ALIASES:
            problems.append((op.name(graph), op.code, "no kernel for this op (supported: "
                             + ", ".join(supported_ops()) + ")"))
    for i in graph.inputs + graph.outputs:
        t = graph.tensors[i]
        if t.dtype != "int8":
            problems.append((t.name, "I/O", f"model input/output is {t.dtype}; --codegen takes int8 models "
                             "(convert with --quantize int8, or give an int8 .tflite)"))
    written = {o for op in graph.ops for o in op.outputs}
    for i in graph.outputs:
        if i not in written:
            problems.append((graph.tensors[i].name, "I/O", "no operator writes this output (it is an input or a "
                             "constant): nothing to compile"))
    single = len(graph.inputs) == 1 and len(graph.outputs) == 1
    pointers, buffers, copies = _storage(graph, single)
    ctx = Context(graph, pointers, blob=blob)
    body = []
    for step, op in enumerate(graph.ops):
        if op.code in ALIASES:
            if step in copies:
                o = op.outputs[0]
                body.append(f"eo_copy_s8({graph.tensors[o].size}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(o)});")
            continue
        if op.code not in REGISTRY:
            continue
        try:
            body.append(f"/* {op.code} {op.name(graph)} */".replace("*/ */", "* / */"))
            body.append(REGISTRY[op.code](graph, op, ctx))
        except Unsupported as exc:
            body.pop()
            problems.append((op.name(graph), op.code, str(exc)))
    if problems:
        raise UnsupportedOpsError(_describe(problems), problems)
    offsets, arena = first_fit(buffers)
    check(buffers, offsets, arena)
    at = {t: f"(int8_t *)(arena + {o})" for t, o in offsets.items()}
    body = [_resolve(line, at) for line in body]
    weights = sum(_decl_bytes(d) for d in ctx.decls) + len(ctx.blob)
    if not blob:
        header = _header(graph, symbol, arena, header_name, single)
        source = _source(graph, symbol, header_name, ctx.decls, body, arena, single)
        return _Compiled(source, header, arena, weights)
    digest = _graph_hash(graph, ctx, body, arena, single)
    header = _header(graph, symbol, arena, header_name, single, blob=(len(ctx.blob), digest))
    source = _blob_source(graph, symbol, header_name, ctx, body, arena, single)
    return _Compiled(source, header, arena, weights, bytes(ctx.blob), digest, tuple(ctx.arrays))


def _resolve(line: str, pointers: dict[int, str]) -> str:
    import re

    return re.sub(r"@(\d+)@", lambda m: pointers[int(m.group(1))], line)


def _storage(graph: Graph, single: bool) -> tuple[dict[int, str], list[Buffer], set[int]]:
    """The pointer expression of each tensor (arena ones as ``@ROOT@`` until planned), the buffers to
    plan, and the steps of aliasing ops that must copy (their output is a graph output)."""
    root: dict[int, int] = {}
    for op in graph.ops:
        if op.code in ALIASES and op.outputs[0] not in graph.outputs:
            src = op.inputs[0]
            root[op.outputs[0]] = root.get(src, src)
    pointers: dict[int, str] = {}
    for k, i in enumerate(graph.inputs):
        pointers[i] = "input" if single else f"inputs[{k}]"
    for k, i in enumerate(graph.outputs):
        pointers[i] = "output" if single else f"outputs[{k}]"
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    copies = set()
    for step, op in enumerate(graph.ops):
        if op.code in ALIASES and op.outputs[0] in graph.outputs:
            copies.add(step)
        for i in op.inputs:
            if i >= 0 and graph.tensors[i].data is None:
                r = root.get(i, i)
                last[r] = step
        for o in op.outputs:
            if op.code in ALIASES and o in root:
                continue
            first.setdefault(o, step)
            last.setdefault(o, step)
    buffers = []
    for t, f in first.items():
        if t in pointers:
            continue
        buffers.append(Buffer(t, graph.tensors[t].size, f, max(last.get(t, f), f)))
    for t in first:
        if t not in pointers:
            pointers[t] = f"@{t}@"
    for alias, r in root.items():
        pointers[alias] = pointers.get(r, f"@{r}@")
    planned = {b.key for b in buffers}
    for key, expr in pointers.items():
        if expr.startswith("@") and int(expr.strip("@")) not in planned:
            raise UsageError(f"tensor {graph.tensors[key].name!r} is read before any operator writes it")
    return {k: v for k, v in pointers.items()}, buffers, copies


def _decl_bytes(decl: str) -> int:
    import re

    m = re.match(r"static const (\w+) \w+\[(\d+)\]", decl)
    if not m:
        return 0
    return int(m.group(2)) * {"int8_t": 1, "int32_t": 4, "float": 4}.get(m.group(1), 4)


def _describe(problems: list[tuple[str, str, str]]) -> str:
    ops = Counter(op for _, op, _ in problems)
    lines = [f"{len(problems)} op(s) cannot be compiled to C ({', '.join(f'{k} x{v}' for k, v in ops.items())}); "
             "nothing written. Use --format c without --codegen to run the model in TFLite Micro:"]
    lines += [f"  {name or '(unnamed)'} [{op}]: {reason}" for name, op, reason in problems[:50]]
    return "\n".join(lines)


def _comment(text: str) -> str:
    return text.replace("*/", "* /").replace("/*", "/ *")


def _io_macros(graph: Graph, symbol: str, single: bool) -> list[str]:
    up = symbol.upper()
    lines = []
    for kind, indices in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
        if not single:
            lines.append(f"#define {up}_NUM_{kind}S {len(indices)}")
        for k, i in enumerate(indices):
            t = graph.tensors[i]
            suffix = "" if single else f"_{k}"
            s, z = t.q
            lines += [f"/* {kind.lower()} {k}: {_comment(t.name)}, int8 {list(t.shape)}, real = scale * (q - zero point) */",
                      f"#define {up}_{kind}_SIZE{suffix} {t.size}",
                      f"#define {up}_{kind}_SCALE{suffix} {float_literal(s)} /* {s:.9g} */",
                      f"#define {up}_{kind}_ZERO_POINT{suffix} {z}"]
    return lines


def _blob_macros(symbol: str, size: int, digest: bytes, single: bool) -> str:
    up = symbol.upper()
    args = ("const int8_t *input, int8_t *output, uint8_t *arena" if single else
            "const int8_t *const inputs[], int8_t *const outputs[], uint8_t *arena")
    hash_bytes = ", ".join(f"0x{b:02x}" for b in digest)
    return f"""
/* Blob mode: the constant arrays (weights, biases, per-channel multipliers and shifts, tables) are read
 * through a pointer to {up}_BLOB_SIZE bytes, 4-byte aligned, little-endian; everything else (operators,
 * shapes, scalar kernel parameters, the blob's layout) is compiled in and summed up by the graph hash.
 * A blob for this code comes from a model with the same graph hash (edgeops.bridge.image). */
#define {up}_BLOB_SIZE {size}
#define {up}_GRAPH_HASH_HEX "{digest.hex()}"
#define {up}_GRAPH_HASH_BYTES {{{hash_bytes}}}

/* The blob of the model this code was generated from, as 32-bit words (so 4-byte aligned). */
extern const uint32_t {symbol}_blob_words[];

/* As {symbol}_invoke with the constants read from blob; -1 also when blob is NULL or not 4-byte aligned. */
int {symbol}_invoke_blob(const uint8_t *blob, {args});

/* 0 when every shift in blob is within -31..31, every bias within +-2^30 and every SOFTMAX exp table
 * non-negative with exp(0) at least 2^12 (so no blob makes a kernel shift out of range or overflow), -1
 * otherwise or when blob is NULL or not 4-byte aligned. Check a blob from outside the firmware with it
 * before {symbol}_invoke_blob. */
int {symbol}_blob_check(const uint8_t *blob);
"""


def _header(graph: Graph, symbol: str, arena: int, header_name: str, single: bool,
            blob: tuple[int, bytes] | None = None) -> str:
    guard = f"EDGEOPS_{symbol.upper()}_MODEL_H_"
    ops = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in Counter(op.code for op in graph.ops).items())
    notes = "".join(f" * {_comment(n)}\n" for n in graph.notes)
    sig = ("int {s}_invoke(const int8_t *input, int8_t *output, uint8_t *arena);" if single else
           "int {s}_invoke(const int8_t *const inputs[], int8_t *const outputs[], uint8_t *arena);").format(s=symbol)
    return f"""/* {header_name}: an int8 model compiled to C by edgeops (--format c --codegen). Do not edit.
 *
 * Operators: {_comment(ops)}
 * Build with every .c file of firmware_bridge/src, firmware_bridge/include on the include path.
{notes} */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

/* Bytes of scratch memory {symbol}_invoke needs (every intermediate tensor at a fixed offset; no alignment
 * needed, nothing kept between calls). */
#define {symbol.upper()}_ARENA_SIZE {arena}

{chr(10).join(_io_macros(graph, symbol, single))}

/* Runs the model: reads the input(s), writes the output(s), uses arena as scratch. Returns 0, or -1 when a
 * pointer is NULL. Input and output buffers must not overlap the arena. */
{sig}
{_blob_macros(symbol, blob[0], blob[1], single) if blob else ""}
#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""


def _source(graph: Graph, symbol: str, header_name: str, decls: list[str], body: list[str], arena: int,
            single: bool) -> str:
    check_ptrs = "input == 0 || output == 0" if single else "inputs == 0 || outputs == 0"
    arena_check = " || arena == 0" if arena else ""
    unused = "" if arena else "  (void)arena;\n"
    return (f"/* {symbol}: an int8 model compiled to C by edgeops (--format c --codegen). Do not edit. */\n\n"
            f'#include "{header_name}"\n#include "edgeops_kernels.h"\n\n'
            + "\n".join(decls) + "\n\n"
            + (f"int {symbol}_invoke(const int8_t *input, int8_t *output, uint8_t *arena) {{\n" if single else
               f"int {symbol}_invoke(const int8_t *const inputs[], int8_t *const outputs[], uint8_t *arena) {{\n")
            + unused + f"  if ({check_ptrs}{arena_check}) return -1;\n"
            + "".join(f"  {line}\n" for line in body) + "  return 0;\n}\n")


def _blob_source(graph: Graph, symbol: str, header_name: str, ctx: Context, body: list[str], arena: int,
                 single: bool) -> str:
    import struct as _struct

    data = bytes(ctx.blob) + bytes(-len(ctx.blob) % 4)
    words = [w for (w,) in _struct.iter_unpack("<I", data)] or [0]
    rows = ",\n".join("  " + ", ".join(f"0x{w:08x}u" for w in words[i:i + 8]) for i in range(0, len(words), 8))
    params = ("const int8_t *input, int8_t *output, uint8_t *arena" if single else
              "const int8_t *const inputs[], int8_t *const outputs[], uint8_t *arena")
    args = "input, output, arena" if single else "inputs, outputs, arena"
    check_ptrs = "input == 0 || output == 0" if single else "inputs == 0 || outputs == 0"
    arena_check = " || arena == 0" if arena else ""
    unused = "" if arena else "  (void)arena;\n"
    return (f"/* {symbol}: an int8 model compiled to C by edgeops (--format c --codegen, blob mode). Do not edit. */\n\n"
            f'#include "{header_name}"\n#include "edgeops_kernels.h"\n\n'
            + "".join(d + "\n" for d in ctx.decls)
            + f"\nconst uint32_t {symbol}_blob_words[{len(words)}] = {{\n{rows}\n}};\n\n"
            + f"int {symbol}_invoke_blob(const uint8_t *blob, {params}) {{\n" + unused
            + f"  if (blob == 0 || ((uintptr_t)(const void *)blob & 3u) != 0 || {check_ptrs}{arena_check}) return -1;\n"
            + "  {\n" + "".join(f"  {line}\n" for line in ctx.locals)
            + "".join(f"  {line}\n" for line in body) + "  }\n  return 0;\n}\n\n"
            + _blob_check_source(symbol, ctx.ranges)
            + f"int {symbol}_invoke({params}) {{\n"
            + f"  return {symbol}_invoke_blob((const uint8_t *)(const void *){symbol}_blob_words, {args});\n}}\n")


def _blob_check_source(symbol: str, ranges: list[tuple[int, int, int, int]]) -> str:
    rows = "".join(f"    {{{off}u, {n}u, {_int32(lo)}, {_int32(hi)}}},\n" for off, n, lo, hi in ranges) \
        or "    {0u, 0u, 0, 0},\n"
    return (f"int {symbol}_blob_check(const uint8_t *blob) {{\n"
            "  static const struct { uint32_t offset, count; int32_t lo, hi; } ranges[] = {\n" + rows + "  };\n"
            "  uint32_t r, k;\n"
            "  if (blob == 0 || ((uintptr_t)(const void *)blob & 3u) != 0) return -1;\n"
            "  for (r = 0; r < sizeof ranges / sizeof ranges[0]; ++r) {\n"
            "    const int32_t *v = (const int32_t *)(const void *)(blob + ranges[r].offset);\n"
            "    for (k = 0; k < ranges[r].count; ++k)\n"
            "      if (v[k] < ranges[r].lo || v[k] > ranges[r].hi) return -1;\n"
            "  }\n  return 0;\n}\n\n")


def _int32(v: int) -> str:
    return "INT32_MAX" if v == (1 << 31) - 1 else str(v)
