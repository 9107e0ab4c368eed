"""The ONNX reader on hand-encoded protobuf: what it accepts, and what it rejects and why.

Needs only the stdlib: a ten-line protobuf encoder below writes exactly the bytes each
case needs, including ones no protobuf library would write.
"""

from __future__ import annotations

import pytest

from edgeops.errors import ModelFormatError
from edgeops.formats import onnx_external_files, read_onnx

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def f(number: int, value, wire: int | None = None) -> bytes:
    """One field: an int is a varint, bytes/str are length-delimited (unless ``wire`` says)."""
    if isinstance(value, str):
        value = value.encode()
    wire = (VARINT if isinstance(value, int) else LEN) if wire is None else wire
    tag = varint(number << 3 | wire)
    if wire == VARINT:
        return tag + varint(value)
    if wire == LEN:
        return tag + varint(len(value)) + value
    return tag + value


def value_info(name: str, elem_type: int | None = 1, dims=("N", 4)) -> bytes:
    if elem_type is None:
        return f(1, name)
    shape = b"" if dims is None else f(2, b"".join(
        f(1, f(1, d) if isinstance(d, int) else f(2, d) if isinstance(d, str) else b"") for d in dims))
    return f(1, name) + f(2, f(1, f(1, elem_type) + shape))


def node(op_type: str | bytes | None = "Relu", inputs=("x",), outputs=("y",), domain: str = "", attrs: bytes = b"") -> bytes:
    out = b"".join(f(1, i) for i in inputs) + b"".join(f(2, o) for o in outputs)
    return out + (f(4, op_type) if op_type is not None else b"") + (f(7, domain) if domain else b"") + attrs


def graph(nodes=None, inputs=None, outputs=None, extra: bytes = b"") -> bytes:
    """A GraphProto; by default one Relu from input ``x`` [N, 4] to output ``y``."""
    nodes = (node(),) if nodes is None else nodes
    inputs = (value_info("x"),) if inputs is None else inputs
    outputs = (value_info("y"),) if outputs is None else outputs
    return (b"".join(f(1, n) for n in nodes) + b"".join(f(11, i) for i in inputs)
            + b"".join(f(12, o) for o in outputs) + extra)


def model(g: bytes | None = None, ir_version: int | None = 8, extra: bytes = b"") -> bytes:
    g = graph() if g is None else g
    head = f(1, ir_version) if ir_version is not None else b""
    return head + f(2, "hand") + f(7, g) + f(8, f(1, "") + f(2, 17)) + extra


def nested_if(depth: int) -> bytes:
    """A graph whose If node holds a then_branch that holds an If ... ``depth`` levels down."""
    g = graph(nodes=(node("Relu"),), inputs=(), outputs=(value_info("y"),))
    for _ in range(depth):
        g = graph(nodes=(node("If", ("c",), ("y",), attrs=f(5, f(1, "then_branch") + f(6, g) + f(20, 5))),),
                  inputs=(value_info("c", 9, ()),), outputs=(value_info("y"),))
    return g


def test_minimal_model():
    summary = read_onnx(model())
    assert [(t.name, t.shape, t.dtype) for t in summary.inputs] == [("x", (None, 4), "float32")]
    assert summary.ops == {"Relu": 1}
    assert summary.versions == {"ir_version": 8, "opset": {"ai.onnx": 17}}
    assert summary.producer == "hand"


@pytest.mark.parametrize(
    ("dims", "shape"),
    [
        pytest.param(("N", 4), (None, 4), id="dim_param-is-None"),
        pytest.param((None, 3), (None, 3), id="empty-dim-is-None"),
        pytest.param((), (), id="scalar"),
        pytest.param(None, None, id="no-shape-is-unknown-rank"),
        pytest.param((-1, 2), (None, 2), id="negative-dim_value-is-None"),
    ],
)
def test_shapes(dims, shape):
    g = graph(inputs=(value_info("x", 1, dims),))
    assert read_onnx(model(g)).inputs[0].shape == shape


@pytest.mark.parametrize(
    ("elem_type", "dtype"),
    [(1, "float32"), (3, "int8"), (7, "int64"), (8, "object"), (9, "bool"), (10, "float16"),
     (16, "bfloat16"), (0, "undefined"), (99, "onnx_elem_type_99"), (None, "undefined")],
    ids=lambda v: str(v),
)
def test_dtypes(elem_type, dtype):
    assert read_onnx(model(graph(inputs=(value_info("x", elem_type),)))).inputs[0].dtype == dtype


def test_sequence_input_is_object_of_unknown_shape():
    seq = f(1, "s") + f(2, f(4, f(1, f(1, f(1, 1)))))  # sequence<tensor<float>>
    summary = read_onnx(model(graph(inputs=(seq,))))
    assert (summary.inputs[0].shape, summary.inputs[0].dtype) == (None, "object")


def test_initializers_are_not_inputs():
    init = f(5, f(1, 4, VARINT) + f(2, 1) + f(8, "W") + f(9, b"\0" * 16))
    g = graph(inputs=(value_info("x"), value_info("W", 1, (4,))), extra=init)
    assert [t.name for t in read_onnx(model(g)).inputs] == ["x"]


def test_ops_count_subgraph_nodes_and_prefix_other_domains():
    g = nested_if(2)
    g += f(1, node("FusedConv", domain="com.microsoft")) + f(1, node("Relu", domain="ai.onnx"))
    assert read_onnx(model(g)).ops == {"If": 2, "Relu": 2, "com.microsoft:FusedConv": 1}


def test_unknown_fields_are_skipped():
    unknown = f(99, 7) + f(98, b"\1\2\3\4", I32) + f(97, b"\0" * 8, I64) + f(96, b"blob")
    g = graph(nodes=(node(attrs=unknown),), extra=unknown)
    assert read_onnx(model(g, extra=unknown)).ops == {"Relu": 1}


def test_a_repeated_graph_field_merges():
    data = model() + f(7, graph(nodes=(node("Sigmoid"),), inputs=(), outputs=()))
    assert read_onnx(data).ops == {"Relu": 1, "Sigmoid": 1}


def test_metadata_and_opsets():
    extra = f(14, f(1, "author") + f(2, "me")) + f(8, f(1, "ai.onnx.ml") + f(2, 3))
    summary = read_onnx(model(extra=extra))
    assert summary.metadata == {"author": "me"}
    assert summary.versions["opset"] == {"ai.onnx": 17, "ai.onnx.ml": 3}


def test_packed_and_unpacked_repeated_fields_both_read():
    packed = f(5, f(1, varint(4) + varint(3)) + f(8, "A") + f(4, b"\0" * 8))
    unpacked = f(5, f(1, 4) + f(1, 3) + f(8, "B") + f(4, b"\0\0\0\0", I32))
    assert read_onnx(model(graph(extra=packed + unpacked))).ops == {"Relu": 1}


def test_external_data_locations_are_listed_without_reading_them():
    def external(name: str, location: str) -> bytes:
        entry = f(13, f(1, "location") + f(2, location)) + f(13, f(1, "offset") + f(2, "0"))
        return f(8, name) + f(2, 1) + entry + f(14, 1)

    constant = node("Constant", (), ("c",), attrs=f(5, f(1, "value") + f(5, external("c", "c.bin"))))
    g = graph(nodes=(node(), constant), extra=f(5, external("W", "w.bin")) + f(5, external("V", "w.bin")))
    assert onnx_external_files(model(g)) == ("c.bin", "w.bin")  # in file order
    assert onnx_external_files(model()) == ()


def test_nesting_up_to_the_limit_reads():
    assert read_onnx(model(nested_if(32))).ops["If"] == 32


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(model(ir_version=None), "no ir_version", id="no-ir_version"),
        pytest.param(f(1, 8) + f(8, f(2, 17)), "no graph", id="no-graph"),
        pytest.param(model(ir_version=0), "ir_version 0", id="ir_version-0"),
        pytest.param(model(ir_version=1000), "ir_version 1000", id="ir_version-1000"),
        pytest.param(model(graph(nodes=(), outputs=())), "the graph has no outputs", id="empty-graph"),
        pytest.param(model(graph(outputs=())), "the graph has no outputs", id="no-outputs"),
        pytest.param(model(graph(inputs=())), "the graph has no inputs", id="no-inputs"),
        pytest.param(model(graph(inputs=(value_info("W", 1, (4,)),), extra=f(5, f(1, 4, VARINT) + f(2, 1) + f(8, "W")))),
                     "the graph has no inputs", id="only-initializer-inputs"),
        pytest.param(model(graph(nodes=(node(None),))), "no op_type", id="node-without-op_type"),
        pytest.param(model(graph(nodes=(node(b"Re\xff"),))), "op_type at byte .* not valid UTF-8",
                     id="op_type-not-utf8"),
        pytest.param(model() + b"\x00\x01", "field number 0", id="field-number-0"),
        pytest.param(model() + b"\x0b", "wire type", id="group-wire-type"),
        pytest.param(model() + b"\x0f", "wire type", id="wire-type-7"),
        pytest.param(model() + varint(99 << 3) + b"\xff" * 10 + b"\x01", "longer than 10 bytes", id="varint-11-bytes"),
        pytest.param(model() + varint(99 << 3) + b"\xff" * 9 + b"\x7f", "invalid varint", id="varint-over-64-bits"),
        pytest.param(model() + b"\x3a\x10abc", "truncated", id="length-past-end-of-file"),
        pytest.param(model(graph(extra=b"\x0a\x7f")), "past the end of its GraphProto",
                     id="length-past-end-of-message"),
        pytest.param(model()[:-3], "truncated", id="cut-mid-field"),
        pytest.param(f(1, 8) + f(7, 5), "expected length-delimited", id="graph-as-varint"),
        pytest.param(model(graph(extra=f(5, f(1, b"\x04\x83")))), "invalid varint in packed",
                     id="packed-dims-cut-varint"),
        pytest.param(model(graph(extra=f(5, f(4, b"\0" * 6)))), "partial element", id="packed-floats-partial"),
        pytest.param(model(nested_if(33)), "nested more than 32", id="subgraphs-too-deep"),
    ],
)
def test_rejects(data, says):
    with pytest.raises(ModelFormatError, match=says):
        read_onnx(data)


def test_types_nested_too_deep_are_rejected():
    t = f(1, f(1, 1))  # tensor<float>
    for _ in range(40):
        t = f(4, f(1, t))  # sequence<...>
    with pytest.raises(ModelFormatError, match="nested more than"):
        read_onnx(model(graph(inputs=(f(1, "s") + f(2, t),))))


@pytest.mark.parametrize("data, says", [
    (b"", "the file is empty"),
    (b"\x00", "field number 0 in ModelProto at byte 0"),
    (b"\x08", "truncated: field ModelProto.ir_version at byte 1 runs past the end of the 1-byte file"),
    (b"\x08\x08", "no graph in the file"),
    (bytes(range(256)), "field number 0 in ModelProto at byte 0"),
], ids=repr)
def test_tiny_and_garbage_inputs(data, says):
    with pytest.raises(ModelFormatError, match=f"not a valid ONNX model: .*{says}"):
        read_onnx(data)
