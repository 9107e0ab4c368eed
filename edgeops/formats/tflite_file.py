"""Read and validate a TFLite model without flatbuffers or ai_edge_litert.

A corrupt .tflite can crash the TFLite interpreter (tflite_runtime before LiteRT does not
verify the flatbuffer), so the runtime validates a file here before handing it over. On
the bounds-checked reader of :mod:`._flatbuffer`, :func:`_read_model` walks the TFLite
schema (``schema.fbs``, version 3) and checks what the interpreter trusts: tensor, buffer
and opcode indices in range, sane shapes and types, constant buffers as long as their
tensor, out-of-flatbuffer buffers inside the file, and the offset fields of builtin
options (``_tflite_ops.UNION_OFFSET_FIELDS``). Anything wrong is a
:class:`~edgeops.errors.ModelFormatError` that says where.

Some checks go past the schema because fuzzing found interpreter crashes behind them
(``tests/formats/test_interpreter_crash.py``): operators run in file order, so each reads
only tensors that exist by then, and each tensor has one writer, which writes no constant
unless the interpreter computes that output while it prepares (:class:`_DataFlow`);
``-1`` (an omitted input) only where the kernel takes an optional input; an operator's
options of its own op's type (``_tflite_ops.OPTIONS_TYPES``); resource ops given a
resource; integer quantization with positive normal scales and zero points inside the
type's range.
"""

from __future__ import annotations

import math
import struct

from ._flatbuffer import Flat, Table
from ._summary import ModelSummary, TensorInfo, format_error, op_histogram
from ._tflite_ops import BUILTIN_OPERATORS, OPTIONS_TYPES, UNION_OFFSET_FIELDS

__all__ = ["read_tflite", "tflite_io_map", "TFLITE_DTYPES"]

SCHEMA_VERSION = 3
MAX_RANK = 16
CUSTOM = 32  # BuiltinOperator.CUSTOM
PLACEHOLDER = 127  # BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES

# TensorType -> (numpy / ml_dtypes name, bits per element; None: no fixed size)
TFLITE_DTYPES = {
    0: ("float32", 32), 1: ("float16", 16), 2: ("int32", 32), 3: ("uint8", 8),
    4: ("int64", 64), 5: ("bytes", None), 6: ("bool", 8), 7: ("int16", 16),
    8: ("complex64", 64), 9: ("int8", 8), 10: ("float64", 64), 11: ("complex128", 128),
    12: ("uint64", 64), 13: ("resource", None), 14: ("variant", None), 15: ("uint32", 32),
    16: ("uint16", 16), 17: ("int4", 4), 18: ("bfloat16", 16), 19: ("int2", 2),
    20: ("uint4", 4), 21: ("float8_e4m3fn", 8), 22: ("float8_e5m2", 8),
}  # fmt: skip

# Operator inputs a kernel may find omitted (-1); any other -1 makes tflite_runtime crash.
# Recurrent ops take many optional weights, so every input but the first may be omitted.
OPTIONAL_INPUTS = {
    "CONV_2D": {2}, "CONV_3D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2},
    "TRANSPOSE_CONV": {3}, "CONV_3D_TRANSPOSE": {3}, "SVDF": {3}, "PAD": {2}, "PADV2": {2},
}  # fmt: skip
RECURRENT = {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
             "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"}
# Ops that take a resource (variable or hash table) handle as input 0, and how many inputs.
RESOURCE_OPS = {"ASSIGN_VARIABLE": 2, "READ_VARIABLE": 1, "HASHTABLE_FIND": 3, "HASHTABLE_IMPORT": 3,
                "HASHTABLE_SIZE": 1}
RESOURCE = 13  # TensorType.RESOURCE
# Ops whose LiteRT kernel computes the output while it prepares, into memory of its own
# (SetTensorToPersistentRo): such an output may carry a constant buffer, as onnx2tf writes the
# folded value of a SHAPE -> GATHER into it. SHAPE and RANK read only a shape; the others fold when
# every input is a constant or folded. Any other operator writing a constant writes into the
# model's buffer at invoke: a segfault where the file is mapped read-only.
FOLDED_ALWAYS = {"SHAPE", "RANK"}
FOLDED_WHEN_CONSTANT = {"GATHER"}
INTEGER_RANGES = {2: (-(1 << 31), (1 << 31) - 1), 3: (0, 255), 4: (-(1 << 63), (1 << 63) - 1),
                  7: (-32768, 32767), 9: (-128, 127), 12: (0, (1 << 64) - 1), 15: (0, (1 << 32) - 1),
                  16: (0, 65535), 17: (-8, 7), 19: (-2, 1), 20: (0, 15)}

# An int8 FULLY_CONNECTED without a bias is valid, and LiteRT and x86 builds run it, but
# tflite-runtime 2.14 on aarch64 (the Raspberry Pi's runtime) dereferences the missing bias and
# crashes (SIGSEGV, builtin kernels and XNNPACK alike). Not refused here: the TFLite backend refuses
# it where that runtime runs (:func:`tflite_io_map`'s ``hazards``); edgeops' exporter writes a zero bias.
ARM_HAZARD = ("an int8 FULLY_CONNECTED without a bias ({ops}), which crashes tflite-runtime 2.14 on aarch64; "
              "run it with ai-edge-litert, or re-convert it with edgeops convert (which gives it a zero bias)")

MIN_SCALE = 2.0**-126  # the smallest normal float32: kernels invert scales, LiteRT crashes below


class _Model:
    """The parts of a validated model the summary needs."""

    def __init__(self) -> None:
        self.version = 0
        self.description: str | None = None
        self.op_names: list[str] = []
        self.tensors: list[list[TensorInfo]] = []  # per subgraph
        self.io: list[tuple[list[int], list[int]]] = []  # per subgraph
        self.signature: tuple[int, list[tuple[str, int]], list[tuple[str, int]]] | None = None
        self.signature_what = ""  # where the signature is, for messages
        self.metadata: dict[str, str] = {}
        self.unbiased_int8_fc: list[str] = []  # int8 FULLY_CONNECTEDs without a bias (see ARM_HAZARD)


def _read_model(data, source: str | None) -> _Model:
    size = len(data)
    if size == 0:
        raise format_error("TFLite", "the file is empty", source)
    if size < 8 or bytes(data[4:8]) != b"TFL3":
        head = bytes(data[4:8]) if size >= 8 else bytes(data[:8])
        raise format_error("TFLite", f"no TFL3 file identifier at byte 4 (found {head!r})", source,
                           "check that this is a .tflite file, then re-export it or check the copy")
    fb = Flat(data, source)
    root = fb.table(fb.deref(0, "root offset"), "model")
    m = _Model()
    m.version = root.scalar(0, "I", "version")
    if m.version != SCHEMA_VERSION:
        raise fb.fail(f"schema version {m.version}, expected {SCHEMA_VERSION}")
    m.description = root.text(3, "description")
    buffers = [_read_buffer(fb, t) for t in root.tables(4, "buffers")]
    opcodes = [_read_opcode(fb, t) for t in root.tables(1, "operator_codes")]
    subgraphs = root.tables(2, "subgraphs")
    if not subgraphs:
        raise fb.fail("no subgraphs")
    for g in subgraphs:
        _read_subgraph(fb, g, m, opcodes, buffers)
    for i in root.ints(5, "metadata_buffer") or []:
        if not 0 <= i < len(buffers):
            raise fb.fail(f"corrupt: model.metadata_buffer names buffer {i} of {len(buffers)}")
    for meta in root.tables(6, "metadata"):
        name, index = meta.text(0, "name") or "", meta.scalar(1, "I", "buffer")
        if index >= len(buffers):
            raise fb.fail(f"corrupt: {meta.what} names buffer {index} of {len(buffers)}")
        m.metadata[name] = _metadata_text(fb, buffers[index][0], buffers[index][1])
    for k, sig in enumerate(root.tables(7, "signature_defs")):
        entry = _read_signature(fb, sig, m)
        if k == 0:
            m.signature, m.signature_what = entry, sig.what
    _check_io(fb, m)
    return m


def _check_io(fb: Flat, m: _Model) -> None:
    """The model's signature (the first SignatureDef, else subgraph 0) must have inputs and outputs:
    without outputs a run returns nothing at all, without inputs it computes a constant."""
    if m.signature is not None:
        where, counts = m.signature_what, (len(m.signature[1]), len(m.signature[2]))
    else:
        where, counts = "model.subgraphs[0]", (len(m.io[0][0]), len(m.io[0][1]))
    for kind, listed in zip(("inputs", "outputs"), counts):
        if not listed:
            raise fb.fail(f"corrupt: {where} has no {kind}, so the model has none")


def _read_buffer(fb: Flat, t: Table) -> tuple[int, int]:
    """(start, length) of a buffer's bytes, from its data vector or its offset and size."""
    data = t.vector(0, 1, "data")
    offset, size = t.scalar(1, "Q", "offset"), t.scalar(2, "Q", "size")
    if offset > 1:  # large models keep buffers after the flatbuffer; offset is from the file start
        fb.need(offset, size, f"{t.what} (offset {offset}, size {size})")
        return offset, size
    return data if data is not None else (0, 0)


def _read_opcode(fb: Flat, t: Table) -> tuple[str, int]:
    """(name, builtin code) of an operator code."""
    deprecated, code = t.scalar(0, "b", "deprecated_builtin_code"), t.scalar(3, "i", "builtin_code")
    custom = t.text(1, "custom_code")
    t.scalar(2, "i", "version", 1)
    # Old files hold only deprecated_builtin_code; newer ones the code in builtin_code and
    # min(code, 127) (or nothing) in deprecated_builtin_code. Anything else is damage.
    if code < 0 or deprecated < 0 or (code and deprecated not in (0, min(code, PLACEHOLDER))):
        raise fb.fail(f"corrupt: {t.what} has builtin_code {code} but deprecated_builtin_code {deprecated}")
    code = max(code, deprecated)  # the schema's rule
    if code == CUSTOM:
        return (f"CUSTOM:{custom}" if custom else "CUSTOM"), code
    return BUILTIN_OPERATORS.get(code, f"BUILTIN_{code}"), code


def _check_indices(fb: Flat, indices: list[int] | None, limit: int, what: str, lowest: int = -1) -> list[int]:
    """Tensor indices must name a tensor; ``-1`` (an omitted optional input) only where allowed."""
    for i in indices or []:
        if not lowest <= i < limit:
            raise fb.fail(f"corrupt: {what} names tensor {i} of {limit}")
    return indices or []


def _read_subgraph(fb: Flat, g: Table, m: _Model, opcodes: list[tuple[str, int]], buffers: list) -> None:
    tables = g.tables(0, "tensors")
    tensors = [_read_tensor(fb, t, buffers) for t in tables]
    n = len(tensors)
    # -1 is for optional operator inputs; tflite_runtime 2.14 crashes on a -1 subgraph output
    inputs = _check_indices(fb, g.ints(1, "inputs"), n, f"{g.what}.inputs", 0)
    outputs = _check_indices(fb, g.ints(2, "outputs"), n, f"{g.what}.outputs", 0)
    flow = _DataFlow(fb, tables, tensors, buffers, inputs)
    for op in g.tables(3, "operators"):
        m.op_names.append(_read_operator(fb, op, opcodes, flow))
    m.unbiased_int8_fc += flow.unbiased_int8_fc
    for i in outputs:
        if i not in flow.ready:
            raise fb.fail(f"corrupt: {g.what} output tensor {i} is never written")
    g.text(4, "name")
    m.tensors.append(tensors)
    m.io.append((inputs, outputs))


class _DataFlow:
    """Operators run in file order: each reads only what exists by then (subgraph inputs,
    constants, variables, empty tensors, earlier outputs), and each tensor has at most one
    writer, never a subgraph input, and never a constant unless the writer is folded while the
    interpreter prepares (``FOLDED_ALWAYS``, ``FOLDED_WHEN_CONSTANT``)."""

    def __init__(self, fb: Flat, tables: list[Table], tensors: list[TensorInfo], buffers: list, inputs: list[int]):
        self.fb, self.tables, self.count, self.inputs = fb, tables, len(tensors), set(inputs)
        self.tensors = tensors
        self.unbiased_int8_fc: list[str] = []
        self.constant = {i for i, t in enumerate(tables) if buffers[t.scalar(2, "I", "buffer")][1]}
        self.ready = self.inputs | self.constant
        self.ready |= {i for i, t in enumerate(tables) if t.scalar(5, "B", "is_variable")}
        self.ready |= {i for i, t in enumerate(tensors) if t.shape is not None and 0 in t.shape}
        self.written: set[int] = set()
        self.folded: set[int] = set()  # outputs the interpreter computes while it prepares

    def reads(self, what: str, name: str, indices: list[int], custom: bool) -> None:
        if name in RESOURCE_OPS and (len(indices) != RESOURCE_OPS[name] or indices[0] < 0
                                     or self.tables[indices[0]].scalar(1, "b", "type") != RESOURCE):
            raise self.fb.fail(f"corrupt: {what} ({name}) needs a resource tensor and "
                               f"{RESOURCE_OPS[name]} inputs, has {indices}")
        for k, i in enumerate(indices):
            if i == -1 and not (custom or k in OPTIONAL_INPUTS.get(name, ()) or (k and name in RECURRENT)):
                raise self.fb.fail(f"corrupt: {what} ({name}) omits input {k}, which {name} requires")
            if i >= 0 and i not in self.ready:
                raise self.fb.fail(f"corrupt: {what} ({name}) reads tensor {i} before any operator writes it")

    def writes(self, what: str, name: str, indices: list[int], inputs: list[int]) -> None:
        known = self.constant | self.folded
        folded = name in FOLDED_ALWAYS or (name in FOLDED_WHEN_CONSTANT and all(i in known for i in inputs))
        for i in indices:
            if (i in self.constant and not folded) or i in self.written or i in self.inputs:
                kind = ("constant" if i in self.constant else
                        "already written" if i in self.written else "subgraph input")
                raise self.fb.fail(f"corrupt: {what} ({name}) writes {kind} tensor {i}")
        self.written.update(indices)
        self.ready.update(indices)
        if folded:
            self.folded.update(indices)


def _read_operator(fb: Flat, op: Table, opcodes: list[tuple[str, int]], flow: _DataFlow) -> str:
    index = op.scalar(0, "I", "opcode_index")
    if index >= len(opcodes):
        raise fb.fail(f"corrupt: {op.what}.opcode_index is {index} of {len(opcodes)} operator codes")
    name, code = opcodes[index]
    custom = name.startswith("CUSTOM")
    n = flow.count
    inputs = _check_indices(fb, op.ints(1, "inputs"), n, f"{op.what}.inputs")
    flow.reads(op.what, name, inputs, custom)
    if name == "FULLY_CONNECTED" and inputs and inputs[0] >= 0 and flow.tensors[inputs[0]].dtype == "int8" \
            and (len(inputs) < 3 or inputs[2] < 0):
        flow.unbiased_int8_fc.append(op.what)
    outputs = _check_indices(fb, op.ints(2, "outputs"), n, f"{op.what}.outputs", -1 if custom else 0)
    flow.writes(op.what, name, outputs, inputs)
    _check_indices(fb, op.ints(8, "intermediates"), n, f"{op.what}.intermediates")
    kinds = (op.union(3, 4, UNION_OFFSET_FIELDS["BuiltinOptions"], "builtin_options"),
             op.union(11, 12, UNION_OFFSET_FIELDS["BuiltinOptions2"], "builtin_options_2"))
    if code in OPTIONS_TYPES:  # options of another op's type: a damaged opcode or options
        union, kind = OPTIONS_TYPES[code]
        if kinds[union - 1] not in (0, kind):
            raise fb.fail(f"corrupt: {op.what} ({name}) carries options of type {kinds[union - 1]}, "
                          f"not {name}'s ({kind})")
    op.vector(5, 1, "custom_options")
    op.vector(7, 1, "mutating_variable_inputs")
    offset = op.scalar(9, "Q", "large_custom_options_offset")
    if offset > 1:
        fb.need(offset, op.scalar(10, "Q", "large_custom_options_size"), f"{op.what}.large_custom_options")
    return name


def _read_tensor(fb: Flat, t: Table, buffers: list) -> TensorInfo:
    shape = t.ints(0, "shape") or []
    signature = t.ints(7, "shape_signature")
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise fb.fail(f"corrupt: {t.what}.shape is {shape}")
    if signature is not None and (len(signature) > MAX_RANK or any(d < -1 for d in signature)):
        raise fb.fail(f"corrupt: {t.what}.shape_signature is {signature}")
    kind = t.scalar(1, "b", "type")
    if kind not in TFLITE_DTYPES:
        raise fb.fail(f"corrupt: {t.what} has unknown type {kind}")
    index = t.scalar(2, "I", "buffer")
    if index >= len(buffers):
        raise fb.fail(f"corrupt: {t.what} names buffer {index} of {len(buffers)}")
    name = t.text(3, "name") or ""
    _read_quantization(fb, t.table(4, "quantization"), shape, kind)
    sparse = _read_sparsity(fb, t.table(6, "sparsity"))
    for variant in t.tables(9, "variant_tensors"):
        variant.ints(0, "shape")
    dtype, bits = TFLITE_DTYPES[kind]
    length = buffers[index][1]
    if length and bits and not sparse:
        count = 1
        for d in shape:
            count *= d
        if length not in (count * bits // 8 if bits >= 8 else count, (count * bits + 7) // 8):
            raise fb.fail(f"corrupt: {t.what} ({name!r}, {dtype} {shape}) needs "
                          f"{(count * bits + 7) // 8} bytes but its buffer {index} holds {length}")
    dims = signature if signature else shape
    return TensorInfo(name, tuple(None if d < 0 else d for d in dims), dtype)


def _read_quantization(fb: Flat, q: Table | None, shape: list[int], kind: int) -> None:
    """Check the quantization table; for integer tensors, the values kernels divide and index by."""
    if q is None:
        return
    q.vector(0, 4, "min")
    q.vector(1, 4, "max")
    scale, zero = q.vector(2, 4, "scale"), q.vector(3, 8, "zero_point")
    q.union(4, 5, UNION_OFFSET_FIELDS["QuantizationDetails"], "details")
    axis = q.scalar(6, "i", "quantized_dimension")
    if scale is None or zero is None or scale[1] == 0:
        return
    if scale[1] != zero[1]:  # the interpreter's own checks, made before it trusts them
        raise fb.fail(f"corrupt: {q.what} has {scale[1]} scales but {zero[1]} zero points")
    if axis < 0 or (shape and axis >= len(shape)):
        raise fb.fail(f"corrupt: {q.what}.quantized_dimension {axis} for shape {shape}")
    if scale[1] != 1 and shape and scale[1] != shape[axis]:
        raise fb.fail(f"corrupt: {q.what} has {scale[1]} scales for dimension {shape[axis]}")
    if kind not in INTEGER_RANGES:
        return
    fb.spend(2 * scale[1], q.what)
    low, high = INTEGER_RANGES[kind]
    scales = struct.unpack_from(f"<{scale[1]}f", fb.data, scale[0])
    zero_points = struct.unpack_from(f"<{zero[1]}q", fb.data, zero[0])
    if not all(MIN_SCALE <= x < math.inf for x in scales):  # also false for NaN
        raise fb.fail(f"corrupt: {q.what} has a scale that is not a positive normal number")
    if not all(low <= z <= high for z in zero_points):
        raise fb.fail(f"corrupt: {q.what} has a zero point outside the {TFLITE_DTYPES[kind][0]} range")


def _read_sparsity(fb: Flat, s: Table | None) -> bool:
    if s is None:
        return False
    s.ints(0, "traversal_order")
    s.ints(1, "block_map")
    for dim in s.tables(2, "dim_metadata"):
        dim.union(2, 3, UNION_OFFSET_FIELDS["SparseIndexVector"], "array_segments")
        dim.union(4, 5, UNION_OFFSET_FIELDS["SparseIndexVector"], "array_indices")
    return True


def _read_signature(fb: Flat, sig: Table, m: _Model):
    index = sig.scalar(4, "I", "subgraph_index")
    if index >= len(m.tensors):
        raise fb.fail(f"corrupt: {sig.what}.subgraph_index is {index} of {len(m.tensors)}")
    sig.text(2, "signature_key")
    io = []
    for field, name in ((0, "inputs"), (1, "outputs")):
        pairs = []
        for tmap in sig.tables(field, name):
            tensor = tmap.scalar(1, "I", "tensor_index")
            if tensor >= len(m.tensors[index]):
                raise fb.fail(f"corrupt: {tmap.what} names tensor {tensor} of {len(m.tensors[index])}")
            pairs.append((tmap.text(0, "name") or "", tensor))
        order = m.io[index][field]  # signature names in the subgraph's input/output order
        pairs.sort(key=lambda p: order.index(p[1]) if p[1] in order else len(order))
        io.append(pairs)
    return index, io[0], io[1]


def _metadata_text(fb: Flat, start: int, length: int) -> str:
    """Short printable text (such as min_runtime_version) as is, anything else as ``<N bytes>``."""
    if length == 0:
        return ""
    raw = bytes(fb.data[start:start + length]) if length <= 4096 else b""
    text = raw.rstrip(b"\0")
    if raw and b"\0" not in text:
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            decoded = ""
        if decoded.isprintable():
            return decoded
    return f"<{length} bytes>"


def _io(m: _Model) -> tuple[list[tuple[str, int, TensorInfo]], list[tuple[str, int, TensorInfo]]]:
    """(name, tensor index, info) for inputs and outputs: the first signature's, else subgraph 0's."""
    if m.signature is not None:
        index, inputs, outputs = m.signature
        tensors = m.tensors[index]
        return ([(n, i, tensors[i]) for n, i in inputs], [(n, i, tensors[i]) for n, i in outputs])
    tensors = m.tensors[0]
    in_index, out_index = m.io[0]
    return ([(tensors[i].name, i, tensors[i]) for i in in_index],
            [(tensors[i].name, i, tensors[i]) for i in out_index])


def read_tflite(data, *, source: str | None = None) -> ModelSummary:
    """Validate and summarize a TFLite model from its bytes (any bytes-like object).

    ``source`` names the file in error messages. Raises
    :class:`~edgeops.errors.ModelFormatError` for anything the interpreter should not see.
    """
    m = _read_model(data, source)
    inputs, outputs = _io(m)
    return ModelSummary(
        format="tflite",
        size_bytes=len(data),
        inputs=tuple(TensorInfo(n, t.shape, t.dtype) for n, _, t in inputs),
        outputs=tuple(TensorInfo(n, t.shape, t.dtype) for n, _, t in outputs),
        ops=op_histogram(m.op_names),
        versions={"schema_version": m.version},
        producer=m.description or None,
        metadata=m.metadata,
    )


def tflite_io_map(data, *, source: str | None = None, hazards: list[str] | None = None) -> dict[str, dict[str, int]]:
    """``{"inputs": {name: tensor_index}, "outputs": {...}}`` in ``read_tflite``'s order.

    ``hazards``, a list, receives what some runtime cannot run although the file is valid
    (:data:`ARM_HAZARD`'s int8 FULLY_CONNECTED without a bias): the caller knows its runtime.

    Names are the first SignatureDef's (the tensors are in its subgraph), else subgraph 0's
    tensor names; indices are what ``Interpreter.set_tensor`` / ``get_tensor`` take. The model is
    validated as thoroughly as by :func:`read_tflite` (same walk), so one call is enough before loading.
    """
    m = _read_model(data, source)
    inputs, outputs = _io(m)
    if hazards is not None and m.unbiased_int8_fc:
        hazards.append(ARM_HAZARD.format(ops=", ".join(m.unbiased_int8_fc[:3])
                                         + (f" and {len(m.unbiased_int8_fc) - 3} more" if len(m.unbiased_int8_fc) > 3 else "")))
    return {"inputs": {n: i for n, i, _ in inputs}, "outputs": {n: i for n, i, _ in outputs}}
