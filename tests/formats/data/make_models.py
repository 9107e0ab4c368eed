"""Build the tiny models the format tests read, and write the committed copies next to this file.

    python tests/formats/data/make_models.py      # needs onnx, ai_edge_litert (flatbuffers), numpy

``tiny.tflite``  FULLY_CONNECTED + SOFTMAX, input ``x`` [-1, 4] float32, output ``probs``
                 [-1, 3], a ``serving_default`` SignatureDef, ``min_runtime_version`` metadata.
``tiny_int8.tflite`` QUANTIZE -> FULLY_CONNECTED (int8, per-channel) -> RESHAPE -> DEQUANTIZE,
                 no SignatureDef: quantization parameters and a vector inside builtin options.
``tiny.onnx``    MatMul, Add, Relu x2, Shape and an If whose branches hold Sigmoid / Neg;
                 inputs ``x`` [N, 4] float32 and ``flag`` bool scalar (the initializer ``W``
                 is also listed as a graph input, as old exporters do), metadata ``author``.
``expected.json`` what a reader must report for each, written from the spec below (the
                 tests check fresh builds against onnx / onnxruntime / the LiteRT interpreter,
                 and the committed files against fresh builds), so the stdlib-only tests can
                 run where neither package is installed.

The tests build the same models in fixtures (``build_tflite`` / ``build_onnx``) and check
that the committed files are byte-identical to a fresh build.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

TFLITE_EXPECTED = {
    "format": "tflite",
    "inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}],
    "outputs": [{"name": "probs", "shape": [None, 3], "dtype": "float32"}],
    "ops": {"FULLY_CONNECTED": 1, "SOFTMAX": 1},
    "versions": {"schema_version": 3},
    "producer": "edgeops test model",
    "metadata": {"min_runtime_version": "1.5.0"},
}
TFLITE_INT8_EXPECTED = {
    "format": "tflite",
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
    "ops": {"QUANTIZE": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1, "DEQUANTIZE": 1},
    "versions": {"schema_version": 3},
    "producer": "edgeops int8 test model",
    "metadata": {},
}
ONNX_EXPECTED = {
    "format": "onnx",
    "inputs": [
        {"name": "x", "shape": [None, 4], "dtype": "float32"},
        {"name": "flag", "shape": [], "dtype": "bool"},
    ],
    "outputs": [
        {"name": "y", "shape": [None, 3], "dtype": "float32"},
        {"name": "x_shape", "shape": [2], "dtype": "int64"},
    ],
    "ops": {"Relu": 2, "MatMul": 1, "Add": 1, "If": 1, "Neg": 1, "Sigmoid": 1, "Shape": 1},
    "versions": {"ir_version": 8, "opset": {"ai.onnx": 17}},
    "producer": "edgeops-tests 1.0",
    "metadata": {"author": "edgeops", "license": "Apache-2.0"},
}


def weights() -> tuple[np.ndarray, np.ndarray]:
    """The FULLY_CONNECTED / MatMul weights (3x4 for TFLite, transposed for ONNX) and bias."""
    w = (np.arange(12, dtype=np.float32).reshape(3, 4) - 6.0) / 10.0
    b = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    return w, b


def build_tflite(*, signature: bool = True) -> bytes:
    """FULLY_CONNECTED + SOFTMAX via the LiteRT schema's object API."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    w, b = weights()

    def buffer(data: bytes = b"") -> s.BufferT:
        buf = s.BufferT()
        buf.data = list(data) if data else None
        return buf

    def tensor(name, shape, buf, signature_shape=None) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), s.TensorType.FLOAT32, buf
        t.shapeSignature = list(signature_shape) if signature_shape else None
        return t

    def opcode(code) -> s.OperatorCodeT:
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        return c

    def operator(index, inputs, outputs, options_type, options) -> s.OperatorT:
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def tensor_map(name, index) -> s.TensorMapT:
        m = s.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    fc = s.FullyConnectedOptionsT()
    softmax = s.SoftmaxOptionsT()
    softmax.beta = 1.0
    graph = s.SubGraphT()
    graph.name = "main"
    graph.tensors = [
        tensor("serving_default_x:0", [1, 4], 1, [-1, 4]),
        tensor("W", [3, 4], 2),
        tensor("b", [3], 3),
        tensor("fc", [1, 3], 4, [-1, 3]),
        tensor("StatefulPartitionedCall:0", [1, 3], 5, [-1, 3]),
    ]
    graph.inputs, graph.outputs = [0], [4]
    graph.operators = [
        operator(0, [0, 1, 2], [3], s.BuiltinOptions.FullyConnectedOptions, fc),
        operator(1, [3], [4], s.BuiltinOptions.SoftmaxOptions, softmax),
    ]
    model = s.ModelT()
    model.version = 3
    model.description = "edgeops test model"
    model.operatorCodes = [opcode(s.BuiltinOperator.FULLY_CONNECTED), opcode(s.BuiltinOperator.SOFTMAX)]
    model.subgraphs = [graph]
    version_text = b"1.5.0".ljust(16, b"\0")
    model.buffers = [buffer(), buffer(), buffer(w.tobytes()), buffer(b.tobytes()), buffer(), buffer(),
                     buffer(version_text)]
    meta = s.MetadataT()
    meta.name, meta.buffer = "min_runtime_version", 6
    model.metadata = [meta]
    if signature:
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [tensor_map("x", 0)], [tensor_map("probs", 4)]
        model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_tflite_int8() -> bytes:
    """QUANTIZE -> FULLY_CONNECTED (int8, per-channel weights) -> RESHAPE -> DEQUANTIZE.

    A second seed for the crash fuzzer: quantization parameters, an int32 bias, and a
    builtin option that holds a vector (ReshapeOptions.new_shape).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    w, b = weights()
    w_scale = np.abs(w).max(axis=1) / 127.0
    w_q = np.round(w / w_scale[:, None]).astype(np.int8)
    x_scale, y_scale = 0.02, 0.05
    b_q = np.round(b / (x_scale * w_scale)).astype(np.int32)

    def quant(scales, zero_points, axis=0) -> s.QuantizationParametersT:
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = list(scales), list(zero_points), axis
        return q

    def tensor(name, shape, kind, buf, q=None) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), kind, buf, q
        return t

    def buffer(data: bytes = b"") -> s.BufferT:
        buf = s.BufferT()
        buf.data = list(data) if data else None
        return buf

    def operator(index, inputs, outputs, options_type=0, options=None) -> s.OperatorT:
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    T = s.TensorType
    graph = s.SubGraphT()
    graph.tensors = [
        tensor("x", [1, 4], T.FLOAT32, 0),
        tensor("x_q", [1, 4], T.INT8, 0, quant([x_scale], [0])),
        tensor("w_q", [3, 4], T.INT8, 1, quant(w_scale, [0, 0, 0])),
        tensor("b_q", [3], T.INT32, 2, quant(x_scale * w_scale, [0, 0, 0])),
        tensor("fc_q", [1, 3], T.INT8, 0, quant([y_scale], [0])),
        tensor("new_shape", [2], T.INT32, 3),
        tensor("r_q", [1, 3], T.INT8, 0, quant([y_scale], [0])),
        tensor("y", [1, 3], T.FLOAT32, 0),
    ]
    graph.inputs, graph.outputs = [0], [7]
    reshape = s.ReshapeOptionsT()
    reshape.newShape = [1, 3]
    fc = s.FullyConnectedOptionsT()
    graph.operators = [
        operator(0, [0], [1]),
        operator(1, [1, 2, 3], [4], s.BuiltinOptions.FullyConnectedOptions, fc),
        operator(2, [4, 5], [6], s.BuiltinOptions.ReshapeOptions, reshape),
        operator(3, [6], [7]),
    ]
    codes = []
    for code in (s.BuiltinOperator.QUANTIZE, s.BuiltinOperator.FULLY_CONNECTED,
                 s.BuiltinOperator.RESHAPE, s.BuiltinOperator.DEQUANTIZE):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        codes.append(c)
    codes[1].version = 4
    model = s.ModelT()
    model.version, model.description = 3, "edgeops int8 test model"
    model.operatorCodes, model.subgraphs = codes, [graph]
    model.buffers = [buffer(), buffer(w_q.tobytes()), buffer(b_q.tobytes()),
                     buffer(np.array([1, 3], np.int32).tobytes())]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_onnx(*, ir_version: int = 8):
    """The ONNX ModelProto (not yet serialized): several ops, dynamic dims, an If, metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights()
    then_branch = helper.make_graph(
        [helper.make_node("Sigmoid", ["r"], ["then_y"])], "then",
        [], [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, ["N", 3])])
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["r"], ["neg"]), helper.make_node("Relu", ["neg"], ["else_y"])], "else",
        [], [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, ["N", 3])])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Add", ["m", "B"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("If", ["flag"], ["y"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Shape", ["x"], ["x_shape"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("x_shape", TensorProto.INT64, [2])],
        [numpy_helper.from_array(np.ascontiguousarray(w.T), "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="edgeops-tests", producer_version="1.0")
    model.ir_version = ir_version
    helper.set_model_props(model, {"author": "edgeops", "license": "Apache-2.0"})
    onnx.checker.check_model(model)
    return model


def built() -> dict[str, bytes]:
    """File name -> bytes of every committed model, freshly built."""
    return {
        "tiny.tflite": build_tflite(),
        "tiny_int8.tflite": build_tflite_int8(),
        "tiny.onnx": build_onnx().SerializeToString(),
    }


def main() -> None:
    for name, data in built().items():
        (HERE / name).write_bytes(data)
    expected = {"tiny.tflite": TFLITE_EXPECTED, "tiny_int8.tflite": TFLITE_INT8_EXPECTED,
                "tiny.onnx": ONNX_EXPECTED}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
