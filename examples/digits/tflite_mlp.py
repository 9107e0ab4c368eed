"""Write a two-layer MLP as a TFLite flatbuffer, without TensorFlow.

The graph is FULLY_CONNECTED (fused ReLU) -> FULLY_CONNECTED -> SOFTMAX, built with the object API
of the flatc-generated schema module that ships inside ``ai_edge_litert``
(``ai_edge_litert.schema_py_generated``: ``ModelT``, ``SubGraphT``, ``TensorT``, ...).

What a hand-written model must get right, or the interpreter rejects it or, worse, runs it wrong:

* ``Model.version`` is 3 and the file identifier is ``TFL3``.
* Buffer 0 is the empty sentinel; tensors without constant data point at it.
* Each operator code carries both ``builtin_code`` and ``deprecated_builtin_code`` (the latter
  clamped to 127 for codes >= 127); older runtimes read only the deprecated one.
* Flatbuffers omits fields equal to their schema default, and the schema default of
  ``SoftmaxOptions.beta`` is 0.0: a softmax written without beta=1.0 returns a uniform 0.1.
* FULLY_CONNECTED weights are [out, in] (ONNX Gemm with transB=1 uses the same layout).
* Constant data is 16-byte aligned so runtimes can map it in place.
* A dynamic batch is ``shape`` [1, ...] plus ``shape_signature`` [-1, ...].
* A ``serving_default`` SignatureDef names the inputs and outputs for signature runners.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

_ALIGNMENT = 16


class _AlignedBufferT(tfl.BufferT):
    """A BufferT whose data vector starts on a 16-byte boundary (BufferT.Pack aligns to 1)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (overrides the generated API)
        data = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), _ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data = builder.EndVector(len(payload))
        tfl.BufferStart(builder)
        if data is not None:
            tfl.BufferAddData(builder, data)
        return tfl.BufferEnd(builder)


def _opcode(builtin: int) -> tfl.OperatorCodeT:
    code = tfl.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    return code


def _tensor(
    name: str, shape: list[int], buffer: int = 0, dynamic_batch: bool = False
) -> tfl.TensorT:
    tensor = tfl.TensorT()
    tensor.name = name
    tensor.type = tfl.TensorType.FLOAT32
    tensor.shape = list(shape)
    tensor.buffer = buffer
    if dynamic_batch:
        tensor.shapeSignature = [-1, *shape[1:]]
    return tensor


def _operator(
    opcode: int, inputs: list[int], outputs: list[int], kind: int, options: object
) -> tfl.OperatorT:
    op = tfl.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = inputs
    op.outputs = outputs
    op.builtinOptionsType = kind
    op.builtinOptions = options
    return op


def _fully_connected_options(activation: int) -> tfl.FullyConnectedOptionsT:
    options = tfl.FullyConnectedOptionsT()
    options.fusedActivationFunction = activation
    options.weightsFormat = tfl.FullyConnectedOptionsWeightsFormat.DEFAULT
    options.keepNumDims = False
    return options


def _softmax_options() -> tfl.SoftmaxOptionsT:
    options = tfl.SoftmaxOptionsT()
    options.beta = 1.0  # the schema default is 0.0, which would make every output 1/classes
    return options


def _signature(input_name: str, output_name: str, tensors: tuple[int, int]) -> tfl.SignatureDefT:
    def tensor_map(name: str, index: int) -> tfl.TensorMapT:
        mapping = tfl.TensorMapT()
        mapping.name = name
        mapping.tensorIndex = index
        return mapping

    signature = tfl.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(input_name, tensors[0])]
    signature.outputs = [tensor_map(output_name, tensors[1])]
    return signature


def _const_buffer(array: np.ndarray) -> _AlignedBufferT:
    buffer = _AlignedBufferT()
    buffer.data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return buffer


def mlp_to_tflite(
    layers: list[tuple[np.ndarray, np.ndarray]],
    input_name: str = "pixels",
    output_name: str = "probabilities",
    description: str = "",
) -> bytes:
    """Serialize ``[(w1, b1), (w2, b2)]`` (weights [out, in]) as dense-ReLU-dense-softmax TFLite."""
    (w1, b1), (w2, b2) = layers
    hidden, features = w1.shape
    classes = w2.shape[0]
    tensors = [
        _tensor(input_name, [1, features], dynamic_batch=True),  # 0
        _tensor("fc1.weight", [hidden, features], buffer=1),  # 1
        _tensor("fc1.bias", [hidden], buffer=2),  # 2
        _tensor("hidden", [1, hidden], dynamic_batch=True),  # 3
        _tensor("fc2.weight", [classes, hidden], buffer=3),  # 4
        _tensor("fc2.bias", [classes], buffer=4),  # 5
        _tensor("logits", [1, classes], dynamic_batch=True),  # 6
        _tensor(output_name, [1, classes], dynamic_batch=True),  # 7
    ]
    fc, softmax = 0, 1  # indices into operator_codes
    relu, none = tfl.ActivationFunctionType.RELU, tfl.ActivationFunctionType.NONE
    fc_kind = tfl.BuiltinOptions.FullyConnectedOptions
    softmax_kind = tfl.BuiltinOptions.SoftmaxOptions
    operators = [
        _operator(fc, [0, 1, 2], [3], fc_kind, _fully_connected_options(relu)),
        _operator(fc, [3, 4, 5], [6], fc_kind, _fully_connected_options(none)),
        _operator(softmax, [6], [7], softmax_kind, _softmax_options()),
    ]

    subgraph = tfl.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors = tensors
    subgraph.inputs = [0]
    subgraph.outputs = [7]
    subgraph.operators = operators

    model = tfl.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = [
        _opcode(tfl.BuiltinOperator.FULLY_CONNECTED),
        _opcode(tfl.BuiltinOperator.SOFTMAX),
    ]
    model.subgraphs = [subgraph]
    model.buffers = [_AlignedBufferT()] + [_const_buffer(a) for a in (w1, b1, w2, b2)]
    model.signatureDefs = [_signature(input_name, output_name, (0, 7))]

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
