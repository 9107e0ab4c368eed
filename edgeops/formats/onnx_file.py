"""Read an ONNX model's signature, ops and metadata without the ``onnx`` package.

A minimal protobuf wire-format reader for the ``ModelProto`` fields ``edgeops info`` and
the runtime's pre-load check need (onnx.proto field numbers, stable since IR v3):

    ModelProto     1 ir_version, 2 producer_name, 3 producer_version, 7 graph,
                   8 opset_import, 14 metadata_props
    GraphProto     1 node, 5 initializer, 11 input, 12 output, 15 sparse_initializer
    NodeProto      4 op_type, 7 domain, 5 attribute (6 g and 11 graphs hold subgraphs)
    ValueInfoProto 1 name, 2 type -> TypeProto 1 tensor_type / 8 sparse_tensor_type
                   -> 1 elem_type, 2 shape -> 1 dim -> 1 dim_value, 2 dim_param
    TensorProto    8 name, 13 external_data, 14 data_location

Random bytes often parse as protobuf by accident, so the reader is strict: an unknown
wire type, an invalid varint, field number 0, a length past the end of its message, a
known field with the wrong wire type, text that is not UTF-8, a missing ``ir_version`` or
``graph``, a node without ``op_type``, a main graph without outputs or without inputs (other
than initializers): each is a :class:`~edgeops.errors.ModelFormatError`.
Every graph, node, attribute, value info, type and tensor header is walked (subgraphs of
If/Loop/Scan included), but tensor data is skipped, never decoded, so external-data
models read fine without their data files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edgeops.errors import ModelFormatError

from ._summary import ModelSummary, TensorInfo, format_error, op_histogram

__all__ = ["read_onnx", "onnx_external_files", "looks_like_onnx"]

# TensorProto.DataType -> numpy dtype name (ml_dtypes names where numpy has none),
# as onnx.helper.tensor_dtype_to_np_dtype reports them.
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "object", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn",
    18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4", 22: "int4",
    23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2",
    27: "float6_e2m3fn", 28: "float6_e3m2fn",
}  # fmt: skip

MAX_DEPTH = 32  # subgraphs or nested types deeper than this are not a real model
MAX_IR_VERSION = 100  # IR v11 is current; a larger value is a corrupt or non-ONNX file

VARINT, I64, LEN, I32 = 0, 1, 2, 5
# Repeated scalars, stored one by one or packed into one length-delimited field.
PACKED_VARINT, PACKED_I32, PACKED_I64 = 8, 9, 10
_UNPACKED = {PACKED_VARINT: VARINT, PACKED_I32: I32, PACKED_I64: I64}
_WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}
_LONG_VARINT = re.compile(rb"[\x80-\xff]{10}")

# Per message: field number -> (name, wire type) for the fields read or wire-checked.
_MODEL = {1: ("ir_version", VARINT), 2: ("producer_name", LEN), 3: ("producer_version", LEN),
          4: ("domain", LEN), 5: ("model_version", VARINT), 6: ("doc_string", LEN),
          7: ("graph", LEN), 8: ("opset_import", LEN), 14: ("metadata_props", LEN)}
_GRAPH = {1: ("node", LEN), 2: ("name", LEN), 5: ("initializer", LEN), 10: ("doc_string", LEN),
          11: ("input", LEN), 12: ("output", LEN), 13: ("value_info", LEN),
          15: ("sparse_initializer", LEN)}
_NODE = {1: ("input", LEN), 2: ("output", LEN), 3: ("name", LEN), 4: ("op_type", LEN),
         5: ("attribute", LEN), 6: ("doc_string", LEN), 7: ("domain", LEN)}
_ATTRIBUTE = {1: ("name", LEN), 2: ("f", I32), 3: ("i", VARINT), 4: ("s", LEN), 5: ("t", LEN),
              6: ("g", LEN), 7: ("floats", PACKED_I32), 8: ("ints", PACKED_VARINT),
              9: ("strings", LEN), 10: ("tensors", LEN), 11: ("graphs", LEN), 13: ("doc_string", LEN),
              20: ("type", VARINT), 21: ("ref_attr_name", LEN)}
_VALUE_INFO = {1: ("name", LEN), 2: ("type", LEN)}
_TYPE = {1: ("tensor_type", LEN), 4: ("sequence_type", LEN), 5: ("map_type", LEN),
         6: ("denotation", LEN), 8: ("sparse_tensor_type", LEN), 9: ("optional_type", LEN)}
_TENSOR_TYPE = {1: ("elem_type", VARINT), 2: ("shape", LEN)}
_ELEM_TYPE = {1: ("elem_type", LEN)}  # TypeProto.Sequence / TypeProto.Optional
_MAP_TYPE = {1: ("key_type", VARINT), 2: ("value_type", LEN)}
_SHAPE = {1: ("dim", LEN)}
_DIM = {1: ("dim_value", VARINT), 2: ("dim_param", LEN), 3: ("denotation", LEN)}
_TENSOR = {1: ("dims", PACKED_VARINT), 2: ("data_type", VARINT), 3: ("segment", LEN),
           4: ("float_data", PACKED_I32), 5: ("int32_data", PACKED_VARINT), 6: ("string_data", LEN),
           7: ("int64_data", PACKED_VARINT), 8: ("name", LEN), 9: ("raw_data", LEN),
           10: ("double_data", PACKED_I64), 11: ("uint64_data", PACKED_VARINT), 12: ("doc_string", LEN),
           13: ("external_data", LEN), 14: ("data_location", VARINT)}
_SPARSE_TENSOR = {1: ("values", LEN), 2: ("indices", LEN), 3: ("dims", PACKED_VARINT)}
_OPSET = {1: ("domain", LEN), 2: ("version", VARINT)}
_ENTRY = {1: ("key", LEN), 2: ("value", LEN)}  # fmt: skip

Span = tuple[int, int]  # a field's bytes, [start, end) in the file
Value = int | Span  # what _Wire.fields yields: an int for a varint field, the Span of any other


def _span(value: Value) -> Span:
    """A length-delimited field's span; :meth:`_Wire.fields` checked the wire type against the schema."""
    assert isinstance(value, tuple), value
    return value


def _int(value: Value) -> int:
    """A varint field's value; :meth:`_Wire.fields` checked the wire type against the schema."""
    assert isinstance(value, int), value
    return value


class _Wire:
    """Bounds-checked protobuf wire-format walker over one bytes-like buffer."""

    def __init__(self, data, source: str | None) -> None:
        self.data = data
        self.size = len(data)
        self.source = source

    def fail(self, what: str):
        return format_error("ONNX", what, self.source)

    def _past_end(self, what: str, pos: int, limit: int, message: str):
        if limit >= self.size:
            return self.fail(f"truncated: {what} at byte {pos} runs past the end of the {self.size}-byte file")
        return self.fail(f"corrupt: {what} at byte {pos} runs past the end of its {message} (byte {limit})")

    def varint(self, pos: int, limit: int, what: str, message: str) -> tuple[int, int]:
        data, start, result, shift = self.data, pos, 0, 0
        while True:
            if pos >= limit:
                raise self._past_end(what, start, limit, message)
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if shift == 63 and byte > 1:  # more than 64 bits
                    raise self.fail(f"corrupt: invalid varint in {what} at byte {start}")
                return result, pos
            shift += 7
            if shift > 63:
                raise self.fail(f"corrupt: varint longer than 10 bytes in {what} at byte {start}")

    def fields(self, span: Value, message: str, schema: dict[int, tuple[str, int]]) -> Iterator[tuple[int, Value]]:
        """Yield ``(field_number, value)`` of the message in ``span``: an int for varints, ``(start, end)`` for the
        rest; every field of ``schema`` has the wire type it gives, so :func:`_int` / :func:`_span` narrow it."""
        pos, end = _span(span)
        while pos < end:
            tag_at = pos
            tag, pos = self.varint(pos, end, f"a {message} field tag", message)
            number, wire = tag >> 3, tag & 7
            if number == 0 or number >= 1 << 29:
                raise self.fail(f"corrupt: field number {number} in {message} at byte {tag_at}")
            name, expected = schema.get(number, (str(number), wire))
            what = f"field {message}.{name}"
            packed = expected in _UNPACKED and wire == LEN
            if expected in _UNPACKED and not packed:
                expected = _UNPACKED[expected]
            if wire != expected and not packed:
                got = _WIRE_NAMES.get(wire, f"invalid ({wire})")
                raise self.fail(f"corrupt: {what} at byte {tag_at} has wire type {got}, "
                                f"expected {_WIRE_NAMES[expected]}")
            if wire == VARINT:
                value, pos = self.varint(pos, end, what, message)
                yield number, value
                continue
            if wire == LEN:
                length, pos = self.varint(pos, end, what, message)
                stop = pos + length
            elif wire in (I64, I32):
                stop = pos + (8 if wire == I64 else 4)
            else:
                raise self.fail(f"corrupt: {what} at byte {tag_at} has unknown wire type {wire}")
            if stop > end:
                raise self._past_end(what, tag_at, end, message)
            if packed:
                self._check_packed(expected, pos, stop, what)
            yield number, (pos, stop)
            pos = stop

    def _check_packed(self, kind: int, start: int, stop: int, what: str) -> None:
        if kind == PACKED_VARINT:
            chunk = bytes(self.data[start:stop])
            if (chunk and chunk[-1] >= 0x80) or _LONG_VARINT.search(chunk):
                raise self.fail(f"corrupt: invalid varint in packed {what} at byte {start}")
        elif (stop - start) % (4 if kind == PACKED_I32 else 8):
            raise self.fail(f"corrupt: packed {what} at byte {start} has a partial element")

    def text(self, value: Value, what: str) -> str:
        start, end = _span(value)
        try:
            return bytes(self.data[start:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"corrupt: {what} at byte {start} is not valid UTF-8") from None


def _entry(w: _Wire, span: Value) -> dict[int, str]:
    """A StringStringEntryProto as {1: key, 2: value}."""
    return {num: w.text(val, "a StringStringEntryProto") for num, val in w.fields(span, "StringStringEntryProto", _ENTRY)
            if num in _ENTRY}


def _int64(value: Value) -> int:
    n = _int(value)
    return n - (1 << 64) if n >= 1 << 63 else n


class _Graphs:
    """What the walk over the main graph and every subgraph collects."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.initializers: set[str] = set()
        self.external: list[str] = []
        self.main_nodes = 0


def _read_graph(w: _Wire, span: Value, acc: _Graphs, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise w.fail(f"corrupt: subgraphs nested more than {MAX_DEPTH} levels deep")
    main = depth == 0
    for number, value in w.fields(span, "GraphProto", _GRAPH):
        if number == 1:
            _read_node(w, value, acc, depth)
            acc.main_nodes += main
        elif number == 5:
            name = _read_tensor(w, value, acc)
            if main:
                acc.initializers.add(name)
        elif number == 15:
            for num, val in w.fields(value, "SparseTensorProto", _SPARSE_TENSOR):
                if num in (1, 2):
                    name = _read_tensor(w, val, acc)
                    if main and num == 1:
                        acc.initializers.add(name)
        elif number in (11, 12, 13):
            info = _read_value_info(w, value)
            if main and number != 13:
                (acc.inputs if number == 11 else acc.outputs).append(info)


def _read_node(w: _Wire, span: Value, acc: _Graphs, depth: int) -> None:
    op_type, domain = "", ""
    slot = len(acc.ops)  # the node is listed before the nodes of its subgraphs
    acc.ops.append("")
    for number, value in w.fields(span, "NodeProto", _NODE):
        if number == 4:
            op_type = w.text(value, "NodeProto.op_type")
        elif number == 7:
            domain = w.text(value, "NodeProto.domain")
        elif number == 5:
            for num, val in w.fields(value, "AttributeProto", _ATTRIBUTE):
                if num in (6, 11):
                    _read_graph(w, val, acc, depth + 1)
                elif num in (5, 10):
                    _read_tensor(w, val, acc)
    if not op_type:
        raise w.fail(f"corrupt: a node at byte {_span(span)[0]} has no op_type")
    acc.ops[slot] = op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def _read_tensor(w: _Wire, span: Value, acc: _Graphs) -> str:
    """Check a TensorProto's fields (not its data) and note external data; return its name."""
    name, external, location = "", False, None
    for number, value in w.fields(span, "TensorProto", _TENSOR):
        if number == 8:
            name = w.text(value, "TensorProto.name")
        elif number == 14:
            external = value == 1
        elif number == 13:
            entry = _entry(w, value)
            if entry.get(1) == "location":
                location = entry.get(2, "")
    if external and location and location not in acc.external:
        acc.external.append(location)
    return name


def _read_value_info(w: _Wire, span: Value) -> TensorInfo:
    name, shape, dtype = "", None, "undefined"
    for number, value in w.fields(span, "ValueInfoProto", _VALUE_INFO):
        if number == 1:
            name = w.text(value, "ValueInfoProto.name")
        elif number == 2:
            shape, dtype = _read_type(w, value, 0)
    return TensorInfo(name, shape, dtype)


def _read_type(w: _Wire, span: Value, depth: int) -> tuple[tuple[int | None, ...] | None, str]:
    """(shape, dtype) of a TypeProto; sequences, maps and optionals are ``(None, "object")``."""
    if depth > MAX_DEPTH:
        raise w.fail(f"corrupt: types nested more than {MAX_DEPTH} levels deep")
    shape, dtype = None, "undefined"
    for number, value in w.fields(span, "TypeProto", _TYPE):
        if number in (1, 8):
            shape, dtype = _read_tensor_type(w, value)
        elif number in (4, 5, 9):
            shape, dtype = None, "object"
            for num, val in w.fields(value, "TypeProto.Map" if number == 5 else "TypeProto.Sequence",
                                     _MAP_TYPE if number == 5 else _ELEM_TYPE):
                if num == (2 if number == 5 else 1):
                    _read_type(w, val, depth + 1)
    return shape, dtype


def _read_tensor_type(w: _Wire, span: Value) -> tuple[tuple[int | None, ...] | None, str]:
    shape, dtype = None, "undefined"
    for number, value in w.fields(span, "TypeProto.Tensor", _TENSOR_TYPE):
        if number == 1:
            code = _int(value)
            dtype = ONNX_DTYPES.get(code, "undefined" if code == 0 else f"onnx_elem_type_{code}")
        elif number == 2:
            shape = tuple(_read_dim(w, val) for num, val in w.fields(value, "TensorShapeProto", _SHAPE)
                          if num == 1)
    return shape, dtype


def _read_dim(w: _Wire, span: Value) -> int | None:
    dim = None
    for number, value in w.fields(span, "TensorShapeProto.Dimension", _DIM):
        if number == 1:
            dim = _int64(value)
            dim = dim if dim >= 0 else None
        elif number == 2:
            dim = None
            w.text(value, "Dimension.dim_param")
    return dim


class _Top:
    """The ModelProto fields outside the graph."""

    def __init__(self) -> None:
        self.ir_version: int | None = None
        self.producer = ["", ""]
        self.opset: dict[str, int] = {}
        self.metadata: dict[str, str] = {}
        self.graphs = 0


def _walk(data, source: str | None) -> tuple[_Top, _Graphs]:
    if len(data) == 0:
        raise format_error("ONNX", "the file is empty", source)
    w = _Wire(data, source)
    top, acc = _Top(), _Graphs()
    for number, value in w.fields((0, w.size), "ModelProto", _MODEL):
        if number == 1:
            top.ir_version = _int64(value)
        elif number in (2, 3):
            top.producer[number - 2] = w.text(value, "ModelProto.producer")
        elif number == 7:
            top.graphs += 1  # a repeated message field merges: nodes add up
            _read_graph(w, value, acc, 0)
        elif number == 8:
            domain, version = "", 0
            for num, val in w.fields(value, "OperatorSetIdProto", _OPSET):
                if num == 1:
                    domain = w.text(val, "OperatorSetIdProto.domain")
                elif num == 2:
                    version = _int64(val)
            top.opset[domain or "ai.onnx"] = version
        elif number == 14:
            entry = _entry(w, value)
            top.metadata[entry.get(1, "")] = entry.get(2, "")
    if top.ir_version is None:
        raise w.fail("no ir_version field (is this really an .onnx file?)")
    if not 1 <= top.ir_version <= MAX_IR_VERSION:
        raise w.fail(f"corrupt: ir_version {top.ir_version} is not between 1 and {MAX_IR_VERSION}")
    if not top.graphs:
        raise w.fail("no graph in the file (is this really an .onnx model?)")
    if not acc.outputs:
        raise w.fail("the graph has no outputs, so the model computes nothing")
    if not [t for t in acc.inputs if t.name not in acc.initializers]:
        raise w.fail("the graph has no inputs (none declared, or only initializers), so the model is a constant")
    return top, acc


def read_onnx(data, *, source: str | None = None) -> ModelSummary:
    """Summarize an ONNX model from its bytes (any bytes-like object).

    ``source`` names the file in error messages. Raises
    :class:`~edgeops.errors.ModelFormatError` for anything that is not a well-formed model.
    """
    top, acc = _walk(data, source)
    producer = " ".join(p for p in top.producer if p) or None
    return ModelSummary(
        format="onnx",
        size_bytes=len(data),
        inputs=tuple(t for t in acc.inputs if t.name not in acc.initializers),
        outputs=tuple(acc.outputs),
        ops=op_histogram(acc.ops),
        versions={"ir_version": top.ir_version, "opset": top.opset},
        producer=producer,
        metadata=top.metadata,
    )


def onnx_external_files(data, *, source: str | None = None) -> tuple[str, ...]:
    """The external-data files (``location``) an ONNX model's tensors point to.

    Relative to the model's directory, in the order the file first names them; empty for a
    self-contained model. The files themselves are not opened.
    """
    return tuple(_walk(data, source)[1].external)


def looks_like_onnx(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) plausibly starts a ModelProto.

    The first field must be one a ModelProto has, with its wire type, and every field
    that fits in ``head`` must be well-formed; a field cut off by the end of ``head`` is
    fine. An ``ir_version`` seen must be between 1 and ``MAX_IR_VERSION``.
    """
    w = _Wire(head, None)
    first = True
    try:
        for number, value in w.fields((0, w.size), "ModelProto", _MODEL):
            if first and number not in _MODEL:
                return False
            first = False
            if number == 1 and not 1 <= _int(value) <= MAX_IR_VERSION:
                return False
    except ModelFormatError as exc:  # a field cut off by the end of head is fine
        return not first and "truncated" in str(exc)
    return not first
