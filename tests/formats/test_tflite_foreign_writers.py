"""Files other writers make that TFLite runs must pass the validator; their look-alikes that crash it must not.

onnx2tf (2.6.9, flatbuffer_direct) stores the value it folded for a static ``SHAPE -> GATHER``
in the GATHER output's buffer. The interpreter computes that GATHER while it prepares, into
memory of its own, so the file runs; the same constant written by an operator that runs at
invoke is written into the model's buffer, a segfault where the file is mapped read-only.
Each case runs in a subprocess on the installed interpreter from a path (``model_path``,
an mmap), the way that crashes.
"""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("flatbuffers")
pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as s  # noqa: E402

import edgeops  # noqa: E402
from edgeops.errors import ModelFormatError  # noqa: E402
from edgeops.formats import read_tflite  # noqa: E402

X = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
RUN_FROM_PATH = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
ins = it.get_input_details()
it.set_tensor(ins[0]["index"], np.arange(6, dtype=np.float32).reshape(1, 2, 3))
if len(ins) > 1:
    it.set_tensor(ins[1]["index"], np.array([1, 3, 2], np.int32))
it.invoke()
print(it.get_tensor(it.get_output_details()[0]["index"]).shape)
"""


def shape_gather_reshape(*, gather_reads: str = "shape", folded_in_buffer: bool = True) -> bytes:
    """``y = RESHAPE(x, GATHER(SHAPE(x), [0, 2, 1]))``, x [1, 2, 3] -> y [1, 3, 2], as onnx2tf writes it:
    the GATHER output (tensor 3) carries its value [1, 3, 2] in a buffer of its own.
    ``gather_reads="input"`` makes the GATHER read a subgraph input (``dims``) instead of the SHAPE."""
    import flatbuffers

    def buffer(data: bytes = b"") -> s.BufferT:
        b = s.BufferT()
        b.data = list(data) if data else None
        return b

    def tensor(name, shape, kind, buf) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, kind, buf
        return t

    def opcode(code) -> s.OperatorCodeT:
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        return c

    def operator(index, inputs, outputs, options_type=0, options=None) -> s.OperatorT:
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    f32, i32 = s.TensorType.FLOAT32, s.TensorType.INT32
    shape_options = s.ShapeOptionsT()
    shape_options.outType = i32
    graph = s.SubGraphT()
    graph.tensors = [tensor("x", [1, 2, 3], f32, 0), tensor("x_shape", [3], i32, 0), tensor("perm", [3], i32, 1),
                     tensor("x_shape_filtered", [3], i32, 2), tensor("y", [1, 3, 2], f32, 0)]
    graph.inputs, graph.outputs = [0], [4]
    gather_input = 1
    if gather_reads == "input":
        graph.tensors.append(tensor("dims", [3], i32, 0))
        graph.inputs, gather_input = [0, 5], 5
    graph.operators = [operator(0, [0], [1], s.BuiltinOptions.ShapeOptions, shape_options),
                       operator(1, [gather_input, 2], [3], s.BuiltinOptions.GatherOptions, s.GatherOptionsT()),
                       operator(2, [0, 3], [4])]
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [opcode(s.BuiltinOperator.SHAPE), opcode(s.BuiltinOperator.GATHER),
                           opcode(s.BuiltinOperator.RESHAPE)]
    model.subgraphs = [graph]
    folded = struct.pack("<3i", 1, 3, 2) if folded_in_buffer else b""
    model.buffers = [buffer(), buffer(struct.pack("<3i", 0, 2, 1)), buffer(folded)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_from_path(data: bytes, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    return subprocess.run([sys.executable, "-c", RUN_FROM_PATH, str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("folded_in_buffer", [True, False], ids=["value-in-buffer", "empty-buffer"])
def test_regression_onnx2tf_gather_of_a_shape_with_its_folded_value_loads_and_runs(folded_in_buffer, tmp_path):
    """Was "GATHER writes constant tensor" for onnx2tf's digits_vit, kws_dscnn1d, crnn_text_rec, vit_tiny."""
    data = shape_gather_reshape(folded_in_buffer=folded_in_buffer)
    assert read_tflite(data).ops == {"SHAPE": 1, "GATHER": 1, "RESHAPE": 1}
    ran = run_from_path(data, tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    model = edgeops.load(tmp_path / "model.tflite")
    (y,) = model.run(X).values()
    np.testing.assert_array_equal(y, X.reshape(1, 3, 2))


def test_a_gather_computed_at_invoke_may_not_write_a_constant(tmp_path):
    """The same file with the GATHER reading a subgraph input: LiteRT writes into the mapped file and dies."""
    data = shape_gather_reshape(gather_reads="input")
    with pytest.raises(ModelFormatError, match=r"operators\[1\] \(GATHER\) writes constant tensor 3"):
        read_tflite(data)
    ran = run_from_path(data, tmp_path)
    assert ran.returncode < 0, f"the interpreter survived ({ran.returncode}); the rule may be relaxed: {ran.stdout}"
